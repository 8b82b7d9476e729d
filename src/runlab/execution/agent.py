"""The agent of a compute target: takes its queued runs through their lifecycle on this machine.

``python -m runlab.execution.agent WORKSPACE_FOLDER TARGET``, started by ``ensure_agent``.

Queued -> Preparing (environment from the cache, or built) -> Starting (snapshot unpacked into
a run folder) -> Running (the script in its own process group; stdout and stderr go to the
driver log, ``./logs`` is uploaded as it grows) -> Finalizing (``./outputs`` uploaded) ->
Completed / Failed (exit code, end of stderr) / Canceled.

The main thread owns every script (so that the kernel kills it if the agent dies:
PR_SET_PDEATHSIG), polls them, heartbeats the runs it owns, and claims new runs while it has
free nodes. Preparing happens in a worker thread, as a build can take a while; a cancel stops it
(the build's processes are killed). Every child is a :class:`~runlab.execution.processes.ProcessGroup`:
when a script exits, what it left running is killed, and the agent's watchdog kills the groups of
an agent that dies, so that nothing a run started outlives it.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from filelock import Timeout

from runlab.core.entities import RunRecord
from runlab.core.errors import ComputeTargetException, RunlabError, StoreError
from runlab.core.layout import AGENT_LOG, BUILD_LOG, DRIVER_LOG
from runlab.core.names import id_problem
from runlab.core.process import current_identity
from runlab.core.settings import load_settings
from runlab.core.status import RunStatus
from runlab.execution.distributed import launcher_argv, rank_log_name, read_status, threads_per_rank
from runlab.execution.environments import EnvironmentDefinition, build_environment
from runlab.execution.inputs import PreparedInputs, prepare_inputs
from runlab.execution.monitoring import RunMonitor
from runlab.execution.processes import ProcessGroup, guard_children
from runlab.execution.snapshot import SnapshotStore
from runlab.execution.targets import (
    TargetSettings,
    agent_lock,
    agent_starting_path,
    agent_state_path,
    ensure_agent,
    open_wake_fifo,
)
from runlab.store.folder import WorkspaceFolder
from runlab.store.paths import folder_files
from runlab.tracking import delivery  # noqa: F401 - installs WorkspaceFolder.journal_replayer (see store.folder)

LOG_SHIP_MAX = 4 << 20  # bytes of one log sent to a server in one request
POLL_S = 0.05
IDLE_AFTER_S = 5.0  # with no run for this long, the agent waits to be woken instead of looking at its queue
IDLE_POLL_S = 1.0  # an agent of a server's workspace on another machine (nothing here can wake it) looks this often
# an idle agent waits to be woken (targets.wake_agent) and still looks this often: a wake-up lost is a short delay
IDLE_WAIT_S = float(os.environ.get("RUNLAB_AGENT_IDLE_WAIT", "30") or 30)
REAP_BEFORE_CLAIM_S = 5.0  # how often an agent with a free slot looks for lost runs holding the target's nodes
LOCK_WAIT_S = 2.0  # a reader probing whether the agent runs holds its lock for an instant
CANCEL_GRACE_S = 10.0
PUMP_POLL_S = 0.1
PUMP_DRAIN_READS = 64  # after the script exited: what is in its stderr pipe now, not what an escapee writes
PUMP_JOIN_S = 5.0
LOGS_SYNC_S = 2.0
SETTINGS_REFRESH_S = 5.0
STDERR_TAIL_LINES = 30


@dataclass
class LaunchPlan:
    argv: list[str]
    cwd: Path
    env: dict[str, str]


@dataclass
class Slot:
    record: RunRecord
    workdir: Path
    thread: threading.Thread | None = None
    plan: LaunchPlan | None = None
    prepare_error: BaseException | None = None
    cancel: threading.Event = field(default_factory=threading.Event)  # set: stop preparing
    proc: ProcessGroup | None = None
    pump: threading.Thread | None = None
    pump_stop: threading.Event = field(default_factory=threading.Event)  # set: the script exited
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=STDERR_TAIL_LINES))
    started: float = 0.0
    deadline: float | None = None
    stop_reason: str | None = None  # "cancel" or "timeout"
    term_sent_at: float | None = None
    logs_synced: dict[str, tuple[int, float]] = field(default_factory=dict)
    inputs: PreparedInputs | None = None  # the run's datasets, made available while preparing
    last_logs_sync: float = 0.0
    monitor: RunMonitor | None = None  # samples the script's system metrics while it runs
    ranks: int = 1  # processes of a distributed run (execution.distributed's launcher leads them)

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def ranks_status(self) -> Path:
        """Where a distributed run's launcher says which rank failed (beside the run folder, not in it)."""
        return self.workdir.with_name(f"{self.run_id}.ranks.json")


