"""How the process exits: the code of the SystemExit that ended the main module, if one did.

CPython handles an uncaught SystemExit itself (``_Py_HandleSystemExit`` in Python/pythonrun.c):
it never reaches ``sys.excepthook``, sets no ``sys.last_exc``, and it and its code are gone by
the time atexit handlers run. So the code is seen on its way out of the main module:

- Python 3.12+: a ``sys.monitoring`` PY_UNWIND callback. That event fires only when an
  exception leaves a frame (never on calls, lines or returns), so ``run.log()`` and every other
  hot path pay nothing, and an exception leaving a frame pays one callback that returns at its
  first test. It sees ``sys.exit(n)``, ``raise SystemExit(n)`` and ``exit(n)`` alike.
  (``sys.settrace`` / ``sys.setprofile`` would see it too, but they fire on every call and make
  ``run.log()`` several times slower.)
- Python 3.10 and 3.11 have no such event: ``sys.exit`` is wrapped to note the code, and at
  exit the main module's frame tells whether it ended by an exception (its last instruction is
  not a return) rather than by running to its end after catching that SystemExit. A bare
  ``raise SystemExit(n)`` is not seen there.

A SystemExit the script caught does not count. ``os._exit`` skips atexit altogether: the run's
owner is then dead, and the next reader marks the run Failed (store.sql.store reap).
"""

from __future__ import annotations

import functools
import sys
import threading
from types import CodeType, FrameType
from typing import Any, NoReturn

_MODULE_CODE = "<module>"
# sys.monitoring tool ids CPython leaves unassigned (0 debugger, 1 coverage, 2 profiler, 5 optimizer).
_TOOL_IDS = (4, 3)

_lock = threading.Lock()
_installed = False
_final: list[object] = []  # [code] once a SystemExit left the main module (3.12+)
_requested: tuple[object, FrameType] | None = None  # code of the last sys.exit, the main frame (3.10/3.11)


def install() -> None:
    """Start watching for the SystemExit that ends the main module. Idempotent."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
        if not _watch_unwinding():
            _wrap_sys_exit()


def exit_error() -> dict[str, Any] | None:
    """The error the runs this process owns end with, when a SystemExit with a failure code
    ended the main module; None otherwise (it ended normally, by ``sys.exit(0)``, or by
    something that is not a SystemExit)."""
    if _final:
        return error_for_exit_code(_final[0])
    requested = _requested
    if requested is not None and _ended_by_exception(requested[1]):
        return error_for_exit_code(requested[0])
    return None


def error_for_exit_code(code: object) -> dict[str, Any] | None:
    """The run error for ``SystemExit(code)``, as CPython turns it into an exit status: None
    and 0 succeed (None is returned); an int is the status; anything else is printed and gives 1."""
    if code is None:
        return None
    if isinstance(code, int):
        status, text = int(code), ""
    else:
        status, text = 1, str(code)
    if status == 0:
        return None
    message = f"the script exited with code {status}" + (f": {text}" if text else "")
    return {"message": message, "code": "ExitCode", "exit_code": status}


if sys.version_info >= (3, 12):

    def _watch_unwinding() -> bool:
        monitoring = sys.monitoring
        for tool in _TOOL_IDS:
            try:
                monitoring.use_tool_id(tool, "runlab")
            except ValueError:  # taken by another tool
                continue
            monitoring.register_callback(tool, monitoring.events.PY_UNWIND, _on_unwind)
            monitoring.set_events(tool, monitoring.events.PY_UNWIND)
            return True
        return False

    def _on_unwind(code: CodeType, instruction_offset: int, exc: BaseException) -> None:
        if code.co_name != _MODULE_CODE or not isinstance(exc, SystemExit):
            return
        main = sys.modules.get("__main__")
        try:
            leaving = sys._getframe(1)  # the frame being left calls this callback
        except ValueError:
            return
        if main is not None and leaving.f_globals is vars(main):
            _final[:] = [exc.code]

else:

    def _watch_unwinding() -> bool:
        return False


def _wrap_sys_exit() -> None:
    main_frame = _main_module_frame()
    if main_frame is None:  # no script is running (an interactive or embedded interpreter)
        return
    real_exit = sys.exit

    @functools.wraps(real_exit)
    def exit(status: Any = None, /) -> NoReturn:  # any object, as sys.exit takes
        global _requested
        if threading.current_thread() is threading.main_thread():  # elsewhere it ends only a thread
            _requested = (status, main_frame)
        real_exit(status)

    sys.exit = exit


def _ended_by_exception(frame: FrameType) -> bool:
    """Whether a finished frame was left by an exception: its last instruction is not a return."""
    import opcode

    try:
        return frame.f_code.co_code[frame.f_lasti] != opcode.opmap["RETURN_VALUE"]
    except IndexError:
        return False


def _main_module_frame() -> FrameType | None:
    main = sys.modules.get("__main__")
    if main is None:
        return None
    frame = sys._current_frames().get(threading.main_thread().ident or 0)
    while frame is not None:
        if frame.f_code.co_name == _MODULE_CODE and frame.f_globals is vars(main):
            return frame
        frame = frame.f_back
    return None
