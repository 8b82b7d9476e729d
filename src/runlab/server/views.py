"""From the store's records to the API's response models: who ran it, the timeline, the arguments."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np

from runlab.core.entities import MetricSummary, RunRecord
from runlab.core.layout import LOG_PREFIXES
from runlab.core.status import RunStatus, RunType
from runlab.server import models
from runlab.store.downsample import downsample
from runlab.store.sql.queries import RunRow, SeriesData

# What a submitted run goes through before it ends; other runs start Running.
SUBMITTED_FLOW = (RunStatus.QUEUED, RunStatus.PREPARING, RunStatus.STARTING, RunStatus.RUNNING,
                  RunStatus.FINALIZING)
USER_PROPERTIES = ("runlab.user", "azureml.user", "user")


def user_of(properties: Mapping[str, str], owner: str | None) -> str | None:
    """Who ran it: a user property when recorded, else the host of the process that ran it."""
    for key in USER_PROPERTIES:
        if properties.get(key):
            return properties[key]
    if owner:
        return owner.rsplit(":", 2)[0]
    return None


def _error_message(error: Mapping[str, Any] | None) -> str | None:
    if not error:
        return None
    return str(error.get("message") or error.get("code") or "failed")


def clean(value: Any) -> Any:
    """``value`` with NaN and infinities as None, numpy scalars as Python ones (JSON-safe)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return clean(value.item())
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


NON_FINITE_NAMES = {math.inf: "inf", -math.inf: "-inf"}


