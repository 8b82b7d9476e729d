"""The studio's pages: HTML shells (``templates/``) filled by small scripts (``static/``) that call
the REST API, and plotly.js served from the installed ``plotly`` package (never copied here)."""

from __future__ import annotations

import html
import json
import re
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from runlab.core.errors import RunlabError, RunNotFoundError
from runlab.server.state import StudioState, get_state

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

# plotly.js's cartesian bundle (scatter, bar, heatmap... no parcoords), where the build fetched it from npm
# (hatch_build.py, which pins its version: the file is named plotly-cartesian-<version>.min.js)
VENDOR = HERE / "vendor"
Charts = Literal["cartesian", "all"] | None


router = APIRouter(include_in_schema=False)
State = Annotated[StudioState, Depends(get_state)]

NAV: tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...] = (
    ("Workspace", (("experiments", "/experiments", "Experiments"), ("runs", "/runs", "Runs"),
                   ("compare", "/compare", "Compare"))),
    ("Assets", (("environments", "/environments", "Environments"), ("compute", "/compute", "Compute"),
                ("datastores", "/datastores", "Datastores"), ("datasets", "/datasets", "Datasets"),
                ("models", "/models", "Models"))),
)

# The asset pages: what each lists, its columns, and what to say while it is empty.
ASSETS: dict[str, dict[str, Any]] = {
    "environments": {
        "title": "Environments", "api": "/api/environments",
        "subtitle": "Python environments runs are built in, with their versions and build logs.",
        "columns": [["name", "Name"], ["version", "Version"], ["python", "Python"], ["build_status", "Build"],
                    ["build_log", "Build log"]],
        "empty": {"title": "No environments yet",
                  "text": "Register one, and submitted runs that use it are built in it:",
                  "code": "env = Environment.from_conda_specification('my-env', 'environment.yml')\n"
                          "env.register(workspace=ws)"},
    },
    "compute": {
        "title": "Compute targets", "api": "/api/compute",
        "subtitle": "Where submitted runs run: busy or idle, and their queues.",
        "columns": [["name", "Name"], ["type", "Type"], ["state", "State"], ["running", "Running"],
                    ["queued", "Queued"], ["max_nodes", "Max nodes"]],
        "empty": {"title": "No compute targets yet",
                  "text": "Runs go to the built-in 'local' target meanwhile. Create one with:",
                  "code": "ComputeTarget.create(ws, 'cpu-cluster',\n"
                          "    AmlCompute.provisioning_configuration(max_nodes=4))"},
    },
    # datastores and datasets have pages of their own: runlab.server.data_pages
    "models": {
        "title": "Models", "api": "/api/models",
        "subtitle": "Trained models registered from runs, by version.",
        "columns": [["name", "Name"], ["version", "Version"], ["run_id", "Run"], ["created_at", "Created"],
                    ["tags", "Tags"], ["description", "Description"], ["files", "Files"]],
        "empty": {"title": "No models yet",
                  "text": "Register one from a run's outputs:",
                  "code": "run.register_model(model_name='my-model', model_path='outputs/model.pkl')"},
    },
}

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@lru_cache(maxsize=None)
def _template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def render(name: str, values: Mapping[str, Any]) -> str:
    """Fill ``{{key}}`` placeholders of a template; values are HTML-escaped unless the key ends in
    ``_html`` or ``_json`` (JSON is made safe to embed in a script element)."""

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        value = values.get(key, "")
        if key.endswith("_html"):
            return str(value)
        if key.endswith("_json"):
            return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        return html.escape(str(value))

    return _PLACEHOLDER.sub(fill, _template(name))


@lru_cache(maxsize=1)
def _version() -> str:
    try:
        return metadata.version("runlab")
    except metadata.PackageNotFoundError:
        return "dev"


@lru_cache(maxsize=1)
def _plotly_version() -> str:
    try:
        return metadata.version("plotly")
    except metadata.PackageNotFoundError:
        return "0"


def _nav(active: str) -> str:
    parts = []
    for section, items in NAV:
        parts.append(f'<div class="nav-section">{html.escape(section)}</div>')
        for key, href, label in items:
            cls = ' class="active"' if key == active else ""
            parts.append(f'<a href="{href}"{cls} data-nav="{key}">{html.escape(label)}</a>')
    return "\n".join(parts)


