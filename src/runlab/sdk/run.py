"""Run: the facade over the tracking layer's run handle, named and shaped as in Azure ML v1."""

from __future__ import annotations

import re
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runlab.core.errors import RunlabError
from runlab.core.process import current_identity
from runlab.core.settings import RUNLAB_RUN_ID, RUNLAB_RUN_OWNER, RUNLAB_WORKSPACE, load_settings
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
        record = folder.store.get_run(run_id)  # raises RunNotFoundError with a clear message
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
            },
        )
        print(
            f"runlab: offline run {run_id} (not a submitted run): recording to {folder.path}; "
            "upload it with `runlab sync`",
            file=sys.stderr,
        )
        return run

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

    def wait_for_completion(self, show_output: bool = False, wait_post_processing: bool = False,
                            raise_on_error: bool = True, timeout_seconds: float | None = None) -> dict[str, Any]:
        """Block until the run ends; returns ``get_details()``. Raises RunFailedError on failure."""
        import time

        from runlab.core.errors import RunFailedError

        deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
        while not self._refresh().status.is_terminal:
            if deadline is not None and time.monotonic() > deadline:
                raise RunlabError(f"run {self.id} did not end within {timeout_seconds} s", run_id=self.id)
            time.sleep(0.2)
        details = self.get_details()
        if raise_on_error and self.record.status == RunStatus.FAILED:
            error = (self.record.error or {}).get("message", "no error recorded")
            raise RunFailedError(f"run {self.id} failed: {error}", run_id=self.id, details=details)
        return details


def _experiment_name_from_script() -> str:
    script = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] not in ("", "-c", "-") else ""
    name = re.sub(r"[^\w\-]", "_", script).lstrip("_-")[:200]
    return name or "offline"
