"""Runs: the filtered, sorted, paginated listing (and its CSV export); one run's details; its
children; a comparison; and the studio's write actions: edit a run's name, description and tags, add
a note, cancel, archive or unarchive, delete (records and files), one run at a time or in bulk.

Writes need a writer's or an admin's token when the server checks tokens (the middleware of
:mod:`runlab.server.auth` refuses readers, and run tokens reach none of these routes); without
authentication (``runlab studio``) the middleware refuses writes from another site's page (Origin,
Referer, Sec-Fetch-Site). A running run is not deleted: cancel it first (the answer says so).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from typing import Annotated, Any, Iterator, Literal

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import AfterValidator, ConfigDict, Field, StringConstraints

from runlab.core.entities import RunNote, RunRecord
from runlab.core.errors import NotFoundError, RunNotFoundError, UserError
from runlab.core.filterlang import MAX_FILTER_LENGTH, FilterError
from runlab.core.names import check_run_id
from runlab.core.status import RunStatus, RunType
from runlab.server import errors, models, views
from runlab.server.api.files import no_nul, shown_name
from runlab.server.auth import Principal, require_write
from runlab.server.state import StudioState, get_state
from runlab.store.sql.queries import RunFilter, RunRow, parse_query

router = APIRouter(tags=["runs"], responses=models.ERROR_RESPONSES)
State = Annotated[StudioState, Depends(get_state)]


NoNul = AfterValidator(no_nul)
RunId = Annotated[str, Path(min_length=1, max_length=320, description="the run's id"), NoNul]
Text255 = Annotated[str, StringConstraints(max_length=255), NoNul]
Text600 = Annotated[str, StringConstraints(max_length=600), NoNul]
Text5000 = Annotated[str, StringConstraints(max_length=5000), NoNul]
Id320 = Annotated[str, StringConstraints(max_length=320), NoNul]

MAX_PAGE = 500
MAX_COMPARE = 200
MAX_BULK = 500
MAX_EXPORT = 100_000
Writer = Annotated[Principal, Depends(require_write)]
Archived = Literal["exclude", "include", "only"]


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
    experiment: Annotated[str | None, Query(max_length=255, description="only runs of this experiment"), NoNul] = None,
    status: Annotated[list[Text255], Query(max_length=20, description="only runs with one of these statuses")] = [],
    tag: Annotated[list[Text600], Query(max_length=20, description="key=value (or key: the tag is set)")] = [],
    search: Annotated[str | None, Query(max_length=200, description="part of the run id or display name"), NoNul] = None,
    sort: Annotated[str, Query(max_length=300, description="created_at, started_at, ended_at, status, duration, "
                               "run_id, display_name, target, experiment, or metric:<name> (its last value)"),
                    NoNul] = "created_at",
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
    metric: Annotated[list[Text255], Query(max_length=50, description="metrics whose last value each row carries")
                      ] = [],
    include_children: Annotated[bool, Query(description="also list child runs (default: top-level runs)")] = False,
    parent: Annotated[str | None, Query(max_length=320, description="only the children of this run"), NoNul] = None,
    q: Annotated[str | None, Query(max_length=MAX_FILTER_LENGTH, description=QUERY_HELP)] = None,
    archived: Annotated[Archived, Query(description="archived runs: left out (exclude), with the others "
                                        "(include), or alone (only)")] = "exclude",
) -> Any:
    """A page of runs and the total that match. Runs without the metric a sort names come last.
    A query ``q`` that cannot be parsed is a 400 whose ``details`` give the token's position."""
    state.reap()
    try:
        where = _filter(experiment, status, tag, search, parent, include_children, q, archived)
    except FilterError as exc:
        return filter_error(exc)
    page = state.queries.list_runs(where, sort=sort, descending=order == "desc", limit=limit, offset=offset,
                                   metric_names=[m for m in metric if m])
    return models.RunList(total=page.total, offset=page.offset, limit=page.limit,
                          runs=[views.run_info(r) for r in page.runs])


QUERY_HELP = ('a query over attributes, metrics (their last value), properties and tags: '
              '`metrics.loss < 0.5 and tags.stage = "dev" and status = "Completed"`; comparators = != < <= > >= '
              'for numbers, = != LIKE ILIKE IN (...) NOT IN (...) for strings, conditions joined by AND')


