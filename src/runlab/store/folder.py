"""The embedded workspace folder: what lives where, and the stores opened over it.

::

    <folder>/workspace.json        name, id, created; marks the folder as a workspace
    <folder>/workspace.db          SQLite metadata store (WAL)
    <folder>/files/runs/<run_id>/  run files (outputs, logs, images, uploads)
    <folder>/files/snapshots/      content-addressed source snapshots
    <folder>/files/datastores/     the default datastore's files
    <folder>/journal/              metric batches the store could not take yet

Opening a folder reads ``workspace.json`` only; the SQL store (and SQLAlchemy) is loaded on
first use, so that a training script's ``import runlab`` and ``Run.get_context()`` stay light.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from runlab.core.errors import ConfigError, WorkspaceNotFoundError
from runlab.core.names import shown

if TYPE_CHECKING:
    from runlab.store.artifacts import LocalArtifactStore
    from runlab.store.blobs import BlobStore
    from runlab.store.sql.store import SqlStore

MARKER = "workspace.json"
FORMAT_VERSION = 1


class WorkspaceFolder:
    def __init__(self, path: Path | str) -> None:
        try:
            self.path = Path(path).expanduser().resolve()
        except (OSError, ValueError) as exc:  # a NUL in it, a loop of links
            raise WorkspaceNotFoundError(f"{shown(str(path))} cannot be a workspace folder: {exc}", path=path) from exc
        marker = self.path / MARKER
        if not _is_file(marker):
            if not _exists(self.path):
                raise WorkspaceNotFoundError(
                    f"workspace folder {self.path} does not exist: create one with "
                    "Workspace.create(name) or `runlab workspace create NAME`",
                    path=self.path,
                )
            raise WorkspaceNotFoundError(
                f"{self.path} is not a runlab workspace (it has no {MARKER}): create one with "
                "Workspace.create(name, path=...) or point to the right folder",
                path=self.path,
            )
        try:
            meta = json.loads(marker.read_text())
            self.name: str = meta["name"]
            self.workspace_id: str = meta["id"]
            self.created_at: float = float(meta.get("created_at", 0.0))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{marker} is malformed ({exc}): it must be JSON with 'name' and 'id'; "
                "restore it from a backup or create the workspace again",
                path=marker,
            ) from exc
        self._hosted = "store" in meta  # the files folder of runlab server's workspace (store.hosted)
        self._store: SqlStore | None = None
        self.store_url: str | None = None  # another store than the folder's SQLite file (store.hosted)
        self._lock = threading.Lock()
        self._identity = _identity(self.path)
        self._db_identity: tuple[int, int] | None = None

    @classmethod
    def create(cls, path: Path | str, name: str, *, init_store: bool = True) -> "WorkspaceFolder":
        folder = Path(path).expanduser().resolve()
        folder.mkdir(parents=True, exist_ok=True)
        for sub in ("files/runs", "files/snapshots", "files/datastores", "journal"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        meta = {"name": name, "id": uuid.uuid4().hex, "created_at": time.time(), "format": FORMAT_VERSION}
        tmp = folder / (MARKER + ".tmp")
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(tmp, folder / MARKER)
        ws = cls(folder)
        if init_store:
            ws.store  # create the database and its schema now, not in the first training script
        return ws

    @staticmethod
    def is_workspace(path: Path | str) -> bool:
        return _is_file(Path(path) / MARKER)

    @property
    def db_path(self) -> Path:
        return self.path / "workspace.db"

    @property
    def store(self) -> "SqlStore":
        if self._store is None:
            with self._lock:
                if self._store is None:
                    from runlab.core.settings import load_settings
                    from runlab.store.sql.store import SqlStore, sqlite_url

                    if self._hosted and self.store_url is None:
                        raise ConfigError(
                            f"{self.path} holds the files of a runlab server's workspace, whose store is a database "
                            "of its own: connect to the server (config.json {\"server\": URL}, or Workspace.get(name, "
                            "server=URL)) rather than opening its folder", path=self.path)
                    settings = load_settings()
                    url = self.store_url or sqlite_url(self.db_path)
                    store = SqlStore(url, busy_timeout_s=settings.sqlite_busy_timeout_s)
                    store.set_heartbeat_timeout(settings.heartbeat_timeout_s)
                    if self.store_url is None:
                        self._db_identity = _identity(self.db_path)
                    store.before_marking_lost = self._replay_orphan_journals
                    self._store = store
        return self._store

    journal_replayer: ClassVar[Callable[["WorkspaceFolder"], object] | None] = None
    """Replays the journals that dead processes left in a folder; set by the tracking layer (which knows
    their format) when it loads: before a run of a dead process is marked lost, its end may be there."""

    def _replay_orphan_journals(self) -> None:
        replayer = WorkspaceFolder.journal_replayer
        if replayer is not None:
            replayer(self)

    def is_gone(self) -> bool:
        """True when the folder or its database was deleted or replaced since this object opened it.

        SQLite keeps writing into a deleted database file without an error, so writers (the
        metric flusher) check this before they trust the store: two ``stat`` calls.
        """
        if _identity(self.path) != self._identity:
            return True
        return self._db_identity is not None and _identity(self.db_path) != self._db_identity

    def fallback_journal_dir(self) -> Path:
        """Where journals go when this folder is gone: outside it, under ``$RUNLAB_HOME``."""
        from runlab.core.settings import load_settings

        safe_id = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(self.workspace_id))[:64]
        return load_settings().home / "journal" / (safe_id or "workspace")

    @property
    def artifacts(self) -> "LocalArtifactStore":
        from runlab.store.artifacts import LocalArtifactStore

        return LocalArtifactStore(self.path / "files" / "runs")

    def content_blobs(self) -> "BlobStore":
        """Where registered models keep their contents (``files/models/objects``)."""
        from runlab.store.blobs import BlobStore

        return BlobStore(self.path / "files" / "models" / "objects")

    @property
    def journal_dir(self) -> Path:
        return self.path / "journal"

    @property
    def snapshots_dir(self) -> Path:
        return self.path / "files" / "snapshots"

    @property
    def datastores_dir(self) -> Path:
        return self.path / "files" / "datastores"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "id": self.workspace_id, "path": str(self.path), "created_at": self.created_at}

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False also for a path the file system refuses (too long, a NUL)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):
        return False
