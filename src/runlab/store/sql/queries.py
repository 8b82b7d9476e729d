"""Read-only queries for the studio: listings, sorting, search and comparison over a SqlStore.

Each public method issues a few SQL statements whatever the page size: one for the page of runs,
one for their total, and one each for the tags, properties and metric values of the rows on the
page. Sorting by a metric joins the ``metrics`` summary table (one row per run and metric, with
its last value), so no series is ever read to sort or fill a table.

Series are read from ``metric_chunks`` directly: :meth:`StudioQueries.read_series` skips whole
chunks before a start index (live charts ask only for new points), and
:meth:`StudioQueries.read_series_many` reads one metric of many runs in one statement.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from runlab.core import filterlang
from runlab.core.entities import MetricSummary, RunRecord
from runlab.core.errors import ExperimentNotFoundError, NotFoundError, RunNotFoundError, UserError
from runlab.core.status import RunStatus, RunType
from runlab.store import series as codec
from runlab.store.sql import schema as t
from runlab.store.sql.blobs import fetch_blob_rows
from runlab.store.sql.store import SqlStore, _translate

# Run columns a listing can sort by, besides ``metric:<name>``.
SORT_KEYS = ("created_at", "started_at", "ended_at", "status", "duration", "run_id", "display_name",
             "target", "experiment")
METRIC_SORT_PREFIX = "metric:"
TAG_SORT_PREFIX = "tag:"
PROPERTY_SORT_PREFIX = "property:"

# The studio's filter language (runlab.core.filterlang): attributes of a run, metrics (their last value),
# properties and tags, e.g. ``metrics.loss < 0.5 and tags.stage = "dev" and status = "Completed"``.
RUN_QUERY = filterlang.Grammar(
    "runs",
    string_attributes=frozenset({"run_id", "display_name", "status", "experiment", "target", "run_type"}),
    number_attributes=frozenset({"created_at", "started_at", "ended_at", "duration"}),
    entities=frozenset({"metric", "param", "tag", "attribute"}),
    aliases={"name": "display_name", "run_name": "display_name", "created": "created_at", "compute": "target",
             "started": "started_at", "ended": "ended_at", "id": "run_id", "type": "run_type"},
    entity_names={**filterlang.MLFLOW_ENTITIES, "property": "param", "properties": "param", "prop": "param",
                  "props": "param"},
)


def parse_query(text: str) -> list[filterlang.Condition]:
    """The conditions of a runs-table query; :class:`~runlab.core.filterlang.FilterError` (with the
    position and text of the wrong token, and what was expected) when it cannot be parsed."""
    conditions = filterlang.parse_filter(text, RUN_QUERY)
    out = []
    for cond in conditions:  # statuses as runlab spells them: "completed" is Completed
        if cond.field == filterlang.Field("attribute", "status") and cond.op in ("=", "!=", "IN", "NOT IN"):
            values = cond.value if isinstance(cond.value, tuple) else (cond.value,)
            parsed = []
            for value in values:
                try:
                    parsed.append(str(RunStatus.parse(value)))
                except (UserError, ValueError):
                    names = ", ".join(s.value for s in RunStatus)
                    raise filterlang.FilterError(
                        f"Invalid filter {text[:200]!r}: {value!r} (in the condition at position {cond.at}) is not "
                        f"a run status (use {names})", position=cond.at, token=value, expected=names) from None
            cond = filterlang.Condition(cond.field, cond.op, tuple(parsed) if isinstance(cond.value, tuple)
                                        else parsed[0], cond.at)
        out.append(cond)
    return out
_IN_CHUNK = 900  # SQLite allows 999 bound parameters per statement

# Lifecycle order, so that sorting by status groups runs the way people read them.
_STATUS_ORDER = {s.value: i for i, s in enumerate(RunStatus)}


@dataclass(frozen=True)
class RunFilter:
    """Which runs a listing holds. Every field is optional; they combine with AND."""

    experiment: str | None = None
    statuses: Sequence[RunStatus] = ()
    tags: Mapping[str, str | None] = field(default_factory=dict)  # None: the tag is set, any value
    search: str | None = None  # a substring of the run id or display name, case-insensitive
    parent_run_id: str | None = None
    include_children: bool = False
    run_ids: Sequence[str] = ()
    conditions: Sequence[filterlang.Condition] = ()  # a parsed query (parse_query): all must hold
    archived: bool | None = False  # False: hide archived runs; True: only archived runs; None: both


@dataclass(frozen=True)
class RunRow:
    """One run in a listing: what a runs table shows, without the run's definition."""

    run_id: str
    experiment_name: str
    status: RunStatus
    run_type: RunType
    created_at: float
    display_name: str | None
    parent_run_id: str | None
    target: str
    started_at: float | None
    ended_at: float | None
    owner: str | None
    description: str
    error: Mapping[str, Any] | None
    tags: Mapping[str, str]
    properties: Mapping[str, str]
    metrics: Mapping[str, Any]  # last value of each metric asked for that the run has
    child_count: int = 0
    archived_at: float | None = None

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.ended_at if self.ended_at is not None else time.time()
        return max(0.0, end - self.started_at)


