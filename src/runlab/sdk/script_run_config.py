"""ScriptRunConfig and RunConfiguration: what to run, where, in which environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from runlab.core.errors import UserError
from runlab.sdk.compute import ComputeTarget, target_name

if TYPE_CHECKING:
    from runlab.sdk.environment import Environment

DEFAULT_MAX_RUN_DURATION_S = 2_592_000  # 30 days, as Azure
_ARGUMENT_TYPES = (str, int, float, bool, os.PathLike)


class RunConfiguration:
    """``config.run_config``: the environment and target of a run."""

    def __init__(self, script: str | None = None, arguments: Sequence[Any] | None = None,
                 framework: str | None = None, communicator: str | None = None,
                 conda_dependencies: Any = None, **_azure: Any) -> None:
        self.script = script
        self.arguments = list(arguments or [])
        self.environment: "Environment | None" = None
        self.target: "str | ComputeTarget" = "local"
        self.node_count = 1
        self.framework = framework or "Python"
        self.environment_variables: dict[str, str] = {}


class ScriptRunConfig:
    """A script (or a command) in ``source_directory``, with arguments, an environment and a target.

    A relative ``source_directory`` is resolved against the current working directory now and
    recorded absolute. Bad input (missing script, script outside the folder, arguments that
    are not text or numbers, unknown target) is reported at ``experiment.submit``."""

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
        limit = self.max_run_duration_seconds
        if limit is not None and (not isinstance(limit, int) or limit <= 0):
            raise UserError(f"max_run_duration_seconds must be a positive int, got {limit!r}")
        definition["maxRunDurationSeconds"] = limit
        definition["nodeCount"] = self.run_config.node_count
        return definition


def _argument_text(index: int, value: Any) -> str:
    if isinstance(value, _ARGUMENT_TYPES):
        return os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    raise UserError(
        f"argument {index} ({value!r}, a {type(value).__name__}) cannot be passed on a command line: "
        "use text or numbers (for data, pass dataset.as_named_input('name').as_mount())",
        index=index,
    )
