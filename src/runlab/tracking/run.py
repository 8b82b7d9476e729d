"""The run handle: log metrics, tag, upload files, read everything back, end the run.

The facade (``runlab.Run``) subclasses :class:`TrackedRun` to add what needs the upper layers
(``run.experiment``, submission, the studio URL). Everything here works the same for an
interactive run, a submitted run and an offline run.
"""

from __future__ import annotations

import io
import logging
import os
import re
import threading
import time
import traceback
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Callable, Mapping, Sequence, TypeVar

from runlab.core.entities import MetricKind, MetricSummary, RunRecord
from runlab.core.errors import (
    InvalidNameError,
    InvalidValueError,
    RunNotFoundError,
    StoreError,
    StoreUnavailableError,
    UserError,
)
from runlab.core.layout import LOG_PREFIXES
from runlab.core.names import SYSTEM_METRIC_PREFIX, bounded_id, check_metric_name, check_run_id
from runlab.core.process import current_identity
from runlab.core.settings import RUNLAB_RUN_ID, RUNLAB_RUN_OWNER, load_settings
from runlab.core.status import RunStatus, RunType
from runlab.store.folder import WorkspaceFolder
from runlab.store.paths import folder_files
from runlab.tracking import delivery, exit_status, lifecycle
from runlab.tracking.evaluation import check_evaluation
from runlab.tracking.journal import STATUS, UPDATE, Record
from runlab.tracking.logger import MAX_LOCK_WAIT_S, MetricLogger
from runlab.tracking.retry import retry_while_unavailable
from runlab.tracking.values import coerce_list, coerce_scalar

_time = time.time
log = logging.getLogger("runlab")
R = TypeVar("R", bound="TrackedRun")
T = TypeVar("T")


def new_run_id(experiment_name: str) -> str:
    """``<experiment>_<unix seconds>_<8 hex>``, as Azure ML v1 forms them (a long experiment name
    is cut so that the id keeps within the id rule)."""
    return bounded_id(experiment_name, f"_{int(time.time())}_{uuid.uuid4().hex[:8]}")


class MetricHistory:
    """A metric's points as arrays: ``steps``, ``timestamps`` (unix seconds) and ``values``."""

    __slots__ = ("name", "kind", "steps", "timestamps", "values")

    def __init__(self, name: str, kind: str, steps: Any, timestamps: Any, values: Any) -> None:
        self.name, self.kind, self.steps, self.timestamps, self.values = name, kind, steps, timestamps, values

    def __len__(self) -> int:
        return len(self.steps)

    def __repr__(self) -> str:
        return f"MetricHistory({self.name!r}, {len(self)} points)"


