"""Who is running: an identity for this process that survives pid reuse, and a liveness check."""

from __future__ import annotations

import os
import socket


def _start_ticks(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return "?"
    # the command name (field 2) may hold spaces: fields after the last ')' are stable
    return stat.rsplit(")", 1)[1].split()[19]


def hostname() -> str:
    return socket.gethostname()


def current_user() -> str:
    """Who runs this process (recorded with each run as the ``runlab.user`` property)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def current_identity() -> str:
    """``host:pid:start`` of this process."""
    pid = os.getpid()
    return f"{hostname()}:{pid}:{_start_ticks(pid)}"


def is_local_process_dead(identity: str | None) -> bool:
    """True only when ``identity`` names a process on this host that is certainly gone."""
    if not identity:
        return False
    try:
        host, pid_text, start = identity.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != hostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    if start != "?" and _start_ticks(pid) not in (start, "?"):
        return True  # the pid was reused by another process
    # a zombie (killed, not yet reaped by its parent) is dead for our purpose
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().decode(errors="replace").rsplit(")", 1)[1].split()[0]
        return state in ("Z", "X")
    except OSError:
        return False