def shown_value(value: Any) -> Any:
    """A summary's value for JSON, as tables show it: a non-finite float as ``"inf"``, ``"-inf"`` or
    ``"nan"`` (JSON has no such numbers, and ``null`` would read as no value at all)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return NON_FINITE_NAMES.get(value, "nan")
    return clean(value)


def run_info(row: RunRow) -> models.RunInfo:
    return models.RunInfo(
        run_id=row.run_id, display_name=row.display_name, experiment=row.experiment_name, status=str(row.status),
        run_type=str(row.run_type), target=row.target, created_at=row.created_at, started_at=row.started_at,
        ended_at=row.ended_at, duration_s=row.duration_s, user=user_of(row.properties, row.owner),
        parent_run_id=row.parent_run_id, child_count=row.child_count, tags=dict(row.tags),
        metrics={str(k): shown_value(v) for k, v in row.metrics.items()}, error_message=_error_message(row.error),
        properties=dict(row.properties), archived=row.archived_at is not None,
    )


def timeline(record: RunRecord) -> list[models.TimelineStep]:
    """The statuses a run goes through, each done, current, pending or skipped, with its time when
    the store knows it (created, started, ended)."""
    status = record.status
    flow: Sequence[RunStatus] = SUBMITTED_FLOW if record.run_type == RunType.SUBMITTED else (RunStatus.RUNNING,)
    known: dict[RunStatus, float | None] = {RunStatus.QUEUED: record.created_at, RunStatus.RUNNING: record.started_at}
    if record.run_type != RunType.SUBMITTED:
        known[RunStatus.RUNNING] = record.started_at or record.created_at
    for name, at in record.status_history:  # when each status was first reached, where recorded
        if known.get(RunStatus(name)) is None:
            known[RunStatus(name)] = at
    steps: list[models.TimelineStep] = []
    if status in flow:
        current = flow.index(status)
        for i, step in enumerate(flow):
            state = "done" if i < current else ("current" if i == current else "pending")
            steps.append(models.TimelineStep(status=str(step), state=state, at=known.get(step) if i <= current else None))
        steps.append(models.TimelineStep(status=str(RunStatus.COMPLETED), state="pending", at=None))
        return steps
    if status == RunStatus.NOT_STARTED:
        steps.append(models.TimelineStep(status=str(status), state="current", at=record.created_at))
        steps.extend(models.TimelineStep(status=str(s), state="pending", at=None) for s in flow)
        return steps
    started = record.started_at is not None
    for step in flow:
        if step == RunStatus.QUEUED:
            state = "done"
        elif step == RunStatus.FINALIZING:
            state = "done" if status == RunStatus.COMPLETED else "skipped"
        elif step == RunStatus.RUNNING:
            state = "done" if started else "skipped"
        else:  # Preparing, Starting: happened if the run got to Running
            state = "done" if started else "skipped"
        steps.append(models.TimelineStep(status=str(step), state=state, at=known.get(step) if state == "done" else None))
    if status == RunStatus.CANCEL_REQUESTED:
        steps.append(models.TimelineStep(status=str(status), state="current", at=None))
        steps.append(models.TimelineStep(status=str(RunStatus.CANCELED), state="pending", at=None))
    else:
        steps.append(models.TimelineStep(status=str(status), state="done", at=record.ended_at))
    return steps


def _first(mapping: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if mapping.get(key) not in (None, "", [], {}):
            return mapping[key]
    return None


def run_details(record: RunRecord, *, child_count: int, file_names: Sequence[str], studio_url: str) -> models.RunDetails:
    """The run page's data. Arguments, inputs, environment and snapshot are read from the run's
    definition under Azure ML's names (``arguments``, ``inputDatasets``/``data``, ``environment``,
    ``snapshotId``), also inside ``runDefinition``."""
    definition = dict(record.definition or {})
    inner = definition.get("runDefinition") if isinstance(definition.get("runDefinition"), dict) else {}
    sources: list[Mapping[str, Any]] = [definition, inner or {}]

    def pick(*keys: str) -> Any:
        for source in sources:
            found = _first(source, *keys)
            if found is not None:
                return found
        return None

    arguments = pick("arguments", "args") or []
    inputs = pick("inputDatasets", "inputs", "data", "inputDatasetPaths") or []
    if isinstance(inputs, dict):
        inputs = [{"name": k, "value": v} for k, v in inputs.items()]
    environment = pick("environment", "environmentDefinition")
    snapshot_id = pick("snapshotId", "snapshot_id") or record.properties.get("runlab.snapshot_id") \
        or record.properties.get("ContentSnapshotId")
    return models.RunDetails(
        run_id=record.run_id, display_name=record.display_name, experiment=record.experiment_name,
        status=str(record.status), run_type=str(record.run_type), target=record.target,
        created_at=record.created_at, started_at=record.started_at, ended_at=record.ended_at,
        duration_s=record.duration_s, user=user_of(record.properties, record.owner),
        parent_run_id=record.parent_run_id, child_count=child_count, tags=dict(record.tags), metrics={},
        error_message=_error_message(record.error), properties=dict(record.properties), archived=record.archived,
        description=record.description, error=clean(dict(record.error)) if record.error else None,
        definition=clean(definition), arguments=clean(list(arguments) if isinstance(arguments, (list, tuple)) else [arguments]),
        inputs=clean(list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]),
        environment=clean(environment) if isinstance(environment, dict) else (
            {"name": str(environment)} if environment else None),
        snapshot_id=str(snapshot_id) if snapshot_id else None,
        timeline=timeline(record),
        log_files=[n for n in file_names if n.startswith(LOG_PREFIXES)],
        portal_url=f"{studio_url}/runs/{record.run_id}",
    )


def metric_info(summary: MetricSummary) -> models.MetricInfo:
    return models.MetricInfo(
        name=summary.name, kind=summary.kind, count=summary.count, last=shown_value(summary.last),
        last_step=summary.last_step, last_time=summary.last_time, min=shown_value(summary.min),
        max=shown_value(summary.max),
        description=summary.description,
    )


def _float_list(values: Any) -> list[Any]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size and not np.isfinite(arr).all():
        out: list[Any] = arr.tolist()
        return [v if math.isfinite(v) else None for v in out]
    result: list[Any] = arr.tolist()
    return result


MAX_NON_NUMERIC_POINTS = 10_000


def step_window(data: SeriesData, min_step: float | None, max_step: float | None) -> SeriesData:
    """The points of ``data`` with ``min_step <= step <= max_step`` (a zoomed chart's visible range),
    so that downsampling spends the point budget on what is shown."""
    if min_step is None and max_step is None:
        return data
    keep = np.ones(len(data.steps), dtype=bool)
    if min_step is not None:
        keep &= data.steps >= min_step
    if max_step is not None:
        keep &= data.steps <= max_step
    values = data.values[keep] if data.is_numeric else [v for v, k in zip(data.values, keep) if k]
    first = int(np.argmax(keep)) if keep.any() else len(keep)
    return dataclasses.replace(data, start=data.start + first, steps=data.steps[keep], times=data.times[keep],
                               values=values)


def series(data: SeriesData, points: int) -> models.Series:
    """A series for a chart: numeric series downsampled to ``points`` (keeping each bucket's
    extremes); other kinds (strings, lists, tables) as they are, at most the last 10,000 points."""
    if data.is_numeric and len(data.values) and data.values.dtype.kind in "fiu":
        kept = downsample(data.steps, data.values, data.times, points)
        values = kept.values.tolist() if kept.values.dtype.kind in "iu" else _float_list(kept.values)
        return models.Series(
            run_id=data.run_id, name=data.name, kind=data.kind, count=data.count, start=data.start,
            downsampled=kept.is_downsampled, steps=kept.steps.tolist(), values=values, times=kept.times.tolist(),
        )
    values = list(data.values)
    steps, times = data.steps, data.times
    cut = max(0, len(values) - MAX_NON_NUMERIC_POINTS)
    return models.Series(
        run_id=data.run_id, name=data.name, kind=data.kind, count=data.count, start=data.start + cut,
        downsampled=False, steps=steps[cut:].tolist(), values=clean(values[cut:]), times=times[cut:].tolist(),
    )
