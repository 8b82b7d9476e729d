"""Live updates as server-sent events, by polling the stores (simple and robust).

Two streams serve a run page while its run goes:

- :func:`run_events`: ``status`` when the run's status changes, ``metrics`` (every metric's
  summary) when a metric gets new points, ``logs`` when the list of log files or their sizes change,
  and ``end`` once the run has ended (the page then closes the stream);
- :func:`log_events`: the bytes appended to one log file, from a byte offset: ``log`` events with
  the text and the offset to resume from, ``reset`` when the file was replaced by a shorter one, and
  ``end`` once the run has ended and the file was read to its end.

A stream also ends after ``stream_max_s`` (the page reconnects where it was) and when the server
stops. The stores are read in worker threads; nothing here blocks the event loop.
"""

from __future__ import annotations

import codecs
import json
import time
from typing import Any, AsyncIterator, Callable, TypeVar

import anyio.to_thread

from runlab.core.entities import RunRecord
from runlab.core.errors import FileNotFoundInRunError, RunlabError, StoreUnavailableError
from runlab.core.layout import LOG_PREFIXES
from runlab.server import views
from runlab.server.api.files import shown_name
from runlab.server.state import StudioState

T = TypeVar("T")
KEEPALIVE_S = 15.0
MAX_LOG_EVENT_BYTES = 256 * 1024
LOG_LIST_EVERY = 4  # polls between two listings of the log files (a walk of the run's folder)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse(event: str, data: Any, event_id: str | None = None) -> bytes:
    """One server-sent event; ``data`` is sent as JSON (NaN and infinities as null)."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(views.clean(data), separators=(",", ":"), allow_nan=False))
    return ("\n".join(lines) + "\n\n").encode()


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    return await anyio.to_thread.run_sync(fn, *args)


def _status_payload(record: RunRecord) -> dict[str, Any]:
    return {
        "status": str(record.status), "started_at": record.started_at, "ended_at": record.ended_at,
        "duration_s": record.duration_s, "terminal": record.status.is_terminal,
        "error_message": (record.error or {}).get("message") if record.error else None,
        "timeline": [step.model_dump() for step in views.timeline(record)],
    }


def log_files(state: StudioState, run_id: str) -> list[dict[str, Any]]:
    out = []
    for name in state.artifacts.list(run_id):
        if name.startswith(LOG_PREFIXES):
            try:
                out.append({"name": shown_name(name), "size": state.artifacts.size(run_id, name)})
            except FileNotFoundInRunError:
                continue
    return out


async def run_events(state: StudioState, run_id: str) -> AsyncIterator[bytes]:
    """Status, metrics and log-file changes of a run until it ends (see the module docstring)."""
    deadline = time.monotonic() + state.stream_max_s
    last_status: dict[str, Any] | None = None
    last_counts: dict[str, int] | None = None
    last_logs: list[dict[str, Any]] | None = None
    last_sent = time.monotonic()
    polls = 0
    yield b"retry: 2000\n\n"
    while not state.stopping.is_set():
        try:
            record = await _in_thread(state.store.get_run, run_id)
            summaries = await _in_thread(state.store.get_metric_summaries, run_id)
        except StoreUnavailableError:  # busy (a big write): try again at the next poll
            await anyio.sleep(state.poll_interval_s)
            continue
        except RunlabError as exc:  # the run was deleted, the store broke: say so and end
            yield sse("error", {"message": exc.message})
            return
        status = _status_payload(record)
        if last_status is None or status["status"] != last_status["status"] or (
                status["started_at"], status["ended_at"]) != (last_status["started_at"], last_status["ended_at"]):
            yield sse("status", status)
            last_sent = time.monotonic()
        last_status = status
        counts = {s.name: s.count for s in summaries}
        if counts != last_counts:
            yield sse("metrics", [views.metric_info(s).model_dump() for s in summaries])
            last_counts = counts
            last_sent = time.monotonic()
        if polls % LOG_LIST_EVERY == 0 or record.status.is_terminal:
            logs = await _in_thread(log_files, state, run_id)
            if logs != last_logs:
                yield sse("logs", logs)
                last_logs = logs
                last_sent = time.monotonic()
        polls += 1
        if record.status.is_terminal:
            yield sse("end", {"status": str(record.status)})
            return
        if time.monotonic() > deadline:
            yield sse("timeout", {"reconnect": True})
            return
        if time.monotonic() - last_sent > KEEPALIVE_S:
            yield b": keep-alive\n\n"
            last_sent = time.monotonic()
        await anyio.sleep(state.poll_interval_s)


def _size_or_zero(state: StudioState, run_id: str, name: str) -> int:
    try:
        return state.artifacts.size(run_id, name)
    except FileNotFoundInRunError:
        return 0  # not written yet: a log appears when the run gets there


def read_at(state: StudioState, run_id: str, name: str, offset: int, length: int) -> bytes:
    with state.artifacts.open(run_id, name, offset) as stream:
        return stream.read(length)


async def log_events(state: StudioState, run_id: str, name: str, offset: int) -> AsyncIterator[bytes]:
    """The text appended to log ``name`` of run ``run_id`` from byte ``offset`` on (module docstring)."""
    deadline = time.monotonic() + state.stream_max_s
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    last_sent = time.monotonic()
    yield b"retry: 2000\n\n"
    while not state.stopping.is_set():
        try:
            record = await _in_thread(state.store.get_run, run_id)  # read before the size: no line is missed
            size = await _in_thread(_size_or_zero, state, run_id, name)
        except StoreUnavailableError:
            await anyio.sleep(state.poll_interval_s)
            continue
        except RunlabError as exc:
            yield sse("error", {"message": exc.message})
            return
        if size < offset:
            offset = 0
            decoder.reset()
            yield sse("reset", {"offset": 0, "size": size})
        grew = False
        while size > offset and not state.stopping.is_set():
            try:
                data = await _in_thread(read_at, state, run_id, name, offset, min(size - offset, MAX_LOG_EVENT_BYTES))
            except FileNotFoundInRunError:  # replaced meanwhile: the next poll starts it over
                break
            if not data:
                break
            offset += len(data)
            grew = True
            yield sse("log", {"offset": offset, "text": decoder.decode(data)}, event_id=str(offset))
            last_sent = time.monotonic()
        if record.status.is_terminal and not grew:
            yield sse("end", {"offset": offset, "status": str(record.status)})
            return
        if time.monotonic() > deadline:
            yield sse("timeout", {"offset": offset, "reconnect": True})
            return
        if time.monotonic() - last_sent > KEEPALIVE_S:
            yield b": keep-alive\n\n"
            last_sent = time.monotonic()
        await anyio.sleep(state.poll_interval_s)
