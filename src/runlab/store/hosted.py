"""A server's workspace: metadata and metrics in a SQL store named by URL (PostgreSQL, or SQLite),
files in an artifacts folder.

``runlab server --store URL --artifacts PATH`` opens one :class:`HostedWorkspace`. The artifacts
folder is laid out as an embedded workspace folder (``files/runs``, ``files/snapshots``,
``files/datastores``, ``files/models``, ``agents/``, ``work/``) and holds a ``workspace.json``
naming the workspace; the store records the same id (meta key ``workspace.id``), so a store paired
with another workspace's folder is refused instead of mixing the two. The URL is never written to
disk: agents the server starts get it in ``RUNLAB_STORE_URL``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runlab.core.errors import ConfigError, UserError
from runlab.core.names import check_id, shown
from runlab.store.folder import FORMAT_VERSION, MARKER, WorkspaceFolder

if TYPE_CHECKING:
    from runlab.store.s3_artifacts import S3Artifacts

STORE_URL_ENV = "RUNLAB_STORE_URL"
_ID_META = "workspace.id"
_NAME_META = "workspace.name"
_SUBFOLDERS = ("files/runs", "files/snapshots", "files/datastores", "files/models", "journal", "agents")


def redacted(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    try:
        import sqlalchemy as sa

        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot parse is shown as the scheme only
        return url.split(":", 1)[0] + ":..."


def check_store_url(url: str) -> str:
    if not isinstance(url, str) or not url.startswith(("postgresql", "sqlite:")):
        raise UserError(f"--store {shown(str(url))} is not a store URL: give postgresql+psycopg://user@host:port/db "
                        "or sqlite:////absolute/path/workspace.db")
    return url


class HostedWorkspace(WorkspaceFolder):
    """The workspace a server serves: :class:`WorkspaceFolder`'s interface over an external store.

    ``create=True`` makes the artifacts folder (and records the workspace in the store) when it is
    new; otherwise both must exist and belong to the same workspace.
    """

    store_url: str  # always set here: WorkspaceFolder opens this store instead of its SQLite file

    def __init__(self, store_url: str, artifacts: Path | str, *, name: str | None = None, create: bool = True,
                 server_url: str | None = None, s3: S3Location | None = None) -> None:
        """``artifacts`` is the server's folder; with ``s3``, its run files, source snapshots, model contents
        and own datastores are in that bucket instead and the folder keeps the rest (its state)."""
        check_store_url(store_url)
        root = Path(artifacts).expanduser().resolve()
        marker = root / MARKER
        if not marker.is_file():
            if not create:
                raise ConfigError(f"{root} is not a runlab server's artifacts folder (it has no {MARKER})", path=root)
            if root.exists() and any(p.name != "lost+found" for p in root.iterdir()):
                raise UserError(f"{root} exists and is not empty, and is not a runlab server's folder: "
                                "give a new or empty folder")
            root.mkdir(parents=True, exist_ok=True)
            meta: dict[str, Any] = {"name": check_id(name or "default", "workspace name", "'team'"),
                                    "id": uuid.uuid4().hex, "created_at": time.time(), "format": FORMAT_VERSION,
                                    "store": redacted(store_url)}
            if s3 is not None:
                meta["s3"] = s3.to_json()
            tmp = root / (MARKER + ".tmp")
            tmp.write_text(json.dumps(meta, indent=2) + "\n")
            os.replace(tmp, marker)
        recorded = _recorded_s3(marker)
        if s3 is not None and recorded != s3:
            was = recorded.url if recorded else f"the folder {root / 'files'}"
            raise ConfigError(f"the server folder {root} keeps its files in {was}, not {s3.url}: give the same "
                              "--artifacts it was made with, or a new state folder", path=root)
        self.s3 = recorded
        for sub in _SUBFOLDERS:
            (root / sub).mkdir(parents=True, exist_ok=True)
        super().__init__(root)
        self.store_url = store_url
        self.server_url = server_url
        self.starts_agents = True  # False: runs wait for agents on other machines (runlab agent --server)
        self._pair_with_store(name)
        self._s3: S3Artifacts | None = None
        if self.s3 is not None:
            from runlab.store.s3_artifacts import S3Artifacts

            self._s3 = S3Artifacts(self.s3.url, self.s3.endpoint_url, self.s3.region)
            if create:  # a server starting
                self._s3.pair(self.workspace_id, self.name)
                self._s3.abort_stale_uploads()

    @property
    def artifacts(self) -> Any:
        if self._s3 is None:
            return super().artifacts
        from runlab.store.s3_artifacts import S3ArtifactStore

        return S3ArtifactStore(self._s3.objects)

    @property
    def datastores_dir(self) -> Any:
        if self._s3 is None:
            return super().datastores_dir
        from runlab.store.s3_artifacts import S3Datastores

        return S3Datastores(self._s3)

    @property
    def snapshots_dir(self) -> Any:
        """The folder of source snapshots; in S3 their storage in the bucket (``snapshots/``), which
        :class:`~runlab.execution.snapshot.SnapshotStore` takes in place of a folder."""
        if self._s3 is None:
            return super().snapshots_dir
        from runlab.store.s3_artifacts import S3SnapshotStorage

        return S3SnapshotStorage(self._s3.sub("snapshots"))

    def content_blobs(self) -> Any:
        if self._s3 is None:
            return super().content_blobs()
        from runlab.store.s3_artifacts import S3BlobStore

        return S3BlobStore(self._s3.sub("models"))

    def _pair_with_store(self, name: str | None) -> None:
        store = self.store
        recorded = store.get_meta(_ID_META)
        if recorded is None:
            store.set_meta(_ID_META, self.workspace_id)
            store.set_meta(_NAME_META, self.name)
        elif recorded != self.workspace_id:
            raise ConfigError(
                f"the store {redacted(self.store_url)} belongs to another workspace (id {recorded}) than the artifacts "
                f"folder {self.path} (workspace {self.name!r}, id {self.workspace_id}): give the artifacts folder this "
                "store was made with, or a new store", path=self.path)
        if name is not None and name != self.name:
            raise ConfigError(f"the artifacts folder {self.path} holds workspace {self.name!r}, not {name!r}: "
                              "drop --name or give its folder", path=self.path)

    def is_gone(self) -> bool:
        return False  # the store is a server's, not a file this process could see deleted

    def agent_environment(self) -> dict[str, str]:
        """What an agent this server starts needs to open the same workspace."""
        env = {STORE_URL_ENV: self.store_url}
        if self.server_url:
            env["RUNLAB_SERVER_URL"] = self.server_url
        return env

    def describe(self) -> dict[str, Any]:
        described = {**super().describe(), "store": redacted(self.store_url)}
        if self._s3 is not None:
            described["artifacts"] = self._s3.description
        return described


@dataclass(frozen=True)
class S3Location:
    """Where a server keeps its files in S3 (``--artifacts s3://bucket/prefix``); no credentials: boto3
    finds those in the environment."""

    url: str
    endpoint_url: str | None = None
    region: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "endpoint_url": self.endpoint_url, "region": self.region}


def _recorded_s3(marker: Path) -> S3Location | None:
    try:
        meta = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None  # WorkspaceFolder reports a damaged marker
    s3 = meta.get("s3") if isinstance(meta, dict) else None
    if not isinstance(s3, dict) or not isinstance(s3.get("url"), str):
        return None
    return S3Location(s3["url"], s3.get("endpoint_url"), s3.get("region"))


def open_folder(path: Path | str) -> WorkspaceFolder:
    """The workspace folder at ``path``: hosted when ``RUNLAB_STORE_URL`` names its store (an agent a
    server started), embedded otherwise."""
    url = os.environ.get(STORE_URL_ENV)
    if url:
        return HostedWorkspace(url, path, create=False, server_url=os.environ.get("RUNLAB_SERVER_URL") or None)
    return WorkspaceFolder(path)
