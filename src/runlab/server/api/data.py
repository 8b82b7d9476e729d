"""Datastores (their folders and files, a page at a time), dataset versions (definition, files, first
rows, the runs that used them) and a run's inputs. The lists of datastores and datasets are in
:mod:`runlab.server.api.catalog` with the other assets."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from runlab.server import data_views, models
from runlab.server.state import StudioState, get_state

router = APIRouter(tags=["data"], responses=models.ERROR_RESPONSES)
State = Annotated[StudioState, Depends(get_state)]
DatastoreName = Annotated[str, Path(min_length=1, max_length=255, description="the datastore's name")]
DatasetName = Annotated[str, Path(min_length=1, max_length=255, description="the dataset's name")]
Version = Annotated[int, Path(ge=1, le=2**31, description="the dataset version")]
RunId = Annotated[str, Path(min_length=1, max_length=320, description="the run's id")]
Offset = Annotated[int, Query(ge=0, le=2**31)]

MAX_PAGE = 1000


@router.get("/datastores/{name}", response_model=models.DatastoreInfo, summary="One datastore")
def get_datastore(state: State, name: DatastoreName) -> models.DatastoreInfo:
    """Its type, where its files are, and how many files and bytes it holds now (``available`` is
    false, with ``error`` saying why, when its storage cannot be reached)."""
    return data_views.datastore_info(state, data_views.datastore_record(state, name))


@router.get("/datastores/{name}/files", response_model=models.DatastoreListing,
            summary="A datastore's folders and files, one folder at a time")
def list_datastore_files(
    state: State,
    name: DatastoreName,
    prefix: Annotated[str, Query(max_length=1024, description="the folder to list ('' for the root)")] = "",
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> models.DatastoreListing:
    """The subfolders (with their file counts and bytes), then the files (size, sha256 where recorded)
    directly in folder ``prefix``, paginated. 503 when the datastore's storage cannot be reached."""
    return data_views.browse_datastore(state, name, prefix, offset, limit)


@router.get("/datasets/{name}", response_model=models.DatasetDetails, summary="A dataset version, its versions and runs")
def get_dataset(
    state: State,
    name: DatasetName,
    version: Annotated[int | None, Query(ge=1, le=2**31, description="the version (default: the latest)")] = None,
) -> models.DatasetDetails:
    return data_views.dataset_details(state, name, version)


@router.get("/datasets/{name}/versions/{version}", response_model=models.DatasetDetails,
            summary="One version of a dataset: definition, versions, the runs that used it")
def get_dataset_version(state: State, name: DatasetName, version: Version) -> models.DatasetDetails:
    return data_views.dataset_details(state, name, version)


@router.get("/datasets/{name}/versions/{version}/files", response_model=models.DatasetFileList,
            summary="The files a dataset version recorded (size, sha256)")
def list_dataset_files(
    state: State,
    name: DatasetName,
    version: Version,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> models.DatasetFileList:
    return data_views.dataset_files(state, name, version, offset, limit)


@router.get("/datasets/{name}/versions/{version}/preview", response_model=models.DatasetPreview,
            summary="The first rows of a tabular dataset version")
def preview_dataset(
    state: State,
    name: DatasetName,
    version: Version,
    rows: Annotated[int, Query(ge=1, le=data_views.PREVIEW_MAX_ROWS)] = 20,
) -> models.DatasetPreview:
    """Read only when cheap (files on this machine, unchanged); else ``available`` is false and
    ``reason`` says why."""
    return data_views.dataset_preview(state, name, version, rows)


@router.get("/runs/{run_id}/inputs", response_model=list[models.RunInput], summary="The datasets a run consumed")
def list_run_inputs(state: State, run_id: RunId) -> list[models.RunInput]:
    return data_views.run_inputs(state, run_id)
