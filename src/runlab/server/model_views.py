"""Registered models as the studio shows them: versions with their run, tags and files (with download URLs)."""

from __future__ import annotations

from typing import BinaryIO
from urllib.parse import quote

from runlab.core.assets import ModelFile, ModelRecord
from runlab.core.errors import NotFoundError
from runlab.server import models
from runlab.server.state import StudioState
from runlab.store.models import model_blobs

LISTED_FILES = 100  # files per version in listings; one version's own read has them all


def file_url(record: ModelRecord, path: str) -> str:
    return (f"/api/models/{quote(record.name, safe='')}/{record.version}/files/"
            + "/".join(quote(part, safe="") for part in path.split("/")))


def model_info(record: ModelRecord, files: list[ModelFile]) -> models.ModelInfo:
    return models.ModelInfo(
        name=record.name, version=record.version, id=record.model_id, run_id=record.run_id, path=record.path,
        source=record.source, created_at=record.created_at, description=record.description, tags=dict(record.tags),
        properties=dict(record.properties), framework=record.framework, file_count=record.file_count,
        total_size=record.total_size,
        datasets=[models.ModelDatasetInfo(scenario=d.scenario, dataset_id=d.dataset_id, dataset_name=d.dataset_name,
                                          dataset_version=d.dataset_version) for d in record.datasets],
        files=[models.ModelFileInfo(path=f.path, size=f.size, sha256=f.sha256, url=file_url(record, f.path))
               for f in files],
    )


def list_models(state: StudioState, *, name: str | None = None, run_id: str | None = None) -> list[models.ModelInfo]:
    """Every registered version (of ``name``, or made by ``run_id``), by name, newest version first."""
    store = state.store
    out = []
    for record in store.list_models(name=name, run_id=run_id):
        out.append(model_info(record, store.get_model_files(record.name, record.version)[:LISTED_FILES]))
    return out


def get_model(state: StudioState, name: str, version: int) -> models.ModelInfo:
    record = state.store.get_model(name, version)
    return model_info(record, state.store.get_model_files(name, version))


def open_model_file(state: StudioState, name: str, version: int, path: str) -> tuple[BinaryIO, int]:
    """The bytes of one file of a version, open, and its size (``NotFoundError`` for a path it does not have)."""
    for file in state.store.get_model_files(name, version):
        if file.path == path:
            try:
                return model_blobs(state.folder).open(file.sha256)[0], file.size
            except OSError as exc:
                raise NotFoundError(f"the content of {path} of model {name}:{version} is missing from the "
                                    "workspace's files", name=name, version=version, path=path) from exc
    raise NotFoundError(f"model {name}:{version} has no file {path!r}", name=name, version=version, path=path)
