"""Run the tutorial end to end on the embedded default: parts 1 to 3 of the series.

    python examples/tutorial/run_tutorial.py

Each step is the tutorial's own script (01 to 04), run in this folder as a user would. At the
end it prints the runs, the loss curve's points and where the files are.
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STEPS = ["01-create-workspace.py", "02-create-compute.py", "03-run-hello.py", "04-run-pytorch.py"]


def main() -> int:
    for step in STEPS:
        print(f"\n=== python {step}", flush=True)
        done = subprocess.run([sys.executable, step], cwd=HERE)
        if done.returncode != 0:
            print(f"step {step} failed with exit code {done.returncode}", file=sys.stderr)
            return done.returncode

    from runlab import Experiment, Workspace

    ws = Workspace.from_config(HERE)
    run = next(Experiment(ws, "day1-experiment-train").get_runs())
    loss = run.get_metrics()["loss"]
    print(f"\n=== done: run {run.id} is {run.get_status()}; it logged {len(loss)} loss values, "
          f"from {loss[0]:.3f} to {loss[-1]:.3f}")
    print(f"workspace: {ws.path}")
    print(f"see the runs: runlab runs list   |   the loss: runlab metrics {run.id} loss   |   runlab studio")
    print("cpu-cluster's agent stops after 2400 idle seconds, as 02-create-compute.py asks "
          "(runlab compute show cpu-cluster)")
    return 0 if run.get_status() == "Completed" else 1


if __name__ == "__main__":
    sys.exit(main())