def page(state: StudioState, *, page: str, title: str, content: str, data: Mapping[str, Any] | None = None,
         nav: str | None = None, charts: Charts = None, scripts: tuple[str, ...] = (),
         status_code: int = 200) -> HTMLResponse:
    """A whole page: the base layout around ``content``, with ``data`` for the page's script.

    ``charts``: which plotly.js the page's charts need, "cartesian" (scatter, bar, heatmap: the cartesian
    bundle where the build fetched it, else the full one) or "all" (parcoords too: the full bundle).
    ``scripts``: more of ``static/`` (names without ``.js``) for what is not drawn first: deferred, they
    are fetched after the page's own script and run once the document is parsed, so the page's script
    waits for none of them.
    """
    body = render("base.html", {
        "title": title, "page": page, "version": _version(), "workspace": state.folder.name,
        "workspace_path": str(state.folder.path), "nav_html": _nav(nav or page), "content_html": content,
        "data_json": dict(data or {}),
        "scripts_html": "".join(f'<script defer src="/static/{html.escape(name)}.js?v={html.escape(_version())}"></script>\n'
                                for name in scripts),
        # plotly.js (1.5 MB cartesian, 4.8 MB full: up to 1 s to parse) is fetched alongside (asked for after
        # the page's scripts, which the server answers first) and run only when a chart is drawn
        # (Studio.plotly() in studio.js, after a paint): the page's text renders first
        "vendor_html": (f'<link rel="preload" id="plotly-src" href="{plotly_href(charts)}" as="script">\n')
        if charts else "",
    })
    return HTMLResponse(body, status_code=status_code, headers={"Cache-Control": "no-store"})


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/experiments", status_code=307)


@router.get("/experiments", response_class=HTMLResponse)
def experiments_page(state: State) -> HTMLResponse:
    return page(state, page="experiments", title="Experiments", content=render("experiments.html", {}))


@router.get("/experiments/{name}")
def experiment_page(name: Annotated[str, PathParam(max_length=255)]) -> RedirectResponse:
    from urllib.parse import quote

    return RedirectResponse(f"/runs?experiment={quote(name)}", status_code=307)


@router.get("/runs", response_class=HTMLResponse)
def runs_page(state: State, experiment: str | None = None) -> HTMLResponse:
    # the column list (what /api/runs-columns answers) rides in the page, so that the table's first
    # request starts as soon as the script runs instead of after another round trip
    # (a name too long to exist gets no list; the script asks the API, which says what is wrong)
    if experiment is not None and len(experiment) > 255:
        return page(state, page="runs", title="Runs", content=render("runs.html", {}))
    keys = state.queries.column_keys(experiment or None)
    columns = {"metrics": [{"name": n, "runs": c} for n, c in keys.metrics], "tags": list(keys.tags),
               "properties": list(keys.properties)}
    return page(state, page="runs", title="Runs", content=render("runs.html", {}), data={"columns": columns})


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(state: State, run_id: Annotated[str, PathParam(max_length=320)]) -> HTMLResponse:
    try:
        record = state.store.get_run(run_id)
    except RunNotFoundError as exc:
        return not_found(state, "Run not found", exc.message)
    title = record.display_name or record.run_id
    from runlab.server.api.metrics import list_run_metrics
    from runlab.server.api.runs import run_details_of

    # the run's record as GET /api/runs/ID answers it (non-finite numbers as null): the overview is drawn
    # from the page itself, without waiting for the scripts to run and ask
    details = json.loads(run_details_of(state, record).model_dump_json())
    # ...and its metrics as GET /api/runs/ID/metrics answers them: the charts' series requests go out as
    # the script starts, before plotly.js runs (its parse holds the page's thread for half a second, and
    # an answer the page waited for behind it would send them only after)
    metrics = [json.loads(m.model_dump_json()) for m in list_run_metrics(state, record.run_id)]
    return page(state, page="run", title=title, nav="runs", charts="cartesian", content=render("run.html", {}),
                scripts=("run_inputs", "evaluation", "run_actions"),
                data={"run_id": record.run_id, "experiment": record.experiment_name, "run": details, "metrics": metrics})


@router.get("/compare", response_class=HTMLResponse)
def compare_page(state: State) -> HTMLResponse:
    return page(state, page="compare", title="Compare runs", charts="all", content=render("compare.html", {}))


def _asset_page(kind: str) -> Any:
    spec = ASSETS[kind]

    def handler(state: State) -> HTMLResponse:
        content = render("assets.html", {"title": spec["title"], "subtitle": spec["subtitle"]})
        if kind == "compute":
            content += _ray_clusters_html(state)
        return page(state, page="assets", nav=kind, title=spec["title"], content=content, data={"kind": kind, **spec})

    handler.__name__ = f"{kind}_page"
    return handler


