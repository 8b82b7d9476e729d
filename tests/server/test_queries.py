"""The studio's read-only SQL queries: few statements per page whatever its size, sorting, filters."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from studio_fixtures import add_run

import runlab
from runlab.core.entities import MetricBatch
from runlab.core.errors import (
    ExperimentNotFoundError,
    NotFoundError,
    RunNotFoundError,
    UserError,
)
from runlab.core.status import RunStatus
from runlab.store.sql.queries import RunFilter, StudioQueries, parse_sort


@pytest.fixture
def many(ws: runlab.Workspace) -> runlab.Workspace:
    for i in range(120):
        metrics = {"loss": [1.0, 1.0 / (i + 1)], "acc": [float(i)]} if i % 10 else {}
        add_run(ws.folder, "e", f"run_{i:03d}", metrics=metrics, tags={"parity": "odd" if i % 2 else "even"},
                created_at=1000.0 + i, status=RunStatus.FAILED if i % 7 == 0 else RunStatus.COMPLETED)
    return ws


@pytest.fixture
def statements(many: runlab.Workspace) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_a: Any) -> None:
        if not statement.startswith(("BEGIN", "PRAGMA")):
            seen.append(statement)

    engine = many.folder.store.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    yield seen
    sa.event.remove(engine, "before_cursor_execute", count)


@pytest.mark.parametrize("sort", ["created_at", "metric:loss", "duration", "status"])
def test_a_page_takes_the_same_few_statements_whatever_its_size(many: runlab.Workspace, statements: list[str],
                                                                sort: str) -> None:
    queries = StudioQueries(many.folder.store)
    counts = []
    for limit in (5, 100):
        statements.clear()
        page = queries.list_runs(RunFilter(experiment="e"), sort=sort, limit=limit, metric_names=["loss", "acc"])
        assert len(page.runs) == limit and page.total == 120
        counts.append(len(statements))
    # a metric sort reads the metric's index first (one statement more), then the page as the others do
    assert counts[0] == counts[1] <= (8 if sort.startswith("metric:") else 7), counts


def test_metric_sort_puts_runs_without_the_metric_last(many: runlab.Workspace) -> None:
    queries = StudioQueries(many.folder.store)
    for descending in (True, False):
        page = queries.list_runs(sort="metric:loss", descending=descending, limit=500, metric_names=["loss"])
        losses = [r.metrics.get("loss") for r in page.runs]
        present = [v for v in losses if v is not None]
        assert present == sorted(present, reverse=descending) and len(present) == 108
        assert losses[108:] == [None] * 12


def test_filters_combine(many: runlab.Workspace) -> None:
    queries = StudioQueries(many.folder.store)
    failed_even = queries.list_runs(RunFilter(statuses=[RunStatus.FAILED], tags={"parity": "even"}), limit=500)
    assert sorted(r.run_id for r in failed_even.runs) == ["run_000", "run_014", "run_028", "run_042", "run_056",
                                                          "run_070", "run_084", "run_098", "run_112"]
    assert queries.list_runs(RunFilter(search="RUN_11"), limit=500).total == 10
    assert queries.list_runs(RunFilter(tags={"parity": None}), limit=1).total == 120
    assert queries.list_runs(RunFilter(tags={"nope": None}), limit=1).total == 0
    with pytest.raises(ExperimentNotFoundError):
        queries.list_runs(RunFilter(experiment="nope"))
    with pytest.raises(RunNotFoundError):
        queries.list_runs(RunFilter(parent_run_id="nope"))


def test_parse_sort() -> None:
    assert parse_sort("metric:val/loss") == ("metric", "val/loss")
    assert parse_sort("duration") == ("duration", None)
    with pytest.raises(UserError):
        parse_sort("definition")


def test_read_series_many_and_errors(many: runlab.Workspace) -> None:
    queries = StudioQueries(many.folder.store)
    found = queries.read_series_many(["run_011", "run_012", "run_000", "nope"], "loss")
    assert list(found) == ["run_011", "run_012"]
    assert found["run_011"].values.tolist() == [1.0, 1.0 / 12]
    with pytest.raises(NotFoundError, match="no metric named"):
        queries.read_series("run_000", "loss")
    with pytest.raises(RunNotFoundError):
        queries.read_series("nope", "loss")


def test_read_series_from_a_start_index_across_chunks(ws: runlab.Workspace) -> None:
    add_run(ws.folder, "e", "r", status=RunStatus.RUNNING)
    for chunk in range(4):
        ws.folder.store.append_metrics("r", [MetricBatch("m", "scalar", [None] * 3, [0.0] * 3,
                                                         [chunk * 3 + i for i in range(3)])])
    queries = StudioQueries(ws.folder.store)
    for start in range(0, 14):
        data = queries.read_series("r", "m", start)
        assert data.values.tolist() == list(range(start, 12)) and data.count == 12
        assert data.steps.tolist() == list(range(start, 12))


def test_experiment_summaries(many: runlab.Workspace) -> None:
    add_run(many.folder, "e", "child", parent_run_id="run_001", created_at=5000.0)
    (summary,) = StudioQueries(many.folder.store).experiment_summaries()
    assert summary.run_count == 120 and summary.last_run_id == "run_119"
    assert summary.status_counts == {"Completed": 102, "Failed": 18}
