"""Compute targets on this machine: their settings, and starting their agent on demand.

Each target has at most one agent process; it holds ``<workspace>/agents/<target>.lock`` for
its whole life, so a second one exits (after a moment's wait: a reader probing the lock holds it
for an instant). ``ensure_agent`` starts one, detached (its own session), when the lock is free
and no agent is starting (``<target>.starting``, removed by the agent once it decided); the agent
exits after ``idle_seconds_before_scaledown``.

An agent that dies (killed, out of memory) leaves its queue behind: readers call
``restart_dead_agents`` with what they read, so that the next read of a queued run, of a run list
or of the target starts a new agent, as the next submit would (:class:`AgentState` ``Down``).
"""

from __future__ import annotations

import enum
import json
import os
import re
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from filelock import FileLock, Timeout

from runlab.core.assets import ComputeTargetRecord
from runlab.core.errors import ComputeTargetException, StoreError
from runlab.core.names import check_id
from runlab.core.status import RunStatus
from runlab.store.folder import WorkspaceFolder

LOCAL = "local"
RESERVED_NAMES = frozenset({"local", "amlcompute", "containerinstance"})
TARGET_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9\-]{1,23}")  # Azure: 2 to 24 characters
DEFAULT_IDLE_SECONDS = 1800
LOCAL_IDLE_SECONDS = 120
AGENT_CHECK_INTERVAL_S = 2.0  # a process looks at most this often whether a target's agent is down
AGENT_START_GRACE_S = 30.0  # an agent started this long ago that holds no lock yet is presumed dead

# vCPUs of the Azure sizes tutorials use; other sizes are recorded and not capped.
VM_SIZE_CPUS = {
    "STANDARD_D1_V2": 1, "STANDARD_D2_V2": 2, "STANDARD_D3_V2": 4, "STANDARD_D4_V2": 8, "STANDARD_D5_V2": 16,
    "STANDARD_D11_V2": 2, "STANDARD_D12_V2": 4, "STANDARD_D13_V2": 8, "STANDARD_D14_V2": 16,
    "STANDARD_DS1_V2": 1, "STANDARD_DS2_V2": 2, "STANDARD_DS3_V2": 4, "STANDARD_DS4_V2": 8,
    "STANDARD_NC6": 6, "STANDARD_NC12": 12, "STANDARD_NC24": 24, "STANDARD_NC6S_V3": 6,
}
_SIZED = re.compile(r"^STANDARD_[A-Z]+(\d+)[A-Z]*_V[3-9]$")  # D2s_v3, E4_v4, F8s_v5: the number is vCPUs


def cpus_for_vm_size(vm_size: str | None) -> int | None:
    if not vm_size:
        return None
    key = vm_size.upper()
    if key in VM_SIZE_CPUS:
        return VM_SIZE_CPUS[key]
    match = _SIZED.match(key)
    return int(match.group(1)) if match else None


def check_target_name(name: str) -> str:
    if not isinstance(name, str) or name.lower() in RESERVED_NAMES:
        raise ComputeTargetException(
            f"{name!r} is a reserved compute target name ({', '.join(sorted(RESERVED_NAMES))}): choose another, "
            "for example 'cpu-cluster'", name=name,
        )
    if not TARGET_NAME.fullmatch(name):
        raise ComputeTargetException(
            f"invalid compute target name {name!r}: use 2 to 24 letters, digits and '-', starting with a letter",
            name=name,
        )
    return name


