"""runlab's side of bench_tracking.py: each command runs in a fresh process of the runlab venv.

    python benchmarks/_runlab_side.py COMMAND '{"json": "arguments"}' [--profile FILE.prof]

Prints one line ``@@RESULT@@ {json}`` with the figures. ``RUNLAB_HOME`` must point to a
scratch folder (bench_tracking.py sets it to a temp folder). ``--profile`` runs the command
under cProfile (main thread only: the flusher thread is not in it), writes the stats to FILE
and prints the top entries by cumulative time to stderr.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import runlab


def _open_ws(path: str) -> Any:
    return runlab.Workspace.from_path(path)


def _logger_health(run: Any) -> dict[str, Any]:
    lg = getattr(run, "_logger_obj", None)  # private, read for the report only
    if lg is None:
        return {}
    return {k: getattr(lg, k, None) for k in ("failures", "points_written", "points_journaled")}


# -- commands --------------------------------------------------------------------------------


def cmd_setup(a: dict[str, Any]) -> dict[str, Any]:
    """Create the workspace; optionally create runs for the import probe (status Running)."""
    ws = runlab.Workspace.create("bench", path=Path(a["ws"]))
    runlab.Experiment(ws, "bench")
    run_ids = []
    if a.get("submitted_runs"):
        from runlab.core.status import RunStatus, RunType
        from runlab.tracking.run import new_run_id

        for _ in range(int(a["submitted_runs"])):
            rid = new_run_id("bench")
            ws.folder.store.create_run(rid, "bench", run_type=RunType.SUBMITTED, status=RunStatus.RUNNING)
            run_ids.append(rid)
    return {"ws": str(ws.path), "run_ids": run_ids, "runlab_version": runlab.__version__}


def cmd_log_loop(a: dict[str, Any]) -> dict[str, Any]:
    """Figure 1: ``run.log(name, float)`` in a tight loop; per-call time of each repetition."""
    reps, n = int(a["reps"]), int(a["n"])
    run = runlab.Experiment(_open_ws(a["ws"]), "bench").start_logging()
    run.log("loss", 0.5)  # first call creates the queue and starts the flusher: not timed
    run.flush()
    empty = []
    for _ in range(3):
        t0 = time.perf_counter_ns()
        for _i in range(n):
            pass
        empty.append((time.perf_counter_ns() - t0) / n)
    per_call = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        for _i in range(n):
            run.log("loss", 0.5)
        per_call.append((time.perf_counter_ns() - t0) / n)
    t0 = time.perf_counter()
    run.flush()
    flush_s = time.perf_counter() - t0
    count = len(run.get_metric_history("loss"))
    health = _logger_health(run)
    run.complete()
    return {
        "per_call_ns": per_call,
        "median_ns": statistics.median(per_call),
        "empty_loop_ns": min(empty),
        "final_flush_s": flush_s,
        "points_stored": count,
        "points_expected": reps * n + 1,
        "logger": health,
    }


def cmd_ingest(a: dict[str, Any]) -> dict[str, Any]:
    """Figure 2: from the first ``log()`` until a read returns every point."""
    n = int(a["n"])
    run = runlab.Experiment(_open_ws(a["ws"]), "bench").start_logging()
    t0 = time.perf_counter()
    for i in range(n):
        run.log("ingest", i * 0.5)
    t1 = time.perf_counter()
    run.flush()
    t2 = time.perf_counter()
    count = len(run.get_metric_history("ingest"))
    t3 = time.perf_counter()
    health = _logger_health(run)
    run.complete()
    total = t3 - t0
    return {
        "n": n,
        "count": count,
        "total_s": total,
        "points_per_s": n / total,
        "log_phase_s": t1 - t0,
        "flush_phase_s": t2 - t1,
        "read_phase_s": t3 - t2,
        "run_id": run.id,
        "logger": health,
    }


def cmd_read(a: dict[str, Any]) -> dict[str, Any]:
    """Figure 3: read a stored series in this fresh process: the first read, then warm reads,
    each through a fresh Run handle."""
    t0 = time.perf_counter()
    ws = _open_ws(a["ws"])
    run = ws.get_run(a["run_id"])  # opens the store
    open_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    h = run.get_metric_history(a["name"])
    first_s = time.perf_counter() - t0
    count = len(h)
    warm = []
    for _ in range(int(a.get("warm_reps", 3))):
        fresh = ws.get_run(a["run_id"])
        t0 = time.perf_counter()
        h = fresh.get_metric_history(a["name"])
        warm.append(time.perf_counter() - t0)
        assert len(h) == count
    return {"open_s": open_s, "first_read_s": first_s, "warm_read_s": warm, "count": count}


def cmd_concurrent_worker(a: dict[str, Any]) -> dict[str, Any]:
    """Figure 5: one of several processes logging into one workspace at once."""
    n = int(a["n"])
    started = time.time()
    run = runlab.Experiment(_open_ws(a["ws"]), "bench").start_logging()
    t_first = time.time()
    for i in range(n):
        run.log("points", i * 0.5)
    flushed = run.flush()
    t_flushed = time.time()
    health = _logger_health(run)
    run.complete()
    return {"run_id": run.id, "started": started, "first_log": t_first, "flushed": t_flushed,
            "flush_ok": flushed, "ended": time.time(), "logger": health}


def cmd_count(a: dict[str, Any]) -> dict[str, Any]:
    ws = _open_ws(a["ws"])
    counts, statuses = {}, {}
    for rid in a["run_ids"]:
        run = ws.get_run(rid)
        counts[rid] = len(run.get_metric_history(a["name"]))
        statuses[rid] = run.get_status()
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
        print("commands: " + ", ".join(COMMANDS), file=sys.stderr)
        return 2
    command, args = COMMANDS[argv[0]], json.loads(argv[1])
    profile = argv[argv.index("--profile") + 1] if "--profile" in argv else None
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        result = prof.runcall(command, args)
        prof.dump_stats(profile)
        pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
    else:
        result = command(args)
    result["pid"] = os.getpid()
    sys.stdout.write("@@RESULT@@ " + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
