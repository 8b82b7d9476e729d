"""Experiments with their number of runs, newest run and runs per status; archive and unarchive."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Query
from pydantic import ConfigDict

from runlab.server import models
from runlab.server.auth import Principal, require_write
from runlab.server.state import StudioState, get_state
from runlab.store.sql.queries import ExperimentSummary

router = APIRouter(tags=["experiments"], responses=models.ERROR_RESPONSES)
State = Annotated[StudioState, Depends(get_state)]
Writer = Annotated[Principal, Depends(require_write)]
Name = Annotated[str, Path(max_length=255)]


def _info(summary: ExperimentSummary) -> models.ExperimentInfo:
    return models.ExperimentInfo(
        name=summary.name, created_at=summary.created_at, run_count=summary.run_count,
        last_run_id=summary.last_run_id, last_run_at=summary.last_run_at, status_counts=dict(summary.status_counts),
        archived=summary.archived_at is not None,
    )


@router.get("/experiments", response_model=list[models.ExperimentInfo], summary="List experiments")
def list_experiments(
    state: State,
    archived: Annotated[Literal["exclude", "include", "only"],
                        Query(description="archived experiments: left out, listed too, or alone")] = "exclude",
) -> list[models.ExperimentInfo]:
    """Every experiment of the workspace, by name, with its top-level runs counted by status."""
    state.reap()
    out = [_info(s) for s in state.queries.experiment_summaries()]
    if archived == "exclude":
        return [e for e in out if not e.archived]
    if archived == "only":
        return [e for e in out if e.archived]
    return out


@router.get("/experiments/{name}", response_model=models.ExperimentInfo, summary="One experiment")
def get_experiment(state: State, name: Name) -> models.ExperimentInfo:
    return _info(state.queries.experiment_summary(name))


class ArchiveIn(models._Model):
    model_config = ConfigDict(extra="forbid")
    archived: bool = True


@router.post("/experiments/{name}/archive", response_model=models.ExperimentInfo,
             summary="Archive or unarchive an experiment")
def archive_experiment(state: State, name: Name, _: Writer,
                       body: Annotated[ArchiveIn, Body()] = ArchiveIn()) -> models.ExperimentInfo:
    """As Azure ML v1's ``Experiment.archive()`` / ``reactivate()``: ``{"archived": false}`` brings it back."""
    state.store.update_experiment(name, archived=body.archived)
    return _info(state.queries.experiment_summary(name))
