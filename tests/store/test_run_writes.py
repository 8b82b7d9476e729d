"""The store's write actions of the studio (description, notes, archive, delete) and the runs table's
query language turned into SQL, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from runlab.core.entities import MetricBatch
from runlab.core.errors import RunNotFoundError, UserError
from runlab.core.filterlang import FilterError
from runlab.core.status import RunStatus, RunType
from runlab.store.remote.protocol import METHODS, Access
from runlab.store.sql.queries import RunFilter, StudioQueries, parse_query
from runlab.store.sql.store import SqlStore


def _run(store: SqlStore, run_id: str, *, loss: float | None = None, status: RunStatus = RunStatus.COMPLETED,
         parent: str | None = None, tags: dict[str, str] | None = None, props: dict[str, str] | None = None) -> None:
    store.create_run(run_id, "exp", run_type=RunType.CHILD if parent else RunType.INTERACTIVE,
                     status=RunStatus.RUNNING, parent_run_id=parent, tags=tags, properties=props)
    if loss is not None:
        store.append_metrics(run_id, [MetricBatch(name="loss", kind="scalar", steps=[None, None], times=[1.0, 2.0],
                                                  values=[loss * 2, loss])])
    if status != RunStatus.RUNNING:
        store.set_status(run_id, status)


def _ids(queries: StudioQueries, text: str, **kwargs: object) -> list[str]:
    where = RunFilter(conditions=parse_query(text), include_children=True, **kwargs)  # type: ignore[arg-type]
    page = queries.list_runs(where, sort="run_id", descending=False)
    return [r.run_id for r in page.runs]


def test_description_and_notes(store: SqlStore) -> None:
    _run(store, "r1")
    store.set_description("r1", "first try\nwith two lines")
    assert store.get_run("r1").description == "first try\nwith two lines"
    first = store.add_run_note("r1", "lr too high", author="ada")
    second = store.add_run_note("r1", "retry with 0.01")
    notes = store.list_run_notes("r1")
    assert [(n.text, n.author) for n in notes] == [("lr too high", "ada"), ("retry with 0.01", None)]
    assert notes[0].note_id == first.note_id != second.note_id
    with pytest.raises(UserError, match="needs some text"):
        store.add_run_note("r1", "   ")
    with pytest.raises(RunNotFoundError):
        store.add_run_note("nope", "x")
    with pytest.raises(RunNotFoundError):
        store.set_description("nope", "x")


def test_archive_hides_a_run_and_its_children_from_listings(store: SqlStore) -> None:
    _run(store, "r1")
    _run(store, "r1_child", parent="r1")
    _run(store, "r2")
    queries = StudioQueries(store)
    store.set_run_archived("r1", True)
    assert store.get_run("r1").archived and store.get_run("r1_child").archived and not store.get_run("r2").archived
    listed = lambda archived: [r.run_id for r in queries.list_runs(  # noqa: E731
        RunFilter(archived=archived, include_children=True), sort="run_id", descending=False).runs]
    assert listed(False) == ["r2"]
    assert listed(True) == ["r1", "r1_child"]
    assert listed(None) == ["r1", "r1_child", "r2"]
    first = store.get_run("r1").archived_at
    store.set_run_archived("r1", True)  # archiving again keeps when it was archived
    assert store.get_run("r1").archived_at == first
    store.set_run_archived("r1", False)
    assert listed(False) == ["r1", "r1_child", "r2"]


def test_delete_removes_the_run_its_children_and_their_rows(store: SqlStore) -> None:
    _run(store, "r1", loss=0.5, tags={"a": "b"}, props={"p": "q"})
    _run(store, "r1_child", parent="r1", loss=0.2)
    _run(store, "r2", loss=0.1)
    store.add_run_note("r1", "note")
    assert sorted(store.delete_run("r1")) == ["r1", "r1_child"]
    for gone in ("r1", "r1_child"):
        with pytest.raises(RunNotFoundError):
            store.get_run(gone)
    assert [r.run_id for r in store.list_runs()] == ["r2"]
    assert [m.name for m in store.get_metric_summaries("r2")] == ["loss"]
    with pytest.raises(RunNotFoundError):
        store.delete_run("r1")


def test_delete_refuses_a_run_that_has_not_ended(store: SqlStore) -> None:
    _run(store, "r1")
    _run(store, "r1_child", parent="r1", status=RunStatus.RUNNING)
    with pytest.raises(UserError, match="cancel it first") as refused:
        store.delete_run("r1")
    assert "r1_child" in refused.value.message
    assert store.get_run("r1").run_id == "r1"  # nothing deleted
    store.set_status("r1_child", RunStatus.CANCELED)
    assert sorted(store.delete_run("r1")) == ["r1", "r1_child"]


def test_query_language_in_sql(store: SqlStore) -> None:
    _run(store, "a", loss=0.3, tags={"stage": "dev"}, props={"lr": "0.1"})
    _run(store, "b", loss=0.7, tags={"stage": "dev"}, props={"lr": "0.01"})
    _run(store, "c", loss=0.2, tags={"stage": "prod"}, status=RunStatus.FAILED)
    _run(store, "d", tags={"stage": "dev"})  # no loss
    queries = StudioQueries(store)
    assert _ids(queries, 'metrics.loss < 0.5 and tags.stage = "dev" and status = "Completed"') == ["a"]
    assert _ids(queries, "metrics.loss >= 0.2") == ["a", "b", "c"]
    assert _ids(queries, "metrics.loss != 0.3") == ["b", "c"]  # d has no loss: no comparison holds
    assert _ids(queries, 'status = "failed"') == ["c"]  # statuses as runlab spells them, any case
    assert _ids(queries, 'status IN ("Completed", "Failed") and tags.stage != "dev"') == ["c"]
    assert _ids(queries, 'properties.lr = "0.01"') == ["b"]
    assert _ids(queries, "params.lr LIKE '0.1%'") == ["a"]
    assert _ids(queries, 'tags.stage ILIKE "PR%"') == ["c"]
    assert _ids(queries, 'run_id NOT IN ("a", "b")') == ["c", "d"]
    assert _ids(queries, 'experiment = "exp" and created_at > 0 and duration >= 0') == ["a", "b", "c", "d"]
    assert _ids(queries, 'tags.stage = "x\'; drop table runs; --"') == []  # a value, bound: harmless
    assert len(store.list_runs()) == 4


@pytest.mark.parametrize("text, position, token", [
    ("'; drop table runs; --", 0, "'"),
    ('metrics."x" = 1 or 1=1', 16, "or"),
    ("metrics.loss < 'a'", 15, "'a'"),
    ("metrics.loss ~ 1", 13, "~"),
    ("nope = 1", 0, "nope"),
    ('status = "Done"', 0, "Done"),
    ("metrics.loss <", 14, None),
    ("colour.x = 'a'", 0, "colour.x"),
])
def test_bad_queries_name_the_token(text: str, position: int, token: str | None) -> None:
    with pytest.raises(FilterError) as refused:
        parse_query(text)
    assert refused.value.position == position
    assert refused.value.token == token
    assert f"position {position}" in refused.value.message
    assert refused.value.expected


def test_protocol_keeps_deletes_and_archives_from_run_tokens() -> None:
    assert METHODS["delete_run"] == Access.WRITE and METHODS["set_run_archived"] == Access.WRITE
    assert METHODS["set_description"] == Access.RUN_WRITE and METHODS["add_run_note"] == Access.RUN_WRITE
    assert METHODS["list_run_notes"] == Access.RUN_READ


@pytest.mark.parametrize("descending", [True, False])
def test_metric_sort_pages_read_by_the_index_match_a_full_sort(store: SqlStore, descending: bool) -> None:
    """Pages sorted by a metric are read in the metric index's order, then the runs without it:
    every page, across that boundary, is what a full sort (value, then id; missing last) gives."""
    losses: dict[str, float | None] = {}
    for i in range(23):
        loss = None if i % 5 == 0 else float((i * 7) % 6) / 10  # ties, and runs without the metric
        run_id = f"r{i:02d}"
        _run(store, run_id, loss=loss, tags={"team": "a" if i % 3 else "b"})
        losses[run_id] = loss
    store.set_run_archived("r04", True)
    queries = StudioQueries(store)

    def expected(ids: list[str]) -> list[str]:
        have = sorted((i for i in ids if losses[i] is not None), key=lambda i: (losses[i], i), reverse=descending)
        return have + sorted((i for i in ids if losses[i] is None), reverse=descending)

    team_a_low = [i for i, v in losses.items() if i != "r04" and int(i[1:]) % 3 and v is not None and v < 0.45]
    for text, wanted in [("", [i for i in losses if i != "r04"]),
                         ('tags.team = "a" and metrics.loss < 0.45', team_a_low)]:
        where = RunFilter(conditions=parse_query(text) if text else ())
        order = expected(wanted)
        for offset in range(0, len(order) + 3, 4):
            page = queries.list_runs(where, sort="metric:loss", descending=descending, limit=4, offset=offset,
                                     metric_names=["loss"])
            assert page.total == len(order)
            assert [r.run_id for r in page.runs] == order[offset:offset + 4], (text, offset)
