"""Studio benchmark: the REST API's server time on a big workspace, a page in Chromium, and MLflow
side by side where it has the same operation.

    . .venv/bin/activate
    python benchmarks/bench_studio.py              # 10,000 runs x 5 metrics, a 1,000,000-point series
    python benchmarks/bench_studio.py --quick      # 1,000 runs, a 100,000-point series
    python benchmarks/bench_studio.py --skip-mlflow --skip-browser

The workspace is generated straight into the SQLite tables (SQLAlchemy Core bulk inserts: a
fixture, not API usage): N runs of one experiment, each with 2 tags and 5 metrics (m0..m4, 10
points each), one run with a 1,000,000-point series, and 100 runs with a 10,000-point series for
comparison. MLflow's SQLite store gets the same runs (runs, tags, latest_metrics) and the same
series (metrics rows), written through its SQLAlchemy models, in MLflow's own venv
(``benchmarks/.venv-mlflow``, made by bench_tracking.py's helper on first use).

Server time is an in-process request to the ASGI app (Starlette's test client: no network), the
median of repetitions after a first, cold one. "Interactive" is the time from navigation to the
page's ``data-ready`` mark (charts drawn) in Debian's Chromium, over a real uvicorn server.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
RESULT_MARK = "@@RESULT@@ "
CHROMIUM = "/usr/bin/chromium"

TARGETS = {"first_page": 0.150, "sorted_page": 0.300, "series": 0.100, "compare": 1.0, "compare_page": 2.0,
           # issue 12: a cold load (empty cache, no inspector) of the run page and of compare
           "run_overview_cold": 0.300, "run_chart_cold": 1.0, "compare_drawn_cold": 1.5}


@dataclass(frozen=True)
class Sizes:
    runs: int = 10_000
    metrics_per_run: int = 5
    points_per_metric: int = 10
    big_series: int = 1_000_000
    compare_runs: int = 100
    compare_points: int = 10_000
    reps: int = 7
    page_reps: int = 3


FULL = Sizes()
QUICK = Sizes(runs=1_000, big_series=100_000, compare_runs=20, compare_points=2_000, reps=5, page_reps=2)


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def timed(fn: Callable[[], Any], reps: int) -> dict[str, Any]:
    """First (cold) call, then ``reps`` more: their median and minimum."""
    t0 = time.perf_counter()
    result = fn()
    cold = time.perf_counter() - t0
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times = times or [cold]  # one call only: the cold one is the figure
    return {"cold_s": cold, "median_s": _median(times), "min_s": min(times), "times_s": times,
            "result": result}


# -- the generated data, the same on both sides ------------------------------------------------------


def run_ids(sizes: Sizes) -> list[str]:
    return [f"bench_{i:06d}" for i in range(sizes.runs)]


BIG_RUN = "bench_000000"


def statuses(i: int) -> str:
    return "Failed" if i % 10 == 3 else ("Canceled" if i % 20 == 7 else "Completed")


def metric_values(i: int, m: int, n: int) -> list[float]:
    base = ((i * 7919 + m * 104729) % 1000) / 1000.0
    return [base + 1.0 / (s + 1 + m) for s in range(n)]


def curve(i: int, n: int) -> list[float]:
    """A noisy decaying training curve (pure Python: MLflow's venv has no numpy)."""
    import math
    import random

    rng = random.Random(i)
    scale = n / 5
    return [2.0 * math.exp(-s / scale) + 0.05 * rng.gauss(0.0, 1.0) + 0.001 * i for s in range(n)]


# -- runlab's side -------------------------------------------------------------------------------------


def generate_runlab(path: Path, sizes: Sizes) -> dict[str, Any]:
    """The workspace, written with bulk inserts into the tables of schema.py."""
    import numpy as np
    import sqlalchemy as sa

    from runlab.store.folder import WorkspaceFolder
    from runlab.store.sql import schema as t

    t0 = time.perf_counter()
    folder = WorkspaceFolder.create(path, "bench-studio")
    store = folder.store
    exp = store.get_or_create_experiment("bench")
    now = time.time() - sizes.runs * 10
    ids = run_ids(sizes)
    runs, tags, metrics, chunks = [], [], [], []
    metric_id = 0
    for i, run_id in enumerate(ids):
        pk = i + 1
        created = now + i * 10
        runs.append({"id": pk, "run_id": run_id, "experiment_id": exp.experiment_id, "parent_id": None,
                     "display_name": f"trial {i}", "run_type": "submitted", "status": statuses(i),
                     "target": "cpu-cluster" if i % 3 else "local", "created_at": created, "started_at": created + 2,
                     "ended_at": created + 2 + (i % 97) * 3, "heartbeat_at": None, "owner": None, "error": None,
                     "definition": None, "description": ""})
        tags.append({"run_pk": pk, "key": "lr", "value": str([0.1, 0.01, 0.001][i % 3])})
        tags.append({"run_pk": pk, "key": "seed", "value": str(i % 5)})
        series = {f"m{m}": np.asarray(metric_values(i, m, sizes.points_per_metric)) for m in range(sizes.metrics_per_run)}
        if i < sizes.compare_runs:
            series["curve"] = np.asarray(curve(i, sizes.compare_points))
        if run_id == BIG_RUN:
            series["loss"] = np.asarray(curve(i, sizes.big_series))
        for name, values in series.items():
            metric_id += 1
            n = len(values)
            metrics.append({"id": metric_id, "run_pk": pk, "name": name, "kind": "scalar", "description": "",
                            "count": n, "chunks": 0, "last_json": json.dumps(float(values[-1])),
                            "last_number": float(values[-1]), "last_step": n - 1, "last_time": created + n,
                            "min_value": float(values.min()), "max_value": float(values.max())})
            per_chunk = 100_000  # a training script's flusher writes batches of this order
            for seq, start in enumerate(range(0, n, per_chunk)):
                part = values[start:start + per_chunk]
                chunks.append({"metric_id": metric_id, "seq": seq, "count": len(part), "encoding": "f8",
                               "steps": np.arange(start, start + len(part), dtype=np.int64).tobytes(),
                               "times": (created + np.arange(start, start + len(part)) * 1e-3).tobytes(),
                               "values": part.astype(np.float64).tobytes()})
                metrics[-1]["chunks"] = seq + 1
    with store.engine.begin() as conn:
        conn.execute(t.runs.insert(), runs)
        conn.execute(t.run_tags.insert(), tags)
        conn.execute(t.metrics.insert(), metrics)
        for start in range(0, len(chunks), 5000):
            conn.execute(t.metric_chunks.insert(), chunks[start:start + 5000])
        conn.exec_driver_sql("ANALYZE")
    total = conn_count = None
    with store.engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(t.runs)).scalar()
        conn_count = conn.execute(sa.select(sa.func.sum(t.metrics.c["count"]))).scalar()
    return {"folder": folder, "seconds": time.perf_counter() - t0, "runs": total, "points": conn_count}


