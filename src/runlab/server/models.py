"""The shapes of the REST API's responses (pydantic), documented in its OpenAPI schema.

Times are unix seconds (floats). Metric values that are NaN or infinite are sent as ``null`` in
series (a gap in a chart), and as the strings ``"inf"``, ``"-inf"`` and ``"nan"`` in summaries (a
metric's last, min and max, a run's last values), which tables show as such.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NonFinite = Literal["inf", "-inf", "nan"]


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
    archived: bool = Field(default=False, description="archived (hidden from the experiments list unless asked)")


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
    metrics: dict[str, Any] = Field(description="last value of each metric asked for with metric= "
                                    '("inf", "-inf" or "nan" for a non-finite number)')
    error_message: str | None = None
    properties: dict[str, str] = Field(default_factory=dict)
    archived: bool = Field(default=False, description="archived (hidden from run listings unless asked)")


class MetricColumn(_Model):
    name: str
    runs: int = Field(description="how many runs have the metric")


class RunColumns(_Model):
    """What a runs table can show as columns."""

    metrics: list[MetricColumn] = Field(description="metric names, those most runs have first")
    tags: list[str]
    properties: list[str]


class NoteInfo(_Model):
    note_id: int
    run_id: str
    text: str
    created_at: float
    author: str | None


class DeletedRuns(_Model):
    deleted: list[str] = Field(description="the runs deleted: the run and its child runs")


class BulkResult(_Model):
    action: str
    done: list[str]
    failed: dict[str, str] = Field(description="run id -> why the action failed for it")


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
    kind: str = Field(description="scalar, list, row (a table), image, or an evaluation log: confusion_matrix, "
                      "accuracy_table, residuals, predictions (Azure ML's dict: schema_type, schema_version, data)")
    count: int
    last: Any = Field(description='the last value; "inf", "-inf" or "nan" for a non-finite number')
    last_step: int | None
    last_time: float | None
    min: float | NonFinite | None = Field(description="the smallest number (None when no value is a number)")
    max: float | NonFinite | None = Field(description="the largest number (None when no value is a number)")
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
    missing: list[str] = Field(default_factory=list, description="run ids asked for that do not exist")


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


class LogRange(_Model):
    name: str
    size: int = Field(description="size of the file in bytes now")
    start: int = Field(description="byte offset of the first character of text (the start of a line)")
    end: int = Field(description="byte offset after text: ask for the next range from here")
    first_line: int = Field(description="1-based number of the line text starts with")
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
    build_status: str | None = Field(None, description="Built, Failed (the last build failed: its build_log says "
                                        "why), Not built, User-managed or Unknown")
    definition: dict[str, Any] = Field(default_factory=dict)
    build_log: str | None = Field(None, description="run file name or path of the last build log")


class ComputeTargetInfo(_Model):
    name: str
    type: str
    state: str = Field(description="idle or busy")
    max_nodes: int | None = None
    running: int = 0
    queued: int = 0
    address: str | None = Field(None, description="a Ray target: its cluster's dashboard URL")
    cluster: dict[str, Any] | None = Field(
        None, description="a Ray target: what its cluster says now (nodes, cpus, gpus, memoryBytes, runningJobs, "
                          "pendingJobs, runlabJobs, dashboard, rayVersion; error when it does not answer)")


class DatastoreInfo(_Model):
    """A datastore, with how many files it holds now (None when its storage cannot be reached)."""

    name: str
    type: str = Field(description="blob (the workspace's own folder), local (a folder) or s3")
    path: str | None = Field(None, description="the folder, or s3://bucket/prefix")
    endpoint: str | None = Field(None, description="an S3 datastore's endpoint (None: AWS)")
    region: str | None = None
    location: str = Field("", description="where the files are, in words")
    is_default: bool = False
    created_at: float | None = Field(None, description="when it was registered (None: not yet, the workspace's own)")
    file_count: int | None = Field(None, description="files it holds now; None when they cannot be listed")
    total_size: int | None = Field(None, description="their bytes; None when they cannot be listed")
    available: bool = Field(True, description="false when its storage cannot be reached or listed now")
    error: str | None = Field(None, description="why it cannot be listed, when it cannot")


class DatastoreEntry(_Model):
    """A folder or a file in a datastore's listing."""

    kind: Literal["folder", "file"]
    name: str = Field(description="the last part of its path")
    path: str = Field(description="its path on the datastore (a folder's ends with /)")
    size: int = Field(description="bytes (a folder's: of every file under it)")
    file_count: int = Field(1, description="files under a folder (1 for a file)")
    sha256: str | None = Field(None, description="recorded by an upload, or kept by S3; None when unknown")
    modified_at: float | None = None


