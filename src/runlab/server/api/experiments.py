"""Experiments with their number of runs, newest run and runs per status."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from runlab.server import models
from runlab.server.state import StudioState, get_state
from runlab.store.sql.queries import ExperimentSummary

router = APIRouter(tags=["experiments"], responses=models.ERROR_RESPONSES)
State = Annotated[StudioState, Depends(get_state)]


def _info(summary: ExperimentSummary) -> models.ExperimentInfo:
    return models.ExperimentInfo(
        name=summary.name, created_at=summary.created_at, run_count=summary.run_count,
        last_run_id=summary.last_run_id, last_run_at=summary.last_run_at, status_counts=dict(summary.status_counts),
    )


@router.get("/experiments", response_model=list[models.ExperimentInfo], summary="List experiments")
def list_experiments(state: State) -> list[models.ExperimentInfo]:
    """Every experiment of the workspace, by name, with its top-level runs counted by status."""
    state.reap()
    return [_info(s) for s in state.queries.experiment_summaries()]


@router.get("/experiments/{name}", response_model=models.ExperimentInfo, summary="One experiment")
def get_experiment(state: State, name: Annotated[str, Path(max_length=255)]) -> models.ExperimentInfo:
    return _info(state.queries.experiment_summary(name))
