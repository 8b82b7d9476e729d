"""Server scale benchmark (issue 8, "Performance"): the server figures that no peer could finish.

    python benchmarks/bench_server_scale.py            # 8 writers x 1,000,000 points; 10,000 runs x 10 metrics; 1M series
    python benchmarks/bench_server_scale.py --quick    # 4 x 20,000; 500 runs x 10 metrics; 100,000-point series
    python benchmarks/bench_server_scale.py --stores postgresql --workers 1 --points 200000

Three figures, each through one ``runlab server`` subprocess (``python -m runlab.cli server --store URL
--artifacts DIR --port P --no-auth --workers N``) on 127.0.0.1, on PostgreSQL and on SQLite:

1. ingest: W writer processes, each what a training script does with runlab's own client
   (``Workspace.get("default", server=URL)``, ``Experiment(ws, "scale").start_logging()``,
   ``run.log("loss", float(i))`` K times, ``run.complete()``). The figure: W x K points / the seconds
   from the writers' start until every point is readable (the store RPC ``get_metric_summaries`` of each
   run counts K); then, off the clock, each series is read whole (``get_metric_series``) and checked:
   K points, values 0..K-1 in order (lost = the points missing). Target: >= 1,000,000 points/s.
   Run once per ``--workers`` value (default 1 and 2), each into a fresh database.
2. listing: 10,000 runs x 10 metrics written straight into the store (``SqlStore(url)``:
   ``create_run``, ``append_metrics``, ``set_status``), then ``GET /api/runs?limit=50`` from a warm
   httpx client (median and p95 of 30, after 3 warm-ups): the default sort (created_at), the same with
   the 10 metric columns the studio's table shows, and sorted by a metric's last value. Target: < 50 ms.
3. one 1,000,000-point series: read whole through the client protocol
   (``HttpStore(ServerClient(url)).get_metric_series``) and through the studio's downsampled endpoint
   (``GET /api/runs/ID/metrics/loss?points=1000``), median of 10. Target: < 100 ms.

PostgreSQL: the script starts its own (``initdb`` in a temp folder, as the ``postgres`` user when run as
root, loopback only, on a free port) with PostgreSQL's default settings (fsync on): a figure for a
real deployment. ``--pg-fsync-off`` adds ``-c fsync=off -c full_page_writes=off`` (what the tests use),
printed as such. It is stopped by its own pid at the end; every server and writer runs in a process
group of its own and is killed by that group's id, on error and on Ctrl+C too. Writers, the server and
the database share this machine's cores.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_server import Server, free_port, p99_ms, run_writers  # noqa: E402

WRITER = r"""
import sys, time
t_start = float(sys.argv[3])
import runlab
from runlab.store.remote.store import HttpStore

lat = []
points = []
_orig = HttpStore.append_metrics

def _timed(self, run_id, batches, batch_id=None):
    t0 = time.perf_counter()
    try:
        return _orig(self, run_id, batches, batch_id)
    finally:
        lat.append(time.perf_counter() - t0)
        points.append(sum(len(b.values) for b in batches))

HttpStore.append_metrics = _timed

url, k = sys.argv[1], int(sys.argv[2])
ws = runlab.Workspace.get("default", server=url)
run = runlab.Experiment(ws, "scale").start_logging()
ready = time.time()
for i in range(k):
    run.log("loss", float(i))
logged = time.time()
run.complete()
lg = getattr(run, "_logger_obj", None)
journaled = getattr(lg, "points_journaled", None) if lg is not None else None
import json
sys.stdout.write("@@RESULT@@ " + json.dumps({"run_id": run.id, "lat": lat, "batch_points": points,
                                             "journaled": journaled, "ready": ready, "logged": logged,
                                             "end": time.time()}) + "\n")
