"""Retrying a run handle's own store writes while the store is temporarily unavailable.

Metrics never wait: the flusher journals them (tracking.logger). The few other writes a training
script makes through its run handle (creating the run in ``start_logging()``, tags, properties,
the final status) are synchronous and small, so they wait instead: a busy store
(``StoreBusyError``: another process holds SQLite's write lock) is retried with exponential
backoff and full jitter, for at most ``RUNLAB_STORE_RETRY_TIMEOUT`` seconds (default 120, longer
than any lock runlab's own processes hold); another temporary failure (``StoreError.temporary``:
the disk is full, the server restarts) for at most ``UNAVAILABLE_BUDGET_S``. Then the caller
journals the change (``TrackedRun._change``). A permanent failure (a value the store cannot hold,
a taken id) is raised at once.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Callable, TypeVar

from runlab.core.errors import StoreBusyError, StoreError, StoreUnavailableError

T = TypeVar("T")
log = logging.getLogger("runlab")

# A store unavailable for another reason than a lock (disk full, I/O error, server down) is
# retried this long at most: waiting rarely mends that, and every caller has the journal to fall
# back on. A busy store (another process holds the lock) frees itself: it gets the whole budget.
UNAVAILABLE_BUDGET_S = 5.0
FIRST_DELAY_S = 0.05
MAX_DELAY_S = 2.0
_sleep = time.sleep  # the tests count the waits through this
_warned = False


def retry_while_unavailable(write: Callable[[], T], doing: str, *, budget_s: float | None = None) -> T:
    """``write()``, retried while it fails with a temporary ``StoreError``.

    Each attempt already waits up to ``RUNLAB_SQLITE_BUSY_TIMEOUT`` for SQLite's lock; between
    attempts the wait doubles from 50 ms up to 2 s, drawn at random below that (so that
    processes that collided do not collide again). Raises the permanent error at once, and
    ``StoreBusyError`` / ``StoreUnavailableError`` when the store stays unavailable for
    ``budget_s`` seconds (default: ``RUNLAB_STORE_RETRY_TIMEOUT``).
    """
    budget = 0.0
    deadline: float | None = None
    delay = FIRST_DELAY_S
    while True:
        try:
            return write()
        except StoreError as exc:
            if not exc.temporary:
                raise
            now = time.monotonic()
            if deadline is None:  # the settings are read only once a write failed
                if budget_s is None:
                    from runlab.core.settings import load_settings

                    budget_s = load_settings().store_retry_timeout_s
                budget = budget_s if isinstance(exc, StoreBusyError) else min(budget_s, UNAVAILABLE_BUDGET_S)
                deadline = now + budget
                _warn_once(doing, budget)
            if now >= deadline:
                raise _gave_up(exc, doing, budget) from exc
            _sleep(min(random.uniform(0, delay), deadline - now))
            delay = min(delay * 2, MAX_DELAY_S)


def _warn_once(doing: str, budget_s: float) -> None:
    global _warned
    if _warned:
        return
    _warned = True
    log.warning("runlab: the store cannot take a write now (%s); it is retried for up to %g s "
                "(RUNLAB_STORE_RETRY_TIMEOUT) and training goes on once it is written. (Reported once.)",
                doing, budget_s)


def _gave_up(exc: StoreError, doing: str, budget_s: float) -> StoreError:
    cls = StoreBusyError if isinstance(exc, StoreBusyError) else StoreUnavailableError
    return cls(
        f"the store stayed unavailable for {budget_s:g} s of retries while {doing} (last: {exc.message}). "
        "If another process holds the database that long, find it (`fuser workspace.db`); or allow a "
        "longer wait with RUNLAB_STORE_RETRY_TIMEOUT=<seconds>",
        **exc.context,
    )
