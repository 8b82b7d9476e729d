"""The shapes of the REST API's responses (pydantic), documented in its OpenAPI schema.

Times are unix seconds (floats). Metric values that are NaN or infinite are sent as ``null``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="null")


class ErrorDetail(_Model):
    message: str = Field(description="what went wrong and what to do about it")
    type: str = Field(description="the error's class, for example RunNotFoundError or ValidationError")
    details: list[dict[str, Any]] | None = Field(None, description="for validation errors: each bad parameter")


class ErrorResponse(_Model):
    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "bad input"},
    404: {"model": ErrorResponse, "description": "no such run, experiment, metric or file"},
    422: {"model": ErrorResponse, "description": "a parameter is missing or invalid"},
    503: {"model": ErrorResponse, "description": "the store is busy or unavailable; retry"},
}


class WorkspaceInfo(_Model):
    name: str
    id: str
    path: str
    created_at: float
    studio_url: str = Field(description="base URL that run.get_portal_url() points to")


class ExperimentInfo(_Model):
    name: str
    created_at: float
    run_count: int = Field(description="top-level runs (child runs are counted under their parent)")
    last_run_id: str | None
    last_run_at: float | None
    status_counts: dict[str, int] = Field(description="top-level runs per status")


class RunInfo(_Model):
    """A run as a row of the runs table."""

    run_id: str
    display_name: str | None
    experiment: str
    status: str
    run_type: str
    target: str
    created_at: float
    started_at: float | None
    ended_at: float | None
    duration_s: float | None
    user: str | None = Field(description="who started the run (user or host that ran it)")
    parent_run_id: str | None
    child_count: int = 0
    tags: dict[str, str]
    metrics: dict[str, Any] = Field(description="last value of each metric asked for with metric=")
    error_message: str | None = None


class RunList(_Model):
    total: int = Field(description="runs that match the filters, on every page")
    offset: int
    limit: int
    runs: list[RunInfo]


class TimelineStep(_Model):
    status: str
    state: str = Field(description="done, current or pending")
    at: float | None = Field(description="when the run entered this status, when known")


class RunDetails(RunInfo):
    """Everything the run page shows about a run."""

    properties: dict[str, str]
    description: str
    error: dict[str, Any] | None
    definition: dict[str, Any]
    arguments: list[Any]
    inputs: list[Any]
    environment: dict[str, Any] | None
    snapshot_id: str | None
    timeline: list[TimelineStep]
    log_files: list[str]
    portal_url: str


class MetricInfo(_Model):
    name: str
    kind: str = Field(description="scalar, list, row (a table) or image")
    count: int
    last: Any
    last_step: int | None
    last_time: float | None
    min: float | None
    max: float | None
    description: str


class Series(_Model):
    """Points of one metric of one run, maybe downsampled (first/min/max/last of each bucket)."""

    run_id: str
    name: str
    kind: str
    count: int = Field(description="points the metric holds in all")
    start: int = Field(description="index of the first point asked for")
    downsampled: bool = Field(description="true when points were dropped to fit points=")
    steps: list[int]
    values: list[Any]
    times: list[float]


class SeriesSet(_Model):
    name: str
    series: list[Series] = Field(description="one per run that has the metric, in the order asked")
    missing: list[str] = Field(description="runs asked for that do not have the metric")


class RunComparison(_Model):
    runs: list[RunDetails]
    metrics: dict[str, list[MetricInfo]] = Field(description="run id -> its metrics")


class FileInfo(_Model):
    name: str
    size: int
    content_type: str


class LogFile(_Model):
    name: str
    size: int


class LogTail(_Model):
    name: str
    size: int = Field(description="size of the file in bytes now")
    start: int = Field(description="byte offset of the first character of text")
    end: int = Field(description="byte offset after text: stream from here")
    text: str


class SnapshotFile(_Model):
    path: str
    size: int
    sha256: str


class SnapshotInfo(_Model):
    snapshot_id: str
    created: str | None
    source: str | None
    file_count: int
    total_bytes: int
    git: dict[str, Any] | None
    files: list[SnapshotFile]


class EnvironmentInfo(_Model):
    name: str
    version: str
    python: str | None = None
    build_status: str | None = Field(None, description="Succeeded, Failed, Running, NotBuilt")
    definition: dict[str, Any] = Field(default_factory=dict)
    build_log: str | None = Field(None, description="run file name or path of the last build log")


class ComputeTargetInfo(_Model):
    name: str
    type: str
    state: str = Field(description="idle or busy")
    max_nodes: int | None = None
    running: int = 0
    queued: int = 0


class DatastoreInfo(_Model):
    name: str
    type: str
    path: str | None = None
    is_default: bool = False


class DatasetInfo(_Model):
    name: str
    version: int
    type: str
    created_at: float | None = None
    description: str = ""


class ModelInfo(_Model):
    name: str
    version: int
    run_id: str | None = None
    path: str | None = None
    created_at: float | None = None
    tags: dict[str, str] = Field(default_factory=dict)
