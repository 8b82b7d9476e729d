"""Run: the facade over the tracking layer's run handle, named and shaped as in Azure ML v1."""

from __future__ import annotations

import builtins
import json
import os
import re
import sys
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from runlab.core.entities import RunRecord
from runlab.core.errors import RunlabError
from runlab.core.layout import DRIVER_LOG, LOG_PREFIXES
from runlab.core.names import bounded_id, check_run_id
from runlab.core.process import current_identity, current_user
from runlab.core.settings import (
    RUNLAB_RUN_ID,
    RUNLAB_RUN_OWNER,
    RUNLAB_SERVER,
    RUNLAB_WORKSPACE,
    load_settings,
)
from runlab.core.status import RunStatus, RunType
from runlab.store.folder import WorkspaceFolder
from runlab.tracking.run import TrackedRun

if TYPE_CHECKING:
    from runlab.sdk.experiment import Experiment

OFFLINE_WORKSPACE_NAME = "offline"
OFFLINE_RUN_PREFIX = "OfflineRun"  # offline run ids start with "OfflineRun_", as Azure ML v1's do
SECRETS_FILE = "secrets.json"  # run.get_secret's file: <workspace>/secrets.json, unless RUNLAB_SECRETS_FILE

_context_lock = threading.Lock()
_context_run: "Run | None" = None


