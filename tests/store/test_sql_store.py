"""The SQL store, the same tests on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import math
import threading
import time
import warnings

import numpy as np
import pytest
from sqlalchemy import event as sa_event

from runlab.core.assets import ComputeTargetRecord
from runlab.core.entities import MetricBatch
from runlab.core.errors import (
    ComputeTargetException,
    ExperimentNotFoundError,
    NotFoundError,
    PropertyConflictError,
    RunNotFoundError,
    StoreBusyError,
)
from runlab.core.status import RunStatus, RunType
from runlab.store.sql import schema as t
from runlab.store.sql.store import SqlStore


def _run(store: SqlStore, run_id: str = "exp_1_aaaaaaaa", **kw: object) -> str:
    args = {"run_type": RunType.INTERACTIVE, "status": RunStatus.RUNNING, **kw}
    store.create_run(run_id, "exp", **args)  # type: ignore[arg-type]
    return run_id


def test_experiments(store: SqlStore) -> None:
    a = store.get_or_create_experiment("a")
    assert store.get_or_create_experiment("a") == a
    store.get_or_create_experiment("b")
    assert [e.name for e in store.list_experiments()] == ["a", "b"]
    with pytest.raises(ExperimentNotFoundError):
        store.get_experiment("zzz")


def test_runs_filters_and_order(store: SqlStore) -> None:
    first = _run(store, "exp_1_a", tags={"k": "1"}, created_at=100.0)
    second = _run(store, "exp_2_b", tags={"k": "2"}, properties={"p": "x"}, created_at=200.0)
    child = _run(store, "exp_3_c", parent_run_id=first, run_type=RunType.CHILD, created_at=300.0)
    assert [r.run_id for r in store.list_runs()] == [child, second, first]
    assert [r.run_id for r in store.list_runs(include_children=False)] == [second, first]
    assert [r.run_id for r in store.list_runs(tags={"k": "1"})] == [first]
    assert [r.run_id for r in store.list_runs(tags={"k": None})] == [second, first]
    assert [r.run_id for r in store.list_runs(properties={"p": "x"})] == [second]
    assert [r.run_id for r in store.list_runs(parent_run_id=first)] == [child]
    assert [r.run_id for r in store.list_runs(limit=1, offset=1)] == [second]
    assert store.get_run(child).parent_run_id == first
    with pytest.raises(RunNotFoundError):
        store.get_run("nope")


def test_status_compare_and_set(store: SqlStore) -> None:
    run_id = _run(store, status=RunStatus.QUEUED, run_type=RunType.SUBMITTED)
    assert store.set_status(run_id, RunStatus.CANCELED, only_if_status=[RunStatus.QUEUED])
    assert not store.set_status(run_id, RunStatus.RUNNING, only_if_active=True)
    record = store.get_run(run_id)
    assert record.status == RunStatus.CANCELED and record.ended_at is not None


def test_tags_properties(store: SqlStore) -> None:
    run_id = _run(store)
    store.set_tags(run_id, {"a": "1", "b": "2"})
    store.set_tags(run_id, {"a": "3"})
    store.remove_tags(run_id, ["b"])
    store.add_properties(run_id, {"p": "1"})
    with pytest.raises(PropertyConflictError):
        store.add_properties(run_id, {"p": "2"})
    record = store.get_run(run_id)
    assert record.tags == {"a": "3"} and record.properties == {"p": "1"}


def test_metrics_encodings_and_summaries(store: SqlStore) -> None:
    run_id = _run(store)
    t = [1.0, 2.0, 3.0]
    store.append_metrics(run_id, [
        MetricBatch("f", "scalar", [None] * 3, t, [1.5, math.nan, math.inf]),
        MetricBatch("i", "scalar", [10, 20, 30], t, [1, 2, 3]),
        MetricBatch("s", "scalar", [None] * 3, t, ["a", True, 2.5]),
        MetricBatch("row", "row", [None], t[:1], [{"c": [1, 2]}]),
    ])
    store.append_metrics(run_id, [MetricBatch("f", "scalar", [None], [4.0], [-2.0])])
    f = store.get_metric_series(run_id, "f")
    assert f.steps.tolist() == [0, 1, 2, 3]
    assert f.values[0] == 1.5 and math.isnan(f.values[1]) and f.values[2] == math.inf and f.values[3] == -2.0
    i = store.get_metric_series(run_id, "i")
    assert i.values.dtype == np.int64 and i.steps.tolist() == [10, 20, 30]
    assert store.get_metric_series(run_id, "s").values == ["a", True, 2.5]
    assert store.get_metric_series(run_id, "row").values == [{"c": [1, 2]}]
    summaries = {s.name: s for s in store.get_metric_summaries(run_id)}
    assert summaries["f"].count == 4 and summaries["f"].last == -2.0
    assert summaries["f"].min == -2.0 and summaries["f"].max == math.inf
    assert summaries["i"].last_step == 30
    with pytest.raises(NotFoundError):
        store.get_metric_series(run_id, "missing")


def test_replayed_batch_is_applied_once(store: SqlStore) -> None:
    run_id = _run(store)
    batch = MetricBatch("x", "scalar", [None], [1.0], [1.0])
    store.append_metrics(run_id, [batch], batch_id="b1")
    store.append_metrics(run_id, [batch], batch_id="b1")
    assert len(store.get_metric_series(run_id, "x")) == 1


def test_large_series_round_trip(store: SqlStore) -> None:
    run_id = _run(store)
    n = 200_000
    values = np.random.default_rng(0).random(n).tolist()
    store.append_metrics(run_id, [MetricBatch("loss", "scalar", [None] * n, [0.0] * n, values)])
    series = store.get_metric_series(run_id, "loss")
    assert len(series) == n and np.array_equal(series.values, np.asarray(values))


def test_claim_is_atomic_across_threads(store: SqlStore) -> None:
    for i in range(20):
        _run(store, f"exp_{i}_q", status=RunStatus.QUEUED, run_type=RunType.SUBMITTED, target="pool",
             created_at=float(i))
    claimed: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        while True:
            record = store.claim_queued_run("pool", "agent")
            if record is None:
                return
            with lock:
                claimed.append(record.run_id)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(claimed) == sorted(f"exp_{i}_q" for i in range(20))
    assert store.count_runs_by_status("pool") == {RunStatus.PREPARING: 20}


def test_environments_and_compute_targets(store: SqlStore) -> None:
    one = store.register_environment("env", "h1", {"a": 1})
    assert one.version == 1 and store.register_environment("env", "h1", {"a": 1}).version == 1
    assert store.register_environment("env", "h2", {"a": 2}).version == 2
    assert store.get_environment("env").version == 2 and store.get_environment("env", 1).definition == {"a": 1}
    with pytest.raises(NotFoundError, match="register"):
        store.get_environment("nope")
    record = ComputeTargetRecord(name="cpu", kind="amlcompute", max_nodes=2, idle_seconds_before_scaledown=5,
                                 created_at=time.time())
    store.create_compute_target(record)
    with pytest.raises(ComputeTargetException, match="already exists"):
        store.create_compute_target(record)
    assert [t.name for t in store.list_compute_targets()] == ["cpu"]
    store.delete_compute_target("cpu")
    with pytest.raises(ComputeTargetException, match="does not exist"):
        store.get_compute_target("cpu")


def test_runs_of_dead_owners_are_marked_failed(store: SqlStore) -> None:
    import socket

    dead_owner = f"{socket.gethostname()}:999999:1"
    run_id = _run(store, owner=dead_owner)
    assert store.get_run(run_id).status == RunStatus.FAILED
    stale = _run(store, "exp_2_stale", owner="other-host:1:1")
    store.heartbeat(stale, when=time.time() - 3600)
    assert store.reap_stale_runs(timeout_s=60) == [stale]
    assert "no heartbeat" in (store.get_run(stale).error or {})["message"]


def test_max_active_bounds_the_runs_of_a_target_whichever_agent_claims(store: SqlStore) -> None:
    """max_nodes is the target's: two agents (two machines) serving one target share it."""
    for i in range(4):
        _run(store, f"exp_{i}_q", status=RunStatus.QUEUED, run_type=RunType.SUBMITTED, target="pool",
             created_at=float(i))
    _run(store, "exp_other_q", status=RunStatus.QUEUED, run_type=RunType.SUBMITTED, target="other")
    first = store.claim_queued_run("pool", "agent-a", max_active=2)
    second = store.claim_queued_run("pool", "agent-b", max_active=2)
    assert first is not None and second is not None
    assert store.claim_queued_run("pool", "agent-a", max_active=2) is None  # the target's two are taken
    assert store.claim_queued_run("pool", "agent-b", max_active=2) is None
    assert store.claim_queued_run("other", "agent-a", max_active=1) is not None  # another target's own bound
    for status in (RunStatus.STARTING, RunStatus.RUNNING, RunStatus.FINALIZING, RunStatus.CANCEL_REQUESTED):
        store.set_status(first.run_id, status)  # every stage of a claimed run holds its node
        assert store.claim_queued_run("pool", "agent-b", max_active=2) is None
    store.set_status(first.run_id, RunStatus.COMPLETED)
    third = store.claim_queued_run("pool", "agent-b", max_active=2)
    assert third is not None and third.run_id == "exp_2_q"
    assert store.claim_queued_run("pool", "agent-b") is not None  # no bound given: the caller's own


