"""Experiment: a named group of runs in a workspace."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

from runlab.core.names import check_experiment_name
from runlab.core.process import current_identity, current_user
from runlab.core.status import RunStatus, RunType
from runlab.tracking.retry import retry_while_unavailable
from runlab.tracking.run import new_run_id

if TYPE_CHECKING:
    from runlab.sdk.run import Run
    from runlab.sdk.workspace import Workspace

# Experiment.list's view_type, as Azure ML v1 spells them
ACTIVE_ONLY, ARCHIVED_ONLY, ALL = "ActiveOnly", "ArchivedOnly", "All"
VIEW_TYPES = (ACTIVE_ONLY, ARCHIVED_ONLY, ALL)


class Experiment:
    """``Experiment(workspace, name)`` gets the experiment, creating it if needed."""

    def __init__(self, workspace: "Workspace", name: str, **_azure: Any) -> None:
        check_experiment_name(name)
        self._workspace = workspace
        store = workspace.folder.store
        # a training script's first line: a busy store makes it wait, never fail (tracking.retry)
        self._record = retry_while_unavailable(lambda: store.get_or_create_experiment(name),
                                               f"creating experiment {name!r}")

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def id(self) -> int:
        return self._record.experiment_id

    @property
    def workspace(self) -> "Workspace":
        return self._workspace

    # -- tags and archiving (Azure ML v1) --------------------------------------------------------

    @property
    def tags(self) -> dict[str, str]:
        """The experiment's tags (a copy: change them with :meth:`tag`, :meth:`set_tags`, :meth:`remove_tags`)."""
        return dict(self._record.tags)

    @property
    def archived_time(self) -> str | None:
        """When the experiment was archived (ISO 8601, UTC), or None while it is active."""
        from datetime import datetime, timezone

        at = self._record.archived_at
        return None if at is None else datetime.fromtimestamp(at, tz=timezone.utc).isoformat()

    def _update(self, **changes: Any) -> None:
        self._record = self._workspace.folder.store.update_experiment(self.name, **changes)

    def tag(self, key: str, value: Any = None) -> None:
        """Set one tag (``value`` None: an empty string, as in Azure ML v1)."""
        self.set_tags({key: "" if value is None else value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Add or change tags; others stay. Raises InvalidValueError for names that are not text."""
        from runlab.tracking.run import _string_map

        self._update(add_tags=_string_map(tags, "tag"))

    def remove_tags(self, tags: str | Iterable[str]) -> None:
        """Remove the tags named (a name or a list of names); names it does not have are ignored."""
        self._update(remove_tags=[tags] if isinstance(tags, str) else [str(t) for t in tags])

    def archive(self) -> None:
        """Archive the experiment: :meth:`list` leaves it out (unless ``view_type='ArchivedOnly'`` or
        ``'All'``); its runs stay, and runs can still be read and submitted to it."""
        self._update(archived=True)

    def reactivate(self, new_name: str | None = None) -> None:
        """Make an archived experiment active again. ``new_name`` (Azure's answer to a name taken
        meanwhile) is refused here with a UserError: names cannot be taken twice in a runlab workspace."""
        from runlab.core.errors import UserError

        if new_name is not None and new_name != self.name:
            raise UserError(f"reactivate(new_name={new_name!r}): runlab does not rename experiments; reactivate "
                            f"{self.name!r} under its name (no other experiment can hold it)")
        self._update(archived=False)

    def refresh(self) -> None:
        """Read the experiment's tags and state again from the workspace."""
        self._record = self._workspace.folder.store.get_experiment(self.name)

    @staticmethod
    def from_directory(path: str | os.PathLike[str], auth: Any = None) -> "Experiment":
        """Azure ML v1's ``Experiment.from_directory``: the experiment of a project folder. Its name is the
        ``"Id"`` (v1's key; ``"experiment_name"`` too) of ``project.json`` in ``<path>/.azureml/``,
        ``<path>/aml_config/`` or ``<path>/.runlab/``, else the ``"experiment_name"`` of the ``config.json``
        that ``Workspace.from_config(path)`` finds; the workspace is that config's, else the workspace named
        in project.json's ``"Scope"`` (``.../workspaces/<name>/...``, a registered one). ``auth``: no effect."""
        import json
        import re
        from pathlib import Path

        from runlab.core.errors import ConfigError
        from runlab.sdk.workspace import Workspace, find_config

        folder = Path(path).expanduser().resolve()
        if not folder.is_dir():
            raise ConfigError(f"Experiment.from_directory: {folder} is not a folder", path=folder)
        project: dict[str, Any] = {}
        candidates = [folder / sub / "project.json" for sub in (".azureml", "aml_config", ".runlab")]
        for candidate in candidates:
            if candidate.is_file():
                try:
                    loaded = json.loads(candidate.read_text())
                except (OSError, ValueError) as exc:
                    raise ConfigError(f"Experiment.from_directory: {candidate} is not valid JSON ({exc})",
                                      path=candidate) from exc
                project = loaded if isinstance(loaded, dict) else {}
                break
        try:
            config_path: Path | None = find_config(folder)
        except ConfigError:
            config_path = None
        config: dict[str, Any] = {}
        if config_path is not None:
            try:
                loaded = json.loads(config_path.read_text())
                config = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                config = {}
        name = project.get("Id") or project.get("experiment_name") or config.get("experiment_name")
        if not isinstance(name, str) or not name:
            raise ConfigError(
                f"Experiment.from_directory({str(folder)!r}): no experiment named: write "
                f'{{"Id": "my-experiment"}} to {candidates[0]} (or "experiment_name" in the config.json '
                "the workspace is found by)", path=folder)
        if config_path is not None:
            workspace = Workspace.from_config(config_path, auth)
        else:
            scope = re.search(r"/workspaces/([^/]+)", str(project.get("Scope") or ""))
            if scope is None:
                raise ConfigError(f"Experiment.from_directory({str(folder)!r}): no config.json in or above it, and "
                                  "project.json has no \"Scope\" naming a workspace: write one with "
                                  "ws.write_config(path)", path=folder)
            workspace = Workspace.get(scope.group(1))
        return Experiment(workspace, name)

    @staticmethod
    def delete(workspace: "Workspace", experiment_id: int | str) -> None:
        """Delete an experiment (its ``id``, or its name) with its runs, their metrics and files.
        Snapshots and registered models stay. Raises UserError while one of its runs has not ended,
        ExperimentNotFoundError when there is no such experiment."""
        from runlab.core.errors import ExperimentNotFoundError

        store = workspace.folder.store
        records = store.list_experiments()
        match = [r for r in records if str(r.experiment_id) == str(experiment_id)] or \
            [r for r in records if r.name == experiment_id]
        if not match:
            raise ExperimentNotFoundError(f"no experiment with id or name {experiment_id!r} in workspace "
                                          f"{workspace.name}: see Experiment.list(ws)", name=str(experiment_id))
        for run_id in store.delete_experiment(match[0].name):
            workspace.folder.artifacts.delete_run(run_id)

    @staticmethod
    def list(workspace: "Workspace", experiment_name: str | None = None, view_type: str = ACTIVE_ONLY,
             tags: Any = None, **_azure: Any) -> list["Experiment"]:
        """Experiments of ``workspace`` (optionally only the one called ``experiment_name``): the active
        ones, as in Azure ML v1; ``view_type='ArchivedOnly'`` the archived ones, ``'All'`` both. ``tags``
        (a name, a list of names, or a dict of name -> value) keeps those that have them."""
        from runlab.core.errors import UserError

        if view_type not in VIEW_TYPES:
            raise UserError(f"Experiment.list: view_type must be one of {', '.join(VIEW_TYPES)}, got {view_type!r}")
        wanted = {tags: None} if isinstance(tags, str) else (
            dict(tags) if isinstance(tags, Mapping) else dict.fromkeys(tags or ()))
        out = []
        for r in workspace.folder.store.list_experiments():
            if experiment_name not in (None, r.name):
                continue
            if (view_type == ACTIVE_ONLY and r.archived) or (view_type == ARCHIVED_ONLY and not r.archived):
                continue
            if any(k not in r.tags or (v is not None and r.tags[k] != str(v)) for k, v in wanted.items()):
                continue
            out.append(Experiment(workspace, r.name))
        return out

    def get_runs(
        self,
        type: str | None = None,
        tags: Mapping[str, Any] | str | None = None,
        properties: Mapping[str, Any] | str | None = None,
        include_children: bool = False,
        status: str | RunStatus | None = None,
    ) -> Iterator["Run"]:
        """Runs of this experiment, newest first, filtered by tags, properties, status, type."""
        from runlab.sdk.run import Run
        from runlab.tracking.run import _optional_string_map

        statuses = None if status is None else [RunStatus.parse(str(status))]
        records = self._workspace.folder.store.list_runs(
            experiment_name=self.name,
            statuses=statuses,
            tags=_optional_string_map(tags),  # type: ignore[arg-type]
            properties=_optional_string_map(properties),  # type: ignore[arg-type]
            include_children=include_children,
        )
        from runlab.execution.targets import restart_dead_agents  # not at import: a client's start-up

        restart_dead_agents(self._workspace.folder, {r.target for r in records if r.status == RunStatus.QUEUED})
        for record in records:
            if type is None or str(record.run_type) == type:
                yield Run(self._workspace.folder, record.run_id, record=record)

    def start_logging(self, *args: Any, display_name: str | None = None, outputs: Any = None,
                      snapshot_directory: Any = None, system_metrics: bool | float = False,
                      **kwargs: Any) -> "Run":
        """Start an interactive run: log from this process; it ends with ``run.complete()``,
        ``with run:``, or when the process exits (Completed; Failed on an exception or a non-zero
        ``sys.exit`` code).

        The run is in the store when this returns. A busy store (another process holds the
        database's write lock) makes it wait and retry, for up to ``RUNLAB_STORE_RETRY_TIMEOUT``
        seconds (then StoreBusyError), never fail at once.

        ``system_metrics=True`` samples this process and its children (CPU, memory, I/O, open
        files, NVIDIA GPUs) into the run's ``sys/`` series from a thread, every
        ``RUNLAB_SYSTEM_METRICS_INTERVAL`` seconds (a number: that many seconds), until the run ends."""
        from runlab.sdk.run import Run

        run_id = new_run_id(self.name)
        run = Run(self._workspace.folder, run_id, owned=True, pending_create={
            "experiment_name": self.name,
            "run_type": RunType.INTERACTIVE,
            "status": RunStatus.RUNNING,
            "display_name": display_name,
            "owner": current_identity(),
            "properties": {"runlab.user": current_user()},
        })
        run._create_now()
        if system_metrics is not False:
            run.start_system_metrics(None if system_metrics is True else system_metrics)
        return run

    def submit(self, config: Any, tags: Mapping[str, Any] | None = None, *,
               snapshot_max_bytes: int | None = None, snapshot_max_files: int | None = None,
               **_azure: Any) -> "Run":
        """Submit ``config`` (a ScriptRunConfig): snapshot its source folder, record the run as
        Queued, make sure the target's agent runs, and return the run at once.

        Raises UserError for a bad config (missing script, script outside the folder, arguments
        that are not text), ComputeTargetException for an unknown target, and
        SnapshotTooLargeError when the folder is over the limits (it names the largest folders)."""
        from runlab.sdk.submit import submit_script_run

        return submit_script_run(self, config, tags=tags, snapshot_max_bytes=snapshot_max_bytes,
                                 snapshot_max_files=snapshot_max_files)

    def __repr__(self) -> str:
        return f"Experiment(name={self.name!r}, workspace={self._workspace.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Experiment) and other.name == self.name and other.workspace == self.workspace

    def __hash__(self) -> int:
        return hash((self.name, self._workspace.path))
