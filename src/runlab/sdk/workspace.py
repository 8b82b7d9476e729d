"""Workspace: where experiments, runs and files live. Embedded: a folder with SQLite."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from runlab.core.errors import (
    ConfigError,
    UserError,
    WorkspaceExistsError,
    WorkspaceNotFoundError,
)
from runlab.core.names import check_run_id, check_workspace_name
from runlab.core.settings import load_settings
from runlab.core.status import RunStatus
from runlab.store.folder import WorkspaceFolder

if TYPE_CHECKING:
    from runlab.sdk.datastore import Datastore
    from runlab.sdk.experiment import Experiment
    from runlab.sdk.run import Run

CONFIG_FOLDERS = (".runlab", ".azureml", "aml_config")
_TAGS_META = "workspace_tags"  # a JSON object in the store's workspace_meta
CONFIG_FILE = "config.json"


class Workspace:
    """A workspace. ``Workspace.create(name)``, ``Workspace.get(name)`` or ``Workspace.from_config()``.

    The Azure arguments (``subscription_id``, ``resource_group``, ``location``...) are accepted
    and recorded, so tutorial code runs unchanged; they mean nothing here.
    """

    def __init__(
        self,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        workspace_name: str | None = None,
        *,
        _folder: WorkspaceFolder | None = None,
        **_azure: Any,
    ) -> None:
        if _folder is None:
            if workspace_name is None:
                raise UserError("Workspace(...) needs workspace_name=; or use Workspace.from_config()")
            _folder = _open_registered(workspace_name)
        self._folder = _folder
        self.subscription_id = subscription_id or "local"
        self.resource_group = resource_group or "local"
        self.location = str(_azure.get("location") or "local")
        self.auth = _azure.get("auth")  # accepted and kept; no effect (runlab.sdk.authentication)

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        name: str,
        auth: Any = None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        location: str | None = None,
        create_resource_group: bool = True,
        sku: str = "basic",
        tags: Mapping[str, Any] | None = None,
        friendly_name: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        exist_ok: bool = False,
        **azure_arguments: Any,
    ) -> "Workspace":
        """Create a workspace folder (at ``path``, default ``$RUNLAB_HOME/workspaces/<name>``)
        and register its name. ``exist_ok=True`` returns the existing one instead of raising.

        The arguments after ``name`` are Azure ML v1's, in its order (``auth`` second): ``tags`` are kept
        (``ws.tags``); ``subscription_id``, ``resource_group``, ``location`` and ``auth`` are recorded and
        have no effect; the others (``sku``, ``storage_account``...) are accepted and ignored. ``path`` and
        ``exist_ok`` are keywords."""
        azure_arguments.update({k: v for k, v in (("auth", auth), ("subscription_id", subscription_id),
                                                  ("resource_group", resource_group), ("location", location))
                                if v is not None})
        ws = cls._create(name, path, exist_ok, azure_arguments)
        if tags:
            ws.update(tags=tags)
        return ws

    @classmethod
    def _create(cls, name: str, path: str | os.PathLike[str] | None, exist_ok: bool,
                azure_arguments: dict[str, Any]) -> "Workspace":
        check_workspace_name(name)
        settings = load_settings()
        registry = _read_registry()
        folder = Path(path).expanduser().resolve() if path is not None else settings.default_workspaces_dir / name
        if name in registry or WorkspaceFolder.is_workspace(folder):
            if not exist_ok:
                where = registry.get(name, str(folder))
                raise WorkspaceExistsError(
                    f"workspace {name!r} already exists at {where}: use Workspace.get({name!r}) "
                    "or Workspace.create(..., exist_ok=True)",
                    name=name,
                )
            if name in registry and WorkspaceFolder.is_workspace(registry[name]):
                return cls(_folder=WorkspaceFolder(registry[name]))
            if WorkspaceFolder.is_workspace(folder):
                _register(name, WorkspaceFolder(folder).path)
                return cls(_folder=WorkspaceFolder(folder))
        if folder.exists() and any(folder.iterdir()) and not WorkspaceFolder.is_workspace(folder):
            raise UserError(
                f"cannot create workspace {name!r} in {folder}: the folder exists and is not empty; "
                "choose an empty or new folder with path=",
                path=folder,
            )
        ws_folder = WorkspaceFolder.create(folder, name)
        _register(name, ws_folder.path)
        recorded = ("subscription_id", "resource_group", "location", "auth")
        ws = cls(_folder=ws_folder, **{k: v for k, v in azure_arguments.items() if k in recorded})
        return ws

    @classmethod
    def get(cls, name: str, server: str | None = None, token: str | None = None, **_azure: Any) -> "Workspace":
        """The registered workspace called ``name``; with ``server=URL``, the workspace that runlab server
        serves (its token: ``token``, else ``RUNLAB_TOKEN``, else ``$RUNLAB_HOME/credentials.json``)."""
        if server is not None:
            from runlab.store.remote.workspace import RemoteWorkspace

            return cls(_folder=RemoteWorkspace(server, token, name=name))  # type: ignore[arg-type]
        return cls(_folder=_open_registered(name))

    @classmethod
    def list(cls, **_azure: Any) -> dict[str, list["Workspace"]]:
        """Registered workspaces, as Azure returns them: ``{name: [Workspace]}``."""
        result: dict[str, list[Workspace]] = {}
        for name, path in sorted(_read_registry().items()):
            if WorkspaceFolder.is_workspace(path):
                result[name] = [cls(_folder=WorkspaceFolder(path))]
        return result

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> "Workspace":
        return cls(_folder=WorkspaceFolder(os.fspath(path)))

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, auth: Any = None, _logger: Any = None,
                    _file_name: str | None = None, **_azure: Any) -> "Workspace":
        """Find ``config.json`` in ``.runlab/``, ``.azureml/``, ``aml_config/`` or the folder itself,
        starting at ``path`` (default: the current folder) and walking up its parents.

        ``auth`` (Azure ML v1's second argument) is accepted and has no effect. ``subscription_id``,
        ``resource_group`` and ``location`` are the config's, when it has them."""
        config_path = find_config(path, _file_name)
        folder = _open_config(config_path)
        config = json.loads(config_path.read_text())
        cloud = {k: str(config[k]) for k in ("subscription_id", "resource_group", "location")
                 if isinstance(config.get(k), str) and config[k]}
        return cls(_folder=folder, auth=auth, **cloud)

    # -- properties ------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._folder.name

    @property
    def path(self) -> Path:
        return self._folder.path

    @property
    def folder(self) -> WorkspaceFolder:
        return self._folder

    @property
    def experiments(self) -> dict[str, "Experiment"]:
        from runlab.sdk.experiment import Experiment

        return {e.name: Experiment(self, e.name) for e in self._folder.store.list_experiments()}

    @property
    def datasets(self) -> dict[str, Any]:
        """Registered datasets by name, each at its latest version (``Dataset.get_by_name`` for others)."""
        from runlab.sdk.dataset import Dataset

        return Dataset.get_all(self)

    @property
    def models(self) -> dict[str, Any]:
        """Registered models by name, each at its latest version (``Model(ws, name, version=...)`` for others)."""
        from runlab.sdk.model import Model

        return {m.name: m for m in Model.list(self, latest=True)}

    @property
    def tags(self) -> dict[str, str]:
        """The workspace's tags (set with ``Workspace.create(..., tags=...)`` or :meth:`update`)."""
        raw = self._folder.store.get_meta(_TAGS_META)
        return dict(json.loads(raw)) if raw else {}

    def update(self, friendly_name: str | None = None, description: str | None = None,
               tags: Mapping[str, Any] | None = None, **_azure: Any) -> None:
        """Azure ML v1's ``update``: ``tags`` are added to the workspace's (a value replaces the one
        of its name); the other arguments are accepted and have no effect."""
        if tags:
            current = self.tags
            current.update({str(k): "" if v is None else str(v) for k, v in tags.items()})
            self._folder.store.set_meta(_TAGS_META, json.dumps(current, sort_keys=True))

    def delete(self, delete_dependent_resources: bool = False, no_wait: bool = False) -> None:
        """Delete the workspace: its folder (runs, metrics, files, snapshots, registered datasets and
        models, the default datastore's files) and its registered name. Files of datastores registered
        from elsewhere (``register_local``, S3) stay. Irreversible. Raises UserError while a run of it
        has not ended. The Azure arguments have no effect."""
        from runlab.core.status import ACTIVE_STATUSES

        store = self._folder.store
        active = store.list_runs(statuses=ACTIVE_STATUSES, limit=5)
        if active:
            raise UserError(f"workspace {self.name!r} has runs that have not ended ({', '.join(r.run_id for r in active)}"
                            "): cancel them or wait for them to end, then delete it", name=self.name)
        path = self._folder.path
        self._folder.close()
        _unregister(self.name, path)
        shutil.rmtree(path)

    def get_mlflow_tracking_uri(self, _with_auth: bool = False) -> str:
        """An MLflow tracking URI for this workspace. runlab has no MLflow server here, so this is a
        ``file:`` URI of the folder ``mlflow/`` inside the workspace folder: MLflow clients given it
        (``mlflow.set_tracking_uri(ws.get_mlflow_tracking_uri())``) log into MLflow's own file store there,
        kept with the workspace but not shown as runlab runs; log with ``run.log`` for those."""
        return (self.path / "mlflow").as_uri()

    @property
    def datastores(self) -> dict[str, "Datastore"]:
        """Datastores by name (``workspaceblobstore`` among them)."""
        from runlab.sdk.datastore import Datastore

        return {d.name: d for d in Datastore.list(self)}

    def get_default_datastore(self) -> "Datastore":
        """The default datastore: ``workspaceblobstore`` (a folder of the workspace, made on first use)
        unless :meth:`set_default_datastore` chose another."""
        from runlab.sdk.datastore import Datastore

        return Datastore.get_default(self)

    def set_default_datastore(self, name: str) -> None:
        """Make the registered datastore ``name`` the default (``DatastoreNotFoundError`` naming those
        there are, when it is not registered)."""
        from runlab.store.datastores import set_default_datastore

        set_default_datastore(self._folder.store, name)

    @property
    def compute_targets(self) -> dict[str, Any]:
        """Compute targets by name (``local`` is implicit and not listed)."""
        from runlab.sdk.compute import ComputeTarget

        return {t.name: t for t in ComputeTarget.list(self)}

    def set_snapshot_limits(self, max_bytes: int | None = None, max_files: int | None = None) -> None:
        """Change this workspace's snapshot limits (defaults: 300 MB and 2,000 files)."""
        store = self._folder.store
        if max_bytes is not None:
            store.set_meta("snapshot_max_bytes", str(int(max_bytes)))
        if max_files is not None:
            store.set_meta("snapshot_max_files", str(int(max_files)))

    def get_run(self, run_id: str) -> "Run":
        """The run with this id (raises RunNotFoundError; InvalidNameError for an id no run can have)."""
        from runlab.sdk.run import Run

        record = self._folder.store.get_run(check_run_id(run_id))
        if record.status == RunStatus.QUEUED:  # waiting: for an agent that died?
            from runlab.execution.targets import restart_dead_agents  # not at import: a client's start-up

            restart_dead_agents(self._folder, [record.target])
        return Run(self._folder, run_id, record=record)

    def get_details(self) -> dict[str, Any]:
        return {**self._folder.describe(), "subscriptionId": self.subscription_id, "resourceGroup": self.resource_group}

    def write_config(self, path: str | os.PathLike[str] | None = None, file_name: str | None = None) -> Path:
        """Write ``config.json`` into ``<path>/.azureml/`` (default path: the current folder).

        A ``path`` that already ends in ``.azureml`` (or ``.runlab``, ``aml_config``) is used
        as is, so ``write_config(path='.azureml')`` writes ``./.azureml/config.json``."""
        folder = Path(path) if path is not None else Path.cwd()
        if folder.name not in CONFIG_FOLDERS:
            folder = folder / ".azureml"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / (file_name or CONFIG_FILE)
        config = {
            "subscription_id": self.subscription_id,
            "resource_group": self.resource_group,
            **({"location": self.location} if self.location != "local" else {}),
            "workspace_name": self.name,
            **({"server": self._folder.server_url} if getattr(self._folder, "remote", False)  # type: ignore[attr-defined]
               else {"path": str(self.path)}),
        }
        target.write_text(json.dumps(config, indent=4) + "\n")
        return target

    def __repr__(self) -> str:
        if getattr(self._folder, "remote", False):
            return f"Workspace.get(name={self.name!r}, server={self._folder.server_url!r})"  # type: ignore[attr-defined]
        return f"Workspace.get(name={self.name!r}) at {self.path}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Workspace) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)


# -- config.json -----------------------------------------------------------------------------


def find_config(path: str | os.PathLike[str] | None = None, file_name: str | None = None) -> Path:
    """The config file ``from_config`` would use; the error names every folder searched."""
    name = file_name or CONFIG_FILE
    start = Path(path).expanduser().resolve() if path is not None else Path.cwd()
    if start.is_file():
        return start
    if path is not None and not start.exists():
        raise ConfigError(f"Workspace.from_config: {start} does not exist", path=start)
    searched = []
    for folder in (start, *start.parents):
        for candidate in (*(folder / sub for sub in CONFIG_FOLDERS), folder):
            searched.append(candidate)
            if (candidate / name).is_file():
                return candidate / name
    listing = "\n  ".join(str(s) for s in searched)
    raise ConfigError(
        f"no {name} found. Searched these folders:\n  {listing}\n"
        "Write one with ws.write_config() (after Workspace.create or Workspace.get), or pass path=.",
        searched=searched,
    )


def _open_config(config_path: Path) -> WorkspaceFolder:
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{config_path} is not valid JSON ({exc}); it should look like "
            '{"workspace_name": "my-workspace", "path": "/path/to/workspace"}',
            path=config_path,
        ) from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{config_path} must hold a JSON object, got {type(config).__name__}", path=config_path)
    server = config.get("server", config.get("server_url"))
    if server is not None:
        if not isinstance(server, str) or not server:
            raise ConfigError(f"{config_path}: \"server\" must be the server's URL, for example "
                              '"http://127.0.0.1:8765"', path=config_path)
        from runlab.store.remote.workspace import RemoteWorkspace

        name = config.get("workspace_name")
        return RemoteWorkspace(server, name=name if isinstance(name, str) and name else None)  # type: ignore[return-value]
    folder = config.get("path")
    if isinstance(folder, str) and folder:
        candidate = Path(folder)
        if not candidate.is_absolute():
            candidate = (config_path.parent / candidate).resolve()
        return WorkspaceFolder(candidate)
    name = config.get("workspace_name")
    if isinstance(name, str) and name:
        try:
            return _open_registered(name)
        except WorkspaceNotFoundError as exc:
            raise WorkspaceNotFoundError(
                f"{config_path} names workspace {name!r}, which is not registered on this machine: "
                f"create it with Workspace.create({name!r}) or add \"path\" to the config",
                path=config_path,
            ) from exc
    raise ConfigError(
        f"{config_path} has neither 'path' nor 'workspace_name': write it with ws.write_config()",
        path=config_path,
    )


