"""Data benchmark: uploads into the default datastore, next to ``cp -r`` of the same data on the same disk.

Run from the repository root:

    . .venv/bin/activate
    python benchmarks/bench_data.py                    # 10,000 x 4 KB files and one 1 GB file
    python benchmarks/bench_data.py --large-mb 256     # a smaller large file
    python benchmarks/bench_data.py --figures small    # one figure (small, large, workers)
    python benchmarks/bench_data.py --repeat 5

Figures (issue 7's targets), one function each (``FIGURES``):

- ``small``: ``datastore.upload()`` of 10,000 files of 4 KB (20 folders) into the workspace's default
  datastore, against ``cp -r`` of the same folder: files/s and MB/s, target within 3x of ``cp``;
  also the same upload again, where every file is skipped (sha256 compared), and with the progress bar.
- ``large``: the upload of one 1 GB file (``--large-mb``), against ``cp``: MB/s, target within 1.5x.
- ``workers``: the small-files upload with 1, 2 and 4 threads, to show what the thread pool buys
  on this machine (runlab copies small files to a local disk with one thread: ``store.transfer``).

How it measures: the source data is written once into a temp folder (``$TMPDIR``), next to the
workspace (``RUNLAB_HOME`` is a temp folder there too), so both copies read from and write to the same
disk, the source already in the page cache. Every timed copy goes to a new folder (nothing is deleted
until the end: on a disk mounted with ``discard`` a copy right after deleting 10,000 files is 10 times
slower), after a ``sync`` (not timed), so no copy pays for the previous one's writeback. Neither ``cp`` nor runlab
syncs its copy to disk. Each round times ``cp`` then runlab; the best of ``--repeat`` rounds is
printed with the median, and the ratio compared to the target is the median of the rounds' ratios
(the machine and its disk are shared: one round can be several times slower than the next). When the disk has too
little room for the large file three times over, it is scaled down and the benchmark says so.
Writes every figure to ``benchmarks/out/data.json``.
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
from typing import Any, Callable

SMALL_FILES = 10_000
SMALL_SIZE = 4096
SMALL_FOLDERS = 20
TARGETS = {"small": 3.0, "large": 1.5}  # runlab's time at most this many times cp's
OUT = Path(__file__).resolve().parent / "out" / "data.json"


def make_small(root: Path) -> Path:
    src = root / "small"
    for i in range(SMALL_FILES):
        folder = src / f"d{i % SMALL_FOLDERS:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}.bin").write_bytes(os.urandom(SMALL_SIZE))
    return src


def make_large(root: Path, megabytes: int) -> Path:
    src = root / "large"
    src.mkdir(parents=True, exist_ok=True)
    block = os.urandom(1 << 20)
    with open(src / "big.bin", "wb") as f:
        for i in range(megabytes):
            f.write(block[i % 251:] + block[: i % 251])  # not one repeated block
    return src


def sync() -> None:
    subprocess.run(["sync"], check=False)


def timed(run: Callable[[], Any]) -> float:
    sync()
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


class Bench:
    def __init__(self, root: Path, repeat: int, large_mb: int) -> None:
        self.root = root
        self.repeat = repeat
        self.large_mb = large_mb
        os.environ["RUNLAB_HOME"] = str(root / "home")
        import runlab

        self.ws = runlab.Workspace.create("bench-data", path=root / "ws")
        self.ds = self.ws.get_default_datastore()
        self.results: dict[str, Any] = {}
        self._small: Path | None = None
        self._round = 0

    def small_source(self) -> Path:
        if self._small is None:
            print(f"writing {SMALL_FILES:,} files of {SMALL_SIZE // 1024} KB ...", flush=True)
            self._small = make_small(self.root / "src")
        return self._small

    def fresh(self, name: str) -> str:
        """A new target path: nothing is deleted between timed copies (on this disk, mounted with
        ``discard``, the next copy after deleting 10,000 files waits for their blocks to be freed)."""
        self._round += 1
        return f"bench-{name}-{self._round}"

    def cp_vs_upload(self, name: str, src: Path, nbytes: int, files: int) -> dict[str, Any]:
        cp_times, runlab_times = [], []
        target = ""
        for _ in range(self.repeat):
            cp_dest = self.root / self.fresh(f"cp-{name}")
            cp_times.append(timed(lambda: subprocess.run(["cp", "-r", str(src), str(cp_dest)], check=True)))
            target = self.fresh(name)
            runlab_times.append(timed(lambda: self.ds.upload(src, target_path=target, show_progress=False)))
        copied = self.ds.list_files(target + "/")
        assert len(copied) == files and sum(f.size for f in copied) == nbytes, "the upload is incomplete"
        assert all(f.sha256 for f in copied), "a file has no recorded sha256"
        figure = {"files": files, "bytes": nbytes, "cp_s": min(cp_times), "runlab_s": min(runlab_times),
                  "cp_median_s": statistics.median(cp_times), "runlab_median_s": statistics.median(runlab_times),
                  "cp_all_s": cp_times, "runlab_all_s": runlab_times, "last_target": target}
        # each round times cp and runlab back to back: the median of the rounds' ratios is the figure
        # compared to the target (on a shared disk one lucky or unlucky round moves a best-of a lot)
        figure["ratio"] = statistics.median(r / c for r, c in zip(runlab_times, cp_times))
        figure["ratio_best"] = figure["runlab_s"] / figure["cp_s"]
        self.results[name] = figure
        return figure

    # -- the figures ---------------------------------------------------------------------------------

    def small(self) -> None:
        src = self.small_source()
        nbytes = SMALL_FILES * SMALL_SIZE
        print(f"figure small: upload vs cp -r, {self.repeat} rounds ...", flush=True)
        target = self.cp_vs_upload("small", src, nbytes, SMALL_FILES)["last_target"]
        again = [timed(lambda: self.ds.upload(src, target_path=target, show_progress=False))
                 for _ in range(self.repeat)]
        self.results["small_again"] = {"files": SMALL_FILES, "runlab_s": min(again),
                                       "runlab_median_s": statistics.median(again)}
        real_stdout = sys.stdout
        bar = []
        with open(os.devnull, "w") as devnull:
            try:
                sys.stdout = devnull  # the bar is drawn (to nowhere): its cost is in the figure
                for _ in range(self.repeat):
                    target = self.fresh("bar")
                    bar.append(timed(lambda: self.ds.upload(src, target_path=target, show_progress=True)))
            finally:
                sys.stdout = real_stdout
        self.results["small_progress_bar"] = {"files": SMALL_FILES, "runlab_s": min(bar),
                                              "runlab_median_s": statistics.median(bar)}

    def large(self) -> None:
        megabytes = self.large_mb
        free = shutil.disk_usage(self.root).free
        copies = 2 * self.repeat + 2  # the source, each round's two copies, and room to spare
        if free < copies * megabytes * (1 << 20):
            scaled = max(16, int(free / copies / (1 << 20)))
            print(f"only {free / 1e9:.1f} GB free on {self.root}: the large file is scaled down from "
                  f"{megabytes:,} MB to {scaled:,} MB", flush=True)
            megabytes = scaled
        print(f"writing a {megabytes:,} MB file ...", flush=True)
        src = make_large(self.root / "src", megabytes)
        print(f"figure large: upload vs cp, {self.repeat} rounds ...", flush=True)
        self.cp_vs_upload("large", src, megabytes << 20, 1)

    def workers(self) -> None:
        from runlab.store.transfer import folder_items, upload

        src = self.small_source()
        print("figure workers: the small-files upload with 1, 2 and 4 threads ...", flush=True)
        figure = {}
        for workers in (1, 2, 4):
            times = []
            for _ in range(self.repeat):
                items, _left_out = folder_items(src, self.fresh(f"workers{workers}"))
                times.append(timed(lambda: upload(
                    self.ds.object_store, items, show_progress=False, max_workers=workers,
                    record=lambda rows: self.ws.folder.store.record_datastore_files(self.ds.name, rows))))
            figure[str(workers)] = {"runlab_s": min(times), "runlab_median_s": statistics.median(times)}
        self.results["workers"] = figure


FIGURES = {"small": Bench.small, "large": Bench.large, "workers": Bench.workers}


def report(results: dict[str, Any]) -> None:
    print()
    print("times: the best of the rounds; ratio: the median of the rounds' runlab / cp")
    print(f"{'figure':<46} {'cp':>16} {'runlab':>22} {'ratio':>7} {'target':>8}")
    for name, label, unit in (("small", f"upload {SMALL_FILES:,} x 4 KB files", "files"),
                              ("large", "upload one large file", "MB")):
        if name not in results:
            continue
        r = results[name]
        amount = r["files"] if unit == "files" else r["bytes"] / 1e6

        def rate(seconds: float) -> str:
            per_s = amount / seconds
            return f"{per_s:,.0f} files/s" if unit == "files" else f"{per_s:,.0f} MB/s"

        verdict = "PASS" if r["ratio"] <= TARGETS[name] else "MISS"
        size = f" ({r['bytes'] / 1e6:,.0f} MB)" if unit == "MB" else ""
        print(f"{label + size:<46} {r['cp_s']:>6.2f} s {rate(r['cp_s']):>8} {r['runlab_s']:>6.2f} s "
              f"{rate(r['runlab_s']):>13} {r['ratio']:>6.2f}x {'<= ' + str(TARGETS[name]) + 'x':>8} {verdict}")
        if name == "small":
            print(f"{'':<46} {'':>16} {r['bytes'] / 1e6 / r['runlab_s']:>17,.1f} MB/s  (cp "
                  f"{r['bytes'] / 1e6 / r['cp_s']:,.1f} MB/s)")
        print(f"{'':<46} medians: cp {r['cp_median_s']:.2f} s, runlab {r['runlab_median_s']:.2f} s; ratio of the "
              f"best times {r['ratio_best']:.2f}x")
    for name, label in (("small_again", "the same upload again (all skipped)"),
                        ("small_progress_bar", "the small-files upload with the progress bar")):
        if name in results:
            r = results[name]
            print(f"{label:<46} {'':>16} {r['runlab_s']:>6.2f} s {SMALL_FILES / r['runlab_s']:>8,.0f} files/s")
    if "workers" in results:
        cells = ", ".join(f"{w} thread{'s' if w != '1' else ''} {r['runlab_s']:.2f} s" for w, r in results["workers"].items())
        print(f"{'small-files upload by threads':<46} {cells}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--figures", default=",".join(FIGURES), help=f"comma-separated, of {', '.join(FIGURES)}")
    parser.add_argument("--large-mb", type=int, default=1024, help="size of the large file (default 1024 MB)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per figure; the best is printed")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    wanted = [f.strip() for f in args.figures.split(",") if f.strip()]
    unknown = [f for f in wanted if f not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}: choose from {', '.join(FIGURES)}")
    root = Path(tempfile.mkdtemp(prefix="runlab-bench-data-"))
    try:
        bench = Bench(root, args.repeat, args.large_mb)
        for name in wanted:
            FIGURES[name](bench)
        report(bench.results)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"figures": bench.results, "repeat": args.repeat,
                                   "time": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=2) + "\n")
        print(f"\nwrote {out}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
