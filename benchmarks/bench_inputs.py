"""Making a dataset's files available to a run (as_mount / as_download), first time and second time.

Run from the repository root:

    . .venv/bin/activate
    python benchmarks/bench_inputs.py                    # 100,000 files (a few minutes here)
    python benchmarks/bench_inputs.py --files 10000      # fewer

It writes ``--files`` small files (``--size`` bytes on average, in folders of 1,000) into a temp
folder, uploads them to a workspace's default datastore and registers them as a dataset. Then it
times what the agent does for a run's input (``runlab.execution.inputs.prepare_inputs``, the same
call the agent makes while the run is Preparing), each in the same process with a clock around
that call only:

- registered version, ``as_mount()``: first time (empty data cache: every file copied in and
  hashed, then the read-only tree of hard links made), second time (the view found);
- the same folder as an unregistered dataset, ``as_download()``: first time (empty cache again),
  second time (the datastore listed, the view found by the files' places, sizes and times).

Next to them, on the same disk: ``cp -r`` and ``cp -al`` (hard links only) of the same folder.
Targets (issue 7): under 5 s the first time, under 0.5 s the second. Writes the figures to
``benchmarks/out/inputs.json``.
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

OUT = Path(__file__).resolve().parent / "out" / "inputs.json"
FIRST_TARGET_S, SECOND_TARGET_S = 5.0, 0.5


def write_files(root: Path, count: int, size: int) -> int:
    total = 0
    for i in range(count):
        folder = root / f"part-{i // 1000:04d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True)
        data = i.to_bytes(8, "little") * max(1, (size + (i % 64) - 32) // 8)
        (folder / f"item-{i:06d}.bin").write_bytes(data)
        total += len(data)
    return total


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=300, help="average file size in bytes (default 300)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="runlab-bench-inputs-") as tmp:
        base = Path(tmp)
        os.environ["RUNLAB_HOME"] = str(base / "home")
        import runlab
        from runlab import Dataset
        from runlab.core.status import RunStatus, RunType
        from runlab.execution.inputs import prepare_inputs
        from runlab.store.datacache import remove_tree

        source = base / "source"
        total = write_files(source, args.files, args.size)
        print(f"{args.files:,} files, {total / 1e6:,.1f} MB, in folders of 1,000 ({os.cpu_count()} CPUs)")
        cp = timed(["cp", "-r", str(source), str(base / "cp-copy")])
        links = timed(["cp", "-al", str(source), str(base / "cp-links")])
        shutil.rmtree(base / "cp-copy")
        shutil.rmtree(base / "cp-links")

        ws = runlab.Workspace.create("bench-inputs", path=base / "ws")
        datastore = ws.get_default_datastore()
        start = time.perf_counter()
        datastore.upload(src_dir=str(source), target_path="many", overwrite=True, show_progress=False)
        upload = time.perf_counter() - start
        start = time.perf_counter()
        registered = Dataset.File.from_files(path=(datastore, "many")).register(ws, "many")
        register = time.perf_counter() - start
        plain = Dataset.File.from_files(path=(datastore, "many"))
        print(f"setup: upload {upload:.1f} s, register {register:.1f} s (not part of the figures)")

        cache_root = base / "home" / "datacache"
        figures: dict[str, float] = {"cp -r": cp, "cp -al": links}
        for label, config in (("registered, as_mount", registered.as_named_input("data").as_mount()),
                              ("unregistered, as_download", plain.as_named_input("data").as_download())):
            if cache_root.exists():
                remove_tree(cache_root)
            for attempt in ("first", "second"):
                run_id = f"bench_{int(time.time())}_{os.urandom(4).hex()}"
                definition = {"inputDatasets": [config.spec().to_dict()]}
                ws.folder.store.create_run(run_id, "bench", run_type=RunType.SUBMITTED, status=RunStatus.PREPARING,
                                           definition=definition)
                start = time.perf_counter()
                prepared = prepare_inputs(ws.folder, run_id, definition)
                seconds = time.perf_counter() - start
                view = Path(prepared.values["data"])
                assert sum(1 for _ in view.rglob("*.bin")) == args.files if attempt == "first" else True
                figures[f"{label}, {attempt} time"] = seconds

    print(f"\n{'':38} {'seconds':>9}  target")
    for name, seconds in figures.items():
        target = FIRST_TARGET_S if "first" in name else SECOND_TARGET_S if "second" in name else None
        verdict = "" if target is None else f"< {target:g} s  {'PASS' if seconds < target else 'MISS'}"
        print(f"{name:38} {seconds:9.2f}  {verdict}")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"files": args.files, "bytes": total, "seconds": figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
