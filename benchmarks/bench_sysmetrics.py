"""Does sampling system metrics slow training? The same training loop with system metrics on and off.

    python benchmarks/bench_sysmetrics.py                  # 6 rounds, 1 s interval (5x the default rate)
    python benchmarks/bench_sysmetrics.py --rounds 10 --interval 5 --steps 400

Two ways a run is sampled, each measured with the same script in interleaved runs (on, off, off,
on, ...), each run a fresh process that times its own training loop (``time.perf_counter`` around
the loop only, so start-up and environment do not count):

- submitted: the agent samples the script from outside (two compute targets: one agent started
  with ``RUNLAB_SYSTEM_METRICS_INTERVAL=<interval>``, one with 0);
- interactive: ``start_logging(system_metrics=<interval>)``, a sampling thread inside the training
  process (it shares the GIL), against ``start_logging()``.

For the loop's wall time and its CPU time (``time.process_time``: what the training process itself
spent, less sensitive to other load on the machine) it prints the median of each side and the mean
of the paired differences (on - off) / off with its 95 % interval (2 standard errors). Target: under
1 %: PASS when the whole interval is within +-1 %, MISS when it is wholly outside, otherwise
"noise" (the machine's noise is larger than the target: rerun with more --rounds on a quiet
machine). It also prints what one sample costs the sampler, and the bound that puts on the
interactive way (its thread holds the GIL at most that long per interval). numpy runs
single-threaded (OMP_NUM_THREADS=1) so that the loop uses one core of this 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TRAIN = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from runlab import Run, Experiment, Workspace

    steps, mode = int(sys.argv[1]), sys.argv[2]
    if mode == "submitted":
        run = Run.get_context()
    else:
        interval = float(sys.argv[3])
        ws = Workspace.from_config(sys.argv[4])
        run = Experiment(ws, "bench-interactive").start_logging(system_metrics=interval if interval else False)
    rng = np.random.default_rng(0)
    w = rng.standard_normal((256, 256)) * 0.01
    x = rng.standard_normal((512, 256))
    start, cpu_start = time.perf_counter(), time.process_time()
    for step in range(steps):
        h = np.tanh(x @ w)                    # a forward pass
        grad = x.T @ (h * (1 - h * h)) / 512  # and a backward one
        w -= 0.01 * grad
        loss = float((h * h).mean())
        run.log("loss", loss)
        total = 0
        for i in range(3000):                 # Python-level work, as data loading and bookkeeping are
            total += i * i
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    run.log("loop_seconds", seconds)
    run.log("loop_cpu_seconds", cpu_seconds)
    run.flush()
    print(json.dumps({"loop_seconds": seconds, "loop_cpu_seconds": cpu_seconds}))
""")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8, help="pairs of runs (on + off) per way")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples when on")
    parser.add_argument("--steps", type=int, default=600, help="training steps per run (about 2.5 s here)")
    parser.add_argument("--only", choices=["submitted", "interactive"], help="measure one way only")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-sysmetrics-") as tmp:
        root = Path(tmp)
        os.environ["RUNLAB_HOME"] = str(root / "home")
        os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
        import runlab

        ws = runlab.Workspace.create("bench-ws", path=root / "ws")
        ws.write_config(str(root))
        src = root / "src"
        src.mkdir()
        (src / "train.py").write_text(TRAIN)
        print(f"system metrics on: a sample every {args.interval:g} s; {args.rounds} rounds; "
              f"{args.steps} steps per run", flush=True)
        cost_ms = _sample_cost_ms()
        print(f"one sample of a process tree costs the sampler {cost_ms:.2f} ms (median of 200): at most "
              f"{cost_ms / 10 / args.interval:.2f} % of the interval", flush=True)
        results = {}
        if args.only in (None, "submitted"):
            results["submitted (agent samples from outside)"] = _submitted(ws, src, args)
        if args.only in (None, "interactive"):
            results["interactive (thread in the training process)"] = _interactive(root, src, args)
        _report(results)
        _stop_agents(ws)
    return 0


def _sample_cost_ms() -> float:
    from runlab.tracking.sysmetrics import ProcessTree

    tree = ProcessTree(os.getpid())
    tree.start()
    costs = []
    for _ in range(200):
        t0 = time.perf_counter()
        tree.read()
        costs.append((time.perf_counter() - t0) * 1000)
    return statistics.median(costs)


