"""Submission benchmark: latency from submit() to the script's first output line, and throughput.

    python benchmarks/bench_submit.py            # 10 latency samples, 100 queued runs
    python benchmarks/bench_submit.py --quick    # 5 samples, 30 runs

Figures (issue 3's targets):
- submit() -> first output line in the driver log, environment cached: target <= 1 s
  (agent already running, and agent started by the submit);
- 100 queued hello-world runs on a target with max_nodes=2: runs per minute.

The environment is a real uv-built environment with no extra packages (built once, before the
timings, so every timed run finds it in the cache). Everything runs in a temp RUNLAB_HOME; the
agents started are stopped by their own pid at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples and runs")
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "submit.json"))
    args = parser.parse_args()
    samples, queued = (5, 30) if args.quick else (10, 100)

    home = Path(tempfile.mkdtemp(prefix="runlab-bench-submit-"))
    os.environ["RUNLAB_HOME"] = str(home)
    import runlab
    from runlab.core.layout import DRIVER_LOG
    from runlab.execution.targets import read_agent_state, wait_for_agent_exit

    ws = runlab.Workspace.create("bench-submit")
    src = home / "src"
    src.mkdir()
    (src / "hello.py").write_text('print("Hello world!", flush=True)\n')
    env = runlab.Environment("bench-env")
    print("building the environment once (not timed) ...", flush=True)
    env.build_local(ws, show_output=False)
    cluster = runlab.ComputeTarget.create(
        ws, "cpu-cluster",
        runlab.AmlCompute.provisioning_configuration(max_nodes=2, idle_seconds_before_scaledown=600),
    )
    experiment = runlab.Experiment(ws, "bench")

    def first_output_latency() -> float:
        config = runlab.ScriptRunConfig(str(src), "hello.py", compute_target=cluster, environment=env)
        start = time.perf_counter()
        run = experiment.submit(config)
        log = ws.folder.artifacts.local_path(run.id, DRIVER_LOG)
        while True:
            if log.exists() and b"Hello world!" in log.read_bytes():
                elapsed = time.perf_counter() - start
                break
            if time.perf_counter() - start > 60:
                raise RuntimeError(f"no output from {run.id} in 60 s: {run.get_status()}")
            time.sleep(0.002)
        run.wait_for_completion()
        return elapsed

    def stop_agent() -> None:
        state = read_agent_state(ws.folder, "cpu-cluster")
        if state:
            os.kill(int(state["pid"]), signal.SIGTERM)
            wait_for_agent_exit(ws.folder, "cpu-cluster", 30)

    results: dict[str, object] = {}
    try:
        first_output_latency()  # warm-up: file system caches, uv's cache, the agent
        print(f"submit -> first output, agent running: {samples} runs ...", flush=True)
        warm = [first_output_latency() for _ in range(samples)]
        print(f"submit -> first output, agent started by the submit: {samples} runs ...", flush=True)
        cold = []
        for _ in range(samples):
            stop_agent()
            cold.append(first_output_latency())
        print(f"{queued} queued hello-world runs on max_nodes=2 ...", flush=True)
        start = time.perf_counter()
        runs = [experiment.submit(runlab.ScriptRunConfig(str(src), "hello.py", compute_target=cluster, environment=env))
                for _ in range(queued)]
        submitted = time.perf_counter() - start
        for run in runs:
            run.wait_for_completion()
        elapsed = time.perf_counter() - start
        completed = sum(run.get_status() == "Completed" for run in runs)
        results = {
            "first_output_agent_running_s": {"median": statistics.median(warm), "max": max(warm), "samples": warm},
            "first_output_agent_started_s": {"median": statistics.median(cold), "max": max(cold), "samples": cold},
            "queued_runs": queued, "completed": completed, "submit_all_s": submitted, "elapsed_s": elapsed,
            "runs_per_minute": completed / elapsed * 60,
        }
    finally:
        stop_agent()

    w, c = results["first_output_agent_running_s"], results["first_output_agent_started_s"]
    assert isinstance(w, dict) and isinstance(c, dict)
    rows = [
        ("submit -> first output, env cached, agent running (median / max)", "<= 1 s",
         f"{w['median']:.3f} s / {w['max']:.3f} s", "PASS" if w["median"] <= 1 else "MISS"),
        ("submit -> first output, env cached, agent started by submit (median / max)", "<= 1 s",
         f"{c['median']:.3f} s / {c['max']:.3f} s", "PASS" if c["median"] <= 1 else "MISS"),
        (f"{queued} queued hello-world runs, max_nodes=2: runs per minute", "(printed)",
         f"{results['runs_per_minute']:.0f} runs/min ({results['completed']}/{queued} Completed in "
         f"{results['elapsed_s']:.1f} s; all submitted in {results['submit_all_s']:.1f} s)", "-"),
    ]
    print(f"\nrunlab {runlab.__version__}; Python {sys.version.split()[0]}; {os.cpu_count()} CPUs\n")
    width = max(len(r[0]) for r in rows)
    for name, target, value, verdict in rows:
        print(f"{name:<{width}}  {target:<10}  {value:<60}  {verdict}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nfigures written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