# -- the registry of workspace names -----------------------------------------------------------


def _registry_path() -> Path:
    return load_settings().registry_path


def _read_registry() -> dict[str, str]:
    path = _registry_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise ConfigError(f"{path} is malformed ({exc}); fix or delete it (workspaces are not lost)") from exc
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _register(name: str, folder: Path) -> None:
    from filelock import FileLock

    path = _registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        registry = _read_registry()
        registry[name] = str(folder)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(registry, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)


def _unregister(name: str, folder: Path) -> None:
    """Forget the name ``name`` when it names ``folder``."""
    from filelock import FileLock

    path = _registry_path()
    if not path.is_file():
        return
    with FileLock(str(path) + ".lock"):
        registry = _read_registry()
        if name not in registry or Path(registry[name]) != folder:
            return
        del registry[name]
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(registry, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)


def _open_registered(name: str) -> WorkspaceFolder:
    check_workspace_name(name)  # before any path is built from it
    registry = _read_registry()
    if name not in registry:
        default = load_settings().default_workspaces_dir / name
        if WorkspaceFolder.is_workspace(default):
            return WorkspaceFolder(default)
        known = ", ".join(sorted(registry)) or "none"
        raise WorkspaceNotFoundError(
            f"no workspace named {name!r} (known: {known}): create it with Workspace.create({name!r}) "
            "or `runlab workspace create`",
            name=name,
        )
    return WorkspaceFolder(registry[name])
