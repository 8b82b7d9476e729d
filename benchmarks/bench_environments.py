"""Environment build timings: cold builds (numpy; torch from the local CPU wheel) and the cache-hit decision.

Run from the repository root:

    PYTHONPATH=src .venv/bin/python benchmarks/bench_environments.py

"Cold" means a new runlab cache root (the environment is built from scratch). Each build is timed
twice: with uv's shared cache as it is (the usual case on a machine that has built before) and with
an empty uv cache (first build ever on the machine). Targets: numpy <= 10 s, torch <= 20 s,
cache-hit decision <= 50 ms. Nothing here may download CUDA torch: the torch build checks that
the installed torch is the +cpu wheel and lists what uv downloaded.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from runlab.execution.environments import (
    BuiltEnvironment,
    EnvironmentDefinition,
    build_environment,
    environment_status,
)


def build(definition: EnvironmentDefinition, uv_cache: Path | None, scratch: Path) -> tuple[BuiltEnvironment, float]:
    root = Path(tempfile.mkdtemp(prefix="cache-", dir=scratch))
    started = time.perf_counter()
    built = build_environment(definition, root, uv_cache_dir=uv_cache)
    return built, time.perf_counter() - started


def downloads(built: BuiltEnvironment) -> list[str]:
    assert built.log_path is not None
    return re.findall(r"^Downloading (.*)$", built.log_path.read_text(encoding="utf-8"), re.MULTILINE)


def installed_version(built: BuiltEnvironment, package: str) -> str:
    import uv

    out = subprocess.run([uv.find_uv_bin(), "pip", "list", "--python", str(built.python_path)],
                         capture_output=True, text=True, check=True).stdout
    match = re.search(rf"^{package}\s+(\S+)", out, re.MULTILINE)
    return match.group(1) if match else "(not installed)"


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="runlab-bench-") as scratch:
        run(Path(scratch))


def run(scratch: Path) -> None:
    print(f"python {sys.version.split()[0]}, runlab from {Path(__file__).resolve().parents[1] / 'src'}")
    numpy_env = EnvironmentDefinition("bench-numpy", pip_requirements=("numpy",))
    torch_env = EnvironmentDefinition("bench-torch", pip_requirements=("torch==2.13.0",))

    for label, definition, target in (("numpy", numpy_env, 10.0), ("torch==2.13.0", torch_env, 20.0)):
        with tempfile.TemporaryDirectory(prefix="runlab-bench-uv-") as empty_uv_cache:
            for cache_label, uv_cache in (("shared uv cache", None), ("empty uv cache", Path(empty_uv_cache))):
                built, seconds = build(definition, uv_cache, scratch)
                verdict = "ok" if seconds <= target else "OVER TARGET"
                print(f"cold build {label:14s} {cache_label:16s} {seconds:6.2f} s  (target <= {target:.0f} s: {verdict})")
                if label.startswith("torch"):
                    print(f"    torch installed: {installed_version(built, 'torch')}; "
                          f"uv downloaded: {', '.join(downloads(built)) or 'nothing'}")

    root = Path(tempfile.mkdtemp(prefix="cache-", dir=scratch))
    build_environment(numpy_env, root)
    first = time.perf_counter()
    environment_status(EnvironmentDefinition("bench-numpy-2", pip_requirements=("numpy",)), root)
    first_s = time.perf_counter() - first
    samples = []
    for _ in range(200):
        started = time.perf_counter()
        hit = build_environment(numpy_env, root)
        samples.append(time.perf_counter() - started)
        assert hit.cached
    print(f"cache-hit decision: build_environment median {statistics.median(samples) * 1000:.2f} ms, "
          f"max {max(samples) * 1000:.2f} ms over {len(samples)} calls; "
          f"environment_status first call {first_s * 1000:.2f} ms (target <= 50 ms)")
    fresh = subprocess.run(
        [sys.executable, "-c",
         "import time; t = time.perf_counter();"
         "from runlab.execution.environments import EnvironmentDefinition as D, environment_status as s;"
         "t1 = time.perf_counter();"
         f"assert s(D('x', pip_requirements=('numpy',)), {str(root)!r}).cached;"
         "print(f'{(t1 - t) * 1000:.1f} {(time.perf_counter() - t1) * 1000:.1f}')"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    print(f"cache-hit decision in a fresh process: import {fresh[0]} ms, first environment_status {fresh[1]} ms")


if __name__ == "__main__":
    main()