def _filter(experiment: str | None, status: list[str], tag: list[str], search: str | None, parent: str | None,
            include_children: bool, q: str | None, archived: str) -> RunFilter:
    return RunFilter(
        experiment=experiment or None,
        statuses=[RunStatus.parse(s) for s in status if s],
        tags=parse_tags(tag),
        search=search or None,
        parent_run_id=parent or None,
        include_children=include_children,
        conditions=parse_query(q) if q and q.strip() else (),
        archived={"exclude": False, "only": True}.get(archived),
    )


def filter_error(exc: FilterError) -> JSONResponse:
    """400 with where the query went wrong: ``details`` = [{parameter, position, token, expected}]."""
    detail = {"parameter": "q", "position": exc.context.get("position"), "token": exc.context.get("token"),
              "expected": exc.context.get("expected")}
    return JSONResponse(errors.error_body(exc.message, "FilterError", [detail]), status_code=400)


@router.get("/runs-columns", response_model=models.RunColumns, summary="What a runs table can show as columns")
def run_columns(
    state: State,
    experiment: Annotated[str | None, Query(max_length=255, description="only of this experiment's runs"), NoNul] = None,
) -> models.RunColumns:
    """Metric names with the number of runs that have each (most first), tag keys and property keys,
    of the newest 5,000 top-level runs (so that the list stays fast at 100,000 runs)."""
    keys = state.queries.column_keys(experiment or None)
    return models.RunColumns(metrics=[models.MetricColumn(name=n, runs=c) for n, c in keys.metrics],
                             tags=keys.tags, properties=keys.properties)


EXPORT_FIXED = ["run_id", "display_name", "experiment", "status", "created_at", "started_at", "ended_at",
                "duration_s", "target", "user"]


@router.get("/runs-export", summary="The runs a listing holds, as CSV", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}})
def export_runs(
    state: State,
    experiment: Annotated[str | None, Query(max_length=255), NoNul] = None,
    status: Annotated[list[Text255], Query(max_length=20)] = [],
    tag: Annotated[list[Text600], Query(max_length=20)] = [],
    search: Annotated[str | None, Query(max_length=200), NoNul] = None,
    sort: Annotated[str, Query(max_length=300), NoNul] = "created_at",
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    metric: Annotated[list[Text255], Query(max_length=50, description="metric columns")] = [],
    tag_column: Annotated[list[Text255], Query(max_length=50, description="tag columns")] = [],
    property_column: Annotated[list[Text255], Query(max_length=50, description="property columns")] = [],
    include_children: Annotated[bool, Query()] = False,
    parent: Annotated[str | None, Query(max_length=320), NoNul] = None,
    q: Annotated[str | None, Query(max_length=MAX_FILTER_LENGTH, description=QUERY_HELP)] = None,
    archived: Annotated[Archived, Query()] = "exclude",
) -> Any:
    """Every run of the listing (the runs table's filters and sort; at most 100,000), one CSV row
    each: the run's fields, then ``metric.<name>``, ``tag.<key>`` and ``property.<key>`` columns.
    The query runs once; rows are streamed 500 at a time."""
    try:
        where = _filter(experiment, status, tag, search, parent, include_children, q, archived)
    except FilterError as exc:
        return filter_error(exc)
    metrics = [m for m in metric if m]
    tags = [t for t in tag_column if t]
    props = [p for p in property_column if p]
    batches = state.queries.iter_runs(where, sort=sort, descending=order == "desc", limit=MAX_EXPORT,
                                      metric_names=metrics, batch=MAX_PAGE)
    first = next(batches, [])  # errors (a bad sort, an unknown experiment) before the stream starts

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([*EXPORT_FIXED, *(f"metric.{m}" for m in metrics), *(f"tag.{t}" for t in tags),
                         *(f"property.{p}" for p in props)])
        for batch in itertools.chain([first], batches):
            for row in batch:
                writer.writerow(_csv_row(row, metrics, tags, props))
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()

    name = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment or "runs")[:100] or "runs"  # a header is ASCII
    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _is_number(text) else text  # no spreadsheet formulas


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _csv_row(row: RunRow, metrics: list[str], tags: list[str], props: list[str]) -> list[Any]:
    """The row as the runs table shows it (what ``views.run_info`` gives), without building its model."""
    fixed = [row.run_id, row.display_name, row.experiment_name, str(row.status), row.created_at, row.started_at,
             row.ended_at, row.duration_s, row.target, views.user_of(row.properties, row.owner)]
    values = (views.shown_value(row.metrics[m]) if m in row.metrics else None for m in metrics)
    return [_cell(v) for v in (*fixed, *values, *(row.tags.get(t) for t in tags),
                               *(row.properties.get(p) for p in props))]


