"""experiment.submit: validate, snapshot, record the run as Queued, make sure an agent runs."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Mapping

from runlab.core.errors import UserError
from runlab.core.process import current_user
from runlab.core.status import RunStatus, RunType
from runlab.execution.environments import EnvironmentDefinition
from runlab.execution.snapshot import (
    DEFAULT_SNAPSHOT_MAX_BYTES,
    DEFAULT_SNAPSHOT_MAX_FILES,
    SnapshotLimits,
    SnapshotStore,
)
from runlab.execution.targets import LOCAL, TargetSettings, ensure_agent
from runlab.sdk.script_run_config import ScriptRunConfig
from runlab.tracking.run import new_run_id

if TYPE_CHECKING:
    from runlab.sdk.experiment import Experiment
    from runlab.sdk.run import Run
    from runlab.sdk.workspace import Workspace

DEFAULT_ENVIRONMENT = "runlab-default"


def default_environment() -> EnvironmentDefinition:
    """No environment given: run with the submitting interpreter, as is (nothing to build)."""
    return EnvironmentDefinition(name=DEFAULT_ENVIRONMENT, user_managed=True, interpreter_path=sys.executable)


def snapshot_limits(workspace: "Workspace", max_bytes: int | None, max_files: int | None) -> SnapshotLimits:
    store = workspace.folder.store
    ws_bytes, ws_files = store.get_meta("snapshot_max_bytes"), store.get_meta("snapshot_max_files")
    return SnapshotLimits(
        max_bytes=max_bytes or (int(ws_bytes) if ws_bytes else DEFAULT_SNAPSHOT_MAX_BYTES),
        max_files=max_files or (int(ws_files) if ws_files else DEFAULT_SNAPSHOT_MAX_FILES),
    )


def submit_script_run(
    experiment: "Experiment",
    config: Any,
    *,
    tags: Mapping[str, Any] | None = None,
    snapshot_max_bytes: int | None = None,
    snapshot_max_files: int | None = None,
) -> "Run":
    from runlab.sdk.run import Run

    if not isinstance(config, ScriptRunConfig):
        raise UserError(f"experiment.submit takes a ScriptRunConfig, got {type(config).__name__}")
    workspace = experiment.workspace
    folder = workspace.folder
    definition = config.validate()
    target = definition["target"]
    TargetSettings.load(folder, target)  # raises ComputeTargetException for an unknown target
    environment = config.run_config.environment
    env_def = environment.definition() if environment is not None else default_environment()
    env_def = env_def.normalized()
    limits = snapshot_limits(workspace, snapshot_max_bytes, snapshot_max_files)
    snapshot = SnapshotStore(folder.snapshots_dir).take(definition["sourceDirectory"], limits)
    left_out = snapshot.skipped_line()  # links out of the folder, broken links...: say so, on one line
    if left_out is not None:
        print(left_out, file=sys.stderr, flush=True)
    definition.update(
        environment=env_def.to_dict(),
        environmentName=env_def.name,
        environmentVersion=getattr(environment, "version", None),
        environmentHash=env_def.content_hash(),
        snapshotId=snapshot.snapshot_id,
    )
    properties = {
        "runlab.snapshot_id": snapshot.snapshot_id,
        "runlab.source_directory": definition["sourceDirectory"],
        "runlab.user": current_user(),
    }
    if snapshot.git is not None:
        git = snapshot.git.to_dict()
        properties.update({f"azureml.git.{k}": str(v) for k, v in git.items() if v is not None})
        definition["git"] = git
    run_id = new_run_id(experiment.name)
    record = folder.store.create_run(
        run_id, experiment.name, run_type=RunType.SUBMITTED, status=RunStatus.QUEUED, target=target,
        definition=definition, tags={k: str(v) for k, v in (tags or {}).items()}, properties=properties,
    )
    ensure_agent(folder, target if target else LOCAL)
    return Run(folder, run_id, record=record)
