"""Dataset reads: ``TabularDataset.to_pandas_dataframe()`` of a large CSV, next to pandas and pyarrow.

Run from the repository root:

    . .venv/bin/activate
    python benchmarks/bench_datasets.py                 # a 1 GB CSV (about two minutes here)
    python benchmarks/bench_datasets.py --csv-mb 200    # a smaller one
    python benchmarks/bench_datasets.py --repeat 5

The CSV (an int id, two floats, an int, a short string, an ISO date; ~17 M rows for 1 GB) is written
once into a temp folder by pyarrow and also uploaded to a workspace's default datastore. When the
disk has less than three times the file's size free, the size is scaled down and the benchmark says
so. Each measurement is a fresh process reading the file (already in the page cache: every reader
sees the same warm file), with pandas, pyarrow and runlab imported before its clock starts, timed
from its first call to a DataFrame (or Table) in hand; the best of ``--repeat`` runs is printed
(the machine is shared: the median is printed too), with MB/s and the ratio to ``pyarrow.csv.read_csv``.

Readers: ``pandas.read_csv`` (its default C parser), ``pyarrow.csv.read_csv`` (a Table),
``pyarrow.csv.read_csv(...).to_pandas()``, and runlab's ``to_pandas_dataframe()`` of the file as a
local path and as a file on the default datastore. Target: runlab within 1.2x of
``pyarrow.csv.read_csv``. Writes every figure to ``benchmarks/out/datasets.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 1.2
ROWS_PER_CHUNK = 1_000_000
OUT = Path(__file__).resolve().parent / "out" / "datasets.json"

READERS = {
    "pandas.read_csv": "import pandas as pd\nstart = time.perf_counter()\nframe = pd.read_csv(PATH)\n",
    "pyarrow.csv.read_csv": "import pyarrow.csv as c\nstart = time.perf_counter()\nframe = c.read_csv(PATH)\n",
    "pyarrow read_csv + to_pandas": ("import pyarrow.csv as c\nstart = time.perf_counter()\n"
                                     "frame = c.read_csv(PATH).to_pandas()\n"),
    "runlab to_pandas_dataframe (local path)": (
        "from runlab import Dataset\nstart = time.perf_counter()\n"
        "frame = Dataset.Tabular.from_delimited_files(PATH).to_pandas_dataframe()\n"),
    "runlab to_pandas_dataframe (default datastore)": (
        "import runlab\nfrom runlab import Dataset\nws = runlab.Workspace.from_path(WS)\n"
        "start = time.perf_counter()\n"
        "frame = Dataset.Tabular.from_delimited_files((ws.get_default_datastore(), 'bench/big.csv'))"
        ".to_pandas_dataframe()\n"),
}


def write_csv(path: Path, megabytes: int) -> int:
    """A CSV of about ``megabytes`` MB, written by pyarrow in chunks; its row count."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(0)
    cities = np.array(["oslo", "rome", "lima", "pune", "kyiv", "cairo", "quito", "hanoi"])
    days = np.datetime64("2020-01-01") + np.arange(1500)
    rows = 0
    with pacsv.CSVWriter(path, pa.schema([("id", pa.int64()), ("temp", pa.float64()), ("wind", pa.float64()),
                                          ("count", pa.int64()), ("city", pa.string()),
                                          ("day", pa.date32())])) as writer:
        while path.stat().st_size < megabytes * 1_000_000:
            n = ROWS_PER_CHUNK
            writer.write_table(pa.table({
                "id": np.arange(rows, rows + n), "temp": np.round(rng.normal(12, 8, n), 3),
                "wind": np.round(rng.random(n) * 30, 2), "count": rng.integers(0, 10_000, n),
                "city": cities[rng.integers(0, len(cities), n)], "day": days[rng.integers(0, len(days), n)],
            }))
            rows += n
    return rows


