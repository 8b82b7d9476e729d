"""Model registration: ``run.register_model`` of a large folder of a run's outputs, next to ``cp -r``.

Run from the repository root:

    . .venv/bin/activate
    python benchmarks/bench_models.py                  # a 1 GB folder of 8 files
    python benchmarks/bench_models.py --mb 200 --files 4 --repeat 3

A workspace is made in a temp folder (``--dir``, default the system's), with one run whose
``outputs/model/`` holds ``--files`` files of random bytes, ``--mb`` MB in all, written straight into the
run's stored files (as the agent leaves a submitted run's outputs). When the disk has less than three
times that free, the size is scaled down and the benchmark says so. The files are read once first, so
every copy starts from the page cache; before each timed step the disk is synced (not timed), so that one
step's writeback does not slow the next.

Each round, interleaved: ``cp -r`` of the folder to a fresh target; ``run.register_model('net',
'outputs/model')`` into an empty model file store (the first registration: every byte copied and hashed);
the same registration again (unchanged files: the target is under 0.5 s and no byte stored); then both
versions are deleted, which empties the store for the next round. Printed: the best and the median of
``--repeat`` rounds, the ratio of the first registration to ``cp -r`` (target 1.5x), and what the second
stored. Figures go to ``benchmarks/out/models.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 1.5
TARGET_SECOND_S = 0.5
OUT = Path(__file__).resolve().parent / "out" / "models.json"
CHUNK = 16 << 20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mb", type=int, default=1000, help="size of the model folder in MB (default 1000)")
    parser.add_argument("--files", type=int, default=8, help="files in the folder (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--dir", default=None, help="where the temp workspace goes (default: the system's temp)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="runlab-bench-models-", dir=args.dir))
    os.environ["RUNLAB_HOME"] = str(root / "home")
    size = args.mb * 1_000_000
    free = shutil.disk_usage(root).free
    if free < 3 * size + (200 << 20):
        scaled = max(1, int((free - (200 << 20)) / 3 / 1_000_000))
        print(f"only {free / 1e9:.1f} GB free in {root}: the folder is scaled down to {scaled} MB (asked {args.mb})")
        size = scaled * 1_000_000
    try:
        figures = run_benchmark(root, size, max(1, args.files), max(1, args.repeat))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures written to {OUT}")
    ok = figures["ratio_best"] <= TARGET_RATIO and figures["second_best_s"] < TARGET_SECOND_S \
        and figures["second_new_bytes"] == 0
    return 0 if ok else 1


def run_benchmark(root: Path, size: int, file_count: int, repeat: int) -> dict[str, object]:
    import runlab
    from runlab import Model
    from runlab.store.models import model_blobs

    ws = runlab.Workspace.create("bench-models", path=root / "ws")
    run = runlab.Experiment(ws, "bench").start_logging()
    per_file = size // file_count
    print(f"writing {file_count} files of {per_file / 1e6:.1f} MB into the run's outputs/model/ ...", flush=True)
    for i in range(file_count):
        path = ws.folder.artifacts.local_path(run.id, f"outputs/model/part-{i:03d}.bin")
        with open(path, "wb") as f:
            left = per_file
            while left:
                block = os.urandom(min(CHUNK, left))
                f.write(block)
                left -= len(block)
    source = path.parent
    total = sum(p.stat().st_size for p in source.iterdir())
    subprocess.run(["cat", *map(str, sorted(source.iterdir()))], stdout=subprocess.DEVNULL, check=True)  # warm

    blobs = model_blobs(ws.folder)
    cp_times: list[float] = []
    first_times: list[float] = []
    second_times: list[float] = []
    second_new: list[int] = []
    for round_no in range(repeat):
        target = root / "cp-target"
        os.sync()
        started = time.perf_counter()
        subprocess.run(["cp", "-r", str(source), str(target)], check=True)
        cp_times.append(time.perf_counter() - started)
        shutil.rmtree(target)

        os.sync()
        started = time.perf_counter()
        first = run.register_model("net", "outputs/model")
        first_times.append(time.perf_counter() - started)
        stored_files, stored_bytes = blobs.count()
        assert stored_bytes == total, (stored_bytes, total)

        os.sync()
        started = time.perf_counter()
        second = run.register_model("net", "outputs/model")
        second_times.append(time.perf_counter() - started)
        second_new.append(blobs.count()[1] - stored_bytes)
        assert second.get_files() == [f for f in second.get_files()] and len(second.get_files()) == file_count
        print(f"round {round_no + 1}: cp -r {cp_times[-1]:.3f} s, register {first_times[-1]:.3f} s "
              f"(version {first.version}), again {second_times[-1] * 1000:.1f} ms (version {second.version}, "
              f"{second_new[-1]:,} new bytes)", flush=True)
        Model(ws, "net", version=second.version).delete()
        Model(ws, "net", version=first.version).delete()
        assert blobs.count() == (0, 0)
    run.complete()

    figures: dict[str, object] = {
        "bytes": total, "files": file_count, "rounds": repeat,
        "cp_best_s": min(cp_times), "cp_median_s": statistics.median(cp_times),
        "first_best_s": min(first_times), "first_median_s": statistics.median(first_times),
        "second_best_s": min(second_times), "second_median_s": statistics.median(second_times),
        "second_new_bytes": max(second_new),
    }
    figures["ratio_best"] = figures["first_best_s"] / figures["cp_best_s"]  # type: ignore[operator]
    figures["ratio_median"] = figures["first_median_s"] / figures["cp_median_s"]  # type: ignore[operator]
    mb = total / 1e6
    print()
    print(f"model folder: {file_count} files, {mb:,.0f} MB ({os.cpu_count()} CPUs), best / median of {repeat}")
    print(f"  cp -r                                {figures['cp_best_s']:.3f} s / {figures['cp_median_s']:.3f} s "
          f"({mb / figures['cp_best_s']:,.0f} MB/s)")  # type: ignore[operator]
    print(f"  register_model (first: copy + sha256) {figures['first_best_s']:.3f} s / {figures['first_median_s']:.3f} s "
          f"({mb / figures['first_best_s']:,.0f} MB/s), {figures['ratio_best']:.2f}x cp -r "  # type: ignore[operator]
          f"(median {figures['ratio_median']:.2f}x; target {TARGET_RATIO}x)")
    print(f"  register_model again (unchanged)      {figures['second_best_s'] * 1000:.1f} ms / "  # type: ignore[operator]
          f"{figures['second_median_s'] * 1000:.1f} ms, {figures['second_new_bytes']:,} new bytes stored "  # type: ignore[operator]
          f"(target under {TARGET_SECOND_S} s, nothing stored)")
    return figures


if __name__ == "__main__":
    sys.exit(main())
