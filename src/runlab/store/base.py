"""The narrow store interface every layer above talks to.

Implementations: :class:`runlab.store.sql.store.SqlStore` (SQLite or PostgreSQL, through
SQLAlchemy) and, for server mode, an HTTP client with the same methods. Methods raise
:class:`~runlab.core.errors.StoreUnavailableError` when the store cannot be reached or is busy,
and the ``NotFoundError`` subclasses when a thing named does not exist.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Protocol, Sequence

from runlab.core.assets import (
    ComputeTargetRecord,
    DatasetFile,
    DatasetRecord,
    DatastoreFileRecord,
    DatastoreRecord,
    EnvironmentRecord,
    ModelDatasetRecord,
    ModelFile,
    ModelRecord,
    RunInputRecord,
)
from runlab.core.entities import ExperimentRecord, MetricBatch, MetricSummary, RunNote, RunRecord
from runlab.core.status import RunStatus, RunType

# Arrays are numpy arrays; typed loosely so that this module does not import numpy.
Array = Any


class MetricSeries:
    """One metric's points, as parallel arrays (numpy), in log order."""

    __slots__ = ("name", "kind", "steps", "times", "values")

    def __init__(self, name: str, kind: str, steps: Array, times: Array, values: Any) -> None:
        self.name = name
        self.kind = kind
        self.steps = steps
        self.times = times
        self.values = values

    def __len__(self) -> int:
        return len(self.steps)