def measure(name: str, csv: Path, workspace: Path, env: dict[str, str]) -> tuple[float, int]:
    """Seconds one fresh process takes to read the CSV with reader ``name``; the rows it got."""
    # every library is imported before the clock starts: the figures are of reading, not of imports
    code = ("import sys, time\nimport pandas, pyarrow.csv, runlab.sdk.dataset\nPATH = sys.argv[1]\nWS = sys.argv[2]\n"
            + READERS[name] + "elapsed = time.perf_counter() - start\nprint(elapsed, len(frame))\n")
    out = subprocess.run([sys.executable, "-c", code, str(csv), str(workspace)], capture_output=True, text=True,
                         env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{out.stderr[-3000:]}")
    seconds, rows = out.stdout.split()
    return float(seconds), int(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv-mb", type=int, default=1000, help="size of the CSV in MB (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each reader; the best is kept (default 3)")
    parser.add_argument("--scratch", type=Path, default=None, help="folder for the CSV (default: a temp folder)")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="runlab-bench-datasets-", dir=args.scratch))
    try:
        return run(scratch, args.csv_mb, args.repeat)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run(scratch: Path, megabytes: int, repeat: int) -> int:
    free_mb = shutil.disk_usage(scratch).free // 1_000_000
    if free_mb < 3 * megabytes:  # the CSV, its copy in the datastore, and room to spare
        scaled = max(10, free_mb // 4)
        print(f"only {free_mb:,} MB free in {scratch}: the CSV is {scaled:,} MB instead of {megabytes:,} MB")
        megabytes = scaled
    import pandas
    import pyarrow

    import runlab

    csv = scratch / "big.csv"
    started = time.perf_counter()
    rows = write_csv(csv, megabytes)
    size = csv.stat().st_size
    print(f"python {sys.version.split()[0]}, pyarrow {pyarrow.__version__}, pandas {pandas.__version__}, "
          f"{os.cpu_count()} CPUs")
    print(f"CSV: {size / 1e6:,.0f} MB, {rows:,} rows, 6 columns (written in {time.perf_counter() - started:.1f} s)")

    env = {**os.environ, "RUNLAB_HOME": str(scratch / "home")}
    os.environ["RUNLAB_HOME"] = env["RUNLAB_HOME"]
    ws = runlab.Workspace.create("bench-datasets", path=scratch / "ws")
    ws.get_default_datastore().upload_files([str(csv)], relative_root=str(scratch), target_path="bench",
                                            show_progress=False)

    # rounds: each reader once per round, so that every reader sees the machine's load alike
    times: dict[str, list[float]] = {name: [] for name in READERS}
    for round_number in range(repeat):
        for name in READERS:
            seconds, got = measure(name, csv, ws.path, env)
            if got != rows:
                print(f"{name} read {got:,} rows, not {rows:,}")
                return 1
            times[name].append(seconds)
        print(f"  round {round_number + 1}: " + ", ".join(f"{times[n][-1]:.2f}" for n in READERS), flush=True)

    base = times["pyarrow.csv.read_csv"]
    results: dict[str, dict[str, float]] = {}
    print()
    print(f"{'reader':<48} {'best s':>8} {'median s':>9} {'MB/s':>8} {'x pyarrow':>10} {'per round':>10}")
    for name, measured in times.items():
        rounds = sorted(t / b for t, b in zip(measured, base))  # against pyarrow in the same round
        figures = {"best_s": min(measured), "median_s": sorted(measured)[len(measured) // 2],
                   "mb_per_s": size / 1e6 / min(measured), "ratio_to_pyarrow": min(measured) / min(base),
                   "median_round_ratio": rounds[len(rounds) // 2]}
        results[name] = figures
        print(f"{name:<48} {figures['best_s']:8.2f} {figures['median_s']:9.2f} {figures['mb_per_s']:8.0f} "
              f"{figures['ratio_to_pyarrow']:9.2f}x {figures['median_round_ratio']:9.2f}x")
    print("(x pyarrow: best against best; per round: the median of each round's ratio)")
    worst = max(results[n]["ratio_to_pyarrow"] for n in READERS if n.startswith("runlab"))
    verdict = "PASS" if worst <= TARGET_RATIO else "MISS"
    print(f"\nrunlab to_pandas_dataframe(): {worst:.2f}x pyarrow.csv.read_csv (target <= {TARGET_RATIO}x): {verdict}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"csv_bytes": size, "rows": rows, "repeat": repeat, "cpus": os.cpu_count(),
                               "readers": results, "times_s": times, "target_ratio": TARGET_RATIO,
                               "verdict": verdict}, indent=2) + "\n")
    print(f"figures written to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