class Run(TrackedRun):
    """A run. ``Run(experiment, run_id)`` opens an existing one; inside a training script,
    ``Run.get_context()`` returns the run it belongs to."""

    def __init__(self, experiment: "Experiment | WorkspaceFolder", run_id: str, **kwargs: Any) -> None:
        if isinstance(experiment, WorkspaceFolder) or getattr(experiment, "remote", False):
            super().__init__(experiment, run_id, **kwargs)  # type: ignore[arg-type]
            return
        folder = experiment.workspace.folder
        record = folder.store.get_run(check_run_id(run_id))  # raises RunNotFoundError with a clear message
        super().__init__(folder, run_id, record=record)

    @classmethod
    def get_context(cls, allow_offline: bool = True, used_for_context_manager: bool = False, **_: Any) -> "Run":
        """The run this code runs in.

        In a submitted run (the agent sets ``RUNLAB_WORKSPACE`` and ``RUNLAB_RUN_ID``, and for a workspace
        of ``runlab server`` ``RUNLAB_SERVER`` and the run's own token ``RUNLAB_TOKEN``), that run.
        Elsewhere, an *offline run* recorded to a local workspace folder
        (``$RUNLAB_HOME/offline``), with the full API; upload it later with ``runlab sync``.
        The same object is returned for every call in a process.
        """
        global _context_run
        if _context_run is not None:
            return _context_run
        with _context_lock:
            if _context_run is not None:
                return _context_run
            workspace_path, run_id = RUNLAB_WORKSPACE.read(), RUNLAB_RUN_ID.read()
            server = RUNLAB_SERVER.read()
            if workspace_path and run_id:
                owned = RUNLAB_RUN_OWNER.read() != "agent"
                if server:
                    from runlab.store.remote.workspace import RemoteWorkspace

                    backend: Any = RemoteWorkspace(server, workspace_id=workspace_path)
                else:
                    backend = WorkspaceFolder(workspace_path)
                _context_run = cls(backend, run_id, owned=owned)
            elif not allow_offline:
                raise RunlabError(
                    "Run.get_context(allow_offline=False): this process is not a submitted run "
                    "(RUNLAB_WORKSPACE and RUNLAB_RUN_ID are not set); submit it with "
                    "experiment.submit(ScriptRunConfig(...)) or allow offline runs"
                )
            else:
                _context_run = cls._start_offline()
            return _context_run

    @classmethod
    def _start_offline(cls) -> "Run":
        settings = load_settings()
        root = settings.offline_root
        folder = (
            WorkspaceFolder(root)
            if WorkspaceFolder.is_workspace(root)
            else WorkspaceFolder.create(root, OFFLINE_WORKSPACE_NAME, init_store=False)
        )
        experiment = _experiment_name_from_script()
        # v1 scripts tell offline runs by their id (run.id.startswith("OfflineRun")): the same form here
        run_id = bounded_id(OFFLINE_RUN_PREFIX, f"_{uuid.uuid4()}")
        run = _OfflineRun(
            folder,
            run_id,
            owned=True,
            pending_create={
                "experiment_name": experiment,
                "run_type": RunType.OFFLINE,
                "status": RunStatus.RUNNING,
                "owner": current_identity(),
                "properties": {"runlab.user": current_user()},
            },
        )
        print(
            f"runlab: offline run {run_id} (not a submitted run): recording to {folder.path}; "
            "upload it with `runlab sync`",
            file=sys.stderr,
        )
        return run

    def _refresh(self) -> RunRecord:
        record = super()._refresh()
        if record.status == RunStatus.QUEUED:  # waiting: for an agent that died?
            from runlab.execution.targets import restart_dead_agents  # not in a training script's import

            restart_dead_agents(self._backend, [record.target])
        return record

    @property
    def experiment(self) -> "Experiment":
        from runlab.sdk.experiment import Experiment
        from runlab.sdk.workspace import Workspace

        self._ensure_created()
        return Experiment(Workspace(_folder=self._backend), self.experiment_name)

    @property
    def input_datasets(self) -> dict[str, Any]:
        """The run's named inputs: a file input's folder (a path, once the agent made it available), a
        tabular input's :class:`~runlab.sdk.dataset.TabularDataset` (``.to_pandas_dataframe()``)."""
        from runlab.sdk.dataset import dataset_of_input
        from runlab.store.inputs import InputSpec

        definition = self._refresh().definition or {}
        paths = definition.get("inputDatasetPaths") or {}
        out: dict[str, Any] = {}
        for item in definition.get("inputDatasets") or ():
            spec = InputSpec.from_dict(item)
            if spec.kind == "file":
                if spec.name in paths:
                    out[spec.name] = paths[spec.name]
            else:
                out[spec.name] = dataset_of_input(self._workspace(), spec)
        return out

    def get_details(self) -> dict[str, Any]:
        """The run's details, as Azure ML gives them; ``inputDatasets`` lists each input's dataset
        (a :class:`~runlab.sdk.dataset.Dataset`) with how the run consumed it. ``submittedBy`` is the
        user who started the run; ``outputDatasets`` lists the ``OutputFileDatasetConfig`` arguments
        (``outputDetails.outputName``, ``path`` in the run's files, ``destination`` as recorded; ``dataset``
        None: not registered); ``warnings`` is an empty list. ``runDefinition['environment']`` has Azure's ``python`` (``condaDependencies``,
        ``userManagedDependencies``, ``interpreterPath``), ``docker`` and ``environmentVariables`` beside
        runlab's own keys."""
        from runlab.sdk.dataset import dataset_of_input
        from runlab.store.inputs import InputSpec

        details = super().get_details()
        inputs = []
        for item in (details.get("runDefinition") or {}).get("inputDatasets") or ():
            spec = InputSpec.from_dict(item)
            inputs.append({"dataset": dataset_of_input(self._workspace(), spec),
                           "consumptionDetails": {"type": "RunInput", "inputName": spec.name,
                                                  "mechanism": spec.mode.capitalize(),
                                                  **({"pathOnCompute": spec.path_on_compute}
                                                     if spec.path_on_compute else {})}})
        details["inputDatasets"] = inputs
        record = self.record
        details["submittedBy"] = record.properties.get("runlab.user") or (record.owner or "").split("@")[0] or None
        # OutputFileDatasetConfig arguments, in Azure's shape; runlab keeps the folder with the run's outputs
        # (not registered as a dataset: 'dataset' is None, 'path' says where the files are)
        details["outputDatasets"] = [
            {"identifier": {"savedId": None}, "outputType": "RunOutput", "outputDetails": {"outputName": o["name"]},
             "dataset": None, "path": o.get("path"), "destination": o.get("destination")}
            for o in (details.get("runDefinition") or {}).get("outputDatasets") or () if isinstance(o, dict)]
        details["warnings"] = []
        definition = details.get("runDefinition")
        if isinstance(definition, dict) and isinstance(definition.get("environment"), dict):
            definition["environment"] = _azure_environment(definition)
        error = details.get("error")
        if isinstance(error, dict):
            # Azure's nesting (details['error']['error']['message']) beside runlab's flat keys
            error["error"] = {"code": str(error.get("code") or "UserError"), "message": str(error.get("message", "")),
                              **({"exitCode": error["exit_code"]} if error.get("exit_code") is not None else {})}
        return details

    def get_details_with_logs(self) -> dict[str, Any]:
        """``get_details()`` plus ``logFiles`` mapped to each log file's text (Azure ML v1's shape)."""
        details = self.get_details()
        logs: dict[str, str] = {}
        for name in details.get("logFiles") or {}:
            try:
                with self.open_file(name) as f:
                    logs[name] = f.read().decode(errors="replace")
            except RunlabError:
                continue
        details["logFiles"] = logs
        return details

    @classmethod
    def get(cls, workspace: Any, run_id: str) -> "Run":
        """The run ``run_id`` of ``workspace`` (Azure ML v1's ``Run.get``); raises RunNotFoundError."""
        folder = workspace.folder
        return cls(folder, check_run_id(run_id), record=folder.store.get_run(check_run_id(run_id)))

    @staticmethod
    def list(experiment: "Experiment", type: str | None = None, tags: Any = None, properties: Any = None,
             status: str | None = None, include_children: bool = False, _rehydrate_runs: bool = True) -> Any:
        """Runs of ``experiment``, newest first, filtered as :meth:`Experiment.get_runs` (v1's ``Run.list``)."""
        return experiment.get_runs(type=type, tags=tags, properties=properties, include_children=include_children,
                                   status=status)

    def _workspace(self) -> Any:
        from runlab.sdk.workspace import Workspace

        return Workspace(_folder=self._backend)

    def get_portal_url(self) -> str:
        """The run's page in the studio (``runlab studio``; base URL from RUNLAB_STUDIO_URL), or on the
        runlab server of the run's workspace."""
        base = getattr(self._backend, "server_url", None) or load_settings().studio_url
        return f"{base}/runs/{self._run_id}"

    def cancel(self) -> None:
        """Cancel the run. A queued run is Canceled at once; a running submitted run gets
        CancelRequested, and its agent stops the script (SIGTERM, then SIGKILL) and marks it Canceled."""
        record = self._refresh()
        if record.run_type != RunType.SUBMITTED or record.status.is_terminal:
            super().cancel()
            return
        store = self._backend.store
        if not store.set_status(self.id, RunStatus.CANCELED, only_if_status=[RunStatus.QUEUED]):
            store.set_status(self.id, RunStatus.CANCEL_REQUESTED, only_if_active=True)
        self._record = None

    def wait_for_completion(self, show_output: bool = False, wait_post_processing: bool = False,
                            raise_on_error: bool = True, timeout_seconds: float | None = None) -> dict[str, Any]:
        """Block until the run ends and return ``get_details()``.

        ``show_output=True`` streams the driver log as it grows, then prints a summary.
        Raises ActivityFailedException (a RunFailedError, with the exit code and the end of stderr) when the
        run failed."""
        import time

        from runlab.core.errors import ActivityFailedException

        deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
        offset = 0
        if show_output:
            print(f"RunId: {self.id}\nWeb View: {self.get_portal_url()}\n", flush=True)
        while True:
            status = self._refresh().status
            if show_output:
                offset = self._print_driver_log(offset)
            if status.is_terminal:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise RunlabError(f"run {self.id} did not end within {timeout_seconds} s (status {status})",
                                  run_id=self.id)
            time.sleep(0.1)
        details = self.get_details()
        record = self.record
        if show_output:
            print(f"\nExecution Summary\n=================\nRunId: {self.id}\nStatus: {record.status}\n"
                  f"Web View: {self.get_portal_url()}\n", flush=True)
        if raise_on_error and record.status == RunStatus.FAILED:
            error = dict(record.error or {})
            message = error.get("message", "no error recorded")
            tail = error.get("stderr_tail")
            text = f"run {self.id} failed: {message}" + (f"\n--- end of stderr ---\n{tail}" if tail else "")
            raise ActivityFailedException(text, run_id=self.id, details=details, exit_code=error.get("exit_code"))
        return details

    def _print_driver_log(self, offset: int) -> int:
        from runlab.core.errors import FileNotFoundInRunError

        try:
            with self.open_file(DRIVER_LOG) as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundInRunError:
            return offset
        if data:
            sys.stdout.write(data.decode(errors="replace"))
            sys.stdout.flush()
        return offset + len(data)

    def get_environment(self) -> Any:
        """The :class:`~runlab.sdk.environment.Environment` the run was submitted with (its version when
        it was a registered one), or None for a run that was not submitted (interactive, offline)."""
        from runlab.execution.environments import EnvironmentDefinition
        from runlab.sdk.environment import DockerSection, Environment

        definition = self._refresh().definition or {}
        stored = definition.get("environment")
        if not isinstance(stored, dict):
            return None
        version = definition.get("environmentVersion")
        env = Environment._of(EnvironmentDefinition.from_dict(stored), None if version is None else str(version))
        docker = definition.get("environmentDocker")
        if isinstance(docker, dict):
            env.docker = DockerSection(**{k: v for k, v in docker.items() if k in DockerSection.__dataclass_fields__})
        return env

    def get_snapshot_id(self) -> str | None:
        """The id of the run's latest snapshot (``submit`` takes one; :meth:`take_snapshot` another), or None."""
        record = self._refresh()
        latest = (record.definition or {}).get("snapshotId")
        return str(latest) if latest else record.properties.get("runlab.snapshot_id")

    def take_snapshot(self, file_or_folder_path: str | os.PathLike[str]) -> str:
        """Snapshot a file or folder (the ignore rules and limits of submitted runs apply) and make it the
        run's snapshot: :meth:`get_snapshot_id` returns its id, :meth:`restore_snapshot` gives it back.
        Returns the snapshot id. Raises UserError when the path does not exist."""
        import shutil
        import tempfile

        from runlab.execution.snapshot import SnapshotStore
        from runlab.sdk.submit import snapshot_limits

        source = Path(file_or_folder_path)
        if not source.exists():
            raise RunlabError(f"take_snapshot: {source} does not exist", run_id=self.id, path=source)
        store = SnapshotStore(self._backend.snapshots_dir)
        limits = snapshot_limits(self._workspace(), None, None)
        if source.is_dir():
            snapshot = store.take(source, limits)
        else:
            with tempfile.TemporaryDirectory(prefix="runlab-snapshot-") as tmp:
                shutil.copy2(source, Path(tmp) / source.name)
                snapshot = store.take(tmp, limits)
        snapshot_id = snapshot.snapshot_id
        if getattr(self._backend, "remote", False):  # a server's workspace: the snapshot is the server's too
            from runlab.execution.remote import push_snapshot

            push_snapshot(self._backend.client, store, snapshot_id)  # type: ignore[attr-defined]
        self._write(f"recording snapshot {snapshot_id[:12]} of run {self.id}",
                    lambda st: st.update_definition(self.id, {"snapshotId": snapshot_id}))
        if "runlab.snapshot_id" not in self._refresh().properties:
            self.add_properties({"runlab.snapshot_id": snapshot_id})
        self._record = None
        return snapshot_id

    def restore_snapshot(self, snapshot_id: str | None = None, path: str | os.PathLike[str] | None = None) -> Path:
        """Write a snapshot of the run (``snapshot_id``; default: the run's latest) as a ZIP file and return
        its path, as Azure ML v1 does: ``path`` is the ZIP file when it ends in ``.zip``, else the folder
        to write ``<snapshot id>.zip`` into (default: the current folder). Unpack it with
        ``shutil.unpack_archive(path, folder)``. Raises RunlabError when the run has no snapshot."""
        import tempfile
        import zipfile

        from runlab.execution.snapshot import SnapshotStore

        snapshot_id = snapshot_id or self.get_snapshot_id()
        if not snapshot_id:
            raise RunlabError(f"run {self.id} has no snapshot: submitted runs have one, other runs get one "
                              "with run.take_snapshot(path)", run_id=self.id)
        where = Path(path) if path is not None else Path.cwd()
        target = where if where.suffix.lower() == ".zip" else where / f"{snapshot_id}.zip"
        target.parent.mkdir(parents=True, exist_ok=True)
        store = SnapshotStore(self._backend.snapshots_dir)
        if getattr(self._backend, "remote", False):  # taken on another machine: fetched from the server
            from runlab.core.errors import NotFoundError
            from runlab.execution.remote import pull_snapshot

            try:
                store.manifest(snapshot_id)
            except NotFoundError:
                pull_snapshot(self._backend.client, store, snapshot_id)  # type: ignore[attr-defined]
        with tempfile.TemporaryDirectory(prefix="runlab-restore-") as tmp:
            written = store.restore(snapshot_id, tmp)
            with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
                for file in written:
                    archive.write(file, Path(file).relative_to(tmp).as_posix())
        return target

    def get_all_logs(self, destination: str | os.PathLike[str] | None = None) -> builtins.list[str]:
        """Download every log file of the run (``azureml-logs/``, ``logs/``, ``user_logs/``) into
        ``destination`` (default: a folder named as the run id in the current folder), keeping their
        names; returns the paths written."""
        dest = Path(destination) if destination is not None else Path.cwd() / self.id
        written = []
        for name in self.get_file_names():
            if name.startswith(LOG_PREFIXES):
                written.append(str(self.download_file(name, dest / name)))
        return written

    def get_secret(self, name: str) -> str:
        """The secret ``name``: the environment variable ``name`` when it is set (a submitted run gets
        ``run_config.environment_variables``), else the entry ``name`` of the JSON object in the secrets
        file: ``$RUNLAB_SECRETS_FILE``, default ``<workspace folder>/secrets.json`` (keep it readable by you
        only). Raises SecretNotFoundError naming both places when neither has it."""
        return self.get_secrets([name])[name]

    def get_secrets(self, secrets: Sequence[str]) -> dict[str, str]:
        """The secrets named in ``secrets``, looked up as :meth:`get_secret` does, as ``{name: value}``.
        Raises SecretNotFoundError naming every one that is missing."""
        from runlab.core.errors import SecretNotFoundError
        from runlab.core.settings import RUNLAB_SECRETS_FILE

        names = [secrets] if isinstance(secrets, str) else list(secrets)
        file = RUNLAB_SECRETS_FILE.read() or self._backend.path / SECRETS_FILE
        found: dict[str, str] = {}
        stored: dict[str, Any] | None = None
        for name in names:
            value = os.environ.get(name)
            if value is None:
                if stored is None:
                    stored = _read_secrets_file(file)
                value = None if stored.get(name) is None else str(stored[name])
            if value is not None:
                found[name] = value
        missing = [n for n in names if n not in found]
        if missing:
            raise SecretNotFoundError(
                f"secret(s) {', '.join(map(repr, missing))} not found: runlab reads secrets from the environment "
                f"variable of that name, then from the JSON object in {file} (set RUNLAB_SECRETS_FILE for "
                "another file)", names=missing, path=file)
        return found

    def clean(self) -> builtins.list[str]:
        """Remove the folder the run ran in on the local pool (``<workspace>/work/<run id>``), if one is
        left; the run's stored files, snapshot and metrics stay. Returns the paths removed. Raises
        RunlabError while the run has not ended."""
        import shutil

        record = self._refresh()
        if not record.status.is_terminal:
            raise RunlabError(f"run {self.id} is {record.status}: clean() removes its working folder once it "
                              "has ended", run_id=self.id)
        workdir = self._backend.path / "work" / self.id
        if workdir.is_symlink():
            workdir.unlink()
            return [str(workdir)]
        if not workdir.is_dir():
            return []
        try:  # the agent removes it too, once the run has ended: whichever comes first
            removed = sorted(str(p) for p in workdir.rglob("*") if p.is_file())
        except OSError:
            removed = []
        shutil.rmtree(workdir, ignore_errors=True)
        return removed

    def register_model(self, model_name: str, model_path: str | None = None, tags: Any = None,
                       properties: Any = None, model_framework: str | None = None,
                       model_framework_version: str | None = None, description: str | None = None,
                       datasets: Any = None, sample_input_dataset: Any = None, sample_output_dataset: Any = None,
                       resource_configuration: Any = None, **_azure: Any) -> Any:
        """Register the run's file or folder ``model_path`` (default: ``model_name``), for example
        ``outputs/model.pt`` or ``outputs``, as the next version of model ``model_name``; returns the
        :class:`~runlab.sdk.model.Model`. In the run this process runs in, what ``./outputs`` holds
        there is stored with the run first. Raises ``ModelPathError`` (listing the run's files) when
        ``model_path`` names none of them."""
        from runlab.sdk.model import Model

        return Model._register_from_run(
            self, model_name, model_path, tags=tags, properties=properties, model_framework=model_framework,
            model_framework_version=model_framework_version, description=description, datasets=datasets,
            sample_input_dataset=sample_input_dataset, sample_output_dataset=sample_output_dataset,
            resource_configuration=resource_configuration)