@dataclass(frozen=True)
class RunPage:
    """A page of a listing and the number of runs the whole listing holds."""

    total: int
    offset: int
    limit: int
    runs: list[RunRow]


@dataclass(frozen=True)
class ExperimentSummary:
    """An experiment with its number of (top-level) runs, its newest run and runs per status."""

    name: str
    experiment_id: int
    created_at: float
    run_count: int
    last_run_id: str | None
    last_run_at: float | None
    status_counts: Mapping[str, int]
    archived_at: float | None = None


@dataclass(frozen=True)
class ColumnKeys:
    """What a runs table can show as columns: metric names with how many runs have each (most first),
    tag keys and property keys."""

    metrics: list[tuple[str, int]]
    tags: list[str]
    properties: list[str]


@dataclass(frozen=True)
class SeriesData:
    """Points ``start`` to ``start + len(steps)`` of one metric of one run (``count`` in all)."""

    run_id: str
    name: str
    kind: str
    count: int
    start: int
    steps: Any  # int64 array
    times: Any  # float64 array
    values: Any  # float64/int64 array when numeric, else a list

    @property
    def is_numeric(self) -> bool:
        return isinstance(self.values, np.ndarray)


def parse_sort(sort: str) -> tuple[str, str | None]:
    """``created_at`` -> (``created_at``, None); ``metric:loss`` -> (``metric``, ``loss``).

    Raises :class:`UserError` for an unknown column.
    """
    for prefix, kind in ((METRIC_SORT_PREFIX, "metric"), (TAG_SORT_PREFIX, "tag"), (PROPERTY_SORT_PREFIX, "property")):
        if sort.startswith(prefix):
            name = sort[len(prefix):]
            if not name:
                raise UserError(f"sort by a {kind} as '{prefix}<name>', for example '{prefix}loss'")
            return kind, name
    if sort not in SORT_KEYS:
        raise UserError(f"cannot sort runs by {sort!r}: use one of {', '.join(SORT_KEYS)}, or 'metric:<name>', "
                        "'tag:<key>', 'property:<key>'")
    return sort, None


