"""Run the tutorial's own scripts end to end on the embedded default: parts 1 to 4 of the series.

    python examples/tutorial/run_tutorial.py

(``runlab quickstart`` does the same in a folder of its own, with a progress line per step.)

Each step is the tutorial's own script (01 to 06), run in this folder as a user would; before
part 4, ``make_cifar10.py`` writes a small CIFAR-10 in its real format into ./data when there is
none (put the real ``cifar-10-batches-py`` there to train on it). At the end it prints the runs,
the loss curves' points and where the files are.
"""

import os
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STEPS = ["01-create-workspace.py", "02-create-compute.py", "03-run-hello.py", "04-run-pytorch.py",
         "make_cifar10.py", "05-upload-data.py", "06-run-pytorch-data.py"]


def main() -> int:
    for step in STEPS:
        if step == "make_cifar10.py" and (HERE / "data" / "cifar-10-batches-py").is_dir():
            continue  # the user's own (or the real) CIFAR-10
        print(f"\n=== python {step}", flush=True)
        done = subprocess.run([sys.executable, step], cwd=HERE)
        if done.returncode != 0:
            print(f"step {step} failed with exit code {done.returncode}", file=sys.stderr)
            return done.returncode

    from runlab import Experiment, Workspace

    ws = Workspace.from_config(HERE)
    ok = True
    for name in ("day1-experiment-train", "day1-experiment-data"):
        run = next(Experiment(ws, name).get_runs())
        loss = run.get_metrics()["loss"]
        print(f"\n=== {name}: run {run.id} is {run.get_status()}; it logged {len(loss)} loss values, "
              f"from {loss[0]:.3f} to {loss[-1]:.3f}")
        ok = ok and run.get_status() == "Completed"
    print(f"workspace: {ws.path}")
    rel = os.path.relpath(HERE)  # the commands work from where the user stands: config.json is in HERE/.azureml
    cd = "" if rel == "." else f"cd {shlex.quote(rel)} && "
    print(f"see the runs: {cd}runlab runs list   |   the loss: {cd}runlab metrics {run.id} loss   |   "
          f"{cd}runlab studio")
    print("cpu-cluster's agent stops after 2400 idle seconds, as 02-create-compute.py asks "
          f"({cd}runlab compute show cpu-cluster)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