def test_max_active_holds_when_agents_claim_at_the_same_moment(store: SqlStore) -> None:
    """Separate stores (connections, as two agents' processes have) claiming at once never take
    more than the bound: the count and the claim are one step per target."""
    for i in range(12):
        _run(store, f"exp_{i}_q", status=RunStatus.QUEUED, run_type=RunType.SUBMITTED, target="pool",
             created_at=float(i))
    stores = [SqlStore(store.url) for _ in range(6)]
    start = threading.Barrier(len(stores))
    claimed: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def agent(own: SqlStore, name: str) -> None:
        try:
            start.wait()
            for _ in range(5):
                record = own.claim_queued_run("pool", name, max_active=3)
                if record is not None:
                    with lock:
                        claimed.append(record.run_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=agent, args=(s, f"agent-{i}")) for i, s in enumerate(stores)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for s in stores:
        s.close()
    assert not errors, errors
    assert len(claimed) == 3 and len(set(claimed)) == 3, claimed
    assert store.count_runs_by_status("pool") == {RunStatus.PREPARING: 3, RunStatus.QUEUED: 9}


def test_status_history_records_each_transition(store: SqlStore) -> None:
    run_id = _run(store, status=RunStatus.QUEUED, run_type=RunType.SUBMITTED, target="pool")
    assert store.claim_queued_run("pool", "agent") is not None
    for status in (RunStatus.STARTING, RunStatus.RUNNING, RunStatus.FINALIZING, RunStatus.COMPLETED):
        store.set_status(run_id, status, only_if_active=True)
    assert not store.set_status(run_id, RunStatus.FAILED, only_if_active=True)  # refused: not recorded
    history = store.get_run(run_id).status_history
    assert [s for s, _ in history] == ["Queued", "Preparing", "Starting", "Running", "Finalizing", "Completed"]
    times = [at for _, at in history]
    assert times == sorted(times)
    assert store.list_runs()[0].status_history == ()  # listings do not load it