class StudioQueries:
    """Read-only queries over the engine of a :class:`SqlStore` (SQLite or PostgreSQL).

    Raises ``StoreUnavailableError``/``StoreError`` (translated from SQLAlchemy) when the database
    fails, and the ``NotFoundError`` subclasses for a run or experiment that does not exist.
    """

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._engine: Engine = store.engine

    @contextmanager
    def _read(self, doing: str) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise _translate(exc, doing) from exc

    # -- experiments -----------------------------------------------------------------------

    def experiment_summaries(self) -> list[ExperimentSummary]:
        """Every experiment, by name, with its top-level runs counted by status."""
        r, e = t.runs, t.experiments
        with self._read("listing experiments") as conn:
            experiments = conn.execute(sa.select(e.c.id, e.c.name, e.c.created_at, e.c.archived_at)
                                       .order_by(e.c.name)).all()
            counts = conn.execute(
                sa.select(r.c.experiment_id, r.c.status, sa.func.count())
                .where(r.c.parent_id.is_(None))
                .group_by(r.c.experiment_id, r.c.status)
            ).all()
            newest = (
                sa.select(r.c.experiment_id, sa.func.max(r.c.created_at).label("at"))
                .where(r.c.parent_id.is_(None))
                .group_by(r.c.experiment_id)
                .subquery()
            )
            last_rows = conn.execute(
                sa.select(r.c.experiment_id, r.c.run_id, r.c.created_at)
                .join(newest, sa.and_(newest.c.experiment_id == r.c.experiment_id, newest.c.at == r.c.created_at))
                .where(r.c.parent_id.is_(None))
            ).all()
        by_experiment: dict[int, dict[str, int]] = {}
        for experiment_id, status, n in counts:
            by_experiment.setdefault(experiment_id, {})[status] = int(n)
        last = {row.experiment_id: (row.run_id, row.created_at) for row in last_rows}
        out = []
        for row in experiments:
            status_counts = dict(sorted(by_experiment.get(row.id, {}).items(),
                                        key=lambda kv: _STATUS_ORDER.get(kv[0], 99)))
            last_id, last_at = last.get(row.id, (None, None))
            out.append(ExperimentSummary(
                name=row.name, experiment_id=row.id, created_at=row.created_at,
                run_count=sum(status_counts.values()), last_run_id=last_id, last_run_at=last_at,
                status_counts=status_counts, archived_at=row.archived_at,
            ))
        return out

    def experiment_summary(self, name: str) -> ExperimentSummary:
        """One experiment's summary. Raises :class:`ExperimentNotFoundError`."""
        for summary in self.experiment_summaries():
            if summary.name == name:
                return summary
        raise ExperimentNotFoundError(
            f"experiment {name!r} does not exist in this workspace: see the experiments page", name=name
        )

    # -- runs ------------------------------------------------------------------------------

    def _conditions(self, conn: Connection, where: RunFilter) -> list[Any]:
        r = t.runs
        conds: list[Any] = []
        if where.experiment is not None:
            exp_id = conn.execute(sa.select(t.experiments.c.id).where(t.experiments.c.name == where.experiment)).scalar()
            if exp_id is None:
                raise ExperimentNotFoundError(
                    f"experiment {where.experiment!r} does not exist in this workspace", name=where.experiment
                )
            conds.append(r.c.experiment_id == exp_id)
        if where.statuses:
            conds.append(r.c.status.in_([str(s) for s in where.statuses]))
        if where.parent_run_id is not None:
            parent_pk = conn.execute(sa.select(r.c.id).where(r.c.run_id == where.parent_run_id)).scalar()
            if parent_pk is None:
                raise RunNotFoundError(f"run {where.parent_run_id!r} does not exist in this workspace",
                                       run_id=where.parent_run_id)
            conds.append(r.c.parent_id == parent_pk)
        elif not where.include_children and not where.run_ids:
            conds.append(r.c.parent_id.is_(None))
        if where.run_ids:
            conds.append(r.c.run_id.in_(list(where.run_ids)))
        for key, value in where.tags.items():
            cond = sa.and_(t.run_tags.c.run_pk == r.c.id, t.run_tags.c.key == key)
            if value is not None:
                cond = sa.and_(cond, t.run_tags.c.value == value)
            conds.append(sa.exists().where(cond))
        if where.search:
            conds.append(sa.or_(r.c.run_id.icontains(where.search, autoescape=True),
                                r.c.display_name.icontains(where.search, autoescape=True)))
        if where.archived is not None:
            conds.append(r.c.archived_at.isnot(None) if where.archived else r.c.archived_at.is_(None))
        conds.extend(_condition_sql(c, self._store.is_sqlite) for c in where.conditions)
        return conds

    def _ordered(self, conds: list[Any], sort: str, descending: bool) -> Any:
        """The SELECT of a listing's rows, filtered by ``conds`` and sorted by ``sort``."""
        key, name = parse_sort(sort)
        r, e = t.runs, t.experiments
        parent = r.alias("parent")
        query = (
            sa.select(
                r.c.id, r.c.run_id, r.c.display_name, r.c.run_type, r.c.status, r.c.target, r.c.created_at,
                r.c.started_at, r.c.ended_at, r.c.owner, r.c.description, r.c.error, r.c.archived_at,
                e.c.name.label("experiment_name"), parent.c.run_id.label("parent_run_id"),
            )
            # an outer join (every run has its experiment): SQLite then reads the runs first, in the order of
            # an index when one fits the sort, and stops at the page's end instead of sorting every run
            .outerjoin(e, e.c.id == r.c.experiment_id)
            .outerjoin(parent, parent.c.id == r.c.parent_id)
            .where(*conds)
        )
        order: list[Any]
        if key == "metric":
            m = t.metrics.alias("sort_metric")
            query = query.outerjoin(m, sa.and_(m.c.run_pk == r.c.id, m.c.name == name))
            order = _nulls_last(m.c.last_number, descending)
        elif key in ("tag", "property"):
            kv = (t.run_tags if key == "tag" else t.run_properties).alias("sort_kv")
            query = query.outerjoin(kv, sa.and_(kv.c.run_pk == r.c.id, kv.c.key == name))
            order = _nulls_last(kv.c.value, descending)
        elif key == "duration":
            duration = sa.func.coalesce(r.c.ended_at, time.time()) - r.c.started_at
            order = _nulls_last(duration, descending)
        elif key == "status":
            rank = sa.case(_STATUS_ORDER, value=r.c.status, else_=len(_STATUS_ORDER))
            order = [rank.desc() if descending else rank.asc()]
        elif key in ("started_at", "ended_at", "display_name"):
            order = _nulls_last(r.c[key], descending)
        elif key == "experiment":
            order = [e.c.name.desc() if descending else e.c.name.asc()]
        else:
            col = r.c[key]
            order = [col.desc() if descending else col.asc()]
        order.append(r.c.id.desc() if descending else r.c.id.asc())
        return query.order_by(*order)

    def _run_rows(self, conn: Connection, rows: Sequence[Any], metric_names: Sequence[str]) -> list[RunRow]:
        pks = [row.id for row in rows]
        tags = _key_values(conn, t.run_tags, pks)
        props = _key_values(conn, t.run_properties, pks)
        values = _last_values(conn, pks, metric_names)
        children = _child_counts(conn, pks)
        return [
            RunRow(
                run_id=row.run_id, experiment_name=row.experiment_name, status=RunStatus(row.status),
                run_type=RunType(row.run_type), created_at=row.created_at, display_name=row.display_name,
                parent_run_id=row.parent_run_id, target=row.target, started_at=row.started_at,
                ended_at=row.ended_at, owner=row.owner, description=row.description or "",
                error=json.loads(row.error) if row.error else None,
                tags=tags.get(row.id, {}), properties=props.get(row.id, {}), metrics=values.get(row.id, {}),
                child_count=children.get(row.id, 0), archived_at=row.archived_at,
            )
            for row in rows
        ]

    def list_runs(
        self,
        where: RunFilter = RunFilter(),
        *,
        sort: str = "created_at",
        descending: bool = True,
        limit: int = 50,
        offset: int = 0,
        metric_names: Sequence[str] = (),
    ) -> RunPage:
        """A page of runs, sorted by a column, a metric's last value, a tag or a property (runs without
        it come last), with the last values of ``metric_names``.

        Raises :class:`UserError` for an unknown sort key, :class:`ExperimentNotFoundError` /
        :class:`RunNotFoundError` when the filter names an experiment or parent that does not exist.
        """
        key, name = parse_sort(sort)
        with self._read("listing runs") as conn:
            conds = self._conditions(conn, where)
            total = conn.execute(sa.select(sa.func.count()).select_from(t.runs).where(*conds)).scalar_one()
            if key == "metric":
                rows = self._by_metric(conn, conds, str(name), descending, limit, offset)
            else:
                rows = list(conn.execute(self._ordered(conds, sort, descending).limit(limit).offset(offset)).all())
            runs = self._run_rows(conn, rows, metric_names)
        return RunPage(total=int(total), offset=offset, limit=limit, runs=runs)

    def _by_metric(self, conn: Connection, conds: list[Any], name: str, descending: bool, limit: int,
                   offset: int) -> list[Any]:
        """A page sorted by a metric's last value, read in the order of the metric's index (name,
        last value): the runs are looked up one by one until the page is full, so a first page of
        100,000 runs reads about its 50 runs instead of sorting them all. Runs without the metric
        (or with a value that is not a number) follow, by id, as in :meth:`_ordered`."""
        r, m = t.runs, t.metrics.alias("sort_metric")  # an alias: a query's own metric conditions stay apart
        has = sa.and_(m.c.name == name, m.c.last_number.isnot(None))
        matching = sa.exists().where(r.c.id == m.c.run_pk, *conds)
        pks = [row[0] for row in conn.execute(
            sa.select(m.c.run_pk).where(has, matching)
            .order_by(m.c.last_number.desc() if descending else m.c.last_number.asc(),
                      m.c.run_pk.desc() if descending else m.c.run_pk.asc())
            .limit(limit).offset(offset))]
        rows = self._rows_by_pk(conn, pks)
        if len(rows) < limit:  # the page reaches past the runs that have the metric
            n_with = conn.execute(sa.select(sa.func.count()).select_from(m).where(has, matching)).scalar_one()
            lacking = ~sa.exists().where(m.c.run_pk == r.c.id, has)
            rest = conn.execute(self._ordered([*conds, lacking], "run_id", descending).order_by(None)
                                .order_by(r.c.id.desc() if descending else r.c.id.asc())
                                .limit(limit - len(rows)).offset(max(0, offset - int(n_with)))).all()
            rows += rest
        return rows

    def _rows_by_pk(self, conn: Connection, pks: list[int]) -> list[Any]:
        """The listing's columns of the runs ``pks``, in that order."""
        if not pks:
            return []
        found = {row.id: row for row in conn.execute(self._ordered([t.runs.c.id.in_(pks)], "run_id", False))}
        return [found[pk] for pk in pks if pk in found]

    def iter_runs(
        self,
        where: RunFilter = RunFilter(),
        *,
        sort: str = "created_at",
        descending: bool = True,
        limit: int = 100_000,
        metric_names: Sequence[str] = (),
        batch: int = 500,
    ) -> Iterator[list[RunRow]]:
        """Every run of a listing (at most ``limit``), in batches: the sorted, filtered query runs once
        (no OFFSET pages, which a filter would evaluate again for every page); each batch's tags,
        properties and metric values are read as it is yielded. Errors (a bad sort, an unknown
        experiment) are raised by the first ``next()``."""
        parse_sort(sort)
        with self._read("listing runs") as conn:
            conds = self._conditions(conn, where)
            rows = conn.execute(self._ordered(conds, sort, descending).limit(limit)).all()
        for start in range(0, len(rows), batch):
            with self._read("listing runs") as conn:
                yield self._run_rows(conn, rows[start:start + batch], metric_names)

    def run_records(self, run_ids: Sequence[str]) -> list[RunRecord]:
        """Full records (with definitions) of ``run_ids``, in that order; unknown ids are left out.
        A few statements for any number of runs."""
        r, e = t.runs, t.experiments
        parent = r.alias("parent")
        rows: list[Any] = []
        with self._read("reading runs") as conn:
            for part in _chunks(list(dict.fromkeys(run_ids))):
                rows.extend(conn.execute(
                    sa.select(r, e.c.name.label("experiment_name"), parent.c.run_id.label("parent_run_id"))
                    .join(e, e.c.id == r.c.experiment_id).outerjoin(parent, parent.c.id == r.c.parent_id)
                    .where(r.c.run_id.in_(part))
                ).all())
            pks = [row.id for row in rows]
            tags = _key_values(conn, t.run_tags, pks)
            props = _key_values(conn, t.run_properties, pks)
        by_id = {
            row.run_id: RunRecord(
                run_id=row.run_id, experiment_name=row.experiment_name, status=RunStatus(row.status),
                run_type=RunType(row.run_type), created_at=row.created_at, display_name=row.display_name,
                parent_run_id=row.parent_run_id, target=row.target, started_at=row.started_at,
                ended_at=row.ended_at, heartbeat_at=row.heartbeat_at, owner=row.owner,
                error=json.loads(row.error) if row.error else None,
                definition=json.loads(row.definition) if row.definition else None,
                tags=tags.get(row.id, {}), properties=props.get(row.id, {}), description=row.description or "",
                archived_at=row.archived_at,
            )
            for row in rows
        }
        return [by_id[run_id] for run_id in run_ids if run_id in by_id]

    def child_count(self, run_id: str) -> int:
        """How many runs have ``run_id`` as their parent."""
        r = t.runs
        parent = sa.select(r.c.id).where(r.c.run_id == run_id).scalar_subquery()
        with self._read(f"counting the children of run {run_id}") as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(r).where(r.c.parent_id == parent)).scalar_one())

    def metric_names(self, experiment: str | None = None, limit: int = 500) -> list[str]:
        """Distinct metric names (of an experiment's runs, or of the workspace), sorted, at most ``limit``."""
        m = t.metrics
        query = sa.select(m.c.name).distinct().order_by(m.c.name).limit(limit)
        with self._read("listing metric names") as conn:
            if experiment is not None:
                exp_id = conn.execute(sa.select(t.experiments.c.id).where(t.experiments.c.name == experiment)).scalar()
                if exp_id is None:
                    raise ExperimentNotFoundError(f"experiment {experiment!r} does not exist in this workspace",
                                                  name=experiment)
                query = query.join(t.runs, t.runs.c.id == m.c.run_pk).where(t.runs.c.experiment_id == exp_id)
            return [row[0] for row in conn.execute(query)]

    def column_keys(self, experiment: str | None = None, limit: int = 500, sample: int = 5_000) -> ColumnKeys:
        """Metric names (with the number of runs that have each, most first), tag and property keys,
        of the newest ``sample`` top-level runs (of an experiment, or of the workspace); at most
        ``limit`` of each. A sample, so that the list stays fast however many runs there are."""
        m, r = t.metrics, t.runs
        with self._read("listing columns") as conn:
            newest = sa.select(r.c.id).where(r.c.parent_id.is_(None))
            if experiment is not None:
                exp_id = conn.execute(sa.select(t.experiments.c.id).where(t.experiments.c.name == experiment)).scalar()
                if exp_id is None:
                    raise ExperimentNotFoundError(f"experiment {experiment!r} does not exist in this workspace",
                                                  name=experiment)
                newest = newest.where(r.c.experiment_id == exp_id)
            pks = newest.order_by(r.c.created_at.desc()).limit(sample).scalar_subquery()
            n = sa.func.count().label("n")
            metrics = [(row[0], int(row[1])) for row in conn.execute(
                sa.select(m.c.name, n).where(m.c.run_pk.in_(pks)).group_by(m.c.name).order_by(n.desc(), m.c.name)
                .limit(limit))]
            keys = []
            for table in (t.run_tags, t.run_properties):
                keys.append([row[0] for row in conn.execute(
                    sa.select(table.c.key).where(table.c.run_pk.in_(pks)).distinct().order_by(table.c.key).limit(limit))])
        return ColumnKeys(metrics=metrics, tags=keys[0], properties=keys[1])

    def metric_summaries(self, run_ids: Sequence[str]) -> dict[str, list[MetricSummary]]:
        """The metric summaries of several runs at once, in logging order (unknown ids are left out)."""
        out: dict[str, list[MetricSummary]] = {run_id: [] for run_id in run_ids}
        m, r = t.metrics, t.runs
        with self._read("reading metric summaries") as conn:
            for part in _chunks(list(run_ids)):
                rows = conn.execute(
                    sa.select(r.c.run_id, m).join(r, r.c.id == m.c.run_pk).where(r.c.run_id.in_(part)).order_by(m.c.id)
                ).all()
                for row in rows:
                    out[row.run_id].append(_summary(row.run_id, row))
        return out

    # -- series ----------------------------------------------------------------------------

    def read_series(self, run_id: str, name: str, start: int = 0) -> SeriesData:
        """Points ``start`` onward of metric ``name`` of run ``run_id``; whole chunks before
        ``start`` are not read. Raises :class:`RunNotFoundError`, or :class:`NotFoundError` when
        the run has no such metric."""
        m, r, c = t.metrics, t.runs, t.metric_chunks
        with self._read(f"reading metric {name!r} of run {run_id}") as conn:
            metric = conn.execute(
                sa.select(m.c.id, m.c.kind, m.c["count"]).join(r, r.c.id == m.c.run_pk)
                .where(r.c.run_id == run_id, m.c.name == name)
            ).first()
            if metric is None:
                if conn.execute(sa.select(r.c.id).where(r.c.run_id == run_id)).first() is None:
                    raise RunNotFoundError(f"run {run_id!r} does not exist in this workspace", run_id=run_id)
                raise NotFoundError(f"run {run_id} has no metric named {name!r}", run_id=run_id, metric=name)
            start = max(0, start)
            first_seq, skipped = 0, 0
            if start > 0:
                sizes = conn.execute(sa.select(c.c.seq, c.c["count"]).where(c.c.metric_id == metric.id)
                                     .order_by(c.c.seq)).all()
                first_seq = sizes[-1][0] + 1 if sizes else 0
                for seq, n in sizes:
                    if skipped + n > start:
                        first_seq = seq
                        break
                    skipped += n
            chunks = fetch_blob_rows(conn,
                sa.select(c.c.encoding, c.c.steps, c.c.times, c.c["values"])
                .where(c.c.metric_id == metric.id, c.c.seq >= first_seq).order_by(c.c.seq)
            )
        steps, times, values = codec.decode_chunks(chunks)
        cut = start - skipped
        if cut > 0:
            steps, times, values = steps[cut:], times[cut:], values[cut:]
        count = int(metric[2])
        return SeriesData(run_id, name, metric.kind, count, min(start, count), steps, times, values)

    def read_series_many(self, run_ids: Sequence[str], name: str) -> dict[str, SeriesData]:
        """Metric ``name`` of each of ``run_ids`` that has it, in two statements per 900 runs."""
        m, r, c = t.metrics, t.runs, t.metric_chunks
        out: dict[str, SeriesData] = {}
        with self._read(f"reading metric {name!r} of {len(run_ids)} runs") as conn:
            for part in _chunks(list(dict.fromkeys(run_ids))):
                metrics = conn.execute(
                    sa.select(m.c.id, m.c.kind, m.c["count"], r.c.run_id).join(r, r.c.id == m.c.run_pk)
                    .where(r.c.run_id.in_(part), m.c.name == name)
                ).all()
                if not metrics:
                    continue
                by_id: dict[int, list[Any]] = {row.id: [] for row in metrics}
                for chunk in fetch_blob_rows(conn,
                    sa.select(c.c.metric_id, c.c.encoding, c.c.steps, c.c.times, c.c["values"])
                    .where(c.c.metric_id.in_(list(by_id))).order_by(c.c.metric_id, c.c.seq)
                ):
                    by_id[chunk.metric_id].append(chunk[1:])
                for row in metrics:
                    steps, times, values = codec.decode_chunks(by_id[row.id])
                    out[row.run_id] = SeriesData(row.run_id, name, row.kind, int(row[2]), 0, steps, times, values)
        return {run_id: out[run_id] for run_id in run_ids if run_id in out}


