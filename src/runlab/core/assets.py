"""Records of a workspace's assets the store hands out: environments, compute targets, datastores and
their files, datasets, run inputs, models. Frozen dataclasses, no behaviour beyond derived fields
(the tracking records are in :mod:`runlab.core.entities`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


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
