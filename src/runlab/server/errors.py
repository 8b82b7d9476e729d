"""Errors as HTTP: runlab's exception classes mapped to status codes in one table.

Every error the API returns is JSON ``{"error": {"message": ..., "type": ...}}`` with a message a
person understands, and the request's id (``"request_id"``, also in the ``X-Request-Id`` header)
where the app has the ops middleware (:mod:`runlab.server.ops`), so a user can quote it; validation errors add ``"details"`` (which parameter, what was wrong). An
unexpected exception is a 500 with the same shape (and is logged), never an HTML page.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from runlab.core.errors import (
    AuthenticationError,
    ConfigError,
    NotFoundError,
    PermissionDeniedError,
    RunFailedError,
    RunlabError,
    StoreError,
    StoreUnavailableError,
    UserError,
    WorkspaceExistsError,
)

log = logging.getLogger("runlab.server")

# The one table: the first class in this list that the exception is an instance of decides.
# Order matters where classes inherit from one another (StoreUnavailableError is a StoreError).
STATUS_BY_ERROR: tuple[tuple[type[RunlabError], int], ...] = (
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (NotFoundError, 404),
    (ConfigError, 500),  # the server's own configuration is broken, not the request
    (UserError, 400),
    (WorkspaceExistsError, 409),
    (StoreUnavailableError, 503),
    (StoreError, 500),
    (RunFailedError, 409),
    (RunlabError, 500),
)


def status_for(exc: RunlabError) -> int:
    """The HTTP status code for one of runlab's errors (see :data:`STATUS_BY_ERROR`)."""
    for cls, code in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return code
    return 500


def error_body(message: str, type_: str, details: Sequence[Any] | None = None) -> dict[str, Any]:
    """The JSON body of every error response."""
    error: dict[str, Any] = {"message": message, "type": type_}
    if details:
        error["details"] = list(details)
    return {"error": error}


def _with_request_id(request: Request, body: dict[str, Any], status_code: int,
                     headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The error response, quoting the request's id when the ops middleware gave it one."""
    state = request.scope.get("state")
    request_id = state.get("request_id") if isinstance(state, dict) else None
    if isinstance(request_id, str):
        body["error"]["request_id"] = request_id
        headers = {**(headers or {}), "X-Request-Id": request_id}
    return JSONResponse(body, status_code=status_code, headers=dict(headers) if headers else None)


def _describe_validation(errors: Sequence[Any]) -> tuple[str, list[dict[str, Any]]]:
    details = []
    parts = []
    for err in errors:
        loc = [str(x) for x in err.get("loc", ()) if x not in ("query", "path", "body", "header")]
        where = ".".join(loc) or "request"
        msg = str(err.get("msg", "is invalid"))
        details.append({"parameter": where, "problem": msg})
        parts.append(f"{where}: {msg}")
    return "invalid request: " + "; ".join(parts), details


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's HTTP errors (unknown path, wrong method) as JSON error bodies."""
    if exc.status_code == 404 and exc.detail == "Not Found":
        message = f"no such page or endpoint: {request.url.path} (the API is described at /api/docs)"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return _with_request_id(request, error_body(message, "HTTPError"), exc.status_code,
                            getattr(exc, "headers", None))


async def runlab_error(request: Request, exc: RunlabError) -> JSONResponse:
    code = status_for(exc)
    if code >= 500 and code != 503:
        log.error("runlab error: %s", exc.message, exc_info=exc)
    headers = {"Retry-After": "1"} if code == 503 else ({"WWW-Authenticate": 'Bearer realm="runlab"'} if code == 401 else None)
    return _with_request_id(request, error_body(exc.message, type(exc).__name__), code, headers)


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    message, details = _describe_validation(exc.errors())
    return _with_request_id(request, error_body(message, "ValidationError", details), 422)


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` a JSON error body with the right status code."""
    app.add_exception_handler(RunlabError, runlab_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]

    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error in the studio server", exc_info=exc)
        return _with_request_id(
            request,
            error_body(f"internal error ({type(exc).__name__}): this is a bug in runlab; the server log "
                       "has the details", "InternalError"),
            500,
        )
