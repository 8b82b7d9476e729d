"""Azure ML v1's authentication classes: accepted so that v1 code runs, recorded, and of no effect.

A runlab workspace is a folder (or a server reached with a token from ``config.json`` or
``RUNLAB_TOKEN``): nothing signs in to Azure. Each object keeps the arguments it was given (secrets
excepted) in ``recorded`` for the record, and ``get_authentication_header()`` returns an empty dict.
"""

from __future__ import annotations

from typing import Any

_SECRET_ARGUMENTS = frozenset({"service_principal_password", "password", "secret", "client_secret"})


class AbstractAuthentication:
    """The base of the v1 authentication classes: arguments accepted and recorded, nothing signed in."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.recorded: dict[str, Any] = {
            **{f"arg{i}": a for i, a in enumerate(args)},
            **{k: ("***" if k in _SECRET_ARGUMENTS else v) for k, v in kwargs.items()},
        }

    def get_authentication_header(self) -> dict[str, str]:
        """An empty dict: runlab sends no Azure credentials."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(no effect in runlab)"


class InteractiveLoginAuthentication(AbstractAuthentication):
    """``InteractiveLoginAuthentication(force=False, tenant_id=None)``: no browser opens."""


class ServicePrincipalAuthentication(AbstractAuthentication):
    """``ServicePrincipalAuthentication(tenant_id, service_principal_id, service_principal_password)``:
    the password is not kept."""


class AzureCliAuthentication(AbstractAuthentication):
    """``AzureCliAuthentication()``: the Azure CLI is not called."""


class MsiAuthentication(AbstractAuthentication):
    """``MsiAuthentication()``: no managed identity is asked for."""


class TokenAuthentication(AbstractAuthentication):
    """``TokenAuthentication(get_token_for_audience)``: the callback is never called."""
