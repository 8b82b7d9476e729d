"""Runs: the filtered, sorted, paginated listing; one run's details; its children; a comparison."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import StringConstraints

from runlab.core.errors import RunNotFoundError, UserError
from runlab.core.status import RunStatus
from runlab.server import models, views
from runlab.server.state import StudioState, get_state
from runlab.store.sql.queries import RunFilter

router = APIRouter(tags=["runs"], responses=models.ERROR_RESPONSES)
State = Annotated[StudioState, Depends(get_state)]
RunId = Annotated[str, Path(min_length=1, max_length=320, description="the run's id")]
Text255 = Annotated[str, StringConstraints(max_length=255)]
Text600 = Annotated[str, StringConstraints(max_length=600)]
Id320 = Annotated[str, StringConstraints(max_length=320)]

MAX_PAGE = 500
MAX_COMPARE = 200


def parse_tags(items: list[str]) -> dict[str, str | None]:
    """``["team=vision", "baseline"]`` -> ``{"team": "vision", "baseline": None}`` (any value)."""
    tags: dict[str, str | None] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not key:
            raise UserError(f"tag filter {item!r} has no key: use tag=key=value or tag=key")
        tags[key] = value if sep else None
    return tags


@router.get("/runs", response_model=models.RunList, summary="List runs (filter, sort, search, paginate)")
def list_runs(
    state: State,
    experiment: Annotated[str | None, Query(max_length=255, description="only runs of this experiment")] = None,
    status: Annotated[list[Text255], Query(max_length=20, description="only runs with one of these statuses")] = [],
    tag: Annotated[list[Text600], Query(max_length=20, description="key=value (or key: the tag is set)")] = [],
    search: Annotated[str | None, Query(max_length=200, description="part of the run id or display name")] = None,
    sort: Annotated[str, Query(max_length=300, description="created_at, started_at, ended_at, status, duration, "
                               "run_id, display_name, target, experiment, or metric:<name> (its last value)")
                    ] = "created_at",
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
    metric: Annotated[list[Text255], Query(max_length=50, description="metrics whose last value each row carries")
                      ] = [],
    include_children: Annotated[bool, Query(description="also list child runs (default: top-level runs)")] = False,
    parent: Annotated[str | None, Query(max_length=320, description="only the children of this run")] = None,
) -> models.RunList:
    """A page of runs and the total that match. Runs without the metric a sort names come last."""
    state.reap()
    where = RunFilter(
        experiment=experiment or None,
        statuses=[RunStatus.parse(s) for s in status if s],
        tags=parse_tags(tag),
        search=search or None,
        parent_run_id=parent or None,
        include_children=include_children,
    )
    page = state.queries.list_runs(where, sort=sort, descending=order == "desc", limit=limit, offset=offset,
                                   metric_names=[m for m in metric if m])
    return models.RunList(total=page.total, offset=page.offset, limit=page.limit,
                          runs=[views.run_info(r) for r in page.runs])


@router.get("/runs/{run_id}", response_model=models.RunDetails, summary="One run, with everything the run page shows")
def get_run(state: State, run_id: RunId) -> models.RunDetails:
    record = state.store.get_run(run_id)
    return views.run_details(record, child_count=state.queries.child_count(run_id),
                             file_names=state.artifacts.list(run_id), studio_url=state.settings.studio_url)


@router.get("/runs/{run_id}/children", response_model=models.RunList, summary="Child runs of a run")
def list_children(
    state: State,
    run_id: RunId,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> models.RunList:
    page = state.queries.list_runs(RunFilter(parent_run_id=run_id), sort="created_at", descending=False,
                                   limit=limit, offset=offset)
    return models.RunList(total=page.total, offset=page.offset, limit=page.limit,
                          runs=[views.run_info(r) for r in page.runs])


@router.get("/compare", response_model=models.RunComparison, summary="Runs side by side: details and metrics")
def compare_runs(
    state: State,
    run: Annotated[list[Id320], Query(max_length=MAX_COMPARE, description=f"run ids, 1 to {MAX_COMPARE}")] = [],
) -> models.RunComparison:
    """Each run's details (arguments, tags, properties...) and metric summaries (last values); ids
    that name no run are listed in ``missing`` (404 when none of them does)."""
    ids = list(dict.fromkeys(r for r in run if r))
    if not ids:
        raise UserError("compare needs at least one run: /api/compare?run=ID&run=ID")
    if len(ids) > MAX_COMPARE:
        raise UserError(f"compare at most {MAX_COMPARE} runs at once, got {len(ids)}")
    records = state.queries.run_records(ids)
    found = {r.run_id for r in records}
    missing = [i for i in ids if i not in found]
    if not records:
        raise RunNotFoundError(f"no run {missing[0]!r} in this workspace" + (
            f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""), run_id=missing[0])
    ids = [i for i in ids if i in found]
    summaries = state.queries.metric_summaries(ids)
    return models.RunComparison(
        runs=[views.run_details(r, child_count=0, file_names=[], studio_url=state.settings.studio_url)
              for r in records],
        metrics={i: [views.metric_info(s) for s in summaries.get(i, [])] for i in ids},
        missing=missing,
    )
