"""Fault benchmark: SIGKILL a training process at random moments and count the points it lost.

    python benchmarks/bench_faults.py               # 20 trials without a lock, 20 with one
    python benchmarks/bench_faults.py --trials 5    # a quicker look

Each trial starts a real training process that logs ``x`` = 0, 1, 2, ... as fast as it can
(a 1 ms pause every 1,000 points, as a training step), kills it with SIGKILL at a random moment
(2 to 5 s in), and then counts what reached the store. With ``lock``, another process holds
SQLite's write lock from a random moment before the kill (0.5 to 2 s in) for 30 s, so every write
the logger tries meets a locked store; the lock is released after the kill and the dead process's
journal is replayed (as the next logger or ``runlab sync`` would).

Per trial it prints the points logged, stored and lost, the loss in seconds of logging (points lost
divided by the process's own logging rate), and the run's status. The promise (issue 13): at most
one flush interval lost every time, the stored points are exactly 0..n-1 (no gap, no duplicate), and
no run is left Running. Everything runs in a temp RUNLAB_HOME; processes are stopped by their pid.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import mmap, os, struct, sys, time
import runlab
ws = runlab.Workspace.from_path(sys.argv[1])
with open(sys.argv[2], "wb") as f:
    f.write(b"\0" * 16)
counter = mmap.mmap(os.open(sys.argv[2], os.O_RDWR), 16)
run = runlab.Experiment(ws, "faults").start_logging()
print(run.id, flush=True)
start = time.monotonic()
i = 0
while True:
    run.log("x", float(i))
    i += 1
    counter[:16] = struct.pack("<qd", i, time.monotonic() - start)
    if i % 1000 == 0:
        time.sleep(0.001)
"""

LOCKER = r"""
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def read_counter(path: Path) -> tuple[int, float]:
    data = path.read_bytes() if path.exists() else b""
    return struct.unpack("<qd", data[:16]) if len(data) >= 16 else (0, 0.0)


def trial(ws, locked: bool, rng: random.Random, tmp: Path, n: int) -> dict[str, object]:
    from runlab.sdk.sync import replay_orphan_journals

    counter = tmp / f"counter-{locked}-{n}"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(ws.path), str(counter)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    locker = None
    try:
        assert child.stdout is not None
        run_id = child.stdout.readline().strip()
        started = time.monotonic()
        kill_at = rng.uniform(2.0, 5.0)
        if locked:
            time.sleep(rng.uniform(0.5, 2.0))
            locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(ws.folder.db_path), "30"],
                                      stdout=subprocess.PIPE, text=True)
            assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        time.sleep(max(0.0, kill_at - (time.monotonic() - started)))
        child.kill()
        child.communicate(timeout=30)
        logged, seconds = read_counter(counter)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=30)
        if locker is not None:
            locker.kill()
            locker.communicate(timeout=30)
    replay_orphan_journals(ws.folder)
    run = ws.get_run(run_id)
    values = run.get_metric_history("x").values if run.get_metric_summaries() else []
    stored = len(values)
    exact = bool(stored == 0 or (values[0] == 0 and values[-1] == stored - 1 and len(set(values.tolist())) == stored))
    rate = logged / seconds if seconds else 0.0
    lost = logged - stored
    return {"locked": locked, "trial": n, "killed_after_s": round(seconds, 2), "logged": logged, "stored": stored,
            "lost": lost, "lost_s": round(lost / rate, 3) if rate else None, "rate": round(rate),
            "exact": exact, "status": run.get_status()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="trials per mode (default 20)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a new one, printed)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "faults.json"))
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)

    home = Path(tempfile.mkdtemp(prefix="runlab-bench-faults-"))
    os.environ["RUNLAB_HOME"] = str(home)
    import runlab
    from runlab.core.settings import load_settings

    interval = load_settings().flush_interval_s
    ws = runlab.Workspace.create("bench-faults")
    print(f"seed {seed}; flush interval {interval} s; {args.trials} trials per mode; workspace {ws.path}")
    header = f"{'mode':<8}{'#':>3}{'killed at':>11}{'logged':>12}{'stored':>12}{'lost':>11}{'lost (s)':>10}" \
             f"{'points/s':>11}  {'exact':<6}status"
    print(header)
    results = []
    for locked in (False, True):
        for n in range(1, args.trials + 1):
            r = trial(ws, locked, rng, home, n)
            results.append(r)
            print(f"{'lock' if locked else 'no lock':<8}{n:>3}{r['killed_after_s']:>10}s{r['logged']:>12,}"
                  f"{r['stored']:>12,}{r['lost']:>11,}{r['lost_s']!s:>10}{r['rate']:>11,}  {r['exact']!s:<6}{r['status']}",
                  flush=True)
    ok = True
    for locked in (False, True):
        rows = [r for r in results if r["locked"] == locked]
        worst = max(float(r["lost_s"] or 0.0) for r in rows)
        within = sum(1 for r in rows if float(r["lost_s"] or 0.0) <= interval)
        running = sum(1 for r in rows if r["status"] not in ("Failed",))
        inexact = sum(1 for r in rows if not r["exact"])
        print(f"{'with a held write lock' if locked else 'without a lock'}: worst loss {worst:.3f} s of logging; "
              f"{within}/{len(rows)} trials within one flush interval ({interval} s); "
              f"{running} run(s) not Failed; {inexact} with a gap or duplicate")
        ok = ok and within == len(rows) and running == 0 and inexact == 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"seed": seed, "interval_s": interval, "results": results}, indent=2) + "\n")
    print(f"figures written to {out}; {'target met' if ok else 'TARGET MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
