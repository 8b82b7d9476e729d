"""Crashes, signals and concurrency, with real processes on a real workspace."""

from __future__ import annotations

import os
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import runlab

CHILD = Path(__file__).with_name("logger_child.py")


def child_workspace(ws: runlab.Workspace, tmp_path: Path) -> str:
    """What a child process opens ``ws`` by: its folder, or a config.json naming its server."""
    if getattr(ws._folder, "remote", False):  # type: ignore[attr-defined]
        return str(ws.write_config(tmp_path / "child-config"))
    return str(ws.path)


def _start(ws: runlab.Workspace, mode: str, count: int, tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], Path]:
    counter = tmp_path / f"counter-{mode}"
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), child_workspace(ws, tmp_path), mode, str(count), str(counter)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    return proc, counter


def _logged(counter: Path) -> int:
    data = counter.read_bytes()
    return struct.unpack("<q", data[:8])[0] if len(data) >= 8 else 0


def _wait_logged(counter: Path, at_least: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if counter.exists() and _logged(counter) >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f"child did not log {at_least} points in {timeout} s")


def _stored(ws: runlab.Workspace, run_id: str) -> np.ndarray:
    return ws.get_run(run_id).get_metric_history("x").values


@pytest.mark.slow
def test_sigkill_loses_at_most_the_last_flush_interval(ws: runlab.Workspace, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    proc, counter = _start(ws, "kill", 0, tmp_path, subprocess_env)
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    _wait_logged(counter, 20_000)
    time.sleep(2.5)  # let several flushes happen
    # points logged more than two flush intervals (1 s each) before the kill must be stored
    safe = _logged(counter)
    time.sleep(2.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    values = _stored(ws, run_id)
    assert len(values) >= safe
    assert np.array_equal(values, np.arange(len(values), dtype=np.float64))  # no gap, no duplicate
    run = ws.get_run(run_id)
    assert run.get_status() == "Failed"
    assert "died" in run.get_details()["error"]["message"]


@pytest.mark.slow
def test_sigterm_loses_nothing_and_ends_failed(ws: runlab.Workspace, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    proc, counter = _start(ws, "term", 0, tmp_path, subprocess_env)
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    _wait_logged(counter, 20_000)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM
    logged = _logged(counter)
    values = _stored(ws, run_id)
    # the signal may land between log() and the counter update: one more point is stored then
    assert len(values) in (logged, logged + 1)
    assert np.array_equal(values, np.arange(len(values), dtype=np.float64))
    run = ws.get_run(run_id)
    assert run.get_status() == "Failed"
    assert "SIGTERM" in run.get_details()["error"]["message"]


@pytest.mark.slow
def test_normal_exit_loses_nothing_and_completes(ws: runlab.Workspace, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    proc, _ = _start(ws, "exit", 50_000, tmp_path, subprocess_env)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    run_id = out.split()[0]
    assert len(_stored(ws, run_id)) == 50_000
    assert ws.get_run(run_id).get_status() == "Completed"


@pytest.mark.slow
def test_exception_loses_nothing_and_fails_with_the_error(ws: runlab.Workspace, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    proc, _ = _start(ws, "raise", 30_000, tmp_path, subprocess_env)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "boom in training" in err
    run_id = out.split()[0]
    assert len(_stored(ws, run_id)) == 30_000
    run = ws.get_run(run_id)
    assert run.get_status() == "Failed"
    assert "RuntimeError: boom in training" in run.get_details()["error"]["message"]


@pytest.mark.slow
def test_eight_processes_at_once_lose_nothing_and_see_no_lock_errors(ws: runlab.Workspace, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    procs = [_start(ws, "exit", 100_000, tmp_path / str(i), subprocess_env) for i in range(8) if (tmp_path / str(i)).mkdir() is None]
    results = [p.communicate(timeout=300) for p, _ in procs]
    for (proc, _), (out, err) in zip(procs, results):
        assert proc.returncode == 0, err
        assert "locked" not in err.lower() and "Traceback" not in err
    for out, _err in results:
        run_id = out.split()[0]
        values = _stored(ws, run_id)
        assert len(values) == 100_000
        assert np.array_equal(values, np.arange(100_000, dtype=np.float64))
        assert ws.get_run(run_id).get_status() == "Completed"


@pytest.mark.embedded_only(reason="locks the folder's SQLite file with sqlite3")
def test_locked_store_goes_to_the_journal_and_is_replayed(ws: runlab.Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNLAB_SQLITE_BUSY_TIMEOUT", "0.05")
    fresh = runlab.Workspace.from_path(ws.path)  # a store that reads the short busy timeout
    run = runlab.Experiment(fresh, "journal").start_logging()
    locker = sqlite3.connect(ws.folder.db_path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        for i in range(1000):
            run.log("x", float(i))  # never raises, never blocks on the lock
        assert run.flush(30)
        logger = run._logger
        assert logger.failures >= 1 and logger.points_journaled == 1000
        assert logger._journal.exists()
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    for i in range(1000, 1500):
        run.log("x", float(i))
    assert run.flush(30)
    values = run.get_metric_history("x").values
    assert np.array_equal(values, np.arange(1500, dtype=np.float64))
    assert not run._logger._journal.exists()


def test_orphan_journal_is_replayed_once(ws: runlab.Workspace, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """A journal left by a dead process is written by `runlab sync`; replaying twice adds nothing."""
    from runlab.core.entities import MetricBatch
    from runlab.sdk.sync import replay_orphan_journals
    from runlab.tracking.journal import Journal

    run = runlab.Experiment(ws, "orphan").start_logging()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    path = ws.folder.journal_dir / f"{run.id}@{os.uname().nodename}-{pid}-1.jrnl"
    journal = Journal(path)
    batch = MetricBatch("x", "scalar", [None, None], [1.0, 2.0], [1.0, 2.0])
    journal.append_metrics("batch-1", run.id, [batch])
    copy = path.read_bytes()
    assert replay_orphan_journals(ws.folder) == 2
    path.write_bytes(copy + b"\x05\x00\x00\x00torn")  # same records again, plus a torn tail
    assert replay_orphan_journals(ws.folder) == 2
    assert run.get_metric_history("x").values.tolist() == [1.0, 2.0]
    assert not path.exists()


def test_a_run_presumed_lost_while_its_process_lives_ends_as_it_really_did(ws: runlab.Workspace) -> None:
    """Seen in CI on an overloaded machine: a process's heartbeats could not be written for two minutes,
    another process's reaper marked its run Failed (RunLost), and the run's own Completed was refused."""
    run = runlab.Experiment(ws, "starved").start_logging()
    run.log("x", 1.0)
    store = ws.folder.store
    store.heartbeat(run.id, when=time.time() - 10_000)
    assert run.id in store.reap_stale_runs(120)
    assert run.get_status() == "Failed"
    run.log("x", 2.0)
    run.complete()
    assert run.get_status() == "Completed" and run.get_details().get("error") is None
    assert run.get_metrics()["x"] == [1.0, 2.0]


@pytest.mark.embedded_only(reason="the embedded store's reader replays a dead process's journal before presuming its run lost; over a server the journal stays on the client's machine until `runlab sync` (or the next run there) sends it")
def test_an_end_left_in_a_journal_is_written_before_the_run_is_presumed_lost(ws: runlab.Workspace) -> None:
    """Seen with 16 processes on a 10 ms busy timeout: a process whose final status could not be written
    (its metrics were journaled, so its end went behind them) exits with its journal left; the next reader
    found the owner dead and marked the run lost. The reaper replays such journals first."""
    from runlab.tracking.journal import STATUS, Journal, Record

    run = runlab.Experiment(ws, "journaled-end").start_logging()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path = ws.folder.journal_dir / f"{run.id}@{os.uname().nodename}-{int(dead.stdout)}-1.jrnl"
    Journal(path).append_change(Record(STATUS, run.id, "end-1", status={"status": "Completed", "error": None,
                                                                         "when": time.time()}))
    run._logger_obj.close() if run._logger_obj is not None else None
    ws.folder.store.heartbeat(run.id, when=time.time() - 10_000)
    ws.folder.store.reap_stale_runs(120)
    assert run.get_status() == "Completed" and run.get_details().get("error") is None and not path.exists()
    runlab.tracking.lifecycle.forget_owned(run)
