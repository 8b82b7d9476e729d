"""Getting points into the store: a temporary failure waits, a permanent one sets the bad points aside.

A store failure is *temporary* (:class:`~runlab.core.errors.StoreUnavailableError`: locked,
disk full, server down) or *permanent* (anything else: a value the store can never hold, a run
that does not exist). A temporary failure leaves the points where they are (memory or journal)
for a later try. A permanent one must not block the run's other points forever: the failing
write is split (by metric, then by halves of the points) until the points the store refuses are
found; those are written to ``<journal dir>/rejected/<run id>.jsonl`` with the reason, a warning
names them, and everything else is written.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

from runlab.core.entities import MetricBatch
from runlab.core.errors import RunNotFoundError, StoreError
from runlab.core.status import RunStatus
from runlab.tracking.journal import STATUS, UPDATE, Journal, Record, Scan, orphan_journals

log = logging.getLogger("runlab")

REJECTED_DIR = "rejected"
# Splitting a write to find bad points costs one store write per piece: past this many pieces
# the rest of the write is set aside whole rather than probed point by point.
MAX_PROBES = 64
UPDATE_OPS = ("set_tags", "remove_tags", "add_properties", "set_display_name")  # store methods a journaled change may call
LOST_CODE = "RunLost"  # the reaper's error code: a presumption the journal's own status overrides


def is_temporary(exc: BaseException) -> bool:
    """A failure that a later try may not meet (``StoreError.temporary``); anything else is permanent."""
    return isinstance(exc, StoreError) and exc.temporary


class Delivery:
    """Writes batches and journal records of runs of one workspace into its store."""

    def __init__(self, store: Any, journal_dir: Path) -> None:
        self.store = store
        self.journal_dir = journal_dir

    def write(self, run_id: str, batches: Sequence[MetricBatch], batch_id: str | None = None) -> int:
        """Write ``batches``; returns the points set aside. Raises only for a temporary failure."""
        try:
            self.store.append_metrics(run_id, batches, batch_id=batch_id)
            return 0
        except Exception as exc:
            if is_temporary(exc):
                raise
            if isinstance(exc, RunNotFoundError):
                return self._reject(run_id, batches, exc)
            probes = [MAX_PROBES]
            return self._split(run_id, list(batches), batch_id, exc, probes)

    def _split(self, run_id: str, batches: list[MetricBatch], batch_id: str | None, exc: Exception,
               probes: list[int]) -> int:
        if probes[0] <= 0:
            return self._reject(run_id, batches, exc)
        if len(batches) > 1:
            pieces = [[b] for b in batches]
        elif len(batches[0].values) > 1:
            b = batches[0]
            half = len(b.values) // 2
            pieces = [[_slice(b, 0, half)], [_slice(b, half, len(b.values))]]
        else:
            return self._reject(run_id, batches, exc)
        rejected = 0
        for i, piece in enumerate(pieces):
            sub_id = None if batch_id is None else f"{batch_id}/{i}"
            probes[0] -= 1
            try:
                self.store.append_metrics(run_id, piece, batch_id=sub_id)
            except Exception as piece_exc:
                if is_temporary(piece_exc):
                    raise
                rejected += self._split(run_id, piece, sub_id, piece_exc, probes)
        return rejected

    def _reject(self, run_id: str, batches: Sequence[MetricBatch], exc: Exception) -> int:
        path = self.journal_dir / REJECTED_DIR / f"{_safe(run_id)}.jsonl"
        points = sum(len(b.values) for b in batches)
        names = sorted({b.name for b in batches})
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="ascii") as f:
                for b in batches:
                    f.write(json.dumps({
                        "run_id": run_id, "name": b.name, "kind": b.kind, "steps": list(b.steps),
                        "times": list(b.times), "values": list(b.values), "reason": repr(exc),
                        "rejected_at": time.time(),
                    }, default=repr, allow_nan=True) + "\n")
            where = f"set aside in {path}"
        except (OSError, ValueError) as write_exc:
            where = f"and could not be set aside ({write_exc})"
        log.warning(
            "runlab: the store refuses %d point(s) of metric(s) %s of run %s (%s: %s); they were %s. "
            "The run's other points are written.",
            points, ", ".join(map(ascii, names[:5])) + (" ..." if len(names) > 5 else ""), ascii(run_id),
            type(exc).__name__, exc, where,
        )
        return points

    # -- journal records -------------------------------------------------------------------

    def apply(self, record: Record) -> None:
        """Write one journal record (idempotent). Raises only for a temporary failure."""
        if record.kind == STATUS:
            self._apply_status(record)
        elif record.kind == UPDATE:
            self._apply_update(record)
        elif record.batches:
            self.write(record.run_id, record.batches, batch_id=record.batch_id)

    def _apply_status(self, record: Record) -> None:
        """The reaper marks a dead owner's run Failed ("RunLost") as a presumption; the status the process
        itself journaled before it exited is the truth (apply_change writes it over such a loss)."""
        assert record.status is not None
        try:
            apply_change(self.store, record)
        except RunNotFoundError:
            return

    def _apply_update(self, record: Record) -> None:
        try:
            apply_change(self.store, record)
        except Exception as exc:
            if is_temporary(exc):
                raise
            assert record.update is not None
            log.warning("runlab: a journaled change of run %s (%s %s) cannot be applied: %s: %s; it is skipped",
                        ascii(record.run_id), record.update.get("op"), ascii(record.update.get("args"))[:200],
                        type(exc).__name__, exc)

    def replay(self, journal: Journal) -> int:
        """Apply every record of ``journal``, then delete it. Returns the points in it.

        A temporary store failure stops the replay and keeps the file (the next replay starts
        over; applied records are recognised by their batch id). Damaged regions are skipped
        with a warning, every whole record is applied.
        """
        points = 0
        scan = Scan()
        for record in journal.records(scan=scan):
            self.apply(record)
            points += record.points
        if scan.skipped_bytes:
            log.warning("runlab: journal %s had %d damaged region(s) (%d bytes: a write cut short) that were "
                        "skipped; every whole record in it was written", journal.path, scan.skipped_regions,
                        scan.skipped_bytes)
        journal.remove()
        return points

    def replay_orphans(self) -> int:
        """Replay the journals of processes that are gone. Returns the points."""
        return sum(self.replay(Journal(path)) for path in orphan_journals(self.journal_dir))


def apply_change(store: Any, record: Record) -> bool:
    """Write a STATUS or UPDATE record into ``store``; every error is raised. For a STATUS record,
    False when the run had ended already (its end is not changed)."""
    if record.kind == STATUS:
        assert record.status is not None
        return bool(store.set_status(record.run_id, RunStatus(record.status["status"]), error=record.status.get("error"),
                                     when=record.status.get("when"), only_if_active=True, over_lost=True))
    assert record.kind == UPDATE and record.update is not None
    op = record.update.get("op")
    if op not in UPDATE_OPS:
        raise ValueError(f"unknown change {op!r} in a journal record")
    getattr(store, str(op))(record.run_id, record.update.get("args"))
    return True


def _slice(b: MetricBatch, start: int, stop: int) -> MetricBatch:
    return MetricBatch(name=b.name, kind=b.kind, steps=list(b.steps[start:stop]), times=list(b.times[start:stop]),
                       values=list(b.values[start:stop]), description=b.description)


def _safe(run_id: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in run_id)[:200] or "run"


def _replay_orphans_of(folder: Any) -> None:
    """``WorkspaceFolder.journal_replayer``: the journals dead processes left in ``folder``, written."""
    journal_dir = Path(folder.journal_dir)
    if orphan_journals(journal_dir):
        Delivery(folder.store, journal_dir).replay_orphans()


def _install() -> None:
    from runlab.store.folder import WorkspaceFolder

    WorkspaceFolder.journal_replayer = _replay_orphans_of


_install()
