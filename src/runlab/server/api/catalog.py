"""Environments, compute targets, datastores, datasets and models, as they exist in the workspace.

Environments and compute targets come from the store, datastores and datasets from the store and
their storage (:mod:`runlab.server.data_views`), models from the store (:mod:`runlab.server.model_views`),
with their files' downloads. Each provider below is the one place that lists its kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, StreamingResponse

from runlab.core.errors import NotFoundError, RunlabError
from runlab.core.status import RunStatus
from runlab.execution.environments import EnvironmentDefinition, environment_status
from runlab.execution.ray_target import RAY_KIND, cluster_info
from runlab.server import data_views, model_views, models
from runlab.server.api.files import FILE_RESPONSE, Download, _file_response
from runlab.server.state import StudioState, get_state

router = APIRouter(tags=["assets"], responses=models.ERROR_RESPONSES)
State = Annotated[StudioState, Depends(get_state)]


CLUSTER_TIMEOUT_S = 2.0  # a Ray cluster that does not answer slows the compute list by at most this, per call
BUSY = (RunStatus.PREPARING, RunStatus.STARTING, RunStatus.RUNNING, RunStatus.FINALIZING, RunStatus.CANCEL_REQUESTED)


def _build_state(definition: dict[str, object], cache_root: Path) -> tuple[str, Path | None]:
    """(Built, Failed, Not built or User-managed; the build log when there is one). A failed build
    leaves its log and no ready marker: Failed, with the log that says why."""
    try:
        status = environment_status(EnvironmentDefinition.from_dict(definition), cache_root)
    except (RunlabError, KeyError, TypeError, ValueError):
        return "Unknown", None
    if status.user_managed:
        return "User-managed", None
    log = status.env_dir / "build.log" if status.env_dir is not None else None
    shown = "Built" if status.cached else "Failed" if status.failed else "Not built"
    return shown, (log if log is not None and log.is_file() else None)


def environments(state: StudioState) -> list[models.EnvironmentInfo]:
    """Registered environments by name, newest version first, with their build state."""
    out = []
    records = sorted(state.store.list_environments(), key=lambda r: (r.name, -r.version))
    for record in records:
        definition = dict(record.definition)
        build, log = _build_state(definition, state.settings.environments_dir)
        out.append(models.EnvironmentInfo(
            name=record.name, version=str(record.version), python=str(definition.get("python_version") or "") or None,
            build_status=build, definition=definition,
            build_log=f"/api/environments/{record.name}/{record.version}/build-log" if log else None,
        ))
    return out


def compute_targets(state: StudioState) -> list[models.ComputeTargetInfo]:
    """Compute targets with their state (busy when a run is on it) and queue."""
    out = []
    for record in state.store.list_compute_targets():
        counts = state.store.count_runs_by_status(target=record.name)
        running = sum(counts.get(s, 0) for s in BUSY)
        address = str(record.settings.get("address") or "") if record.kind == RAY_KIND else None
        out.append(models.ComputeTargetInfo(
            name=record.name, type=record.kind, state="busy" if running else "idle", max_nodes=record.max_nodes,
            running=running, queued=counts.get(RunStatus.QUEUED, 0), address=address,
            # a Ray target: the cluster's own account, from its dashboard (runlab.execution.ray_target)
            cluster=cluster_info(address, timeout=CLUSTER_TIMEOUT_S) if address is not None else None,
        ))
    return out


def datastores(state: StudioState) -> list[models.DatastoreInfo]:
    """Datastores by name (``workspaceblobstore`` always), with the files and bytes each holds now."""
    return data_views.datastore_infos(state)


def datasets(state: StudioState) -> list[models.DatasetInfo]:
    """The latest version of each registered dataset, by name."""
    return data_views.dataset_infos(state)


def registered_models(state: StudioState, name: str | None = None, run_id: str | None = None) -> list[models.ModelInfo]:
    """Every registered model version (of ``name``, or made by ``run_id``), newest version first."""
    return model_views.list_models(state, name=name, run_id=run_id)


@router.get("/environments", response_model=list[models.EnvironmentInfo], summary="List environments")
def list_environments(state: State) -> list[models.EnvironmentInfo]:
    return environments(state)


@router.get("/compute", response_model=list[models.ComputeTargetInfo], summary="List compute targets",
            response_model_exclude_none=True)
def list_compute_targets(state: State) -> list[models.ComputeTargetInfo]:
    return compute_targets(state)


@router.get("/datastores", response_model=list[models.DatastoreInfo], summary="List datastores")
def list_datastores(state: State) -> list[models.DatastoreInfo]:
    return datastores(state)


@router.get("/datasets", response_model=list[models.DatasetInfo], summary="List datasets")
def list_datasets(state: State) -> list[models.DatasetInfo]:
    return datasets(state)


@router.get("/models", response_model=list[models.ModelInfo], summary="List registered model versions")
def list_models(
    state: State,
    name: Annotated[str | None, Query(max_length=255, description="only versions of this model")] = None,
    run_id: Annotated[str | None, Query(max_length=320, description="only versions this run made")] = None,
) -> list[models.ModelInfo]:
    return registered_models(state, name=name or None, run_id=run_id or None)


ModelName = Annotated[str, PathParam(min_length=1, max_length=255, description="the model's name")]
ModelVersion = Annotated[int, PathParam(ge=1, le=2**31, description="the version")]


@router.get("/models/{name}/{version}", response_model=models.ModelInfo, summary="One model version, with all its files")
def get_model(state: State, name: ModelName, version: ModelVersion) -> models.ModelInfo:
    return model_views.get_model(state, name, version)


@router.get("/models/{name}/{version}/files/{path:path}", summary="Download a file of a model version",
            response_class=StreamingResponse, responses=FILE_RESPONSE)
def download_model_file(state: State, name: ModelName, version: ModelVersion,
                        path: Annotated[str, PathParam(min_length=1, max_length=4096)],
                        download: Download = False) -> StreamingResponse:
    stream, size = model_views.open_model_file(state, name, version, path)
    return _file_response(stream, path, size, download)


@router.get("/environments/{name}/{version}/build-log", summary="The build log of an environment version",
            response_class=FileResponse, responses={200: {"content": {"text/plain": {}}}})
def environment_build_log(
    state: State,
    name: Annotated[str, PathParam(max_length=255)],
    version: Annotated[int, PathParam(ge=1, le=2**31)],
) -> FileResponse:
    record = state.store.get_environment(name, version)
    _build, log = _build_state(dict(record.definition), state.settings.environments_dir)
    if log is None:
        raise NotFoundError(f"environment {name} version {version} has no build log: it is not built yet "
                            "(it is built by the first run that uses it)", name=name, version=version)
    return FileResponse(log, media_type="text/plain; charset=utf-8")
