"""Run: the facade over the tracking layer's run handle, named and shaped as in Azure ML v1."""

from __future__ import annotations

import os
import re
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runlab.core.entities import RunRecord
from runlab.core.errors import RunlabError
from runlab.core.layout import DRIVER_LOG
from runlab.core.names import check_run_id
from runlab.core.process import current_identity, current_user
from runlab.core.settings import (
    RUNLAB_RUN_ID,
    RUNLAB_RUN_OWNER,
    RUNLAB_WORKSPACE,
    load_settings,
)
from runlab.core.status import RunStatus, RunType
from runlab.store.folder import WorkspaceFolder
from runlab.tracking.run import TrackedRun, new_run_id

if TYPE_CHECKING:
    from runlab.sdk.experiment import Experiment

OFFLINE_WORKSPACE_NAME = "offline"

_context_lock = threading.Lock()
_context_run: "Run | None" = None


class Run(TrackedRun):
    """A run. ``Run(experiment, run_id)`` opens an existing one; inside a training script,
    ``Run.get_context()`` returns the run it belongs to."""

    def __init__(self, experiment: "Experiment | WorkspaceFolder", run_id: str, **kwargs: Any) -> None:
        if isinstance(experiment, WorkspaceFolder):
            super().__init__(experiment, run_id, **kwargs)
            return
        folder = experiment.workspace.folder
        record = folder.store.get_run(check_run_id(run_id))  # raises RunNotFoundError with a clear message
        super().__init__(folder, run_id, record=record)

    @classmethod
    def get_context(cls, allow_offline: bool = True, used_for_context_manager: bool = False, **_: Any) -> "Run":
        """The run this code runs in.

        In a submitted run (the agent sets ``RUNLAB_WORKSPACE`` and ``RUNLAB_RUN_ID``), that run.
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
            if workspace_path and run_id:
                owned = RUNLAB_RUN_OWNER.read() != "agent"
                _context_run = cls(WorkspaceFolder(workspace_path), run_id, owned=owned)
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
        run_id = new_run_id(experiment)
        run = cls(
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
        definition = self.record.definition or {}
        return dict(definition.get("inputDatasetPaths", {}))

    def get_portal_url(self) -> str:
        """The run's page in the studio (``runlab studio``; base URL from RUNLAB_STUDIO_URL)."""
        base = load_settings().studio_url
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
        Raises RunFailedError (with the exit code and the end of stderr) when the run failed."""
        import time

        from runlab.core.errors import RunFailedError

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
            raise RunFailedError(text, run_id=self.id, details=details, exit_code=error.get("exit_code"))
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
        """The environment definition the run was submitted with (a dict), or None."""
        return (self.record.definition or {}).get("environment")

    def restore_snapshot(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the run's source snapshot into ``path`` (default: ./<run id>-snapshot)."""
        from runlab.execution.snapshot import SnapshotStore

        snapshot_id = self.record.properties.get("runlab.snapshot_id")
        if not snapshot_id:
            raise RunlabError(f"run {self.id} has no snapshot (only submitted runs have one)", run_id=self.id)
        dest = Path(path) if path is not None else Path.cwd() / f"{self.id}-snapshot"
        SnapshotStore(self._backend.snapshots_dir).restore(snapshot_id, dest)
        return dest


def _experiment_name_from_script() -> str:
    script = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] not in ("", "-c", "-") else ""
    name = re.sub(r"[^A-Za-z0-9_\-]", "_", script).lstrip("_-")[:200]  # an experiment name: ASCII
    return name or "offline"
