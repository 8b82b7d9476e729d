"""Operating a server: health and readiness probes, Prometheus metrics, request ids and access logs.

:func:`install_ops` adds to an app:

- ``GET /healthz``: 200 ``{"status": "ok"}`` while the process serves; it never touches the store;
- ``GET /readyz``: 200 when the store answers a cheap query, 503 ``{"status": "unavailable",
  "reason": ...}`` otherwise (a load balancer sends no traffic to a server whose database is down;
  it comes back by itself when the database does);
- ``GET /metrics``: the Prometheus text format, from a registry of the app's own (several apps in
  one process do not share counters): requests by method, route template and status, request
  durations by route, requests in flight, and runs by status read from the store at scrape time;
- a pure ASGI middleware (streaming responses pass through untouched) that gives every request an
  id (the client's ``X-Request-Id`` when it is sane, else a new one), returns it in the response's
  ``X-Request-Id`` header, keeps it in ``request.state.request_id`` (error bodies quote it), and
  logs one JSON line per request to the ``runlab.server.access`` logger. The line holds the path
  without its query string (which may carry a token) and no header values.

Routes are labelled by their template (``/api/runs/{run_id}``), never the raw path, so that the
number of series stays bounded whatever clients ask for.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any, Awaitable, Callable, Iterable, MutableMapping

import anyio
import anyio.to_thread
import fastapi.routing
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.routing import Mount, compile_path

from runlab.core.status import RunStatus
from runlab.server.state import get_state

__all__ = ["ACCESS_LOGGER", "OPS_PATHS", "REQUEST_ID_HEADER", "OpsMiddleware", "RouteTemplates", "install_ops", "request_id_of"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ACCESS_LOGGER = "runlab.server.access"
REQUEST_ID_HEADER = "X-Request-Id"
OPS_PATHS = ("/healthz", "/readyz", "/metrics")
READY_TIMEOUT_S = 5.0  # a store that does not answer in this long is not ready
UNMATCHED_ROUTE = "<unmatched>"  # the label of requests no route matched (404s of made-up paths)

_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

access_log = logging.getLogger(ACCESS_LOGGER)
log = logging.getLogger("runlab.server")


def request_id_of(request: Request) -> str | None:
    """The id :class:`OpsMiddleware` gave ``request`` (None in an app without it)."""
    state = request.scope.get("state")
    value = state.get("request_id") if isinstance(state, dict) else None
    return value if isinstance(value, str) else None


def _sane_request_id(value: bytes | None) -> str:
    if value is not None:
        try:
            text = value.decode("ascii")
        except UnicodeDecodeError:
            text = ""
        if _SANE_ID.fullmatch(text):
            return text
    return uuid.uuid4().hex


class RouteTemplates:
    """The route template (``/api/runs/{run_id}``) that a request's path matches in ``app``, in the
    order the router tries routes; rebuilt when routes are added."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._table: list[tuple[re.Pattern[str], frozenset[str] | None, str]] = []
        self._built_for = -1

    def _build(self) -> None:
        iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)  # FastAPI's included routers
        routes = self.app.router.routes
        entries: list[Any] = list(iter_contexts(routes)) if iter_contexts is not None else list(routes)
        table = []
        for entry in entries:
            route = getattr(entry, "original_route", entry)
            path = getattr(entry, "path", None)
            if not isinstance(path, str):
                continue
            if isinstance(route, Mount):  # static files: the mount, not each file
                template = path.rstrip("/") + "/{path}"
                regex = compile_path(path.rstrip("/") + "/{path:path}")[0]
            else:
                template = path
                regex = compile_path(path)[0]
            methods = getattr(entry, "methods", None)
            table.append((regex, frozenset(methods) if methods else None, template))
        self._table = table
        self._built_for = len(routes)

    def __call__(self, method: str, path: str, root_path: str = "") -> str:
        """The template for a request, from its scope's ``method``, ``path`` and ``root_path`` as
        they arrived (a mount changes the scope's ``root_path`` on the way in)."""
        if self._built_for != len(self.app.router.routes):
            self._build()
        if root_path and path.startswith(root_path):
            path = path[len(root_path):] or "/"
        fallback = None
        for regex, methods, template in self._table:
            if regex.match(path):
                if methods is None or method in methods or (method == "HEAD" and "GET" in methods):
                    return template
                fallback = fallback or template
        return fallback or UNMATCHED_ROUTE


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("runlab_http_requests", "HTTP requests served, by method, route template and status",
                                ["method", "route", "status"], registry=registry)
        self.duration = Histogram("runlab_http_request_duration_seconds",
                                  "Time from a request's arrival to the end of its response body, by route template",
                                  ["route"], buckets=_DURATION_BUCKETS, registry=registry)
        self.in_flight = Gauge("runlab_http_requests_in_flight", "HTTP requests being served now "
                               "(live streams included)", registry=registry)