class _OfflineRun(Run):
    """An offline run (``Run.get_context()`` outside a submitted run), as Azure ML v1 names its class:
    v1 scripts test ``isinstance(run, _OfflineRun)``; ids start with ``OfflineRun_`` too. The same API
    as any run (it records to ``$RUNLAB_HOME/offline``)."""


def _read_secrets_file(path: Path) -> dict[str, Any]:
    from runlab.core.errors import ConfigError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"secrets file {path} cannot be read as JSON ({exc}); it should hold an object "
                          '{"name": "value", ...}', path=path) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"secrets file {path} must hold a JSON object of name -> value", path=path)
    return data


def _azure_environment(definition: dict[str, Any]) -> dict[str, Any]:
    """The run's environment as recorded (runlab's keys), with Azure ML's ``python``, ``docker`` and
    ``environmentVariables`` sections added."""
    from runlab.execution.environments import EnvironmentDefinition
    from runlab.sdk.environment import _conda_from_definition

    stored = dict(definition["environment"])
    try:
        env_def = EnvironmentDefinition.from_dict(stored)
    except RunlabError:
        return stored
    conda = _conda_from_definition(env_def).as_spec()
    docker: dict[str, Any] = definition.get("environmentDocker") or {}
    config: dict[str, Any] = definition.get("docker") or {}
    docker, config = (d if isinstance(d, dict) else {} for d in (docker, config))
    enabled = config.get("useDocker") if config.get("useDocker") is not None else docker.get("enabled", False)
    return {
        **stored,
        "version": definition.get("environmentVersion"),
        "python": {"userManagedDependencies": env_def.user_managed, "interpreterPath": env_def.interpreter_path,
                   "condaDependencies": {"name": "project_environment", **conda}},
        "docker": {"enabled": bool(enabled), "baseImage": docker.get("base_image"),
                   "baseDockerfile": docker.get("base_dockerfile"), "shmSize": docker.get("shm_size"),
                   "arguments": list(config.get("arguments") or docker.get("arguments") or [])},
        "environmentVariables": dict(env_def.environment_variables),
    }


def _experiment_name_from_script() -> str:
    script = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] not in ("", "-c", "-") else ""
    name = re.sub(r"[^A-Za-z0-9_\-]", "_", script).lstrip("_-")[:200]  # an experiment name: ASCII
    return name or "offline"