sys.stdout.flush()
"""

# -- PostgreSQL -----------------------------------------------------------------------------------------


class Postgres:
    """A PostgreSQL server of its own in a temp folder (as tests/pg_support.py starts one), stopped by pid."""

    def __init__(self, fsync_off: bool) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin = os.path.dirname(bins[-1])
        self.version = self.bin.split("/")[-2]
        self.fsync_off = fsync_off
        # a folder of its own under /tmp: the postgres user cannot enter the benchmark's 0700 temp folder
        self.data = Path(tempfile.mkdtemp(prefix="runlab-bench-pg-", dir="/tmp"))
        self.user: str | None = None
        if os.geteuid() == 0:  # initdb refuses root: run it, and the server, as postgres
            shutil.chown(self.data, "postgres", "postgres")
            self.user = "postgres"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> str:
        subprocess.run([f"{self.bin}/initdb", "-D", str(self.data), "-A", "trust", "-U", "runlab"],
                       user=self.user, check=True, capture_output=True)
        self.port = free_port()
        extra = ["-c", "fsync=off", "-c", "full_page_writes=off"] if self.fsync_off else []
        self.proc = subprocess.Popen(
            [f"{self.bin}/postgres", "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port),
             "-k", str(self.data), "-c", "max_connections=200", *extra],
            user=self.user, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            ok = subprocess.run([f"{self.bin}/pg_isready", "-h", "127.0.0.1", "-p", str(self.port)],
                                capture_output=True)
            if ok.returncode == 0:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode() if self.proc.stderr and self.proc.poll() is not None else ""
                raise RuntimeError(f"PostgreSQL did not start: {err}")
            time.sleep(0.2)
        return f"postgresql+psycopg://runlab@127.0.0.1:{self.port}/postgres"

    def database(self) -> str:
        """A new empty database on this server; its URL."""
        import sqlalchemy as sa

        name = f"b_{uuid.uuid4().hex[:10]}"
        base = f"postgresql+psycopg://runlab@127.0.0.1:{self.port}/postgres"
        admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        admin.dispose()
        return base.rsplit("/", 1)[0] + "/" + name

    def stop(self) -> None:
        if self.proc is None:
            shutil.rmtree(self.data, ignore_errors=True)
            return
        try:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None
        shutil.rmtree(self.data, ignore_errors=True)


# -- helpers --------------------------------------------------------------------------------------------


def start_server(tmp: Path, name: str, store_url: str, workers: int, env: dict[str, str]) -> tuple[Server, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    (tmp / name).mkdir(parents=True, exist_ok=True)
    srv = Server(f"runlab ({name})",
                 [sys.executable, "-m", "runlab.cli", "server", "--store", store_url,
                  "--artifacts", str(tmp / name / "artifacts"), "--port", str(port), "--no-auth",
                  "--workers", str(workers), "--no-agents"],
                 f"{url}/healthz", tmp / name / "server.log", env=env)
    srv.start()
    return srv, url


def timed(fn: Callable[[], Any], repeat: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def med_p95(values: list[float]) -> tuple[float, float]:
    s = sorted(values)
    return 1000 * statistics.median(s), 1000 * s[min(len(s) - 1, int(round(0.95 * (len(s) - 1))))]


# -- 1. ingest ------------------------------------------------------------------------------------------


def bench_ingest(tmp: Path, name: str, store_url: str, server_workers: int, writers: int, points: int,
                 env: dict[str, str]) -> dict[str, Any]:
    from runlab.store.remote.client import ServerClient
    from runlab.store.remote.store import HttpStore

    srv, url = start_server(tmp, name, store_url, server_workers, env)
    try:
        store: Any = HttpStore(ServerClient(url))  # methods generated from the protocol
        store.list_experiments()  # warm: the reader's connection is ready before the clock
        t0, results = run_writers(sys.executable, WRITER, [[url, str(points)] for _ in range(writers)], env)
        t_done = time.time()
        pending = {r["run_id"] for r in results}
        deadline = time.monotonic() + 120
        while pending and time.monotonic() < deadline:
            for run_id in list(pending):
                counts = {s.name: s.count for s in store.get_metric_summaries(run_id)}
                if counts.get("loss", 0) >= points:
                    pending.discard(run_id)
            if pending:
                time.sleep(0.05)
        t1 = time.time()
        lost = extra = bad = 0
        expected = [float(i) for i in range(points)]
        for r in results:  # off the clock: every point, once, in order
            values = [float(v) for v in store.get_metric_series(r["run_id"], "loss").values]
            distinct = set(values)
            lost += points - len(distinct & set(expected))
            extra += len(values) - len(distinct) + len(distinct - set(expected))
            if values != expected:
                bad += 1
        lat = [x for r in results for x in r["lat"]]
        bp = [x for r in results for x in r["batch_points"]]
        journaled = sum(int(r["journaled"] or 0) for r in results)
        ready = sorted(r["ready"] - t0 for r in results)
        logged = sorted(r["logged"] - r["ready"] for r in results)
        seconds = t1 - t0
        return {"store": name, "workers": server_workers, "writers": writers, "points": points,
                "seconds": seconds, "points_per_s": writers * points / seconds,
                "after_writers_s": t1 - t_done, "lost": lost, "extra": extra, "out_of_order_runs": bad,
                "p99_ms": p99_ms(lat), "batches": len(lat), "mean_batch": sum(bp) / max(1, len(bp)),
                "journaled": journaled, "startup_max_s": ready[-1], "log_loop_max_s": logged[-1],
                "unconfirmed_runs": len(pending)}
    finally:
        srv.stop()


# -- 2. + 3. listing and the big series -------------------------------------------------------------------


def generate(store_url: str, runs: int, metrics: int, points_per_metric: int, big: int, threads: int
             ) -> tuple[str, float]:
    """``runs`` runs with ``metrics`` metrics each, and one run with a ``big``-point "loss"; the big run's id."""
    import numpy as np

    from runlab.core.entities import MetricBatch, MetricKind
    from runlab.core.status import RunStatus, RunType
    from runlab.store.sql.store import SqlStore

    t0 = time.perf_counter()
    store = SqlStore(store_url)
    store.get_or_create_experiment("scale")
    base = time.time() - runs * 10

    def one(i: int) -> None:
        run_id = f"scale_{i:06d}"
        created = base + i * 10
        store.create_run(run_id, "scale", run_type=RunType.SUBMITTED, status=RunStatus.RUNNING,
                         display_name=f"trial {i}", tags={"lr": str([0.1, 0.01, 0.001][i % 3]), "seed": str(i % 5)},
                         created_at=created)
        batches = []
        for m in range(metrics):
            b = ((i * 7919 + m * 104729) % 1000) / 1000.0
            batches.append(MetricBatch(name=f"m{m}", kind=MetricKind.SCALAR,
                                       steps=list(range(points_per_metric)),
                                       times=[created + s for s in range(points_per_metric)],
                                       values=[b + 1.0 / (s + 1 + m) for s in range(points_per_metric)]))
        store.append_metrics(run_id, batches)
        store.set_status(run_id, RunStatus.COMPLETED if i % 10 else RunStatus.FAILED, when=created + 5)

    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(runs)))
    else:
        for i in range(runs):
            one(i)
    big_id = "scale_big_series"
    created = time.time()
    store.create_run(big_id, "scale", run_type=RunType.SUBMITTED, status=RunStatus.RUNNING, created_at=created)
    per = 100_000  # what a flusher's batches come to at this rate
    rng = np.random.default_rng(0)
    for start in range(0, big, per):
        n = min(per, big - start)
        steps = np.arange(start, start + n, dtype=np.int64)
        store.append_metrics(big_id, [MetricBatch(name="loss", kind=MetricKind.SCALAR, steps=steps.tolist(),
                                                  times=(created + steps * 1e-3).tolist(),
                                                  values=(2.0 * np.exp(-steps / (big / 5))
                                                          + 0.05 * rng.standard_normal(n)).tolist())])
    store.set_status(big_id, RunStatus.COMPLETED)
    if store_url.startswith("postgresql"):
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    else:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    store.close()
    return big_id, time.perf_counter() - t0