def _glob_of(pattern: str) -> str:
    """A LIKE pattern (``%``, ``_``, backslash escapes) as SQLite's GLOB pattern (``*``, ``?``,
    ``[*]`` for a literal ``*``), which matches case-sensitively."""
    out, at = [], 0
    while at < len(pattern):
        c = pattern[at]
        if c == filterlang.LIKE_ESCAPE and at + 1 < len(pattern):
            at += 1
            c = pattern[at]
            out.append(f"[{c}]" if c in "*?[" else c)
        elif c == "%":
            out.append("*")
        elif c == "_":
            out.append("?")
        else:
            out.append(f"[{c}]" if c in "*?[" else c)
        at += 1
    return "".join(out)


def _compare(col: Any, cond: filterlang.Condition, sqlite: bool = False) -> Any:
    """``col <op> value`` with the value a bound parameter: nothing of the query is SQL text."""
    op, value = cond.op, cond.value
    if op == "=":
        return col == value
    if op == "!=":
        return col != value
    if op == "<":
        return col < value
    if op == "<=":
        return col <= value
    if op == ">":
        return col > value
    if op == ">=":
        return col >= value
    if op == "LIKE":  # case-sensitive, as PostgreSQL's and MLflow's: SQLite's LIKE is not, its GLOB is
        return col.op("GLOB")(_glob_of(value)) if sqlite else col.like(value, escape=filterlang.LIKE_ESCAPE)
    if op == "ILIKE":
        return sa.func.lower(col).like(str(value).lower(), escape=filterlang.LIKE_ESCAPE)
    if op == "IN":
        return col.in_(list(value))
    if op == "NOT IN":
        return col.notin_(list(value))
    raise UserError(f"unknown comparator {op!r}")  # the parser lets none other through


