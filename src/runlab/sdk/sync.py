"""``runlab sync``: upload offline runs (and leftover journals) into a workspace."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from runlab.core.entities import MetricBatch, RunRecord
from runlab.core.errors import RunNotFoundError
from runlab.core.names import id_problem, shown
from runlab.core.status import RunStatus
from runlab.store.folder import WorkspaceFolder
from runlab.tracking.delivery import Delivery

SYNCED_FROM = "runlab.synced_from"  # property of a synced run: where it was recorded


@dataclass(frozen=True)
class SyncedRun:
    run_id: str
    status: str
    metrics: int
    points: int
    files: int


def replay_orphan_journals(folder: WorkspaceFolder) -> int:
    """Write the journals that dead processes left behind. Returns the number of points."""
    return Delivery(folder.store, folder.journal_dir).replay_orphans()


def sync_offline_runs(
    source: WorkspaceFolder,
    target: WorkspaceFolder,
    progress: Callable[[str], None] | None = None,
) -> list[SyncedRun]:
    """Copy every ended run of ``source`` (the offline folder) that ``target`` lacks.

    Runs still active are left for a later sync. Copies are idempotent: a run already in the
    target is skipped. Source runs are kept (marked as synced) so nothing is lost on failure.
    """
    if source.path == target.path:
        return []
    replay_orphan_journals(source)
    records = source.store.list_runs()  # also marks runs of dead processes Failed
    records.sort(key=lambda r: r.created_at)  # parents before children
    done: list[SyncedRun] = []
    for record in records:
        problem = id_problem(record.run_id)
        if problem is not None:  # no folder can be made for it in the target: leave it where it is
            if progress:
                progress(f"skipped {shown(record.run_id)}: not a valid run id ({problem})")
            continue
        if not record.status.is_terminal:
            if progress:
                progress(f"skipped {record.run_id}: still {record.status} (sync it when it ends)")
            continue
        try:
            existing: RunRecord | None = target.store.get_run(record.run_id)
        except RunNotFoundError:
            existing = None
        if existing is not None and (existing.status.is_terminal or SYNCED_FROM not in existing.properties):
            continue  # already there
        # absent, or a copy that an earlier sync began and did not end (a server that went away): go on with it
        done.append(_copy_run(source, target, record, resume=existing is not None))
        source.store.set_meta(f"synced:{record.run_id}", f"{target.workspace_id} {time.time()}")
        if progress:
            s = done[-1]
            progress(f"synced {s.run_id} ({s.status}): {s.metrics} metrics, {s.points} points, {s.files} files")
    return done


def _copy_run(source: WorkspaceFolder, target: WorkspaceFolder, record: RunRecord, resume: bool = False) -> SyncedRun:
    """Copy one run. The run's end is written last, so a copy that stops half-way stays active in the
    target and the next sync finishes it (``resume``): metrics already there (each one is written in one
    batch, all or nothing) are not written again; files are rewritten."""
    store = target.store
    present = {m.name for m in store.get_metric_summaries(record.run_id)} if resume else set()
    if not resume:
        store.create_run(
            record.run_id,
            record.experiment_name,
            run_type=record.run_type,
            status=RunStatus.RUNNING,
            display_name=record.display_name,
            parent_run_id=record.parent_run_id,
            target=record.target,
            definition=record.definition,
            tags=record.tags,
            properties={**record.properties, SYNCED_FROM: str(source.path)},
            created_at=record.created_at,
        )
    points = 0
    summaries = source.store.get_metric_summaries(record.run_id)
    for summary in summaries:
        if summary.name in present:
            continue
        series = source.store.get_metric_series(record.run_id, summary.name)
        values = series.values.tolist() if hasattr(series.values, "tolist") else list(series.values)
        batch = MetricBatch(
            name=summary.name,
            kind=summary.kind,
            steps=series.steps.tolist(),
            times=series.times.tolist(),
            values=values,
            description=summary.description,
        )
        store.append_metrics(record.run_id, [batch])
        points += len(values)
    names = source.artifacts.list(record.run_id)
    for name in names:
        with source.artifacts.open(record.run_id, name) as stream:
            target.artifacts.put_stream(record.run_id, name, stream)
    if record.started_at is not None:
        store.set_status(record.run_id, RunStatus.RUNNING, when=record.started_at)
    store.set_status(record.run_id, record.status, error=record.error, when=record.ended_at)
    return SyncedRun(record.run_id, str(record.status), len(summaries), points, len(names))