def bench_reads(tmp: Path, name: str, store_url: str, server_workers: int, runs: int, metrics: int,
                points_per_metric: int, big: int, env: dict[str, str]) -> dict[str, Any]:
    import httpx

    from runlab.store.remote.client import ServerClient
    from runlab.store.remote.store import HttpStore

    srv, url = start_server(tmp, name, store_url, server_workers, env)  # the server makes the schema
    try:
        threads = 8 if store_url.startswith("postgresql") else 1
        big_id, gen_s = generate(store_url, runs, metrics, points_per_metric, big, threads)
        out: dict[str, Any] = {"store": name, "workers": server_workers, "generate_s": gen_s, "rows": []}
        cols = [("metric", f"m{m}") for m in range(metrics)]
        with httpx.Client(base_url=url, timeout=60) as client:
            def page(params: list[tuple[str, str]], check_total: bool = True) -> Callable[[], Any]:
                def call() -> Any:
                    r = client.get("/api/runs", params=[("limit", "50"), *params])
                    r.raise_for_status()
                    body = r.json()
                    if check_total and (body["total"] < runs or len(body["runs"]) != 50):
                        raise RuntimeError(f"listing returned total {body['total']}, {len(body['runs'])} rows")
                    return body
                return call

            variants = [
                ("runs: first page of 50 (created_at)", []),
                (f"runs: first page + {metrics} metric columns", cols),
                ("runs: sorted by metric:m3 (last value)", [("sort", "metric:m3"), *cols]),
            ]
            first_rows = page([("sort", "metric:m3"), ("order", "asc"), ("metric", "m3")])()["runs"][:3]
            for label, params in variants:
                m, p = med_p95(timed(page(params), 30, 3))
                out["rows"].append({"figure": label, "median_ms": m, "p95_ms": p, "target_ms": 50})
            out["sorted_sample"] = [r.get("run_id") for r in first_rows]

            from runlab.store.sql.store import SqlStore

            direct = SqlStore(store_url)  # a reference: the store alone, in this process, no HTTP
            m, p = med_p95(timed(lambda: direct.get_metric_series(big_id, "loss"), 10, 2))
            direct.close()
            out["rows"].append({"figure": "  (reference: SqlStore.get_metric_series, no server)",
                                "median_ms": m, "p95_ms": p, "target_ms": 100})
            http_store: Any = HttpStore(ServerClient(url))
            n = len(http_store.get_metric_series(big_id, "loss").values)
            if n != big:
                raise RuntimeError(f"the big series has {n} points, not {big}")
            m, p = med_p95(timed(lambda: http_store.get_metric_series(big_id, "loss"), 10, 2))
            out["rows"].append({"figure": f"series of {big:,} points, whole (client protocol)",
                                "median_ms": m, "p95_ms": p, "target_ms": 100})

            def chart() -> Any:
                r = client.get(f"/api/runs/{big_id}/metrics/loss", params={"points": 1000})
                r.raise_for_status()
                return r.json()

            body = chart()
            if body["count"] != big:
                raise RuntimeError(f"the chart endpoint counts {body['count']} points, not {big}")
            m, p = med_p95(timed(chart, 10, 2))
            out["rows"].append({"figure": f"series of {big:,} points, downsampled to 1,000 (studio API)",
                                "median_ms": m, "p95_ms": p, "target_ms": 100})
        return out
    finally:
        srv.stop()


