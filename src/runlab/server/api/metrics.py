"""Metrics: a run's summaries, one series downsampled for a chart, one metric of many runs."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Path, Query
from pydantic import StringConstraints

from runlab.core.errors import UserError
from runlab.server import models, views
from runlab.server.state import StudioState, get_state
from runlab.store.sql.queries import SeriesData

router = APIRouter(tags=["metrics"], responses=models.ERROR_RESPONSES)
State = Annotated[StudioState, Depends(get_state)]
RunId = Annotated[str, Path(min_length=1, max_length=320, description="the run's id")]
Points = Annotated[int, Query(ge=4, le=100_000, description="at most this many points: a longer series is "
                              "downsampled, keeping the first, min, max and last point of each bucket")]
MAX_SERIES_RUNS = 200


@router.get("/metric-names", response_model=list[str], summary="Metric names (for table columns and charts)")
def list_metric_names(
    state: State,
    experiment: Annotated[str | None, Query(max_length=255, description="only metrics of this experiment's runs")
                          ] = None,
) -> list[str]:
    return state.queries.metric_names(experiment or None)


@router.get("/runs/{run_id}/metrics", response_model=list[models.MetricInfo], summary="A run's metrics")
def list_run_metrics(state: State, run_id: RunId) -> list[models.MetricInfo]:
    """One summary per metric (kind, count, last, min, max), in the order they were first logged."""
    return [views.metric_info(s) for s in state.store.get_metric_summaries(run_id)]


@router.get("/runs/{run_id}/metrics/{name:path}", response_model=models.Series,
            summary="One metric's points, downsampled for a chart")
def get_series(
    state: State,
    run_id: RunId,
    name: Annotated[str, Path(min_length=1, max_length=255, description="the metric's name")],
    points: Points = 1000,
    start: Annotated[int, Query(ge=0, le=2**62, description="first point (index) to return: a live chart "
                                "asks only for points it does not have")] = 0,
    min_step: Annotated[float | None, Query(description="only points at this step or after (a zoomed chart)")
                        ] = None,
    max_step: Annotated[float | None, Query(description="only points at this step or before")] = None,
    min_time: Annotated[float | None, Query(description="only points logged at this time (epoch seconds) or "
                                            "after (a chart zoomed on a time axis)")] = None,
    max_time: Annotated[float | None, Query(description="only points logged at this time or before")] = None,
) -> models.Series:
    """Points ``start`` onward of a metric, each with its step and the time it was logged (``times``,
    epoch seconds). Numeric series longer than ``points`` are downsampled (``downsampled: true``);
    strings, lists and tables come as they are (the last 10,000). ``min_step``/``max_step`` (or
    ``min_time``/``max_time``) keep the points a zoomed chart shows, at full resolution up to ``points``."""
    data = views.step_window(state.queries.read_series(run_id, name, start), min_step, max_step)
    return views.series(time_window(data, min_time, max_time), points)


def time_window(data: SeriesData, min_time: float | None, max_time: float | None) -> SeriesData:
    """The points of ``data`` logged between ``min_time`` and ``max_time`` (a chart whose x axis is
    wall or relative time, zoomed), so that downsampling spends the point budget on what is shown."""
    if min_time is None and max_time is None:
        return data
    keep = np.ones(len(data.times), dtype=bool)
    if min_time is not None:
        keep &= data.times >= min_time
    if max_time is not None:
        keep &= data.times <= max_time
    values = data.values[keep] if data.is_numeric else [v for v, k in zip(data.values, keep) if k]
    first = int(np.argmax(keep)) if keep.any() else len(keep)
    return dataclasses.replace(data, start=data.start + first, steps=data.steps[keep], times=data.times[keep],
                               values=values)


@router.get("/series", response_model=models.SeriesSet, summary="One metric of several runs (for comparison)")
def get_series_set(
    state: State,
    name: Annotated[str, Query(min_length=1, max_length=255, description="the metric's name")],
    run: Annotated[list[Annotated[str, StringConstraints(max_length=320)]],
                   Query(max_length=MAX_SERIES_RUNS, description=f"run ids, 1 to {MAX_SERIES_RUNS}")] = [],
    points: Points = 1000,
) -> models.SeriesSet:
    """Metric ``name`` of each run, each downsampled to ``points``; runs without it are listed in ``missing``."""
    ids = list(dict.fromkeys(r for r in run if r))
    if not ids:
        raise UserError("name at least one run: /api/series?name=loss&run=ID&run=ID")
    found = state.queries.read_series_many(ids, name)
    return models.SeriesSet(
        name=name,
        series=[views.series(data, points) for data in found.values()],
        missing=[i for i in ids if i not in found],
    )
