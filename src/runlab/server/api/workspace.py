"""The workspace the studio serves, and a health check."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from runlab.server import models
from runlab.server.state import StudioState, get_state

router = APIRouter(tags=["workspace"])
State = Annotated[StudioState, Depends(get_state)]


@router.get("/workspace", response_model=models.WorkspaceInfo, summary="The workspace this studio serves")
def get_workspace(state: State) -> models.WorkspaceInfo:
    folder = state.folder
    return models.WorkspaceInfo(name=folder.name, id=folder.workspace_id, path=str(folder.path),
                                created_at=folder.created_at, studio_url=state.settings.studio_url)


@router.get("/health", summary="Liveness check", responses={200: {"content": {"application/json": {
    "example": {"status": "ok"}}}}})
def health() -> dict[str, str]:
    return {"status": "ok"}