def test_a_batch_applied_by_another_request_meanwhile_is_not_an_error(store: SqlStore) -> None:
    """A client timed out and sent a batch again while the first request was still writing it: the second
    request's insert of the batch id meets the first's (PostgreSQL waits for it, then refuses the
    duplicate). That batch is in: the second request succeeds and writes nothing more."""
    if store.is_sqlite:
        pytest.skip("SQLite serializes writers: the second request sees the first's batch id before inserting")
    import sqlalchemy as sa

    from runlab.store.sql import schema as t

    store.create_run("r1", "e", run_type=RunType.INTERACTIVE, status=RunStatus.RUNNING)
    store.append_metrics("r1", [MetricBatch("loss", "scalar", [None], [1.0], [1.0])], batch_id="first")
    first = store.engine.connect()
    tx = first.begin()
    first.execute(t.applied_batches.insert().values(batch_id="B", applied_at=time.time()))  # not committed yet
    errors: list[BaseException] = []

    def second() -> None:
        try:
            store.append_metrics("r1", [MetricBatch("loss", "scalar", [None], [2.0], [2.0])], batch_id="B")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    deadline = time.monotonic() + 60  # a condition to wait for, not a time limit: a loaded machine took over 10 s
    with store.engine.connect() as probe:  # the second request is waiting on the first's row
        while not probe.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")).scalar():
            assert time.monotonic() < deadline, ("the second request never waited on the first", errors)
            time.sleep(0.05)
    tx.commit()
    first.close()
    thread.join(30)
    assert errors == []
    assert list(store.get_metric_series("r1", "loss").values) == [1.0]


