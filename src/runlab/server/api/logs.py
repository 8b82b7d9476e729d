"""Run logs (files under ``azureml-logs/``, ``logs/`` and ``user_logs/``): list, tail, follow live."""

from __future__ import annotations

import codecs
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse

from runlab.core.errors import FileNotFoundInRunError
from runlab.server import live, models
from runlab.server.state import StudioState, get_state
from runlab.store.artifacts import check_file_name

router = APIRouter(tags=["logs"], responses=models.ERROR_RESPONSES)
State = Annotated[StudioState, Depends(get_state)]
RunId = Annotated[str, Path(min_length=1, max_length=320, description="the run's id")]
LogName = Annotated[str, Query(min_length=1, max_length=1024, description="the log's file name in the run, "
                               "for example azureml-logs/70_driver_log.txt")]
MAX_TAIL_BYTES = 4 * 1024 * 1024
MAX_RANGE_BYTES = 4 * 1024 * 1024
COUNT_CHUNK_BYTES = 8 * 1024 * 1024

SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "server-sent events (text/event-stream)", "content": {"text/event-stream": {}}},
}


@router.get("/runs/{run_id}/logs", response_model=list[models.LogFile], summary="A run's log files")
def list_logs(state: State, run_id: RunId) -> list[models.LogFile]:
    state.store.get_run(run_id)
    return [models.LogFile(**item) for item in live.log_files(state, run_id)]


def tail_bytes(data: bytes, lines: int, window_start: int) -> tuple[bytes, int]:
    """The last ``lines`` lines of ``data`` (read from byte ``window_start`` of a file) and the offset
    of their first byte; a first line cut by the window is dropped."""
    parts = data.splitlines(keepends=True)
    if window_start > 0 and parts:
        parts = parts[1:]
    kept = b"".join(parts[-lines:]) if lines < len(parts) else b"".join(parts)
    return kept, window_start + len(data) - len(kept)


@router.get("/runs/{run_id}/logs/tail", response_model=models.LogTail, summary="The end of a log")
def tail_log(
    state: State,
    run_id: RunId,
    name: LogName,
    lines: Annotated[int, Query(ge=1, le=100_000, description="at most this many lines (and 4 MiB)")] = 1000,
) -> models.LogTail:
    """The last ``lines`` lines of a log; follow it from ``end`` with ``/logs/stream``."""
    state.store.get_run(run_id)
    name = check_file_name(name)
    size = state.artifacts.size(run_id, name)
    start = max(0, size - MAX_TAIL_BYTES)
    data = live.read_at(state, run_id, name, start, size - start)
    kept, first = tail_bytes(data, lines, start)
    return models.LogTail(name=name, size=size, start=first, end=start + len(data),
                          text=kept.decode("utf-8", errors="replace"))


def count_lines_before(state: StudioState, run_id: str, name: str, offset: int) -> int:
    """How many line ends come before byte ``offset`` (read in chunks: a 100 MB log is never held)."""
    count = 0
    with state.artifacts.open(run_id, name) as stream:
        left = offset
        while left > 0:
            chunk = stream.read(min(COUNT_CHUNK_BYTES, left))
            if not chunk:
                break
            count += chunk.count(b"\n")
            left -= len(chunk)
    return count


def whole_lines(data: bytes, window_start: int, at_end: bool, cut_first: bool = True) -> tuple[bytes, int]:
    """``data`` (read from byte ``window_start``) cut to whole lines: a first line cut by the window
    is dropped (the caller read one byte early to tell), and so is a last line the window cut, unless
    the window reaches the end of the file; a UTF-8 character cut at the end is left for the next read."""
    start = window_start
    if window_start > 0 and cut_first:
        first_end = data.find(b"\n")
        if first_end < 0:
            return b"", window_start + len(data)
        data, start = data[first_end + 1:], window_start + first_end + 1
    if not at_end:
        last_end = data.rfind(b"\n")
        if last_end >= 0:
            data = data[:last_end + 1]
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    decoder.decode(data, final=False)
    pending = len(decoder.getstate()[0])
    return (data[:len(data) - pending] if pending else data), start


@router.get("/runs/{run_id}/logs/range", response_model=models.LogRange, summary="Part of a log, by byte offsets")
def read_log_range(
    state: State,
    run_id: RunId,
    name: LogName,
    offset: Annotated[int, Query(ge=0, le=2**62, description="byte offset: text starts at the first line "
                                 "that starts there or after")] = 0,
    length: Annotated[int, Query(ge=1, le=MAX_RANGE_BYTES, description="at most this many bytes")] = 256 * 1024,
    exact: Annotated[bool, Query(description="offset is the end of a range read before: start exactly there "
                                 "(a line written in parts comes in parts)")] = False,
    count_lines: Annotated[bool, Query(description="number the lines (reads the file up to offset once)")] = True,
) -> models.LogRange:
    """Whole lines of a log between byte offsets, for a viewer that pages through a log of any size
    without loading it whole: ``offset=END&exact=true`` (the ``end`` of the last range) reads what
    was appended since; ``offset=START-N&length=N`` reads the page before a range."""
    state.store.get_run(run_id)
    name = check_file_name(name)
    size = state.artifacts.size(run_id, name)
    offset = min(offset, size)
    read_from = offset - 1 if offset > 0 and not exact else offset  # one byte early: does a line start here?
    data = live.read_at(state, run_id, name, read_from, min(size, offset + length) - read_from)
    kept, start = whole_lines(data, read_from, at_end=read_from + len(data) >= size, cut_first=not exact)
    lines_before = count_lines_before(state, run_id, name, start) if count_lines else 0
    return models.LogRange(name=name, size=size, start=start, end=start + len(kept), first_line=lines_before + 1,
                           text=kept.decode("utf-8", errors="replace"))


@router.get("/runs/{run_id}/logs/stream", summary="Follow a log live (server-sent events)",
            response_class=StreamingResponse, responses=SSE_RESPONSE)
def stream_log(
    state: State,
    run_id: RunId,
    name: LogName,
    offset: Annotated[int, Query(ge=0, le=2**62, description="byte offset to start from (a tail's end)")] = 0,
) -> StreamingResponse:
    """Events: ``log`` {offset, text} for appended text, ``reset`` when the file was replaced,
    ``end`` once the run has ended and the log was read to its end."""
    state.store.get_run(run_id)
    name = check_file_name(name)
    try:
        state.artifacts.size(run_id, name)
    except FileNotFoundInRunError:
        pass  # not written yet: the stream waits for it
    return StreamingResponse(live.log_events(state, run_id, name, offset), media_type="text/event-stream",
                             headers=live.SSE_HEADERS)
