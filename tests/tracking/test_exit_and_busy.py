"""A busy store never reaches a training script, and a script's exit code decides how its run ends.

Real child processes on a real workspace: one holds SQLite's write lock (``BEGIN IMMEDIATE``)
while another starts a run, tags it and logs; scripts end with ``sys.exit``, ``raise
SystemExit``, an exception or nothing, as ``python script.py`` runs them.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import runlab
from runlab.core.errors import PropertyConflictError, StoreError, StoreUnavailableError

# Holds the workspace database's write lock from "locked" until a line arrives on stdin.
LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""

# Opens the store while it is free, then starts a run while the store is locked (first line on
# stdin), then tags it, adds properties and logs while it is locked again (second line).
TRAINER = """
import sys, runlab
ws = runlab.Workspace.from_path(sys.argv[1])
experiment = runlab.Experiment(ws, "busy")
print("ready", flush=True)
sys.stdin.readline()
run = experiment.start_logging()
print(run.id, flush=True)
sys.stdin.readline()
for i in range(1000):
    run.log("x", float(i))
run.tag("stage", "dev")
run.set_tags({"a": "1", "b": "2"})
run.remove_tags("b")
run.add_properties({"lr": "0.01"})
for i in range(1000, 2000):
    run.log("x", float(i))
"""

BUSY_TIMEOUT_S = 1.0  # each SQLite write waits this long for the lock (default 5 s)
HOLD_S = 4 * BUSY_TIMEOUT_S  # how long the locker holds the lock: several busy timeouts


def _script(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def _popen(script: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(script), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _expect_line(proc: subprocess.Popen[str], what: str) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line or (what and line != what):
        proc.kill()
        _, err = proc.communicate(timeout=60)
        raise AssertionError(f"expected {what or 'a line'!r} from the child, got {line!r}; stderr:\n{err}")
    return line


def _send(proc: subprocess.Popen[str], text: str = "\n") -> None:
    assert proc.stdin is not None
    proc.stdin.write(text)
    proc.stdin.flush()


def _hold_lock(db: Path, trainer: subprocess.Popen[str], locker_script: Path, env: dict[str, str]) -> None:
    """Lock the store, let the trainer go on while it is locked, release after HOLD_S."""
    locker = _popen(locker_script, str(db), env=env)
    try:
        _expect_line(locker, "locked")
        _send(trainer)
        time.sleep(HOLD_S)
    finally:
        _send(locker)
        locker.communicate(timeout=60)
    assert locker.returncode == 0


@pytest.mark.slow
@pytest.mark.embedded_only(reason="holds the lock of the folder's SQLite file from another process")
def test_a_store_locked_longer_than_the_busy_timeout_never_reaches_the_script(
    ws: runlab.Workspace, tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    env = {**subprocess_env, "RUNLAB_SQLITE_BUSY_TIMEOUT": str(BUSY_TIMEOUT_S)}
    locker_script = _script(tmp_path, "locker.py", LOCKER)
    trainer = _popen(_script(tmp_path, "train.py", TRAINER), str(ws.path), env=env)
    _expect_line(trainer, "ready")
    _hold_lock(ws.folder.db_path, trainer, locker_script, env)  # start_logging() while locked
    run_id = _expect_line(trainer, "")
    _hold_lock(ws.folder.db_path, trainer, locker_script, env)  # tags, properties, log() while locked
    _, err = trainer.communicate(timeout=300)
    assert trainer.returncode == 0, err
    assert "Traceback" not in err and "StoreUnavailableError" not in err
    run = ws.get_run(run_id)
    assert run.get_status() == "Completed"
    assert run.get_tags() == {"stage": "dev", "a": "1"}
    assert run.get_properties()["lr"] == "0.01"
    assert np.array_equal(run.get_metric_history("x").values, np.arange(2000, dtype=np.float64))


MANY = """
import os, sys, time, runlab
ws = runlab.Workspace.from_config(sys.argv[1])  # a folder's or a server's config.json
ws.folder.store  # load SQLAlchemy and open the database before the start line
while not os.path.exists(sys.argv[2]):
    time.sleep(0.005)
run = runlab.Experiment(ws, "many").start_logging()
for i in range(10):
    run.tag(f"t{i}", str(i))