def test_the_end_a_run_really_had_replaces_a_presumed_loss(store: SqlStore) -> None:
    """The reaper presumes a run dead when its heartbeats stop; if its process was only starved (a loaded
    machine), the end that process writes later wins. Any other end stays as it was."""
    lost = _run(store, "exp_1_lost", owner="elsewhere:1:1")
    store.heartbeat(lost, when=time.time() - 1000)
    assert store.reap_stale_runs(120) == [lost]
    assert store.get_run(lost).error["code"] == "RunLost"  # type: ignore[index]
    assert not store.set_status(lost, RunStatus.COMPLETED, only_if_active=True)  # a plain compare-and-set
    assert store.set_status(lost, RunStatus.COMPLETED, only_if_active=True, over_lost=True)
    record = store.get_run(lost)
    assert record.status == RunStatus.COMPLETED and record.error is None
    failed = _run(store, "exp_2_failed")
    store.set_status(failed, RunStatus.FAILED, error={"message": "boom", "code": "UserError"})
    canceled = _run(store, "exp_3_canceled")
    store.set_status(canceled, RunStatus.CANCELED)
    for run_id in (failed, canceled, lost):  # a real end, Failed or not, is never replaced
        assert not store.set_status(run_id, RunStatus.FAILED, error={"message": "late"}, only_if_active=True,
                                    over_lost=True)
    assert store.get_run(failed).error == {"message": "boom", "code": "UserError"}
    assert store.get_run(canceled).status == RunStatus.CANCELED


def test_series_chunks_are_lz4_compressed_on_postgresql(store: SqlStore) -> None:
    """Migration 0011: PostgreSQL's default pglz took most of an append's time; lz4 where the server has
    it (PostgreSQL 14+ built with lz4, as Debian's is), and chunks written after it read back the same."""
    if store.is_sqlite:
        pytest.skip("SQLite stores blobs uncompressed: nothing to set")
    import sqlalchemy as sa

    with store.engine.connect() as conn:
        methods = dict(conn.execute(sa.text(
            "SELECT attname, attcompression FROM pg_attribute WHERE attrelid = 'metric_chunks'::regclass "
            "AND attname IN ('steps', 'times', 'values')")).all())
    assert methods == {"steps": "l", "times": "l", "values": "l"}
    run_id = _run(store)
    values = np.random.default_rng(1).random(60_000)
    store.append_metrics(run_id, [MetricBatch("loss", "scalar", [None] * 60_000, [0.0] * 60_000, values.tolist())])
    assert np.array_equal(store.get_metric_series(run_id, "loss").values, values)


