"""Hostile ids and names never become paths outside the workspace (issue 13, item 8).

Every id that reaches a path passes one rule (``runlab.core.names``); the run-file store refuses
unchecked ids, names that escape the run, and links out of a run's folder. Each attack is tried
through the public API (child_run, get_run, Run(...), Run.get_context, Workspace, the CLI) and
through the store a studio or an agent uses.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import runlab
import runlab.core.names as names
from runlab.cli.main import cli
from runlab.core.errors import (
    FileNotFoundInRunError,
    InvalidNameError,
    RunlabError,
    RunNotFoundError,
    StoreError,
)
from runlab.store.artifacts import LocalArtifactStore
from runlab.tracking.run import new_run_id
from tests_support import plant_run, run_context_env

VALID_IDS = [
    "exp_1700000000_abcd1234",  # what new_run_id makes (and Azure ML v1)
    "exp_1700000000_abcd1234_0",  # Azure's child ids: <parent>_<n>
    "exp_1700000000_abcd1234_1a2b3c4d",  # runlab's child ids: <parent>_<8 hex>
    "HD_0c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f",
    "AutoML_ab.12",
    "_private",
    "7",
    "x" * 255,
]

HOSTILE_IDS = [
    "../../../../etc",
    "..",
    ".",
    "../x",
    "a/../../b",
    "/etc",
    "/tmp/runlab-absolute-run",
    "a/b",
    "a\\b",
    "..\\..\\x",
    "a\x00b",
    "\x00",
    "",
    " ",
    "run\n",  # a trailing newline passes a '^...$' pattern checked with match()
    "run\r",
    "x" * 256,
    "x" * 10_000,
    "\ud800",  # a lone surrogate: no file system can name it
    "run-\udcff",
    "é",
    "..%2F..%2Fetc",
    "%2e%2e",
    ".hidden",
    "-rf",
    "a b",
    "a:b",
    "~root",
    "$HOME",
]
NOT_STR = [None, 5, b"abc", Path("abc"), ["abc"]]


def short(value: object) -> str:
    """A test id: the repr, cut (a 10,000-character id makes an unreadable report)."""
    text = repr(value)
    return text if len(text) <= 30 else f"{text[:24]}...{len(text)}"


def outside_tree(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    return outside


def relative_to_runs(ws: runlab.Workspace, target: Path) -> str:
    """An id that, joined to <workspace>/files/runs, names ``target``."""
    return os.path.relpath(target, ws.path / "files" / "runs")


def tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


# -- the rule ------------------------------------------------------------------------------------


@pytest.mark.parametrize("run_id", VALID_IDS, ids=short)
def test_the_rule_takes_azure_and_runlab_ids(run_id: str) -> None:
    assert names.check_run_id(run_id) == run_id


@pytest.mark.parametrize("run_id", HOSTILE_IDS + NOT_STR, ids=short)
def test_the_rule_refuses_what_is_not_one_path_component(run_id: object) -> None:
    with pytest.raises(InvalidNameError) as caught:
        names.check_run_id(run_id)
    message = caught.value.message
    assert "run id" in message
    assert "letters, digits" in message and "255" in message  # what an id looks like
    assert "exp_1700000000_abcd1234" in message or "_1700000000_" in message  # an example
    assert len(message) < 600  # a 10,000-character id is not repeated whole


def test_the_message_says_what_is_wrong() -> None:
    def message(value: object) -> str:
        with pytest.raises(InvalidNameError) as caught:
            names.check_run_id(value)
        return caught.value.message

    assert "'/'" in message("a/b")
    assert "\\x00" in message("a\x00b")
    assert "empty" in message("")
    assert "10,000 characters" in message("x" * 10_000)
    assert "starts with '.'" in message(".hidden")
    assert "int" in message(5)


def test_generated_ids_follow_the_rule(ws: runlab.Workspace) -> None:
    long_name = "e" * 255  # the longest experiment name
    assert names.check_run_id(new_run_id(long_name))
    run = runlab.Experiment(ws, long_name).start_logging()
    assert len(run.id) <= 255 and run.id.startswith("e" * 200)
    run.upload_file("outputs/a.txt", io.BytesIO(b"a"))  # its folder can be created
    child = run
    for _ in range(40):  # children of children keep within the rule
        child = child.child_run()
    assert len(child.id) <= 255
    child.upload_file("outputs/b.txt", io.BytesIO(b"b"))
    assert child.get_file_names() == ["outputs/b.txt"]
    assert run.get_file_names() == ["outputs/a.txt"]
    run.complete()


def test_every_name_rule_builds_on_the_id_rule() -> None:
    for check in (names.check_workspace_name, names.check_experiment_name, names.check_environment_name):
        for value in ("abc\n", "..", "a/b", "a\x00b", "é" * 4, "x" * 50_000, None):
            with pytest.raises(InvalidNameError):
                check(value)


# -- ids given to the SDK --------------------------------------------------------------------------


@pytest.mark.parametrize("run_id", HOSTILE_IDS, ids=short)
def test_child_run_refuses_a_hostile_id(ws: runlab.Workspace, run_id: str) -> None:
    parent = runlab.Experiment(ws, "exp").start_logging()
    with pytest.raises(InvalidNameError, match="run id"):
        parent.child_run(run_id=run_id)
    assert parent.get_children() == []
    parent.complete()


def test_child_run_cannot_list_or_read_outside_the_workspace(ws: runlab.Workspace, tmp_path: Path) -> None:
    outside = outside_tree(tmp_path)
    parent = runlab.Experiment(ws, "exp").start_logging()
    escape = relative_to_runs(ws, outside)  # '../../../outside': the '../../../../etc'
    with pytest.raises(InvalidNameError):
        child = parent.child_run(run_id=escape)
        child.get_file_names()  # (today: ['passwd'])
    with pytest.raises(RunNotFoundError):
        ws.folder.store.get_run(escape)  # nothing was recorded
    parent.complete()


def test_an_absolute_run_id_writes_nothing_outside(ws: runlab.Workspace, tmp_path: Path) -> None:
    target = tmp_path / "absolute-run"
    parent = runlab.Experiment(ws, "exp").start_logging()
    with pytest.raises(InvalidNameError):
        child = parent.child_run(run_id=str(target))
        child.upload_file("outputs/model.pt", io.BytesIO(b"weights"))
        child.log("loss", 1.0)
        child.complete()
    assert not target.exists()
    assert not list(tmp_path.glob("absolute-run*"))  # no journal next to it either
    parent.complete()


@pytest.mark.parametrize("run_id", ["../../../../etc", "..", ".", "/etc", "a/b", "a\x00b", "", "x" * 10_000,
                                    "\ud800", "..%2F.."], ids=short)
def test_get_run_and_run_refuse_a_hostile_id(ws: runlab.Workspace, run_id: str) -> None:
    with pytest.raises(InvalidNameError, match="run id"):
        ws.get_run(run_id)
    with pytest.raises(InvalidNameError, match="run id"):
        runlab.Run(runlab.Experiment(ws, "exp"), run_id)
    with pytest.raises(InvalidNameError, match="run id"):
        runlab.Run(ws.folder, run_id)


@pytest.mark.parametrize("run_id", ["..", ".", "../../../outside", "a/b"])
@pytest.mark.embedded_only(reason="plants the run with SQL in the folder's SQLite file; over a server: "
                            "tests/server/test_hostile_paths.py's hostile run id already in the database")
def test_a_hostile_id_already_in_the_database_is_not_followed(ws: runlab.Workspace, tmp_path: Path,
                                                             run_id: str) -> None:
    """A workspace written by an older runlab (or by hand) may hold such a run: it stays unreachable."""
    outside_tree(tmp_path)
    plant_run(ws, run_id)
    runlab.Experiment(ws, "exp").start_logging().upload_file("outputs/secret.txt", io.BytesIO(b"secret"))
    with pytest.raises(InvalidNameError):
        ws.get_run(run_id)
    artifacts = ws.folder.artifacts
    for read in (lambda: artifacts.list(run_id), lambda: artifacts.open(run_id, "passwd"),
                 lambda: artifacts.size(run_id, "passwd"), lambda: artifacts.put_bytes(run_id, "x.txt", b"x"),
                 lambda: artifacts.local_path(run_id, "azureml-logs/70_driver_log.txt")):
        with pytest.raises(InvalidNameError):
            read()
    assert not (tmp_path / "outside" / "x.txt").exists()


@pytest.mark.parametrize("run_id", ["../../../../etc", "..", "/etc", "a/b", "x" * 10_000, "run\n"], ids=short)
def test_get_context_refuses_a_hostile_run_id_in_the_environment(ws: runlab.Workspace, monkeypatch: pytest.MonkeyPatch,
                                                                 run_id: str) -> None:
    for key, value in run_context_env(ws).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RUNLAB_RUN_ID", run_id)
    with pytest.raises(InvalidNameError, match="run id"):
        runlab.Run.get_context()


def test_an_offline_run_of_a_script_with_a_unicode_name_gets_a_valid_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/somewhere/entraînement.py"])
    run = runlab.Run.get_context()
    assert names.check_run_id(run.id) == run.id
    run.log("loss", 0.5)
    run.complete()


# -- the run-file store --------------------------------------------------------------------------------


@pytest.mark.parametrize("run_id", HOSTILE_IDS + NOT_STR, ids=short)
def test_the_run_file_store_takes_only_checked_ids(tmp_path: Path, run_id: object) -> None:
    root = tmp_path / "ws" / "files" / "runs"
    root.mkdir(parents=True)
    store = LocalArtifactStore(root)
    calls = [lambda: store.put_bytes(run_id, "a.txt", b"x"), lambda: store.list(run_id),  # type: ignore[arg-type]
             lambda: store.open(run_id, "a.txt"), lambda: store.size(run_id, "a.txt"),  # type: ignore[arg-type]
             lambda: store.append_bytes(run_id, "a.txt", b"x"),  # type: ignore[arg-type]
             lambda: store.local_path(run_id, "a.txt")]  # type: ignore[arg-type]
    for call in calls:
        with pytest.raises(InvalidNameError):
            call()
    assert tree(tmp_path) == {"ws", "ws/files", "ws/files/runs"}


BAD_FILE_NAMES = [
    ("../../escape.txt", "inside the run"),
    ("/abs/escape.txt", "inside the run"),
    ("outputs/../../escape.txt", "inside the run"),
    ("..\\..\\escape.txt", "inside the run"),
    ("outputs/a\x00b.txt", "NUL"),
    ("outputs/" + "n" * 300 + ".txt", "255"),
    ("outputs/" + "é" * 130, "255"),  # 260 bytes in UTF-8
    ("outputs/\ud800.txt", "cannot be encoded"),
    ("", "non-empty"),
    (".", "non-empty"),
    ("./", "non-empty"),
]


@pytest.mark.parametrize(("name", "why"), BAD_FILE_NAMES, ids=short)
def test_bad_run_file_names_give_runlabs_error(ws: runlab.Workspace, tmp_path: Path, name: str, why: str) -> None:
    run = runlab.Experiment(ws, "exp").start_logging()
    for call in (lambda: run.upload_file(name, io.BytesIO(b"x")), lambda: run.open_file(name).close(),
                 lambda: run.download_file(name, tmp_path / "dl.txt")):
        with pytest.raises(InvalidNameError, match=why):
            call()
    assert not list(tmp_path.rglob("escape.txt"))
    run.complete()


def test_opening_a_run_file_that_is_not_there_fails_at_once(ws: runlab.Workspace) -> None:
    """At open_file, not at the first read (a server's file is asked for at open too); a seek before
    reading still starts the read there."""
    run = runlab.Experiment(ws, "exp").start_logging()
    with pytest.raises(FileNotFoundInRunError, match="outputs/missing.txt"):
        run.open_file("outputs/missing.txt")
    run.upload_file("outputs/there.txt", io.BytesIO(b"0123456789"))
    with run.open_file("outputs/there.txt") as f:
        f.seek(4)
        assert f.read() == b"456789"
    run.complete()


def test_a_path_too_long_for_the_file_system_gives_runlabs_error(ws: runlab.Workspace) -> None:
    run = runlab.Experiment(ws, "exp").start_logging()
    deep = "/".join(["d" * 250] * 20) + "/f.txt"  # each part fits, the whole is over PATH_MAX
    with pytest.raises(InvalidNameError, match="too long"):
        run.upload_file(deep, io.BytesIO(b"x"))
    with pytest.raises(InvalidNameError, match="too long"):
        run.open_file(deep).close()
    run.complete()


@pytest.mark.embedded_only(reason="plants links in the folder's files/runs/; a server's run folders under "
                            "links: tests/server/test_hostile_paths.py")
def test_a_run_folder_linked_outside_is_not_followed(ws: runlab.Workspace, tmp_path: Path) -> None:
    outside = outside_tree(tmp_path)
    run = runlab.Experiment(ws, "exp").start_logging()
    (ws.path / "files" / "runs" / run.id).symlink_to(outside, target_is_directory=True)
    assert run.get_file_names() == []
    with pytest.raises(FileNotFoundInRunError, match="outside"):
        run.open_file("passwd").close()
    with pytest.raises(StoreError, match="outside"):
        run.upload_file("outputs/x.txt", io.BytesIO(b"x"))
    assert tree(outside) == {"passwd"}
    run.complete()


@pytest.mark.embedded_only(reason="plants links in the folder's files/runs/; a server's run folders under "
                            "links: tests/server/test_hostile_paths.py")
def test_a_link_inside_a_run_folder_that_leads_out_is_not_followed(ws: runlab.Workspace, tmp_path: Path) -> None:
    outside = outside_tree(tmp_path)
    run = runlab.Experiment(ws, "exp").start_logging()
    run.upload_file("outputs/ok.txt", io.BytesIO(b"ok"))
    run_dir = ws.path / "files" / "runs" / run.id
    (run_dir / "outputs" / "passwd").symlink_to(outside / "passwd")
    (run_dir / "etc").symlink_to(outside, target_is_directory=True)
    assert run.get_file_names() == ["outputs/ok.txt"]
    for name in ("outputs/passwd", "etc/passwd"):
        with pytest.raises(FileNotFoundInRunError, match="outside"):
            run.open_file(name).close()
    with pytest.raises(StoreError, match="outside"):
        run.upload_file("etc/planted.txt", io.BytesIO(b"x"))
    assert tree(outside) == {"passwd"}
    run.complete()


@pytest.mark.embedded_only(reason="plants links in the folder's files/runs/; a server's run folders under "
                            "links: tests/server/test_hostile_paths.py")
def test_a_link_to_another_run_is_not_followed_either(ws: runlab.Workspace) -> None:
    experiment = runlab.Experiment(ws, "exp")
    first, second = experiment.start_logging(), experiment.start_logging()
    first.upload_file("outputs/mine.txt", io.BytesIO(b"mine"))
    (ws.path / "files" / "runs" / second.id).symlink_to(ws.path / "files" / "runs" / first.id)
    with pytest.raises(FileNotFoundInRunError):
        second.open_file("outputs/mine.txt").close()
    first.complete()
    second.complete()


# -- workspace names ------------------------------------------------------------------------------


HUGE = "w" * (50 * 1024 * 1024)


@pytest.mark.parametrize("name", [HUGE, "../../etc", "/etc", "my-ws\n", "a\x00bc", "\ud800bc", "é-ws"],
                         ids=short)
def test_workspace_names_are_refused_by_the_name_rule(tmp_path: Path, name: str) -> None:
    for call in (lambda: runlab.Workspace.get(name), lambda: runlab.Workspace(workspace_name=name),
                 lambda: runlab.Workspace.create(name), lambda: runlab.Workspace.create(name, path=tmp_path / "w")):
        with pytest.raises(InvalidNameError, match="workspace name") as caught:
            call()
        assert len(caught.value.message) < 600
    assert not (tmp_path / "w").exists()


def test_a_huge_workspace_name_in_config_json_is_refused(tmp_path: Path) -> None:
    config = tmp_path / ".azureml" / "config.json"
    config.parent.mkdir()
    config.write_text('{"workspace_name": "%s"}' % ("w" * 1_000_000))
    with pytest.raises(InvalidNameError, match="workspace name"):
        runlab.Workspace.from_config(tmp_path)


def test_a_huge_workspace_folder_path_gives_runlabs_error() -> None:
    with pytest.raises(RunlabError):
        runlab.Workspace.from_path("/tmp/" + "p" * 100_000)


# -- the command line ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["logs"], ["cancel"], ["runs", "show"]])
@pytest.mark.parametrize("run_id", ["../../../../etc", "/etc", "x" * 10_000], ids=short)
def test_cli_refuses_a_hostile_run_id_in_one_line(ws: runlab.Workspace, command: list[str], run_id: str,
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws.write_config(tmp_path / "project")  # the workspace of the current folder: a folder or a server
    monkeypatch.chdir(tmp_path / "project")
    result = CliRunner().invoke(cli, [*command, run_id])
    assert result.exit_code == 1
    assert "invalid run id" in result.output
    assert "Traceback" not in result.output


def test_cli_refuses_a_huge_workspace_name(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["runs", "list", "-w", "w" * 1_000_000])
    assert result.exit_code == 1
    assert "invalid workspace name" in result.output and "OSError" not in result.output
