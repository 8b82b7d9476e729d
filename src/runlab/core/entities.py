"""Records of tracking the store hands out (experiments, runs, notes, metrics): frozen dataclasses, no
behaviour beyond derived fields.

The records of a workspace's assets (environments, compute targets, datastores, datasets, run inputs,
models) are in :mod:`runlab.core.assets`: a training script that only logs does not build them (each
frozen dataclass costs ~0.6 ms at import, paid by every process that starts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from runlab.core.status import RunStatus, RunType


@dataclass(frozen=True)
class ExperimentRecord:
    experiment_id: int
    name: str
    created_at: float
    tags: Mapping[str, str] = field(default_factory=dict)
    archived_at: float | None = None  # archived (Azure ML v1's Experiment.archive()) when set

    @property
    def archived(self) -> bool:
        return self.archived_at is not None


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    experiment_name: str
    status: RunStatus
    run_type: RunType
    created_at: float
    display_name: str | None = None
    parent_run_id: str | None = None
    target: str = "local"
    started_at: float | None = None
    ended_at: float | None = None
    heartbeat_at: float | None = None
    owner: str | None = None  # process identity that heartbeats the run (core.process)
    error: Mapping[str, Any] | None = None
    definition: Mapping[str, Any] | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    properties: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    # (status, unix time) in order; filled when one run is read (get_run), empty in listings
    status_history: tuple[tuple[str, float], ...] = ()
    archived_at: float | None = None  # archived from the studio (hidden from run listings) when set

    @property
    def archived(self) -> bool:
        return self.archived_at is not None

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.ended_at
        if end is None:
            import time

            end = time.time()
        return max(0.0, end - self.started_at)


@dataclass(frozen=True)
class RunNote:
    """A note someone added to a run (the studio's "Add a note"), oldest first."""

    note_id: int
    run_id: str
    text: str
    created_at: float
    author: str | None = None


class MetricKind:
    """What a metric name holds; decides the shape ``get_metrics`` returns."""

    SCALAR = "scalar"  # run.log
    LIST = "list"  # run.log_list
    ROW = "row"  # run.log_row / run.log_table: a table, column -> values
    IMAGE = "image"  # run.log_image: the value is the run file name of the image
    # evaluation logs (tracking.evaluation): the value is Azure's dict, {"schema_type": <the kind>, ...}
    CONFUSION_MATRIX = "confusion_matrix"  # run.log_confusion_matrix
    ACCURACY_TABLE = "accuracy_table"  # run.log_accuracy_table
    RESIDUALS = "residuals"  # run.log_residuals
    PREDICTIONS = "predictions"  # run.log_predictions

    EVALUATION = (CONFUSION_MATRIX, ACCURACY_TABLE, RESIDUALS, PREDICTIONS)
    ALL = (SCALAR, LIST, ROW, IMAGE, *EVALUATION)


@dataclass(frozen=True)
class MetricBatch:
    """Points of one metric of one run, in log order. A step of ``None`` means "next index"."""

    name: str
    kind: str
    steps: Sequence[int | None]
    times: Sequence[float]
    values: Sequence[Any]
    description: str = ""


@dataclass(frozen=True)
class MetricSummary:
    """One row per run and metric: what tables and sorts need without reading the series."""

    run_id: str
    name: str
    kind: str
    count: int
    last: Any
    last_step: int | None
    last_time: float | None
    min: float | None
    max: float | None
    description: str = ""