def _chunk_step_sizes(store: SqlStore) -> list[int]:
    import sqlalchemy as sa

    with store.engine.connect() as conn:
        return [int(n) for n in conn.execute(sa.text(
            "SELECT length(steps) FROM metric_chunks ORDER BY metric_id, seq")).scalars()]


def test_consecutive_steps_are_stored_as_their_first_and_read_back_whole(store: SqlStore) -> None:
    """Migration 0012: steps are 64-bit in the summary row too (PostgreSQL's was 32-bit: "integer out of
    range" for step 2**31). A chunk whose steps run 0, 1, 2, ... keeps its first step alone (8 bytes, not 8 a
    point); any other chunk its whole array, including steps that only look consecutive when an int64
    difference wraps. Both readers (the store's and the studio's queries) give the same steps."""
    from runlab.store.sql.queries import StudioQueries

    run_id = _run(store)
    lo, hi = -(2**63), 2**63 - 1
    cases = {
        "next": [None] * 1000,          # run.log without step=
        "after": [None] * 3,            # continues the series above: 1000, 1001, 1002
        "given": [5, 6, 7, 8],
        "gaps": [1, 3, 4],
        "wraps": [hi, lo],              # hi + 1 == lo in int64 arithmetic: not a run of steps
        "back": [3, 2, 1],
        "one": [hi],
        "end": [hi - 1, hi],
    }
    for name, steps in cases.items():
        metric = "next" if name == "after" else name
        store.append_metrics(run_id, [MetricBatch(metric, "scalar", steps, [1.0] * len(steps), [0.5] * len(steps))])
    assert _chunk_step_sizes(store) == [8, 8, 8, 24, 16, 24, 8, 8]
    expected = {"next": list(range(1003)), "given": [5, 6, 7, 8], "gaps": [1, 3, 4], "wraps": [hi, lo],
                "back": [3, 2, 1], "one": [hi], "end": [hi - 1, hi]}
    queries = StudioQueries(store)
    for name, steps in expected.items():
        assert store.get_metric_series(run_id, name).steps.tolist() == steps
        assert queries.read_series(run_id, name).steps.tolist() == steps
    assert queries.read_series(run_id, "next", start=999).steps.tolist() == [999, 1000, 1001, 1002]
    assert queries.read_series_many([run_id], "given")[run_id].steps.tolist() == [5, 6, 7, 8]


def _downgrade(store: SqlStore, revision: str) -> None:
    from alembic import command

    from runlab.store.sql import migrate

    config = migrate.alembic_config()
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn  # type: ignore[attr-defined]
        command.downgrade(config, revision)  # type: ignore[arg-type]


def test_the_downgrade_of_0012_writes_steps_out_in_full(store: SqlStore) -> None:
    from runlab.store.sql import migrate

    run_id = _run(store)
    store.append_metrics(run_id, [MetricBatch("a", "scalar", [None] * 1000, [1.0] * 1000, [0.5] * 1000),
                                  MetricBatch("b", "scalar", [1, 3], [1.0] * 2, [0.5] * 2)])
    store.append_metrics(run_id, [MetricBatch("a", "scalar", [None] * 2, [1.0] * 2, [0.5] * 2)])
    assert _chunk_step_sizes(store) == [8, 8, 16]
    _downgrade(store, "0011_chunks_lz4")
    assert _chunk_step_sizes(store) == [8000, 16, 16]
    assert store.get_metric_series(run_id, "a").steps.tolist() == list(range(1002))
    assert store.get_metric_series(run_id, "b").steps.tolist() == [1, 3]
    migrate.upgrade(store.engine)
    assert migrate.current_revision(store.engine) == "0012_steps_int64_runs"
    if not store.is_sqlite:  # a step beyond 32 bits cannot go back into PostgreSQL's integer: refused, unchanged
        store.append_metrics(run_id, [MetricBatch("big", "scalar", [2**40], [1.0], [0.5])])
        with pytest.raises(Exception, match="out of range"):
            _downgrade(store, "0011_chunks_lz4")
        assert migrate.current_revision(store.engine) == "0012_steps_int64_runs"
        assert store.get_metric_series(run_id, "a").steps.tolist() == list(range(1002))


