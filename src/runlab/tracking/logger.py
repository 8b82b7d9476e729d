"""The metric logger: ``log()`` appends to memory and returns; a flusher thread writes batches.

Per metric name there is one deque of ``(value, step, time)``; deque appends and pops are
atomic, so ``log()`` takes no lock. The flusher wakes every ``flush_interval_s`` (sooner when
many points wait, or when ``flush()`` asks), drains the deques, and writes one atomic batch.

When the store cannot take it within a fraction of the interval (locked, disk full, gone), the
batch is appended to the journal (binary, fsynced: tracking.journal) and each later cycle
appends only its own new points behind it, while the journal is written to the store, oldest
record first, for at most half an interval per cycle. So whatever the store does, the points
of each interval are on disk before the next ends: a SIGKILL loses at most about one interval,
and memory holds at most one interval of points. Points the store can never take are set
aside (tracking.delivery). The training thread never waits and never sees a storage error
(they are counted, and reported once on the ``runlab`` logger).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import deque
from operator import itemgetter
from pathlib import Path
from typing import Any, Callable

from runlab.core.entities import MetricBatch, MetricKind
from runlab.core.errors import InvalidValueError
from runlab.core.names import storable_text as _storable_text
from runlab.core.settings import (
    DEFAULT_FLUSH_BATCH_POINTS,
    DEFAULT_FLUSH_INTERVAL_S,
    DEFAULT_HEARTBEAT_INTERVAL_S,
)
from runlab.tracking.delivery import Delivery
from runlab.tracking.journal import Journal, Record, journal_name, orphan_journals

log = logging.getLogger("runlab")
_first, _second, _third = itemgetter(0), itemgetter(1), itemgetter(2)

_WAIT_POLL_S = 0.05
# The flusher's writes wait at most this long (or a quarter of the interval) for SQLite's lock.
MAX_LOCK_WAIT_S = 0.25
# When neither the store nor the disk takes points, at most this many stay in memory (~100 B each).
DEFAULT_MAX_RETAINED_POINTS = 2_000_000

_all_loggers: "set[MetricLogger]" = set()
_all_lock = threading.Lock()


class MetricLogger:
    def __init__(
        self,
        backend: Any,  # a store.folder.WorkspaceFolder, or anything with .store and .journal_dir
        run_id: str,
        *,
        before_first_write: Callable[[], None] | None = None,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        flush_batch_points: int = DEFAULT_FLUSH_BATCH_POINTS,
        heartbeat_owner: str | None = None,
        heartbeat_interval_s: float = DEFAULT_HEARTBEAT_INTERVAL_S,
        max_retained_points: int = DEFAULT_MAX_RETAINED_POINTS,
    ) -> None:
        self.backend = backend
        self._before_first_write = before_first_write
        self.run_id = run_id
        self.flush_interval_s = flush_interval_s
        self.flush_batch_points = flush_batch_points
        self.heartbeat_owner = heartbeat_owner
        self.heartbeat_interval_s = heartbeat_interval_s
        self._series: dict[tuple[str, str], deque[tuple[Any, Any, float]]] = {}
        self._descriptions: dict[str, str] = {}
        self._pending = 0  # approximate count of buffered points, to flush early when large
        self._wake = threading.Event()
        self._flush_waiters: deque[threading.Event] = deque()
        self._thread: threading.Thread | None = None
        self._thread_pid = 0
        self._start_lock = threading.Lock()
        self._closed = False
        self.lock_wait_s = min(MAX_LOCK_WAIT_S, flush_interval_s / 4)
        self.max_retained_points = max_retained_points
        # One cycle at a time: the flusher's, or flush()'s own. Re-entrant: the SIGTERM handler may
        # flush and end runs on the main thread while it is inside write_later().
        self._cycle_lock = threading.RLock()
        self._closing = False
        self._gone = False
        self._delivery_obj: Delivery | None = None
        self._closing_delivery: Delivery | None = None  # the one writes use once the logger closes
        self._journal = Journal(backend.journal_dir / journal_name(run_id))
        self._journal_pending = False  # records in the journal that are not in the store yet
        self._replay_from = 0  # offset of the first of them
        self._retained = 0
        self._pending_changes: deque[Record] = deque()  # changes neither the store nor the disk took yet
        self.failures = 0
        self.points_written = 0
        self.points_journaled = 0
        self.points_rejected = 0
        self.points_dropped = 0
        self._warned = False
        self._last_heartbeat = 0.0
        with _all_lock:
            _all_loggers.add(self)

    # -- the hot path ----------------------------------------------------------------------

    def queue_for(self, name: str, kind: str = MetricKind.SCALAR) -> "deque[tuple[Any, Any, float]]":
        """The deque that points of ``name`` go to; created on first use."""
        key = (kind, name)
        q = self._series.get(key)
        if q is None:
            q = self._series.setdefault(key, deque())
            self._ensure_thread()
        return q

    def note_points(self, n: int = 1) -> None:
        self._pending += n
        if self._pending >= self.flush_batch_points:
            self._pending = 0
            self._wake.set()

    def describe(self, name: str, description: str) -> None:
        if description:
            if not isinstance(description, str) or not _storable_text(description):
                raise InvalidValueError(
                    f"metric {name!r}: the description must be text without NUL characters or lone surrogates, "
                    f"got {description!r}", name=name)
            self._descriptions[name] = description

    # -- control ---------------------------------------------------------------------------

    def _flusher_alive(self) -> bool:
        t = self._thread
        return t is not None and self._thread_pid == os.getpid() and t.is_alive()

    def _ensure_thread(self) -> None:
        if self._flusher_alive():
            return
        with self._start_lock:
            if self._flusher_alive():
                return
            self._closed = self._closing = False
            self._thread_pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name=f"runlab-flusher-{self.run_id}", daemon=True)
            self._thread.start()

    def start(self) -> None:
        self._ensure_thread()

    def flush(self, timeout_s: float | None = 60.0) -> bool:
        """Write everything logged so far; True when it is in the store (or, failing that, the journal)."""
        if not self._flusher_alive():
            self._write_cycle()  # no flusher in this process: write from here
            return True
        done = threading.Event()
        self._flush_waiters.append(done)
        self._wake.set()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        # Never wait on a thread that may be gone: the flusher can exit (close(), interpreter
        # shutdown) between the check above and its next cycle, and then nobody answers.
        while not done.wait(_WAIT_POLL_S):
            if not self._flusher_alive():
                self._write_cycle()
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return True

    def close(self, timeout_s: float | None = 60.0) -> bool:
        self._closing = True  # the last cycle replays the whole journal, with no time budget
        ok = self.flush(timeout_s)
        self._closed = True
        self._wake.set()
        with _all_lock:
            _all_loggers.discard(self)
        return ok

    # -- the flusher -----------------------------------------------------------------------

    def _run(self) -> None:
        _replay_orphans_once(self.backend)
        # Cycles keep a fixed rate (not "an interval after the last one ended"), so that the time
        # a cycle takes does not add to what a SIGKILL can lose.
        due = time.monotonic() + self.flush_interval_s
        while True:
            self._wake.wait(max(0.0, due - time.monotonic()))
            self._wake.clear()
            now = time.monotonic()
            if now >= due:
                due = max(due + self.flush_interval_s, now)
            try:
                self._write_cycle()
            except Exception as exc:  # never let the flusher die
                self._count_failure(exc)
            if self._closed:
                return

    def _drain(self) -> list[MetricBatch]:
        batches = []
        for (kind, name), q in list(self._series.items()):
            n = len(q)
            if not n:
                continue
            pop = q.popleft
            items = [pop() for _ in range(n)]
            # map(itemgetter) transposes in C; zip(*items) builds a huge argument tuple first
            values = list(map(_first, items))
            steps = list(map(_second, items))
            times = list(map(_third, items))
            batches.append(
                MetricBatch(name=name, kind=kind, steps=steps, times=times, values=values,
                            description=self._descriptions.get(name, ""))
            )
        self._pending = 0
        return batches

    @property
    def _delivery(self) -> Delivery:
        """Writes that give up quickly (the flusher's view of the store) while training goes on; once the
        logger is closing (the run ends, the process exits), the store's own patience: a slow server gets
        its time rather than the points being left in the journal."""
        if self._closing:
            if self._closing_delivery is None:
                self._closing_delivery = Delivery(self.backend.store, self.backend.journal_dir)
            return self._closing_delivery
        if self._delivery_obj is None:
            store = self.backend.store
            view = getattr(store, "with_lock_wait", None)
            self._delivery_obj = Delivery(view(self.lock_wait_s) if view else store, self.backend.journal_dir)
        return self._delivery_obj

    def _write_cycle(self) -> None:
        waiters = []
        while self._flush_waiters:
            waiters.append(self._flush_waiters.popleft())
        try:
            with self._cycle_lock:
                self._cycle()
        finally:
            for event in waiters:
                event.set()

    def _cycle(self) -> None:
        """One flush: the new points go to the store, or (in order behind older ones) to the journal.

        Nothing here waits on the store for more than a fraction of the flush interval, so the
        points of each interval reach the store or the fsynced journal before the next interval
        ends: that bounds what a SIGKILL can lose.
        """
        batches = self._drain()
        if (batches or self._journal_pending) and not self._gone and _folder_gone(self.backend):
            self._switch_to_fallback_journal()
        if self._before_first_write is not None and not self._gone:
            if batches:  # journal first: creating the run may wait on a busy store
                self._journal_batches(batches)
                batches = []
            try:
                self._before_first_write()
                self._before_first_write = None
            except Exception as exc:
                self._count_failure(exc)
        store_ready = self._before_first_write is None and not self._gone
        if batches:
            if store_ready and not self._journal_pending:
                self._write_direct(batches)
            else:  # behind the older records, on disk before anything waits on the store
                self._journal_batches(batches)
        if store_ready and self._journal_pending:
            self._replay_own(None if self._closing else self.flush_interval_s / 2)
        if self._pending_changes:
            self._settle_changes(store_ready)
        # a closed logger's run has ended: no heartbeat (at exit, lifecycle closes every logger once more)
        if (store_ready and self.heartbeat_owner and not self._closed
                and time.time() - self._last_heartbeat >= self.heartbeat_interval_s):
            self._heartbeat()

    def _write_direct(self, batches: list[MetricBatch]) -> None:
        points = sum(len(b.values) for b in batches)
        # the id goes with the first attempt: a server may apply the batch and die before it answers;
        # the journal keeps the same id, so its replay is applied once
        batch_id = uuid.uuid4().hex
        try:
            rejected = self._delivery.write(self.run_id, batches, batch_id)
        except Exception as exc:  # temporary: the store is busy or unavailable
            self._count_failure(exc)
            self._journal_batches(batches, batch_id)
            return
        self.points_written += points - rejected
        self.points_rejected += rejected

    def _journal_batches(self, batches: list[MetricBatch], batch_id: str | None = None) -> None:
        points = sum(len(b.values) for b in batches)
        try:
            self._journal.append_metrics(batch_id or uuid.uuid4().hex, self.run_id, batches)
        except OSError as exc:  # the disk is full too: keep the points in memory for a later cycle
            self._count_failure(exc)
            self._retain(batches)
            return
        self._journal_pending = True
        self.points_journaled += points
        self._retained = 0

    def _retain(self, batches: list[MetricBatch]) -> None:
        for batch in batches:
            q = self.queue_for(batch.name, batch.kind)
            q.extendleft(reversed(list(zip(batch.values, batch.steps, batch.times))))
        self._retained = sum(len(q) for q in self._series.values())
        over = self._retained - self.max_retained_points
        if over > 0:  # neither the store nor the disk takes anything: memory is the last bound
            for q in self._series.values():
                while over > 0 and q:
                    q.popleft()
                    over -= 1
                    self.points_dropped += 1
            log.error("runlab: neither the store nor the journal (%s) can take metrics of run %s; %d of the "
                      "oldest points held in memory were dropped so far (at most %d are held)",
                      self._journal.path, self.run_id, self.points_dropped, self.max_retained_points)

    def _replay_own(self, budget_s: float | None) -> None:
        """Write journaled records to the store, oldest first, for at most ``budget_s``."""
        deadline = None if budget_s is None else time.monotonic() + budget_s
        try:
            for record in self._journal.records(start=self._replay_from):
                self._delivery.apply(record)
                self._replay_from = record.end
                if deadline is not None and time.monotonic() >= deadline:
                    return  # the rest in the next cycles: this cycle's new points must not wait
        except Exception as exc:
            self._count_failure(exc)
            return
        self._journal.remove()
        self._journal_pending = False
        self._replay_from = 0
        log.info("runlab: the store is back; journaled metrics of run %s were written", self.run_id)

    def _switch_to_fallback_journal(self) -> None:
        self._gone = True
        fallback = self.backend.fallback_journal_dir() / journal_name(self.run_id)
        log.error(
            "runlab: the workspace folder %s was deleted or replaced while run %s was logging; nothing more "
            "can be written to it. The run's metrics from now on are kept in %s. Training goes on.",
            self.backend.path, self.run_id, fallback,
        )
        self._journal = Journal(fallback)
        self._replay_from = 0

    def write_later(self, record: Record) -> bool:
        """Write a change of the run (its end, tags, properties: a STATUS or UPDATE record) behind
        its metrics, when the store could not take it now.

        It goes to the journal; when the disk cannot take it either, it stays in memory and
        every later cycle (the one at exit too) tries again. True when it is on disk or stored.
        """
        with self._cycle_lock:
            self._pending_changes.append(record)
            self._settle_changes(store_ready=False)
            return not self._pending_changes

    def _settle_changes(self, store_ready: bool) -> None:
        while self._pending_changes:
            record = self._pending_changes[0]
            if store_ready and not self._journal_pending:
                try:
                    self._delivery.apply(record)
                    self._pending_changes.popleft()
                    continue
                except Exception as exc:
                    self._count_failure(exc)
            try:
                self._journal.append_change(record)
            except OSError as exc:
                self._count_failure(exc)
                return
            self._journal_pending = True
            self._pending_changes.popleft()

    @property
    def journal_path(self) -> Path:
        return self._journal.path

    @property
    def has_backlog(self) -> bool:
        """True while journaled records or held-back changes wait for the store."""
        return self._journal_pending or bool(self._pending_changes)

    @property
    def store_gone(self) -> bool:
        """True when the workspace folder was deleted while this run logged (see _cycle)."""
        return self._gone

    def _heartbeat(self) -> None:
        try:
            self._delivery.store.heartbeat(self.run_id, self.heartbeat_owner)
            self._last_heartbeat = time.time()
        except Exception as exc:
            self._count_failure(exc)

    def _count_failure(self, exc: BaseException) -> None:
        self.failures += 1
        log.debug("runlab: store write failed for run %s: %r", self.run_id, exc)
        if not self._warned:
            self._warned = True
            log.warning(
                "runlab: metrics of run %s cannot be written now (the store is busy or unavailable: %s); "
                "they are kept in %s and written when it is back. Training goes on. (Reported once.)",
                self.run_id, type(exc).__name__, self._journal.path,
            )


_orphans_lock = threading.Lock()
_orphans_replayed: set[Path] = set()


def _replay_orphans_once(backend: Any) -> None:
    """Journals that dead processes left are replayed once per process, beside the flushers.

    In a thread of its own: a large journal must not hold up this process's own flushes.
    """
    journal_dir = Path(backend.journal_dir)
    with _orphans_lock:
        if journal_dir in _orphans_replayed or not orphan_journals(journal_dir):
            _orphans_replayed.add(journal_dir)
            return
        _orphans_replayed.add(journal_dir)

    def work() -> None:
        try:
            Delivery(backend.store, journal_dir).replay_orphans()
        except Exception as exc:
            log.debug("runlab: replaying journals left in %s failed (the next process tries again): %r",
                      journal_dir, exc)

    threading.Thread(target=work, name="runlab-replay-orphans", daemon=True).start()


def _folder_gone(backend: Any) -> bool:
    is_gone = getattr(backend, "is_gone", None)
    return bool(is_gone()) if is_gone is not None else False


def flush_all(timeout_s: float = 60.0) -> None:
    with _all_lock:
        loggers = list(_all_loggers)
    for lg in loggers:
        lg.flush(timeout_s)


def _after_fork_in_child() -> None:
    # The flusher thread does not survive fork; loggers start a new one on next use. Its locks
    # may have been held at the fork: the child gets fresh ones.
    global _orphans_lock
    _orphans_lock = threading.Lock()
    for lg in list(_all_loggers):
        lg._thread = None
        lg._flush_waiters.clear()
        lg._cycle_lock = threading.RLock()
        lg._start_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ = ["MetricLogger", "flush_all"]
