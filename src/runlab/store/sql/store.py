"""SqlStore: the store interface over SQLAlchemy Core, for SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

import copy
import json
import os
import threading
import time
import uuid
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError

from runlab.core.assets import (
    ComputeTargetRecord,
    DatasetFile,
    DatasetRecord,
    DatastoreFileRecord,
    DatastoreRecord,
    EnvironmentRecord,
    ModelDatasetRecord,
    ModelFile,
    ModelRecord,
    RunInputRecord,
)
from runlab.core.entities import ExperimentRecord, MetricBatch, MetricKind, MetricSummary, RunNote, RunRecord
from runlab.core.errors import (
    ComputeTargetException,
    DatasetConflictError,
    DatasetNotFoundError,
    DatastoreNotFoundError,
    ExperimentNotFoundError,
    ModelNotFoundError,
    NotFoundError,
    PropertyConflictError,
    RunNotFoundError,
    StoreBusyError,
    StoreError,
    StoreUnavailableError,
    UserError,
)
from runlab.core.names import check_id, check_model_name, check_run_id
from runlab.core.process import is_local_process_dead
from runlab.core.status import ACTIVE_STATUSES, TERMINAL_STATUSES, RunStatus, RunType
from runlab.store import series
from runlab.store.base import MetricSeries
from runlab.store.sql import schema as t
from runlab.store.sql.blobs import fetch_blob_rows

# the runs of a target that hold one of its max_nodes: claimed by an agent and not ended
_TAKEN_STATUSES = sorted(str(s) for s in ACTIVE_STATUSES - {RunStatus.QUEUED})

_UNAVAILABLE_MARKERS = (
    "database is locked",
    "database table is locked",
    "disk i/o error",
    "database or disk is full",
    "unable to open database",
    "could not connect",
    "connection refused",
    "server closed the connection",
    "terminating connection",
)

# Lock contention, which clears by itself: SQLite's SQLITE_BUSY and SQLITE_LOCKED (the low byte
# of the extended code, Python 3.11+; the message on 3.10), PostgreSQL's serialization failure,
# deadlock and lock timeout.
_SQLITE_BUSY_CODES = (5, 6)
_BUSY_MARKERS = ("database is locked", "database table is locked", "database schema is locked")
_PG_BUSY_STATES = ("40001", "40P01", "55P03")

REAP_INTERVAL_S = 2.0


def _is_busy(orig: object, text: str) -> bool:
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _SQLITE_BUSY_CODES
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(state, str) and state:
        return state in _PG_BUSY_STATES
    return any(m in text for m in _BUSY_MARKERS)


def _translate(exc: Exception, doing: str) -> StoreError:
    """The one place database errors become runlab's: temporary ones (``StoreUnavailableError``,
    and ``StoreBusyError`` for lock contention) are worth retrying; any other is permanent."""
    orig = getattr(exc, "orig", exc)
    text = str(orig).lower()
    if isinstance(exc, DBAPIError) and _is_busy(orig, text):
        return StoreBusyError(f"the store is busy while {doing}: {text} (another process is writing; "
                              "the same call succeeds once it is done)")
    if isinstance(exc, (OperationalError, DBAPIError)) and any(m in text for m in _UNAVAILABLE_MARKERS):
        return StoreUnavailableError(f"the store is unavailable while {doing}: {text}")
    if isinstance(exc, OperationalError):
        return StoreUnavailableError(f"the store failed while {doing}: {text}")
    return StoreError(f"the store failed while {doing}: {text}")


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


_sqlite_write_locks: dict[str, threading.RLock] = {}
_sqlite_write_locks_guard = threading.Lock()


def _new_locks_after_fork() -> None:  # a forked child has one thread: a lock another thread held stays held
    global _sqlite_write_locks_guard
    _sqlite_write_locks.clear()
    _sqlite_write_locks_guard = threading.Lock()


os.register_at_fork(after_in_child=_new_locks_after_fork)


def _sqlite_write_lock(url: str) -> threading.RLock:
    """The lock this process's writes to one SQLite file queue on (every SqlStore of that URL shares it;
    re-entrant, so a write inside a write behaves as before: it waits on SQLite's lock)."""
    with _sqlite_write_locks_guard:
        lock = _sqlite_write_locks.get(url)
        if lock is None:
            lock = _sqlite_write_locks[url] = threading.RLock()
        return lock


LOST_CODE = "RunLost"  # the error code of a run the reaper presumed dead (set_status over_lost)
_replaying = threading.local()