def _hold_a_write(store: SqlStore, entered: threading.Event, release: threading.Event) -> threading.Thread:
    def hold() -> None:
        with store._write("holding the write lock") as conn:
            conn.execute(t.experiments.insert().values(name="held", created_at=time.time()))
            entered.set()
            release.wait(30)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert entered.wait(30)
    return thread


def test_writes_of_one_process_queue_in_order_instead_of_polling_sqlite(store: SqlStore) -> None:
    """A thread's write starts its transaction only after the running one committed (SQLite's busy
    handler would have it retry BEGIN in sleeps of up to 100 ms; 20 writers of a server waited
    300-700 ms at p99 so)."""
    if not store.is_sqlite:
        pytest.skip("PostgreSQL has row locks: writers do not wait for each other")
    pooled = [store.engine.connect() for _ in range(3)]  # opened now: a new connection's PRAGMAs would wait too
    for conn in pooled:
        conn.close()
    events: list[str] = []
    sa_event.listen(store.engine, "before_cursor_execute", lambda conn, cursor, statement, *rest: events.append(
        f"write {threading.current_thread().name}") if statement.startswith("BEGIN IMMEDIATE") else None)
    sa_event.listen(store.engine, "commit", lambda conn: events.append(f"commit {threading.current_thread().name}"))
    entered, release = threading.Event(), threading.Event()
    holder = _hold_a_write(store, entered, release)
    second = threading.Thread(target=lambda: store.get_or_create_experiment("second"), name="second")
    second.start()
    second.join(0.3)
    assert second.is_alive()  # waiting for the first write
    release.set()
    holder.join(30)
    second.join(30)
    assert not second.is_alive()
    first_commit = next(i for i, e in enumerate(events) if e.startswith("commit") and "second" not in e)
    writes_of_second = [i for i, e in enumerate(events) if e == "write second"]
    assert writes_of_second and all(i > first_commit for i in writes_of_second), events
    assert {e.name for e in store.list_experiments()} == {"held", "second"}


def test_a_write_held_past_the_lock_wait_fails_busy_naming_this_process(store: SqlStore) -> None:
    if not store.is_sqlite:
        pytest.skip("PostgreSQL has row locks: writers do not wait for each other")
    entered, release = threading.Event(), threading.Event()
    holder = _hold_a_write(store, entered, release)
    try:
        with pytest.raises(StoreBusyError, match="another thread of this process held its write lock"):
            store.with_lock_wait(0.2).get_or_create_experiment("late")
    finally:
        release.set()
        holder.join(30)
    assert store.get_or_create_experiment("late").name == "late"  # the lock is free again


def test_a_process_forked_while_another_thread_writes_does_not_inherit_its_lock(store: SqlStore) -> None:
    """A child forked while a thread of the parent held the file's write lock has no such thread: its
    own writes must not wait for it (SQLite's own lock is the parent's to release, and is left to it)."""
    if not store.is_sqlite:
        pytest.skip("PostgreSQL has row locks: writers do not wait for each other")
    import os

    from runlab.store.sql import store as store_module

    entered, release = threading.Event(), threading.Event()
    holder = _hold_a_write(store, entered, release)
    try:
        with warnings.catch_warnings():  # Python 3.12+ warns of fork() in a threaded process: that is the case
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                code = 0 if store_module._sqlite_write_lock(store.url).acquire(timeout=2) else 3
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    finally:
        release.set()
        holder.join(30)
    assert os.waitstatus_to_exitcode(status) == 0
