"""What happens to runs when the process ends: nothing buffered is lost, no run stays Running.

- normal exit, or ``sys.exit(0)``: every logger flushes; runs this process owns and left
  active become Completed;
- ``sys.exit(n)`` / ``raise SystemExit(n)`` with a failure code: the same, but owned runs become
  Failed, "the script exited with code n" (tracking.exit_status says how that code is seen);
- an uncaught exception: the same, but owned runs become Failed with the traceback;
- SIGTERM: flush, owned runs become Failed ("terminated"), then the signal's default action;
- SIGKILL cannot be caught, and ``os._exit`` skips atexit: readers see the owner process is
  gone and mark the run Failed (store.sql.store.SqlStore.reap_stale_runs).

Hooks are installed once, on first use, and chain to whatever was installed before.
"""

from __future__ import annotations

import atexit
import signal
import sys
import threading
from types import TracebackType
from typing import Any

from runlab.tracking import exit_status

_lock = threading.Lock()
_installed = False
_owned: list[Any] = []  # TrackedRun objects this process must end
_loggers: list[Any] = []
_uncaught: BaseException | None = None
_previous_excepthook = sys.excepthook
_previous_sigterm: Any = None
FLUSH_TIMEOUT_S = 60.0


def register_owned(run: Any) -> None:
    _install()
    with _lock:
        _owned.append(run)


def forget_owned(run: Any) -> None:
    with _lock:
        if run in _owned:
            _owned.remove(run)


def register_logger(logger: Any) -> None:
    _install()
    with _lock:
        _loggers.append(logger)


def _install() -> None:
    global _installed, _previous_excepthook, _previous_sigterm
    if _installed:
        return
    with _lock:
        if _installed:
            return
        _installed = True
        atexit.register(_at_exit)
        exit_status.install()
        _previous_excepthook = sys.excepthook
        sys.excepthook = _excepthook
        if threading.current_thread() is threading.main_thread():
            current = signal.getsignal(signal.SIGTERM)
            if current in (signal.SIG_DFL, None):
                _previous_sigterm = current
                signal.signal(signal.SIGTERM, _on_sigterm)


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    global _uncaught
    _uncaught = exc
    _previous_excepthook(exc_type, exc, tb)


def _flush_all() -> None:
    with _lock:
        loggers = list(_loggers)
    for logger in loggers:
        try:
            logger.close(FLUSH_TIMEOUT_S)
        except Exception:
            pass


def _end_owned(end: Any) -> None:
    """``end(run)`` for each run this process still owns; errors are swallowed (we are exiting)."""
    with _lock:
        runs = list(_owned)
    for run in runs:
        try:
            end(run)
        except Exception:
            pass


def _at_exit() -> None:
    from runlab.core.status import RunStatus

    _flush_all()
    exc = _uncaught
    exit_error = exit_status.exit_error() if exc is None else None
    if exit_error is not None:
        _end_owned(lambda run: run._end(RunStatus.FAILED, exit_error))
    elif exc is None:
        _end_owned(lambda run: run.complete())
    elif isinstance(exc, KeyboardInterrupt):
        error = {"message": "interrupted (KeyboardInterrupt)", "code": "Interrupted"}
        _end_owned(lambda run: run._end(RunStatus.CANCELED, error))
    else:
        _end_owned(lambda run: run.fail(exc))


def _on_sigterm(signum: int, frame: Any) -> None:
    _flush_all()
    _end_owned(lambda run: run.fail("terminated by SIGTERM", "Terminated"))
    with _lock:
        _owned.clear()
    signal.signal(signal.SIGTERM, _previous_sigterm or signal.SIG_DFL)
    signal.raise_signal(signal.SIGTERM)