@dataclass(frozen=True)
class TargetSettings:
    """What the agent needs to know about its target."""

    name: str
    max_nodes: int
    idle_seconds: int
    cpus_per_run: int | None

    @classmethod
    def load(cls, folder: WorkspaceFolder, name: str) -> "TargetSettings":
        if name == LOCAL:
            return cls(LOCAL, max(1, os.cpu_count() or 1), LOCAL_IDLE_SECONDS, None)
        record = folder.store.get_compute_target(name)  # raises ComputeTargetException
        return cls.from_record(record)

    @classmethod
    def from_record(cls, record: ComputeTargetRecord) -> "TargetSettings":
        cpus = cpus_for_vm_size(record.vm_size)
        if cpus is not None:
            cpus = min(cpus, os.cpu_count() or cpus)
        return cls(record.name, record.max_nodes, record.idle_seconds_before_scaledown, cpus)

    @property
    def threads_per_run(self) -> int:
        """Threads for torch and the BLAS libraries of one run: this machine's cores shared among the
        ``max_nodes`` runs that may run at once, and no more than the ``vm_size`` cap. More threads
        than cores contend (one torch thread trained the tutorial 1.6x faster than two on two cores)."""
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        share = max(1, cores // max(1, self.max_nodes))
        return min(share, self.cpus_per_run) if self.cpus_per_run else share


def agents_dir(folder: WorkspaceFolder) -> Path:
    path = folder.path / "agents"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _agent_file(folder: WorkspaceFolder, target: str, suffix: str) -> Path:
    """``agents/<target><suffix>``: the one place a target's name becomes a path (checked by the id rule)."""
    return agents_dir(folder) / (check_id(target, "compute target name", "'cpu-cluster'") + suffix)


def agent_lock(folder: WorkspaceFolder, target: str) -> FileLock:
    return FileLock(str(_agent_file(folder, target, ".lock")))


def agent_state_path(folder: WorkspaceFolder, target: str) -> Path:
    return _agent_file(folder, target, ".json")


def agent_starting_path(folder: WorkspaceFolder, target: str) -> Path:
    """Touched by ``ensure_agent`` when it starts an agent; the agent removes it once it holds the lock."""
    return _agent_file(folder, target, ".starting")


class AgentState(str, enum.Enum):
    """What runs a target's queue now."""

    RUNNING = "Running"  # the agent holds the target's lock
    STARTING = "Starting"  # started moments ago, not serving yet
    STOPPED = "Stopped"  # no agent and nothing queued: scaled down to zero nodes
    DOWN = "Down"  # no agent while runs are queued: it died (the next reader starts one)

    def __str__(self) -> str:
        return self.value


def agent_state(folder: WorkspaceFolder, target: str, queued_runs: int) -> AgentState:
    """The state of ``target``'s agent, given how many of its runs are Queued."""
    if agent_is_running(folder, target):
        return AgentState.RUNNING
    if _is_starting(folder, target):
        return AgentState.STARTING
    return AgentState.DOWN if queued_runs else AgentState.STOPPED


def _is_starting(folder: WorkspaceFolder, target: str) -> bool:
    try:
        started = agent_starting_path(folder, target).stat().st_mtime
    except OSError:
        return False
    return time.time() - started < AGENT_START_GRACE_S


def agent_is_running(folder: WorkspaceFolder, target: str) -> bool:
    lock = agent_lock(folder, target)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def read_agent_state(folder: WorkspaceFolder, target: str) -> dict[str, Any] | None:
    if not agent_is_running(folder, target):
        return None
    try:
        state = json.loads(agent_state_path(folder, target).read_text())
        return state if isinstance(state, dict) else None
    except (OSError, ValueError):
        return None


def agent_wake_path(folder: WorkspaceFolder, target: str) -> Path:
    """``agents/<target>.wake``: a FIFO the idle agent waits on; a byte written into it wakes it."""
    return _agent_file(folder, target, ".wake")


def open_wake_fifo(folder: WorkspaceFolder, target: str) -> list[int]:
    """For the agent: [read end, its own write end] of the target's wake-up FIFO, made if needed. Holding
    a write end itself keeps the read end from reporting end-of-file whenever a waker closes it."""
    path = agent_wake_path(folder, target)
    try:
        if not stat.S_ISFIFO(os.lstat(path).st_mode):
            path.unlink()  # a planted file or link: never opened
            os.mkfifo(path, 0o600)
    except FileNotFoundError:
        os.mkfifo(path, 0o600)
    flags = os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    read_fd = os.open(path, os.O_RDONLY | flags)
    try:
        write_fd = os.open(path, os.O_WRONLY | flags)
    except OSError:
        os.close(read_fd)
        raise
    return [read_fd, write_fd]


def wake_agent(folder: WorkspaceFolder, target: str) -> bool:
    """Wake the target's idle agent (its queue has something new); False when none listens."""
    try:
        fd = os.open(agent_wake_path(folder, target),
                     os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0))
    except OSError:  # ENXIO: no agent has it open; ENOENT: none made it; ELOOP: a planted link
        return False
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
        os.write(fd, b"\x01")
    except BlockingIOError:
        pass  # full of wake-ups already: it is awake
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def ensure_agent(folder: WorkspaceFolder, target: str, python: str | None = None) -> bool:
    """Start the target's agent unless one runs or is starting (then wake it: its queue may have something
    new). Returns True when a new one was started.

    "Starting": one was started moments ago and has not taken the lock yet (a burst of submits
    starts one agent, not one each)."""
    if getattr(folder, "remote", False):  # a workspace of runlab server: its agents run beside it
        client = folder.client  # type: ignore[attr-defined]
        path = f"/api/remote/targets/{check_id(target, 'compute target name', repr('cpu-cluster'))}/agent"
        return bool(client.post_json(path, {}).get("agent_started"))
    if not getattr(folder, "starts_agents", True):
        wake_agent(folder, target)  # an agent of this machine may serve it even so
        return False  # a server run with --no-agents: the agents of other machines claim its runs
    if agent_is_running(folder, target) or _is_starting(folder, target):
        wake_agent(folder, target)
        return False
    log_path = _agent_file(folder, target, ".log")
    starting = agent_starting_path(folder, target)
    starting.touch()
    # A shell puts the agent in the background and exits: the agent is adopted by init, so it
    # outlives the control script, and this process keeps no child (nor zombie) behind.
    try:
        subprocess.run(
            ["/bin/sh", "-c", 'exec "$@" </dev/null >>"$RUNLAB_AGENT_LOG" 2>&1 &', "sh",
             python or sys.executable, "-m", "runlab.execution.agent", str(folder.path), target],
            check=True,
            start_new_session=True,
            close_fds=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "RUNLAB_AGENT_LOG": str(log_path),
                 **_agent_environment(folder)},
        )
    except BaseException:
        starting.unlink(missing_ok=True)
        raise
    return True


