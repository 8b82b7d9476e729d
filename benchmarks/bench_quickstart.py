"""Wall time of ``runlab quickstart``, cold and warm, with the time of each step.

Run from the repository root:

    .venv/bin/python benchmarks/bench_quickstart.py [--images 2000] [--epochs 2]

"Cold": a new ``RUNLAB_HOME`` (no workspace, no built environment) and an empty uv cache
(``UV_CACHE_DIR``), so the PyTorch environment is built from the wheels as on a first install.
"Warm": the same command again in the same folder: the environment and the uploaded data are
reused, nothing is built or uploaded. The defaults are those of ``runlab quickstart``; smaller
``--images``/``--epochs`` shorten the training steps only (the code path is the same).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEP = re.compile(r"^✓ (?P<title>.+?)\s+(?P<seconds>\d+\.\d) s\s+(?P<note>.*)$")


def quickstart(cwd: Path, env: dict[str, str], images: int, epochs: int) -> tuple[float, dict[str, tuple[float, str]]]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "runlab", "quickstart", "--images", str(images), "--epochs",
                           str(epochs)], cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"quickstart failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    steps = {}
    for line in done.stdout.splitlines():
        match = STEP.match(line.strip())
        if match:
            steps[match["title"].strip()] = (float(match["seconds"]), match["note"].strip())
    return wall, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-quickstart-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "RUNLAB_HOME": str(root / "home"), "UV_CACHE_DIR": str(root / "uv-cache")}
        cold_wall, cold = quickstart(root, env, args.images, args.epochs)
        warm_wall, warm = quickstart(root, env, args.images, args.epochs)
    print(f"runlab quickstart --images {args.images} --epochs {args.epochs} ({os.cpu_count()} cores)")
    print(f"{'step':<44} {'cold s':>8} {'warm s':>8}   warm run")
    for title, (seconds, _note) in cold.items():
        again, note = warm.get(title, (float("nan"), ""))
        print(f"{title:<44} {seconds:8.1f} {again:8.1f}   {note[:70]}")
    print(f"{'wall time of the command':<44} {cold_wall:8.1f} {warm_wall:8.1f}")


if __name__ == "__main__":
    main()