class Store(Protocol):
    # experiments
    def get_or_create_experiment(self, name: str) -> ExperimentRecord: ...
    def get_experiment(self, name: str) -> ExperimentRecord: ...
    def list_experiments(self) -> list[ExperimentRecord]: ...
    def update_experiment(
        self,
        name: str,
        *,
        add_tags: Mapping[str, str] | None = None,
        remove_tags: Sequence[str] = (),
        archived: bool | None = None,
    ) -> ExperimentRecord: ...
    def delete_experiment(self, name: str) -> list[str]: ...

    # runs
    def create_run(
        self,
        run_id: str,
        experiment_name: str,
        *,
        run_type: RunType,
        status: RunStatus,
        display_name: str | None = None,
        parent_run_id: str | None = None,
        target: str = "local",
        owner: str | None = None,
        definition: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        created_at: float | None = None,
    ) -> RunRecord: ...
    def get_run(self, run_id: str) -> RunRecord: ...
    def list_runs(
        self,
        *,
        experiment_name: str | None = None,
        statuses: Iterable[RunStatus] | None = None,
        tags: Mapping[str, str | None] | None = None,
        properties: Mapping[str, str | None] | None = None,
        parent_run_id: str | None = None,
        include_children: bool = True,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[RunRecord]: ...
    def set_status(
        self,
        run_id: str,
        status: RunStatus,
        *,
        error: Mapping[str, Any] | None = None,
        when: float | None = None,
        only_if_active: bool = False,
        only_if_status: Iterable[RunStatus] | None = None,
        over_lost: bool = False,
    ) -> bool: ...
    def heartbeat(self, run_id: str, owner: str | None = None, when: float | None = None) -> None: ...
    def set_display_name(self, run_id: str, display_name: str | None) -> None: ...
    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...
    def remove_tags(self, run_id: str, keys: Sequence[str]) -> None: ...
    def add_properties(self, run_id: str, properties: Mapping[str, str]) -> None: ...
    def set_description(self, run_id: str, description: str) -> None: ...
    def set_run_archived(self, run_id: str, archived: bool) -> None: ...
    def delete_run(self, run_id: str) -> list[str]: ...
    def add_run_note(self, run_id: str, text: str, author: str | None = None) -> RunNote: ...
    def list_run_notes(self, run_id: str) -> list[RunNote]: ...
    def reap_stale_runs(self, timeout_s: float) -> list[str]: ...

    # metrics
    def append_metrics(self, run_id: str, batches: Sequence[MetricBatch], batch_id: str | None = None) -> None: ...
    def get_metric_summaries(self, run_id: str) -> list[MetricSummary]: ...
    def get_metric_series(self, run_id: str, name: str) -> MetricSeries: ...

    # submitted runs
    def claim_queued_run(self, target: str, owner: str, max_active: int | None = None) -> RunRecord | None: ...
    def update_definition(self, run_id: str, patch: Mapping[str, Any]) -> None: ...
    def count_runs_by_status(self, target: str | None = None) -> dict[RunStatus, int]: ...

    # environments and compute targets
    def register_environment(self, name: str, content_hash: str, definition: Mapping[str, Any]) -> EnvironmentRecord: ...
    def get_environment(self, name: str, version: int | None = None) -> EnvironmentRecord: ...
    def list_environments(self) -> list[EnvironmentRecord]: ...
    def create_compute_target(self, record: ComputeTargetRecord) -> ComputeTargetRecord: ...
    def get_compute_target(self, name: str) -> ComputeTargetRecord: ...
    def list_compute_targets(self) -> list[ComputeTargetRecord]: ...
    def delete_compute_target(self, name: str) -> None: ...

    # datasets: registered versions are immutable; each records its definition and files
    def register_dataset(
        self,
        name: str,
        *,
        kind: str,
        definition: Mapping[str, Any],
        files: Sequence[DatasetFile],
        files_hash: str,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        data_changed_at: float | None = None,
        create_new_version: bool = False,
    ) -> DatasetRecord: ...
    def get_dataset(self, name: str, version: int | None = None) -> DatasetRecord: ...
    def get_dataset_by_id(self, dataset_id: str) -> DatasetRecord: ...
    def list_datasets(self, *, all_versions: bool = False) -> list[DatasetRecord]: ...
    def get_dataset_files(self, dataset_id: str) -> list[DatasetFile]: ...

    # the datasets each submitted run consumed (lineage)
    def record_run_inputs(self, run_id: str, inputs: Sequence[RunInputRecord]) -> None: ...
    def get_run_inputs(self, run_id: str) -> list[RunInputRecord]: ...
    def list_dataset_runs(self, name: str, version: int | None = None) -> list[RunInputRecord]: ...

    # registered models: versions whose files never change (their bytes are in store.models' file store)
    def register_model(
        self,
        name: str,
        *,
        path: str,
        source: str,
        files: Sequence[ModelFile],
        files_hash: str,
        run_id: str | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        datasets: Sequence[ModelDatasetRecord] = (),
        framework: str | None = None,
        framework_version: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> ModelRecord: ...
    def get_model(self, name: str, version: int | None = None) -> ModelRecord: ...
    def list_models(self, *, name: str | None = None, run_id: str | None = None,
                    latest: bool = False) -> list[ModelRecord]: ...
    def get_model_files(self, name: str, version: int) -> list[ModelFile]: ...
    def known_model_files(self, sources: Sequence[str]) -> dict[tuple[str, str], tuple[str, int]]: ...
    def update_model(
        self,
        name: str,
        version: int,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        add_tags: Mapping[str, str] | None = None,
        remove_tags: Sequence[str] = (),
        add_properties: Mapping[str, str] | None = None,
    ) -> ModelRecord: ...
    def delete_model(self, name: str, version: int) -> list[str]: ...

    # datastores and the index of the files runlab wrote to each
    def register_datastore(self, name: str, kind: str, config: Mapping[str, Any], *,
                           overwrite: bool = False) -> DatastoreRecord: ...
    def get_datastore(self, name: str) -> DatastoreRecord: ...
    def list_datastores(self) -> list[DatastoreRecord]: ...
    def get_datastore_files(self, name: str, prefix: str = "") -> dict[str, DatastoreFileRecord]: ...
    def record_datastore_files(self, name: str, files: Sequence[DatastoreFileRecord]) -> None: ...
    def forget_datastore_files(self, name: str, paths: Sequence[str]) -> None: ...

    # workspace settings
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...

    def close(self) -> None: ...
