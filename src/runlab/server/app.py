"""The app factory: one ASGI app serving the REST API (``/api``) and the pages of a workspace."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from runlab.server import errors, pages
from runlab.server.api import catalog, events, experiments, files, logs, metrics, runs, workspace
from runlab.server.state import DEFAULT_POLL_INTERVAL_S, DEFAULT_STREAM_MAX_S, StudioState
from runlab.store.folder import WorkspaceFolder

API_PREFIX = "/api"
OPENAPI_URL = "/api/openapi.json"
DOCS_URL = "/api/docs"

DESCRIPTION = """\
The REST API of a runlab workspace: experiments, runs (filter, sort by any column or a metric's
last value, search, paginate), metric series (downsampled server-side, keeping minima and maxima;
several runs at once for comparison), run files, logs (tail, and live with server-sent events),
and the workspace's environments, compute targets, datastores, datasets and models.

Errors are JSON: `{"error": {"message": "...", "type": "..."}}`. Times are unix seconds.
"""


def _swagger_assets() -> Path | None:
    """Swagger UI's files, when the ``swagger-ui-bundle`` package is installed (docs work offline)."""
    try:
        bundle = import_module("swagger_ui_bundle")
    except ImportError:
        return None
    path = Path(getattr(bundle, "swagger_ui_path", ""))
    return path if (path / "swagger-ui-bundle.js").is_file() else None


def create_app(
    folder: WorkspaceFolder,
    *,
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
    stream_max_s: float = DEFAULT_STREAM_MAX_S,
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

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        path = request.url.path
        wants_page = not path.startswith((API_PREFIX, "/static/", "/vendor/")) and request.method == "GET"
        if wants_page and exc.status_code == 404:
            return pages.html_error(request, app.state.studio, 404,
                                    f"There is no page at {path}. Runs are at /runs, experiments at /experiments.")
        return await errors.http_error(request, exc)

    for module in (workspace, experiments, runs, metrics, files, logs, events, catalog):
        app.include_router(module.router, prefix=API_PREFIX)

    swagger = _swagger_assets()
    if swagger is not None:
        app.mount("/api/docs-assets", StaticFiles(directory=swagger), name="swagger")

    @app.get(DOCS_URL, include_in_schema=False)
    def api_docs() -> HTMLResponse:
        if swagger is not None:
            return get_swagger_ui_html(openapi_url=OPENAPI_URL, title="runlab studio: REST API",
                                       swagger_favicon_url="/static/favicon.svg",
                                       swagger_js_url="/api/docs-assets/swagger-ui-bundle.js",
                                       swagger_css_url="/api/docs-assets/swagger-ui.css")
        return get_swagger_ui_html(openapi_url=OPENAPI_URL, title="runlab studio: REST API",
                                   swagger_favicon_url="/static/favicon.svg")

    @app.get(API_PREFIX, include_in_schema=False)
    def api_root() -> JSONResponse:
        return JSONResponse({"name": "runlab studio", "docs": DOCS_URL, "openapi": OPENAPI_URL})

    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    app.include_router(pages.router)
    return app
