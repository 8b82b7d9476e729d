"""The studio's datastore and dataset pages: HTML shells (``templates/``) filled by their scripts
(``static/datastores.js``, ``datastore.js``, ``datasets.js``, ``dataset.js``) from the REST API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse

from runlab.core.errors import NotFoundError, UserError
from runlab.server import data_views
from runlab.server.pages import not_found, page, render
from runlab.server.state import StudioState, get_state

router = APIRouter(include_in_schema=False)
State = Annotated[StudioState, Depends(get_state)]
Name = Annotated[str, PathParam()]  # checked by the page: a bad one is the HTML not-found page


@router.get("/datastores", response_class=HTMLResponse)
def datastores_page(state: State) -> HTMLResponse:
    return page(state, page="datastores", title="Datastores", content=render("datastores.html", {}))


@router.get("/datastores/{name}", response_class=HTMLResponse)
def datastore_page(state: State, name: Name,
                   prefix: str = "") -> HTMLResponse:
    try:
        record = data_views.datastore_record(state, name)
    except (NotFoundError, UserError) as exc:
        return not_found(state, "Datastore not found", exc.message)
    return page(state, page="datastore", title=record.name, nav="datastores",
                content=render("datastore.html", {"name": record.name}),
                data={"name": record.name, "prefix": prefix})


@router.get("/datasets", response_class=HTMLResponse)
def datasets_page(state: State) -> HTMLResponse:
    return page(state, page="datasets", title="Datasets", content=render("datasets.html", {}))


@router.get("/datasets/{name}", response_class=HTMLResponse)
def dataset_page(state: State, name: Name,
                 version: str = "") -> HTMLResponse:
    """Version ``?version=N`` (default: the latest) of dataset ``name``."""
    try:
        number = int(version) if version else None
        if number is not None and not 1 <= number <= 2**31:
            raise ValueError(version)
    except ValueError:
        return not_found(state, "Dataset version not found",
                         f"{version!r} is not a dataset version: versions are whole numbers from 1")
    try:
        record = state.store.get_dataset(data_views.check_dataset_name(name), number)
    except (NotFoundError, UserError) as exc:
        return not_found(state, "Dataset not found", exc.message)
    return page(state, page="dataset", title=f"{record.name}:{record.version}", nav="datasets",
                content=render("dataset.html", {"name": record.name}),
                data={"name": record.name, "version": record.version, "kind": record.kind})