def _agent_environment(folder: WorkspaceFolder) -> dict[str, str]:
    """What an agent needs besides the folder: a server's workspace names its store (store.hosted)."""
    extra = getattr(folder, "agent_environment", None)
    return dict(extra()) if callable(extra) else {}


_last_checks: dict[tuple[Path, str | None], float] = {}
_checks_lock = threading.Lock()


def restart_dead_agents(folder: WorkspaceFolder, targets: Iterable[str] | None = None) -> list[str]:
    """Start the agent of each target that is :attr:`AgentState.DOWN`: no agent while runs are Queued.

    Readers call this with the targets of the Queued runs they just read (a run, a run list,
    ``ComputeTarget.get_status``); ``targets=None`` looks at every target that ever had an agent in
    this workspace, counting the queued runs of those whose agent is not running (the studio).
    Cheap: at most one look per target (a lock probe) every ``AGENT_CHECK_INTERVAL_S`` in a process,
    a query only where an agent is gone. A deleted target gets no agent. Returns the targets whose
    agent was started. The store being busy, or the start failing, is left to the next reader.
    """
    if getattr(folder, "remote", False) or not getattr(folder, "starts_agents", True):
        return []  # runlab server watches its own agents; with --no-agents, agents elsewhere serve
    wanted: list[str | None] = [None] if targets is None else [*sorted(set(targets))]
    now = time.monotonic()
    with _checks_lock:
        due = [t for t in wanted if now - _last_checks.get((folder.path, t), -1e9) >= AGENT_CHECK_INTERVAL_S]
        for key in due:
            _last_checks[(folder.path, key)] = now
    started = []
    for key in due:
        candidates = [key] if key is not None else sorted(p.stem for p in (folder.path / "agents").glob("*.lock"))
        for target in candidates:
            try:
                if agent_is_running(folder, target) or _is_starting(folder, target):
                    continue  # ensure_agent would do nothing: spare the queries
                if key is None and not folder.store.count_runs_by_status(target).get(RunStatus.QUEUED):
                    continue
                TargetSettings.load(folder, target)
                if ensure_agent(folder, target):
                    started.append(target)
            except (ComputeTargetException, StoreError, OSError, subprocess.SubprocessError):
                continue  # deleted target: nothing can serve it; otherwise the next reader tries again
    return started


def stop_agent(folder: WorkspaceFolder, target: str, timeout_s: float = 10.0) -> int | None:
    """Stop ``target``'s agent: SIGTERM to the pid in its state file (it finishes the runs it has, then
    exits, releasing its lock), SIGKILL when it is still there after ``timeout_s``. Returns the pid
    stopped, None when no agent ran. Its target starts a new one at the next submit, as after a scale-down."""
    import signal

    state = read_agent_state(folder, target)
    pid = state.get("pid") if state else None
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return None
    if not wait_for_agent_exit(folder, target, timeout_s):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_for_agent_exit(folder, target, 5.0)
    return pid


def wait_for_agent_exit(folder: WorkspaceFolder, target: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not agent_is_running(folder, target):
            return True
        time.sleep(0.1)
    return False
