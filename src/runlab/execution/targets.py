"""Compute targets on this machine: their settings, and starting their agent on demand.

Each target has at most one agent process; it holds ``<workspace>/agents/<target>.lock`` for
its whole life, so a second one exits at once. ``ensure_agent`` starts one, detached (its own
session), when the lock is free; the agent exits after ``idle_seconds_before_scaledown``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from runlab.core.entities import ComputeTargetRecord
from runlab.core.errors import ComputeTargetException
from runlab.store.folder import WorkspaceFolder

LOCAL = "local"
RESERVED_NAMES = frozenset({"local", "amlcompute", "containerinstance"})
TARGET_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9\-]{1,23}$")  # Azure: 2 to 24 characters
DEFAULT_IDLE_SECONDS = 1800
LOCAL_IDLE_SECONDS = 120

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
    if not TARGET_NAME.match(name):
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


def agents_dir(folder: WorkspaceFolder) -> Path:
    path = folder.path / "agents"
    path.mkdir(parents=True, exist_ok=True)
    return path


def agent_lock(folder: WorkspaceFolder, target: str) -> FileLock:
    return FileLock(str(agents_dir(folder) / f"{target}.lock"))


def agent_state_path(folder: WorkspaceFolder, target: str) -> Path:
    return agents_dir(folder) / f"{target}.json"


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


def ensure_agent(folder: WorkspaceFolder, target: str, python: str | None = None) -> bool:
    """Start the target's agent unless one runs. Returns True when a new one was started."""
    if agent_is_running(folder, target):
        return False
    log_path = agents_dir(folder) / f"{target}.log"
    # A shell puts the agent in the background and exits: the agent is adopted by init, so it
    # outlives the control script, and this process keeps no child (nor zombie) behind.
    subprocess.run(
        ["/bin/sh", "-c", 'exec "$@" </dev/null >>"$RUNLAB_AGENT_LOG" 2>&1 &', "sh",
         python or sys.executable, "-m", "runlab.execution.agent", str(folder.path), target],
        check=True,
        start_new_session=True,
        close_fds=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "RUNLAB_AGENT_LOG": str(log_path)},
    )
    return True


def wait_for_agent_exit(folder: WorkspaceFolder, target: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not agent_is_running(folder, target):
            return True
        time.sleep(0.1)
    return False
