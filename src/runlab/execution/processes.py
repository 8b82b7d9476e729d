"""Child processes of runlab: each one leads its own process group, and none outlives its group's end.

A :class:`ProcessGroup` is a command started as the leader of a new process group (its own session).
Whatever it starts (a script's ``sleep 300``, the build backends uv runs) joins that group, so that
one ``killpg`` reaches them all:

- :meth:`ProcessGroup.poll` notices that the leader exited and then kills what is left of the group
  *before* reaping the leader (the zombie keeps the group id from being reused meanwhile);
- :meth:`ProcessGroup.kill` kills the whole group now;
- :func:`run` starts a command, waits for it and kills its group when ``cancel`` is set (or on any error).

When the process that started a group dies, its groups must die too, even on SIGKILL. The kernel's
parent-death signal (``PR_SET_PDEATHSIG``, asked for by every child before it runs its command) reaches
the leader only, and only while the *thread* that started it lives: start children from a thread that
outlives them. :func:`guard_children` starts this process's watchdog for the rest: a small process, in a
session of its own, that learns each group id through a pipe and kills every group still open when the
pipe closes, which the kernel does when this process ends, however it ends.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from functools import lru_cache
from typing import IO, Any, Callable, Sequence

__all__ = ["ProcessGroup", "guard_children", "parent_death_signal", "run"]

POLL_S = 0.05
REAP_TIMEOUT_S = 5.0


class ProcessGroup:
    """A command running as the leader of its own process group (see the module docstring)."""

    def __init__(self, argv: Sequence[str], *, cpus: int | None = None, **popen: Any) -> None:
        """Start ``argv``; ``popen`` are :class:`subprocess.Popen` arguments (``cwd``, ``env``,
        ``stdin``, ``stdout``, ``stderr``); ``cpus`` pins it (and its children) to that many CPUs."""
        before_exec = _child_setup(cpus)
        self.popen: subprocess.Popen[bytes] = subprocess.Popen(
            list(argv), start_new_session=True, preexec_fn=before_exec, **popen)
        self._open = True
        _tell_watchdog(f"+{self.popen.pid}")

    @property
    def pid(self) -> int:
        """The leader's pid, which is also the group's id."""
        return self.popen.pid

    @property
    def stderr(self) -> IO[bytes] | None:
        return self.popen.stderr

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def signal(self, sig: int) -> None:
        """Send ``sig`` to every process of the group (nothing once the group was ended)."""
        if self._open:
            _killpg(self.pid, sig)

    def poll(self) -> int | None:
        """The leader's exit code once it exited (what it left running is killed first); None while it runs."""
        if self.popen.returncode is not None:
            return self.popen.returncode
        if not hasattr(os, "waitid"):  # reaps at once: its group id could be reused before the kill
            if self.popen.poll() is None:
                return None
            self._end()
            return self.popen.returncode
        try:
            exited = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:  # reaped elsewhere: Popen knows its code
            exited = True
        if not exited:
            return None
        self._end()
        return self.popen.wait()

    def kill(self) -> int | None:
        """SIGKILL the whole group now; returns the leader's exit code (None if it could not be reaped)."""
        self._end()
        try:
            return self.popen.wait(timeout=REAP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return None

    def _end(self) -> None:
        if self._open:
            self._open = False
            _killpg(self.pid, signal.SIGKILL)
            _tell_watchdog(f"-{self.pid}")


def run(argv: Sequence[str], *, cancel: threading.Event | None = None, **popen: Any) -> int:
    """Run ``argv`` in its own process group to the end and return its exit code.

    Its group is killed when it exits (nothing it started outlives it), when ``cancel`` is set
    (the code is then that of the killed leader: check ``cancel`` to tell), and on any exception,
    KeyboardInterrupt included."""
    group = ProcessGroup(argv, **popen)
    try:
        while True:
            code = group.poll()
            if code is not None:
                return code
            if cancel is not None and cancel.is_set():
                killed = group.kill()
                return -signal.SIGKILL if killed is None else killed
            time.sleep(POLL_S)
    finally:
        group.kill()


# -- the parent-death signal -------------------------------------------------------------------


@lru_cache(maxsize=1)
def _pdeathsig_setter() -> Callable[[], None]:
    """A function for the child (before exec) that asks Linux to SIGKILL it if its parent thread dies."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return lambda: None
    pr_set_pdeathsig = 1

    def setter() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)

    return setter


def parent_death_signal() -> Callable[[], None]:
    """A ``preexec_fn`` for a child that must die with the thread that starts it (PR_SET_PDEATHSIG),
    for children that stay in their parent's group (a distributed run's ranks)."""
    return _child_setup(None)


def _child_setup(cpus: int | None) -> Callable[[], None]:
    set_pdeathsig = _pdeathsig_setter()

    def before_exec() -> None:
        set_pdeathsig()
        if cpus:
            os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cpus])

    return before_exec


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# -- the watchdog ------------------------------------------------------------------------------

_watchdog: subprocess.Popen[bytes] | None = None
_watchdog_lock = threading.Lock()


def guard_children() -> int:
    """Start this process's watchdog (once): the groups it starts from now on are killed when it dies,
    even by SIGKILL. Returns the watchdog's pid."""
    global _watchdog
    with _watchdog_lock:
        if _watchdog is None or _watchdog.poll() is not None:
            _watchdog = subprocess.Popen(
                [sys.executable, "-m", "runlab.execution.processes", "--watch", str(os.getpid())],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True,
            )
        return _watchdog.pid


def _tell_watchdog(line: str) -> None:
    with _watchdog_lock:
        if _watchdog is None or _watchdog.stdin is None:
            return
        try:
            _watchdog.stdin.write(f"{line}\n".encode())
            _watchdog.stdin.flush()
        except OSError:  # it died: children still get the parent-death signal
            pass


def _watch(pipe: IO[bytes]) -> int:
    """The watchdog's loop: ``+pgid`` and ``-pgid`` lines, then, at end of file, kill what is open."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    groups: set[int] = set()
    for line in pipe:  # ends when the watched process is gone (the kernel closed its end)
        text = line.strip()
        try:
            pgid = int(text[1:])
        except ValueError:
            continue
        if text[:1] == b"+":
            groups.add(pgid)
        elif text[:1] == b"-":
            groups.discard(pgid)
    for pgid in sorted(groups):
        _killpg(pgid, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["--watch"]:
        print("usage: python -m runlab.execution.processes --watch PID (started by guard_children)", file=sys.stderr)
        sys.exit(2)
    sys.exit(_watch(sys.stdin.buffer))