class Agent:
    def __init__(self, folder: WorkspaceFolder, target: str, *, stay: bool = False) -> None:
        """``stay``: serve until SIGTERM, never scaling down (an agent a person started on a machine
        that joins a runlab server, ``runlab agent --server``)."""
        self.folder = folder
        self.remote = bool(getattr(folder, "remote", False))  # a server's workspace, reached over HTTP
        self.stay = stay
        self._shipped: dict[tuple[str, str], int] = {}  # remote: local log file -> bytes sent to the server
        self.target = target
        self.store = folder.store
        self.artifacts = folder.artifacts
        self.identity = current_identity()
        self.settings = TargetSettings.load(folder, target)
        self.slots: dict[str, Slot] = {}
        self._last_heartbeat = 0.0
        self._last_reap = -REAP_BEFORE_CLAIM_S  # the first turn looks
        self._last_settings = time.monotonic()
        self._idle_since = time.monotonic()
        self._heartbeat_s = load_settings().heartbeat_interval_s
        self._stop_requested = False  # SIGTERM (targets.stop_agent): finish the runs it has, then exit

    # -- the loop --------------------------------------------------------------------------

    def serve(self) -> int:
        lock = agent_lock(self.folder, self.target)
        try:
            lock.acquire(timeout=LOCK_WAIT_S)
        except Timeout:
            agent_starting_path(self.folder, self.target).unlink(missing_ok=True)  # no agent to wait for
            self._say(f"another agent serves {self.target}; exiting")
            return 0
        scaled_down = False
        try:
            self._write_state()
            agent_starting_path(self.folder, self.target).unlink(missing_ok=True)
            try:
                watchdog = f"watchdog pid {guard_children()}"
            except OSError as exc:  # runs still go; only what a killed agent's scripts started may outlive it
                watchdog = f"no watchdog ({exc})"
            self._say(f"agent for {self.target} started (max_nodes={self.settings.max_nodes}, "
                      f"idle_seconds_before_scaledown={self.settings.idle_seconds}, {watchdog})")
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, lambda _sig, _frame: setattr(self, "_stop_requested", True))
            self._open_wake()
            while True:
                busy = self.step()
                if self._stop_requested and not busy:
                    self._say("asked to stop (SIGTERM) and idle: exiting")
                    scaled_down = True
                    break
                if busy:
                    self._idle_since = time.monotonic()
                elif not self.stay and time.monotonic() - self._idle_since > self.settings.idle_seconds:
                    self._say(f"idle for {self.settings.idle_seconds} s: scaling down")
                    scaled_down = True
                    break
                if busy or time.monotonic() - self._idle_since < IDLE_AFTER_S:
                    time.sleep(POLL_S)
                else:
                    self._wait_idle()
        finally:
            self._close_wake()
            agent_state_path(self.folder, self.target).unlink(missing_ok=True)
            lock.release()
        # a submit that saw this agent alive just before it let go of the lock: serve it
        if scaled_down and not self.stay and self.store.count_runs_by_status(self.target).get(RunStatus.QUEUED):
            ensure_agent(self.folder, self.target)
        return 0

    # -- idle: waiting to be woken ------------------------------------------------------------

    def _open_wake(self) -> None:
        """The target's wake-up FIFO (``agents/<target>.wake``: a submit writes a byte into it) and a pipe
        that signals write into (SIGTERM ends the wait at once). Neither: the agent polls (IDLE_POLL_S)."""
        self._wake_fds: list[int] = []
        self._signal_pipe: tuple[int, int] | None = None
        if self.remote or not hasattr(os, "mkfifo"):
            return
        try:
            self._wake_fds = open_wake_fifo(self.folder, self.target)
        except OSError as exc:
            self._say(f"no wake-up channel ({exc}): looking at the queue every {IDLE_POLL_S:g} s when idle")
            return
        if threading.current_thread() is threading.main_thread():
            r, w = os.pipe()
            os.set_blocking(w, False)
            os.set_blocking(r, False)
            try:
                signal.set_wakeup_fd(w, warn_on_full_buffer=False)
                self._signal_pipe = (r, w)
            except ValueError:
                os.close(r)
                os.close(w)

    def _wait_idle(self) -> None:
        """Idle: wait until woken (a submit, a signal) or for the next look at the queue, whichever is first."""
        if not self._wake_fds:
            time.sleep(IDLE_POLL_S)
            return
        timeout = IDLE_WAIT_S
        if not self.stay:  # wake up in time to scale down
            timeout = min(timeout, max(0.05, self.settings.idle_seconds - (time.monotonic() - self._idle_since)))
        watched = [self._wake_fds[0]] + ([self._signal_pipe[0]] if self._signal_pipe else [])
        try:
            ready, _, _ = select.select(watched, [], [], timeout)
        except (OSError, ValueError):
            time.sleep(IDLE_POLL_S)
            return
        for fd in ready:
            _drain(fd)

    def _close_wake(self) -> None:
        fds = list(getattr(self, "_wake_fds", []))
        pipe = getattr(self, "_signal_pipe", None)
        if pipe is not None:
            try:
                signal.set_wakeup_fd(-1)
            except ValueError:
                pass
            fds += list(pipe)
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_fds, self._signal_pipe = [], None

    def step(self) -> bool:
        """One turn of the loop; True while there is work."""
        self._refresh_settings()
        for slot in list(self.slots.values()):
            try:
                self._advance(slot)
            except Exception as exc:  # one run's trouble must not stop the others
                self._fail(slot, f"the agent failed while handling the run: {exc}", "AgentError", exc)
        if time.time() - self._last_heartbeat >= self._heartbeat_s:
            self._heartbeat()
        self._ship_logs()
        if len(self.slots) < self.settings.max_nodes:
            self._reap_before_claiming()
        while len(self.slots) < self.settings.max_nodes:
            record = self.store.claim_queued_run(self.target, self.identity, max_active=self.settings.max_nodes)
            if record is None:
                break
            self._start(record)
        return bool(self.slots)

    def _reap_before_claiming(self) -> None:
        """The runs of an agent that died hold the target's max_nodes (claims count every agent's runs)
        until they are marked lost: look for such runs, at most every REAP_BEFORE_CLAIM_S, while this
        agent has a free slot. (Readers of the store reap too, but nothing may be reading.)"""
        now = time.monotonic()
        if now - self._last_reap < REAP_BEFORE_CLAIM_S:
            return
        self._last_reap = now
        try:
            self.store.reap_stale_runs(load_settings().heartbeat_timeout_s)
        except RunlabError as exc:  # the next turn tries again; the claim below says what is wrong
            self._say(f"could not look for lost runs of {self.target}: {exc}")

    # -- one run ---------------------------------------------------------------------------

    def _start(self, record: RunRecord) -> None:
        if id_problem(record.run_id) is not None:  # planted in the database: it must not name a folder to rmtree
            self.store.set_status(record.run_id, RunStatus.FAILED, error={
                "message": f"the run id breaks the id rule ({id_problem(record.run_id)}): not run", "code": "InvalidRunId"})
            return
        workdir = self.folder.path / "work" / record.run_id
        slot = Slot(record=record, workdir=workdir)
        self.slots[record.run_id] = slot
        self._run_log(slot, f"claimed by agent {self.identity} on target {self.target}")
        slot.thread = threading.Thread(target=self._prepare, args=(slot,), name=f"prepare-{record.run_id}", daemon=True)
        slot.thread.start()
        self._write_state()

    def _prepare(self, slot: Slot) -> None:
        try:
            slot.plan = self._make_plan(slot)
        except BaseException as exc:
            slot.prepare_error = exc

    def _make_plan(self, slot: Slot) -> LaunchPlan:
        record = slot.record
        definition = dict(record.definition or {})
        env_def = EnvironmentDefinition.from_dict(definition["environment"])
        log_path = self._log_path(record.run_id, BUILD_LOG)
        with open(log_path, "a", encoding="utf-8") as build_log:
            def progress(line: str) -> None:
                build_log.write(f"{_stamp()} {line}\n")
                build_log.flush()

            built = build_environment(env_def, load_settings().environments_dir, progress=progress,
                                      cancel=slot.cancel)
            for warning in built.warnings:
                progress(f"warning: {warning}")
            if built.cached:
                progress(f"environment {built.hash[:12]} found in the cache ({built.env_dir}): nothing to build")
            elif built.log_path and Path(built.log_path).is_file():
                build_log.write(Path(built.log_path).read_text(errors="replace"))
        self.store.update_definition(record.run_id, {"environmentHash": built.hash, "python": str(built.python_path)})
        self._run_log(slot, f"environment ready: {built.python_path} ({'cached' if built.cached else 'built'}, "
                            f"{built.seconds:.2f} s)")
        inputs = slot.inputs = prepare_inputs(self.folder, record.run_id, definition, cancel=slot.cancel,
                                              say=lambda line: self._run_log(slot, line))
        self._mark_starting(slot, record)
        self._unpack_snapshot(slot, definition["snapshotId"])
        (slot.workdir / "outputs").mkdir(exist_ok=True)
        (slot.workdir / "logs").mkdir(exist_ok=True)
        self._run_log(slot, f"snapshot {definition['snapshotId'][:12]} unpacked into {slot.workdir}")
        for line in inputs.place(slot.workdir):
            self._run_log(slot, line)
        env = {**os.environ, **self._run_variables(record, env_def)}
        env.pop("VIRTUAL_ENV", None)
        env.update(self._server_variables(record.run_id, env))
        python = str(built.python_path)
        bin_dir = str(Path(python).parent)
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        slot.ranks = int(definition.get("processCount") or 1)
        # torch (intra-op threads) and the BLAS libraries read these; the environment's own values win;
        # a distributed run's ranks share the run's threads
        threads = threads_per_rank(self.settings.threads_per_run, slot.ranks)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
            env.setdefault(var, str(threads))
        env.update(inputs.variables(env))
        arguments = inputs.expand(definition)
        if inputs.values:
            with open(self._log_path(record.run_id, DRIVER_LOG), "a", encoding="utf-8") as driver:
                driver.write("".join(f"runlab: {line}\n" for line in inputs.driver_lines()))
                driver.write(f"runlab: arguments as submitted: {json.dumps(definition.get('arguments', []))}\n"
                             f"runlab: arguments after expansion: {json.dumps(arguments)}\n")
        command = definition.get("command")
        if command:
            argv = ["/bin/sh", "-c", command] if isinstance(command, str) else [str(c) for c in command]
        else:
            argv = [python, definition["script"], *arguments]
        if slot.ranks > 1:
            slot.ranks_status.unlink(missing_ok=True)
            rank_logs = [self._log_path(record.run_id, rank_log_name(i)) for i in range(slot.ranks)]
            argv = launcher_argv(slot.ranks, slot.ranks_status, argv, rank_logs)
            self._run_log(slot, f"distributed: {slot.ranks} processes (RANK 0 to {slot.ranks - 1}), "
                                f"{threads} thread(s) each")
        return LaunchPlan(argv=inputs.protect(argv), cwd=slot.workdir, env=env)

    def _launch(self, slot: Slot) -> None:
        assert slot.plan is not None
        driver_path = self._log_path(slot.run_id, DRIVER_LOG)
        stdout = open(driver_path, "ab")
        try:
            slot.proc = ProcessGroup(
                slot.plan.argv, cpus=self.settings.cpus_per_run, cwd=slot.plan.cwd, env=slot.plan.env,
                stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE,
            )
        finally:
            stdout.close()
        slot.pump = threading.Thread(target=_pump_stderr,
                                     args=(slot.proc.stderr, driver_path, slot.stderr_tail, slot.pump_stop),
                                     name=f"stderr-{slot.run_id}", daemon=True)
        slot.pump.start()
        slot.started = time.monotonic()
        limit = (slot.record.definition or {}).get("maxRunDurationSeconds")
        slot.deadline = slot.started + float(limit) if limit else None
        # not over CancelRequested: the next turn stops the script
        self.store.set_status(slot.run_id, RunStatus.RUNNING, only_if_status=[RunStatus.STARTING])
        self._run_log(slot, f"running: {' '.join(slot.plan.argv)} (pid {slot.proc.pid})")
        slot.monitor = RunMonitor.start(self.folder, slot.run_id, slot.proc.pid, lambda line: self._run_log(slot, line),
                                        (slot.record.definition or {}).get("systemMetricsIntervalSeconds"))

    def _advance(self, slot: Slot) -> None:
        if slot.proc is None:
            if slot.thread is not None and slot.thread.is_alive():
                if slot.stop_reason is None and self._status(slot) == RunStatus.CANCEL_REQUESTED:
                    slot.stop_reason = "cancel"
                    slot.cancel.set()  # the build's processes are killed; preparing ends at once
                    self._run_log(slot, "cancel requested while preparing: stopping it")
                return
            if slot.stop_reason == "cancel" or self._status(slot) == RunStatus.CANCEL_REQUESTED:
                self._end(slot, RunStatus.CANCELED, None)
                return
            if slot.prepare_error is not None:
                exc = slot.prepare_error
                self._fail(slot, f"preparing the run failed: {exc}", type(exc).__name__, exc)
                return
            self._launch(slot)
            return
        now = time.monotonic()
        if now - slot.last_logs_sync >= LOGS_SYNC_S:
            self._sync_logs(slot)
        code = slot.proc.poll()
        if code is not None:
            self._finalize(slot, code)
            return
        if slot.stop_reason is None:
            if self._status(slot) == RunStatus.CANCEL_REQUESTED:
                slot.stop_reason = "cancel"
            elif slot.deadline is not None and now > slot.deadline:
                slot.stop_reason = "timeout"
            if slot.stop_reason is not None:
                self._run_log(slot, f"stopping the script ({slot.stop_reason}): SIGTERM to its process group")
                slot.proc.signal(signal.SIGTERM)
                slot.term_sent_at = now
        elif slot.term_sent_at is not None and now - slot.term_sent_at > CANCEL_GRACE_S:
            self._run_log(slot, f"still running {CANCEL_GRACE_S:.0f} s after SIGTERM: SIGKILL")
            slot.proc.signal(signal.SIGKILL)
            slot.term_sent_at = None

    def _finalize(self, slot: Slot, code: int) -> None:
        # the group is gone (ProcessGroup.poll killed what the script left running): read what the
        # pipe holds and stop, rather than wait for a writer that escaped the group
        self._stop_monitor(slot)  # its last samples are written before the run ends
        slot.pump_stop.set()
        if slot.pump is not None:
            slot.pump.join(timeout=PUMP_JOIN_S)
        self.store.set_status(slot.run_id, RunStatus.FINALIZING, only_if_active=True)
        self._run_log(slot, f"script exited with code {code}; uploading outputs and logs")
        uploaded = self._upload_folder(slot, "outputs")
        self._sync_logs(slot)
        self._run_log(slot, f"uploaded {uploaded} output file(s)")
        if slot.stop_reason == "cancel":
            self._end(slot, RunStatus.CANCELED, None)
        elif slot.stop_reason == "timeout":
            limit = (slot.record.definition or {}).get("maxRunDurationSeconds")
            self._end(slot, RunStatus.FAILED, {
                "message": f"the run exceeded max_run_duration_seconds={limit} and was stopped",
                "code": "MaxRunDurationExceeded", "exit_code": code,
            })
        elif code == 0:
            self._end(slot, RunStatus.COMPLETED, None)
        else:
            failed = read_status(slot.ranks_status) if slot.ranks > 1 else None
            rank = failed.get("rank") if failed is not None else None
            if failed is not None and isinstance(rank, int):
                code = int(failed.get("exit_code", code))
                tail = str(failed.get("stderr_tail", "")).rstrip()
            else:
                tail = "".join(slot.stderr_tail).rstrip()
            last = tail.splitlines()[-1] if tail else "no output on stderr"
            reason = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
            who = "the script" if rank is None else f"rank {rank} of {slot.ranks}"
            error: dict[str, Any] = {"message": f"{who} {reason}: {last}", "code": "ScriptFailed", "exit_code": code,
                                     "stderr_tail": tail}
            if rank is not None:
                error["rank"] = rank
            self._end(slot, RunStatus.FAILED, error)

    def _fail(self, slot: Slot, message: str, code: str, exc: BaseException | None = None) -> None:
        if slot.proc is not None:
            slot.proc.kill()
        detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)) if exc is not None else ""
        if detail and not isinstance(exc, RunlabError):
            self._run_log(slot, detail)
        self._end(slot, RunStatus.FAILED, {"message": message, "code": code})

    def _end(self, slot: Slot, status: RunStatus, error: dict[str, Any] | None) -> None:
        slot.cancel.set()  # a build still going stops
        if slot.proc is not None:
            slot.proc.kill()  # nothing of the run outlives it
        self._stop_monitor(slot)
        slot.pump_stop.set()
        self._ship_logs(slot.run_id, final=True)
        # over_lost: a run presumed dead (its heartbeats starved on a loaded machine) ends as it really did
        self.store.set_status(slot.run_id, status, error=error, only_if_active=True, over_lost=True)
        if self.remote:  # the run's own token ends with the run
            self.folder.client.request("DELETE", f"/api/remote/runs/{slot.run_id}/token")  # type: ignore[attr-defined]
        elif getattr(self.folder, "server_url", None):
            from runlab.store.sql.tokens import revoke_run_tokens

            revoke_run_tokens(self.store.engine, slot.run_id)
        self._run_log(slot, f"run {status}" + (f": {error['message']}" if error else ""))
        self.slots.pop(slot.run_id, None)
        if slot.inputs is not None:
            slot.inputs.remove_links()
        shutil.rmtree(slot.workdir, ignore_errors=True)
        slot.ranks_status.unlink(missing_ok=True)
        self._write_state()

    # -- helpers ---------------------------------------------------------------------------

    def _mark_starting(self, slot: Slot, record: RunRecord) -> None:
        """Preparing -> Starting, unless the run was canceled meanwhile (then RunlabError: not started)."""
        if slot.cancel.is_set() or not self.store.set_status(record.run_id, RunStatus.STARTING,
                                                             only_if_status=[RunStatus.PREPARING]):
            raise RunlabError(f"run {record.run_id} is no longer Preparing (canceled?): not starting it",
                              run_id=record.run_id)

    def _unpack_snapshot(self, slot: Slot, snapshot_id: str) -> None:
        """The run's snapshot into its (emptied) working folder; from the server first when remote."""
        if slot.workdir.exists():
            shutil.rmtree(slot.workdir)
        snapshots = SnapshotStore(self.folder.snapshots_dir)
        if self.remote:  # fetched from the server: the files this machine does not have yet
            from runlab.execution.remote import pull_snapshot

            pull_snapshot(self.folder.client, snapshots, snapshot_id)  # type: ignore[attr-defined]
        snapshots.restore(snapshot_id, slot.workdir)

    def _run_variables(self, record: RunRecord, env_def: EnvironmentDefinition) -> dict[str, str]:
        """The environment's variables and the ones that make Run.get_context() this run."""
        return {
            **{str(k): str(v) for k, v in (env_def.environment_variables or {}).items()},
            "RUNLAB_WORKSPACE": str(self.folder.path),
            "RUNLAB_RUN_ID": record.run_id,
            "RUNLAB_RUN_OWNER": "agent",
            "AZUREML_RUN_ID": record.run_id,
            "PYTHONUNBUFFERED": "1",
        }

    def _server_variables(self, run_id: str, env: dict[str, str]) -> dict[str, str]:
        """For a workspace of runlab server: the script reports over HTTP, with a token that can write only
        its run; the store's URL (and its password) and the server's own settings never reach it."""
        server_url = getattr(self.folder, "server_url", None)
        if not server_url:
            return {}
        from runlab.store.hosted import STORE_URL_ENV

        for private in (STORE_URL_ENV, "RUNLAB_SERVER_CONFIG", "RUNLAB_SERVER_URL", "RUNLAB_TOKEN"):
            env.pop(private, None)
        if self.remote:  # this agent's own token stays its own: the server issues the run's
            token = str(self.folder.client.post_json(f"/api/remote/runs/{run_id}/token", {})["token"])  # type: ignore[attr-defined]
        else:
            from runlab.store.sql.tokens import issue_run_token

            token = issue_run_token(self.store.engine, run_id, None)
        return {"RUNLAB_SERVER": str(server_url), "RUNLAB_WORKSPACE": self.folder.workspace_id, "RUNLAB_TOKEN": token}

    def _log_path(self, run_id: str, name: str) -> Path:
        """Where the agent appends run log ``name`` live: the run's file itself in a folder on this
        machine; for a server's workspace a file here whose new bytes :meth:`_ship_logs` sends on."""
        local = None if self.remote else self.artifacts.local_path(run_id, name)
        if local is not None:
            return Path(local)
        path = self.folder.path / "logs" / run_id / name  # a server's files (over HTTP, or in its bucket)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._shipped.setdefault((run_id, name), 0)
        return path

    def _ship_logs(self, run_id: str | None = None, final: bool = False) -> None:
        """Send the server what its runs' logs gained since the last turn (all of it when ``final``,
        then forget them). A server that is away keeps the bytes here for a later turn."""
        for (rid, name), sent in list(self._shipped.items()):
            if run_id is not None and rid != run_id:
                continue
            try:
                with open(self.folder.path / "logs" / rid / name, "rb") as f:
                    f.seek(sent)
                    while data := f.read(LOG_SHIP_MAX):
                        self.artifacts.append_bytes(rid, name, data)
                        sent += len(data)
                        self._shipped[(rid, name)] = sent
                        if not final:
                            break  # the rest at the next turns: a turn stays short
            except OSError:
                continue  # not written yet
            except StoreError as exc:
                self._say(f"could not send {name} of run {rid} to the server now: {exc}")
                return
        if final:
            for key in [k for k in self._shipped if k[0] == run_id]:
                del self._shipped[key]
            shutil.rmtree(self.folder.path / "logs" / str(run_id), ignore_errors=True)

    def _status(self, slot: Slot) -> RunStatus:
        return self.store.get_run(slot.run_id).status

    def _stop_monitor(self, slot: Slot) -> None:
        monitor, slot.monitor = slot.monitor, None
        if monitor is not None:
            monitor.stop()

    def _upload_folder(self, slot: Slot, name: str) -> int:
        """Upload ./NAME of the run's folder (store.paths.folder_files: a link that leads outside it is
        not followed, and the agent log says so); the number of files uploaded."""
        folder = slot.workdir / name
        if not folder.is_dir():  # itself a link to a folder: that folder (as Datastore.upload and models take one)
            return 0
        try:
            files, outside = folder_files(folder)
        except OSError as exc:
            self._run_log(slot, f"cannot read ./{name}: {exc}: not uploaded")
            return 0
        for rel, target in outside:
            self._run_log(slot, f"{name}/{rel} is a link to {target}, outside ./{name}: not uploaded")
        for rel, path in files:
            self.artifacts.put_file(slot.run_id, f"{name}/{rel}", Path(path))
        return len(files)

    def _sync_logs(self, slot: Slot) -> None:
        """Upload files of ./logs that changed since the last sync."""
        slot.last_logs_sync = time.monotonic()
        folder = slot.workdir / "logs"
        if not folder.is_dir():
            return
        for path in folder.rglob("*"):
            if not path.is_file():
                continue
            stat = path.stat()
            key = path.relative_to(folder).as_posix()
            if slot.logs_synced.get(key) != (stat.st_size, stat.st_mtime):
                self.artifacts.put_file(slot.run_id, f"logs/{key}", path)
                slot.logs_synced[key] = (stat.st_size, stat.st_mtime)

    def _heartbeat(self) -> None:
        self._last_heartbeat = time.time()
        for run_id in list(self.slots):
            self.store.heartbeat(run_id, self.identity)
        self._write_state()

    def _write_state(self) -> None:
        state = {
            "pid": os.getpid(), "identity": self.identity, "target": self.target,
            "max_nodes": self.settings.max_nodes, "busy": len(self.slots), "runs": sorted(self.slots),
            "seen_at": time.time(),
        }
        path = agent_state_path(self.folder, self.target)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, path)

    def _refresh_settings(self) -> None:
        if time.monotonic() - self._last_settings < SETTINGS_REFRESH_S:
            return
        self._last_settings = time.monotonic()
        try:
            self.settings = TargetSettings.load(self.folder, self.target)
        except ComputeTargetException:
            self.settings = TargetSettings(self.target, 0, 0, None)  # deleted: finish, then exit

    def _run_log(self, slot: Slot, line: str) -> None:
        self.artifacts.append_bytes(slot.run_id, AGENT_LOG, f"{_stamp()} {line}\n".encode())

    def _say(self, line: str) -> None:
        print(f"{_stamp()} {line}", flush=True)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass
    except OSError:
        pass


