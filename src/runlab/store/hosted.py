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
from pathlib import Path
from typing import Any

from runlab.core.errors import ConfigError, UserError
from runlab.core.names import check_id, shown
from runlab.store.folder import FORMAT_VERSION, MARKER, WorkspaceFolder

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
                 server_url: str | None = None) -> None:
        check_store_url(store_url)
        root = Path(artifacts).expanduser().resolve()
        marker = root / MARKER
        if not marker.is_file():
            if not create:
                raise ConfigError(f"{root} is not a runlab server's artifacts folder (it has no {MARKER})", path=root)
            if root.exists() and any(p.name != "lost+found" for p in root.iterdir()):
                raise UserError(f"--artifacts {root} exists and is not empty, and is not a runlab artifacts folder: "
                                "give a new or empty folder")
            root.mkdir(parents=True, exist_ok=True)
            meta = {"name": check_id(name or "default", "workspace name", "'team'"), "id": uuid.uuid4().hex,
                    "created_at": time.time(), "format": FORMAT_VERSION, "store": redacted(store_url)}
            tmp = root / (MARKER + ".tmp")
            tmp.write_text(json.dumps(meta, indent=2) + "\n")
            os.replace(tmp, marker)
        for sub in _SUBFOLDERS:
            (root / sub).mkdir(parents=True, exist_ok=True)
        super().__init__(root)
        self.store_url = store_url
        self.server_url = server_url
        self.starts_agents = True  # False: runs wait for agents on other machines (runlab agent --server)
        self._pair_with_store(name)

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
        return {**super().describe(), "store": redacted(self.store_url)}


def open_folder(path: Path | str) -> WorkspaceFolder:
    """The workspace folder at ``path``: hosted when ``RUNLAB_STORE_URL`` names its store (an agent a
    server started), embedded otherwise."""
    url = os.environ.get(STORE_URL_ENV)
    if url:
        return HostedWorkspace(url, path, create=False, server_url=os.environ.get("RUNLAB_SERVER_URL") or None)
    return WorkspaceFolder(path)