def run_details_of(state: StudioState, record: RunRecord) -> models.RunDetails:
    """What ``GET /api/runs/ID`` answers (the run page carries it too: its overview needs no request)."""
    names = [shown_name(n) for n in state.artifacts.list(record.run_id)]
    return views.run_details(record, child_count=state.queries.child_count(record.run_id), file_names=names,
                             studio_url=state.settings.studio_url)


@router.get("/runs/{run_id}", response_model=models.RunDetails, summary="One run, with everything the run page shows")
def get_run(state: State, run_id: RunId) -> models.RunDetails:
    return run_details_of(state, state.store.get_run(run_id))


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


# -- write actions -------------------------------------------------------------------------------

class _Body(models._Model):
    model_config = ConfigDict(extra="forbid")


class RunEdit(_Body):
    """What to change of a run; fields left out stay as they are."""

    display_name: Annotated[str | None, NoNul] = Field(default=None, max_length=255,
                                     description='the name shown ("" shows the run by its id again)')
    description: Annotated[str | None, NoNul] = Field(default=None, max_length=20_000)
    add_tags: dict[Text255, Text5000] = Field(
        default_factory=dict, max_length=200, description="tags to set (added or changed)")
    remove_tags: list[Text255] = Field(default_factory=list, max_length=200, description="tag keys to remove")


class NoteIn(_Body):
    text: Annotated[str, NoNul] = Field(min_length=1, max_length=20_000)


class ArchiveIn(_Body):
    archived: bool = True


class BulkIn(_Body):
    action: Literal["tag", "untag", "cancel", "archive", "unarchive", "delete"]
    run_ids: list[Id320] = Field(min_length=1, max_length=MAX_BULK)
    tags: dict[Text255, Text5000] = Field(
        default_factory=dict, max_length=200, description="for tag: the tags to set")
    keys: list[Text255] = Field(default_factory=list, max_length=200, description="for untag: the keys to remove")


def _details(state: StudioState, run_id: str) -> models.RunDetails:
    return get_run(state, run_id)


def _check_tag_key(key: str) -> str:
    if not key.strip():
        raise UserError("a tag needs a key: got an empty one")
    return key


@router.patch("/runs/{run_id}", response_model=models.RunDetails, summary="Edit a run's name, description and tags")
def edit_run(state: State, run_id: RunId, body: RunEdit, _: Writer) -> models.RunDetails:
    """Rename (``display_name``), describe, set tags (``add_tags``) and remove tags (``remove_tags``)."""
    state.store.get_run(run_id)  # 404 before any change
    if body.display_name is not None:
        state.store.set_display_name(run_id, body.display_name.strip() or None)
    if body.description is not None:
        state.store.set_description(run_id, body.description)
    if body.add_tags:
        state.store.set_tags(run_id, {_check_tag_key(k): v for k, v in body.add_tags.items()})
    if body.remove_tags:
        state.store.remove_tags(run_id, body.remove_tags)
    return _details(state, run_id)


@router.get("/runs/{run_id}/notes", response_model=list[models.NoteInfo], summary="A run's notes, oldest first")
def list_notes(state: State, run_id: RunId) -> list[models.NoteInfo]:
    return [_note(n) for n in state.store.list_run_notes(run_id)]


@router.post("/runs/{run_id}/notes", response_model=models.NoteInfo, status_code=201, summary="Add a note to a run")
def add_note(state: State, run_id: RunId, body: NoteIn, who: Writer) -> models.NoteInfo:
    return _note(state.store.add_run_note(run_id, body.text, author=who.name))


