"""The REST API in-process (Starlette's test client over the ASGI app), on a real SQLite workspace."""

from __future__ import annotations

import io
import json
import math
from typing import Any

import numpy as np
import pytest

import runlab
from runlab.core.entities import MetricBatch
from runlab.core.errors import (
    ConfigError,
    ExperimentNotFoundError,
    InvalidNameError,
    RunlabError,
    RunNotFoundError,
    StoreError,
    StoreUnavailableError,
    UserError,
    WorkspaceExistsError,
)
from runlab.core.status import RunStatus, RunType
from runlab.server.errors import status_for
from tests_support import plant_run

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"] and body["error"]["type"]
    return dict(body["error"])


def sse_events(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


# -- experiments and runs ------------------------------------------------------------------------


def test_experiments_count_top_level_runs_by_status(populated: runlab.Workspace, client: Any) -> None:
    experiments = {e["name"]: e for e in client.get("/api/experiments").json()}
    assert set(experiments) == {"baseline", "mnist"}
    mnist = experiments["mnist"]
    assert mnist["run_count"] == 12  # the child run is counted under its parent
    assert mnist["status_counts"] == {"Completed": 10, "Failed": 1, "Canceled": 1}
    assert mnist["last_run_id"] == "mnist_run_11"
    assert client.get("/api/experiments/baseline").json()["status_counts"] == {"Completed": 1, "Failed": 1}
    assert error_of(client.get("/api/experiments/nope"), 404)["type"] == "ExperimentNotFoundError"


def test_runs_list_pages_and_counts(populated: runlab.Workspace, client: Any) -> None:
    page = client.get("/api/runs", params={"experiment": "mnist", "limit": 5, "offset": 10}).json()
    assert page["total"] == 12 and page["offset"] == 10 and page["limit"] == 5
    assert [r["run_id"] for r in page["runs"]] == ["mnist_run_01", "mnist_run_00"]  # newest first
    everything = client.get("/api/runs", params={"include_children": "true", "limit": 500}).json()
    assert everything["total"] == 15
    row = next(r for r in everything["runs"] if r["run_id"] == "mnist_run_11")
    assert row["child_count"] == 1 and row["user"] == "ada" and row["tags"] == {"lr": "0.001", "team": "vision"}
    assert row["duration_s"] == pytest.approx(1 + 30 + 17 * 11)  # started at creation
    children = client.get("/api/runs/mnist_run_11/children").json()
    assert [r["run_id"] for r in children["runs"]] == ["mnist_run_11_child"]


def test_runs_sort_by_a_metric_last_value_with_missing_values_last(populated: runlab.Workspace, client: Any) -> None:
    def loss_order(order: str) -> list[Any]:
        page = client.get("/api/runs", params={"sort": "metric:loss", "order": order, "metric": "loss", "limit": 500}).json()
        return [r["metrics"].get("loss") for r in page["runs"]]

    down, up = loss_order("desc"), loss_order("asc")
    numbers = [v for v in down if v is not None]
    assert numbers == sorted(numbers, reverse=True) and len(numbers) == 13
    assert down[-1] is None and up[-1] is None  # baseline_b has no loss: last both ways
    assert [v for v in up if v is not None] == sorted(numbers)


@pytest.mark.parametrize("sort", ["created_at", "started_at", "ended_at", "status", "duration", "run_id",
                                  "display_name", "target", "experiment", "metric:accuracy"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_runs_sort_by_every_column(populated: runlab.Workspace, client: Any, sort: str, order: str) -> None:
    page = client.get("/api/runs", params={"sort": sort, "order": order, "limit": 500}).json()
    assert page["total"] == 14 and len(page["runs"]) == 14
    if sort == "duration":
        durations = [r["duration_s"] for r in page["runs"]]
        assert durations == sorted(durations, reverse=order == "desc")
    if sort == "status":
        ranks = [list(RunStatus).index(RunStatus(r["status"])) for r in page["runs"]]
        assert ranks == sorted(ranks, reverse=order == "desc")


def test_runs_filter_by_status_tag_and_search(populated: runlab.Workspace, client: Any) -> None:
    def ids(**params: Any) -> list[str]:
        return sorted(r["run_id"] for r in client.get("/api/runs", params={"limit": 500, **params}).json()["runs"])

    assert ids(status="failed") == ["baseline_b", "mnist_run_08"]
    assert ids(status=["Failed", "Canceled"], experiment="mnist") == ["mnist_run_08", "mnist_run_09"]
    assert ids(tag="lr=0.1") == ["mnist_run_00", "mnist_run_03", "mnist_run_06", "mnist_run_09"]
    assert len(ids(tag="team")) == 12
    assert ids(tag=["lr=0.1", "team=core"]) == ["mnist_run_00", "mnist_run_06"]
    assert ids(search="BASELINE") == ["baseline_a", "baseline_b"]
    assert ids(search="#1") == ["mnist_run_01", "mnist_run_10", "mnist_run_11"]  # display names
    assert ids(search="%") == [] and ids(search="_") != []  # LIKE wildcards are matched literally


@pytest.mark.parametrize("params, status, word", [
    ({"sort": "bogus"}, 400, "cannot sort runs by 'bogus'"),
    ({"sort": "metric:"}, 400, "metric:<name>"),
    ({"status": "Exploded"}, 400, "unknown run status"),
    ({"tag": "=x"}, 400, "has no key"),
    ({"experiment": "nope"}, 404, "experiment 'nope' does not exist"),
    ({"parent": "nope"}, 404, "run 'nope' does not exist"),
    ({"limit": 0}, 422, "limit"),
    ({"limit": 100000}, 422, "limit"),
    ({"offset": -1}, 422, "offset"),
    ({"order": "sideways"}, 422, "order"),
    ({"limit": "many"}, 422, "limit"),
])
def test_bad_listing_input_is_a_clear_4xx(populated: runlab.Workspace, client: Any, params: dict[str, Any],
                                         status: int, word: str) -> None:
    assert word in error_of(client.get("/api/runs", params=params), status)["message"]


def test_run_details(populated: runlab.Workspace, client: Any) -> None:
    details = client.get("/api/runs/mnist_run_08").json()
    assert details["status"] == "Failed" and details["error_message"] == "ValueError: loss is NaN"
    assert [(s["status"], s["state"]) for s in details["timeline"]] == [("Running", "done"), ("Failed", "done")]
    assert details["portal_url"].endswith("/runs/mnist_run_08")
    parent = client.get("/api/runs/mnist_run_11").json()
    assert parent["child_count"] == 1 and parent["log_files"] == ["azureml-logs/70_driver_log.txt"]
    assert parent["properties"] == {"runlab.user": "ada", "git.branch": "main"}
    assert error_of(client.get("/api/runs/nope"), 404)["type"] == "RunNotFoundError"


def test_submitted_run_details_show_definition_timeline(ws: runlab.Workspace, client: Any) -> None:
    definition = {"arguments": ["--lr", 0.1], "environment": {"name": "env", "python": {"version": "3.11"}},
                  "inputDatasets": [{"name": "data", "mode": "mount"}], "snapshotId": "0" * 64}
    ws.folder.store.create_run("sub_1", "exp", run_type=RunType.SUBMITTED, status=RunStatus.QUEUED, definition=definition)
    ws.folder.store.set_status("sub_1", RunStatus.PREPARING)
    details = client.get("/api/runs/sub_1").json()
    assert details["arguments"] == ["--lr", 0.1]
    assert details["environment"]["name"] == "env" and details["inputs"] == [{"name": "data", "mode": "mount"}]
    assert [(s["status"], s["state"]) for s in details["timeline"]] == [
        ("Queued", "done"), ("Preparing", "current"), ("Starting", "pending"), ("Running", "pending"),
        ("Finalizing", "pending"), ("Completed", "pending")]
    assert "snapshot" in error_of(client.get("/api/runs/sub_1/snapshot"), 404)["message"]


def test_snapshot_files_list_and_download(ws: runlab.Workspace, client: Any, tmp_path: Any) -> None:
    from runlab.execution.snapshot import SnapshotStore

    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "train.py").write_text("print('hi')\n")
    (source / "pkg" / "util.py").write_text("X = 1\n")
    snap = SnapshotStore(ws.folder.snapshots_dir).take(source)
    ws.folder.store.create_run("sub_2", "exp", run_type=RunType.SUBMITTED, status=RunStatus.QUEUED,
                               definition={"snapshotId": snap.snapshot_id})
    info = client.get("/api/runs/sub_2/snapshot").json()
    assert info["file_count"] == 2 and sorted(f["path"] for f in info["files"]) == ["pkg/util.py", "train.py"]
    response = client.get("/api/runs/sub_2/snapshot/train.py")
    assert response.text == "print('hi')\n" and response.headers["content-type"] == "text/plain; charset=utf-8"
    error_of(client.get("/api/runs/sub_2/snapshot/missing.py"), 404)


def test_compare(populated: runlab.Workspace, client: Any) -> None:
    body = client.get("/api/compare", params={"run": ["mnist_run_00", "mnist_run_01"]}).json()
    assert [r["run_id"] for r in body["runs"]] == ["mnist_run_00", "mnist_run_01"]
    assert {m["name"] for m in body["metrics"]["mnist_run_01"]} == {"loss", "accuracy"}
    assert error_of(client.get("/api/compare"), 400)["message"].startswith("compare needs at least one run")
    partly = client.get("/api/compare", params={"run": ["mnist_run_00", "nope"]}).json()
    assert [r["run_id"] for r in partly["runs"]] == ["mnist_run_00"] and partly["missing"] == ["nope"]
    assert "nope" in error_of(client.get("/api/compare", params={"run": ["nope"]}), 404)["message"]


# -- metrics -------------------------------------------------------------------------------------


def test_series_downsampled_keeps_extremes(ws: runlab.Workspace, client: Any) -> None:
    run = runlab.Experiment(ws, "exp").start_logging()
    values = np.sin(np.linspace(0, 20, 50_000))
    values[31_337] = 50.0  # one spike
    values[7_000] = -60.0
    for v in values.tolist():
        run.log("signal", v)
    run.complete()
    series = client.get(f"/api/runs/{run.id}/metrics/signal", params={"points": 400}).json()
    assert series["downsampled"] and series["count"] == 50_000 and len(series["values"]) <= 400
    assert max(series["values"]) == 50.0 and min(series["values"]) == -60.0
    assert series["steps"][0] == 0 and series["steps"][-1] == 49_999
    assert 31_337 in series["steps"] and series["steps"] == sorted(series["steps"])
    whole = client.get(f"/api/runs/{run.id}/metrics/signal", params={"points": 100_000}).json()
    assert not whole["downsampled"] and len(whole["values"]) == 50_000
    tail = client.get(f"/api/runs/{run.id}/metrics/signal", params={"start": 49_990}).json()
    assert tail["start"] == 49_990 and tail["steps"] == list(range(49_990, 50_000))
    assert client.get(f"/api/runs/{run.id}/metrics/signal", params={"start": 10**9}).json()["steps"] == []
    assert "points" in error_of(client.get(f"/api/runs/{run.id}/metrics/signal", params={"points": 2}), 422)["message"]
    assert error_of(client.get(f"/api/runs/{run.id}/metrics/nope"), 404)["type"] == "NotFoundError"
    assert error_of(client.get("/api/runs/nope/metrics/signal"), 404)["type"] == "RunNotFoundError"


def test_series_start_skips_whole_chunks(ws: runlab.Workspace, client: Any) -> None:
    ws.folder.store.create_run("chunky", "exp", run_type=RunType.INTERACTIVE, status=RunStatus.RUNNING)
    for chunk in range(5):  # five chunks of 10 points
        ws.folder.store.append_metrics("chunky", [MetricBatch("m", "scalar", [None] * 10, [0.0] * 10,
                                                              [float(chunk * 10 + i) for i in range(10)])])
    for start in (0, 9, 10, 11, 35, 49, 50, 70):
        got = client.get("/api/runs/chunky/metrics/m", params={"start": start}).json()
        assert got["values"] == [float(v) for v in range(start, 50)], start
        assert got["start"] == min(start, 50)


def test_values_that_json_cannot_hold_come_as_null_in_series_and_named_in_summaries(ws: runlab.Workspace,
                                                                                   client: Any) -> None:
    run = runlab.Experiment(ws, "exp").start_logging()
    for v in (1.0, math.nan, math.inf, -math.inf, 2.0):
        run.log("x", v)
    run.log("only_nan", math.nan)
    run.log("words", "hello")
    run.log_list("list", [1, 2, 3])
    run.log_row("table", a=1, b="x")
    run.complete()
    series = client.get(f"/api/runs/{run.id}/metrics/x").json()
    assert series["values"] == [1.0, None, None, None, 2.0]
    metrics = {m["name"]: m for m in client.get(f"/api/runs/{run.id}/metrics").json()}
    assert (metrics["x"]["min"], metrics["x"]["max"]) == ("-inf", "inf")  # shown as such, not as no value
    assert metrics["only_nan"]["last"] == "nan"
    assert client.get(f"/api/runs/{run.id}/metrics/words").json()["values"] == ["hello"]
    assert client.get(f"/api/runs/{run.id}/metrics/list").json()["values"] == [[1, 2, 3]]
    assert client.get(f"/api/runs/{run.id}/metrics/table").json()["values"] == [{"a": [1], "b": ["x"]}]
    rows = client.get("/api/runs", params={"metric": ["x", "only_nan", "words"]}).json()["runs"]
    assert rows[0]["metrics"] == {"x": 2.0, "only_nan": "nan", "words": "hello"}


def test_series_of_several_runs(populated: runlab.Workspace, client: Any) -> None:
    body = client.get("/api/series", params={"name": "loss", "run": ["mnist_run_02", "baseline_b", "mnist_run_05"],
                                            "points": 20}).json()
    assert [s["run_id"] for s in body["series"]] == ["mnist_run_02", "mnist_run_05"]
    assert body["missing"] == ["baseline_b"]
    assert all(len(s["values"]) <= 20 and s["downsampled"] for s in body["series"])
    error_of(client.get("/api/series", params={"name": "loss"}), 400)
    error_of(client.get("/api/series", params={"run": "x"}), 422)


def test_metric_names(populated: runlab.Workspace, client: Any) -> None:
    assert client.get("/api/metric-names").json() == ["accuracy", "loss"]
    assert client.get("/api/metric-names", params={"experiment": "baseline"}).json() == ["loss"]
    error_of(client.get("/api/metric-names", params={"experiment": "nope"}), 404)


# -- files and logs ------------------------------------------------------------------------------


def test_files_list_and_download_with_content_types(populated: runlab.Workspace, client: Any) -> None:
    run = runlab.Run(populated.folder, "mnist_run_11")
    run.upload_file("outputs/plot.png", io.BytesIO(b"\x89PNG\r\n\x1a\nfake"))
    run.upload_file("outputs/page.html", io.BytesIO(b"<script>alert(1)</script>"))
    files = {f["name"]: f for f in client.get("/api/runs/mnist_run_11/files").json()}
    assert files["outputs/model.json"]["content_type"] == "application/json"
    assert files["azureml-logs/70_driver_log.txt"]["content_type"] == "text/plain; charset=utf-8"
    assert files["outputs/plot.png"] == {"name": "outputs/plot.png", "size": 12, "content_type": "image/png"}
    assert list(client.get("/api/runs/mnist_run_11/files", params={"prefix": "outputs/"}).json()[0]) == [
        "name", "size", "content_type"]
    png = client.get("/api/runs/mnist_run_11/files/outputs/plot.png")
    assert png.content == b"\x89PNG\r\n\x1a\nfake" and png.headers["content-type"] == "image/png"
    assert png.headers["content-disposition"].startswith("inline")
    download = client.get("/api/runs/mnist_run_11/files/outputs/notes.txt", params={"download": "true"})
    assert download.headers["content-disposition"] == "attachment; filename*=UTF-8''notes.txt"
    page = client.get("/api/runs/mnist_run_11/files/outputs/page.html")
    assert page.headers["content-security-policy"] == "sandbox"  # a run's HTML never scripts the studio
    assert "no file" in error_of(client.get("/api/runs/mnist_run_11/files/outputs/missing.txt"), 404)["message"]
    assert "stay inside the run" in error_of(client.get("/api/runs/mnist_run_11/files/a/..%2F..%2F..%2Fworkspace.json"),
                                             400)["message"]
    error_of(client.get("/api/runs/nope/files"), 404)


def test_log_tail(populated: runlab.Workspace, client: Any) -> None:
    params = {"name": "azureml-logs/70_driver_log.txt", "lines": 3}
    tail = client.get("/api/runs/mnist_run_11/logs/tail", params=params).json()
    assert tail["text"] == "epoch 27: loss 0.036\nepoch 28: loss 0.034\nepoch 29: loss 0.033\n"
    assert tail["end"] == tail["size"] and tail["end"] - tail["start"] == len(tail["text"].encode())
    assert client.get("/api/runs/mnist_run_11/logs").json() == [{"name": "azureml-logs/70_driver_log.txt", "size": tail["size"]}]
    error_of(client.get("/api/runs/mnist_run_11/logs/tail", params={"name": "logs/none.txt"}), 404)
    error_of(client.get("/api/runs/mnist_run_11/logs/tail", params={"name": "/etc/passwd"}), 400)


def test_log_tail_of_a_big_log_drops_the_cut_line(ws: runlab.Workspace, client: Any) -> None:
    from runlab.server.api.logs import tail_bytes

    assert tail_bytes(b"partial\nline 1\nline 2\n", 10, window_start=100) == (b"line 1\nline 2\n", 108)
    assert tail_bytes(b"a\nb\nc", 2, window_start=0) == (b"b\nc", 2)
    assert tail_bytes(b"", 5, window_start=0) == (b"", 0)


def test_log_stream_of_an_ended_run_sends_the_rest_and_ends(populated: runlab.Workspace, client: Any) -> None:
    text = client.get("/api/runs/mnist_run_11/logs/stream",
                      params={"name": "azureml-logs/70_driver_log.txt", "offset": 20}).text
    events = sse_events(text)
    assert [e for e, _ in events] == ["log", "end"]
    with runlab.Run(populated.folder, "mnist_run_11").open_file("azureml-logs/70_driver_log.txt") as log:
        size = len(log.read())
    assert events[0][1]["offset"] == size and events[1][1] == {"offset": size, "status": "Completed"}
    assert events[0][1]["text"].endswith("epoch 29: loss 0.033\n")
    beyond = sse_events(client.get("/api/runs/mnist_run_11/logs/stream",
                                   params={"name": "azureml-logs/70_driver_log.txt", "offset": 10**6}).text)
    assert [e for e, _ in beyond] == ["reset", "log", "end"]  # the file is shorter: start over


def test_run_events_of_an_ended_run(populated: runlab.Workspace, client: Any) -> None:
    response = client.get("/api/runs/mnist_run_11/events")
    assert response.headers["content-type"].startswith("text/event-stream")
    events = dict(sse_events(response.text))
    assert events["status"]["status"] == "Completed" and events["status"]["terminal"] is True
    assert {m["name"]: m["count"] for m in events["metrics"]} == {"loss": 95, "accuracy": 95}
    assert events["logs"] == [{"name": "azureml-logs/70_driver_log.txt", "size": events["logs"][0]["size"]}]
    assert events["end"] == {"status": "Completed"}
    error_of(client.get("/api/runs/nope/events"), 404)


# -- assets, docs, pages, errors -------------------------------------------------------------------


def test_environments_and_compute_targets_as_they_exist(ws: runlab.Workspace, client: Any) -> None:
    from runlab.core.assets import ComputeTargetRecord
    from runlab.execution.environments import EnvironmentDefinition

    store = ws.folder.store
    definition = EnvironmentDefinition(name="train-env", python_version="3.11", pip_requirements=("numpy",))
    store.register_environment("train-env", definition.content_hash(), definition.to_dict())
    store.create_compute_target(ComputeTargetRecord(name="cpu-cluster", kind="amlcompute", max_nodes=2,
                                                    idle_seconds_before_scaledown=60, created_at=0.0))
    store.create_run("q1", "exp", run_type=RunType.SUBMITTED, status=RunStatus.QUEUED, target="cpu-cluster")
    (env,) = client.get("/api/environments").json()
    assert (env["name"], env["version"], env["python"], env["build_status"]) == ("train-env", "1", "3.11", "Not built")
    assert env["build_log"] is None
    assert "not built yet" in error_of(client.get("/api/environments/train-env/1/build-log"), 404)["message"]
    error_of(client.get("/api/environments/nope/1/build-log"), 404)
    (target,) = client.get("/api/compute").json()
    assert target == {"name": "cpu-cluster", "type": "amlcompute", "state": "idle", "max_nodes": 2, "running": 0,
                      "queued": 1}
    store.set_status("q1", RunStatus.RUNNING)
    assert client.get("/api/compute").json()[0]["state"] == "busy"
    assert client.get("/compute").status_code == 200


@pytest.mark.parametrize("path", ["/api/environments", "/api/compute", "/api/datasets", "/api/models"])
def test_assets_are_empty_lists_for_now(ws: runlab.Workspace, client: Any, path: str) -> None:
    assert client.get(path).json() == []  # datastores: workspaceblobstore is always there (test_data_pages.py)


def test_openapi_and_docs(ws: runlab.Workspace, client: Any) -> None:
    schema = client.get("/api/openapi.json").json()
    paths = set(schema["paths"])
    assert {"/api/runs", "/api/runs/{run_id}", "/api/runs/{run_id}/metrics/{name}", "/api/series", "/api/compare",
            "/api/runs/{run_id}/logs/stream", "/api/runs/{run_id}/events", "/api/experiments"} <= paths
    assert not any(p.startswith("/runs") for p in paths)  # pages are not API
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and "/api/openapi.json" in docs.text and "swagger" in docs.text.lower()
    assert client.get("/api/workspace").json()["name"] == "test-ws"
    assert client.get("/api/health").json() == {"status": "ok"}


def test_unknown_api_path_and_method(ws: runlab.Workspace, client: Any) -> None:
    assert "/api/docs" in error_of(client.get("/api/nothing"), 404)["message"]
    assert "not allowed" in error_of(client.post("/api/runs"), 405)["message"]


def test_pages_and_plotly_js(populated: runlab.Workspace, client: Any) -> None:
    for path in ("/experiments", "/runs", "/runs?experiment=mnist", "/runs/mnist_run_11", "/compare", "/environments",
                 "/compute", "/datastores", "/datasets", "/models"):
        response = client.get(path)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html"), path
        assert "test-ws" in response.text
    assert client.get("/", follow_redirects=False).headers["location"] == "/experiments"
    assert client.get("/experiments/mnist", follow_redirects=False).headers["location"] == "/runs?experiment=mnist"
    missing = client.get("/runs/nope")
    assert missing.status_code == 404 and "does not exist" in missing.text and missing.headers["content-type"].startswith("text/html")
    assert client.get("/no/such/page").status_code == 404
    plotly = client.get("/vendor/plotly.min.js")
    assert plotly.status_code == 200 and plotly.headers["content-type"].startswith("text/javascript")
    assert b"plotly" in plotly.content[:2000].lower() and len(plotly.content) > 1_000_000
    assert client.get("/static/studio.css").status_code == 200
    run_page = client.get("/runs/mnist_run_11").text
    assert '"run_id": "mnist_run_11"' in run_page and '<link rel="preload" id="plotly-src" href="/vendor/plotly' in run_page


def test_page_data_cannot_break_out_of_its_script(ws: runlab.Workspace, client: Any) -> None:
    plant_run(ws, "x</script><script>alert(1)</script>")  # the store refuses such an id; an old one may hold it
    text = client.get("/runs/x%3C%2Fscript%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E").text
    assert "<script>alert(1)" not in text
    ws.folder.store.create_run("markup-run", "exp", run_type=RunType.INTERACTIVE, status=RunStatus.COMPLETED,
                               display_name="x</script><script>alert(2)</script>")
    text = client.get("/runs/markup-run").text
    assert "markup-run" in text and "<script>alert(2)" not in text


@pytest.mark.parametrize("error, status", [
    (RunNotFoundError("x"), 404), (ExperimentNotFoundError("x"), 404), (InvalidNameError("x"), 400),
    (UserError("x"), 400), (ConfigError("x"), 500), (WorkspaceExistsError("x"), 409),
    (StoreUnavailableError("x"), 503), (StoreError("x"), 500), (RunlabError("x"), 500),
])
def test_one_table_maps_errors_to_status_codes(error: RunlabError, status: int) -> None:
    assert status_for(error) == status


def test_store_unavailable_is_503_with_retry_after(populated: runlab.Workspace, app: Any, client: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def busy(*_a: Any, **_k: Any) -> Any:
        raise StoreUnavailableError("the store is unavailable while listing runs: database is locked")

    monkeypatch.setattr(app.state.studio.queries, "list_runs", busy)
    response = client.get("/api/runs")
    assert "database is locked" in error_of(response, 503)["message"]
    assert response.headers["retry-after"] == "1"


def test_an_unexpected_error_is_a_json_500(ws: runlab.Workspace, app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient

    def broken(*_a: Any, **_k: Any) -> Any:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(app.state.studio.queries, "experiment_summaries", broken)
    with TestClient(app, raise_server_exceptions=False) as c:
        body = error_of(c.get("/api/experiments"), 500)
    assert body["type"] == "InternalError" and "ZeroDivisionError" in body["message"]
