"""Where dataset tests put their files: this machine, or a datastore (the default one, a local folder,
an S3 bucket on moto). Each place writes a file and names it as a dataset path argument, and keeps a
local copy to compare pyarrow's and pandas' own reads with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import runlab

PLACES = ["local", "default", "local-datastore", "s3"]


class Place:
    """Files of a test, on this machine (``kind == "local"``) or on ``datastore``."""

    def __init__(self, kind: str, root: Path, datastore: Any = None, workspace: runlab.Workspace | None = None) -> None:
        self.kind = kind
        self.root = root  # local files, or the local copies of the datastore's
        self.datastore = datastore
        self.workspace = workspace
        root.mkdir(parents=True, exist_ok=True)

    def write(self, rel: str, data: bytes | str) -> Path:
        """Put ``data`` at ``rel``; the local copy."""
        local = self.root / rel
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data.encode() if isinstance(data, str) else data)
        if self.datastore is not None:
            self.objects().put(rel, local)
        return local

    def objects(self) -> Any:
        from runlab.sdk.dataset import _object_store

        assert self.workspace is not None
        return _object_store(self.workspace, self.datastore.name)

    def path(self, rel: str) -> Any:
        """``rel`` as a dataset path argument: a local path, or (datastore, rel)."""
        return str(self.root / rel) if self.datastore is None else (self.datastore, rel)

    def local(self, rel: str) -> Path:
        return self.root / rel

    def delete(self, rel: str) -> None:
        (self.root / rel).unlink()
        if self.datastore is not None:
            self.objects().delete(rel)


# -- fixtures (imported by the conftest.py of the folders whose tests use them) -----------------------


@pytest.fixture(params=PLACES)
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    """Each test on this machine, on the default datastore, a local-folder datastore and S3 (moto)."""
    if request.param == "local":
        return Place("local", tmp_path / "data")
    from runlab.sdk.datastore import Datastore

    ws = runlab.Workspace.create("data-ws", path=tmp_path / "ws")
    if request.param == "default":
        datastore = ws.get_default_datastore()
    elif request.param == "local-datastore":
        datastore = Datastore.register_local(ws, "shared_folder", tmp_path / "shared")
    else:  # moto's S3 server (tests/datastore_fixtures.py)
        endpoint, bucket = request.getfixturevalue("s3_bucket")
        datastore = Datastore.register_s3(ws, "s3store", bucket, prefix="team", endpoint_url=endpoint)
    return Place(request.param, tmp_path / "copies", datastore, ws)
