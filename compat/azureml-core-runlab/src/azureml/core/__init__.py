"""Azure ML SDK v1's ``azureml.core``, provided by runlab (distribution ``azureml-core-runlab``).

Every name is runlab's object, loaded on first use (a training script's ``from azureml.core import Run``
stays as light as ``from runlab import Run``). Not Microsoft's ``azureml-core``: when that distribution is
installed in the same environment, importing this package warns, naming both and the active one.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from importlib import import_module
from typing import Any

import runlab

__runlab_compat__ = True
VERSION = f"1.61.0+runlab.{runlab.__version__}"  # the v1 API level runlab follows, and runlab's version
__version__ = VERSION


class AzuremlShadowWarning(UserWarning):
    """Microsoft's azureml-core is installed beside runlab's compatibility package."""


def _warn_if_microsoft_sdk_installed() -> None:
    try:
        microsoft = importlib.metadata.distribution("azureml-core")
    except importlib.metadata.PackageNotFoundError:
        return
    warnings.warn(
        f"azureml.core is runlab's compatibility package (azureml-core-runlab, {__file__}), but Microsoft's "
        f"azureml-core {microsoft.version} is installed too ({microsoft.locate_file('')}): the two share the "
        "azureml/core folder, so runlab's is active here and Microsoft's is shadowed (or their files are mixed). "
        "Keep one: `pip uninstall azureml-core` to run on runlab, `pip uninstall azureml-core-runlab` for Azure",
        AzuremlShadowWarning, stacklevel=3,
    )


_warn_if_microsoft_sdk_installed()

_EXPORTS = {
    "ComputeTarget": "runlab.sdk.compute",
    "Dataset": "runlab.sdk.dataset",
    "Datastore": "runlab.sdk.datastore",
    "Environment": "runlab.sdk.environment",
    "Experiment": "runlab.sdk.experiment",
    "Model": "runlab.sdk.model",
    "Run": "runlab.sdk.run",
    "RunConfiguration": "runlab.sdk.script_run_config",
    "ScriptRun": "runlab.sdk.run",
    "ScriptRunConfig": "runlab.sdk.script_run_config",
    "Webservice": "runlab.sdk.webservice",
    "Workspace": "runlab.sdk.workspace",
}
_RENAMED = {"ScriptRun": "Run"}

__all__ = sorted([*_EXPORTS, "VERSION"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'azureml.core' has no attribute {name!r} (runlab's compatibility package)")
    value = getattr(import_module(module), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
