"""Server benchmark (issue 8, "Performance"): W writer processes logging K points each through one
tracking server, end to end, side by side with MLflow's server and FastTrackML.

    python benchmarks/bench_server.py                 # 20 writers x 10,000 points
    python benchmarks/bench_server.py --quick         # 4 writers x 2,000 points
    python benchmarks/bench_server.py --writers 8 --points 50000 --only runlab

What it needs: runlab's venv (this one). The peers are optional and live in a venv of their own,
never runlab's (``--peers-venv``, default /tmp/bench-peers-venv)::

    python3 -m venv /tmp/bench-peers-venv && /tmp/bench-peers-venv/bin/pip install mlflow fasttrackml 'sqlalchemy<2.1'

(fasttrackml 0.6 holds mlflow at 2.x, whose server cannot import SQLAlchemy 2.1: hence the pin.)
Without that venv (or without ``mlflow`` / ``fml`` in it) the peers are skipped with a line saying so.

Each server runs as a subprocess on 127.0.0.1 on a free port with a SQLite store in a temp folder; the
benchmark waits for it to answer, and stops it by its own pid (its process group) at the end, on error
and on Ctrl+C too:

- runlab: ``python -m runlab.cli server --store sqlite:///TMP/runlab.db --artifacts TMP/artifacts
  --port P --no-auth``; each writer is what a training script does: ``import runlab``,
  ``Workspace.get("default", server=URL)``, ``Experiment(ws, "bench").start_logging()``,
  ``run.log("loss", float(i))`` per point, ``run.complete()``.
- MLflow: ``mlflow server --backend-store-uri sqlite:///TMP/mlflow.db --host 127.0.0.1 --port P
  --workers 1``; FastTrackML: ``fml server --listen-address 127.0.0.1:P --database-uri
  sqlite://TMP/fml.db`` (FastTrackML takes sqlite://ABSOLUTE-PATH). Their writers use MLflow's client,
  ``MlflowClient(URL).log_batch`` of 1,000 points a call, their fastest path.

The figure: W x K points / the seconds from the first writer's process start until every point is
readable through the server's API (runlab: ``get_run(id).get_metrics()``; peers:
``MlflowClient.get_metric_history``), with the points lost (K minus the count read, per run, summed).
p99 batch ms: the 99th percentile of one batch request, timed inside the writers (peers: each
``log_batch`` call; runlab: each ``POST /api/store/append_metrics`` its flusher thread sends, timed by
wrapping ``HttpStore.append_metrics`` in the writer; a batch here holds what ``run.log`` gathered
since the last flush, not a fixed 1,000 points, so its count and mean size are printed too).
Writers and the server share this machine's cores, as they would on one box.

Before the clock, runlab's modules are byte-compiled where their bytecode is missing (what ``pip install
.`` does; an editable install under ``PYTHONDONTWRITEBYTECODE``, as on the machines this was measured
on, would compile every module in every writer: ~50 ms of CPU each), and the reader imports numpy, which
reading a series loads on first use. The peers' installs carry their bytecode, and their reader makes a
call before the clock.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

RUNLAB_WRITER = r"""
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
run = runlab.Experiment(ws, "bench").start_logging()
ready = time.time()
for i in range(k):
    run.log("loss", float(i))
run.complete()
lg = getattr(run, "_logger_obj", None)
journaled = getattr(lg, "points_journaled", None) if lg is not None else None
import json
sys.stdout.write("@@RESULT@@ " + json.dumps({"run_id": run.id, "lat": lat, "batch_points": points,
                                             "journaled": journaled, "ready": ready, "end": time.time()}) + "\n")
sys.stdout.flush()
"""

MLFLOW_WRITER = r"""
import sys, time, json
url, k, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[4])
from mlflow.tracking import MlflowClient
from mlflow.entities import Metric

client = MlflowClient(url)
run_id = client.create_run(sys.argv[5]).info.run_id
ts = int(time.time() * 1000)
ready = time.time()
lat = []
for start in range(0, k, batch):
    metrics = [Metric("loss", float(i), ts, i) for i in range(start, min(k, start + batch))]
    t0 = time.perf_counter()
    client.log_batch(run_id, metrics=metrics)
    lat.append(time.perf_counter() - t0)
