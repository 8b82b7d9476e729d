"""Tracking benchmark: runlab and MLflow side by side, each figure with its target and the ratio.

    . .venv/bin/activate
    python benchmarks/bench_tracking.py              # full sizes (a few minutes)
    python benchmarks/bench_tracking.py --quick      # smaller sizes (about a minute)
    python benchmarks/bench_tracking.py --skip-mlflow

Every measurement runs in a fresh process: runlab's side with this interpreter
(``sys.executable``, the runlab venv), MLflow's side with the interpreter of its own venv,
``benchmarks/.venv-mlflow``, created on first run (``python -m venv`` + ``pip install
mlflow-skinny sqlalchemy alembic``; see setup_mlflow_venv.sh). Both stores live in one temp
folder: a runlab workspace (SQLite, WAL) with ``RUNLAB_HOME`` pointing there too, and an
MLflow SQLite backend store (``sqlite:///.../mlflow.db``).

Figures
  1. one ``run.log(name, float)`` in a tight loop (median of repetitions); MLflow's
     ``mlflow.log_metric`` synchronous and with ``synchronous=False`` (enqueue cost)
  2. ingest: from the first ``log()`` until a read returns every point (runlab: ``log`` +
     ``flush`` + ``get_metric_history``; MLflow: ``log_batch`` of 1,000 + ``get_metric_history``)
  3. reading one stored series in a fresh process (``get_metric_history``)
  4. ``import runlab`` + ``Run.get_context()`` in a fresh process, timed inside the process and
     as the whole process (start-up to exit); MLflow: ``import mlflow`` + ``mlflow.start_run()``
  5. several processes logging into one workspace at once: wall time, and are all points there

The table is printed; every raw figure goes to benchmarks/out/tracking.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RUNLAB_SIDE = HERE / "_runlab_side.py"
MLFLOW_SIDE = HERE / "_mlflow_side.py"
IMPORT_PROBE = HERE / "_import_probe.py"
DEFAULT_MLFLOW_VENV = HERE / ".venv-mlflow"
MLFLOW_REQUIREMENTS = ["mlflow-skinny", "sqlalchemy", "alembic"]
RESULT_MARK = "@@RESULT@@ "

TARGET_LOG_S = 2e-6
TARGET_INGEST_PPS = 1_000_000
TARGET_READ_S = 0.2
TARGET_IMPORT_S = 0.2


@dataclass(frozen=True)
class Sizes:
    log_reps: int = 20  # figure 1, runlab: repetitions of log_n calls
    log_n: int = 100_000
    ml_sync_reps: int = 10  # figure 1, MLflow synchronous: 10 x 20 = 200 calls
    ml_sync_n: int = 20
    ml_async_reps: int = 10  # figure 1, MLflow asynchronous: 10 x 200 = 2,000 calls
    ml_async_n: int = 200
    ingest_n: int = 1_000_000  # figure 2, runlab: points per process
    ingest_procs: int = 3  # figure 2, runlab: processes (median taken)
    ml_ingest_n: int = 100_000  # figure 2, MLflow
    read_procs: int = 3  # figure 3: fresh processes reading the figure-2 series
    ml_read_procs: int = 2
    import_reps: int = 5  # figure 4: processes per case (after one warm-up)
    conc_procs: int = 8  # figure 5
    conc_n: int = 100_000
    ml_conc_n: int = 5_000


FULL = Sizes()
QUICK = Sizes(log_reps=5, ml_sync_reps=5, ml_sync_n=10, ml_async_reps=5, ml_async_n=100,
              ingest_n=200_000, ingest_procs=1, ml_ingest_n=10_000, read_procs=1, ml_read_procs=1,
              import_reps=3, conc_procs=8, conc_n=20_000, ml_conc_n=1_000)


class SideError(RuntimeError):
    pass


# -- running a side ----------------------------------------------------------------------------


def _parse_result(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    return None


def _tail(text: str, n: int = 1500) -> str:
    text = text.strip()
    return text if len(text) <= n else "..." + text[-n:]


class Side:
    """One side (runlab or MLflow): its interpreter, script, environment and working folder."""

    def __init__(self, name: str, python: str, script: Path, env: dict[str, str], cwd: Path, timeout: float):
        self.name, self.python, self.script, self.env, self.cwd, self.timeout = name, python, script, env, cwd, timeout

    def call(self, command: str, args: dict[str, Any], extra: list[str] | None = None,
             env: dict[str, str] | None = None) -> dict[str, Any]:
        cmd = [self.python, str(self.script), command, json.dumps(args), *(extra or [])]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=env or self.env, cwd=self.cwd, capture_output=True, text=True,
                                  timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            raise SideError(f"{self.name} {command}: no result after {self.timeout:.0f} s") from exc
        wall = time.perf_counter() - t0
        result = _parse_result(proc.stdout)
        if proc.returncode != 0 or result is None:
            raise SideError(f"{self.name} {command} exited {proc.returncode}:\n{_tail(proc.stderr or proc.stdout)}")
        if extra and "--profile" in extra and proc.stderr:
            print(proc.stderr, file=sys.stderr)
        result["process_wall_s"] = wall
        return result

    def probe(self, which: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        """Figure 4: the import probe as a fresh process; wall = start of the interpreter to its exit."""
        t0 = time.perf_counter()
        proc = subprocess.run([self.python, str(IMPORT_PROBE), which], env=env or self.env, cwd=self.cwd,
                              capture_output=True, text=True, timeout=self.timeout)
        wall = time.perf_counter() - t0
        result = _parse_result(proc.stdout)
        if proc.returncode != 0 or result is None:
            raise SideError(f"{self.name} import probe {which} exited {proc.returncode}:\n"
                            f"{_tail(proc.stderr or proc.stdout)}")
        result["process_wall_s"] = wall
        return result

    def concurrent(self, procs: int, args: dict[str, Any], scratch: Path) -> dict[str, Any]:
        """Figure 5: ``procs`` workers started at once; wall = first launch to last exit."""
        scratch.mkdir(parents=True, exist_ok=True)
        running = []
        t0 = time.perf_counter()
        for i in range(procs):
            out = open(scratch / f"{self.name}-{i}.out", "w+")
            err = open(scratch / f"{self.name}-{i}.err", "w+")
            p = subprocess.Popen([self.python, str(self.script), "concurrent-worker", json.dumps(args)],
                                 env=self.env, cwd=self.cwd, stdout=out, stderr=err, text=True)
            running.append((p, out, err))
        workers, failures = [], []
        for p, out, err in running:
            try:
                rc = p.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = p.wait()
            for f in (out, err):
                f.seek(0)
            stdout, stderr = out.read(), err.read()
            out.close()
            err.close()
            result = _parse_result(stdout)
            if rc != 0 or result is None:
                failures.append(f"exit {rc}: {_tail(stderr, 600)}")
            else:
                workers.append(result)
        wall = time.perf_counter() - t0
        span = None
        if workers:
            span = max(w["flushed"] for w in workers) - min(w["first_log"] for w in workers)
        return {"wall_s": wall, "logging_span_s": span, "workers": workers, "failed_workers": failures}


# -- the MLflow venv -----------------------------------------------------------------------------


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _mlflow_version(python: Path | str) -> str | None:
    try:
        proc = subprocess.run([str(python), "-c", "import mlflow, sqlalchemy, alembic; print(mlflow.__version__)"],
                              capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_mlflow_python(explicit: str | None, venv: Path) -> tuple[str, str]:
    """The interpreter for MLflow's side and MLflow's version; creates the venv if needed."""
    if explicit:
        version = _mlflow_version(explicit)
        if version is None:
            raise SideError(f"--mlflow-python {explicit}: cannot import mlflow, sqlalchemy and alembic there")
        return explicit, version
    python = _venv_python(venv)
    version = _mlflow_version(python) if python.exists() else None
    if version is not None:
        return str(python), version
    print(f"creating MLflow's venv {venv} (python -m venv; pip install {' '.join(MLFLOW_REQUIREMENTS)}) ...",
          flush=True)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *MLFLOW_REQUIREMENTS],
    ]
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SideError(f"`{' '.join(step)}` failed:\n{_tail(proc.stderr or proc.stdout)}\n"
                            f"(or run benchmarks/setup_mlflow_venv.sh, or pass --mlflow-python)")
    version = _mlflow_version(python)
    if version is None:
        raise SideError(f"{python}: mlflow was installed but does not import")
    return str(python), version


# -- formatting ----------------------------------------------------------------------------------


def fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 1e-6:
        return f"{s * 1e9:.0f} ns"
    if s < 1e-3:
        return f"{s * 1e6:.3g} us"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def fmt_rate(pps: float | None) -> str:
    return "-" if pps is None else f"{pps:,.0f} pts/s"


def fmt_ratio(x: float | None) -> str:
    """``x`` = how many times runlab is better (>1) or worse (<1)."""
    if x is None:
        return "-"
    if x >= 1:
        return f"{x:,.0f}x better" if x >= 100 else f"{x:.1f}x better"
    return f"{1 / x:.1f}x worse"


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "MISS")


def med(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def print_table(rows: list[dict[str, str]]) -> None:
    cols = [("figure", "figure"), ("target", "target"), ("runlab", "runlab"), ("mlflow", "MLflow"),
            ("ratio", "runlab vs MLflow"), ("verdict", "vs target")]
    widths = {k: max(len(h), *(len(r.get(k, "")) for r in rows)) for k, h in cols}
    line = "  ".join(h.ljust(widths[k]) for k, h in cols)
    print(line)
    print("-" * len(line))
    for r in rows:
        if r.get("section"):
            print(r["section"])
            continue
        print("  ".join(r.get(k, "").ljust(widths[k]) for k, _ in cols).rstrip())


# -- the benchmark -----------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes = QUICK if args.quick else FULL
        self.figures = {int(f) for f in args.figures.split(",")} if args.figures else {1, 2, 3, 4, 5}
        self.tmp = Path(tempfile.mkdtemp(prefix="runlab-bench-"))
        self.raw: dict[str, Any] = {"runlab": {}, "mlflow": {}}
        self.errors: list[str] = []
        self.rows: list[dict[str, str]] = []
        self.ws = self.tmp / "runlab-ws"
        self.runlab = Side("runlab", sys.executable, RUNLAB_SIDE, self._runlab_env(), self.tmp, args.timeout)
        self.mlflow: Side | None = None
        self.mlflow_version: str | None = None
        self.mlflow_note = "skipped (--skip-mlflow)" if args.skip_mlflow else ""

    def _runlab_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLAB_")}
        env["RUNLAB_HOME"] = str(self.tmp / "runlab-home")
        env.update(extra)
        return env

    def _mlflow_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["MLFLOW_TRACKING_URI"] = "sqlite:///" + str(self.tmp / "mlflow" / "mlflow.db")
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"  # no network here; keep it from trying
        env["DO_NOT_TRACK"] = "true"
        env.pop("VIRTUAL_ENV", None)
        return env

    def _try(self, what: str, fn: Any, *a: Any, **kw: Any) -> Any:
        try:
            return fn(*a, **kw)
        except SideError as exc:
            self.errors.append(f"{what}: {exc}")
            print(f"  ERROR {what}: {str(exc).splitlines()[0]}", flush=True)
            return None

    def _profile(self, name: str) -> list[str] | None:
        if not self.args.profile:
            return None
        out = HERE / "out"
        out.mkdir(exist_ok=True)
        return ["--profile", str(out / f"runlab-{name}.prof")]

    # -- setup -----------------------------------------------------------------------------------

    def setup(self) -> None:
        s = self.sizes
        print(f"scratch folder: {self.tmp}", flush=True)
        res = self.runlab.call("setup", {"ws": str(self.ws), "submitted_runs": s.import_reps + 2})
        self.raw["runlab"]["setup"] = res
        self.submitted_ids: list[str] = res["run_ids"]
        self.runlab_version = res["runlab_version"]
        if self.args.skip_mlflow:
            return
        try:
            python, self.mlflow_version = ensure_mlflow_python(self.args.mlflow_python, Path(self.args.mlflow_venv))
        except SideError as exc:
            self.mlflow_note = f"unavailable: {str(exc).splitlines()[0]}"
            self.errors.append(f"MLflow venv: {exc}")
            print(f"  MLflow side {self.mlflow_note}", flush=True)
            return
        (self.tmp / "mlflow").mkdir()
        self.mlflow = Side("mlflow", python, MLFLOW_SIDE, self._mlflow_env(), self.tmp, self.args.timeout)
        res = self._try("MLflow setup", self.mlflow.call, "setup", {})
        if res is None:
            self.mlflow, self.mlflow_note = None, "unavailable: its setup failed (see errors)"
        else:
            self.raw["mlflow"]["setup"] = res

    def ml(self) -> str:
        return self.mlflow_note or "error"

    # -- figure 1 --------------------------------------------------------------------------------

    def figure1(self) -> None:
        s = self.sizes
        print(f"figure 1: run.log() x {s.log_reps} x {s.log_n:,} ...", flush=True)
        rl = self._try("runlab log loop", self.runlab.call, "log-loop", {"ws": str(self.ws), "reps": s.log_reps, "n": s.log_n},
                       self._profile("log-loop"))
        sync = asy = None
        if self.mlflow:
            print(f"          mlflow.log_metric sync x {s.ml_sync_reps} x {s.ml_sync_n}, "
                  f"async x {s.ml_async_reps} x {s.ml_async_n} ...", flush=True)
            sync = self._try("MLflow sync log_metric", self.mlflow.call, "log-loop",
                             {"reps": s.ml_sync_reps, "n": s.ml_sync_n, "synchronous": True})
            asy = self._try("MLflow async log_metric", self.mlflow.call, "log-loop",
                            {"reps": s.ml_async_reps, "n": s.ml_async_n, "synchronous": False})
        self.raw["runlab"]["log_loop"], self.raw["mlflow"]["log_sync"], self.raw["mlflow"]["log_async"] = rl, sync, asy
        r = rl["median_ns"] * 1e-9 if rl else None
        self.rows.append({"section": "1. one log(name, float) call, tight loop (median per call)"})
        for label, m, n_calls in (("vs MLflow log_metric (sync)", sync, s.ml_sync_reps * s.ml_sync_n),
                                  ("vs MLflow log_metric (async)", asy, s.ml_async_reps * s.ml_async_n)):
            mv = m["median_ns"] * 1e-9 if m else None
            self.rows.append({
                "figure": f"   {label}",
                "target": "<= 2 us",
                "runlab": fmt_time(r) if rl else "ERROR",
                "mlflow": f"{fmt_time(mv)} ({n_calls:,} calls)" if m else self.ml(),
                "ratio": fmt_ratio(mv / r) if (r and mv) else "-",
                "verdict": verdict(r <= TARGET_LOG_S if r is not None else False),
            })
        if rl:
            self.rows.append({"figure": f"   (runlab: fastest / slowest of {s.log_reps} repetitions)",
                              "runlab": f"{fmt_time(min(rl['per_call_ns']) * 1e-9)} / {fmt_time(max(rl['per_call_ns']) * 1e-9)}",
                              "mlflow": (f"sync {fmt_time(max(sync['per_call_ns']) * 1e-9)} slowest" if sync else "")})
        if rl and rl["points_stored"] != rl["points_expected"]:
            self.errors.append(f"figure 1: runlab stored {rl['points_stored']:,} of {rl['points_expected']:,} points")

    # -- figure 2 --------------------------------------------------------------------------------

    def figure2(self) -> None:
        s = self.sizes
        print(f"figure 2: ingest {s.ingest_n:,} points x {s.ingest_procs} processes ...", flush=True)
        runs = []
        for _ in range(s.ingest_procs):
            res = self._try("runlab ingest", self.runlab.call, "ingest", {"ws": str(self.ws), "n": s.ingest_n},
                            self._profile("ingest"))
            if res:
                runs.append(res)
        ml = None
        if self.mlflow:
            print(f"          MLflow log_batch(1,000) x {s.ml_ingest_n // 1000:,} ...", flush=True)
            ml = self._try("MLflow ingest", self.mlflow.call, "ingest", {"n": s.ml_ingest_n, "batch": 1000})
        self.raw["runlab"]["ingest"], self.raw["mlflow"]["ingest"] = runs, ml
        pps = med([r["points_per_s"] for r in runs])
        complete = bool(runs) and all(r["count"] == r["n"] for r in runs)
        if runs and not complete:
            self.errors.append(f"figure 2: runlab read back {[r['count'] for r in runs]} of {s.ingest_n:,}")
        if ml and ml["count"] != ml["n"]:
            self.errors.append(f"figure 2: MLflow read back {ml['count']:,} of {ml['n']:,}")
        self.rows.append({"section": "2. ingest: first log() until a read returns every point"})
        self.rows.append({
            "figure": f"   runlab {s.ingest_n:,} pts; MLflow {s.ml_ingest_n:,} pts",
            "target": ">= 1,000,000 pts/s",
            "runlab": fmt_rate(pps) if runs else "ERROR",
            "mlflow": fmt_rate(ml["points_per_s"]) if ml else self.ml(),
            "ratio": fmt_ratio(pps / ml["points_per_s"]) if (pps and ml) else "-",
            "verdict": verdict(bool(pps and pps >= TARGET_INGEST_PPS and complete)),
        })
        if runs:
            r = sorted(runs, key=lambda x: x["points_per_s"])[len(runs) // 2]
            self.rows.append({
                "figure": "   (runlab phases: log loop / flush / read)",
                "runlab": f"{fmt_time(r['log_phase_s'])} / {fmt_time(r['flush_phase_s'])} / {fmt_time(r['read_phase_s'])}",
                "mlflow": (f"{fmt_time(ml['log_phase_s'])} / - / {fmt_time(ml['read_phase_s'])}" if ml else ""),
            })
        self.ingest_runs = runs
        self.ml_ingest = ml

    # -- figure 3 --------------------------------------------------------------------------------

    def figure3(self) -> None:
        s = self.sizes
        runs = getattr(self, "ingest_runs", None)
        if not runs:  # figure 2 not run (or failed): store a series first, untimed
            res = self._try("runlab series for figure 3", self.runlab.call, "ingest", {"ws": str(self.ws), "n": s.ingest_n})
            runs = [res] if res else []
        ml_ingest = getattr(self, "ml_ingest", None)
        if self.mlflow and ml_ingest is None and 2 not in self.figures:
            ml_ingest = self._try("MLflow series for figure 3", self.mlflow.call, "ingest", {"n": s.ml_ingest_n})
        reads, ml_reads = [], []
        n = runs[-1]["count"] if runs else 0
        print(f"figure 3: read a {n:,}-point series, {s.read_procs} fresh processes ...", flush=True)
        if runs:
            for _ in range(s.read_procs):
                res = self._try("runlab read", self.runlab.call, "read",
                                {"ws": str(self.ws), "run_id": runs[-1]["run_id"], "name": "ingest", "warm_reps": 3},
                                self._profile("read"))
                if res:
                    reads.append(res)
        ml_n = ml_ingest["count"] if ml_ingest else 0
        if self.mlflow and ml_ingest:
            print(f"          MLflow: a {ml_n:,}-point series, {s.ml_read_procs} fresh processes ...", flush=True)
            for _ in range(s.ml_read_procs):
                res = self._try("MLflow read", self.mlflow.call, "read",
                                {"run_id": ml_ingest["run_id"], "name": "ingest", "warm_reps": 1})
                if res:
                    ml_reads.append(res)
        self.raw["runlab"]["read"], self.raw["mlflow"]["read"] = reads, ml_reads
        cold = med([r["first_read_s"] for r in reads])
        warm = med([w for r in reads for w in r["warm_read_s"]])
        ml_cold = med([r["first_read_s"] for r in ml_reads])
        ml_warm = med([w for r in ml_reads for w in r["warm_read_s"]])

        def per_point(rl: float | None, mv: float | None) -> str:
            if not (rl and mv and n and ml_n):
                return "-"
            return fmt_ratio((mv / ml_n) / (rl / n)) + " per point"

        self.rows.append({"section": f"3. read one series with get_metric_history (runlab {n:,} pts; MLflow {ml_n:,} pts)"})
        self.rows.append({
            "figure": "   first read in a fresh process",
            "target": "<= 0.2 s",
            "runlab": fmt_time(cold) if reads else "ERROR",
            "mlflow": fmt_time(ml_cold) if ml_reads else self.ml(),
            "ratio": per_point(cold, ml_cold),
            "verdict": verdict(bool(cold is not None and cold <= TARGET_READ_S and n >= s.ingest_n)),
        })
        self.rows.append({
            "figure": "   later reads, fresh Run handle",
            "target": "<= 0.2 s",
            "runlab": fmt_time(warm) if reads else "ERROR",
            "mlflow": fmt_time(ml_warm) if ml_reads else self.ml(),
            "ratio": per_point(warm, ml_warm),
            "verdict": verdict(bool(warm is not None and warm <= TARGET_READ_S and n >= s.ingest_n)),
        })

    # -- figure 4 --------------------------------------------------------------------------------

    def _probe_series(self, side: Side, which: str, envs: list[dict[str, str]]) -> dict[str, Any] | None:
        """One warm-up process (bytecode caches, first-time folders), then one per env."""
        try:
            side.probe(which, envs[0])
            results = [side.probe(which, env) for env in envs[1:]]
        except SideError as exc:
            self.errors.append(f"import probe {side.name} {which}: {exc}")
            print(f"  ERROR import probe {side.name} {which}: {str(exc).splitlines()[0]}", flush=True)
            return None
        return {
            "inside_s": med([r["inside_s"] for r in results]),
            "process_wall_s": med([r["process_wall_s"] for r in results]),
            "heavy_modules": results[-1]["heavy_modules"],
            "modules_loaded": results[-1]["modules_loaded"],
            "runs": results,
        }

    def figure4(self) -> None:
        s = self.sizes
        k = s.import_reps
        print(f"figure 4: import + get_context, {k} fresh processes per case ...", flush=True)
        ws = str(self.ws)
        ids = self.submitted_ids
        owned_envs = [self._runlab_env(RUNLAB_WORKSPACE=ws, RUNLAB_RUN_ID=rid) for rid in ids[: k + 1]]
        agent_envs = [self._runlab_env(RUNLAB_WORKSPACE=ws, RUNLAB_RUN_ID=ids[-1], RUNLAB_RUN_OWNER="agent")] * (k + 1)
        offline_envs = [self._runlab_env()] * (k + 1)
        res: dict[str, Any] = {
            "python_floor": self._probe_series(self.runlab, "none", [self.runlab.env] * (k + 1)),
            "submitted": self._probe_series(self.runlab, "runlab", owned_envs),
            "submitted_agent_owned": self._probe_series(self.runlab, "runlab", agent_envs),
            "offline": self._probe_series(self.runlab, "runlab", offline_envs),
        }
        ml = ml_floor = None
        if self.mlflow:
            ml_floor = self._probe_series(self.mlflow, "none", [self.mlflow.env] * (k + 1))
            ml = self._probe_series(self.mlflow, "mlflow", [self.mlflow.env] * (k + 1))
        self.raw["runlab"]["import"] = res
        self.raw["mlflow"]["import"] = {"start_run": ml, "python_floor": ml_floor}

        def cell(r: dict[str, Any] | None, key: str) -> str:
            return fmt_time(r[key]) if r else "ERROR"

        def ratio(r: dict[str, Any] | None, key: str) -> str:
            return fmt_ratio(ml[key] / r[key]) if (r and ml) else "-"

        mcell = (lambda key: fmt_time(ml[key])) if ml else (lambda key: self.ml())
        self.rows.append({"section": "4. import runlab + Run.get_context() (MLflow: import mlflow + mlflow.start_run())"})
        for label, key in (("submitted run (RUNLAB_WORKSPACE, RUNLAB_RUN_ID)", "submitted"),
                           ("offline run (no RUNLAB_* variables)", "offline")):
            r = res[key]
            self.rows.append({"figure": f"   {label}, timed inside", "target": "<= 0.2 s",
                              "runlab": cell(r, "inside_s"), "mlflow": mcell("inside_s"),
                              "ratio": ratio(r, "inside_s"),
                              "verdict": verdict(bool(r and r["inside_s"] <= TARGET_IMPORT_S))})
        for label, key in (("submitted run", "submitted"),
                           ("submitted run, RUNLAB_RUN_OWNER=agent", "submitted_agent_owned"),
                           ("offline run", "offline")):
            r = res[key]
            self.rows.append({"figure": f"   {label}, whole process (start to exit)", "target": "(info)",
                              "runlab": cell(r, "process_wall_s"), "mlflow": mcell("process_wall_s"),
                              "ratio": ratio(r, "process_wall_s"), "verdict": "-"})
        floor = res["python_floor"]
        self.rows.append({"figure": "   (python start-up floor: empty script, whole process)", "target": "",
                          "runlab": cell(floor, "process_wall_s"),
                          "mlflow": fmt_time(ml_floor["process_wall_s"]) if ml_floor else self.ml()})

    # -- figure 5 --------------------------------------------------------------------------------

    def figure5(self) -> None:
        s = self.sizes
        p, n = s.conc_procs, s.conc_n
        print(f"figure 5: {p} processes x {n:,} points into one workspace at once ...", flush=True)
        rl = self.runlab.concurrent(p, {"ws": str(self.ws), "n": n}, self.tmp / "conc")
        ids = [w["run_id"] for w in rl["workers"]]
        counted = self._try("runlab count", self.runlab.call, "count", {"ws": str(self.ws), "run_ids": ids, "name": "points"})
        rl["count"] = counted
        ml = None
        if self.mlflow:
            mn = s.ml_conc_n
            print(f"          MLflow: {p} processes x {mn:,} points (log_batch of 1,000) ...", flush=True)
            ml = self.mlflow.concurrent(p, {"n": mn}, self.tmp / "conc")
            ml_ids = [w["run_id"] for w in ml["workers"]]
            ml["count"] = self._try("MLflow count", self.mlflow.call, "count", {"run_ids": ml_ids, "name": "points"})
        self.raw["runlab"]["concurrent"], self.raw["mlflow"]["concurrent"] = rl, ml

        total = counted["total"] if counted else 0
        rl_ok = bool(counted) and total == p * n and not rl["failed_workers"] and all(
            st == "Completed" for st in counted["statuses"].values())
        for f in rl["failed_workers"]:
            self.errors.append(f"figure 5: a runlab worker failed: {f}")
        ml_cell, ratio = self.ml(), "-"
        if ml:
            ml_total = ml["count"]["total"] if ml["count"] else 0
            ml_errors = sum(len(w.get("errors", [])) for w in ml["workers"]) + len(ml["failed_workers"])
            ml_cell = f"{fmt_time(ml['wall_s'])}, {ml_total:,}/{p * s.ml_conc_n:,} pts"
            if ml_errors:
                ml_cell += f", {ml_errors} errors"
            if ml_total and total:
                ratio = fmt_ratio((total / rl["wall_s"]) / (ml_total / ml["wall_s"])) + " pts/s"
        self.rows.append({"section": f"5. {p} processes logging at once into one workspace (wall: first launch to last exit)"})
        self.rows.append({
            "figure": f"   runlab {p} x {n:,} pts; MLflow {p} x {s.ml_conc_n:,} pts",
            "target": "every point stored",
            "runlab": f"{fmt_time(rl['wall_s'])}, {total:,}/{p * n:,} pts",
            "mlflow": ml_cell,
            "ratio": ratio,
            "verdict": verdict(rl_ok),
        })
        if rl["logging_span_s"] is not None:
            self.rows.append({"figure": "   (first log() to last flush() returned, all processes)",
                              "runlab": fmt_time(rl["logging_span_s"]),
                              "mlflow": fmt_time(ml["logging_span_s"]) if ml and ml["logging_span_s"] else ""})

    # -- all -------------------------------------------------------------------------------------

    def run(self) -> int:
        t0 = time.perf_counter()
        try:
            self.setup()
            for f in sorted(self.figures):
                getattr(self, f"figure{f}")()
        finally:
            if self.args.keep:
                print(f"kept the scratch folder {self.tmp}")
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)
        elapsed = time.perf_counter() - t0
        meta = {
            "when": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
            "python": platform.python_version(),
            "runlab": getattr(self, "runlab_version", None),
            "mlflow": self.mlflow_version,
            "mlflow_store": "SQLite backend store (sqlite:///...)" if self.mlflow else self.mlflow_note,
            "runlab_store": "embedded workspace folder (SQLite, WAL)",
            "mode": "quick" if self.args.quick else "full",
            "profiled": bool(self.args.profile),
            "elapsed_s": elapsed,
        }
        print()
        print(f"runlab {meta['runlab']} vs MLflow {meta['mlflow'] or '-'} ({meta['mlflow_store']}); "
              f"Python {meta['python']}; {meta['machine']}; {meta['mode']} sizes; took {elapsed:.0f} s")
        if self.args.profile:
            print("NOTE: --profile ran runlab's side under cProfile: its figures are slowed down by it.")
        print()
        print_table(self.rows)
        if self.errors:
            print("\nerrors:")
            for e in self.errors:
                print("  - " + e.replace("\n", "\n    "))
        out = Path(self.args.out) if self.args.out else HERE / "out" / ("tracking-quick.json" if self.args.quick else "tracking.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"meta": meta, "sizes": asdict(self.sizes), "rows": self.rows,
                                   "errors": self.errors, "raw": self.raw}, indent=2) + "\n")
        print(f"\nfigures written to {out}")
        return 1 if self.errors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about a minute)")
    parser.add_argument("--skip-mlflow", action="store_true", help="runlab's side only")
    parser.add_argument("--figures", default="", help="comma-separated subset of 1,2,3,4,5 (default: all)")
    parser.add_argument("--mlflow-python", default=None,
                        help="an interpreter that has mlflow, sqlalchemy and alembic (default: the venv below)")
    parser.add_argument("--mlflow-venv", default=str(DEFAULT_MLFLOW_VENV),
                        help="MLflow's own venv, created on first run (default: %(default)s)")
    parser.add_argument("--out", default=None, help="JSON output (default: benchmarks/out/tracking.json)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed to one measuring process")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder with both stores")
    parser.add_argument("--profile", action="store_true",
                        help="run runlab's log-loop/ingest/read under cProfile: stats to benchmarks/out/runlab-*.prof, "
                             "top entries to stderr (slows runlab's figures)")
    args = parser.parse_args(argv)
    return Bench(args).run()


if __name__ == "__main__":
    sys.exit(main())
