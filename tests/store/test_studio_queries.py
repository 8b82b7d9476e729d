"""The studio's queries on SQLite and on a real PostgreSQL server (server mode's database)."""

from __future__ import annotations

import pytest

from runlab.core.entities import MetricBatch
from runlab.core.errors import UserError
from runlab.core.status import RunStatus, RunType
from runlab.store.sql.queries import RunFilter, StudioQueries
from runlab.store.sql.store import SqlStore


@pytest.fixture
def queries(store: SqlStore) -> StudioQueries:
    for i in range(30):
        run_id = f"exp_{i:02d}_run"
        status = RunStatus.FAILED if i % 3 == 0 else RunStatus.COMPLETED
        store.create_run(run_id, "exp", run_type=RunType.INTERACTIVE, status=RunStatus.RUNNING,
                         display_name=f"Trial {i}", tags={"parity": "odd" if i % 2 else "even"},
                         created_at=1000.0 + i)
        store.set_status(run_id, status, when=1000.0 + i + (i % 5))
        if i % 4:
            store.append_metrics(run_id, [MetricBatch("loss", "scalar", [None, None], [1.0, 2.0], [1.0, 100.0 - i])])
    return StudioQueries(store)


def test_sort_by_metric_filters_and_search(queries: StudioQueries) -> None:
    page = queries.list_runs(RunFilter(experiment="exp"), sort="metric:loss", descending=False, limit=5,
                             metric_names=["loss"])
    assert page.total == 30
    assert [r.run_id for r in page.runs] == ["exp_29_run", "exp_27_run", "exp_26_run", "exp_25_run", "exp_23_run"]
    last = queries.list_runs(RunFilter(experiment="exp"), sort="metric:loss", descending=False, limit=10, offset=20)
    assert all(int(r.run_id[4:6]) % 4 == 0 for r in last.runs[-3:])  # runs without the metric come last
    failed = queries.list_runs(RunFilter(statuses=[RunStatus.FAILED]), limit=100)
    assert failed.total == 10
    odd = queries.list_runs(RunFilter(tags={"parity": "odd"}), limit=100)
    assert odd.total == 15
    found = queries.list_runs(RunFilter(search="trial 1"), limit=100)
    assert {r.run_id for r in found.runs} == {f"exp_{i:02d}_run" for i in (1, *range(10, 20))}
    by_duration = queries.list_runs(RunFilter(), sort="duration", limit=30)
    durations = [r.duration_s for r in by_duration.runs]
    assert durations == sorted(durations, reverse=True)
    with pytest.raises(UserError):
        queries.list_runs(RunFilter(), sort="no_such_column")


def test_experiment_summary_and_series(queries: StudioQueries) -> None:
    (summary,) = queries.experiment_summaries()
    assert summary.name == "exp" and summary.run_count == 30 and summary.last_run_id == "exp_29_run"
    series = queries.read_series("exp_01_run", "loss")
    assert series.count == 2 and list(series.values) == [1.0, 99.0]