client.set_terminated(run_id)
sys.stdout.write("@@RESULT@@ " + json.dumps({"run_id": run_id, "lat": lat, "ready": ready, "end": time.time()}) + "\n")
sys.stdout.flush()
"""

MLFLOW_READER = r"""
import sys, json
from mlflow.tracking import MlflowClient
client = MlflowClient(sys.argv[1])
client.search_experiments(max_results=1)  # warm: imports and the connection are ready before the clock
sys.stdout.write("ready\n")
sys.stdout.flush()
run_ids = json.loads(sys.stdin.readline())
counts = {r: len(client.get_metric_history(r, "loss")) for r in run_ids}
sys.stdout.write("@@RESULT@@ " + json.dumps(counts) + "\n")
"""

MLFLOW_SETUP = r"""
import sys, json
from mlflow.tracking import MlflowClient
client = MlflowClient(sys.argv[1])
exp = client.get_experiment_by_name("bench")
eid = exp.experiment_id if exp is not None else client.create_experiment("bench")
sys.stdout.write("@@RESULT@@ " + json.dumps({"experiment_id": eid}) + "\n")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_result(out: str) -> Any:
    for line in out.splitlines():
        if line.startswith("@@RESULT@@ "):
            return json.loads(line[len("@@RESULT@@ "):])
    raise RuntimeError("no result line in:\n" + out[-2000:])


def p99_ms(values: list[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return 1000.0 * s[min(len(s) - 1, max(0, math.ceil(0.99 * len(s)) - 1))]


def startup(t0: float, results: list[Any]) -> str:
    """Median and slowest seconds from the clock's start until a writer's run was ready to log."""
    s = sorted(r["ready"] - t0 for r in results)
    return f"median {s[len(s) // 2]:.2f} s, max {s[-1]:.2f} s"


class Server:
    """A server subprocess in a process group of its own; ``stop`` kills that group by its pid."""

    def __init__(self, name: str, argv: list[str], health_url: str, log: Path, env: dict[str, str] | None = None):
        self.name, self.argv, self.health_url, self.log = name, argv, health_url, log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120.0) -> None:
        self._log = open(self.log, "wb")
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=self.env)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.health_url, timeout=2) as r:
                    if r.status == 200:
                        return
            except Exception:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} server did not answer {self.health_url} in {timeout_s:.0f} s:\n{self.tail()}")

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group's id is the server's own pid
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
                # workers of the group may outlive the leader: make sure the group is empty
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
            time.sleep(0.2)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)
        self._log.close()
        self.proc = None


def run_writers(python: str, script: str, args_of: list[list[str]], env: dict[str, str]) -> tuple[float, list[Any]]:
    """Start every writer at once; return (start time, results). Killed by pid on any error."""
    procs: list[subprocess.Popen[str]] = []
    t0 = time.time()
    try:
        for extra in args_of:
            procs.append(subprocess.Popen([python, "-c", script, extra[0], extra[1], repr(t0), *extra[2:]],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                          start_new_session=True))
        results = []
        for p in procs:
            out, err = p.communicate(timeout=3600)
            if p.returncode != 0:
                raise RuntimeError(f"writer exited with {p.returncode}:\n{err[-3000:]}")
            results.append(parse_result(out))
        return t0, results
    finally:
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=10)


def byte_compile_runlab() -> str:
    """Write the bytecode of runlab's modules, as ``pip install .`` does and as the first import does.

    A checkout installed with ``pip install -e .`` has none until a first import writes it, and none
    ever where ``PYTHONDONTWRITEBYTECODE`` is set (it is on the machines this was measured on): each
    writer would then compile runlab's sources again (~50 ms of CPU each, 20 at once on 2 cores),
    while the peers' writers, installed by pip, read theirs. Returns a line for the output.
    """
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("runlab")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    ok = all(compileall.compile_dir(f, quiet=1, force=False) for f in folders)
    return f"runlab's bytecode written where missing ({', '.join(folders)})" if ok else "runlab: compileall failed"