run.add_properties({"child": sys.argv[3]})
run.log("x", 1.0)
print(run.id, flush=True)
"""


@pytest.mark.slow
def test_sixteen_processes_starting_runs_at_once_all_start_tag_and_complete(
    ws: runlab.Workspace, tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    # A 10 ms busy timeout makes every collision of two writers a "database is locked": with
    # the old 5 s only some trials saw one. Each child creates the experiment (the first does),
    # a run, ten tags, a property and the final status, all at the same moment.
    env = {**subprocess_env, "RUNLAB_SQLITE_BUSY_TIMEOUT": "0.01"}
    script = _script(tmp_path, "many.py", MANY)
    go = tmp_path / "go"
    config = str(ws.write_config(tmp_path / "project"))
    procs = [_popen(script, config, str(go), str(i), env=env) for i in range(16)]
    time.sleep(1.0)  # most children are at the start line by now; the others join late, which is fine
    go.touch()
    results = [p.communicate(timeout=300) for p in procs]
    run_ids = {}
    for i, (proc, (out, err)) in enumerate(zip(procs, results)):
        assert proc.returncode == 0, f"child {i}:\n{err}"
        assert "Traceback" not in err, f"child {i}:\n{err}"
        run_ids[i] = out.split()[0]
    for i, run_id in run_ids.items():
        run = ws.get_run(run_id)
        assert run.get_status() == "Completed", (i, run.get_details().get("error"), results[i][1][-3000:])
        assert run.get_tags() == {f"t{k}": str(k) for k in range(10)}
        assert run.get_properties()["child"] == str(i)


def test_a_permanent_store_error_is_raised_at_once(ws: runlab.Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from runlab.tracking import retry

    waits: list[float] = []
    monkeypatch.setattr(retry, "_sleep", waits.append)
    monkeypatch.setenv("RUNLAB_STORE_RETRY_TIMEOUT", "3600")
    run = runlab.Experiment(ws, "permanent").start_logging()
    with pytest.raises(StoreError) as taken:
        run.child_run(run_id=run.id)  # that id is taken: no retry can make this work
    assert taken.value.temporary is False and not isinstance(taken.value, StoreUnavailableError)
    run.add_properties({"lr": "0.1"})
    with pytest.raises(PropertyConflictError):
        run.add_properties({"lr": "0.2"})
    assert waits == []  # neither was retried
    run.complete()
    assert run.get_status() == "Completed"


@pytest.mark.embedded_only(reason="locks the folder's SQLite file with sqlite3 to make the store busy")
def test_a_store_busy_beyond_the_retry_budget_journals_the_change(ws: runlab.Workspace,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import sqlite3

    from runlab.tracking import retry

    waits: list[float] = []
    monkeypatch.setattr(retry, "_sleep", waits.append)
    monkeypatch.setenv("RUNLAB_SQLITE_BUSY_TIMEOUT", "0.02")
    monkeypatch.setenv("RUNLAB_STORE_RETRY_TIMEOUT", "0.3")
    fresh = runlab.Workspace.from_path(ws.path)  # a store that reads the short busy timeout
    run = runlab.Experiment(fresh, "budget").start_logging()
    locker = sqlite3.connect(ws.folder.db_path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        with caplog.at_level(logging.WARNING, logger="runlab"):
            run.tag("stage", "dev")  # does not raise: kept in the journal behind the metrics
            run.add_properties({"lr": 0.1})
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert waits and all(w >= 0 for w in waits)  # it backed off and retried before journaling
    assert "RUNLAB_STORE_RETRY_TIMEOUT" in caplog.text and "kept in" in caplog.text
    assert fresh.folder.store.get_run(run.id).tags == {}
    run.tag("stage", "prod")  # behind the journaled one, so that the last tag wins
    assert run.get_tags() == {"stage": "prod"}  # the store is free again: the journaled changes are written
    assert run.get_properties()["lr"] == "0.1"
    run.complete()
    assert fresh.get_run(run.id).get_status() == "Completed"


# -- exit codes --------------------------------------------------------------------------------

EXIT_SCRIPT = """
import sys, runlab
ws = runlab.Workspace.from_config(sys.argv[1])  # a folder's or a server's config.json
run = runlab.Experiment(ws, "exits").start_logging()
print(run.id, flush=True)
run.log("x", 1.0)
"""

SYSTEM_EXIT_SEEN_EVERYWHERE = pytest.mark.skipif(
    sys.version_info < (3, 12),
    reason="a bare `raise SystemExit(n)` is seen through sys.monitoring, Python 3.12+ (sys.exit everywhere)",
)

EXITS: list[Any] = [
    pytest.param("sys.exit(3)", 3, "the script exited with code 3", id="sys.exit(3)"),
    pytest.param("raise SystemExit(2)", 2, "the script exited with code 2", id="raise-SystemExit(2)",
                 marks=SYSTEM_EXIT_SEEN_EVERYWHERE),
    pytest.param("sys.exit('boom')", 1, "the script exited with code 1: boom", id="sys.exit(message)"),
    pytest.param("def main():\n    sys.exit(4)\nmain()", 4, "the script exited with code 4", id="sys.exit-in-a-function"),
    pytest.param("try:\n    sys.exit(7)\nfinally:\n    pass", 7, "the script exited with code 7", id="sys.exit-through-finally"),
    pytest.param("with run:\n    sys.exit(6)", 6, "the script exited with code 6", id="sys.exit-in-with-run"),
    pytest.param("with run:\n    raise SystemExit(5)", 5, "the script exited with code 5", id="SystemExit-in-with-run"),
    pytest.param("sys.exit(0)", 0, None, id="sys.exit(0)"),
    pytest.param("sys.exit()", 0, None, id="sys.exit()"),
    pytest.param("pass", 0, None, id="normal-end"),
    pytest.param("with run:\n    sys.exit(0)", 0, None, id="sys.exit(0)-in-with-run"),
    pytest.param("def main():\n    sys.exit(3)\ntry:\n    main()\nexcept SystemExit:\n    pass", 0, None,
                 id="sys.exit-caught-by-the-script"),
]


@pytest.mark.parametrize("ending, exit_code, message", EXITS)
def test_the_exit_code_decides_how_an_owned_run_ends(ws: runlab.Workspace, tmp_path: Path,
                                                      subprocess_env: dict[str, str], ending: str,
                                                      exit_code: int, message: str | None) -> None:
    script = _script(tmp_path, "train.py", EXIT_SCRIPT + ending + "\n")
    done = subprocess.run([sys.executable, str(script), str(ws.write_config(tmp_path / "project"))],
                          capture_output=True, text=True,
                          env=subprocess_env, timeout=120)
    assert done.returncode == exit_code, done.stderr
    assert "Traceback" not in done.stderr
    run = ws.get_run(done.stdout.split()[0])
    details = run.get_details()
    assert run.get_metrics() == {"x": 1.0}
    if message is None:
        assert run.get_status() == "Completed", details.get("error")
        assert "error" not in details
    else:
        assert run.get_status() == "Failed"
        assert details["error"]["message"] == message
        assert details["error"]["code"] == "ExitCode" and details["error"]["exit_code"] == exit_code


def test_an_uncaught_exception_still_fails_the_run_with_its_traceback(ws: runlab.Workspace, tmp_path: Path,
                                                                      subprocess_env: dict[str, str]) -> None:
    script = _script(tmp_path, "train.py", EXIT_SCRIPT + "raise RuntimeError('boom in training')\n")
    done = subprocess.run([sys.executable, str(script), str(ws.write_config(tmp_path / "project"))],
                          capture_output=True, text=True,
                          env=subprocess_env, timeout=120)
    assert done.returncode == 1 and "RuntimeError: boom in training" in done.stderr
    run = ws.get_run(done.stdout.split()[0])
    error = run.get_details()["error"]
    assert run.get_status() == "Failed"
    assert error["message"] == "RuntimeError: boom in training" and error["code"] == "RuntimeError"
    assert "Traceback (most recent call last)" in error["traceback"]


def test_an_offline_run_ends_failed_when_its_script_exits_non_zero(tmp_path: Path, subprocess_env: dict[str, str],
                                                                    runlab_home: Path) -> None:
    script = _script(tmp_path, "offline.py", """
        import sys, runlab
        run = runlab.Run.get_context()
        run.log("x", 1.0)
        print(run.id, flush=True)
        sys.exit(3)
    """)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=subprocess_env,
                          timeout=120)
    assert done.returncode == 3, done.stderr
    offline = runlab.Workspace.from_path(runlab_home / "offline")
    run = offline.get_run(done.stdout.split()[0])
    assert run.get_status() == "Failed"
    assert run.get_details()["error"]["message"] == "the script exited with code 3"