def _stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def _pump_stderr(pipe: IO[bytes] | None, driver_path: Path, tail: deque[str], stop: threading.Event) -> None:
    """Copy the script's stderr into the driver log, keeping its last lines in ``tail``.

    Ends at end of file, or once ``stop`` is set (the script exited) and the pipe holds nothing
    more: a process that left the script's group may keep the pipe open for ever.
    """
    if pipe is None:
        return
    fd = pipe.fileno()
    partial = b""
    drained = 0
    with open(driver_path, "ab", buffering=0) as out:
        while drained < PUMP_DRAIN_READS:
            stopping = stop.is_set()
            ready, _, _ = select.select([fd], [], [], 0 if stopping else PUMP_POLL_S)
            if not ready:
                if stopping:
                    break
                continue
            data = os.read(fd, 65536)
            if not data:
                break
            if stopping:
                drained += 1
            out.write(data)
            lines = (partial + data).split(b"\n")
            partial = lines.pop()
            tail.extend(line.decode(errors="replace") + "\n" for line in lines)
            if len(partial) > 65536:  # a very long line: keep its start
                tail.append(partial.decode(errors="replace"))
                partial = b""
    if partial:
        tail.append(partial.decode(errors="replace"))
    pipe.close()


def make_agent(folder: WorkspaceFolder, target: str, *, stay: bool = False) -> Agent:
    """The agent for ``target``: a :class:`~runlab.execution.ray_target.RayAgent` for a Ray target
    (its runs become Ray jobs), else the local pool's."""
    from runlab.execution.ray_target import RayAgent, is_ray_target

    if is_ray_target(folder, target):
        return RayAgent(folder, target, stay=stay)
    return Agent(folder, target, stay=stay)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m runlab.execution.agent WORKSPACE_FOLDER TARGET", file=sys.stderr)
        return 2
    from runlab.store.hosted import open_folder

    folder = open_folder(args[0])  # RUNLAB_STORE_URL set: the workspace of the runlab server that started it
    try:
        return make_agent(folder, args[1]).serve()
    except RunlabError as exc:
        print(f"agent error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
