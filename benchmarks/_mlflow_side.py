"""MLflow's side of bench_tracking.py: each command runs in a fresh process of the MLflow venv
(benchmarks/.venv-mlflow), never in runlab's.

    benchmarks/.venv-mlflow/bin/python benchmarks/_mlflow_side.py COMMAND '{"json": "arguments"}'

The tracking store is MLflow's SQLite backend store, named by MLFLOW_TRACKING_URI
(``sqlite:////tmp/.../mlflow.db``; bench_tracking.py sets it). Prints ``@@RESULT@@ {json}``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any, Callable

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric

EXPERIMENT_ID = "0"  # the "Default" experiment every new MLflow store has


def cmd_setup(a: dict[str, Any]) -> dict[str, Any]:
    """Create the database (MLflow runs its migrations on first use) and check the default experiment."""
    client = MlflowClient()
    exp = client.get_experiment(EXPERIMENT_ID)
    return {"mlflow_version": mlflow.__version__, "experiment": exp.name,
            "tracking_uri": mlflow.get_tracking_uri()}


def cmd_log_loop(a: dict[str, Any]) -> dict[str, Any]:
    """Figure 1: ``mlflow.log_metric`` in a loop, synchronous or asynchronous."""
    reps, n, synchronous = int(a["reps"]), int(a["n"]), bool(a["synchronous"])
    mlflow.start_run()
    mlflow.log_metric("warmup", 0.0, step=0, synchronous=synchronous)  # first call: not timed
    if not synchronous:
        mlflow.flush_async_logging()
    per_call = []
    step = 0
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        for _i in range(n):
            mlflow.log_metric("loss", 0.5, step=step, synchronous=synchronous)
            step += 1
        per_call.append((time.perf_counter_ns() - t0) / n)
    t0 = time.perf_counter()
    if not synchronous:
        mlflow.flush_async_logging()
    drain_s = time.perf_counter() - t0
    run_id = mlflow.active_run().info.run_id
    count = len(MlflowClient().get_metric_history(run_id, "loss"))
    mlflow.end_run()
    return {"per_call_ns": per_call, "median_ns": statistics.median(per_call), "drain_s": drain_s,
            "points_stored": count, "points_expected": reps * n, "synchronous": synchronous}


def cmd_ingest(a: dict[str, Any]) -> dict[str, Any]:
    """Figure 2: ``MlflowClient.log_batch`` of ``batch`` metrics at a time, until a read returns them all."""
    n, batch = int(a["n"]), int(a.get("batch", 1000))
    client = MlflowClient()
    run_id = client.create_run(EXPERIMENT_ID).info.run_id
    ts = int(time.time() * 1000)
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        client.log_batch(run_id, metrics=[Metric("ingest", i * 0.5, ts, i) for i in range(start, min(n, start + batch))])
    t1 = time.perf_counter()
    count = len(client.get_metric_history(run_id, "ingest"))
    t2 = time.perf_counter()
    client.set_terminated(run_id)
    return {"n": n, "count": count, "total_s": t2 - t0, "points_per_s": n / (t2 - t0),
            "log_phase_s": t1 - t0, "read_phase_s": t2 - t1, "run_id": run_id}


def cmd_read(a: dict[str, Any]) -> dict[str, Any]:
    """Figure 3: ``get_metric_history`` of a stored series in this fresh process."""
    t0 = time.perf_counter()
    client = MlflowClient()
    client.get_run(a["run_id"])  # opens the store
    open_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    count = len(client.get_metric_history(a["run_id"], a["name"]))
    first_s = time.perf_counter() - t0
    warm = []
    for _ in range(int(a.get("warm_reps", 1))):
        t0 = time.perf_counter()
        assert len(MlflowClient().get_metric_history(a["run_id"], a["name"])) == count
        warm.append(time.perf_counter() - t0)
    return {"open_s": open_s, "first_read_s": first_s, "warm_read_s": warm, "count": count}


def cmd_concurrent_worker(a: dict[str, Any]) -> dict[str, Any]:
    """Figure 5: one of several processes logging into one store at once (log_batch of 1,000)."""
    n, batch = int(a["n"]), int(a.get("batch", 1000))
    started = time.time()
    client = MlflowClient()
    run_id = client.create_run(EXPERIMENT_ID).info.run_id
    ts = int(time.time() * 1000)
    t_first = time.time()
    errors: list[str] = []
    for start in range(0, n, batch):
        try:
            client.log_batch(run_id, metrics=[Metric("points", i * 0.5, ts, i) for i in range(start, min(n, start + batch))])
        except Exception as exc:  # e.g. "database is locked": recorded, the worker goes on
            errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
    t_flushed = time.time()
    client.set_terminated(run_id)
    return {"run_id": run_id, "started": started, "first_log": t_first, "flushed": t_flushed,
            "ended": time.time(), "errors": errors}


def cmd_count(a: dict[str, Any]) -> dict[str, Any]:
    client = MlflowClient()
    counts, statuses = {}, {}
    for rid in a["run_ids"]:
        counts[rid] = len(client.get_metric_history(rid, a["name"]))
        statuses[rid] = client.get_run(rid).info.status
    return {"counts": counts, "statuses": statuses, "total": sum(counts.values())}


COMMANDS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "setup": cmd_setup,
    "log-loop": cmd_log_loop,
    "ingest": cmd_ingest,
    "read": cmd_read,
    "concurrent-worker": cmd_concurrent_worker,
    "count": cmd_count,
}


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    result = COMMANDS[argv[0]](json.loads(argv[1]))
    result["pid"] = os.getpid()
    sys.stdout.write("@@RESULT@@ " + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