def _condition_sql(cond: filterlang.Condition, sqlite: bool = False) -> Any:
    """One condition of a query as SQL. As in MLflow, a run without the metric, property or tag a
    condition names matches no comparison (``!=`` included)."""
    r = t.runs
    entity, key = cond.field.entity, cond.field.key
    if entity == "metric":
        m = t.metrics
        return sa.exists().where(m.c.run_pk == r.c.id, m.c.name == key, _compare(m.c.last_number, cond, sqlite))
    if entity in ("tag", "param"):
        kv = t.run_tags if entity == "tag" else t.run_properties
        return sa.exists().where(kv.c.run_pk == r.c.id, kv.c.key == key, _compare(kv.c.value, cond, sqlite))
    if key == "experiment":
        e = t.experiments
        return r.c.experiment_id.in_(sa.select(e.c.id).where(_compare(e.c.name, cond, sqlite)))
    if key == "duration":
        col: Any = sa.func.coalesce(r.c.ended_at, time.time()) - r.c.started_at
        return sa.and_(r.c.started_at.isnot(None), _compare(col, cond, sqlite))
    col = r.c[key]
    return sa.and_(col.isnot(None), _compare(col, cond, sqlite))


def _nulls_last(col: Any, descending: bool) -> list[Any]:
    return [col.is_(None).asc(), col.desc() if descending else col.asc()]


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start:start + _IN_CHUNK]


