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


def test_series_chunks_read_alike_on_every_store(store: SqlStore) -> None:
    """Chunks are read in PostgreSQL's binary result format (store/sql/blobs.py): every reader gives
    the same steps, times and values, floats with NaN and infinities, strings, from a start inside a
    chunk, and for several runs at once (an IN list)."""
    import math

    import numpy as np

    for r in range(3):
        store.create_run(f"exp_s{r}", "exp", run_type=RunType.INTERACTIVE, status=RunStatus.RUNNING)
        for part in range(4):
            values = [float(part * 10 + i) for i in range(10)]
            values[3] = math.nan if part == 1 else values[3]
            values[4] = math.inf if part == 2 else -math.inf if part == 3 else values[4]
            store.append_metrics(f"exp_s{r}", [MetricBatch("loss", "scalar", list(range(part * 10, part * 10 + 10)),
                                                           [1000.0 + part * 10 + i for i in range(10)], values)])
        store.append_metrics(f"exp_s{r}", [MetricBatch("note", "scalar", [None, None], [1.0, 2.0], ["a", "é\0b"])])
    queries = StudioQueries(store)
    whole = store.get_metric_series("exp_s1", "loss")
    assert list(whole.steps) == list(range(40)) and list(whole.times) == [1000.0 + i for i in range(40)]
    expected = np.asarray(whole.values)
    assert math.isnan(expected[13]) and expected[24] == math.inf and expected[34] == -math.inf
    tail = queries.read_series("exp_s1", "loss", start=15)
    assert list(tail.steps) == list(range(15, 40))
    assert np.array_equal(np.asarray(tail.values), expected[15:], equal_nan=True)
    many = queries.read_series_many(["exp_s2", "exp_s0", "nope"], "loss")
    assert list(many) == ["exp_s2", "exp_s0"]
    for data in many.values():
        assert np.array_equal(np.asarray(data.values), expected, equal_nan=True) and list(data.steps) == list(range(40))
    assert list(store.get_metric_series("exp_s0", "note").values) == ["a", "é\0b"]
    assert list(queries.read_series("exp_s0", "note").values) == ["a", "é\0b"]
