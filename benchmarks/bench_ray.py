"""Ray target vs bare Ray: submit-to-first-output-line, and the throughput of N queued runs.

    python benchmarks/bench_ray.py [--repeat 5] [--runs 20]

Starts a Ray head of its own on 127.0.0.1 (tests/ray/ray_support.py: free ports, its own temp dir,
stopped by its pids), then, with the same trivial script (prints one line):

1. bare Ray: ``JobSubmissionClient.submit_job(entrypoint='python hello.py', runtime_env={'working_dir': ...})``,
   time from the call to the line in ``get_job_logs`` (polled every 20 ms);
2. runlab: ``experiment.submit(ScriptRunConfig(..., compute_target='ray-cluster'))``, the target's agent
   already running (a first run warmed it up), time from the call to the line in ``70_driver_log.txt``;
3. N jobs submitted at once, then N runs submitted at once, each asking 0.5 CPU (the cluster has 2),
   the runlab target's max_nodes = N so that only Ray schedules: runs per second until all ended.

Prints the figures side by side, each with the machine's load average (1, 5, 15 min) when it was taken
(the figures move with what else runs on the machine); asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "ray"))

from ray_support import new_cluster  # noqa: E402

SCRIPT = 'print("first line from the job", flush=True)\n'
LINE = "first line from the job"


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _bare_first_line(client: object, source: Path) -> float:
    started = time.perf_counter()
    job = client.submit_job(entrypoint="python hello.py", runtime_env={"working_dir": str(source)},  # type: ignore[attr-defined]
                            entrypoint_num_cpus=0.5)
    while LINE not in client.get_job_logs(job):  # type: ignore[attr-defined]
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    while not client.get_job_status(job).is_terminal():  # type: ignore[attr-defined]
        time.sleep(0.05)
    return elapsed


def _driver_log(run: object) -> str:
    try:
        with run.open_file("azureml-logs/70_driver_log.txt") as f:  # type: ignore[attr-defined]
            return f.read().decode(errors="replace")  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 (not there yet)
        return ""


def _runlab_first_line(experiment: object, config: object) -> float:
    started = time.perf_counter()
    run = experiment.submit(config)  # type: ignore[attr-defined]
    while LINE not in _driver_log(run):
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    run.wait_for_completion()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20, help="N of the throughput figure (the issue: 100)")
    args = parser.parse_args()

    from ray.job_submission import JobSubmissionClient

    # ray sets this logger's level itself: its "Package ... already exists, skipping upload" per submit
    logging.getLogger("ray.dashboard.modules.dashboard_sdk").setLevel(logging.WARNING)

    import runlab
    from runlab import ComputeTarget, Experiment, RayCompute, ScriptRunConfig
    from runlab.execution.targets import stop_agent

    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    os.environ["RUNLAB_HOME"] = str(work / "home")  # its own registry and caches: nothing left in the user's
    source = work / "src"
    source.mkdir()
    (source / "hello.py").write_text(SCRIPT)
    print(f"starting a Ray head on 127.0.0.1 (2 CPUs; {os.cpu_count()} CPUs here, {_load()})...", flush=True)
    cluster = new_cluster(num_cpus=2)
    ws = None
    try:
        cluster.warm()
        client = JobSubmissionClient(cluster.address)
        ws = runlab.Workspace.create("bench-ray", path=work / "ws")
        ComputeTarget.attach(ws, "ray-cluster", RayCompute.attach_configuration(
            address=cluster.address, num_cpus=0.5, max_nodes=max(4, args.runs)))
        experiment = Experiment(ws, "bench-ray")
        config = ScriptRunConfig(source_directory=str(source), script="hello.py", compute_target="ray-cluster")
        experiment.submit(config).wait_for_completion()  # the agent is up, the package uploaded once
        _bare_first_line(client, source)  # and the same for bare Ray

        bare = [_bare_first_line(client, source) for _ in range(args.repeat)]
        mine = [_runlab_first_line(experiment, config) for _ in range(args.repeat)]
        print(f"\nsubmit -> first output line, median of {args.repeat} (min-max), {_load()}:")
        print(f"  bare ray job submit : {statistics.median(bare):6.2f} s ({min(bare):.2f}-{max(bare):.2f})")
        print(f"  runlab Ray target   : {statistics.median(mine):6.2f} s ({min(mine):.2f}-{max(mine):.2f})"
              f"   ratio {statistics.median(mine) / statistics.median(bare):.2f}x")

        started = time.perf_counter()
        jobs = [client.submit_job(entrypoint="python hello.py", runtime_env={"working_dir": str(source)},
                                  entrypoint_num_cpus=0.5) for _ in range(args.runs)]
        while not all(client.get_job_status(j).is_terminal() for j in jobs):
            time.sleep(0.1)
        bare_s = time.perf_counter() - started
        started = time.perf_counter()
        runs = [experiment.submit(config) for _ in range(args.runs)]
        for run in runs:
            run.wait_for_completion()
        mine_s = time.perf_counter() - started
        failed = sum(1 for r in runs if r.get_status() != "Completed")
        print(f"\n{args.runs} runs submitted at once, until all ended, {_load()}:")
        print(f"  bare ray job submit : {bare_s:6.1f} s  {args.runs / bare_s:5.2f} runs/s")
        print(f"  runlab Ray target   : {mine_s:6.1f} s  {args.runs / mine_s:5.2f} runs/s"
              f"   ratio {mine_s / bare_s:.2f}x" + (f"  ({failed} not Completed)" if failed else ""))
    finally:
        if ws is not None:
            stop_agent(ws.folder, "ray-cluster")
        cluster.stop()
        left = cluster.processes()
        cluster.remove()
        shutil.rmtree(work, ignore_errors=True)
        if left:
            print(f"warning: Ray processes left: {[p.pid for p in left]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