class DatastoreListing(_Model):
    """One page of the folders, then files, directly under ``prefix``."""

    datastore: str
    prefix: str = Field(description="the folder listed (\"\" for the root, else ending with /)")
    parent: str | None = Field(description="the folder above, None at the root")
    total: int = Field(description="folders and files directly under prefix, on every page")
    offset: int
    limit: int
    file_count: int = Field(description="files under prefix, at any depth")
    total_size: int = Field(description="their bytes")
    entries: list[DatastoreEntry]


class DatasetInfo(_Model):
    """One version of a registered dataset."""

    name: str
    version: int
    type: str = Field(description="file or tabular")
    id: str = ""
    created_at: float | None = None
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    file_count: int = 0
    total_size: int = 0
    data_changed_at: float | None = Field(None, description="when its newest file was written")
    run_count: int | None = Field(None, description="runs that consumed this version (on a dataset's page)")


class DatasetSource(_Model):
    datastore: str | None = Field(description="None for a path on this machine")
    path: str


class DatasetRun(_Model):
    """A run that consumed a dataset version, under an input name."""

    run_id: str
    input_name: str
    mode: str = Field(description="mount, download or direct")
    version: int | None
    display_name: str | None = None
    experiment: str | None = None
    status: str | None = None
    created_at: float | None = None


class DatasetDetails(DatasetInfo):
    """A dataset version with its definition, the dataset's versions and the runs that used this one."""

    definition: dict[str, Any]
    sources: list[DatasetSource]
    reader: dict[str, Any] | None = Field(description="how a tabular dataset's files are read")
    steps: list[dict[str, Any]]
    versions: list[DatasetInfo] = Field(description="every version, newest first")
    runs: list[DatasetRun] = Field(description="runs that used this version, newest first (at most 500)")
    runs_total: int


class DatasetFileInfo(_Model):
    name: str = Field(description="its path inside the dataset")
    datastore: str | None = Field(description="None for a file on this machine")
    path: str = Field(description="its path on the datastore (absolute for a file on this machine)")
    size: int
    sha256: str | None


class DatasetFileList(_Model):
    name: str
    version: int
    total: int
    offset: int
    limit: int
    files: list[DatasetFileInfo]


class PreviewColumn(_Model):
    name: str
    type: str = Field(description="the pyarrow type")


class DatasetPreview(_Model):
    """The first rows of a tabular dataset version (values as JSON: times as ISO text)."""

    name: str
    version: int
    available: bool = Field(description="false when no preview can be made cheaply; reason says why")
    reason: str | None = None
    columns: list[PreviewColumn] = Field(default_factory=list)
    rows: list[list[Any]] = Field(default_factory=list)


class RunInput(_Model):
    """A dataset a run consumed, under its input name."""

    name: str
    kind: str = Field(description="file or tabular")
    mode: str = Field(description="mount, download or direct")
    dataset_id: str | None
    dataset_name: str | None
    dataset_version: int | None
    files_hash: str | None
    file_count: int | None
    total_size: int | None
    url: str | None = Field(description="the dataset version's page in the studio")


class ModelFileInfo(_Model):
    """One file of a registered model version."""

    path: str = Field(description="its name inside the model (model.pt, or outputs/weights/a.bin)")
    size: int
    sha256: str
    url: str = Field(description="where to download it")


class ModelDatasetInfo(_Model):
    scenario: str = Field(description="what the dataset was for ('training data')")
    dataset_id: str | None = None
    dataset_name: str | None = Field(None, description="None for a dataset that was not registered")
    dataset_version: int | None = None


class ModelInfo(_Model):
    """One registered model version."""

    name: str
    version: int
    id: str = Field("", description="name:version")
    run_id: str | None = Field(None, description="the run whose files these are (None: files of a machine)")
    path: str | None = Field(None, description="the model's name on disk (model.pt, or a folder's name)")
    source: str | None = Field(None, description="the model path as registered (outputs/model.pt of the run)")
    created_at: float | None = None
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    properties: dict[str, str] = Field(default_factory=dict)
    framework: str | None = None
    file_count: int = 0
    total_size: int = 0
    datasets: list[ModelDatasetInfo] = Field(default_factory=list)
    files: list[ModelFileInfo] = Field(default_factory=list,
                                       description="its files (the first 100 in listings; all for one version)")
