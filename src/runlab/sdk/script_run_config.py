"""ScriptRunConfig and RunConfiguration: what to run, where, in which environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from runlab.core.errors import UserError
from runlab.execution.distributed import process_count
from runlab.sdk.compute import ComputeTarget, target_name

if TYPE_CHECKING:
    from runlab.sdk.environment import Environment

DEFAULT_MAX_RUN_DURATION_S = 2_592_000  # 30 days, as Azure
DEFAULT_ENVIRONMENT_NAME = "runlab-default"
_ARGUMENT_TYPES = (str, int, float, bool, os.PathLike)


class RunConfiguration:
    """``config.run_config``: the environment and target of a run.

    ``environment`` starts as an empty environment named ``runlab-default``: left as it is, the run uses
    the submitting Python as is (nothing is built); give it packages (``rc.environment.python.
    conda_dependencies = cd``, or ``RunConfiguration(conda_dependencies=cd)``) and they are built.
    ``environment_variables`` are set in the run's process (over the environment's own)."""

    def __init__(self, script: str | None = None, arguments: Sequence[Any] | None = None,
                 framework: str | None = None, communicator: str | None = None,
                 conda_dependencies: Any = None, **_azure: Any) -> None:
        from runlab.sdk.environment import Environment

        self.script = script
        self.arguments = list(arguments or [])
        self.environment: "Environment | None" = Environment(DEFAULT_ENVIRONMENT_NAME)
        if conda_dependencies is not None:
            self.environment.python.conda_dependencies = conda_dependencies
        self.docker: Any = None
        self.communicator = communicator or "None"
        self.target: "str | ComputeTarget" = "local"
        self.node_count = 1
        self.framework = framework or "Python"
        self.environment_variables: dict[str, str] = {}
        # named inputs: {name: dataset.as_named_input(name).as_mount()}, as Azure's run_config.data
        self.data: dict[str, Any] = {}


class ScriptRunConfig:
    """A script (or a command) in ``source_directory``, with arguments, an environment and a target.

    A relative ``source_directory`` is resolved against the current working directory now and
    recorded absolute. Bad input (missing script, script outside the folder, arguments that
    are not text or numbers, unknown target, a ``distributed_job_config`` the local pool cannot run) is
    reported at ``experiment.submit``. ``distributed_job_config=PyTorchConfiguration(process_count=N)``
    starts N processes with torch.distributed's variables (``runlab.execution.distributed``)."""

    def __init__(
        self,
        source_directory: str | os.PathLike[str],
        script: str | None = None,
        arguments: Sequence[Any] | None = None,
        run_config: RunConfiguration | None = None,
        _telemetry_values: Any = None,
        compute_target: "str | ComputeTarget | None" = None,
        environment: "Environment | None" = None,
        distributed_job_config: Any = None,
        resume_from: Any = None,
        max_run_duration_seconds: int = DEFAULT_MAX_RUN_DURATION_S,
        command: str | Sequence[str] | None = None,
        docker_runtime_config: Any = None,
    ) -> None:
        self.source_directory = str(Path(source_directory).expanduser().resolve())
        self.script = script
        self.arguments = list(arguments or [])
        self.command = command
        self.max_run_duration_seconds = max_run_duration_seconds
        self.run_config = run_config if run_config is not None else RunConfiguration()
        if compute_target is not None:
            self.run_config.target = compute_target
        if environment is not None:
            self.run_config.environment = environment
        if docker_runtime_config is not None:
            self.run_config.docker = docker_runtime_config
        self.distributed_job_config = distributed_job_config

    @property
    def target(self) -> str:
        return target_name(self.run_config.target)

    def validate(self) -> dict[str, Any]:
        """Check what can be checked without the workspace; the run definition's core fields."""
        source = Path(self.source_directory)
        if not source.is_dir():
            raise UserError(
                f"source_directory {source} is not a folder: pass the folder that holds your script "
                "(a relative path is resolved against the current folder)", path=source,
            )
        if (self.script is None) == (self.command is None):
            raise UserError("ScriptRunConfig needs exactly one of script= or command=")
        definition: dict[str, Any] = {"sourceDirectory": str(source), "target": self.target}
        if self.script is not None:
            script_path = (source / self.script).resolve()
            if not script_path.is_relative_to(source):
                raise UserError(
                    f"script {self.script!r} is outside source_directory {source}: move it into the folder "
                    "(everything the run needs must be in source_directory, which is snapshotted)",
                    path=script_path,
                )
            if not script_path.is_file():
                raise UserError(f"script {self.script!r} not found in source_directory {source}", path=script_path)
            definition["script"] = script_path.relative_to(source).as_posix()
        else:
            definition["command"] = self.command if isinstance(self.command, str) else [str(c) for c in self.command or []]
        definition["arguments"] = [_argument_text(i, a) for i, a in enumerate(self.arguments)]
        argument_inputs = {str(i): a.name for i, a in enumerate(self.arguments) if _is_input(a)}
        if argument_inputs:
            definition["argumentInputs"] = argument_inputs
        outputs = _output_datasets(self.arguments)
        if outputs:  # get_details()['outputDatasets']
            definition["outputDatasets"] = outputs
        limit = self.max_run_duration_seconds
        if limit is not None and (not isinstance(limit, int) or limit <= 0):
            raise UserError(f"max_run_duration_seconds must be a positive int, got {limit!r}")
        definition["maxRunDurationSeconds"] = limit
        definition["nodeCount"] = self.run_config.node_count
        for key, value in (("docker", self.run_config.docker), ("distributedJobConfig", self.distributed_job_config)):
            if value is not None:  # recorded (runlab.sdk.job_config): no container; processes as below
                definition[key] = value.to_dict() if hasattr(value, "to_dict") else repr(value)
        # one machine: node_count 1; PyTorchConfiguration(process_count=N) starts N ranks (execution.distributed)
        definition["processCount"] = process_count(definition.get("distributedJobConfig"), definition["nodeCount"])
        return definition

    def dataset_inputs(self) -> list[Any]:
        """The named dataset inputs (``DatasetConsumptionConfig``) of the arguments and ``run_config.data``,
        one per name; two different inputs under one name are an error."""
        from runlab.sdk.dataset import DatasetConsumptionConfig

        data = self.run_config.data
        if not isinstance(data, dict):
            raise UserError(f"run_config.data is a dict of input name to dataset.as_named_input(name)..., got "
                            f"{type(data).__name__}")
        found: dict[str, DatasetConsumptionConfig] = {}
        for key, value in data.items():
            if not isinstance(value, DatasetConsumptionConfig):
                raise UserError(f"run_config.data[{key!r}] is {type(value).__name__}: give "
                                f"dataset.as_named_input({key!r}) (.as_mount() or .as_download() for files)")
            if key != value.name:
                raise UserError(f"run_config.data[{key!r}] is input {value.name!r}: use the input's name as the key")
        for value in [*(a for a in self.arguments if _is_input(a)), *data.values()]:
            seen = found.get(value.name)
            if seen is not None and seen is not value and (seen.dataset is not value.dataset or seen.mode != value.mode
                                                           or seen.path_on_compute != value.path_on_compute):
                raise UserError(f"two different inputs are named {value.name!r}: give each its own name with "
                                "dataset.as_named_input('name')", name=value.name)
            found[value.name] = value
        return list(found.values())