def _key_values(conn: Connection, table: sa.Table, pks: list[int]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {}
    for part in _chunks(pks):
        for row in conn.execute(sa.select(table.c.run_pk, table.c.key, table.c.value).where(table.c.run_pk.in_(part))):
            out.setdefault(row.run_pk, {})[row.key] = row.value
    return out


def _last_values(conn: Connection, pks: list[int], names: Sequence[str]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    if not pks or not names:
        return out
    m = t.metrics
    for part in _chunks(pks):
        rows = conn.execute(
            sa.select(m.c.run_pk, m.c.name, m.c.last_json).where(m.c.run_pk.in_(part), m.c.name.in_(list(names)[:50]))
        )
        for row in rows:
            out.setdefault(row.run_pk, {})[row.name] = codec.loads_value(row.last_json)
    return out


def _child_counts(conn: Connection, pks: list[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for part in _chunks(pks):
        rows = conn.execute(
            sa.select(t.runs.c.parent_id, sa.func.count()).where(t.runs.c.parent_id.in_(part)).group_by(t.runs.c.parent_id)
        )
        out.update({int(parent): int(n) for parent, n in rows})
    return out


def _summary(run_id: str, row: Any) -> MetricSummary:
    return MetricSummary(
        run_id=run_id, name=row.name, kind=row.kind, count=row._mapping["count"],
        last=codec.loads_value(row.last_json), last_step=row.last_step, last_time=row.last_time,
        min=row.min_value, max=row.max_value, description=row.description or "",
    )


