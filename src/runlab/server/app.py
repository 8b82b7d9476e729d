"""The app factory: one ASGI app serving the REST API (``/api``) and the pages of a workspace."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from runlab.core.errors import RunlabError
from runlab.server import data_pages, errors, pages
from runlab.server.api import catalog, data, events, experiments, files, logs, metrics, mlflow, remote, runs, workspace
from runlab.server.auth import AuthConfig, install_auth, studio_config
from runlab.server.ops import install_ops
from runlab.server.state import DEFAULT_POLL_INTERVAL_S, DEFAULT_STREAM_MAX_S, StudioState
from runlab.store.folder import WorkspaceFolder

API_PREFIX = "/api"
OPENAPI_URL = "/api/openapi.json"
DOCS_URL = "/api/docs"
# The largest request line and headers uvicorn takes (h11's default, 16 KiB, refuses a runs query within
# the 10,000 characters the API allows once it is percent-encoded and arrives in network-sized segments).
MAX_REQUEST_HEAD_BYTES = 1 << 20  # uvicorn's h11_max_incomplete_event_size

DESCRIPTION = """\
The REST API of a runlab workspace: experiments, runs (filter, sort by any column or a metric's
last value, search, paginate), metric series (downsampled server-side, keeping minima and maxima;
several runs at once for comparison), run files, logs (tail, and live with server-sent events),
and the workspace's environments, compute targets, datastores, datasets and models.

Errors are JSON: `{"error": {"message": "...", "type": "..."}}`. Times are unix seconds.
"""


def _swagger_assets() -> Path | None:
    """Swagger UI 5's files (it reads OpenAPI 3.1, which FastAPI emits), as the ``swagger-ui-py``
    package ships them: located, not imported, and served from here, so the docs work offline."""
    spec = find_spec("swagger_ui")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "static"
    return path if (path / "swagger-ui-bundle.js").is_file() else None


def create_app(
    folder: WorkspaceFolder,
    *,
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
    stream_max_s: float = DEFAULT_STREAM_MAX_S,
    auth: AuthConfig | None = None,
) -> FastAPI:
    """The studio app for the workspace in ``folder``.

    ``poll_interval_s``: how often live streams (server-sent events) look for new metric points,
    log lines and status changes; ``stream_max_s``: how long one stream lasts before the page
    reconnects. ``app.state.studio`` holds the :class:`StudioState`; set its ``stopping`` event
    to end live streams before shutting the server down.
    """
    app = FastAPI(
        title="runlab studio",
        version=pages._version(),
        description=DESCRIPTION,
        openapi_url=OPENAPI_URL,
        docs_url=None,
        redoc_url=None,
    )
    app.state.studio = StudioState.for_folder(folder, poll_interval_s=poll_interval_s, stream_max_s=stream_max_s)
    errors.install_error_handlers(app)

    def wants_page(request: Request) -> bool:
        """A browser asking for a page (not the API, nor a file): errors are the studio's HTML page."""
        return not request.url.path.startswith((API_PREFIX, "/static/", "/vendor/")) and request.method == "GET"

    def no_page(request: Request) -> Response:
        return pages.html_error(request, app.state.studio, 404, f"There is no page at {request.url.path}. "
                                "Runs are at /runs, experiments at /experiments.")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if wants_page(request) and exc.status_code == 404:
            return no_page(request)
        return await errors.http_error(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        if wants_page(request):  # an id too long, a bad character: no such page
            return no_page(request)
        return await errors.validation_error(request, exc)

    @app.exception_handler(RunlabError)
    async def _runlab_error(request: Request, exc: RunlabError) -> Response:
        if wants_page(request):
            return pages.html_error(request, app.state.studio, errors.status_for(exc), exc.message)
        return await errors.runlab_error(request, exc)

    for module in (workspace, experiments, runs, metrics, files, logs, events, catalog, data, mlflow):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(remote.router, prefix=API_PREFIX)  # runlab's client protocol (runlab.store.remote)

    swagger = _swagger_assets()
    if swagger is not None:
        app.mount("/api/docs-assets", StaticFiles(directory=swagger), name="swagger")

    @app.get(DOCS_URL, include_in_schema=False)
    def api_docs() -> HTMLResponse:
        if swagger is None:  # never a CDN: nothing the studio shows may leave the machine
            return HTMLResponse("<!doctype html><title>REST API</title><p>The API docs need the swagger-ui-py "
                                f"package (pip install swagger-ui-py); the OpenAPI document is at "
                                f'<a href="{OPENAPI_URL}">{OPENAPI_URL}</a>.</p>', status_code=503)
        # validatorUrl None: Swagger UI would otherwise send the document to an online validator
        return get_swagger_ui_html(openapi_url=OPENAPI_URL, title="runlab studio: REST API",
                                   swagger_favicon_url="/static/favicon.svg",
                                   swagger_js_url="/api/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/api/docs-assets/swagger-ui.css",
                                   swagger_ui_parameters={"validatorUrl": None})

    @app.get(API_PREFIX, include_in_schema=False)
    def api_root() -> JSONResponse:
        return JSONResponse({"name": "runlab studio", "docs": DOCS_URL, "openapi": OPENAPI_URL})

    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    app.include_router(pages.router)
    app.include_router(data_pages.router)
    # tokens, roles, sessions, the Host check, body limits (runlab.server.auth); auth None: runlab studio's
    install_auth(app, auth or studio_config())
    install_ops(app)  # /healthz, /readyz, /metrics, request ids and access logs (runlab.server.ops)
    return app
