"""Attacks on "nothing lost": a full disk, torn journal records, unstorable values, a store locked
while the logger is SIGKILLed, a workspace folder deleted under a run, a flush racing the flusher's
exit. Real processes, real SQLite, real signals, a real full filesystem (tmpfs, when mounting is
allowed)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

import runlab
from runlab.core.entities import MetricBatch
from runlab.core.errors import InvalidNameError, InvalidValueError, StoreUnavailableError
from runlab.sdk.sync import replay_orphan_journals
from runlab.tracking.delivery import REJECTED_DIR, Delivery
from runlab.tracking.journal import MAGIC, STATUS, Journal, Record, Scan
from runlab.tracking.logger import MetricLogger

HERE = Path(__file__).parent
CHILD = HERE / "logger_child.py"


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs, mounted for the test and unmounted after it."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): the full-disk tests need root")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill ``disk`` until ENOSPC, then give back ``leave`` bytes. Returns the filler file."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (1 << 20, 4096, 1):  # big blocks, then what is left of the last one
            try:
                while f.write(b"\0" * size):
                    pass
            except OSError:
                pass
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def batch(values: list[float], name: str = "x") -> MetricBatch:
    return MetricBatch(name, "scalar", [None] * len(values), [1.0] * len(values), values)


def end_record(run_id: str) -> Record:
    return Record(STATUS, run_id, f"end-{run_id}", status={"status": "Completed", "error": None, "when": time.time()})


def points(journal: Journal) -> list[float]:
    return [v for r in journal.records() for b in r.batches for v in b.values]


def _logged(counter: Path) -> int:
    data = counter.read_bytes() if counter.exists() else b""
    return struct.unpack("<q", data[:8])[0] if len(data) >= 8 else 0


def _wait_logged(counter: Path, at_least: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _logged(counter) >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f"child did not log {at_least} points in {timeout} s")


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; each is killed by its pid at the end, whatever happened."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=30)


def start_child(procs: list[subprocess.Popen[str]], ws_path: Path, tmp_path: Path, env: dict[str, str],
                mode: str = "kill") -> tuple[subprocess.Popen[str], Path, str]:
    counter = tmp_path / f"counter-{len(procs)}"
    proc = subprocess.Popen([sys.executable, str(CHILD), str(ws_path), mode, "0", str(counter)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    procs.append(proc)
    assert proc.stdout is not None
    return proc, counter, proc.stdout.readline().strip()


LOCKER = """
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def hold_write_lock(procs: list[subprocess.Popen[str]], db: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process that holds SQLite's write lock on ``db`` (until it is killed)."""
    proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    procs.append(proc)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


# -- 1. torn journal records ---------------------------------------------------------------


def test_a_failed_append_on_a_full_disk_is_truncated_away(small_disk: Path) -> None:
    journal = Journal(small_disk / "j" / "run@h-1-1.jrnl")
    journal.append_metrics("first", "run", [batch([0.0, 1.0])])
    whole = journal.size()
    filler = fill(small_disk, leave=64 << 10)  # room for part of the next record only
    with pytest.raises(OSError):
        journal.append_metrics("big", "run", [batch([float(i) for i in range(200_000)])])
    assert journal.size() == whole, "the torn part of the failed record stayed in the journal"
    filler.unlink()
    journal.append_metrics("third", "run", [batch([2.0, 3.0])])
    scan = Scan()
    records = list(journal.records(scan=scan))
    assert [r.batch_id for r in records] == ["first", "third"]
    assert points(journal) == [0.0, 1.0, 2.0, 3.0]
    assert scan.skipped_bytes == 0


def test_replay_skips_torn_regions_and_keeps_every_whole_record(ws: runlab.Workspace, caplog: pytest.LogCaptureFixture) -> None:
    run = runlab.Experiment(ws, "torn").start_logging()
    run.flush()
    path = ws.folder.journal_dir / "dead.jrnl"
    journal = Journal(path)
    journal.append_metrics("b1", run.id, [batch([0.0, 1.0])])
    # a record cut short (its process died mid-write) ...
    with open(path, "ab") as f:
        f.write(MAGIC + b"\x10\x00\x00\x00\xff\xff" + b"garbage")
    journal.append_metrics("b2", run.id, [batch([2.0])])
    # ... and bytes a damaged disk flipped in the middle of a whole record
    journal.append_metrics("b3", run.id, [batch([99.0])])
    journal.append_metrics("b4", run.id, [batch([3.0, 4.0])])
    data = bytearray(path.read_bytes())
    b3_at = data.index(b'"b3"')
    data[b3_at + 2] ^= 0xFF
    path.write_bytes(bytes(data))

    with caplog.at_level(logging.WARNING, logger="runlab"):
        assert Delivery(ws.folder.store, ws.folder.journal_dir).replay(journal) == 5
    assert run.get_metric_history("x").values.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert not path.exists()
    assert "damaged region" in caplog.text


def test_a_whole_record_that_is_not_runlabs_is_skipped_not_fatal(ws: runlab.Workspace) -> None:
    """A record with a right checksum but a body runlab did not write (crafted, another program)."""
    import zlib

    from runlab.tracking.journal import _HEADER

    run = runlab.Experiment(ws, "crafted").start_logging()
    run.flush()
    path = ws.folder.journal_dir / "crafted.jrnl"
    journal = Journal(path)
    journal.append_metrics("c1", run.id, [batch([0.0])])
    for meta, blob in ((b"not json", b""), (b'{"t": "metrics"}', b""), (b'{"t": "metrics", "run_id": "r", "batch_id": "b", '
                       b'"batches": [{"n": 10, "steps": "i8"}]}', b"\0" * 3), (b"[1, 2]", b""),
                       (b'{"t": "metrics", "run_id": "r", "batch_id": "b", "batches": [{"name": "x", "kind": "scalar", '
                        b'"n": 2, "steps": "auto", "values": "json", "values_bytes": 3}]}', b"\0" * 16 + b"[1]")):
        with open(path, "ab") as f:
            f.write(_HEADER.pack(MAGIC, len(meta), len(blob), zlib.crc32(blob, zlib.crc32(meta))) + meta + blob)
    journal.append_metrics("c2", run.id, [batch([1.0])])
    assert Delivery(ws.folder.store, ws.folder.journal_dir).replay(journal) == 2
    assert run.get_metric_history("x").values.tolist() == [0.0, 1.0]
    assert not path.exists()


@pytest.mark.embedded_only(reason="holds the write lock of the folder's SQLite file from another process")
def test_a_journal_is_kept_until_every_record_is_in_the_store(ws: runlab.Workspace, procs: list[subprocess.Popen[str]],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNLAB_SQLITE_BUSY_TIMEOUT", "0.1")
    fresh = runlab.Workspace.from_path(ws.path)
    run = runlab.Experiment(fresh, "kept").start_logging()
    run.flush()
    journal = Journal(fresh.folder.journal_dir / "other.jrnl")
    journal.append_metrics("k1", run.id, [batch([0.0])])
    journal.append_metrics("k2", run.id, [batch([1.0])])
    locker = hold_write_lock(procs, fresh.folder.db_path, 60)
    with pytest.raises(StoreUnavailableError):
        Delivery(fresh.folder.store, fresh.folder.journal_dir).replay(journal)
    assert journal.exists()
    locker.kill()
    locker.communicate(timeout=30)
    assert Delivery(fresh.folder.store, fresh.folder.journal_dir).replay(journal) == 2
    assert run.get_metric_history("x").values.tolist() == [0.0, 1.0]


@pytest.mark.slow
def test_a_disk_that_fills_while_the_store_is_locked_loses_no_point(
    small_disk: Path, procs: list[subprocess.Popen[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The measured loss: journal records, then an append cut short by a full disk, then more records
    after the space came back; the replay used to stop at the tear and delete the whole journal."""
    monkeypatch.setenv("RUNLAB_SQLITE_BUSY_TIMEOUT", "0.2")
    ws = runlab.Workspace.create("full-disk", path=small_disk / "ws")
    run = runlab.Experiment(ws, "full").start_logging()
    n = 0

    def log_and_flush(count: int) -> None:
        nonlocal n
        for _ in range(count):
            run.log("x", float(n))
            n += 1
        run.flush(60)

    log_and_flush(1000)
    locker = hold_write_lock(procs, ws.folder.db_path, 600)
    log_and_flush(50_000)  # to the journal: the store is locked
    assert run._logger.points_journaled == 50_000
    filler = fill(small_disk, leave=64 << 10)
    log_and_flush(200_000)  # the append is cut short by the full disk
    log_and_flush(10_000)
    filler.unlink()
    log_and_flush(1000)  # appended after the failed one
    locker.kill()
    locker.communicate(timeout=30)
    log_and_flush(1000)
    values = ws.get_run(run.id).get_metric_history("x").values
    assert len(values) == n, f"lost {n - len(values)} of {n} points"
    assert np.array_equal(values, np.arange(n, dtype=np.float64))
    assert not run._logger._journal.exists()
    run.complete()


@pytest.mark.slow
def test_reads_and_the_end_of_a_run_do_not_raise_on_a_full_disk(
    small_disk: Path, tmp_path: Path, procs: list[subprocess.Popen[str]], subprocess_env: dict[str, str]
) -> None:
    ws = runlab.Workspace.create("full-disk", path=small_disk / "ws")
    child, counter, dead_id = start_child(procs, ws.path, tmp_path, subprocess_env)
    _wait_logged(counter, 1000)
    child.kill()  # its run is left Running: the next reader must mark it Failed, which is a write
    child.communicate(timeout=30)
    run = runlab.Experiment(ws, "full").start_logging()
    for i in range(1000):
        run.log("x", float(i))
    run.flush()
    filler = fill(small_disk)
    for i in range(1000, 200_000):
        run.log("x", float(i))
    assert ws.get_run(dead_id).get_status() in ("Running", "Failed")
    assert ws.get_run(run.id).get_status() == "Running"
    run.tag("stage", "full disk")  # none of these may raise
    run.add_properties({"disk": "full"})
    run.complete()
    filler.unlink()
    assert ws.get_run(dead_id).get_status() == "Failed"
    run.flush()  # what the at-exit hooks do: the end, the changes and the points held back are written now
    assert ws.get_run(run.id).get_status() == "Completed"
    assert ws.get_run(run.id).get_tags() == {"stage": "full disk"}
    assert ws.get_run(run.id).get_properties()["disk"] == "full"
    assert np.array_equal(ws.get_run(run.id).get_metric_history("x").values, np.arange(200_000, dtype=np.float64))


# -- 2. one bad point ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bad\ud800name", "nul\x00name", "\udcff"])
def test_metric_names_that_no_store_can_hold_are_refused_at_log(ws: runlab.Workspace, name: str) -> None:
    run = runlab.Experiment(ws, "bad").start_logging()
    with pytest.raises(InvalidNameError, match="cannot be stored"):
        run.log(name, 1.0)
    run.log("good", 1.0)
    run.complete()
    assert ws.get_run(run.id).get_metrics() == {"good": 1.0}


@pytest.mark.parametrize("step", [2**63, -(2**63) - 1, 10**30])
def test_steps_beyond_int64_are_refused_at_log(ws: runlab.Workspace, step: int) -> None:
    run = runlab.Experiment(ws, "steps").start_logging()
    with pytest.raises(InvalidValueError, match="out of range"):
        run.log("x", 1.0, step=step)
    run.log("x", 2.0, step=2**63 - 1)
    run.log("x", 3.0, step=-(2**63))
    run.complete()
    assert ws.get_run(run.id).get_metric_history("x").steps.tolist() == [2**63 - 1, -(2**63)]


def test_a_description_no_store_can_hold_is_refused(ws: runlab.Workspace) -> None:
    run = runlab.Experiment(ws, "desc").start_logging()
    with pytest.raises(InvalidValueError, match="description"):
        run.log("x", 1.0, description="bad\ud800")
    run.complete()


def test_values_beyond_every_number_type_are_stored_exactly(ws: runlab.Workspace) -> None:
    run = runlab.Experiment(ws, "huge").start_logging()
    run.log("big", 10**400)
    run.log("mixed", 1.5)
    run.log("mixed", 10**400)
    run.log("text", "lone \ud800 surrogate and \x00 nul")
    run.complete()
    metrics = ws.get_run(run.id).get_metrics()
    assert metrics["big"] == 10**400
    assert metrics["mixed"] == [1.5, 10**400]
    assert metrics["text"] == "lone \ud800 surrogate and \x00 nul"


POISON = 666.0


def poison_store(db: Path) -> None:
    """A real store that refuses one value: a trigger aborts any chunk holding 666.0."""
    conn = sqlite3.connect(db)
    conn.execute(
        f"CREATE TRIGGER poison BEFORE INSERT ON metric_chunks WHEN instr(NEW.\"values\", X'{np.float64(POISON).tobytes().hex()}') > 0 "
        "BEGIN SELECT RAISE(ABORT, 'this store refuses 666'); END"
    )
    conn.commit()
    conn.close()


@pytest.mark.embedded_only(reason="adds a trigger to the folder's SQLite file that refuses one value")
def test_a_point_only_the_store_refuses_is_set_aside_and_the_rest_written(ws: runlab.Workspace,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    run = runlab.Experiment(ws, "poison").start_logging()
    run.flush()
    poison_store(ws.folder.db_path)
    with caplog.at_level(logging.WARNING, logger="runlab"):
        for i in range(1000):
            run.log("x", float(i))
            run.log("y", i + 0.5)
        run.complete()
    got = ws.get_run(run.id)
    assert got.get_status() == "Completed"
    assert got.get_metric_history("y").values.tolist() == [i + 0.5 for i in range(1000)]
    assert got.get_metric_history("x").values.tolist() == [float(i) for i in range(1000) if i != 666]
    assert "refuses 1 point(s) of metric(s) 'x'" in caplog.text
    rejected = (ws.folder.journal_dir / REJECTED_DIR).glob("*.jsonl")
    assert any("666.0" in p.read_text() for p in rejected)


def test_a_journal_holding_an_unstorable_point_is_written_and_removed(ws: runlab.Workspace, tmp_path: Path,
                                                                       subprocess_env: dict[str, str]) -> None:
    """The old failure: a journal with one bad name blocked the run's metrics and every later sync."""
    import json
    import zlib

    run = runlab.Experiment(ws, "legacy").start_logging()
    run.flush()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path = ws.folder.journal_dir / f"{run.id}@{os.uname().nodename}-{int(dead.stdout)}-1.jrnl"
    path.parent.mkdir(parents=True, exist_ok=True)  # a server workspace's journal folder is made on first use
    # a journal as runlab 0.1 wrote it (length | crc32 | JSON), with a name no store can hold
    payload = json.dumps({"batch_id": "old-1", "run_id": run.id, "batches": [
        {"name": "bad\ud800name", "kind": "scalar", "steps": [None], "times": [1.0], "values": [1.0], "description": ""},
        {"name": "good", "kind": "scalar", "steps": [None, None], "times": [1.0, 2.0], "values": [1.0, 2.0],
         "description": ""},
    ]}).encode()
    path.write_bytes(struct.pack("<II", len(payload), zlib.crc32(payload)) + payload)
    assert replay_orphan_journals(ws.folder) == 3
    assert not path.exists()
    assert run.get_metric_history("good").values.tolist() == [1.0, 2.0]
    # `runlab sync` where the user stands: -w FOLDER, or (a server) in the project whose config.json names it
    project = tmp_path / "project"
    ws.write_config(project)
    where = {"cwd": project} if getattr(ws._folder, "remote", False) else {}  # type: ignore[attr-defined]
    args = [] if where else ["--workspace", str(ws.path)]
    done = subprocess.run([str(Path(sys.executable).with_name("runlab")), "sync", *args],
                          capture_output=True, text=True, env=subprocess_env, timeout=120, **where)
    assert done.returncode == 0, done.stderr
    assert "UnicodeEncodeError" not in done.stderr


# -- 3. SIGKILL while the store is locked ----------------------------------------------------


@pytest.mark.embedded_only(reason="holds the write lock of the folder's SQLite file from another process")
@pytest.mark.slow
def test_sigkill_while_another_process_holds_the_lock_loses_at_most_about_one_interval(
    ws: runlab.Workspace, tmp_path: Path, subprocess_env: dict[str, str], procs: list[subprocess.Popen[str]]
) -> None:
    child, counter, run_id = start_child(procs, ws.path, tmp_path, subprocess_env)
    _wait_logged(counter, 20_000)
    locker = hold_write_lock(procs, ws.folder.db_path, 120)
    time.sleep(4.0)  # several cycles with the store locked: each one journals its own points
    safe = _logged(counter)  # logged more than two intervals (1 s each) before the kill
    time.sleep(2.5)
    child.kill()
    child.communicate(timeout=30)
    at_kill = _logged(counter)
    locker.kill()
    locker.communicate(timeout=30)
    replay_orphan_journals(ws.folder)
    values = ws.get_run(run_id).get_metric_history("x").values
    assert len(values) >= safe, f"lost {at_kill - len(values)} points, of which {safe - len(values)} older than 2.5 s"
    assert np.array_equal(values, np.arange(len(values), dtype=np.float64))  # no gap, no duplicate
    assert ws.get_run(run_id).get_status() == "Failed"


# -- 4. the workspace folder deleted during a run --------------------------------------------


@pytest.mark.embedded_only(reason="deletes the workspace folder under the run")
@pytest.mark.slow
def test_a_workspace_folder_deleted_during_the_run_is_noticed_and_points_kept_outside(
    ws: runlab.Workspace, tmp_path: Path, subprocess_env: dict[str, str], procs: list[subprocess.Popen[str]],
    runlab_home: Path,
) -> None:
    child, counter, run_id = start_child(procs, ws.path, tmp_path, subprocess_env)
    _wait_logged(counter, 20_000)
    workspace_id = ws.folder.workspace_id
    shutil.rmtree(ws.path)
    deleted_at = _logged(counter)
    time.sleep(3.0)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    logged = _logged(counter)
    assert err.count("was deleted or replaced") == 1, err
    journals = list((runlab_home / "journal" / workspace_id).glob("*.jrnl"))
    assert len(journals) == 1, journals
    kept = points(Journal(journals[0]))
    assert kept, "no point was kept outside the deleted folder"
    assert kept[0] <= deleted_at and kept[-1] >= logged - 1
    assert kept == [float(v) for v in range(int(kept[0]), int(kept[-1]) + 1)]


# -- 6. a flush that races the flusher's exit ------------------------------------------------


def test_a_flush_after_close_never_waits_for_a_thread_that_is_gone(ws: runlab.Workspace) -> None:
    """close() while the flusher's last cycle is slow (a busy store), then a second flush, as the
    at-exit hooks do: the flusher ends its cycle and exits without answering that flush."""
    run = runlab.Experiment(ws, "race").start_logging()
    run.flush()
    calls = []

    def slow_store() -> None:  # the first write of a run waits on a busy store
        calls.append(time.monotonic())
        time.sleep(1.0)

    lg = MetricLogger(ws.folder, run.id, before_first_write=slow_store)
    lg.queue_for("x").append((1.0, None, time.time()))
    lg.close(0.2)  # gives up waiting while the last cycle is still in the store
    assert calls, "the flusher did not start its cycle"
    assert lg.flush(20), "flush() waited for a flusher that had exited"
    assert run.get_metric_history("x").values.tolist() == [1.0]


@pytest.mark.embedded_only(reason="the embedded store's reader replays a dead process's journal before presuming its run lost; over a server the journal stays on the client's machine until `runlab sync` (or the next run there) sends it")
def test_a_journaled_end_overrides_the_readers_presumption_that_the_run_was_lost(
    ws: runlab.Workspace, tmp_path: Path, subprocess_env: dict[str, str], procs: list[subprocess.Popen[str]]
) -> None:
    """A process that could only journal its run's end, then exited: the next reader, about to mark the
    run Failed ("lost"), replays the journal first and the run has the end the process recorded."""
    child, counter, run_id = start_child(procs, ws.path, tmp_path, subprocess_env)
    _wait_logged(counter, 1000)
    child.kill()
    child.communicate(timeout=30)
    dead_journals = list(ws.folder.journal_dir.glob(f"{run_id}@*.jrnl"))
    journal = dead_journals[0] if dead_journals else ws.folder.journal_dir / f"{run_id}@{os.uname().nodename}-{child.pid}-1.jrnl"
    Journal(journal).append_change(end_record(run_id))
    assert ws.get_run(run_id).get_status() == "Completed"  # not the presumption: what the journal says
    assert not journal.exists()
    # a run that really failed keeps its own error: only the presumption is overridden
    other = runlab.Experiment(ws, "real").start_logging()
    other.fail("diverged")
    Journal(journal).append_change(end_record(other.id))
    replay_orphan_journals(ws.folder)
    assert ws.get_run(other.id).get_status() == "Failed"