def bench_runlab(tmp: Path, writers: int, points: int) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, RUNLAB_HOME=str(tmp / "home"), PYTHONUNBUFFERED="1")
    env.pop("RUNLAB_TOKEN", None)
    srv = Server("runlab", [sys.executable, "-m", "runlab.cli", "server", "--store", f"sqlite:///{tmp}/runlab.db",
                            "--artifacts", str(tmp / "artifacts"), "--port", str(port), "--no-auth"],
                 f"{url}/healthz", tmp / "runlab-server.log", env=env)
    try:
        srv.start()
        os.environ["RUNLAB_HOME"] = env["RUNLAB_HOME"]
        from runlab.sdk.workspace import Workspace  # the reader: ready before the clock, as the peers' reader is

        ws = Workspace.get("default", server=url)
        import numpy  # noqa: F401 - what reading a series imports on first use, loaded before the clock too

        t0, results = run_writers(sys.executable, RUNLAB_WRITER, [[url, str(points)] for _ in range(writers)], env)
        lost = 0
        for r in results:
            values = ws.get_run(r["run_id"]).get_metrics().get("loss", [])
            count = len(values) if isinstance(values, list) else 1
            lost += points - count
        t1 = time.time()
        lat = [x for r in results for x in r["lat"]]
        bp = [x for r in results for x in r["batch_points"]]
        journaled = sum(int(r["journaled"] or 0) for r in results)
        note = (f"start-up {startup(t0, results)}; {len(lat)} batches, mean {sum(bp) / max(1, len(bp)):,.0f} points; "
                f"{journaled:,} journaled")
        return {"server": "runlab", "seconds": t1 - t0, "lost": lost, "p99_ms": p99_ms(lat), "note": note}
    finally:
        srv.stop()