def _output_datasets(arguments: Sequence[Any]) -> list[dict[str, Any]]:
    """The ``OutputFileDatasetConfig`` arguments, as recorded: name, the run's folder, the destination."""
    from runlab.sdk.output_dataset import OutputFileDatasetConfig

    out = []
    for value in arguments:
        if isinstance(value, OutputFileDatasetConfig):
            where = value.destination
            if isinstance(where, (tuple, list)) and len(where) == 2:
                destination: Any = [str(getattr(where[0], "name", where[0])), str(where[1])]
            else:
                destination = None if where is None else str(where)
            out.append({"name": value.name, "path": os.fspath(value), "destination": destination})
    return out


def _is_input(value: Any) -> bool:
    from runlab.sdk.dataset import DatasetConsumptionConfig

    return isinstance(value, DatasetConsumptionConfig)


def _argument_text(index: int, value: Any) -> str:
    if isinstance(value, _ARGUMENT_TYPES):
        return os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    if _is_input(value):
        return f"DatasetConsumptionConfig:{value.name}"  # as Azure's run details show it; expanded in the run
    from runlab.sdk.dataset import Dataset
    from runlab.sdk.datastore import DataPath

    if isinstance(value, Dataset):
        raise UserError(f"argument {index} is a dataset: pass dataset.as_named_input('name').as_mount() (files) or "
                        "dataset.as_named_input('name') (tables), which the run receives as a path or an id",
                        index=index)
    if isinstance(value, DataPath):
        raise UserError(f"argument {index} is a DataPath ({value!r}): pass "
                        "Dataset.File.from_files(path=datapath).as_named_input('name').as_mount()", index=index)
    raise UserError(
        f"argument {index} ({value!r}, a {type(value).__name__}) cannot be passed on a command line: "
        "use text or numbers (for data, pass dataset.as_named_input('name').as_mount())",
        index=index,
    )