def _note(note: RunNote) -> models.NoteInfo:
    return models.NoteInfo(note_id=note.note_id, run_id=note.run_id, text=note.text, created_at=note.created_at,
                           author=note.author)


def cancel(state: StudioState, record: RunRecord) -> None:
    """What ``Run.cancel()`` does: a queued submitted run is Canceled at once, a running submitted run
    gets CancelRequested (its agent stops the script and marks it Canceled); any other run that has
    not ended is marked Canceled. Refused (400) for a run that has ended."""
    if record.status.is_terminal:
        raise UserError(f"run {record.run_id} has already ended ({record.status}): there is nothing to cancel",
                        run_id=record.run_id)
    store = state.store
    if record.run_type == RunType.SUBMITTED:
        if not store.set_status(record.run_id, RunStatus.CANCELED, only_if_status=[RunStatus.QUEUED]):
            store.set_status(record.run_id, RunStatus.CANCEL_REQUESTED, only_if_active=True)
    elif not store.set_status(record.run_id, RunStatus.CANCELED, only_if_active=True):
        raise UserError(f"run {record.run_id} ended meanwhile: there is nothing to cancel", run_id=record.run_id)


@router.post("/runs/{run_id}/cancel", response_model=models.RunDetails, summary="Cancel a queued or running run")
def cancel_run(state: State, run_id: RunId, _: Writer) -> models.RunDetails:
    cancel(state, state.store.get_run(run_id))
    return _details(state, run_id)


@router.post("/runs/{run_id}/archive", response_model=models.RunDetails, summary="Archive or unarchive a run")
def archive_run(state: State, run_id: RunId, _: Writer,
                body: Annotated[ArchiveIn, Body()] = ArchiveIn()) -> models.RunDetails:
    """``{"archived": true}`` hides the run (and its child runs) from listings unless they ask for
    archived runs; ``false`` brings them back. Nothing is deleted."""
    state.store.set_run_archived(run_id, body.archived)
    return _details(state, run_id)


def delete(state: StudioState, run_id: str) -> list[str]:
    """Delete a run's records and files, and its child runs'. Refused (400) while the run or a child
    has not ended: cancel it first."""
    from runlab.store.sql.tokens import revoke_run_tokens

    check_run_id(run_id)  # an id that cannot name a folder (../x) never reaches the files
    deleted = state.store.delete_run(run_id)
    for gone in deleted:
        state.artifacts.delete_run(gone)
        revoke_run_tokens(state.store.engine, gone)  # a deleted run's token writes nothing any more
    return deleted


@router.delete("/runs/{run_id}", response_model=models.DeletedRuns, summary="Delete a run (records and files)")
def delete_run(state: State, run_id: RunId, _: Writer) -> models.DeletedRuns:
    """The run, its child runs, their metrics, notes and files go; a run that has not ended is refused."""
    return models.DeletedRuns(deleted=delete(state, run_id))


@router.post("/runs-bulk", response_model=models.BulkResult, summary="Tag, cancel, archive or delete many runs")
def bulk(state: State, body: BulkIn, _: Writer) -> models.BulkResult:
    """The action on each run in turn; a run it fails for (not found, already ended, still running)
    is reported in ``failed`` with the reason, and the others are done."""
    if body.action == "tag" and not body.tags:
        raise UserError("bulk tag needs tags: {\"action\": \"tag\", \"run_ids\": [...], \"tags\": {\"key\": \"value\"}}")
    if body.action == "untag" and not body.keys:
        raise UserError("bulk untag needs the keys to remove: {\"keys\": [\"key\"]}")
    done: list[str] = []
    failed: dict[str, str] = {}
    for run_id in dict.fromkeys(body.run_ids):
        try:
            if body.action == "tag":
                state.store.set_tags(run_id, {_check_tag_key(k): v for k, v in body.tags.items()})
            elif body.action == "untag":
                state.store.remove_tags(run_id, body.keys)
            elif body.action == "cancel":
                cancel(state, state.store.get_run(run_id))
            elif body.action in ("archive", "unarchive"):
                state.store.set_run_archived(run_id, body.action == "archive")
            else:
                delete(state, run_id)
            done.append(run_id)
        except (UserError, NotFoundError) as exc:
            failed[run_id] = exc.message
    return models.BulkResult(action=body.action, done=done, failed=failed)