def bench_peer(name: str, tmp: Path, writers: int, points: int, python: str, argv_of: Any,
               health: str, batch: int) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RUNLAB_", "VIRTUAL_ENV"))}
    env["PATH"] = str(Path(python).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    srv = Server(name, argv_of(port), url + health, tmp / f"{name}-server.log", env=env)
    try:
        srv.start()
        setup = subprocess.run([python, "-c", MLFLOW_SETUP, url], capture_output=True, text=True, env=env, timeout=300)
        if setup.returncode != 0:
            raise RuntimeError(f"{name}: creating the experiment failed:\n{setup.stderr[-3000:]}")
        eid = parse_result(setup.stdout)["experiment_id"]
        reader = subprocess.Popen([python, "-c", MLFLOW_READER, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
        try:
            assert reader.stdout is not None and reader.stdin is not None
            if reader.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{name}: the reader did not start:\n{reader.communicate(timeout=60)[1][-3000:]}")
            t0, results = run_writers(python, MLFLOW_WRITER,
                                      [[url, str(points), str(batch), eid] for _ in range(writers)], env)
            out, err = reader.communicate(json.dumps([r["run_id"] for r in results]) + "\n", timeout=3600)
            t1 = time.time()
        finally:
            if reader.poll() is None:
                os.killpg(reader.pid, signal.SIGKILL)
                reader.wait(timeout=10)
        if reader.returncode != 0:
            raise RuntimeError(f"{name}: reading back failed:\n{err[-3000:]}")
        counts = parse_result(out)
        lost = sum(points - int(c) for c in counts.values())
        lat = [x for r in results for x in r["lat"]]
        return {"server": name, "seconds": t1 - t0, "lost": lost, "p99_ms": p99_ms(lat),
                "note": f"start-up {startup(t0, results)}; {len(lat)} log_batch calls of {batch:,} points"}
    finally:
        srv.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=20, help="writer processes (default 20)")
    parser.add_argument("--points", type=int, default=10_000, help="points per writer (default 10,000)")
    parser.add_argument("--quick", action="store_true", help="a small run: 4 writers x 2,000 points")
    parser.add_argument("--batch", type=int, default=1000,
                        help="points per log_batch call of the peers (default 1,000)")
    parser.add_argument("--peers-venv", default="/tmp/bench-peers-venv",
                        help="venv with mlflow and fasttrackml installed (default /tmp/bench-peers-venv)")
    parser.add_argument("--mlflow-workers", type=int, default=1,
                        help="gunicorn workers of MLflow's server (default 1; MLflow's own default is 4)")
    parser.add_argument("--only", choices=("runlab", "mlflow", "fasttrackml"), action="append",
                        help="run only this server (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (servers' logs and databases)")
    parser.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.quick:
        args.writers, args.points = 4, 2_000
    which = args.only or ["runlab", "mlflow", "fasttrackml"]

    venv = Path(args.peers_venv)
    py = venv / "bin" / "python"
    mlflow_bin, fml_bin = venv / "bin" / "mlflow", venv / "bin" / "fml"
    install = f"python3 -m venv {venv} && {venv}/bin/pip install mlflow fasttrackml 'sqlalchemy<2.1'"

    tmp_root = Path(tempfile.mkdtemp(prefix="runlab-bench-server-"))
    print(f"{args.writers} writers x {args.points:,} points each, SQLite stores in {tmp_root}; "
          f"{os.cpu_count()} CPU(s)", flush=True)
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    try:
        for name in which:
            tmp = tmp_root / name
            tmp.mkdir()
            try:
                if name == "runlab":
                    print("  " + byte_compile_runlab(), flush=True)
                    rows.append(bench_runlab(tmp, args.writers, args.points))
                elif name == "mlflow":
                    if not (py.exists() and mlflow_bin.exists()):
                        skipped.append(f"mlflow: skipped, no {mlflow_bin}; install the peers with: {install}")
                        continue
                    rows.append(bench_peer(
                        "mlflow", tmp, args.writers, args.points, str(py),
                        lambda p, t=tmp: [str(mlflow_bin), "server", "--backend-store-uri", f"sqlite:///{t}/mlflow.db",
                                          "--default-artifact-root", str(t / "mlartifacts"),
                                          "--host", "127.0.0.1", "--port", str(p),
                                          "--workers", str(args.mlflow_workers)],
                        "/health", args.batch))
                elif name == "fasttrackml":
                    if not (py.exists() and fml_bin.exists()):
                        skipped.append(f"fasttrackml: skipped, no {fml_bin}; install the peers with: {install}")
                        continue
                    rows.append(bench_peer(
                        "fasttrackml", tmp, args.writers, args.points, str(py),
                        lambda p, t=tmp: [str(fml_bin), "server", "--listen-address", f"127.0.0.1:{p}",
                                          "--database-uri", f"sqlite://{t}/fml.db",
                                          "--default-artifact-root", str(t / "fmlartifacts")],
                        "/health", args.batch))
            except Exception as exc:  # one server's failure is reported, the others still run
                skipped.append(f"{name}: FAILED: {exc}")
            if rows and rows[-1]["server"] == name:
                r = rows[-1]
                print(f"  {name}: {r['seconds']:.2f} s, lost {r['lost']:,}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(tmp_root, ignore_errors=True)

    total = args.writers * args.points
    print()
    print(f"{'server':<13}{'writers x points':>18}{'seconds':>10}{'points/s':>12}{'lost':>8}{'p99 batch ms':>14}  note")
    for r in rows:
        r["points_per_s"] = total / r["seconds"]
        p99 = "n/a" if r["p99_ms"] is None else f"{r['p99_ms']:.1f}"
        print(f"{r['server']:<13}{f'{args.writers} x {args.points:,}':>18}{r['seconds']:>10.2f}"
              f"{r['points_per_s']:>12,.0f}{r['lost']:>8,}{p99:>14}  {r['note']}")
    for line in skipped:
        print(line)
    by = {r["server"]: r for r in rows}
    ratio = None
    if "runlab" in by and "fasttrackml" in by:
        ratio = by["runlab"]["points_per_s"] / by["fasttrackml"]["points_per_s"]
        print(f"runlab / FastTrackML: {ratio:.1f}x (target: 20x)")
    if "runlab" in by and "mlflow" in by:
        print(f"runlab / MLflow: {by['runlab']['points_per_s'] / by['mlflow']['points_per_s']:.1f}x")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"writers": args.writers, "points": args.points, "rows": rows,
                                   "skipped": skipped, "ratio_runlab_fasttrackml": ratio,
                                   "cpus": os.cpu_count()}, indent=2) + "\n")
        print(f"figures written to {out}")
    return 0 if all(r["lost"] == 0 for r in rows) and not any("FAILED" in s for s in skipped) else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # SIGTERM too runs the finally blocks that stop servers
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the finally blocks above have stopped every process by then
        sys.exit(130)
