"""Runs-table benchmark at 100,000 runs: the server time of the runs table's requests (first page,
sorted by a metric, filtered by a query, both, sorted by a tag, the column list, a CSV export).

    . .venv/bin/activate
    python benchmarks/bench_runs_table.py                 # 100,000 runs x 10 metrics
    python benchmarks/bench_runs_table.py --runs 10000    # smaller

The workspace is generated straight into the SQLite tables (SQLAlchemy Core bulk inserts: a fixture,
not API usage): N runs of one experiment, each with 3 tags, 2 properties and 10 metric summaries
(m0..m9 and loss: the ``metrics`` rows a runs table reads; no series chunks, which a table never
reads). Server time is an in-process request to the ASGI app (Starlette's test client: no network),
the median of repetitions after a first, cold one. ``--browser`` adds the page in Chromium: navigation
to the first rows in the DOM, on the page's own clock. Figures are printed, nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

QUERY = 'metrics.m0 < 0.5 and tags.stage = "dev" and status = "Completed"'


def timed(fn: Callable[[], Any], reps: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    result = fn()
    cold = time.perf_counter() - t0
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"cold_s": cold, "median_s": float(statistics.median(times)), "min_s": min(times), "result": result}


def generate(path: Path, n: int, metrics_per_run: int) -> Any:
    from runlab.store.folder import WorkspaceFolder
    from runlab.store.sql import schema as t

    folder = WorkspaceFolder.create(path, "bench-runs-table")
    store = folder.store
    exp = store.get_or_create_experiment("bench")
    now = time.time() - n * 10
    names = ["loss", *(f"m{m}" for m in range(metrics_per_run - 1))]
    batch = 20_000
    metric_id = 0
    with store.engine.begin() as conn:
        for start in range(0, n, batch):
            runs, tags, props, metrics = [], [], [], []
            for i in range(start, min(n, start + batch)):
                pk = i + 1
                created = now + i * 10
                status = "Failed" if i % 10 == 3 else ("Canceled" if i % 20 == 7 else "Completed")
                runs.append({"id": pk, "run_id": f"bench_{i:06d}", "experiment_id": exp.experiment_id, "parent_id": None,
                             "display_name": f"trial {i}", "run_type": "submitted", "status": status,
                             "target": "cpu-cluster" if i % 3 else "local", "created_at": created,
                             "started_at": created + 2, "ended_at": created + 2 + (i % 97) * 3, "heartbeat_at": None,
                             "owner": None, "error": None, "definition": None, "description": "", "archived_at": None})
                tags += [{"run_pk": pk, "key": "lr", "value": str([0.1, 0.01, 0.001][i % 3])},
                         {"run_pk": pk, "key": "seed", "value": str(i % 5)},
                         {"run_pk": pk, "key": "stage", "value": "dev" if i % 4 else "prod"}]
                props += [{"run_pk": pk, "key": "git.branch", "value": "main" if i % 2 else f"feature-{i % 7}"},
                          {"run_pk": pk, "key": "batch_size", "value": str(2 ** (4 + i % 4))}]
                for m, name in enumerate(names):
                    metric_id += 1
                    value = ((i * 2654435761 + m * 40503 * 2654435761) % 2**32) / 2**32  # metrics independent
                    metrics.append({"id": metric_id, "run_pk": pk, "name": name, "kind": "scalar", "description": "",
                                    "count": 10, "chunks": 0, "last_json": json.dumps(value), "last_number": value,
                                    "last_step": 9, "last_time": created + 10, "min_value": value, "max_value": value + 1})
            conn.execute(t.runs.insert(), runs)
            conn.execute(t.run_tags.insert(), tags)
            conn.execute(t.run_properties.insert(), props)
            conn.execute(t.metrics.insert(), metrics)
        conn.exec_driver_sql("ANALYZE")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--workspace", type=Path, default=None,
                        help="generate the workspace there and keep it; reuse it when it exists")
    parser.add_argument("--browser", action="store_true",
                        help="also time the runs page in Chromium (/usr/bin/chromium) over a uvicorn server on "
                             "127.0.0.1: navigation to the first rows shown, cold (a new context) and warm")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="runlab-bench-table-"))
    os.environ["RUNLAB_HOME"] = str(scratch / "home")
    try:
        t0 = time.perf_counter()
        where = args.workspace or scratch / "ws"
        if args.workspace is not None and (where / "workspace.db").exists():
            from runlab.store.folder import WorkspaceFolder

            folder = WorkspaceFolder(where)
            print(f"reusing {where}", flush=True)
        else:
            print(f"generating {args.runs:,} runs x {args.metrics} metrics ...", flush=True)
            folder = generate(where, args.runs, args.metrics)
            print(f"  generated in {time.perf_counter() - t0:.1f} s", flush=True)

        from runlab.server.app import create_app

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
            from fastapi.testclient import TestClient

        cols = {"metric": ["loss", "m0", "m1"]}
        cases: list[tuple[str, str, dict[str, Any]]] = [
            ("first page (50 runs, 3 metric columns)", "/api/runs", {"experiment": "bench", "limit": 50, **cols}),
            ("sorted by a metric (desc)", "/api/runs", {"experiment": "bench", "sort": "metric:m1", "order": "desc", **cols}),
            ("sorted by a metric (asc)", "/api/runs", {"experiment": "bench", "sort": "metric:m1", "order": "asc", **cols}),
            ("filtered by a query", "/api/runs", {"experiment": "bench", "q": QUERY, **cols}),
            ("filtered by a query, sorted by a metric", "/api/runs", {"experiment": "bench", "q": QUERY,
                                                                      "sort": "metric:loss", "order": "asc", **cols}),
            ("sorted by a tag", "/api/runs", {"experiment": "bench", "sort": "tag:lr", "order": "asc", **cols}),
            ("a property query", "/api/runs", {"experiment": "bench", "q": 'properties.git.branch = "main"', **cols}),
            ("archived runs only (none)", "/api/runs", {"experiment": "bench", "archived": "only", **cols}),
            ("column list (metric counts, tag and property keys)", "/api/runs-columns", {"experiment": "bench"}),
        ]
        results: list[tuple[str, dict[str, Any]]] = []
        app = create_app(folder)
        with TestClient(app) as client:
            for label, url, params in cases:
                def call(url: str = url, params: dict[str, Any] = params) -> Any:
                    response = client.get(url, params=params)
                    assert response.status_code == 200, response.text[:300]
                    return response.json()
                results.append((label, timed(call, args.reps)))

            def export() -> int:
                response = client.get("/api/runs-export", params={"experiment": "bench", "q": QUERY, **cols})
                assert response.status_code == 200
                return response.text.count("\n") - 1
            exported = timed(export, 1)
        page_times = measure_page(folder, args.reps) if args.browser else None
        folder.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"\nruns table, {args.runs:,} runs x {args.metrics} metrics (SQLite); Python {platform.python_version()}; "
          f"{platform.machine()}, {os.cpu_count()} CPUs; server time = in-process request, median of {args.reps} "
          "after a cold one\n")
    width = max(len(label) for label, _ in results) + 2
    print("request".ljust(width) + "median     min        cold       total")
    for label, r in results:
        total = r["result"].get("total", "") if isinstance(r["result"], dict) else ""
        print(f"{label.ljust(width)}{r['median_s'] * 1000:7.1f} ms {r['min_s'] * 1000:7.1f} ms "
              f"{r['cold_s'] * 1000:7.1f} ms  {total}")
    print(f"{'CSV export of the query (all rows)'.ljust(width)}{exported['median_s'] * 1000:7.1f} ms "
          f"{exported['min_s'] * 1000:7.1f} ms {exported['cold_s'] * 1000:7.1f} ms  {exported['result']} rows")
    if page_times is not None:
        print(f"{'runs page in Chromium: first rows shown, cold'.ljust(width)}{page_times['cold_s'] * 1000:7.1f} ms")
        print(f"{'runs page in Chromium: first rows shown, warm'.ljust(width)}{page_times['median_s'] * 1000:7.1f} ms "
              f"{page_times['min_s'] * 1000:7.1f} ms")
        cold = page_times["uninspected_cold"]
        print(f"{'runs page, no inspector, new profiles: cold'.ljust(width)}{page_times['uninspected_cold_s'] * 1000:7.1f} ms "
              f"{min(cold) * 1000:7.1f} ms  (median, min of {len(cold)}; max {max(cold) * 1000:.1f} ms; the page's main "
              f"thread busy {statistics.median(page_times['busy']) * 1000:.1f} ms of it)")
    print(f"\nquery: {QUERY}")
    return 0


def measure_page(folder: Any, reps: int) -> dict[str, float]:
    """Navigation to the runs table's first rows in the DOM (Chromium, the page's own clock from
    navigation start): cold in a new browser context (empty cache; the server's first requests too), then
    warm (the same context); then 7 cold loads as a user's browser makes them (no inspector, a new profile
    each: bench_studio.uninspected_marks, runs.js's runlab:runs-table mark)."""
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_studio import CHROMIUM, _Server  # the same server and browser settings

    from runlab.server.app import create_app

    marks = """(() => { const t = (window.__bench = {}); const seen = () => {
        if (!t.rows && document.querySelector('#runs-table tbody tr')) t.rows = performance.now(); };
      document.addEventListener('DOMContentLoaded', () => new MutationObserver(seen)
        .observe(document.body, { subtree: true, childList: true })); })()"""
    server = _Server(create_app(folder))
    url = f"{server.url}/runs?experiment=bench&metric=loss&metric=m0&metric=m1"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"])
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            context.add_init_script(marks)
            page = context.new_page()
            times = []
            for _ in range(reps + 1):
                page.goto("about:blank")
                page.goto(url)
                page.wait_for_selector("#runs-table tbody tr", timeout=60_000)
                times.append(float(page.evaluate("window.__bench.rows")) / 1000)
            browser.close()
        # then a user's browser: no inspector, a new profile per load (the server warm now)
        from bench_studio import uninspected_marks
        loads = uninspected_marks(url, ["runlab:runs-table"], 7)
    finally:
        server.stop()
    warm = times[1:]
    cold = loads["runlab:runs-table"]
    return {"cold_s": times[0], "median_s": float(statistics.median(warm)), "min_s": min(warm),
            "uninspected_cold_s": float(statistics.median(cold)), "uninspected_cold": cold, "busy": loads["busy"]}


if __name__ == "__main__":
    sys.exit(main())
