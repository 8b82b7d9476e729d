"""Experiment: a named group of runs in a workspace."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Mapping

from runlab.core.names import check_experiment_name
from runlab.core.process import current_identity, current_user
from runlab.core.status import RunStatus, RunType
from runlab.execution.targets import restart_dead_agents
from runlab.tracking.retry import retry_while_unavailable
from runlab.tracking.run import new_run_id

if TYPE_CHECKING:
    from runlab.sdk.run import Run
    from runlab.sdk.workspace import Workspace


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

    @staticmethod
    def list(workspace: "Workspace", experiment_name: str | None = None, **_azure: Any) -> list["Experiment"]:
        """Experiments of ``workspace`` (optionally only the one called ``experiment_name``)."""
        records = workspace.folder.store.list_experiments()
        return [Experiment(workspace, r.name) for r in records if experiment_name in (None, r.name)]

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
        restart_dead_agents(self._workspace.folder, {r.target for r in records if r.status == RunStatus.QUEUED})
        for record in records:
            if type is None or str(record.run_type) == type:
                yield Run(self._workspace.folder, record.run_id, record=record)

    def start_logging(self, *args: Any, display_name: str | None = None, outputs: Any = None,
                      snapshot_directory: Any = None, **kwargs: Any) -> "Run":
        """Start an interactive run: log from this process; it ends with ``run.complete()``,
        ``with run:``, or when the process exits (Completed; Failed on an exception or a non-zero
        ``sys.exit`` code).

        The run is in the store when this returns. A busy store (another process holds the
        database's write lock) makes it wait and retry, for up to ``RUNLAB_STORE_RETRY_TIMEOUT``
        seconds (then StoreBusyError), never fail at once."""
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
