"""The metric logger: ``log()`` appends to memory and returns; a flusher thread writes batches.

Per metric name there is one deque of ``(value, step, time)``; deque appends and pops are
atomic, so ``log()`` takes no lock. The flusher wakes every ``flush_interval_s`` (sooner when
many points wait, or when ``flush()`` asks), drains the deques, and writes one atomic batch.
When the store cannot take it, the batch goes to the journal (local disk, fsynced) and is
replayed before the next write; the training thread never waits and never sees a storage
error (they are counted, and reported once on the ``runlab`` logger).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import deque
from operator import itemgetter
from typing import Any, Callable

from runlab.core.entities import MetricBatch, MetricKind
from runlab.core.settings import (
    DEFAULT_FLUSH_BATCH_POINTS,
    DEFAULT_FLUSH_INTERVAL_S,
    DEFAULT_HEARTBEAT_INTERVAL_S,
)
from runlab.tracking.journal import Journal, journal_name, orphan_journals, replay

log = logging.getLogger("runlab")
_first, _second, _third = itemgetter(0), itemgetter(1), itemgetter(2)

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
        self._journal = Journal(backend.journal_dir / journal_name(run_id))
        self._journal_pending = False
        self.failures = 0
        self.points_written = 0
        self.points_journaled = 0
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
            self._descriptions[name] = description

    # -- control ---------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread_pid == os.getpid() and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is not None and self._thread_pid == os.getpid() and self._thread.is_alive():
                return
            self._closed = False
            self._thread_pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name=f"runlab-flusher-{self.run_id}", daemon=True)
            self._thread.start()

    def start(self) -> None:
        self._ensure_thread()

    def flush(self, timeout_s: float | None = 60.0) -> bool:
        """Write everything logged so far; True when it is in the store (or, failing that, the journal)."""
        if self._thread is None or self._thread_pid != os.getpid() or not self._thread.is_alive():
            self._write_cycle()  # no flusher in this process: write from here
            return True
        done = threading.Event()
        self._flush_waiters.append(done)
        self._wake.set()
        return done.wait(timeout_s)

    def close(self, timeout_s: float | None = 60.0) -> bool:
        ok = self.flush(timeout_s)
        self._closed = True
        self._wake.set()
        with _all_lock:
            _all_loggers.discard(self)
        return ok

    # -- the flusher -----------------------------------------------------------------------

    def _run(self) -> None:
        self._replay_orphans()
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
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

    def _write_cycle(self) -> None:
        waiters = []
        while self._flush_waiters:
            waiters.append(self._flush_waiters.popleft())
        try:
            if self._before_first_write is not None:
                try:
                    self._before_first_write()
                    self._before_first_write = None
                except Exception as exc:
                    self._count_failure(exc)
                    return  # the points stay in memory; the next cycle tries again
            batches = self._drain()
            if self._journal_pending:
                self._try_replay()
            if batches:
                self._write(batches)
            if self.heartbeat_owner and time.time() - self._last_heartbeat >= self.heartbeat_interval_s:
                self._heartbeat()
        finally:
            for event in waiters:
                event.set()

    def _write(self, batches: list[MetricBatch]) -> None:
        points = sum(len(b.values) for b in batches)
        if not self._journal_pending:
            try:
                self.backend.store.append_metrics(self.run_id, batches)
                self.points_written += points
                return
            except Exception as exc:
                self._count_failure(exc)
        try:
            self._journal.append(uuid.uuid4().hex, self.run_id, batches)
            self._journal_pending = True
            self.points_journaled += points
        except OSError as exc:  # the disk is gone too: keep the points in memory for later
            self._count_failure(exc)
            for batch in batches:
                q = self.queue_for(batch.name, batch.kind)
                q.extendleft(reversed(list(zip(batch.values, batch.steps, batch.times))))

    def _try_replay(self) -> None:
        try:
            replay(self._journal, self.backend.store)
            self._journal_pending = False
            log.info("runlab: the store is back; journaled metrics of run %s were written", self.run_id)
        except Exception as exc:
            self._count_failure(exc)

    def _replay_orphans(self) -> None:
        try:
            for path in orphan_journals(self.backend.journal_dir):
                replay(Journal(path), self.backend.store)
        except Exception as exc:
            self._count_failure(exc)

    def _heartbeat(self) -> None:
        try:
            self.backend.store.heartbeat(self.run_id, self.heartbeat_owner)
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


def flush_all(timeout_s: float = 60.0) -> None:
    with _all_lock:
        loggers = list(_all_loggers)
    for lg in loggers:
        lg.flush(timeout_s)


def _after_fork_in_child() -> None:
    # The flusher thread does not survive fork; loggers start a new one on next use.
    for lg in list(_all_loggers):
        lg._thread = None
        lg._flush_waiters.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ = ["MetricLogger", "flush_all"]