class TrackedRun:
    """A run of an experiment. Get one from ``Run.get_context()``, ``experiment.start_logging()``,
    ``experiment.submit(...)`` or ``workspace.get_run(run_id)``."""

    def __init__(
        self,
        backend: WorkspaceFolder,
        run_id: str,
        *,
        record: RunRecord | None = None,
        owned: bool = False,
        pending_create: Mapping[str, Any] | None = None,
    ) -> None:
        self._backend = backend
        self._run_id = check_run_id(run_id)  # it names the run's folders: InvalidNameError before any path
        self._record = record
        self._owned = owned
        self._pending_create = dict(pending_create) if pending_create else None
        self._create_lock = threading.Lock()
        self._queues: dict[str, Any] = {}
        self._warned_later = False
        self._logger_obj: MetricLogger | None = None
        self._logger_lock = threading.Lock()
        self._system_monitor: Any = None  # a tracking.sysmetrics.SystemMonitor while one samples
        if owned:
            lifecycle.register_owned(self)

    # -- identity --------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._run_id

    @property
    def workspace_folder(self) -> WorkspaceFolder:
        return self._backend

    @property
    def _store(self) -> Any:
        self._ensure_created()
        return self._backend.store

    def _ensure_created(self, *, retry: bool = True) -> None:
        """Create the run in the store if that was deferred. ``retry=False`` tries once (the
        metric flusher, which tries again each cycle and must not wait on a busy store)."""
        if self._pending_create is None:
            return
        with self._create_lock:
            if self._pending_create is None:
                return
            self._record = self._create_run(self._run_id, self._pending_create, retry=retry)
            self._pending_create = None

    def _create_now(self) -> None:
        """Create the run now (``start_logging``); if that fails, this process does not own it."""
        try:
            self._ensure_created()
        except BaseException:
            lifecycle.forget_owned(self)
            raise

    def _create_run(self, run_id: str, args: Mapping[str, Any], *, retry: bool = True) -> RunRecord:
        store = self._backend.store
        if not retry and hasattr(store, "with_lock_wait"):  # the flusher: a busy store must not stall it
            store = store.with_lock_wait(MAX_LOCK_WAIT_S)
        failed_before = False

        def create() -> RunRecord:
            nonlocal failed_before
            try:
                return store.create_run(run_id, **args)
            except StoreError as exc:
                if exc.temporary:
                    failed_before = True
                    raise
                if not failed_before:
                    raise
                try:  # "id taken" after a failed try: that try wrote the run, then failed reading it back
                    return store.get_run(run_id)
                except RunNotFoundError:
                    raise exc from None

        if not retry:
            return create()
        return retry_while_unavailable(create, f"creating run {run_id}")

    def _write(self, doing: str, write: Callable[[Any], T]) -> T:
        """A write of this run handle: retried while the store is temporarily unavailable
        (tracking.retry), so that a busy store never reaches the training script."""
        self._ensure_created()
        return retry_while_unavailable(lambda: write(self._backend.store), doing)

    def _change(self, doing: str, record: Record) -> None:
        """A change of this run (its end, tags, properties), written now (retried on a busy store)
        or, when the store stays unavailable (disk full, folder gone), journaled behind the run's
        metrics and written when it is back: training never sees a storage error for it."""
        logger = self._logger_obj
        try:
            if logger is not None and logger.store_gone:
                raise StoreUnavailableError(f"the workspace folder {self._backend.path} was deleted")
            if logger is not None and logger.has_backlog:  # in order: behind the changes journaled before
                logger.write_later(record)
                return
            self._write(doing, lambda store: delivery.apply_change(store, record))
            return
        except StoreUnavailableError as exc:
            reason = exc
        kept = self._logger.write_later(record)
        if not self._warned_later:
            self._warned_later = True
            if kept:
                log.warning("runlab: %s: the store cannot take it now (%s); it is kept in %s and written when "
                            "the store is back (by this process, the next run in this workspace, or `runlab sync`). "
                            "(Reported once per run.)", doing, reason, self._logger.journal_path)
            else:
                log.error("runlab: %s: neither the store nor the disk can take it now (%s); this process tries "
                          "again until it exits. (Reported once per run.)", doing, reason)

    def _refresh(self) -> RunRecord:
        self._record = self._store.get_run(self._run_id)
        return self._record

    @property
    def record(self) -> RunRecord:
        return self._record if self._record is not None else self._refresh()

    @property
    def experiment_name(self) -> str:
        if self._pending_create is not None:
            return str(self._pending_create["experiment_name"])
        return self.record.experiment_name

    @property
    def name(self) -> str:
        return self.record.display_name or self._run_id

    @property
    def display_name(self) -> str:
        """The name the run is shown by (its id until one is set)."""
        return self.name

    @display_name.setter
    def display_name(self, value: str | None) -> None:
        """``run.display_name = 'baseline'`` renames the run as shown; its id stays (``None``: shown by id)."""
        if value is not None and (not isinstance(value, str) or len(value) > 255):
            raise InvalidValueError(f"display_name must be a str of at most 255 characters (or None), got {value!r}")
        self._change(f"renaming run {self._run_id}", _update(self._run_id, "set_display_name", value or None))
        self._record = None

    @property
    def status(self) -> str:
        return str(self._refresh().status)

    @property
    def type(self) -> str:
        return str(self.record.run_type)

    @property
    def parent(self: R) -> R | None:
        parent_id = self.record.parent_run_id
        return None if parent_id is None else type(self)(self._backend, parent_id)

    @property
    def is_offline(self) -> bool:
        if self._pending_create is not None:
            return bool(self._pending_create.get("run_type") == RunType.OFFLINE)
        return self.record.run_type == RunType.OFFLINE

    def __repr__(self) -> str:
        return f"Run(id={self._run_id!r}, workspace={self._backend.name!r})"

    # -- logging ---------------------------------------------------------------------------

    @property
    def _logger(self) -> MetricLogger:
        if self._logger_obj is None:
            with self._logger_lock:
                if self._logger_obj is None:
                    settings = load_settings()
                    create = None if self._pending_create is None else (lambda: self._ensure_created(retry=False))
                    self._logger_obj = MetricLogger(
                        self._backend,
                        self._run_id,
                        before_first_write=create,
                        flush_interval_s=settings.flush_interval_s,
                        flush_batch_points=settings.flush_batch_points,
                        heartbeat_owner=current_identity() if self._owned else None,
                        heartbeat_interval_s=settings.heartbeat_interval_s,
                    )
                    lifecycle.register_logger(self._logger_obj)
        return self._logger_obj

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        """Log a value (int, float, bool, str, numpy scalar or 0-d tensor) under ``name``.

        Returns at once: the point is buffered and written by a background thread within a
        second. Raises ``InvalidNameError`` / ``InvalidValueError`` for a bad name or value.
        """
        try:
            q = self._queues.get(name)
        except TypeError:  # an unhashable name, such as a list
            q = None
        if q is None:
            _check_user_metric_name(name)
            q = self._queues[name] = self._logger.queue_for(name)
        cls = value.__class__
        if cls is not float and cls is not int:
            value = coerce_scalar(name, value)
        if step is not None and (step.__class__ is not int or not _STEP_MIN <= step <= _STEP_MAX):
            step = _check_step(name, step)
        if description:
            self._logger.describe(name, description)
        q.append((value, step, _time()))
        lg = self._logger_obj
        lg._pending += 1  # type: ignore[union-attr]
        if lg._pending >= lg.flush_batch_points:  # type: ignore[union-attr]
            lg.note_points(0)  # type: ignore[union-attr]

    def _log_kind(self, kind: str, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        _check_user_metric_name(name)
        if step is not None:
            step = _check_step(name, step)
        self._logger.queue_for(name, kind).append((value, step, _time()))
        self._logger.describe(name, description)
        self._logger.note_points()

    def log_list(self, name: str, value: Sequence[Any], description: str = "") -> None:
        """Log a list of values under ``name`` (``get_metrics`` returns it as a list)."""
        self._log_kind(MetricKind.LIST, name, coerce_list(name, value), description)

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        """Log one row of a table: ``run.log_row('acc by class', cls='cat', acc=0.9)``."""
        if not kwargs:
            raise InvalidValueError(f"metric {name!r}: log_row needs at least one column, as col=value", name=name)
        row = {col: [coerce_scalar(f"{name}.{col}", v)] for col, v in kwargs.items()}
        self._log_kind(MetricKind.ROW, name, row, description or "")

    def log_table(self, name: str, value: Mapping[str, Sequence[Any]], description: str = "") -> None:
        """Log a table as columns: ``run.log_table('roc', {'fpr': [...], 'tpr': [...]})``."""
        if not isinstance(value, Mapping) or not value:
            raise InvalidValueError(
                f"metric {name!r}: log_table takes a dict of column -> list of values", name=name
            )
        table = {str(col): coerce_list(f"{name}.{col}", vals) for col, vals in value.items()}
        lengths = {len(v) for v in table.values()}
        if len(lengths) > 1:
            raise InvalidValueError(
                f"metric {name!r}: log_table columns must have the same length, got {sorted(lengths)}", name=name
            )
        self._log_kind(MetricKind.ROW, name, table, description)

    def log_image(self, name: str, path: str | os.PathLike[str] | None = None, plot: Any = None,
                  description: str = "") -> None:
        """Log an image from a file (``path``) or a matplotlib figure (``plot``)."""
        _check_user_metric_name(name)
        if (path is None) == (plot is None):
            raise InvalidValueError(f"metric {name!r}: log_image takes exactly one of path= or plot=", name=name)
        safe = re.sub(r"[^\w\-.]+", "_", name)[:100]
        stamp = f"{int(_time() * 1000)}"
        if plot is not None:
            savefig = getattr(plot, "savefig", None)
            if not callable(savefig):
                raise InvalidValueError(
                    f"metric {name!r}: plot= must be a matplotlib figure or pyplot (something with savefig)",
                    name=name,
                )
            buf = io.BytesIO()
            savefig(buf, format="png")
            file_name = f"images/{safe}_{stamp}.png"
            self._backend.artifacts.put_bytes(self._run_id, file_name, buf.getvalue())
        else:
            source = Path(path)  # type: ignore[arg-type]
            if not source.is_file():
                raise UserError(f"log_image: {source} is not a file", path=source)
            file_name = f"images/{safe}_{stamp}{source.suffix or '.png'}"
            self._backend.artifacts.put_file(self._run_id, file_name, source)
        self._log_kind(MetricKind.IMAGE, name, file_name, description)

    # -- evaluation logs: Azure ML's JSON-shaped values (tracking.evaluation says the shapes) ---------

    def log_confusion_matrix(self, name: str, value: Any, description: str = "") -> None:
        """Log a confusion matrix: ``{"schema_type": "confusion_matrix", "schema_version": "1.0.0",
        "data": {"class_labels": [...], "matrix": [[...], ...]}}`` (a dict or its JSON text; rows are
        true classes, columns predicted ones). ``get_metrics()`` returns the dict. Raises
        InvalidValueError for a wrong shape (rows that do not match the labels, a NaN, a count below 0)."""
        self._log_evaluation(MetricKind.CONFUSION_MATRIX, name, value, description)

    def log_accuracy_table(self, name: str, value: Any, description: str = "") -> None:
        """Log an accuracy table (``schema_type`` ``accuracy_table``): per class and threshold the counts
        TP, FP, TN, FN, in ``probability_tables`` and ``percentile_tables``, with ``class_labels``,
        ``probability_thresholds`` and ``percentile_thresholds``. The studio draws it as ROC and
        precision-recall curves. Raises InvalidValueError for a wrong shape."""
        self._log_evaluation(MetricKind.ACCURACY_TABLE, name, value, description)

    def log_residuals(self, name: str, value: Any, description: str = "") -> None:
        """Log a histogram of residuals (``schema_type`` ``residuals``): ``bin_edges`` (one more than)
        ``bin_counts``. Raises InvalidValueError for a wrong shape."""
        self._log_evaluation(MetricKind.RESIDUALS, name, value, description)

    def log_predictions(self, name: str, value: Any, description: str = "") -> None:
        """Log predicted against true values (``schema_type`` ``predictions``): per bin of true values
        (``bin_edges``) the mean prediction (``bin_averages``), its spread (``bin_errors``) and
        ``bin_counts``. Raises InvalidValueError for a wrong shape."""
        self._log_evaluation(MetricKind.PREDICTIONS, name, value, description)

    def _log_evaluation(self, kind: str, name: str, value: Any, description: str) -> None:
        _check_user_metric_name(name)
        self._log_kind(kind, name, check_evaluation(kind, name, value), description)

    # -- system metrics (tracking.sysmetrics) -------------------------------------------------

    def start_system_metrics(self, interval_seconds: float | None = None) -> bool:
        """Sample this process and its children (CPU, memory, I/O, open files) and the NVIDIA GPUs
        into this run's ``sys/`` series, from a thread, every ``interval_seconds`` (default
        ``RUNLAB_SYSTEM_METRICS_INTERVAL``, 5 s; 0: none) until the run ends or
        :meth:`stop_system_metrics`. A submitted run's agent samples its script already, so there
        this does nothing. True when a sampling thread runs."""
        if self._system_monitor is not None and self._system_monitor.running:
            return True
        if RUNLAB_RUN_OWNER.read() == "agent" and RUNLAB_RUN_ID.read() == self._run_id:
            return False
        if interval_seconds is None:
            interval = load_settings().system_metrics_interval_s
        elif isinstance(interval_seconds, bool) or not isinstance(interval_seconds, (int, float)) \
                or not 0 <= interval_seconds < float("inf"):
            raise InvalidValueError(f"system metrics: interval_seconds must be a number of seconds, 0 or more, "
                                    f"got {interval_seconds!r}")
        else:
            interval = float(interval_seconds)
        if interval == 0:
            return False
        from runlab.tracking.sysmetrics import SystemMonitor  # psutil: only for runs that ask

        self._system_monitor = SystemMonitor(os.getpid(), self._log_system, interval,
                                             name=f"runlab-system-metrics-{self._run_id}").start()
        return True

    def stop_system_metrics(self) -> None:
        """Stop the sampling that :meth:`start_system_metrics` started (the run's end stops it too)."""
        monitor, self._system_monitor = self._system_monitor, None
        if monitor is not None:
            monitor.stop()

    def _log_system(self, sample: Mapping[str, float]) -> None:
        """One sample of system metrics: the reserved ``sys/`` names that ``log()`` refuses. All its
        points share one time. The agent calls this for the scripts it runs (not their owner)."""
        now = _time()
        logger = self._logger
        for name, value in sample.items():
            logger.queue_for(name).append((value, None, now))
        logger.note_points(len(sample))

    def flush(self, timeout_seconds: float = 300) -> bool:
        """Write all buffered metrics now. Returns False if that took longer than the timeout."""
        if self._logger_obj is None:
            self._ensure_created()
            return True
        return self._logger_obj.flush(timeout_seconds)

    # -- tags and properties ---------------------------------------------------------------

    def tag(self, key: str, value: Any = None) -> None:
        """Set one tag (tags can change; properties cannot)."""
        self.set_tags({key: "" if value is None else value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        values = _string_map(tags, "tag")
        self._change(f"tagging run {self._run_id}", _update(self._run_id, "set_tags", values))
        self._record = None

    def _settle(self) -> None:
        """Changes journaled while the store was unavailable are written before a read of them."""
        if self._logger_obj is not None and self._logger_obj.has_backlog:
            self._logger_obj.flush()

    def get_tags(self) -> dict[str, str]:
        self._settle()
        return dict(self._refresh().tags)

    def remove_tags(self, tags: Sequence[str] | str) -> None:
        keys = [tags] if isinstance(tags, str) else list(tags)
        self._change(f"removing tags of run {self._run_id}", _update(self._run_id, "remove_tags", keys))
        self._record = None

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        """Add properties. They are add-only: changing an existing one raises PropertyConflictError."""
        values = _string_map(properties, "property")
        self._change(f"adding properties to run {self._run_id}", _update(self._run_id, "add_properties", values))
        self._record = None

    def get_properties(self) -> dict[str, str]:
        self._settle()
        return dict(self._refresh().properties)

    # -- reading metrics -------------------------------------------------------------------

    def _summaries(self) -> list[MetricSummary]:
        self.flush()
        return list(self._store.get_metric_summaries(self._run_id))

    def get_metrics(self, name: str | None = None, recursive: bool = False, run_type: str | None = None,
                    populate: bool = False) -> dict[str, Any]:
        """Metrics in Azure ML's shape: a scalar when logged once, a list when logged many times;
        tables as ``{column: [values]}``. With ``recursive=True``, children's metrics are
        added under their run ids (only children of type ``run_type`` when given). ``populate`` is
        accepted (values are always fetched in full here)."""
        result: dict[str, Any] = {}
        for summary in self._summaries():
            if name is not None and summary.name != name:
                continue
            result[summary.name] = self._shape(summary)
        if recursive:
            for child in self.get_children(recursive=True, type=run_type):
                child_metrics = child.get_metrics(name=name)
                if child_metrics:
                    result[child.id] = child_metrics
        return result

    def _shape(self, summary: MetricSummary) -> Any:
        if summary.kind in _SINGLE_POINT_KINDS and summary.count == 1:
            return summary.last
        history = self._store.get_metric_series(self._run_id, summary.name)
        values = history.values
        if summary.kind == MetricKind.ROW:
            table: dict[str, list[Any]] = {}
            for part in values:
                for col, vals in part.items():
                    table.setdefault(col, []).extend(vals)
            return table
        return values.tolist() if hasattr(values, "tolist") else list(values)

    def get_metric_history(self, name: str) -> MetricHistory:
        """All points of one metric: ``.steps``, ``.timestamps`` and ``.values`` as numpy arrays
        (``.values`` is a list for non-numeric metrics)."""
        self.flush()
        series = self._store.get_metric_series(self._run_id, name)
        return MetricHistory(name, series.kind, series.steps, series.times, series.values)

    def get_metric_summaries(self) -> list[MetricSummary]:
        return self._summaries()

    # -- status and details ----------------------------------------------------------------

    def get_status(self) -> str:
        return str(self._refresh().status)

    def get_details(self) -> dict[str, Any]:
        record = self._refresh()
        details: dict[str, Any] = {
            "runId": record.run_id,
            "experiment": record.experiment_name,
            "displayName": record.display_name or record.run_id,
            "runType": str(record.run_type),
            "target": record.target,
            "status": str(record.status),
            "createdTimeUtc": _iso(record.created_at),
            "startTimeUtc": _iso(record.started_at),
            "endTimeUtc": _iso(record.ended_at),
            "properties": dict(record.properties),
            "tags": dict(record.tags),
            "inputDatasets": list((record.definition or {}).get("inputDatasets", [])),
            "runDefinition": dict(record.definition or {}),
            "logFiles": {n: n for n in self.get_file_names() if n.startswith(LOG_PREFIXES)},
            "parentRunId": record.parent_run_id,
            "statusHistory": [{"status": status, "time": _iso(at)} for status, at in record.status_history],
        }
        if record.error:
            details["error"] = dict(record.error)
        return details

    def _end(self, status: RunStatus, error: Mapping[str, Any] | None = None) -> None:
        self.stop_system_metrics()
        if self._logger_obj is not None:
            self._logger_obj.close()
        end = {"status": str(status), "error": dict(error) if error else None, "when": time.time()}
        self._change(f"ending run {self._run_id} {status}", Record(STATUS, self._run_id, uuid.uuid4().hex, status=end))
        self._record = None
        lifecycle.forget_owned(self)

    def complete(self, _set_status: bool = True) -> None:
        """Mark the run Completed (after writing every buffered metric)."""
        self._end(RunStatus.COMPLETED)

    def fail(self, error_details: Any = None, error_code: str | None = None, _set_status: bool = True) -> None:
        """Mark the run Failed, with ``error_details`` (text or an exception) as its error."""
        self._end(RunStatus.FAILED, _error_dict(error_details, error_code))

    def cancel(self) -> None:
        """Mark the run Canceled."""
        self._end(RunStatus.CANCELED)

    def __enter__(self: R) -> R:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.complete()
        elif isinstance(exc, KeyboardInterrupt):
            self._end(RunStatus.CANCELED, {"message": "interrupted (KeyboardInterrupt)", "code": "Interrupted"})
        elif isinstance(exc, SystemExit):  # sys.exit(0) succeeds; another code fails, as it would at exit
            error = exit_status.error_for_exit_code(exc.code)
            if error is None:
                self.complete()
            else:
                self._end(RunStatus.FAILED, error)
        else:
            self.fail(exc)

    # -- children --------------------------------------------------------------------------

    def child_run(self: R, name: str | None = None, run_id: str | None = None, outputs: Any = None) -> R:
        """Start a child run in the same experiment, owned by this process. Its id is ``run_id``, which
        must follow the id rule (else InvalidNameError), or ``<this run's id>_<8 hex>``."""
        tail = f"_{uuid.uuid4().hex[:8]}"
        child_id = check_run_id(run_id) if run_id is not None else bounded_id(self._run_id, tail)
        self._ensure_created()
        record = self._create_run(child_id, {
            "experiment_name": self.experiment_name,
            "run_type": RunType.CHILD,
            "status": RunStatus.RUNNING,
            "display_name": name,
            "parent_run_id": self._run_id,
            "target": self.record.target,
            "owner": current_identity(),
        })
        return type(self)(self._backend, child_id, record=record, owned=True)

    def get_children(self: R, recursive: bool = False, tags: Mapping[str, Any] | None = None,
                     properties: Mapping[str, Any] | None = None, type: str | None = None,
                     status: str | RunStatus | None = None, _rehydrate_runs: bool = True) -> list[R]:
        """This run's children (with ``recursive=True`` theirs too), filtered by tags, properties, run
        ``type`` (``"child"``...) and ``status``. With ``recursive=True`` the filters apply at every level,
        but the children of a run left out are still searched."""
        statuses = None if status is None else [RunStatus.parse(str(status))]
        records = self._store.list_runs(parent_run_id=self._run_id)
        wanted = {r.run_id for r in self._store.list_runs(
            parent_run_id=self._run_id, tags=_optional_string_map(tags),
            properties=_optional_string_map(properties), statuses=statuses,
        )} if (tags, properties, statuses) != (None, None, None) else None
        children = []
        for r in records:
            child = self.__class__(self._backend, r.run_id, record=r)
            if (wanted is None or r.run_id in wanted) and (type is None or str(r.run_type) == type):
                children.append(child)
            if recursive:
                children.extend(child.get_children(recursive=True, tags=tags, properties=properties, type=type,
                                                   status=status))
        return children

    def create_children(self: R, count: int | None = None, tag_key: str | None = None,
                        tag_values: Sequence[str] | None = None) -> list[R]:
        """Start ``count`` child runs at once, or one per value of ``tag_values``, each tagged
        ``tag_key=<value>`` (Azure ML v1's ``create_children``). Raises UserError when neither or both of
        ``count`` and ``tag_values`` are given, or ``tag_values`` without ``tag_key``."""
        if (count is None) == (tag_values is None):
            raise UserError("create_children: give count= or tag_key= with tag_values=, not both and not neither")
        if tag_values is not None and not tag_key:
            raise UserError("create_children: tag_values= needs tag_key=")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
            raise UserError(f"create_children: count must be an int of 0 or more, got {count!r}")
        children = []
        for value in tag_values if tag_values is not None else [None] * int(count or 0):
            child = self.child_run()
            if tag_key and value is not None:
                child.tag(tag_key, value)
            children.append(child)
        return children

    # -- files -----------------------------------------------------------------------------

    def upload_file(self, name: str, path_or_stream: str | os.PathLike[str] | IO[bytes],
                    datastore_name: str | None = None) -> str:
        """Store a file with the run under ``name`` (``outputs/model.pt``). Returns the name.
        ``datastore_name`` is accepted: run files are kept with the run, in the workspace."""
        self._ensure_created()
        if isinstance(path_or_stream, (str, os.PathLike)):
            source = Path(path_or_stream)
            if not source.is_file():
                raise UserError(f"upload_file: {source} is not a file", path=source)
            self._backend.artifacts.put_file(self._run_id, name, source)
        elif hasattr(path_or_stream, "read"):
            self._backend.artifacts.put_stream(self._run_id, name, path_or_stream)  # type: ignore[arg-type]
        else:
            raise UserError(f"upload_file: expected a path or a binary stream, got {type(path_or_stream).__name__}")
        return name

    def upload_files(self, names: Sequence[str], paths: Sequence[str | os.PathLike[str]],
                     return_artifacts: bool = False, timeout_seconds: float | None = None,
                     datastore_name: str | None = None) -> list[str]:
        """Store each file of ``paths`` under the name at the same place of ``names``; returns the names.
        ``return_artifacts``, ``timeout_seconds`` and ``datastore_name`` are accepted and have no effect."""
        if len(names) != len(paths):
            raise UserError(f"upload_files: {len(names)} names but {len(paths)} paths")
        return [self.upload_file(n, p) for n, p in zip(names, paths)]

    def upload_folder(self, name: str, path: str | os.PathLike[str]) -> list[str]:
        """Store every file under ``path`` as ``name/<relative path>``; returns the names.

        A link to a file inside ``path`` is stored as that file; a link that leads outside ``path`` is
        refused (UserError naming it, nothing stored), as ``Datastore.upload`` refuses one: replace it
        with the file, or upload what it points to. Broken links and special files are left out."""
        folder = Path(path)
        if not folder.is_dir():
            raise UserError(f"upload_folder: {folder} is not a folder", path=folder)
        try:
            files, outside = folder_files(folder)
        except OSError as exc:
            raise UserError(f"upload_folder: cannot read {folder}: {exc.strerror or exc}", path=folder) from exc
        if outside:
            named = "; ".join(f"{rel} -> {target}" for rel, target in outside[:5])
            more = f" and {len(outside) - 5} more" if len(outside) > 5 else ""
            raise UserError(f"upload_folder: {len(outside)} link(s) in {folder} lead outside it ({named}{more}): runlab "
                            "does not upload what such links point to; replace them with the files, or upload the "
                            "folder they point to. Nothing was uploaded", path=folder, links=[r for r, _t in outside])
        prefix = name.rstrip("/")
        return [self.upload_file(f"{prefix}/{rel}" if prefix else rel, file) for rel, file in files]

    def get_file_names(self) -> list[str]:
        return self._backend.artifacts.list(self._run_id)

    def download_file(self, name: str, output_file_path: str | os.PathLike[str] | None = None) -> Path:
        """Copy a run file to ``output_file_path`` (a file, or a folder to put it in; default: cwd)."""
        dest = Path(output_file_path) if output_file_path is not None else Path.cwd() / Path(name).name
        if dest.is_dir():
            dest = dest / Path(name).name
        return self._backend.artifacts.get_to_path(self._run_id, name, dest)

    def download_files(self, prefix: str | None = None, output_directory: str | os.PathLike[str] | None = None,
                       output_paths: Sequence[str | os.PathLike[str]] | None = None, batch_size: int = 100,
                       append_prefix: bool = True, timeout_seconds: float | None = None) -> list[Path]:
        """Copy every run file whose name starts with ``prefix`` into ``output_directory`` (default: the
        current folder), under its name (``append_prefix=False``: without ``prefix``), or to the path at
        the same place of ``output_paths`` (one per file, in name order). Returns the paths written.
        ``batch_size`` and ``timeout_seconds`` are accepted (files are copied one by one, locally).
        Raises UserError when ``output_paths`` does not have one path per file."""
        out = Path(output_directory) if output_directory is not None else Path.cwd()
        prefix = prefix or ""
        names = [name for name in self.get_file_names() if name.startswith(prefix)]
        if output_paths is not None and len(output_paths) != len(names):
            raise UserError(f"download_files: {len(output_paths)} output_paths for {len(names)} files "
                            f"whose names start with {prefix!r}: give one path per file, in name order")
        paths = []
        for i, name in enumerate(names):
            if output_paths is not None:
                dest = Path(output_paths[i])
            else:
                dest = out / (name if append_prefix else name[len(prefix):].lstrip("/"))
            paths.append(self._backend.artifacts.get_to_path(self._run_id, name, dest))
        return paths

    def open_file(self, name: str) -> IO[bytes]:
        return self._backend.artifacts.open(self._run_id, name)


_STEP_MIN, _STEP_MAX = -(2**63), 2**63 - 1  # steps are stored as int64
# logged once, get_metrics() returns the value itself (a number, a list, an image name, Azure's dict)
_SINGLE_POINT_KINDS = frozenset({MetricKind.SCALAR, MetricKind.LIST, MetricKind.IMAGE, *MetricKind.EVALUATION})


def _check_user_metric_name(name: object) -> str:
    """A metric name user code may log: ``sys/`` is runlab's (tracking.sysmetrics)."""
    checked = check_metric_name(name)
    if checked.startswith(SYSTEM_METRIC_PREFIX):
        raise InvalidNameError(
            f"metric {checked!r}: names starting with {SYSTEM_METRIC_PREFIX!r} are reserved for runlab's system "
            f"metrics (CPU, memory, I/O, GPUs, sampled every RUNLAB_SYSTEM_METRICS_INTERVAL seconds); "
            f"log yours under another name, such as {'my_' + checked.replace('/', '_', 1)!r}",
            name=checked,
        )
    return checked


def _update(run_id: str, op: str, args: Any) -> Record:
    return Record(UPDATE, run_id, uuid.uuid4().hex, update={"op": op, "args": args})


def _check_step(name: str, step: Any) -> int:
    if isinstance(step, bool) or not isinstance(step, int):
        item = getattr(step, "item", None)
        if callable(item) and isinstance(item(), int):
            step = int(item())
        else:
            raise InvalidValueError(f"metric {name!r}: step must be an int, got {type(step).__name__} {step!r}",
                                    name=name)
    if not _STEP_MIN <= step <= _STEP_MAX:
        raise InvalidValueError(f"metric {name!r}: step {step} is out of range: steps are 64-bit integers "
                                f"({_STEP_MIN} to {_STEP_MAX})", name=name)
    return int(step)


def _string_map(values: Mapping[str, Any], what: str) -> dict[str, str]:
    if not isinstance(values, Mapping):
        raise InvalidValueError(f"{what}s must be given as a dict of str -> value, got {type(values).__name__}")
    out = {}
    for key, value in values.items():
        if not isinstance(key, str) or not key or len(key) > 255:
            raise InvalidValueError(f"{what} names must be non-empty str of at most 255 characters, got {key!r}")
        out[key] = value if isinstance(value, str) else str(value)
    return out


def _optional_string_map(values: Mapping[str, Any] | None) -> dict[str, str | None] | None:
    if values is None:
        return None
    if isinstance(values, str):  # Azure also accepts a single key
        return {values: None}
    return {k: (None if v is None else str(v)) for k, v in values.items()}


def _error_dict(details: Any, code: str | None) -> dict[str, Any]:
    if isinstance(details, BaseException):
        text = "".join(traceback.format_exception(type(details), details, details.__traceback__))
        return {"message": f"{type(details).__name__}: {details}", "code": code or type(details).__name__,
                "traceback": text}
    return {"message": str(details) if details is not None else "failed", "code": code or "UserError"}


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()


