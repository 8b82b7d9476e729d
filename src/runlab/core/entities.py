"""Records the store hands out: frozen dataclasses, no behaviour beyond derived fields."""

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


@dataclass(frozen=True)
class EnvironmentRecord:
    name: str
    version: int
    content_hash: str
    definition: Mapping[str, Any]
    created_at: float


@dataclass(frozen=True)
class ComputeTargetRecord:
    name: str
    kind: str  # "local" or "amlcompute" (a pool on this machine)
    max_nodes: int
    idle_seconds_before_scaledown: int
    created_at: float
    state: str = "Succeeded"
    vm_size: str | None = None
    min_nodes: int = 0
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatastoreRecord:
    """A registered datastore: ``kind`` is "workspaceblob" (the workspace's own folder), "local" (a
    folder on this machine) or "s3"; ``config`` says where (never credentials)."""

    name: str
    kind: str
    config: Mapping[str, Any]
    created_at: float


@dataclass(frozen=True)
class DatastoreFileRecord:
    """What runlab knows of one file it wrote to a datastore: its bytes (size, sha256), and the
    object store's ``etag`` of the file at that time, so that a file changed since is noticed."""

    path: str
    size: int
    sha256: str
    etag: str | None
    uploaded_at: float


@dataclass(frozen=True)
class DatasetFile:
    """One file of a dataset, as resolved: where it is, its bytes, and its name inside the dataset.

    ``datastore`` is None for a file on this machine (``path`` is then absolute); otherwise
    ``path`` is relative to the datastore's root. ``name`` is the file's path relative to the
    dataset's root (what ``to_path()``, ``download()`` and a mount show). ``sha256`` is None when
    the file list was resolved without checksums (reading); registered versions always have one.
    """

    datastore: str | None
    path: str
    size: int
    name: str
    sha256: str | None = None
    modified_at: float | None = None


@dataclass(frozen=True)
class DatasetRecord:
    """One registered, immutable version of a dataset; its files are read with ``get_dataset_files``."""

    dataset_id: str
    name: str
    version: int
    kind: str  # "file" or "tabular"
    definition: Mapping[str, Any]
    created_at: float
    file_count: int
    total_size: int
    files_hash: str
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    data_changed_at: float | None = None


@dataclass(frozen=True)
class RunInputRecord:
    """A dataset a submitted run consumed, under its input name (``as_named_input('name')``).

    ``mode`` is ``mount``, ``download`` or ``direct`` (a tabular dataset read by the script).
    A registered dataset is named by ``dataset_id``, ``dataset_name`` and ``dataset_version``; all
    three are None for one made in the submitting script. ``files_hash``, ``file_count`` and
    ``total_size`` say which bytes the run saw; they are set when the agent made the input available.
    """

    run_id: str
    name: str
    kind: str
    mode: str
    dataset_id: str | None = None
    dataset_name: str | None = None
    dataset_version: int | None = None
    files_hash: str | None = None
    file_count: int | None = None
    total_size: int | None = None


@dataclass(frozen=True)
class ModelFile:
    """One file of a registered model version: its name inside the model (``model.pt``, or
    ``outputs/weights/a.bin`` for a folder), its bytes (size, sha256; the content is stored once
    by sha256), and where it was copied from (``source``: ``run:<run id>/<run file name>`` or a
    path of this machine, with the file's ``source_etag`` then), so that registering unchanged
    files again reads nothing."""

    path: str
    size: int
    sha256: str
    source: str | None = None
    source_etag: str | None = None


@dataclass(frozen=True)
class ModelDatasetRecord:
    """A dataset a model version was made with, under its scenario (Azure's ``("training data", ds)``).
    ``dataset_id``, ``dataset_name`` and ``dataset_version`` are None for a dataset that is not registered."""

    scenario: str
    dataset_id: str | None = None
    dataset_name: str | None = None
    dataset_version: int | None = None


@dataclass(frozen=True)
class ModelRecord:
    """One registered version of a model; its files are read with ``get_model_files``.

    ``path`` is the model's name on disk (``model.pt``, or ``outputs`` for a folder): what
    ``download`` writes under its target folder. ``source`` is the model path as registered
    (``outputs/model.pt`` of run ``run_id``, or a path of this machine). ``details`` holds the
    Azure arguments runlab records but does not use (framework details, sample datasets,
    resource configuration). Tags and properties may change; files never do.
    """

    name: str
    version: int
    created_at: float
    path: str
    source: str
    file_count: int
    total_size: int
    files_hash: str
    run_id: str | None = None
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    properties: Mapping[str, str] = field(default_factory=dict)
    framework: str | None = None
    framework_version: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    datasets: tuple[ModelDatasetRecord, ...] = ()

    @property
    def model_id(self) -> str:
        return f"{self.name}:{self.version}"