def measure_runlab_api(folder: Any, sizes: Sizes) -> dict[str, Any]:
    import warnings

    from runlab.server.app import create_app

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient

    app = create_app(folder)
    ids = run_ids(sizes)[:sizes.compare_runs]
    points = max(200, min(2000, 60000 // len(ids)))  # what the compare page asks for
    columns = {"metric": ["m0", "m1", "m2"]}

    out: dict[str, Any] = {}
    with TestClient(app) as client:
        def get(url: str, **params: Any) -> Callable[[], Any]:
            def call() -> Any:
                response = client.get(url, params=params)
                assert response.status_code == 200, response.text[:500]
                return response.json()
            return call

        out["first_page"] = timed(get("/api/runs", experiment="bench", limit=50, **columns), sizes.reps)
        assert out["first_page"]["result"]["total"] == sizes.runs
        out["sorted_page"] = timed(get("/api/runs", experiment="bench", limit=50, sort="metric:m1", order="desc",
                                       **columns), sizes.reps)
        out["sorted_page_asc"] = timed(get("/api/runs", experiment="bench", limit=50, sort="metric:m1", order="asc",
                                           **columns), sizes.reps)
        out["duration_sort"] = timed(get("/api/runs", experiment="bench", limit=50, sort="duration", **columns), sizes.reps)
        out["search"] = timed(get("/api/runs", experiment="bench", limit=50, search="trial 99", **columns), sizes.reps)
        out["last_page"] = timed(get("/api/runs", experiment="bench", limit=50, offset=sizes.runs - 50, sort="metric:m3",
                                     **columns), sizes.reps)
        out["experiments"] = timed(get("/api/experiments"), sizes.reps)
        out["series"] = timed(get(f"/api/runs/{BIG_RUN}/metrics/loss", points=2000), sizes.reps)
        series = out["series"]["result"]
        assert series["count"] == sizes.big_series and len(series["values"]) <= 2000
        out["series_full_read"] = timed(lambda: folder.store.get_metric_series(BIG_RUN, "loss"), sizes.reps)
        out["compare_series"] = timed(get("/api/series", name="curve", run=ids, points=points), sizes.reps)
        assert len(out["compare_series"]["result"]["series"]) == len(ids)
        out["compare_table"] = timed(get("/api/compare", run=ids), sizes.reps)
    for value in out.values():
        value.pop("result", None)
    out["compare_points_per_run"] = points
    return out


class _Server:
    def __init__(self, app: Any) -> None:
        import socket

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="off", ws="none", access_log=False,
                                                    timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.app.state.studio.stopping.set()
        self.server.should_exit = True
        self.thread.join(15)


def measure_pages(folder: Any, sizes: Sizes) -> dict[str, Any]:
    """Navigation to data-ready in Chromium: the compare page (all compare runs) and the runs table."""
    from playwright.sync_api import sync_playwright

    from runlab.server.app import create_app

    server = _Server(create_app(folder))
    ids = run_ids(sizes)[:sizes.compare_runs]
    out: dict[str, Any] = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            for name, url in (("compare_page", f"{server.url}/compare?runs={','.join(ids)}&metric=curve"),
                              ("runs_page", f"{server.url}/runs?experiment=bench&sort=metric%3Am1&metric=m0&metric=m1&metric=m2")):
                times = []
                for _ in range(sizes.page_reps + 1):  # the first loads plotly.js into the cache
                    page.goto("about:blank")
                    t0 = time.perf_counter()
                    page.goto(url)
                    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
                    times.append(time.perf_counter() - t0)
                    if name == "compare_page":
                        assert page.get_attribute("#compare-chart", "data-traces") == str(len(ids))
                out[name] = {"cold_s": times[0], "median_s": _median(times[1:]), "min_s": min(times[1:]), "times_s": times}
            out["run_page"] = measure_run_page(browser, f"{server.url}/runs/{BIG_RUN}#metrics", sizes)
            browser.close()
        out["run_page_uninspected"] = measure_run_page_uninspected(f"{server.url}/runs/{BIG_RUN}#metrics", sizes)
        out["compare_page_uninspected"] = measure_compare_page_uninspected(
            f"{server.url}/compare?runs={','.join(ids)}&metric=curve", sizes)
    finally:
        server.stop()
    return out


def measure_run_page(browser: Any, url: str, sizes: Sizes) -> dict[str, Any]:
    """The run page of the big run on its Metrics tab: navigation to the overview filled and to the
    first chart drawn, cold (each in a new browser context: empty cache; the median
    of ``2 * page_reps + 1``: one cold load varies by half on this machine) then warm (the last context
    again, ``page_reps`` times). Printed only."""
    # the page's own clock: its user-timing marks (run.js: runlab:overview once the overview is filled,
    # runlab:first-chart once a chart is drawn), from navigation start. (A MutationObserver started at
    # DOMContentLoaded, used before, saw the overview only at the first change after it: the page fills
    # the overview before DOMContentLoaded, so it measured that event instead.)
    marks = """() => Object.fromEntries(['runlab:overview', 'runlab:first-chart'].map((n) =>
        [n, performance.getEntriesByName(n)[0]?.startTime ?? null]))"""
    cold: dict[str, list[float]] = {"overview": [], "chart": [], "wall": []}
    warm: dict[str, list[float]] = {"overview": [], "chart": [], "wall": []}
    points = None

    def load(page: Any, into: dict[str, list[float]]) -> None:
        page.goto("about:blank")
        t0 = time.perf_counter()
        page.goto(url, wait_until="commit")
        page.wait_for_selector(".chart-card[data-metric='loss'][data-points]", state="attached", timeout=60_000)
        into["wall"].append(time.perf_counter() - t0)
        page.wait_for_function("performance.getEntriesByName('runlab:first-chart').length > 0", timeout=60_000)
        t = page.evaluate(marks)
        into["overview"].append(t["runlab:overview"] / 1e3)
        into["chart"].append(t["runlab:first-chart"] / 1e3)

    cold_loads = 2 * sizes.page_reps + 1
    for i in range(cold_loads):
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        try:
            page = context.new_page()
            load(page, cold)
            if i == cold_loads - 1:  # the same context again: warm
                for _ in range(sizes.page_reps):
                    load(page, warm)
                points = page.get_attribute(".chart-card[data-metric='loss']", "data-count")
        finally:
            context.close()
    result = {"overview_cold_s": _median(cold["overview"]), "overview_warm_s": _median(warm["overview"]),
              "chart_cold_s": _median(cold["chart"]), "chart_warm_s": _median(warm["chart"]), "points": int(points or 0),
              "cold": cold, "warm": warm}
    span = lambda xs: f"{fmt(min(xs))}-{fmt(max(xs))}"  # noqa: E731
    print(f"run page of a {result['points']:,}-point run in Chromium (page clock, median of {cold_loads} cold loads "
          f"and {sizes.page_reps} warm): overview shown {fmt(result['overview_cold_s'])} cold ({span(cold['overview'])}), "
          f"{fmt(result['overview_warm_s'])} warm; first chart drawn {fmt(result['chart_cold_s'])} cold "
          f"({span(cold['chart'])}), {fmt(result['chart_warm_s'])} warm (Playwright wall to the chart "
          f"{fmt(_median(cold['wall']))} cold, {fmt(_median(warm['wall']))} warm)", flush=True)
    return result


def uninspected_marks(url: str, names: list[str], loads: int) -> dict[str, list[float]]:
    """A page loaded cold as a user's browser loads it: Chromium with no inspector attached (Playwright's
    attaches one, and with it V8 re-parses plotly.js's bundle for source positions while it runs: ~0.2 s
    more, seen in Chromium's traces), a new profile each time (``loads`` times). Chromium starts on a blank
    page that goes to the URL 1.5 s later, so that the browser's own start is over (as in a browser a user
    has open). Per load: the page's user-timing marks ``names`` (seconds from navigation start, read from
    Chromium's startup trace, ``--trace-startup``), and under "busy" how long the page's main thread ran
    tasks before the last of them."""
    import signal
    from urllib.parse import quote

    start = "data:text/html," + quote(f"<script>setTimeout(() => location.replace({json.dumps(url)}), 1500)</script>")
    marks: dict[str, list[float]] = {name: [] for name in [*names, "busy"]}
    for _ in range(loads):
        with tempfile.TemporaryDirectory(prefix="runlab-bench-chromium-", ignore_cleanup_errors=True) as profile:
            trace = Path(profile) / "trace.json"
            proc = subprocess.Popen(
                [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}/user", "--window-size=1440,900", "--trace-startup=blink.user_timing,toplevel",
                 "--trace-startup-format=json", f"--trace-startup-file={trace}", "--trace-startup-duration=8", start],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            events: list[dict[str, Any]] = []
            try:
                deadline = time.monotonic() + 40
                while time.monotonic() < deadline:  # written once the trace's 8 s are over
                    time.sleep(0.5)
                    try:
                        data = json.loads(trace.read_text())
                    except (OSError, ValueError):
                        continue
                    events = data["traceEvents"] if isinstance(data, dict) else data
                    break
            finally:  # Chromium and its helper processes: its own session (process group)
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        found = {e["name"]: e for e in events if e.get("name", "").startswith("runlab:")}
        lacking = [name for name in names if name not in found]
        if lacking:
            raise RuntimeError(f"Chromium's startup trace lacks the page's marks {', '.join(lacking)}: the page did not "
                               "finish in the trace's 8 s, or this Chromium does not write --trace-startup")
        for name in names:  # a mark's startTime is the page's performance.now(): from its navigation's start
            marks[name].append(found[name]["args"]["data"]["startTime"] / 1e3)
        marks["busy"].append(_main_thread_busy_s(events, max((found[n] for n in names), key=lambda e: e["ts"])))
    return marks


def _span(xs: list[float]) -> str:
    return f"{fmt(min(xs))}-{fmt(max(xs))}"


def measure_run_page_uninspected(url: str, sizes: Sizes) -> dict[str, Any]:
    """The run page cold, no inspector (``uninspected_marks``): run.js's marks runlab:overview (the overview
    filled) and runlab:first-chart (a chart drawn). Printed only."""
    marks = uninspected_marks(url, ["runlab:overview", "runlab:first-chart"], 2 * sizes.page_reps + 1)
    overview, chart, busy = marks["runlab:overview"], marks["runlab:first-chart"], marks["busy"]
    result = {"overview_cold_s": _median(overview), "chart_cold_s": _median(chart),
              "busy_to_chart_s": _median(busy), "cold": {"overview": overview, "chart": chart, "busy": busy}}
    print(f"run page, no inspector attached (Chromium's startup trace, user-timing marks, median of "
          f"{len(chart)} cold loads): overview shown {fmt(result['overview_cold_s'])} ({_span(overview)}), "
          f"first chart drawn {fmt(result['chart_cold_s'])} ({_span(chart)}), the page's main thread busy "
          f"{fmt(result['busy_to_chart_s'])} of it ({_span(busy)}; the rest it waited: for the server, a frame)", flush=True)
    return result


def measure_compare_page_uninspected(url: str, sizes: Sizes) -> dict[str, Any]:
    """The compare page cold, no inspector (``uninspected_marks``): compare.js's mark runlab:compare-drawn
    (its first chart drawn, every run's curve on it). Printed only."""
    marks = uninspected_marks(url, ["runlab:compare-drawn"], 2 * sizes.page_reps + 1)
    drawn, busy = marks["runlab:compare-drawn"], marks["busy"]
    result = {"drawn_cold_s": _median(drawn), "busy_s": _median(busy), "cold": {"drawn": drawn, "busy": busy}}
    print(f"compare page of {sizes.compare_runs} runs, no inspector attached (median of {len(drawn)} cold loads): "
          f"chart drawn {fmt(result['drawn_cold_s'])} ({_span(drawn)}), the page's main thread busy "
          f"{fmt(result['busy_s'])} of it ({_span(busy)})", flush=True)
    return result


def _main_thread_busy_s(events: list[dict[str, Any]], mark: dict[str, Any]) -> float:
    """Seconds the page's main thread (the thread that wrote ``mark``) ran tasks between the page's
    navigation start and ``mark``: the union of its top-level tasks (trace category ``toplevel``)."""
    end = mark["ts"]
    begin = end - mark["args"]["data"]["startTime"] * 1e3  # trace clock, microseconds
    spans = sorted((max(e["ts"], begin), min(e["ts"] + e["dur"], end)) for e in events
                   if e.get("ph") == "X" and e.get("pid") == mark["pid"] and e.get("tid") == mark["tid"]
                   and e.get("name") in ("ThreadControllerImpl::RunTask", "RunTask") and "dur" in e
                   and e["ts"] < end and e["ts"] + e["dur"] > begin)
    busy, reach = 0.0, begin
    for lo, hi in spans:
        if hi > reach:
            busy += hi - max(lo, reach)
            reach = hi
    return busy / 1e6


# -- MLflow's side (runs in MLflow's venv: imports nothing from runlab) ----------------------------------


def mlflow_side(scratch: str, sizes_json: str) -> None:
    """Generate the same workspace in an MLflow SQLite store, then time MLflow's equivalents."""
    sizes = Sizes(**json.loads(sizes_json))
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    from mlflow import MlflowClient
    from mlflow.store.tracking.dbmodels import models
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    uri = "sqlite:///" + str(Path(scratch) / "mlflow.db")
    t0 = time.perf_counter()
    store = SqlAlchemyStore(uri, str(Path(scratch) / "artifacts"))
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment("bench")
    ids = run_ids(sizes)
    uuids = [f"{i:032x}" for i in range(len(ids))]
    now_ms = int((time.time() - sizes.runs * 10) * 1000)
    runs, tags, params, latest, points = [], [], [], [], []
    for i, (run_id, uuid) in enumerate(zip(ids, uuids)):
        start = now_ms + i * 10_000
        runs.append({"run_uuid": uuid, "name": f"trial {i}", "source_type": "LOCAL", "source_name": "", "entry_point_name": "",
                     "user_id": "bench", "status": {"Completed": "FINISHED", "Failed": "FAILED", "Canceled": "KILLED"}[statuses(i)],
                     "start_time": start, "end_time": start + (i % 97) * 3000, "deleted_time": None, "source_version": "",
                     "lifecycle_stage": "active", "artifact_uri": "", "experiment_id": int(exp_id)})
        tags.append({"key": "mlflow.runName", "value": f"trial {i}", "run_uuid": uuid})
        params.append({"key": "lr", "value": str([0.1, 0.01, 0.001][i % 3]), "run_uuid": uuid})
        params.append({"key": "seed", "value": str(i % 5), "run_uuid": uuid})
        for m in range(sizes.metrics_per_run):
            values = metric_values(i, m, sizes.points_per_metric)
            latest.append({"key": f"m{m}", "value": values[-1], "timestamp": start, "step": len(values) - 1,
                           "is_nan": False, "run_uuid": uuid})
    with store.ManagedSessionMaker() as session:
        session.bulk_insert_mappings(models.SqlRun, runs)
        session.bulk_insert_mappings(models.SqlTag, tags)
        session.bulk_insert_mappings(models.SqlParam, params)
        session.bulk_insert_mappings(models.SqlLatestMetric, latest)

    def insert_series(uuid: str, key: str, values: list[float]) -> None:
        rows = [{"key": key, "value": v, "timestamp": now_ms + s, "step": s, "is_nan": False, "run_uuid": uuid}
                for s, v in enumerate(values)]
        with store.ManagedSessionMaker() as session:
            for start in range(0, len(rows), 100_000):
                session.bulk_insert_mappings(models.SqlMetric, rows[start:start + 100_000])
            session.bulk_insert_mappings(models.SqlLatestMetric, [{**rows[-1]}])

    insert_series(uuids[0], "loss", curve(0, sizes.big_series))
    for i in range(sizes.compare_runs):
        insert_series(uuids[i], "curve", curve(i, sizes.compare_points))
    generate_s = time.perf_counter() - t0

    out: dict[str, Any] = {"mlflow_version": mlflow.__version__, "generate_s": generate_s}
    out["first_page"] = timed(lambda: client.search_runs([exp_id], max_results=50), sizes.reps)
    out["sorted_page"] = timed(lambda: client.search_runs([exp_id], max_results=50, order_by=["metrics.m1 DESC"]),
                               sizes.reps)
    out["search_1000_sorted"] = timed(lambda: client.search_runs([exp_id], max_results=1000,
                                                                 order_by=["metrics.m1 DESC"]), max(1, sizes.reps // 3))
    out["series_sampled"] = timed(lambda: store.get_metric_history_bulk_interval([uuids[0]], "loss", 2000, None, None),
                                  sizes.reps)
    out["series_full_read"] = timed(lambda: client.get_metric_history(uuids[0], "loss"), 0)
    assert len(out["series_full_read"]["result"]) == sizes.big_series
    points = max(200, min(2000, 60000 // sizes.compare_runs))
    out["compare_series"] = timed(lambda: store.get_metric_history_bulk_interval(uuids[:sizes.compare_runs], "curve",
                                                                                 points, None, None), 2)
    for value in out.values():
        if isinstance(value, dict):
            value.pop("result", None)
    print(RESULT_MARK + json.dumps(out))


def measure_mlflow(args: argparse.Namespace, sizes: Sizes, scratch: Path) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    from bench_tracking import DEFAULT_MLFLOW_VENV, ensure_mlflow_python  # the venv bench_tracking.py makes

    python, _version = ensure_mlflow_python(args.mlflow_python, Path(args.mlflow_venv or DEFAULT_MLFLOW_VENV))
    folder = scratch / "mlflow"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and k != "VIRTUAL_ENV"}
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"})
    proc = subprocess.run([python, __file__, "--mlflow-side", str(folder), json.dumps(asdict(sizes))],
                          capture_output=True, text=True, env=env, timeout=args.timeout)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return dict(json.loads(line[len(RESULT_MARK):]))
    raise RuntimeError(f"MLflow's side exited {proc.returncode}:\n{(proc.stderr or proc.stdout)[-2000:]}")


# -- the table ---------------------------------------------------------------------------------------


def fmt(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def ratio(runlab_s: float | None, mlflow_s: float | None) -> str:
    if not runlab_s or not mlflow_s:
        return "-"
    x = mlflow_s / runlab_s
    return f"{x:,.0f}x faster" if x >= 10 else (f"{x:.1f}x faster" if x >= 1 else f"{1 / x:.1f}x slower")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about a minute)")
    parser.add_argument("--skip-mlflow", action="store_true", help="runlab's side only")
    parser.add_argument("--skip-browser", action="store_true", help="no Chromium page timings")
    parser.add_argument("--mlflow-python", default=None, help="an interpreter with mlflow (default: MLflow's venv)")
    parser.add_argument("--mlflow-venv", default=None, help="MLflow's venv (default: benchmarks/.venv-mlflow)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed to MLflow's side")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--big-series", type=int, default=None, help="points of the big run's series (default: 1,000,000; "
                        "100,000 with --quick)")
    parser.add_argument("--mlflow-side", nargs=2, metavar=("SCRATCH", "SIZES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mlflow_side:
        mlflow_side(*args.mlflow_side)
        return 0

    sizes = QUICK if args.quick else FULL
    if args.big_series:
        from dataclasses import replace

        sizes = replace(sizes, big_series=args.big_series)
    scratch = Path(tempfile.mkdtemp(prefix="runlab-bench-studio-"))
    os.environ["RUNLAB_HOME"] = str(scratch / "home")
    errors: list[str] = []
    t_start = time.perf_counter()
    try:
        print(f"generating {sizes.runs:,} runs x {sizes.metrics_per_run} metrics, a {sizes.big_series:,}-point series, "
              f"{sizes.compare_runs} x {sizes.compare_points:,}-point series ...", flush=True)
        generated = generate_runlab(scratch / "ws", sizes)
        print(f"  runlab workspace: {generated['runs']:,} runs, {generated['points']:,} points in "
              f"{generated['seconds']:.1f} s", flush=True)
        print("timing the API in-process ...", flush=True)
        rl = measure_runlab_api(generated["folder"], sizes)
        pages: dict[str, Any] = {}
        if args.skip_browser:
            pass
        elif not Path(CHROMIUM).exists():
            errors.append(f"no {CHROMIUM}: page timings skipped (apt-get install -y chromium)")
        else:
            print("timing pages in Chromium ...", flush=True)
            pages = measure_pages(generated["folder"], sizes)
        ml: dict[str, Any] = {}
        if not args.skip_mlflow:
            print("generating the same data in MLflow's SQLite store and timing MLflow (its own venv) ...", flush=True)
            try:
                ml = measure_mlflow(args, sizes, scratch)
                print(f"  MLflow {ml['mlflow_version']}: generated in {ml['generate_s']:.1f} s", flush=True)
            except Exception as exc:  # the table still prints runlab's side
                errors.append(f"MLflow side: {exc}")
        generated["folder"].close()
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    def row(label: str, target: str | None, key: str, r: dict[str, Any] | None, m: dict[str, Any] | None,
            mlflow_label: str = "") -> list[str]:
        rs = r["median_s"] if r else None
        ms = m["median_s"] if m else None
        verdict = "-" if target is None or rs is None else ("PASS" if rs <= TARGETS[target] else "MISS")
        return [label, fmt(TARGETS[target]) if target else "", fmt(rs), (fmt(ms) + (f" ({mlflow_label})" if mlflow_label and ms else "")) if m else "-",
                ratio(rs, ms) if m else "-", verdict]

    n, big, cr, cp = sizes.runs, sizes.big_series, sizes.compare_runs, sizes.compare_points
    rows = [
        row(f"runs table, first page (50 of {n:,}, 3 metric columns)", "first_page", "", rl["first_page"],
            ml.get("first_page"), "search_runs 50"),
        row("runs table sorted by a metric's last value", "sorted_page", "", rl["sorted_page"], ml.get("sorted_page"),
            "search_runs 50, order_by metric"),
        row("   same, ascending", None, "", rl["sorted_page_asc"], None),
        row("   sorted by duration", None, "", rl["duration_sort"], None),
        row("   search by name", None, "", rl["search"], None),
        row(f"   last page ({n - 50:,}-{n:,}) sorted by a metric", None, "", rl["last_page"], None),
        row("   1,000 runs sorted by a metric (MLflow: the issue's 1.33 s case)", None, "", None,
            ml.get("search_1000_sorted"), "search_runs 1000"),
        row("   experiments list", None, "", rl["experiments"], None),
        row(f"{big:,}-point series, downsampled to 2,000 points", "series", "", rl["series"], ml.get("series_sampled"),
            "bulk-interval sample, 2,000"),
        row(f"   full read of the {big:,} points (store)", None, "", rl["series_full_read"], ml.get("series_full_read"),
            "get_metric_history"),
        row(f"compare {cr} runs x {cp:,} points: series ({rl['compare_points_per_run']}/run)", "compare", "",
            rl["compare_series"], ml.get("compare_series"), "bulk-interval sample"),
        row(f"   compare table ({cr} runs: details + final metrics)", None, "", rl["compare_table"], None),
    ]
    if pages:
        rows.append(row(f"compare page interactive in Chromium ({cr} curves)", "compare_page", "", pages["compare_page"], None))
        rows.append(row("   runs page interactive (sorted by a metric)", None, "", pages["runs_page"], None))
        run_cold, compare_cold = pages["run_page_uninspected"], pages["compare_page_uninspected"]
        rows.append(row(f"run page of the {big:,}-point run, overview shown, cold", "run_overview_cold", "",
                        {"median_s": run_cold["overview_cold_s"]}, None))
        rows.append(row("   same, first chart drawn, cold", "run_chart_cold", "", {"median_s": run_cold["chart_cold_s"]}, None))
        rows.append(row(f"compare page ({cr} curves) drawn, cold", "compare_drawn_cold", "",
                        {"median_s": compare_cold["drawn_cold_s"]}, None))
    total = rl["compare_series"]["median_s"] + rl["compare_table"]["median_s"]
    header = ["operation", "target", "runlab", "MLflow", "runlab vs MLflow", "vs target"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print()
    print(f"runlab studio vs MLflow {ml.get('mlflow_version', '-')} (SQLite stores); Python {platform.python_version()}; "
          f"{platform.machine()}, {os.cpu_count()} CPUs; {'quick' if args.quick else 'full'} sizes; "
          f"server time = in-process request, median of {sizes.reps} after a cold one; took {time.perf_counter() - t_start:.0f} s")
    print()
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print(f"\ncompare, server time in all (series + table): {fmt(total)} (target {fmt(TARGETS['compare'])})")
    cold = {k: fmt(v["cold_s"]) for k, v in rl.items() if isinstance(v, dict)}
    print("cold (first) requests: " + ", ".join(f"{k} {v}" for k, v in cold.items()))
    if errors:
        print("\nnotes:\n  - " + "\n  - ".join(errors))
    out = HERE / "out" / ("studio-quick.json" if args.quick else "studio.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"sizes": asdict(sizes), "runlab": rl, "pages": pages, "mlflow": ml, "rows": rows,
                               "errors": errors}, indent=1, default=str) + "\n")
    print(f"\nfigures written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