def _submitted(ws: object, src: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    import runlab
    from runlab import AmlCompute, ComputeTarget, ScriptRunConfig

    experiment = runlab.Experiment(ws, "bench-submitted")  # type: ignore[arg-type]
    for name, interval in (("bench-on", args.interval), ("bench-off", 0.0)):
        # each target's agent reads the setting when it starts, at its first submit
        os.environ["RUNLAB_SYSTEM_METRICS_INTERVAL"] = str(interval)
        ComputeTarget.create(ws, name, AmlCompute.provisioning_configuration(  # type: ignore[arg-type]
            max_nodes=1, idle_seconds_before_scaledown=600))
        experiment.submit(ScriptRunConfig(str(src), "train.py", arguments=["5", "submitted"],
                                          compute_target=name)).wait_for_completion()  # warm-up
    os.environ.pop("RUNLAB_SYSTEM_METRICS_INTERVAL")
    out: dict[str, list[float]] = {"on": [], "off": [], "on_cpu": [], "off_cpu": [], "samples": []}
    for order in _orders(args.rounds):
        for side in order:
            run = experiment.submit(ScriptRunConfig(str(src), "train.py", arguments=[str(args.steps), "submitted"],
                                                    compute_target=f"bench-{side}"))
            run.wait_for_completion()
            metrics = run.get_metrics()
            out[side].append(float(metrics["loop_seconds"]))
            out[f"{side}_cpu"].append(float(metrics["loop_cpu_seconds"]))
            if side == "on":
                cpu = metrics.get("sys/cpu_percent", [])
                out["samples"].append(float(len(cpu) if isinstance(cpu, list) else 1))
        print(f"  submitted  round {len(out['on'])}: on {out['on'][-1]:.3f} s, off {out['off'][-1]:.3f} s",
              flush=True)
    return out


def _interactive(root: Path, src: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"on": [], "off": [], "on_cpu": [], "off_cpu": [], "samples": []}
    env = {**os.environ, "RUNLAB_SYSTEM_METRICS_INTERVAL": "5"}
    for order in _orders(args.rounds):
        for side in order:
            interval = args.interval if side == "on" else 0.0
            done = subprocess.run([sys.executable, str(src / "train.py"), str(args.steps), "interactive",
                                   str(interval), str(root)], capture_output=True, text=True, env=env, check=True)
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            out[side].append(figures["loop_seconds"])
            out[f"{side}_cpu"].append(figures["loop_cpu_seconds"])
        print(f"  interactive round {len(out['on'])}: on {out['on'][-1]:.3f} s, off {out['off'][-1]:.3f} s",
              flush=True)
    return out


def _orders(rounds: int) -> list[tuple[str, str]]:
    """on, off / off, on / ...: neither side always runs first."""
    return [("on", "off") if i % 2 == 0 else ("off", "on") for i in range(rounds)]


# Student's t for a two-sided 95 % interval, by degrees of freedom (2.0 beyond)
_T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23, 11: 2.20,
        12: 2.18, 13: 2.16, 14: 2.14, 15: 2.13, 16: 2.12, 17: 2.11, 18: 2.10, 19: 2.09, 20: 2.09}


def _report(results: dict[str, dict[str, list[float]]]) -> None:
    print()
    print(f"{'way':<46} {'time':<5} {'median on':>10} {'median off':>11} {'mean paired diff, 95 %':>30}  target <1%")
    for way, r in results.items():
        for label, on_key, off_key in (("wall", "on", "off"), ("cpu", "on_cpu", "off_cpu")):
            diffs = [(on - off) / off * 100 for on, off in zip(r[on_key], r[off_key])]
            mean = statistics.fmean(diffs)
            n = len(diffs)
            half = _T95.get(n - 1, 2.0) * statistics.stdev(diffs) / n ** 0.5 if n > 1 else float("inf")
            low, high = mean - half, mean + half
            verdict = "PASS" if -1 < low and high < 1 else "MISS" if low > 1 or high < -1 else "noise"
            print(f"{way if label == 'wall' else '':<46} {label:<5} {statistics.median(r[on_key]):>9.3f}s "
                  f"{statistics.median(r[off_key]):>10.3f}s {mean:>+9.2f}% [{low:+.2f}% .. {high:+.2f}%]{'':>4}  {verdict}")
        if r["samples"]:
            print(f"{'':<46} sys/ samples per run when on: {statistics.median(r['samples']):.0f}")


def _stop_agents(ws: object) -> None:
    import signal

    for state in (Path(ws.path) / "agents").glob("*.json"):  # type: ignore[attr-defined]
        try:
            os.kill(json.loads(state.read_text())["pid"], signal.SIGKILL)
        except (OSError, ValueError, KeyError):
            pass


if __name__ == "__main__":
    sys.exit(main())