class SqlStore:
    """Runs, experiments and metric series in one SQL database.

    ``url`` is an SQLAlchemy URL (``sqlite:////abs/path/workspace.db`` or
    ``postgresql+psycopg://...``). The schema is created or migrated (Alembic) on first open.
    """

    def __init__(self, url: str, *, busy_timeout_s: float = 5.0, migrate: bool = True) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        try:
            if self.is_sqlite and ":memory:" in url:
                self._engine = sa.create_engine(url, poolclass=sa.pool.StaticPool)
                _configure_sqlite(self._engine)
            elif self.is_sqlite:
                self._engine = sa.create_engine(
                    url,
                    connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
                    pool_size=4,
                    max_overflow=8,
                )
                _configure_sqlite(self._engine)
            else:
                self._engine = sa.create_engine(url, pool_pre_ping=True)
        except SQLAlchemyError as exc:
            raise _translate(exc, "opening the database") from exc
        except ModuleNotFoundError as exc:
            raise UserError(f"the database driver for {url.split(':', 1)[0]} is not installed: {exc}") from exc
        self._lock_wait_ms = max(1, int(busy_timeout_s * 1000))
        self._last_reap = 0.0
        self._reap_lock = threading.Lock()
        # set by the workspace folder: replays the journals dead processes left, before a run is presumed lost
        self.before_marking_lost: Callable[[], object] | None = None
        if migrate:
            from runlab.store.sql.migrate import ensure_schema

            ensure_schema(self._engine)

    # -- plumbing --------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        return self._engine

    def with_lock_wait(self, seconds: float) -> "SqlStore":
        """This store (same engine and pool) with writes that wait at most ``seconds`` for
        SQLite's write lock before failing with StoreUnavailableError.

        The metric flusher writes through such a view: a lock held by another process must send
        its points to the journal within a fraction of the flush interval, not after the busy
        timeout, so that a SIGKILL loses at most one interval whatever the store is doing.
        """
        view = copy.copy(self)
        view._lock_wait_ms = max(1, int(seconds * 1000))
        return view

    @contextmanager
    def _write(self, doing: str) -> Iterator[Connection]:
        if not self.is_sqlite:
            with self._write_transaction(doing, None) as conn:
                yield conn
            return
        # SQLite has one writer at a time. Threads of this process queue on a lock of the file's
        # and take the write lock the moment it is released; left to SQLite's busy handler they
        # would sleep in steps of up to 100 ms however soon it was released (20 writers of a server
        # waited 300-700 ms at p99 so). Other processes still meet SQLite's busy timeout.
        lock = _sqlite_write_lock(self.url)
        started = time.monotonic()
        if not lock.acquire(timeout=self._lock_wait_ms / 1000):
            raise StoreBusyError(f"the store is busy while {doing}: another thread of this process held its write "
                                 f"lock for {self._lock_wait_ms / 1000:g} s (the same call succeeds once it is done)")
        try:
            left_ms = max(1, self._lock_wait_ms - int((time.monotonic() - started) * 1000))
            with self._write_transaction(doing, left_ms) as conn:
                yield conn
        finally:
            lock.release()

    @contextmanager
    def _write_transaction(self, doing: str, sqlite_busy_ms: int | None) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                if sqlite_busy_ms is not None:
                    conn = conn.execution_options(sqlite_begin="IMMEDIATE", sqlite_busy_ms=sqlite_busy_ms)
                with conn.begin():
                    yield conn
        except (UserError, NotFoundError):
            raise
        except SQLAlchemyError as exc:
            raise _translate(exc, doing) from exc

    @contextmanager
    def _read(self, doing: str) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                yield conn
        except (UserError, NotFoundError):
            raise
        except SQLAlchemyError as exc:
            raise _translate(exc, doing) from exc

    def close(self) -> None:
        self._engine.dispose()

    # -- experiments -----------------------------------------------------------------------

    def get_or_create_experiment(self, name: str) -> ExperimentRecord:
        try:
            return self.get_experiment(name)
        except ExperimentNotFoundError:
            pass
        try:
            with self._write(f"creating experiment {name!r}") as conn:
                conn.execute(t.experiments.insert().values(name=name, created_at=time.time()))
        except StoreError as exc:
            if not isinstance(exc.__cause__, IntegrityError):  # created meanwhile by another process
                raise
        return self.get_experiment(name)

    def get_experiment(self, name: str) -> ExperimentRecord:
        with self._read(f"reading experiment {name!r}") as conn:
            row = conn.execute(sa.select(t.experiments).where(t.experiments.c.name == name)).first()
        if row is None:
            raise ExperimentNotFoundError(f"experiment {name!r} does not exist", name=name)
        return _experiment_record(row)

    def list_experiments(self) -> list[ExperimentRecord]:
        with self._read("listing experiments") as conn:
            rows = conn.execute(sa.select(t.experiments).order_by(t.experiments.c.name)).all()
        return [_experiment_record(r) for r in rows]

    def _experiment_pk(self, conn: Connection, name: str) -> int:
        pk = conn.execute(sa.select(t.experiments.c.id).where(t.experiments.c.name == name)).scalar()
        if pk is None:
            raise ExperimentNotFoundError(f"experiment {name!r} does not exist", name=name)
        return int(pk)

    def update_experiment(
        self,
        name: str,
        *,
        add_tags: Mapping[str, str] | None = None,
        remove_tags: Sequence[str] = (),
        archived: bool | None = None,
    ) -> ExperimentRecord:
        """Change an experiment's tags (``add_tags`` set, then ``remove_tags`` go) and whether it is
        archived, in one transaction."""
        with self._write(f"updating experiment {name!r}") as conn:
            pk = self._experiment_pk(conn, name)
            row = conn.execute(sa.select(t.experiments).where(t.experiments.c.id == pk)).one()
            tags = dict(json.loads(row.tags or "{}"))
            tags.update(add_tags or {})
            for key in remove_tags:
                tags.pop(key, None)
            values: dict[str, Any] = {"tags": json.dumps(tags, sort_keys=True) if tags else None}
            if archived is not None:
                values["archived_at"] = (row.archived_at or time.time()) if archived else None
            conn.execute(t.experiments.update().where(t.experiments.c.id == pk).values(**values))
        return self.get_experiment(name)

    def delete_experiment(self, name: str) -> list[str]:
        """Delete an experiment and the records of its runs (their children too); refused
        (``UserError``) while one of them has not ended. Returns the ids of the deleted runs, for the
        caller to remove their files."""
        with self._write(f"deleting experiment {name!r}") as conn:
            pk = self._experiment_pk(conn, name)
            rows = conn.execute(sa.select(t.runs.c.run_id, t.runs.c.status)
                                .where(t.runs.c.experiment_id == pk)).all()
            active = [r.run_id for r in rows if not RunStatus.parse(r.status).is_terminal]
            if active:
                raise UserError(
                    f"experiment {name!r} has {len(active)} run(s) that have not ended ({', '.join(active[:5])}): "
                    "cancel them or wait for them to end, then delete it", name=name)
            conn.execute(t.experiments.delete().where(t.experiments.c.id == pk))
        return [r.run_id for r in rows]

    # -- runs ------------------------------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        experiment_name: str,
        *,
        run_type: RunType,
        status: RunStatus,
        display_name: str | None = None,
        parent_run_id: str | None = None,
        target: str = "local",
        owner: str | None = None,
        definition: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        created_at: float | None = None,
    ) -> RunRecord:
        check_run_id(run_id)  # no route into the database for an id that cannot name a folder
        experiment = self.get_or_create_experiment(experiment_name)
        now = time.time() if created_at is None else created_at
        with self._write(f"creating run {run_id}") as conn:
            parent_pk = None
            if parent_run_id is not None:
                parent_pk = self._run_pk(conn, parent_run_id)
            started = now if status == RunStatus.RUNNING else None
            result = conn.execute(
                t.runs.insert().values(
                    run_id=run_id,
                    experiment_id=experiment.experiment_id,
                    parent_id=parent_pk,
                    display_name=display_name,
                    run_type=str(run_type),
                    status=str(status),
                    target=target,
                    created_at=now,
                    started_at=started,
                    heartbeat_at=now if owner else None,
                    owner=owner,
                    definition=json.dumps(definition) if definition is not None else None,
                    description="",
                )
            )
            run_pk = result.inserted_primary_key[0]  # type: ignore[index]
            conn.execute(t.run_status_history.insert().values(run_pk=run_pk, status=str(status), at=now))
            if tags:
                conn.execute(t.run_tags.insert(), [{"run_pk": run_pk, "key": k, "value": v} for k, v in tags.items()])
            if properties:
                conn.execute(
                    t.run_properties.insert(),
                    [{"run_pk": run_pk, "key": k, "value": v} for k, v in properties.items()],
                )
        return self.get_run(run_id)

    def _run_pk(self, conn: Connection, run_id: str) -> int:
        pk = conn.execute(sa.select(t.runs.c.id).where(t.runs.c.run_id == run_id)).scalar()
        if pk is None:
            raise RunNotFoundError(
                f"run {run_id!r} does not exist in this workspace: list runs with `runlab runs list`",
                run_id=run_id,
            )
        return int(pk)

    def _select_runs(self) -> sa.Select[Any]:
        parent = t.runs.alias("parent")
        return (
            sa.select(
                t.runs,
                t.experiments.c.name.label("experiment_name"),
                parent.c.run_id.label("parent_run_id"),
            )
            .join(t.experiments, t.experiments.c.id == t.runs.c.experiment_id)
            .outerjoin(parent, parent.c.id == t.runs.c.parent_id)
        )

    def _records(self, conn: Connection, rows: Sequence[Any], *, history: bool = False) -> list[RunRecord]:
        pks = [r.id for r in rows]
        histories: dict[int, list[tuple[str, float]]] = {pk: [] for pk in pks}
        if history:
            for row in conn.execute(
                sa.select(t.run_status_history)
                .where(t.run_status_history.c.run_pk.in_(pks))
                .order_by(t.run_status_history.c.at, t.run_status_history.c.id)
            ):
                histories[row.run_pk].append((row.status, row.at))
        tags: dict[int, dict[str, str]] = {pk: {} for pk in pks}
        props: dict[int, dict[str, str]] = {pk: {} for pk in pks}
        for start in range(0, len(pks), 900):
            part = pks[start : start + 900]
            for row in conn.execute(sa.select(t.run_tags).where(t.run_tags.c.run_pk.in_(part))):
                tags[row.run_pk][row.key] = row.value
            for row in conn.execute(sa.select(t.run_properties).where(t.run_properties.c.run_pk.in_(part))):
                props[row.run_pk][row.key] = row.value
        return [
            RunRecord(
                run_id=r.run_id,
                experiment_name=r.experiment_name,
                status=RunStatus(r.status),
                run_type=RunType(r.run_type),
                created_at=r.created_at,
                display_name=r.display_name,
                parent_run_id=r.parent_run_id,
                target=r.target,
                started_at=r.started_at,
                ended_at=r.ended_at,
                heartbeat_at=r.heartbeat_at,
                owner=r.owner,
                error=json.loads(r.error) if r.error else None,
                definition=json.loads(r.definition) if r.definition else None,
                tags=tags[r.id],
                properties=props[r.id],
                description=r.description or "",
                status_history=tuple(histories[r.id]),
                archived_at=r.archived_at,
            )
            for r in rows
        ]

    def get_run(self, run_id: str) -> RunRecord:
        with self._read(f"reading run {run_id}") as conn:
            row = conn.execute(self._select_runs().where(t.runs.c.run_id == run_id)).first()
            if row is None:
                raise RunNotFoundError(
                    f"run {run_id!r} does not exist in this workspace: list runs with `runlab runs list`",
                    run_id=run_id,
                )
            record = self._records(conn, [row], history=True)[0]
        if record.status in ACTIVE_STATUSES and self._is_stale(record, self._heartbeat_timeout):
            try:
                self._mark_lost(record)
            except StoreError:
                return record  # a read must not fail because the store cannot be written (disk full)
            return self.get_run(run_id)
        return record

    def list_runs(
        self,
        *,
        experiment_name: str | None = None,
        statuses: Iterable[RunStatus] | None = None,
        tags: Mapping[str, str | None] | None = None,
        properties: Mapping[str, str | None] | None = None,
        parent_run_id: str | None = None,
        include_children: bool = True,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[RunRecord]:
        self.reap_stale_runs(self._heartbeat_timeout, throttle=True)
        query = self._select_runs()
        if experiment_name is not None:
            query = query.where(t.experiments.c.name == experiment_name)
        if statuses is not None:
            query = query.where(t.runs.c.status.in_([str(s) for s in statuses]))
        if parent_run_id is not None:
            sub = sa.select(t.runs.c.id).where(t.runs.c.run_id == parent_run_id).scalar_subquery()
            query = query.where(t.runs.c.parent_id == sub)
        elif not include_children:
            query = query.where(t.runs.c.parent_id.is_(None))
        for table, wanted in ((t.run_tags, tags), (t.run_properties, properties)):
            for key, value in (wanted or {}).items():
                cond = sa.and_(table.c.run_pk == t.runs.c.id, table.c.key == key)
                if value is not None:
                    cond = sa.and_(cond, table.c.value == str(value))
                query = query.where(sa.exists().where(cond))
        query = query.order_by(t.runs.c.created_at.desc(), t.runs.c.id.desc()).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with self._read("listing runs") as conn:
            rows = conn.execute(query).all()
            return self._records(conn, rows)

    def set_status(
        self,
        run_id: str,
        status: RunStatus,
        *,
        error: Mapping[str, Any] | None = None,
        when: float | None = None,
        only_if_active: bool = False,
        only_if_status: Iterable[RunStatus] | None = None,
        over_lost: bool = False,
    ) -> bool:
        """Set the status; ``only_if_*`` make it a compare-and-set. Returns whether it changed.

        ``over_lost``: with ``only_if_active``, a run marked Failed as lost (``RunLost``: its heartbeat
        stopped, or its process was gone) counts as active too. The reaper only presumed it dead; the end
        its own process wrote (live, or replayed from its journal) is what happened."""
        now = time.time() if when is None else when
        values: dict[str, Any] = {"status": str(status)}
        if status == RunStatus.RUNNING:
            values["started_at"] = sa.func.coalesce(t.runs.c.started_at, now)
        if status in TERMINAL_STATUSES:
            values["ended_at"] = now
            values["started_at"] = sa.func.coalesce(t.runs.c.started_at, now)
        if error is not None:
            values["error"] = json.dumps(dict(error))
        elif over_lost:
            values["error"] = None  # the presumption's error goes with it; an active run has none
        with self._write(f"setting the status of run {run_id}") as conn:
            pk = self._run_pk(conn, run_id)
            stmt = t.runs.update().where(t.runs.c.run_id == run_id)
            if only_if_active:
                active: sa.ColumnElement[bool] = t.runs.c.status.notin_([str(s) for s in TERMINAL_STATUSES])
                if over_lost:
                    lost = sa.and_(t.runs.c.status == str(RunStatus.FAILED),
                                   t.runs.c.error.like(f'%"code": "{LOST_CODE}"%'))
                    active = sa.or_(active, lost)
                stmt = stmt.where(active)
            if only_if_status is not None:
                stmt = stmt.where(t.runs.c.status.in_([str(s) for s in only_if_status]))
            changed = conn.execute(stmt.values(**values)).rowcount
            if changed:
                conn.execute(t.run_status_history.insert().values(run_pk=pk, status=str(status), at=now))
        return bool(changed)

    def heartbeat(self, run_id: str, owner: str | None = None, when: float | None = None) -> None:
        values: dict[str, Any] = {"heartbeat_at": time.time() if when is None else when}
        if owner is not None:
            values["owner"] = owner
        with self._write(f"recording a heartbeat of run {run_id}") as conn:
            conn.execute(t.runs.update().where(t.runs.c.run_id == run_id).values(**values))

    def set_display_name(self, run_id: str, display_name: str | None) -> None:
        """Rename a run as shown (``None``: shown by its id again); its id never changes."""
        with self._write(f"renaming run {run_id}") as conn:
            pk = self._run_pk(conn, run_id)
            conn.execute(t.runs.update().where(t.runs.c.id == pk).values(display_name=display_name))

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        if not tags:
            return
        with self._write(f"tagging run {run_id}") as conn:
            pk = self._run_pk(conn, run_id)
            conn.execute(t.run_tags.delete().where(t.run_tags.c.run_pk == pk, t.run_tags.c.key.in_(list(tags))))
            conn.execute(t.run_tags.insert(), [{"run_pk": pk, "key": k, "value": v} for k, v in tags.items()])

    def remove_tags(self, run_id: str, keys: Sequence[str]) -> None:
        with self._write(f"removing tags of run {run_id}") as conn:
            pk = self._run_pk(conn, run_id)
            conn.execute(t.run_tags.delete().where(t.run_tags.c.run_pk == pk, t.run_tags.c.key.in_(list(keys))))

    def add_properties(self, run_id: str, properties: Mapping[str, str]) -> None:
        if not properties:
            return
        with self._write(f"adding properties to run {run_id}") as conn:
            pk = self._run_pk(conn, run_id)
            existing = dict(
                conn.execute(
                    sa.select(t.run_properties.c.key, t.run_properties.c.value).where(
                        t.run_properties.c.run_pk == pk, t.run_properties.c.key.in_(list(properties))
                    )
                ).all()
            )
            for key, value in properties.items():
                if key in existing and existing[key] != value:
                    raise PropertyConflictError(
                        f"property {key!r} of run {run_id} is already {existing[key]!r}: properties are "
                        f"add-only, so it cannot become {value!r}; use a tag (run.tag) for values that change",
                        run_id=run_id,
                        key=key,
                    )
            new = {k: v for k, v in properties.items() if k not in existing}
            if new:
                conn.execute(t.run_properties.insert(), [{"run_pk": pk, "key": k, "value": v} for k, v in new.items()])

    def set_description(self, run_id: str, description: str) -> None:
        """Replace the run's description (what the studio's run page shows under Details)."""
        with self._write(f"describing run {run_id}") as conn:
            pk = self._run_pk(conn, run_id)
            conn.execute(t.runs.update().where(t.runs.c.id == pk).values(description=description or ""))

    def _descendants(self, conn: Connection, pk: int) -> list[Any]:
        """Rows (id, run_id, status) of the run ``pk`` and of every run below it, the run first."""
        rows = list(conn.execute(sa.select(t.runs.c.id, t.runs.c.run_id, t.runs.c.status)
                                 .where(t.runs.c.id == pk)).all())
        frontier = [pk]
        while frontier:
            found: list[Any] = []
            for start in range(0, len(frontier), 900):
                found += conn.execute(sa.select(t.runs.c.id, t.runs.c.run_id, t.runs.c.status)
                                      .where(t.runs.c.parent_id.in_(frontier[start:start + 900]))).all()
            rows += found
            frontier = [row.id for row in found]
        return rows

    def set_run_archived(self, run_id: str, archived: bool) -> None:
        """Archive a run and the runs below it (studio listings hide them unless asked), or bring them
        back; the records and files stay."""
        with self._write(f"archiving run {run_id}") as conn:
            pk = self._run_pk(conn, run_id)
            pks = [row.id for row in self._descendants(conn, pk)]
            value: Any = (sa.func.coalesce(t.runs.c.archived_at, time.time())) if archived else None
            for start in range(0, len(pks), 900):
                conn.execute(t.runs.update().where(t.runs.c.id.in_(pks[start:start + 900]))
                             .values(archived_at=value))

    def delete_run(self, run_id: str) -> list[str]:
        """Delete a run's records and those of the runs below it; refused (``UserError``) while one of
        them has not ended (cancel it first). Returns the ids of the deleted runs, for the caller to
        remove their files."""
        with self._write(f"deleting run {run_id}") as conn:
            pk = self._run_pk(conn, run_id)
            rows = self._descendants(conn, pk)
            active = [r.run_id for r in rows if not RunStatus.parse(r.status).is_terminal]
            if active:
                raise UserError(
                    f"run {run_id} cannot be deleted while {len(active)} run(s) of it have not ended "
                    f"({', '.join(active[:5])}): cancel it first, or wait for it to end", run_id=run_id)
            pks = [r.id for r in rows]
            for start in range(0, len(pks), 900):  # children first: no foreign key left dangling
                part = pks[start:start + 900]
                conn.execute(t.run_notes.delete().where(t.run_notes.c.run_pk.in_(part)))
            for row in reversed(rows):
                conn.execute(t.runs.delete().where(t.runs.c.id == row.id))
        return [r.run_id for r in rows]

    def add_run_note(self, run_id: str, text: str, author: str | None = None) -> RunNote:
        """Add a note to a run (notes are kept in the order they were added)."""
        if not text or not text.strip():
            raise UserError(f"a note of run {run_id} needs some text", run_id=run_id)
        now = time.time()
        with self._write(f"adding a note to run {run_id}") as conn:
            pk = self._run_pk(conn, run_id)
            result = conn.execute(t.run_notes.insert().values(run_pk=pk, text=text, author=author, created_at=now))
            note_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        return RunNote(note_id=note_id, run_id=run_id, text=text, created_at=now, author=author)

    def list_run_notes(self, run_id: str) -> list[RunNote]:
        with self._read(f"reading the notes of run {run_id}") as conn:
            pk = self._run_pk(conn, run_id)
            rows = conn.execute(sa.select(t.run_notes).where(t.run_notes.c.run_pk == pk)
                                .order_by(t.run_notes.c.created_at, t.run_notes.c.id)).all()
        return [RunNote(note_id=r.id, run_id=run_id, text=r.text, created_at=r.created_at, author=r.author)
                for r in rows]

    # -- liveness --------------------------------------------------------------------------

    _heartbeat_timeout = 120.0

    def set_heartbeat_timeout(self, seconds: float) -> None:
        self._heartbeat_timeout = seconds

    @staticmethod
    def _is_stale(record: RunRecord, timeout_s: float) -> bool:
        if record.owner is None and record.heartbeat_at is None:
            return False  # queued, nobody has claimed it yet
        if is_local_process_dead(record.owner):
            return True
        return record.heartbeat_at is not None and record.heartbeat_at < time.time() - timeout_s

    def _mark_lost(self, record: RunRecord) -> None:
        replay = self.before_marking_lost
        if replay is not None and not getattr(_replaying, "active", False):
            # what the dead process could not write before it exited (its end too) may be in its journal
            _replaying.active = True
            try:
                replay()
            except Exception:  # noqa: BLE001 - a journal that cannot be replayed now: the presumption stands
                pass
            finally:
                _replaying.active = False
        if is_local_process_dead(record.owner):
            reason = (
                f"the process that ran it ({record.owner}) died without ending the run "
                "(killed, out of memory, or the machine restarted)"
            )
        else:
            age = time.time() - (record.heartbeat_at or record.created_at)
            reason = f"no heartbeat for {age:.0f} s from {record.owner or 'its process'}: it is presumed dead"
        self.set_status(
            record.run_id,
            RunStatus.FAILED,
            error={"message": f"Run lost: {reason}.", "code": LOST_CODE},
            only_if_active=True,
        )

    def reap_stale_runs(self, timeout_s: float, *, throttle: bool = False) -> list[str]:
        """Mark Failed the active runs whose process is gone or whose heartbeat is too old."""
        now = time.time()
        if throttle:
            with self._reap_lock:
                if now - self._last_reap < REAP_INTERVAL_S:
                    return []
                self._last_reap = now
        with self._read("looking for lost runs") as conn:
            rows = conn.execute(
                self._select_runs().where(
                    t.runs.c.status.in_([str(s) for s in ACTIVE_STATUSES]),
                    sa.or_(t.runs.c.owner.is_not(None), t.runs.c.heartbeat_at.is_not(None)),
                )
            ).all()
            records = self._records(conn, rows)
        lost = [r for r in records if self._is_stale(r, timeout_s)]
        for record in lost:
            try:
                self._mark_lost(record)
            except StoreError:
                pass  # the next reader tries again; a read must not fail because writes do
        return [r.run_id for r in lost]

    # -- metrics ---------------------------------------------------------------------------

    def append_metrics(self, run_id: str, batches: Sequence[MetricBatch], batch_id: str | None = None) -> None:
        """Append points atomically: all batches or none. ``batch_id`` makes a replay idempotent."""
        if not batches:
            return
        encoded = [(b, *_encode_batch(b)) for b in batches]
        try:
            self._append_encoded(run_id, batches, encoded, batch_id)
        except StoreError as exc:
            # the same batch applied meanwhile by another request (a client that timed out and sent it again
            # while the first was still being written): it is in, once
            if batch_id is not None and isinstance(exc.__cause__, IntegrityError) and self._batch_applied(batch_id):
                return
            raise

    def _batch_applied(self, batch_id: str) -> bool:
        with self._engine.connect() as conn:
            return conn.execute(sa.select(t.applied_batches.c.batch_id)
                                .where(t.applied_batches.c.batch_id == batch_id)).first() is not None

    def _append_encoded(self, run_id: str, batches: Sequence[MetricBatch], encoded: list[Any],
                        batch_id: str | None) -> None:
        with self._write(f"writing metrics of run {run_id}") as conn:
            if batch_id is not None:
                seen = conn.execute(
                    sa.select(t.applied_batches.c.batch_id).where(t.applied_batches.c.batch_id == batch_id)
                ).first()
                if seen is not None:
                    return
                conn.execute(t.applied_batches.insert().values(batch_id=batch_id, applied_at=time.time()))
            run_pk = self._run_pk(conn, run_id)
            names = [b.name for b in batches]
            existing = {
                row.name: row
                for start in range(0, len(names), 900)
                for row in conn.execute(
                    sa.select(t.metrics).where(t.metrics.c.run_pk == run_pk, t.metrics.c.name.in_(names[start : start + 900]))
                )
            }
            new_rows = [
                {"run_pk": run_pk, "name": b.name, "kind": b.kind, "description": b.description, "count": 0, "chunks": 0}
                for b in batches
                if b.name not in existing
            ]
            if new_rows:
                conn.execute(t.metrics.insert(), new_rows)
                fresh = [r["name"] for r in new_rows]
                for start in range(0, len(fresh), 900):
                    for row in conn.execute(
                        sa.select(t.metrics).where(t.metrics.c.run_pk == run_pk, t.metrics.c.name.in_(fresh[start : start + 900]))
                    ):
                        existing[row.name] = row
            chunk_rows = []
            updates = []
            for batch, encoding, values_blob, vmin, vmax in encoded:
                row = existing[batch.name]
                n = len(batch.values)
                count = row._mapping["count"]  # not row.count: a tuple method on SQLAlchemy 2.0
                steps = _fill_steps(batch.steps, count)
                chunk_rows.append(
                    {
                        "metric_id": row.id,
                        "seq": row.chunks,
                        "count": n,
                        "encoding": encoding,
                        "steps": series.encode_steps(steps),
                        "times": series.encode_floats(batch.times),
                        "values": values_blob,
                    }
                )
                last = _plain(batch.values[-1])
                updates.append(
                    {
                        "b_id": row.id,
                        "count": count + n,
                        "chunks": row.chunks + 1,
                        "last_json": series.dumps_value(last),
                        "last_number": series.as_number(last),
                        "last_step": int(steps[-1]),
                        "last_time": float(batch.times[-1]),
                        "min_value": _combine(min, row.min_value, vmin),
                        "max_value": _combine(max, row.max_value, vmax),
                        "description": batch.description or row.description,
                    }
                )
            conn.execute(t.metric_chunks.insert(), chunk_rows)
            conn.execute(
                t.metrics.update()
                .where(t.metrics.c.id == sa.bindparam("b_id"))
                .values(
                    count=sa.bindparam("count"),
                    chunks=sa.bindparam("chunks"),
                    last_json=sa.bindparam("last_json"),
                    last_number=sa.bindparam("last_number"),
                    last_step=sa.bindparam("last_step"),
                    last_time=sa.bindparam("last_time"),
                    min_value=sa.bindparam("min_value"),
                    max_value=sa.bindparam("max_value"),
                    description=sa.bindparam("description"),
                ),
                updates,
            )

    def get_metric_summaries(self, run_id: str) -> list[MetricSummary]:
        with self._read(f"reading metrics of run {run_id}") as conn:
            pk = self._run_pk(conn, run_id)
            rows = conn.execute(sa.select(t.metrics).where(t.metrics.c.run_pk == pk).order_by(t.metrics.c.id)).all()
        return [
            MetricSummary(
                run_id=run_id,
                name=r.name,
                kind=r.kind,
                count=r._mapping["count"],
                last=series.loads_value(r.last_json),
                last_step=r.last_step,
                last_time=r.last_time,
                min=r.min_value,
                max=r.max_value,
                description=r.description or "",
            )
            for r in rows
        ]

    def get_metric_series(self, run_id: str, name: str) -> MetricSeries:
        with self._read(f"reading metric {name!r} of run {run_id}") as conn:
            pk = self._run_pk(conn, run_id)
            metric = conn.execute(
                sa.select(t.metrics.c.id, t.metrics.c.kind).where(t.metrics.c.run_pk == pk, t.metrics.c.name == name)
            ).first()
            if metric is None:
                raise NotFoundError(f"run {run_id} has no metric named {name!r}", run_id=run_id, metric=name)
            chunks = fetch_blob_rows(conn,
                sa.select(t.metric_chunks.c.encoding, t.metric_chunks.c.steps, t.metric_chunks.c.times, t.metric_chunks.c["values"])
                .where(t.metric_chunks.c.metric_id == metric.id)
                .order_by(t.metric_chunks.c.seq)
            )
        steps, times, values = series.decode_chunks(chunks)
        return MetricSeries(name=name, kind=metric.kind, steps=steps, times=times, values=values)

    # -- submitted runs --------------------------------------------------------------------

    def claim_queued_run(self, target: str, owner: str, max_active: int | None = None) -> RunRecord | None:
        """Atomically take the oldest Queued run of ``target``: it becomes Preparing, owned by ``owner``.

        ``max_active``: the target's ``max_nodes``. No run is taken while that many runs of the target
        are being prepared or running, whichever agent has them: two machines' agents serving one
        target share its bound instead of each running that many."""
        now = time.time()
        with self._write(f"claiming a queued run of {target}") as conn:
            if max_active is not None:
                if not self.is_sqlite:  # claims of one target one at a time (SQLite's write lock does that)
                    key = zlib.crc32(f"runlab claim {target}".encode())
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
                active = conn.execute(
                    sa.select(sa.func.count()).select_from(t.runs)
                    .where(t.runs.c.target == target, t.runs.c.status.in_(_TAKEN_STATUSES))
                ).scalar()
                if int(active or 0) >= max_active:
                    return None
            oldest = (
                sa.select(t.runs.c.id)
                .where(t.runs.c.status == str(RunStatus.QUEUED), t.runs.c.target == target)
                .order_by(t.runs.c.created_at, t.runs.c.id)
                .limit(1)
            )
            if not self.is_sqlite:
                oldest = oldest.with_for_update(skip_locked=True)
            pk = conn.execute(oldest).scalar()
            if pk is None:
                return None
            claimed = conn.execute(
                t.runs.update()
                .where(t.runs.c.id == pk, t.runs.c.status == str(RunStatus.QUEUED))
                .values(status=str(RunStatus.PREPARING), owner=owner, heartbeat_at=now)
            ).rowcount
            if claimed:
                conn.execute(t.run_status_history.insert().values(run_pk=pk, status=str(RunStatus.PREPARING), at=now))
            run_id = conn.execute(sa.select(t.runs.c.run_id).where(t.runs.c.id == pk)).scalar()
        return self.get_run(str(run_id)) if claimed else None

    def update_definition(self, run_id: str, patch: Mapping[str, Any]) -> None:
        """Merge ``patch`` into the run's definition (what was resolved while preparing it)."""
        with self._write(f"updating the definition of run {run_id}") as conn:
            self._run_pk(conn, run_id)
            current = conn.execute(sa.select(t.runs.c.definition).where(t.runs.c.run_id == run_id)).scalar()
            merged = {**(json.loads(current) if current else {}), **patch}
            conn.execute(t.runs.update().where(t.runs.c.run_id == run_id).values(definition=json.dumps(merged)))

    def count_runs_by_status(self, target: str | None = None) -> dict[RunStatus, int]:
        query = sa.select(t.runs.c.status, sa.func.count()).group_by(t.runs.c.status)
        if target is not None:
            query = query.where(t.runs.c.target == target)
        with self._read("counting runs") as conn:
            return {RunStatus(status): int(n) for status, n in conn.execute(query).all()}

    # -- environments ----------------------------------------------------------------------

    def register_environment(self, name: str, content_hash: str, definition: Mapping[str, Any]) -> EnvironmentRecord:
        """Register a version of ``name``; the same definition as the latest returns that version."""
        with self._write(f"registering environment {name!r}") as conn:
            latest = conn.execute(
                sa.select(t.environments).where(t.environments.c.name == name).order_by(t.environments.c.version.desc()).limit(1)
            ).first()
            # the hash covers what is installed; variables and the rest must match too
            if latest is not None and latest.content_hash == content_hash and json.loads(latest.definition) == dict(definition):
                return _environment(latest)
            version = 1 if latest is None else latest.version + 1
            conn.execute(
                t.environments.insert().values(
                    name=name, version=version, content_hash=content_hash,
                    definition=json.dumps(dict(definition)), created_at=time.time(),
                )
            )
        return self.get_environment(name, version)

    def get_environment(self, name: str, version: int | None = None) -> EnvironmentRecord:
        query = sa.select(t.environments).where(t.environments.c.name == name)
        query = query.where(t.environments.c.version == version) if version is not None else query
        with self._read(f"reading environment {name!r}") as conn:
            row = conn.execute(query.order_by(t.environments.c.version.desc()).limit(1)).first()
        if row is None:
            which = f"version {version} of environment {name!r}" if version is not None else f"environment {name!r}"
            raise NotFoundError(f"{which} is not registered: register it with env.register(ws) "
                                "or list them with `runlab env list`", name=name)
        return _environment(row)

    def list_environments(self) -> list[EnvironmentRecord]:
        with self._read("listing environments") as conn:
            rows = conn.execute(sa.select(t.environments).order_by(t.environments.c.name, t.environments.c.version)).all()
        return [_environment(r) for r in rows]

    # -- compute targets -------------------------------------------------------------------

    def create_compute_target(self, record: ComputeTargetRecord) -> ComputeTargetRecord:
        try:
            with self._write(f"creating compute target {record.name!r}") as conn:
                conn.execute(
                    t.compute_targets.insert().values(
                        name=record.name, kind=record.kind, vm_size=record.vm_size, min_nodes=record.min_nodes,
                        max_nodes=record.max_nodes, idle_seconds_before_scaledown=record.idle_seconds_before_scaledown,
                        created_at=record.created_at, state=record.state, settings=json.dumps(dict(record.settings)),
                    )
                )
        except StoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise ComputeTargetException(
                    f"compute target {record.name!r} already exists: get it with "
                    f"ComputeTarget(workspace=ws, name={record.name!r})", name=record.name,
                ) from exc
            raise
        return self.get_compute_target(record.name)

    def get_compute_target(self, name: str) -> ComputeTargetRecord:
        with self._read(f"reading compute target {name!r}") as conn:
            row = conn.execute(sa.select(t.compute_targets).where(t.compute_targets.c.name == name)).first()
        if row is None:
            raise ComputeTargetException(
                f"compute target {name!r} does not exist in this workspace: create it with "
                f"ComputeTarget.create(ws, {name!r}, AmlCompute.provisioning_configuration(max_nodes=4)) "
                "or `runlab compute create`", name=name,
            )
        return _compute_target(row)

    def list_compute_targets(self) -> list[ComputeTargetRecord]:
        with self._read("listing compute targets") as conn:
            rows = conn.execute(sa.select(t.compute_targets).order_by(t.compute_targets.c.name)).all()
        return [_compute_target(r) for r in rows]

    def delete_compute_target(self, name: str) -> None:
        with self._write(f"deleting compute target {name!r}") as conn:
            deleted = conn.execute(t.compute_targets.delete().where(t.compute_targets.c.name == name)).rowcount
        if not deleted:
            self.get_compute_target(name)  # raises the not-found error

    # -- datasets --------------------------------------------------------------------------

    def register_dataset(
        self,
        name: str,
        *,
        kind: str,
        definition: Mapping[str, Any],
        files: Sequence[DatasetFile],
        files_hash: str,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        data_changed_at: float | None = None,
        create_new_version: bool = False,
    ) -> DatasetRecord:
        """Record a new immutable version of dataset ``name`` (its definition and files). The same
        definition and files as the latest version return that version; anything else needs
        ``create_new_version`` (else :class:`DatasetConflictError` saying what would change)."""
        check_id(name, "dataset name", "'cifar10'")
        text = json.dumps(dict(definition), sort_keys=True, separators=(",", ":"))
        with self._write(f"registering dataset {name!r}") as conn:
            latest = conn.execute(
                sa.select(t.datasets).where(t.datasets.c.name == name).order_by(t.datasets.c.version.desc()).limit(1)
            ).first()
            if latest is not None:
                if latest.definition == text and latest.files_hash == files_hash:
                    return _dataset(latest)
                if not create_new_version:
                    raise DatasetConflictError(_conflict(latest, text, files, self._dataset_files(conn, latest.id)),
                                               name=name, version=latest.version)
            version = 1 if latest is None else latest.version + 1
            dataset_id = str(uuid.uuid4())
            pk = conn.execute(
                t.datasets.insert().values(
                    dataset_id=dataset_id, name=name, version=version, kind=kind, definition=text,
                    files_hash=files_hash, file_count=len(files), total_size=sum(f.size for f in files),
                    description=description, tags=json.dumps(dict(tags or {}), sort_keys=True),
                    created_at=time.time(), data_changed_at=data_changed_at,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            rows = [
                {"dataset_pk": pk, "seq": i, "datastore": f.datastore, "path": f.path, "name": f.name,
                 "size": f.size, "sha256": f.sha256, "modified_at": f.modified_at}
                for i, f in enumerate(files)
            ]
            for start in range(0, len(rows), 10_000):
                conn.execute(t.dataset_files.insert(), rows[start : start + 10_000])
        return self.get_dataset_by_id(dataset_id)

    def get_dataset(self, name: str, version: int | None = None) -> DatasetRecord:
        """Version ``version`` (default: the latest) of registered dataset ``name``."""
        query = sa.select(t.datasets).where(t.datasets.c.name == name)
        if version is not None:
            query = query.where(t.datasets.c.version == version)
        with self._read(f"reading dataset {name!r}") as conn:
            row = conn.execute(query.order_by(t.datasets.c.version.desc()).limit(1)).first()
            if row is None:
                versions = conn.execute(
                    sa.select(t.datasets.c.version).where(t.datasets.c.name == name).order_by(t.datasets.c.version)
                ).scalars().all()
                names = [] if versions else conn.execute(
                    sa.select(t.datasets.c.name).distinct().order_by(t.datasets.c.name).limit(20)).scalars().all()
        if row is None:
            if versions:
                raise DatasetNotFoundError(
                    f"dataset {name!r} has no version {version}: its versions are "
                    f"{', '.join(map(str, versions))}", name=name, version=version)
            raise DatasetNotFoundError(
                f"no dataset named {name!r} is registered in this workspace (registered: "
                f"{', '.join(names) or 'none'}): register one with dataset.register(ws, {name!r})", name=name)
        return _dataset(row)

    def get_dataset_by_id(self, dataset_id: str) -> DatasetRecord:
        with self._read(f"reading dataset {dataset_id}") as conn:
            row = conn.execute(sa.select(t.datasets).where(t.datasets.c.dataset_id == dataset_id)).first()
        if row is None:
            raise DatasetNotFoundError(f"no registered dataset has id {dataset_id!r}: list them with "
                                       "`runlab dataset list`", dataset_id=dataset_id)
        return _dataset(row)

    def list_datasets(self, *, all_versions: bool = False) -> list[DatasetRecord]:
        """Registered datasets by name: the latest version of each, or every version (then by version)."""
        query = sa.select(t.datasets)
        if not all_versions:
            newest = (sa.select(t.datasets.c.name, sa.func.max(t.datasets.c.version).label("version"))
                      .group_by(t.datasets.c.name).subquery())
            query = query.join(newest, sa.and_(t.datasets.c.name == newest.c.name,
                                               t.datasets.c.version == newest.c.version))
        with self._read("listing datasets") as conn:
            rows = conn.execute(query.order_by(t.datasets.c.name, t.datasets.c.version)).all()
        return [_dataset(r) for r in rows]

    def get_dataset_files(self, dataset_id: str) -> list[DatasetFile]:
        """The files a registered version recorded, in the dataset's order."""
        with self._read(f"reading the files of dataset {dataset_id}") as conn:
            pk = conn.execute(sa.select(t.datasets.c.id).where(t.datasets.c.dataset_id == dataset_id)).scalar()
            if pk is None:
                raise DatasetNotFoundError(f"no registered dataset has id {dataset_id!r}", dataset_id=dataset_id)
            return self._dataset_files(conn, int(pk))

    def _dataset_files(self, conn: Connection, pk: int) -> list[DatasetFile]:
        rows = conn.execute(
            sa.select(t.dataset_files).where(t.dataset_files.c.dataset_pk == pk).order_by(t.dataset_files.c.seq)
        ).all()
        return [DatasetFile(datastore=r.datastore, path=r.path, size=r.size, name=r.name, sha256=r.sha256,
                            modified_at=r.modified_at) for r in rows]

    # -- run inputs ------------------------------------------------------------------------

    def record_run_inputs(self, run_id: str, inputs: Sequence[RunInputRecord]) -> None:
        """Record (or replace, by input name) the datasets run ``run_id`` consumes."""
        if not inputs:
            return
        with self._write(f"recording the inputs of run {run_id}") as conn:
            pk = self._run_pk(conn, run_id)
            names = [i.name for i in inputs]
            conn.execute(t.run_inputs.delete().where(t.run_inputs.c.run_pk == pk, t.run_inputs.c.name.in_(names)))
            conn.execute(t.run_inputs.insert(), [
                {"run_pk": pk, "name": i.name, "kind": i.kind, "mode": i.mode, "dataset_id": i.dataset_id,
                 "dataset_name": i.dataset_name, "dataset_version": i.dataset_version, "files_hash": i.files_hash,
                 "file_count": i.file_count, "total_size": i.total_size}
                for i in inputs
            ])

    def get_run_inputs(self, run_id: str) -> list[RunInputRecord]:
        """The datasets run ``run_id`` consumed, by input name."""
        with self._read(f"reading the inputs of run {run_id}") as conn:
            pk = self._run_pk(conn, run_id)
            rows = conn.execute(sa.select(t.run_inputs).where(t.run_inputs.c.run_pk == pk)
                                .order_by(t.run_inputs.c.name)).all()
        return [_run_input(run_id, r) for r in rows]

    def list_dataset_runs(self, name: str, version: int | None = None) -> list[RunInputRecord]:
        """Every run input that consumed registered dataset ``name`` (at ``version``, or any), newest run first."""
        query = (sa.select(t.run_inputs, t.runs.c.run_id).join(t.runs, t.runs.c.id == t.run_inputs.c.run_pk)
                 .where(t.run_inputs.c.dataset_name == name))
        if version is not None:
            query = query.where(t.run_inputs.c.dataset_version == version)
        with self._read(f"listing the runs of dataset {name!r}") as conn:
            rows = conn.execute(query.order_by(t.runs.c.id.desc())).all()
        return [_run_input(r.run_id, r) for r in rows]

    # -- models ----------------------------------------------------------------------------

    def register_model(
        self,
        name: str,
        *,
        path: str,
        source: str,
        files: Sequence[ModelFile],
        files_hash: str,
        run_id: str | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        datasets: Sequence[ModelDatasetRecord] = (),
        framework: str | None = None,
        framework_version: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> ModelRecord:
        """Record the next version of model ``name`` (1 for a new name) with its files, whose bytes the
        caller has stored already. Versions are never reused, even after a delete."""
        check_model_name(name)
        with self._write(f"registering model {name!r}") as conn:
            if run_id is not None:
                self._run_pk(conn, run_id)  # RunNotFoundError for a run that is not in this workspace
            latest = conn.execute(sa.select(sa.func.max(t.models.c.version)).where(t.models.c.name == name)).scalar()
            floor = _meta(conn, f"model_version:{name}")
            version = max(int(latest or 0), int(floor or 0)) + 1
            pk = conn.execute(t.models.insert().values(
                name=name, version=version, run_id=run_id, path=path, source=source, description=description,
                tags=json.dumps(dict(tags or {}), sort_keys=True),
                properties=json.dumps(dict(properties or {}), sort_keys=True),
                framework=framework, framework_version=framework_version,
                details=json.dumps(dict(details or {}), sort_keys=True), file_count=len(files),
                total_size=sum(f.size for f in files), files_hash=files_hash, created_at=time.time(),
            )).inserted_primary_key[0]  # type: ignore[index]
            rows = [{"model_pk": pk, "seq": i, "path": f.path, "size": f.size, "sha256": f.sha256, "source": f.source,
                     "source_etag": f.source_etag} for i, f in enumerate(files)]
            for start in range(0, len(rows), 10_000):
                conn.execute(t.model_files.insert(), rows[start : start + 10_000])
            if datasets:
                conn.execute(t.model_datasets.insert(), [
                    {"model_pk": pk, "seq": i, "scenario": d.scenario, "dataset_id": d.dataset_id,
                     "dataset_name": d.dataset_name, "dataset_version": d.dataset_version}
                    for i, d in enumerate(datasets)])
        return self.get_model(name, version)

    def get_model(self, name: str, version: int | None = None) -> ModelRecord:
        """Version ``version`` (default: the latest) of model ``name``; ``ModelNotFoundError`` naming the
        versions there are (or the models there are) otherwise."""
        query = sa.select(t.models).where(t.models.c.name == name)
        if version is not None:
            query = query.where(t.models.c.version == version)
        with self._read(f"reading model {name!r}") as conn:
            row = conn.execute(query.order_by(t.models.c.version.desc()).limit(1)).first()
            if row is not None:
                return self._models(conn, [row])[0]
            versions = conn.execute(sa.select(t.models.c.version).where(t.models.c.name == name)
                                    .order_by(t.models.c.version)).scalars().all()
            names = [] if versions else conn.execute(
                sa.select(t.models.c.name).distinct().order_by(t.models.c.name).limit(20)).scalars().all()
        if versions:
            raise ModelNotFoundError(f"model {name!r} has no version {version}: its versions are "
                                     f"{', '.join(map(str, versions))}", name=name, version=version)
        raise ModelNotFoundError(
            f"no model named {name!r} is registered in this workspace (registered: {', '.join(names) or 'none'}): "
            f"register one with run.register_model({name!r}, 'outputs/model.pt') or Model.register(ws, path, "
            f"{name!r})", name=name, version=version)

    def list_models(self, *, name: str | None = None, run_id: str | None = None,
                    latest: bool = False) -> list[ModelRecord]:
        """Registered model versions by name, newest version first; ``latest``: only each name's newest
        (of those ``run_id`` made, when given)."""
        query = sa.select(t.models)
        if name is not None:
            query = query.where(t.models.c.name == name)
        if run_id is not None:
            query = query.where(t.models.c.run_id == run_id)
        with self._read("listing models") as conn:
            rows = conn.execute(query.order_by(t.models.c.name, t.models.c.version.desc())).all()
            if latest:
                newest: dict[str, Any] = {}
                for r in rows:  # ordered by version, newest first
                    newest.setdefault(r.name, r)
                rows = list(newest.values())
            return self._models(conn, rows)

    def _models(self, conn: Connection, rows: Sequence[Any]) -> list[ModelRecord]:
        datasets: dict[int, list[ModelDatasetRecord]] = {r.id: [] for r in rows}
        pks = list(datasets)
        for start in range(0, len(pks), 900):
            for d in conn.execute(sa.select(t.model_datasets).where(t.model_datasets.c.model_pk.in_(pks[start:start + 900]))
                                  .order_by(t.model_datasets.c.model_pk, t.model_datasets.c.seq)):
                datasets[d.model_pk].append(ModelDatasetRecord(scenario=d.scenario, dataset_id=d.dataset_id,
                                                               dataset_name=d.dataset_name,
                                                               dataset_version=d.dataset_version))
        return [_model(r, datasets[r.id]) for r in rows]

    def _model_pk(self, conn: Connection, name: str, version: int) -> int:
        pk = conn.execute(sa.select(t.models.c.id).where(t.models.c.name == name, t.models.c.version == version)).scalar()
        if pk is None:
            self.get_model(name, version)  # raises, naming the versions there are
            raise ModelNotFoundError(f"model {name!r} has no version {version}", name=name, version=version)
        return int(pk)

    def get_model_files(self, name: str, version: int) -> list[ModelFile]:
        """The files model ``name`` version ``version`` recorded, in order."""
        with self._read(f"reading the files of model {name}:{version}") as conn:
            pk = self._model_pk(conn, name, version)
            rows = conn.execute(sa.select(t.model_files).where(t.model_files.c.model_pk == pk)
                                .order_by(t.model_files.c.seq)).all()
        return [ModelFile(path=r.path, size=r.size, sha256=r.sha256, source=r.source, source_etag=r.source_etag)
                for r in rows]

    def known_model_files(self, sources: Sequence[str]) -> dict[tuple[str, str], tuple[str, int]]:
        """What earlier registrations recorded of these sources: (source, source_etag) -> (sha256, size)."""
        found: dict[tuple[str, str], tuple[str, int]] = {}
        unique = list(dict.fromkeys(sources))
        with self._read("reading the files of registered models") as conn:
            for start in range(0, len(unique), 500):
                part = unique[start : start + 500]
                query = (sa.select(t.model_files.c.source, t.model_files.c.source_etag, t.model_files.c.sha256,
                                   t.model_files.c.size)
                         .where(t.model_files.c.source.in_(part), t.model_files.c.source_etag.is_not(None)))
                for r in conn.execute(query):
                    found[(r.source, r.source_etag)] = (r.sha256, r.size)
        return found

    def update_model(
        self,
        name: str,
        version: int,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        add_tags: Mapping[str, str] | None = None,
        remove_tags: Sequence[str] = (),
        add_properties: Mapping[str, str] | None = None,
    ) -> ModelRecord:
        """Change what a version says of itself (never its files), in one transaction: ``tags`` replaces
        them all, then ``add_tags`` and ``remove_tags`` apply; properties are add-only
        (``PropertyConflictError`` for a changed value)."""
        with self._write(f"updating model {name}:{version}") as conn:
            pk = self._model_pk(conn, name, version)
            row = conn.execute(sa.select(t.models).where(t.models.c.id == pk)).one()
            current_tags = dict(tags) if tags is not None else json.loads(row.tags or "{}")
            current_tags.update(add_tags or {})
            for key in remove_tags:
                current_tags.pop(key, None)
            props = json.loads(row.properties or "{}")
            for key, value in (add_properties or {}).items():
                if key in props and props[key] != value:
                    raise PropertyConflictError(
                        f"property {key!r} of model {name}:{version} is {props[key]!r}; properties are add-only: "
                        "use a tag for a value that changes", name=name, version=version, key=key)
                props[key] = value
            values: dict[str, Any] = {"tags": json.dumps(current_tags, sort_keys=True),
                                      "properties": json.dumps(props, sort_keys=True)}
            if description is not None:
                values["description"] = description
            conn.execute(t.models.update().where(t.models.c.id == pk).values(**values))
        return self.get_model(name, version)

    def delete_model(self, name: str, version: int) -> list[str]:
        """Delete one version (its number is not given again). Returns the sha256 of the contents no
        registered version holds any more, for the caller to remove from the file store."""
        with self._write(f"deleting model {name}:{version}") as conn:
            pk = self._model_pk(conn, name, version)
            hashes = set(conn.execute(sa.select(t.model_files.c.sha256).where(t.model_files.c.model_pk == pk)).scalars())
            latest = conn.execute(sa.select(sa.func.max(t.models.c.version)).where(t.models.c.name == name)).scalar()
            floor = _meta(conn, f"model_version:{name}")
            if int(latest or 0) > int(floor or 0):  # remember the highest version given, so it is never reused
                conn.execute(t.workspace_meta.delete().where(t.workspace_meta.c.key == f"model_version:{name}"))
                conn.execute(t.workspace_meta.insert().values(key=f"model_version:{name}", value=str(latest)))
            conn.execute(t.model_datasets.delete().where(t.model_datasets.c.model_pk == pk))
            conn.execute(t.model_files.delete().where(t.model_files.c.model_pk == pk))
            conn.execute(t.models.delete().where(t.models.c.id == pk))
            still: set[str] = set()
            ordered = sorted(hashes)
            for start in range(0, len(ordered), 500):
                still.update(conn.execute(sa.select(t.model_files.c.sha256).distinct()
                                          .where(t.model_files.c.sha256.in_(ordered[start : start + 500]))).scalars())
        return sorted(hashes - still)

    # -- datastores ------------------------------------------------------------------------

    def register_datastore(self, name: str, kind: str, config: Mapping[str, Any], *,
                           overwrite: bool = False) -> DatastoreRecord:
        """Register datastore ``name``. The same kind and config as registered returns the record;
        another one raises ``UserError`` unless ``overwrite`` (then its file index is cleared)."""
        config_json = json.dumps(dict(config), sort_keys=True)
        try:
            with self._write(f"registering datastore {name!r}") as conn:
                row = conn.execute(sa.select(t.datastores).where(t.datastores.c.name == name)).first()
                if row is not None:
                    if row.kind == kind and json.loads(row.config) == json.loads(config_json):
                        return _datastore(row)
                    if not overwrite:
                        raise UserError(
                            f"datastore {name!r} is already registered as {row.kind} {row.config}: register it with "
                            "overwrite=True to replace it, or choose another name", name=name,
                            existing=_datastore(row))
                    conn.execute(t.datastore_files.delete().where(t.datastore_files.c.datastore == name))
                    conn.execute(t.datastores.update().where(t.datastores.c.name == name)
                                 .values(kind=kind, config=config_json, created_at=time.time()))
                else:
                    conn.execute(t.datastores.insert().values(name=name, kind=kind, config=config_json,
                                                              created_at=time.time()))
        except StoreError as exc:
            if not isinstance(exc.__cause__, IntegrityError):  # registered meanwhile by another process
                raise
            return self.register_datastore(name, kind, config, overwrite=overwrite)
        return self.get_datastore(name)

    def get_datastore(self, name: str) -> DatastoreRecord:
        """Datastore ``name``; ``DatastoreNotFoundError`` (listing those there are) when not registered."""
        names: Sequence[str] = ()
        with self._read(f"reading datastore {name!r}") as conn:
            row = conn.execute(sa.select(t.datastores).where(t.datastores.c.name == name)).first()
            if row is None:
                names = conn.execute(sa.select(t.datastores.c.name).order_by(t.datastores.c.name)).scalars().all()
        if row is None:
            known = ", ".join(names) or "none yet"
            raise DatastoreNotFoundError(
                f"no datastore named {name!r} in this workspace (registered: {known}): register it with "
                "Datastore.register_local(ws, name, path) or Datastore.register_s3(ws, name, bucket), or "
                "`runlab datastore register`", name=name, registered=list(names))
        return _datastore(row)

    def list_datastores(self) -> list[DatastoreRecord]:
        """Every registered datastore, by name."""
        with self._read("listing datastores") as conn:
            rows = conn.execute(sa.select(t.datastores).order_by(t.datastores.c.name)).all()
        return [_datastore(r) for r in rows]

    def get_datastore_files(self, name: str, prefix: str = "") -> dict[str, DatastoreFileRecord]:
        """The file index of datastore ``name``: rows whose path starts with ``prefix``, by path."""
        query = sa.select(t.datastore_files).where(t.datastore_files.c.datastore == name)
        if prefix:
            query = query.where(t.datastore_files.c.path.startswith(prefix, autoescape=True))
        with self._read(f"reading the files of datastore {name!r}") as conn:
            rows = conn.execute(query).all()
        return {r.path: DatastoreFileRecord(path=r.path, size=r.size, sha256=r.sha256, etag=r.etag,
                                            uploaded_at=r.uploaded_at)
                for r in rows if r.path.startswith(prefix)}  # LIKE ignores case in SQLite

    def record_datastore_files(self, name: str, files: Sequence[DatastoreFileRecord]) -> None:
        """Add or replace rows of datastore ``name``'s file index (call once the files are complete)."""
        if not files:
            return
        with self._write(f"recording files of datastore {name!r}") as conn:
            for start in range(0, len(files), 500):
                part = files[start : start + 500]
                conn.execute(t.datastore_files.delete().where(
                    t.datastore_files.c.datastore == name, t.datastore_files.c.path.in_([f.path for f in part])))
                conn.execute(t.datastore_files.insert(), [
                    {"datastore": name, "path": f.path, "size": f.size, "sha256": f.sha256, "etag": f.etag,
                     "uploaded_at": f.uploaded_at} for f in part])

    def forget_datastore_files(self, name: str, paths: Sequence[str]) -> None:
        """Remove rows of datastore ``name``'s file index (files deleted, or found changed)."""
        if not paths:
            return
        with self._write(f"forgetting files of datastore {name!r}") as conn:
            for start in range(0, len(paths), 500):
                part = list(paths[start : start + 500])
                conn.execute(t.datastore_files.delete().where(
                    t.datastore_files.c.datastore == name, t.datastore_files.c.path.in_(part)))

    # -- workspace settings ----------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._read("reading workspace settings") as conn:
            return conn.execute(sa.select(t.workspace_meta.c.value).where(t.workspace_meta.c.key == key)).scalar()

    def set_meta(self, key: str, value: str) -> None:
        with self._write("writing workspace settings") as conn:
            conn.execute(t.workspace_meta.delete().where(t.workspace_meta.c.key == key))
            conn.execute(t.workspace_meta.insert().values(key=key, value=value))


def _experiment_record(row: Any) -> ExperimentRecord:
    return ExperimentRecord(experiment_id=row.id, name=row.name, created_at=row.created_at,
                            tags=json.loads(row.tags) if row.tags else {}, archived_at=row.archived_at)


def _environment(row: Any) -> EnvironmentRecord:
    return EnvironmentRecord(name=row.name, version=row.version, content_hash=row.content_hash,
                             definition=json.loads(row.definition), created_at=row.created_at)


def _datastore(row: Any) -> DatastoreRecord:
    return DatastoreRecord(name=row.name, kind=row.kind, config=json.loads(row.config), created_at=row.created_at)


def _compute_target(row: Any) -> ComputeTargetRecord:
    return ComputeTargetRecord(
        name=row.name, kind=row.kind, vm_size=row.vm_size, min_nodes=row.min_nodes, max_nodes=row.max_nodes,
        idle_seconds_before_scaledown=row.idle_seconds_before_scaledown, created_at=row.created_at,
        state=row.state, settings=json.loads(row.settings or "{}"),
    )


def _dataset(row: Any) -> DatasetRecord:
    return DatasetRecord(
        dataset_id=row.dataset_id, name=row.name, version=row.version, kind=row.kind,
        definition=json.loads(row.definition), created_at=row.created_at, file_count=row.file_count,
        total_size=row.total_size, files_hash=row.files_hash, description=row.description or "",
        tags=json.loads(row.tags or "{}"), data_changed_at=row.data_changed_at,
    )


def _meta(conn: Connection, key: str) -> str | None:
    return conn.execute(sa.select(t.workspace_meta.c.value).where(t.workspace_meta.c.key == key)).scalar()


def _model(row: Any, datasets: Sequence[ModelDatasetRecord]) -> ModelRecord:
    return ModelRecord(
        name=row.name, version=row.version, created_at=row.created_at, path=row.path, source=row.source,
        file_count=row.file_count, total_size=row.total_size, files_hash=row.files_hash, run_id=row.run_id,
        description=row.description or "", tags=json.loads(row.tags or "{}"),
        properties=json.loads(row.properties or "{}"), framework=row.framework,
        framework_version=row.framework_version, details=json.loads(row.details or "{}"), datasets=tuple(datasets),
    )


def _conflict(latest: Any, definition: str, files: Sequence[DatasetFile], recorded: Sequence[DatasetFile]) -> str:
    """What registering would change in the latest version, for the error."""
    changes = []
    if latest.definition != definition:
        changes.append("its definition (sources, reader options or steps)")
    old = {(f.datastore, f.path): f for f in recorded}
    new = {(f.datastore, f.path): f for f in files}
    changed = [k for k in new if k in old and (new[k].size, new[k].sha256) != (old[k].size, old[k].sha256)]
    added = [k for k in new if k not in old]
    removed = [k for k in old if k not in new]
    parts = []
    for what, keys in (("changed", changed), ("added", added), ("removed", removed)):
        if keys:
            some = ", ".join(path for _store, path in keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
            parts.append(f"{len(keys)} {what} ({some})")
    if parts:
        changes.append("its files: " + ", ".join(parts))
    elif not changes:
        changes.append("its file list")
    return (
        f"dataset {latest.name!r} version {latest.version} is registered, and this registration would change "
        f"{' and '.join(changes)}. A registered version never changes: pass create_new_version=True to register "
        f"this as version {latest.version + 1}, or use another name"
    )



def _combine(fn: Any, old: float | None, new: float | None) -> float | None:
    if old is None:
        return new
    if new is None:
        return old
    return float(fn(old, new))


def _plain(value: Any) -> Any:
    """A numpy array or number (values decoded from the wire) as Python's own list or number; else as is."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    return list(value) if isinstance(value, tuple) else value


def _fill_steps(steps: Sequence[int | None], start: int) -> Any:
    n = len(steps)
    if isinstance(steps, np.ndarray):  # decoded from the wire: given steps, none "next"
        return steps.astype(np.int64, copy=False)
    nones = steps.count(None) if isinstance(steps, (list, tuple)) else sum(s is None for s in steps)
    if nones == n:
        return np.arange(start, start + n, dtype=np.int64)
    if nones == 0:
        return np.asarray(steps, dtype=np.int64)
    out = np.empty(n, dtype=np.int64)
    for i, s in enumerate(steps):
        out[i] = start + i if s is None else s
    return out


def _encode_batch(batch: MetricBatch) -> tuple[str, bytes, float | None, float | None]:
    if batch.kind == MetricKind.SCALAR:
        encoding, blob = series.encode_values(batch.values)
    else:
        encoding, blob = "json", series.dumps_value(_plain(batch.values)).encode()
    vmin, vmax = series.numeric_summary(encoding, batch.values) if batch.kind == MetricKind.SCALAR else (None, None)
    return encoding, blob, vmin, vmax


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front, so that the busy timeout applies instead of
        # the instant SQLITE_BUSY a deferred transaction gets when it upgrades to a writer.
        options = conn.get_execution_options()
        busy_ms = options.get("sqlite_busy_ms")
        if busy_ms is not None:  # pooled connections are shared: each write says how long it waits
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(busy_ms)}")
        conn.exec_driver_sql(f"BEGIN {options.get('sqlite_begin', 'DEFERRED')}")


def _run_input(run_id: str, row: Any) -> RunInputRecord:
    return RunInputRecord(run_id=run_id, name=row.name, kind=row.kind, mode=row.mode, dataset_id=row.dataset_id,
                          dataset_name=row.dataset_name, dataset_version=row.dataset_version,
                          files_hash=row.files_hash, file_count=row.file_count, total_size=row.total_size)
