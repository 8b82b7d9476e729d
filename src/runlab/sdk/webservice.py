"""Azure ML v1's web service classes: runlab deploys no services, so each call that would reach one
raises :class:`~runlab.core.errors.WebserviceException` (a ``NotSupportedError``) naming the call.

Configurations (``InferenceConfig(...)``, ``AciWebservice.deploy_configuration(...)``) are accepted,
so that a script fails at the deployment itself, with the message saying what to do instead.
"""

from __future__ import annotations

from typing import Any, NoReturn

from runlab.core.errors import WebserviceException


def _refuse(call: str) -> NoReturn:
    raise WebserviceException(
        f"{call}: runlab does not deploy web services (no ACI, AKS or managed endpoints). Download the model "
        "with Model(ws, name).download() or Model.get_model_path(name) and serve it with the tool of your choice",
        call=call)


class InferenceConfig:
    """``InferenceConfig(entry_script=..., environment=...)``: accepted and kept; only useful to ``deploy``."""

    def __init__(self, entry_script: str | None = None, environment: Any = None, source_directory: str | None = None,
                 **_azure: Any) -> None:
        self.entry_script = entry_script
        self.environment = environment
        self.source_directory = source_directory


class WebserviceDeploymentConfiguration:
    """What ``*.deploy_configuration(...)`` returns: the arguments, kept."""

    def __init__(self, kind: str, **settings: Any) -> None:
        self.kind = kind
        self.settings = settings


class Webservice:
    """``Webservice(ws, name)``: raises WebserviceException (no services exist here)."""

    _kind = "Webservice"

    def __init__(self, workspace: Any = None, name: str | None = None, **_azure: Any) -> None:
        _refuse(f"{self._kind}(workspace, name={name!r})")

    @classmethod
    def deploy_configuration(cls, **settings: Any) -> WebserviceDeploymentConfiguration:
        return WebserviceDeploymentConfiguration(cls._kind, **settings)

    @classmethod
    def deploy_from_model(cls, *_args: Any, **_kwargs: Any) -> NoReturn:
        _refuse(f"{cls._kind}.deploy_from_model")

    @classmethod
    def deploy_from_image(cls, *_args: Any, **_kwargs: Any) -> NoReturn:
        _refuse(f"{cls._kind}.deploy_from_image")

    @staticmethod
    def list(*_args: Any, **_kwargs: Any) -> list[Any]:
        """No web services: an empty list."""
        return []


class AciWebservice(Webservice):
    _kind = "AciWebservice"


class AksWebservice(Webservice):
    _kind = "AksWebservice"


class LocalWebservice(Webservice):
    _kind = "LocalWebservice"
