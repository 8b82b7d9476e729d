"""Logging and reading back through the public API, on a real SQLite workspace."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import runlab
from runlab import InvalidNameError, InvalidValueError, PropertyConflictError


@pytest.fixture
def ws(any_ws: runlab.Workspace) -> runlab.Workspace:
    """Every test of this module on both kinds of workspace: the embedded folder and a live server."""
    return any_ws


@pytest.fixture
def run(ws: runlab.Workspace) -> runlab.Run:
    return runlab.Experiment(ws, "exp").start_logging()


def test_scalar_once_and_many_in_azure_shape(run: runlab.Run) -> None:
    run.log("acc", 0.9)
    for i in range(5):
        run.log("loss", 1.0 / (i + 1))
    metrics = run.get_metrics()
    assert metrics["acc"] == 0.9
    assert metrics["loss"] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert run.get_metrics("acc") == {"acc": 0.9}


def test_history_has_steps_timestamps_values_as_arrays(run: runlab.Run) -> None:
    for i in range(100):
        run.log("loss", float(i))
    run.log("loss", 7.0, step=1000)
    history = run.get_metric_history("loss")
    assert isinstance(history.values, np.ndarray) and history.values.dtype == np.float64
    assert history.steps.tolist() == list(range(100)) + [1000]
    assert len(history.timestamps) == 101
    assert np.all(np.diff(history.timestamps) >= 0)


def test_value_types_round_trip(run: runlab.Run) -> None:
    run.log("int", 3)
    run.log("bool", True)
    run.log("text", "hello")
    run.log("np", np.float32(0.5))
    run.log("npint", np.int64(7))
    m = run.get_metrics()
    assert m["int"] == 3 and type(m["int"]) is int
    assert m["bool"] is True
    assert m["text"] == "hello"
    assert m["np"] == 0.5
    assert m["npint"] == 7


def test_zero_d_tensor_is_duck_typed_through_item(run: runlab.Run) -> None:
    class FakeTensor:  # what torch.tensor(0.25) looks like to runlab, without importing torch
        def numel(self) -> int:
            return 1

        def item(self) -> float:
            return 0.25

    run.log("loss", FakeTensor())
    assert run.get_metrics()["loss"] == 0.25


def test_nan_and_inf_survive(run: runlab.Run) -> None:
    for v in (1.0, float("nan"), float("inf"), float("-inf")):
        run.log("x", v)
    run.log("single_nan", float("nan"))
    values = run.get_metric_history("x").values
    assert values[0] == 1.0 and math.isnan(values[1]) and values[2] == math.inf and values[3] == -math.inf
    assert math.isnan(run.get_metrics()["single_nan"])
    summary = {s.name: s for s in run.get_metric_summaries()}["x"]
    assert summary.min == -math.inf and summary.max == math.inf


def test_mixed_int_and_float_series(run: runlab.Run) -> None:
    run.log("m", 1)
    run.log("m", 2.5)
    assert run.get_metrics()["m"] == [1.0, 2.5]


def test_list_row_and_table_shapes(run: runlab.Run) -> None:
    run.log_list("lst", [1, 2, 3])
    run.log_row("per class", cls="cat", acc=0.9)
    run.log_row("per class", cls="dog", acc=0.8)
    run.log_table("roc", {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.8, 1.0]})
    m = run.get_metrics()
    assert m["lst"] == [1, 2, 3]
    assert m["per class"] == {"cls": ["cat", "dog"], "acc": [0.9, 0.8]}
    assert m["roc"] == {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.8, 1.0]}


def test_log_image_from_path_and_figure(run: runlab.Run, tmp_path: Path) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    run.log_image("curve", plot=fig)
    plt.close(fig)
    png = tmp_path / "img.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    run.log_image("file", path=png)
    m = run.get_metrics()
    assert m["curve"].startswith("images/curve_") and m["curve"].endswith(".png")
    assert m["curve"] in run.get_file_names() and m["file"] in run.get_file_names()
    with run.open_file(m["curve"]) as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("call", "error", "hint"),
    [
        (lambda r: r.log("x", [1, 2]), InvalidValueError, "log_list"),
        (lambda r: r.log("x", {"a": 1}), InvalidValueError, "log_row"),
        (lambda r: r.log("x", None), InvalidValueError, "None"),
        (lambda r: r.log("x", np.zeros(3)), InvalidValueError, "log_list"),
        (lambda r: r.log(5, 1.0), InvalidNameError, "str"),
        (lambda r: r.log(["a"], 1.0), InvalidNameError, "str"),
        (lambda r: r.log("", 1.0), InvalidNameError, "1 to 255"),
        (lambda r: r.log("n" * 256, 1.0), InvalidNameError, "1 to 255"),
        (lambda r: r.log("x", 1.0, step="3"), InvalidValueError, "step"),
        (lambda r: r.log_list("x", 3), InvalidValueError, "run.log"),
        (lambda r: r.log_table("x", {"a": [1], "b": [1, 2]}), InvalidValueError, "same length"),
        (lambda r: r.log_image("x"), InvalidValueError, "exactly one"),
    ],
)
def test_programming_errors_raise_at_once_with_a_hint(run: runlab.Run, call, error, hint) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=hint):
        call(run)


def test_name_of_255_characters_is_fine(run: runlab.Run) -> None:
    run.log("n" * 255, 1.0)
    assert run.get_metrics()["n" * 255] == 1.0


def test_ten_thousand_metric_names(run: runlab.Run) -> None:
    for i in range(10_000):
        run.log(f"metric_{i}", i)
    metrics = run.get_metrics()
    assert len(metrics) == 10_000
    assert metrics["metric_9999"] == 9999


def test_tags_and_add_only_properties(run: runlab.Run) -> None:
    run.tag("stage", "dev")
    run.set_tags({"stage": "prod", "owner": "me"})
    run.remove_tags(["owner"])
    assert run.get_tags() == {"stage": "prod"}
    run.add_properties({"lr": 0.1})
    run.add_properties({"lr": "0.1"})  # same value: fine
    with pytest.raises(PropertyConflictError, match="add-only"):
        run.add_properties({"lr": 0.2})
    assert run.get_properties()["lr"] == "0.1"
    assert run.get_properties()["runlab.user"]  # who started it, recorded at creation


def test_upload_folder_refuses_a_link_leading_outside_and_stores_links_inside(run: runlab.Run, tmp_path: Path) -> None:
    """The rule of Datastore.upload: a link to a file elsewhere (a key, a dataset) is refused, with its
    name, before anything is stored; a link to a file inside is that file; a broken link is left out."""
    secret = tmp_path / "home" / "id_rsa"
    secret.parent.mkdir()
    secret.write_text("secret")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    (folder / "alias.txt").symlink_to(folder / "a.txt")
    (folder / "broken").symlink_to(tmp_path / "missing")
    (folder / "key").symlink_to(secret)
    with pytest.raises(runlab.UserError, match=r"lead outside it \(key -> .*id_rsa\).*Nothing was uploaded"):
        run.upload_folder("outputs", folder)
    assert [n for n in run.get_file_names() if n.startswith("outputs/")] == []
    (folder / "key").unlink()
    (folder / "data").symlink_to(secret.parent, target_is_directory=True)  # a folder outside: refused too
    with pytest.raises(runlab.UserError, match="data -> "):
        run.upload_folder("outputs", folder)
    (folder / "data").unlink()
    assert run.upload_folder("outputs/", folder) == ["outputs/a.txt", "outputs/alias.txt"]
    with run.open_file("outputs/alias.txt") as f:
        assert f.read() == b"a"


def test_files_upload_list_download(run: runlab.Run, tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(b"weights")
    run.upload_file("outputs/model.bin", src)
    folder = tmp_path / "logs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "sub" / "b.txt").write_text("b")
    run.upload_folder("logs", folder)
    import io

    run.upload_file("notes.txt", io.BytesIO(b"stream"))
    assert run.get_file_names() == ["logs/a.txt", "logs/sub/b.txt", "notes.txt", "outputs/model.bin"]
    out = run.download_file("outputs/model.bin", tmp_path / "dl.bin")
    assert out.read_bytes() == b"weights"
    paths = run.download_files(prefix="logs", output_directory=tmp_path / "all")
    assert sorted(p.relative_to(tmp_path / "all").as_posix() for p in paths) == ["logs/a.txt", "logs/sub/b.txt"]
    with pytest.raises(runlab.NotFoundError, match="get_file_names"):
        run.download_file("missing.txt", tmp_path / "x")
    with pytest.raises(runlab.UserError, match="inside the run"):
        run.upload_file("../escape.txt", src)


@pytest.mark.parametrize("name", ["outputs/a\nb.txt", "outputs/tab\there.txt", "outputs/%2e%2e.txt",
                                  "outputs/sp ace/ü€😀.txt", "outputs/q?x=1#frag.txt"])
def test_file_names_the_embedded_store_holds_round_trip_the_same_everywhere(run: runlab.Run, tmp_path: Path,
                                                                             name: str) -> None:
    """Names that are valid but odd in a URL (a newline: a route's ``{name:path}`` does not match it)."""
    src = tmp_path / "f.bin"
    src.write_bytes(b"odd")
    run.upload_file(name, src)
    assert name in run.get_file_names()
    assert run.download_file(name, tmp_path / "back.bin").read_bytes() == b"odd"
    with run.open_file(name) as f:
        assert f.read() == b"odd"


def test_lifecycle_complete_fail_cancel(ws: runlab.Workspace) -> None:
    exp = runlab.Experiment(ws, "life")
    a = exp.start_logging()
    a.complete()
    assert a.get_status() == "Completed"
    b = exp.start_logging()
    b.fail("bad data")
    assert b.get_status() == "Failed" and b.get_details()["error"]["message"] == "bad data"
    c = exp.start_logging()
    c.cancel()
    assert c.get_status() == "Canceled"
    details = a.get_details()
    assert details["runId"] == a.id and details["status"] == "Completed"
    assert details["startTimeUtc"] and details["endTimeUtc"]


def test_with_block_marks_failed_on_exception(ws: runlab.Workspace) -> None:
    exp = runlab.Experiment(ws, "ctx")
    with pytest.raises(ZeroDivisionError):
        with exp.start_logging() as run:
            run.log("x", 1)
            1 / 0
    assert run.get_status() == "Failed"
    assert "ZeroDivisionError" in run.get_details()["error"]["message"]
    assert run.get_metrics() == {"x": 1}
    with exp.start_logging() as ok:
        ok.log("x", 2)
    assert ok.get_status() == "Completed"


def test_children(run: runlab.Run) -> None:
    child = run.child_run("fold-1")
    child.log("acc", 0.7)
    grandchild = child.child_run()
    grandchild.complete()
    child.complete()
    assert child.parent is not None and child.parent.id == run.id
    assert child.name == "fold-1"
    assert [c.id for c in run.get_children()] == [child.id]
    assert {c.id for c in run.get_children(recursive=True)} == {child.id, grandchild.id}
    assert run.get_metrics(recursive=True)[child.id] == {"acc": 0.7}


def test_run_ids_have_azure_form(run: runlab.Run) -> None:
    import re

    assert re.fullmatch(r"exp_\d{10}_[0-9a-f]{8}", run.id)


def test_experiment_get_runs_filters_newest_first(ws: runlab.Workspace) -> None:
    exp = runlab.Experiment(ws, "filters")
    first = exp.start_logging()
    first.tag("kind", "a")
    first.complete()
    second = exp.start_logging()
    second.tag("kind", "b")
    second.add_properties({"p": "1"})
    assert [r.id for r in exp.get_runs()] == [second.id, first.id]
    assert [r.id for r in exp.get_runs(tags={"kind": "a"})] == [first.id]
    assert [r.id for r in exp.get_runs(tags="kind")] == [second.id, first.id]
    assert [r.id for r in exp.get_runs(properties={"p": "1"})] == [second.id]
    assert [r.id for r in exp.get_runs(status="Completed")] == [first.id]
    assert [r.id for r in exp.get_runs(status="running")] == [second.id]
    with pytest.raises(runlab.UserError, match="unknown run status"):
        list(exp.get_runs(status="Done"))


def test_run_handle_from_experiment_and_workspace(run: runlab.Run, ws: runlab.Workspace) -> None:
    run.log("x", 1)
    run.flush()
    again = runlab.Run(runlab.Experiment(ws, "exp"), run.id)
    assert again.get_metrics() == {"x": 1}
    assert ws.get_run(run.id).experiment.name == "exp"
    with pytest.raises(runlab.RunNotFoundError, match="does not exist"):
        ws.get_run("exp_1_deadbeef")
    assert run.get_portal_url().endswith(f"/runs/{run.id}")


def test_a_completed_run_is_not_heartbeaten_when_the_process_exits(ws: runlab.Workspace,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """At exit every logger is closed once more; a run that ended must not be heartbeaten then (with its
    server gone, that heartbeat failed and printed that the run's metrics could not be written)."""
    from runlab.tracking import lifecycle

    run = runlab.Experiment(ws, "exit").start_logging()
    run.log("loss", 1.0)
    run.complete()
    logger = run._logger_obj
    assert logger is not None and logger.heartbeat_owner
    beats: list[str] = []
    monkeypatch.setattr(logger._delivery.store, "heartbeat", lambda run_id, *a, **k: beats.append(run_id))
    logger._last_heartbeat = 0.0  # long ago: a heartbeat would be due now
    lifecycle._flush_all()
    assert beats == []
    assert run.get_metrics() == {"loss": 1.0}