class _StoreCollector(Collector):
    """Gauges read from the store when Prometheus scrapes: runs by status, and whether the store answered."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Iterable[GaugeMetricFamily]:
        up = GaugeMetricFamily("runlab_store_up", "1 when the store answered the last scrape's queries, else 0")
        try:
            counts = self.app.state.studio.store.count_runs_by_status()
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because the database is down
            log.warning("metrics: the store did not answer: %s", exc)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        runs = GaugeMetricFamily("runlab_runs", "Runs in the workspace, by status", labels=["status"])
        for status in RunStatus:
            runs.add_metric([status.value], float(counts.get(status, 0)))
        yield runs


class OpsMiddleware:
    """Request ids, request metrics and one JSON access-log line per HTTP request (pure ASGI)."""

    def __init__(self, app: ASGIApp, metrics: _Metrics, routes: RouteTemplates) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope.get("headers", ()) if k == b"x-request-id"), None)
        request_id = _sane_request_id(header)
        state = scope.get("state")
        if not isinstance(state, dict):
            state = {}
            scope["state"] = state
        state["request_id"] = request_id
        method = str(scope.get("method", ""))
        path = str(scope.get("path", ""))
        root_path = str(scope.get("root_path", ""))
        started_wall = time.time()
        started = time.perf_counter()
        status = 500
        sent = 0
        raw_id = request_id.encode("ascii")

        async def send_with_id(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", raw_id))
                message["headers"] = headers
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:  # an exception still counts, as the 500 the server answers with
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - started
            route = self.routes(method, path, root_path)
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.duration.labels(route).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(json.dumps({
                    "ts": round(started_wall, 6), "request_id": request_id, "method": method, "route": route,
                    "path": path, "status": status, "duration_ms": round(elapsed * 1000, 3),
                    "bytes": sent,
                }, separators=(",", ":")))


def install_ops(app: FastAPI) -> None:
    """Add ``/healthz``, ``/readyz``, ``/metrics`` and the request-id and access-log middleware to ``app``.

    The three paths stay out of the OpenAPI document: they are for probes and scrapers, not clients.
    """
    registry = CollectorRegistry(auto_describe=True)
    metrics = _Metrics(registry)
    registry.register(_StoreCollector(app))
    app.state.metrics_registry = registry
    app.add_middleware(OpsMiddleware, metrics=metrics, routes=RouteTemplates(app))

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        state = get_state(request)
        reason = f"the store did not answer within {READY_TIMEOUT_S:g} s"
        ready = False
        with anyio.move_on_after(READY_TIMEOUT_S):
            try:
                await anyio.to_thread.run_sync(lambda: state.store.get_meta("runlab.readyz"), abandon_on_cancel=True)
                ready = True
            except Exception as exc:  # noqa: BLE001 - any failure of the store means not ready
                reason = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        if ready:
            return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503,
                            headers={"Cache-Control": "no-store", "Retry-After": "1"})

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST,
                        headers={"Cache-Control": "no-store"})
