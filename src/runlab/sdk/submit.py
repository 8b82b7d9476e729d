"""experiment.submit: validate, snapshot, record the run as Queued, make sure an agent runs."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, is_dataclass, replace
from typing import TYPE_CHECKING, Any, Mapping

from runlab.core.assets import RunInputRecord
from runlab.core.errors import UserError
from runlab.core.process import current_user
from runlab.core.settings import RUNLAB_SYSTEM_METRICS_INTERVAL
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
from runlab.store.datasets import check_matches, list_sources
from runlab.store.datastores import datastore_opener
from runlab.store.inputs import InputSpec
from runlab.tracking.run import new_run_id

if TYPE_CHECKING:
    from runlab.sdk.experiment import Experiment
    from runlab.sdk.run import Run
    from runlab.sdk.workspace import Workspace

DEFAULT_ENVIRONMENT = "runlab-default"


def default_environment() -> EnvironmentDefinition:
    """No environment given: run with the submitting interpreter, as is (nothing to build)."""
    return EnvironmentDefinition(name=DEFAULT_ENVIRONMENT, user_managed=True, interpreter_path=sys.executable)


def _is_untouched_default(definition: EnvironmentDefinition) -> bool:
    from runlab.sdk.script_run_config import DEFAULT_ENVIRONMENT_NAME

    empty = EnvironmentDefinition(name=DEFAULT_ENVIRONMENT_NAME)
    return replace(definition, environment_variables={}, python_resolved=None) == empty


def snapshot_limits(workspace: "Workspace", max_bytes: int | None, max_files: int | None) -> SnapshotLimits:
    store = workspace.folder.store
    ws_bytes, ws_files = store.get_meta("snapshot_max_bytes"), store.get_meta("snapshot_max_files")
    return SnapshotLimits(
        max_bytes=max_bytes or (int(ws_bytes) if ws_bytes else DEFAULT_SNAPSHOT_MAX_BYTES),
        max_files=max_files or (int(ws_files) if ws_files else DEFAULT_SNAPSHOT_MAX_FILES),
    )


def check_inputs(workspace: "Workspace", inputs: list[Any]) -> list[InputSpec]:
    """Each named input as the run's definition records it, checked now rather than in the run: the
    dataset is of this workspace, its datastores exist and answer, and its paths match files."""
    from runlab.sdk.dataset import DatasetConsumptionConfig

    specs = []
    for item in inputs:
        assert isinstance(item, DatasetConsumptionConfig)
        dataset = item.dataset
        if dataset.workspace is not None and dataset.workspace != workspace:
            raise UserError(f"input {item.name!r} is a dataset of workspace {dataset.workspace.name}; this run goes to "
                            f"{workspace.name}: register the data there", name=item.name)
        spec = item.spec()
        if spec.origin_id is None:  # listed now, so that a path that matches nothing fails the submit
            check_matches(list_sources(spec.dataset_definition, datastore_opener(workspace.folder.store,
                                                                                 workspace.folder.datastores_dir)))
        else:
            workspace.folder.store.get_dataset_by_id(spec.origin_id)  # a version of this workspace
        specs.append(spec)
    return specs


def _validate(folder: Any, config: ScriptRunConfig) -> dict[str, Any]:
    """``config.validate()``; on a Ray target, its rules for distributed runs (several nodes, the cluster's cores)."""
    target = getattr(config, "target", None)
    if isinstance(target, str) and target != LOCAL:
        from runlab.execution.ray_target import is_ray_target, validate_for_ray

        if is_ray_target(folder, target):
            return validate_for_ray(config)
    return config.validate()


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
    definition = _validate(folder, config)
    target = definition["target"]
    TargetSettings.load(folder, target)  # raises ComputeTargetException for an unknown target
    environment = config.run_config.environment
    env_def = environment.definition() if environment is not None else default_environment()
    if environment is not None and _is_untouched_default(env_def):  # RunConfiguration()'s own: run as is
        env_def = replace(default_environment(), environment_variables=env_def.environment_variables)
    run_variables = getattr(config.run_config, "environment_variables", None) or {}
    if run_variables:  # run_config.environment_variables: over the environment's own
        env_def = replace(env_def, environment_variables={**env_def.environment_variables,
                                                          **{str(k): str(v) for k, v in run_variables.items()}})
    env_def = env_def.normalized()
    limits = snapshot_limits(workspace, snapshot_max_bytes, snapshot_max_files)
    snapshots = SnapshotStore(folder.snapshots_dir)
    snapshot = snapshots.take(definition["sourceDirectory"], limits)
    if getattr(folder, "remote", False):  # a server's workspace: send it the files it does not have
        from runlab.execution.remote import push_snapshot

        push_snapshot(folder.client, snapshots, snapshot.snapshot_id)  # type: ignore[attr-defined]
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
    docker = getattr(environment, "docker", None)
    if docker is not None and is_dataclass(docker):  # env.docker: recorded (get_details, get_environment)
        definition["environmentDocker"] = asdict(docker)  # type: ignore[arg-type]
    properties = {
        "runlab.snapshot_id": snapshot.snapshot_id,
        "runlab.source_directory": definition["sourceDirectory"],
        "runlab.user": current_user(),
    }
    if snapshot.git is not None:
        git = snapshot.git.to_dict()
        properties.update({f"azureml.git.{k}": str(v) for k, v in git.items() if v is not None})
        definition["git"] = git
    if os.environ.get(RUNLAB_SYSTEM_METRICS_INTERVAL.name):
        # the submitter's setting goes with the run: the agent that samples it (a server's, or one
        # started by an earlier submit) has its own environment. Read here, a bad value is refused now.
        definition["systemMetricsIntervalSeconds"] = RUNLAB_SYSTEM_METRICS_INTERVAL.read()
    inputs = check_inputs(workspace, config.dataset_inputs())
    if inputs:
        definition["inputDatasets"] = [spec.to_dict() for spec in inputs]
    if target != LOCAL:  # what a Ray target cannot run yet is refused here, not after queueing
        from runlab.execution.ray_target import check_ray_definition, is_ray_target

        if is_ray_target(folder, target):
            check_ray_definition(definition)
    run_id = new_run_id(experiment.name)
    record = folder.store.create_run(
        run_id, experiment.name, run_type=RunType.SUBMITTED, status=RunStatus.QUEUED, target=target,
        definition=definition, tags={k: str(v) for k, v in (tags or {}).items()}, properties=properties,
    )
    if inputs:
        folder.store.record_run_inputs(run_id, [
            RunInputRecord(run_id, spec.name, spec.kind, spec.mode, dataset_id=spec.origin_id,
                           dataset_name=spec.origin_name, dataset_version=spec.origin_version)
            for spec in inputs
        ])
    ensure_agent(folder, target if target else LOCAL)
    return Run(folder, run_id, record=record)
