"""A run's live events (status, metrics, log files) as server-sent events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import StreamingResponse

from runlab.server import live, models
from runlab.server.api.logs import SSE_RESPONSE
from runlab.server.state import StudioState, get_state

router = APIRouter(tags=["runs"], responses=models.ERROR_RESPONSES)
State = Annotated[StudioState, Depends(get_state)]


@router.get("/runs/{run_id}/events", summary="Follow a run live (server-sent events)",
            response_class=StreamingResponse, responses=SSE_RESPONSE)
def run_events(
    state: State,
    run_id: Annotated[str, Path(min_length=1, max_length=320, description="the run's id")],
) -> StreamingResponse:
    """Events: ``status`` (with the timeline) on change, ``metrics`` (every summary) when a metric
    gets points, ``logs`` (log files and sizes) on change, and ``end`` once the run has ended."""
    state.store.get_run(run_id)
    return StreamingResponse(live.run_events(state, run_id), media_type="text/event-stream",
                             headers=live.SSE_HEADERS)
