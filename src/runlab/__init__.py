"""runlab: the Azure ML SDK v1 experience, self-hosted. ``from runlab import Workspace, Run, ...``

Names load on first use, so that ``import runlab`` in a training script stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "ActivityFailedException": "runlab.core.errors",
    "AmlCompute": "runlab.sdk.compute",
    "CondaDependencies": "runlab.sdk.environment",
    "DockerConfiguration": "runlab.sdk.job_config",
    "MpiConfiguration": "runlab.sdk.job_config",
    "PyTorchConfiguration": "runlab.sdk.job_config",
    "RayCompute": "runlab.sdk.compute",
    "WebserviceException": "runlab.core.errors",
    "ComputeTarget": "runlab.sdk.compute",
    "Environment": "runlab.sdk.environment",
    "RunConfiguration": "runlab.sdk.script_run_config",
    "ScriptRunConfig": "runlab.sdk.script_run_config",
    "ComputeTargetException": "runlab.core.errors",
    "ConfigError": "runlab.core.errors",
    "DataPath": "runlab.sdk.datastore",
    "Datastore": "runlab.sdk.datastore",
    "DatastoreNotFoundError": "runlab.core.errors",
    "Dataset": "runlab.sdk.dataset",
    "Experiment": "runlab.sdk.experiment",
    "InvalidNameError": "runlab.core.errors",
    "InvalidValueError": "runlab.core.errors",
    "Model": "runlab.sdk.model",
    "ModelNotFoundError": "runlab.core.errors",
    "ModelPathError": "runlab.core.errors",
    "NotFoundError": "runlab.core.errors",
    "NotSupportedError": "runlab.core.errors",
    "PropertyConflictError": "runlab.core.errors",
    "Run": "runlab.sdk.run",
    "RunFailedError": "runlab.core.errors",
    "RunNotFoundError": "runlab.core.errors",
    "RunStatus": "runlab.core.status",
    "RunlabError": "runlab.core.errors",
    "UserError": "runlab.core.errors",
    "Workspace": "runlab.sdk.workspace",
    "WorkspaceExistsError": "runlab.core.errors",
    "WorkspaceNotFoundError": "runlab.core.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:
    from runlab.core.errors import (
        ActivityFailedException,
        ComputeTargetException,
        ConfigError,
        DatastoreNotFoundError,
        InvalidNameError,
        InvalidValueError,
        ModelNotFoundError,
        ModelPathError,
        NotFoundError,
        NotSupportedError,
        PropertyConflictError,
        RunFailedError,
        RunlabError,
        RunNotFoundError,
        UserError,
        WebserviceException,
        WorkspaceExistsError,
        WorkspaceNotFoundError,
    )
    from runlab.core.status import RunStatus
    from runlab.sdk.compute import AmlCompute, ComputeTarget, RayCompute
    from runlab.sdk.dataset import Dataset
    from runlab.sdk.datastore import DataPath, Datastore
    from runlab.sdk.environment import CondaDependencies, Environment
    from runlab.sdk.experiment import Experiment
    from runlab.sdk.job_config import DockerConfiguration, MpiConfiguration, PyTorchConfiguration
    from runlab.sdk.model import Model
    from runlab.sdk.run import Run
    from runlab.sdk.script_run_config import RunConfiguration, ScriptRunConfig
    from runlab.sdk.workspace import Workspace


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'runlab' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