# -- main -----------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=8, help="writer processes (default 8)")
    parser.add_argument("--points", type=int, default=1_000_000, help="points per writer (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=10_000, help="runs to list (default 10,000)")
    parser.add_argument("--metrics", type=int, default=10, help="metrics per listed run (default 10)")
    parser.add_argument("--metric-points", type=int, default=100, help="points per metric of a listed run (100)")
    parser.add_argument("--series", type=int, default=1_000_000, help="points of the big series (1,000,000)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: 4 writers x 20,000, 500 runs, a 100,000-point series")
    parser.add_argument("--workers", type=int, action="append",
                        help="server processes for the ingest (repeatable; default 1 and 2)")
    parser.add_argument("--stores", default="postgresql,sqlite", help="comma-separated: postgresql, sqlite")
    parser.add_argument("--parts", default="ingest,reads", help="comma-separated: ingest, reads")
    parser.add_argument("--pg-fsync-off", action="store_true",
                        help="PostgreSQL with fsync=off, full_page_writes=off (not a deployment's settings)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs, databases)")
    parser.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.quick:
        args.writers, args.points, args.runs, args.series = 4, 20_000, 500, 100_000
    workers_list = args.workers or [1, 2]
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    parts = [s.strip() for s in args.parts.split(",") if s.strip()]

    tmp = Path(tempfile.mkdtemp(prefix="runlab-bench-scale-"))
    env = dict(os.environ, RUNLAB_HOME=str(tmp / "home"), PYTHONUNBUFFERED="1")
    env.pop("RUNLAB_TOKEN", None)
    env.pop("RUNLAB_STORE_URL", None)
    os.environ["RUNLAB_HOME"] = env["RUNLAB_HOME"]
    print(f"runlab server scale benchmark; {os.cpu_count()} CPU(s); temp {tmp}", flush=True)
    ingest: list[dict[str, Any]] = []
    reads: list[dict[str, Any]] = []
    notes: list[str] = []
    pg: Postgres | None = None
    try:
        for kind in stores:
            if kind == "postgresql":
                try:
                    pg = Postgres(args.pg_fsync_off)
                    pg.start()
                except Exception as exc:
                    notes.append(f"postgresql: skipped: {exc}")
                    if pg is not None:
                        pg.stop()
                        pg = None
                    continue
                label = f"PostgreSQL {pg.version}" + (" (fsync=off)" if args.pg_fsync_off else "")
                new_url: Callable[[str], str] = lambda _n: pg.database()  # type: ignore[union-attr]
            elif kind == "sqlite":
                label = "SQLite"
                new_url = lambda n: f"sqlite:///{tmp}/{n}.db"  # noqa: E731
            else:
                notes.append(f"{kind}: unknown store")
                continue
            if "ingest" in parts:
                for w in workers_list:
                    n = f"{kind}-ingest-w{w}"
                    try:
                        r = bench_ingest(tmp, n, new_url(n), w, args.writers, args.points, env)
                        r["store"] = label
                        ingest.append(r)
                        print(f"  ingest {label}, --workers {w}: {r['seconds']:.2f} s, "
                              f"{r['points_per_s']:,.0f} points/s, lost {r['lost']:,}, "
                              f"stored twice {r['extra']:,}", flush=True)
                    except Exception as exc:
                        notes.append(f"ingest {label} --workers {w}: FAILED: {exc}")
                        print(notes[-1], flush=True)
            if "reads" in parts:
                n = f"{kind}-reads"
                try:
                    r = bench_reads(tmp, n, new_url(n), 1, args.runs, args.metrics, args.metric_points,
                                    args.series, env)
                    r["store"] = label
                    reads.append(r)
                    print(f"  reads {label}: generated in {r['generate_s']:.1f} s", flush=True)
                except Exception as exc:
                    notes.append(f"reads {label}: FAILED: {exc}")
                    print(notes[-1], flush=True)
            if pg is not None:
                pg.stop()
                pg = None
    finally:
        if pg is not None:
            pg.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    print()
    if ingest:
        print(f"ingest: {args.writers} writers x {args.points:,} points, run.log per point, until every point "
              f"is readable (target >= 1,000,000 points/s, zero lost)")
        print(f"{'store':<27}{'workers':>8}{'seconds':>9}{'points/s':>12}{'lost':>11}{'twice':>11}"
              f"{'p99 batch ms':>14}{'batches':>9}{'mean batch':>12}{'journaled':>11}  note")
        for r in ingest:
            p99 = "n/a" if r["p99_ms"] is None else f"{r['p99_ms']:.0f}"
            note = (f"start-up max {r['startup_max_s']:.1f} s, log loop max {r['log_loop_max_s']:.1f} s, "
                    f"readable {r['after_writers_s']:.2f} s after the writers ended")
            if r["out_of_order_runs"] or r["unconfirmed_runs"] or r["extra"]:
                note += (f"; {r['out_of_order_runs']} runs not exactly 0..K-1 in order, "
                         f"{r['unconfirmed_runs']} runs not confirmed")
            met = "ok" if r["points_per_s"] >= 1_000_000 and r["lost"] == 0 and r["extra"] == 0 else "MISSED"
            note = f"{met}; {note}"
            print(f"{r['store']:<27}{r['workers']:>8}{r['seconds']:>9.2f}{r['points_per_s']:>12,.0f}"
                  f"{r['lost']:>11,}{r['extra']:>11,}{p99:>14}{r['batches']:>9,}{r['mean_batch']:>12,.0f}"
                  f"{r['journaled']:>11,}  {note}")
        print()
    if reads:
        print(f"reads: {args.runs:,} runs x {args.metrics} metrics ({args.metric_points} points each) and one "
              f"{args.series:,}-point series, through one server (--workers 1), warm client")
        print(f"{'store':<24}{'figure':<60}{'median ms':>10}{'p95 ms':>8}{'target':>9}")
        for r in reads:
            for row in r["rows"]:
                ok = "ok" if row["median_ms"] < row["target_ms"] else "MISSED"
                print(f"{r['store']:<24}{row['figure']:<60}{row['median_ms']:>10.1f}{row['p95_ms']:>8.1f}"
                      f"{'< ' + str(row['target_ms']):>7} {ok}")
            print(f"{'':<24}(generated through SqlStore in {r['generate_s']:.1f} s)")
    for line in notes:
        print(line)
    if args.out:
        Path(args.out).write_text(json.dumps({"ingest": ingest, "reads": reads, "notes": notes}, indent=2))
    return 1 if any("FAILED" in n for n in notes) else 0


if __name__ == "__main__":
    sys.exit(main())