def _ray_clusters_html(state: StudioState) -> str:
    """The compute page's Ray clusters, rendered here (the assets table is drawn by the page's script):
    each Ray target's nodes, CPUs, GPUs and jobs as its cluster reports them, and a link to its dashboard."""
    from runlab.server.api.catalog import compute_targets

    rows = []
    for target in compute_targets(state):
        if target.cluster is None:
            continue
        info = target.cluster
        address = str(target.address or "")
        link = (f'<a href="{html.escape(address)}" target="_blank" rel="noopener noreferrer">{html.escape(address)}</a>'
                if address.startswith(("http://", "https://")) else html.escape(address))
        if info.get("error"):
            cells = f'<td colspan="4" class="error">{html.escape(str(info["error"]))}</td>'
        else:
            cells = "".join(f"<td>{html.escape(str(v))}</td>" for v in (
                info.get("nodes"), _count(info.get("cpus")), _count(info.get("gpus")),
                f"{info.get('runningJobs')} running, {info.get('pendingJobs')} pending ({info.get('runlabJobs')} runlab)"))
        rows.append(f"<tr><td>{html.escape(target.name)}</td><td>{link}</td>{cells}</tr>")
    if not rows:
        return ""
    return ('<section class="panel" id="ray-clusters"><h2>Ray clusters</h2><table class="table">'
            "<thead><tr><th>Target</th><th>Dashboard</th><th>Nodes</th><th>CPUs</th><th>GPUs</th><th>Jobs</th></tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table></section>")


def _count(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


for _kind in ASSETS:
    router.add_api_route(f"/{_kind}", _asset_page(_kind), methods=["GET"], response_class=HTMLResponse)


def not_found(state: StudioState, title: str, message: str) -> HTMLResponse:
    return page(state, page="not_found", title=title, nav="", status_code=404,
                content=render("not_found.html", {"title": title, "message": message}))


def plotly_js_path() -> Path:
    """plotly.min.js as the installed ``plotly`` package ships it (every trace type)."""
    from importlib.util import find_spec

    spec = find_spec("plotly")  # located, not imported: importing plotly takes a second
    if spec is None or spec.origin is None:
        raise RunlabError("the plotly package is not installed: the studio's charts need it (pip install plotly)")
    path = Path(spec.origin).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise RunlabError(f"plotly.min.js is missing from the plotly package at {path}: reinstall plotly")
    return path


def cartesian_bundle() -> Path | None:
    found = sorted(VENDOR.glob("plotly-cartesian-*.min.js"))
    return found[-1] if found else None


def plotly_href(charts: Charts) -> str:
    bundle = cartesian_bundle() if charts == "cartesian" else None
    if bundle is not None:
        return f"/vendor/{bundle.name}"  # its name holds its version: cached for a year like the full one
    return f"/vendor/plotly.min.js?v={_plotly_version()}"


_IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}


@router.get("/vendor/plotly.min.js")
def plotly_js() -> Response:
    """plotly.js from the installed plotly package. Pages link it with the package's version
    (``?v=``), so the browser keeps it a year and parses it from its code cache."""
    return _vendor_script(plotly_js_path())


@router.get("/vendor/plotly-cartesian-{version}.min.js")
def plotly_cartesian_js(version: str) -> Response:
    """plotly.js's cartesian bundle, where this install has it (else 404: pages then link the full one)."""
    path = cartesian_bundle()
    if path is None or path.name != f"plotly-cartesian-{version}.min.js":
        return Response(f"plotly-cartesian-{version}.min.js is not in this install (pages link the bundle it has: "
                        f"{path.name if path else 'plotly.min.js, its build could not fetch the cartesian one'})",
                        status_code=404, media_type="text/plain")
    return _vendor_script(path)


# V8's explicit compile hint (Chrome 136+; to other engines a comment): every function of the script is
# compiled on the thread that streams it in, not lazily on the page's main thread as plotly.js's first run
# and first draw call them. Measured on a cold run page (bench_studio's no-inspector loads): the main
# thread busy before the first chart 0.33-0.35 s without it, 0.24-0.27 s with it.
COMPILE_HINT = b"//# allFunctionsCalledOnLoad\n"


@lru_cache(maxsize=4)
def _hinted(path: Path, mtime_ns: int, size: int) -> bytes:
    return COMPILE_HINT + path.read_bytes()


def _vendor_script(path: Path) -> Response:
    """A vendored script as the browser gets it: the file as installed, after the compile hint."""
    st = path.stat()
    return Response(_hinted(path, st.st_mtime_ns, st.st_size), media_type="text/javascript; charset=utf-8",
                    headers=_IMMUTABLE)


def html_error(request: Request, state: StudioState, status_code: int, message: str) -> HTMLResponse:
    """An error page for a browser that asked for a page (not for the API)."""
    title = "Page not found" if status_code == 404 else f"Error {status_code}"
    return page(state, page="not_found", title=title, nav="", status_code=status_code,
                content=render("not_found.html", {"title": title, "message": message}))
