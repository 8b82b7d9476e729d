"""A workspace served by ``runlab server``, with the interface of an embedded workspace folder.

``RemoteWorkspace(url)`` asks the server who it is (``GET /api/workspace``) and gives the layers above
what a :class:`~runlab.store.folder.WorkspaceFolder` gives: ``store`` (an
:class:`~runlab.store.remote.store.HttpStore`), ``artifacts`` (an
:class:`~runlab.store.remote.artifacts.HttpArtifactStore`), and local folders for what stays on this
machine: the metric journal (points the server could not take yet) and a snapshot cache (a submit
snapshots here, then sends the server only the files it does not have). ``path`` is that local
folder, ``$RUNLAB_HOME/servers/<workspace id>``.
"""

from __future__ import annotations

import functools
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runlab.core.errors import ConfigError, StoreUnavailableError
from runlab.store.remote.client import ServerClient, normalize_url
from runlab.store.remote.store import HttpStore

if TYPE_CHECKING:  # the file clients load on first use: a training script that only logs never needs them
    from runlab.store.remote.artifacts import HttpArtifactStore
    from runlab.store.remote.objects import RemoteDatastores


class RemoteWorkspace:
    remote = True

    def __init__(self, url: str, token: str | None = None, *, name: str | None = None,
                 workspace_id: str | None = None) -> None:
        self.server_url = normalize_url(url)
        self.client = ServerClient(self.server_url, token)
        if workspace_id is None:  # ask the server (a submitted run is told, and skips this request)
            info = self.client.get_json("/api/remote/workspace")
            name_, workspace_id = str(info.get("name")), str(info.get("id"))
            if name is not None and name != name_:
                raise ConfigError(f"the runlab server at {self.server_url} serves workspace {name_!r}, not {name!r}: "
                                  "fix workspace_name in config.json or the server URL")
            name = name_
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", workspace_id or ""):
            raise StoreUnavailableError(f"the server at {self.server_url} gave a malformed workspace id")
        self.name: str = name or "default"
        self.workspace_id: str = workspace_id
        self.created_at = 0.0
        self._store: HttpStore | None = None
        self._lock = threading.Lock()

    @functools.cached_property
    def path(self) -> Path:
        """This machine's folder for the workspace (made once, on first use)."""
        from runlab.core.settings import load_settings

        path = load_settings().home / "servers" / self.workspace_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def store(self) -> HttpStore:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = HttpStore(self.client)
        return self._store

    @property
    def artifacts(self) -> HttpArtifactStore:
        from runlab.store.remote.artifacts import HttpArtifactStore

        return HttpArtifactStore(self.client)

    @property
    def journal_dir(self) -> Path:
        return self.path / "journal"

    @property
    def snapshots_dir(self) -> Path:
        return self.path / "snapshots"

    @property
    def datastores_dir(self) -> RemoteDatastores:
        """The workspace's own datastores: the server's folder, reached over HTTP (store.datastores opens them)."""
        from runlab.store.remote.objects import RemoteDatastores

        return RemoteDatastores(self.client)

    def fallback_journal_dir(self) -> Path:
        return self.journal_dir

    def is_gone(self) -> bool:
        return False

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "id": self.workspace_id, "path": str(self.path), "server": self.server_url,
                "created_at": self.created_at}

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __repr__(self) -> str:
        return f"RemoteWorkspace({self.server_url!r}, name={self.name!r})"


__all__ = ["RemoteWorkspace"]
