"""MLflow's tracking REST API (``/api/2.0/mlflow/...``) over the workspace's store.

So that a script calling ``mlflow.set_tracking_uri("http://host:port")`` then ``mlflow.log_metric``
logs into this workspace and its runs appear in the studio. The wire format is MLflow's (the JSON
mapping of ``mlflow/protos/service.proto``: int64 as numbers, enums by name, NaN as ``"NaN"``), and
so are errors: ``{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": ...}`` with MLflow's HTTP
status, which MLflow's client raises as ``MlflowException``.

How MLflow's things map onto runlab's, through the :class:`~runlab.store.base.Store` interface only:

- experiments are experiments; ``experiment_id`` is runlab's number as a string, except MLflow's
  "Default" experiment, always ``"0"`` (a runlab experiment named ``Default``, made when first
  asked for). Deleting an experiment archives it (MLflow's lifecycle stage ``deleted``), restoring
  unarchives it. Names follow runlab's experiment rule.
- runs are runs (interactive, or child runs when the client names an existing
  ``mlflow.parentRunId``) with ids made as runlab makes them, on target ``mlflow`` (no agent serves
  it, so a SCHEDULED run is never claimed), with no owner nor heartbeat (MLflow has none: the run
  stays Running until the client ends it). ``run_name`` is the display name; times are
  milliseconds here and unix seconds in runlab; RUNNING, SCHEDULED, FINISHED, FAILED, KILLED are
  Running, Queued, Completed, Failed, Canceled.
- params are properties (both immutable: a changed value is INVALID_PARAMETER_VALUE), tags are
  tags (``mlflow.*`` system tags included), metrics are scalar series.

Searches parse MLflow's filter and order-by grammar (a subset) with a small, strict tokenizer here
and filter in Python over ``list_runs``: nothing from a filter string ever reaches SQL.

Not served: artifacts (runlab's own ``run.upload_file``), deleting runs (runlab keeps no deleted
runs), renaming experiments, datasets, logged models and traces: those answer MLflow's
NOT_IMPLEMENTED or ENDPOINT_NOT_FOUND error. The routes are left out of the OpenAPI document: its
errors are runlab's shape (``{"error": {...}}``), which these routes answer in MLflow's instead.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import time
from typing import Annotated, Any, Callable, Coroutine, Iterable, Mapping, Sequence, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from runlab.core import filterlang
from runlab.core.entities import ExperimentRecord, MetricBatch, MetricKind, MetricSummary, RunRecord
from runlab.core.errors import (
    ExperimentNotFoundError,
    NotFoundError,
    RunlabError,
    RunNotFoundError,
    StoreUnavailableError,
    UserError,
)
from runlab.core.names import (
    SYSTEM_METRIC_PREFIX,
    check_experiment_name,
    check_metric_name,
    shown,
    storable_text,
)
from runlab.core.status import RunStatus, RunType
from runlab.server.state import StudioState, get_state
from runlab.tracking.run import new_run_id

log = logging.getLogger("runlab.server.mlflow")

PREFIX = "/2.0/mlflow"
DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"
TARGET = "mlflow"  # the target of runs made through this API: no agent serves it

# MLflow's limits (mlflow/utils/validation.py); its client splits log_batch to fit them
MAX_BATCH_METRICS, MAX_BATCH_PARAMS, MAX_BATCH_TAGS, MAX_BATCH_TOTAL = 1000, 100, 100, 1000
MAX_KEY_LENGTH, MAX_PARAM_VALUE_LENGTH, MAX_TAG_VALUE_LENGTH = 250, 6000, 8000
MAX_SEARCH_RESULTS = 50000
DEFAULT_SEARCH_RESULTS = 1000
MAX_FILTER_LENGTH = filterlang.MAX_FILTER_LENGTH
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"
RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
RESOURCE_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
INVALID_STATE = "INVALID_STATE"
ENDPOINT_NOT_FOUND = "ENDPOINT_NOT_FOUND"
NOT_IMPLEMENTED = "NOT_IMPLEMENTED"
TEMPORARILY_UNAVAILABLE = "TEMPORARILY_UNAVAILABLE"
INTERNAL_ERROR = "INTERNAL_ERROR"
HTTP_STATUS = {  # as MLflow's server answers them (mlflow/server/handlers.py, protos/databricks.proto)
    INVALID_PARAMETER_VALUE: 400, RESOURCE_DOES_NOT_EXIST: 404, RESOURCE_ALREADY_EXISTS: 400,
    INVALID_STATE: 400, ENDPOINT_NOT_FOUND: 404, NOT_IMPLEMENTED: 501, TEMPORARILY_UNAVAILABLE: 503,
    INTERNAL_ERROR: 500,
}


class MlflowError(Exception):
    """An error answered in MLflow's shape."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


def _invalid(message: str) -> MlflowError:
    return MlflowError(INVALID_PARAMETER_VALUE, message)


def error_response(error_code: str, message: str) -> JSONResponse:
    headers = {"Retry-After": "1"} if error_code == TEMPORARILY_UNAVAILABLE else None
    return JSONResponse({"error_code": error_code, "message": message}, status_code=HTTP_STATUS.get(error_code, 500),
                        headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
        parts.append(f"{where or 'request body'}: {error.get('msg', 'invalid')}")
    return "Invalid request: " + "; ".join(parts)


def _runlab_error(exc: RunlabError) -> JSONResponse:
    if isinstance(exc, NotFoundError):
        return error_response(RESOURCE_DOES_NOT_EXIST, exc.message)
    if isinstance(exc, UserError):
        return error_response(INVALID_PARAMETER_VALUE, exc.message)
    if isinstance(exc, StoreUnavailableError):
        return error_response(TEMPORARILY_UNAVAILABLE, exc.message)
    log.error("runlab error in the MLflow API: %s", exc.message, exc_info=exc)
    return error_response(INTERNAL_ERROR, exc.message)


class MlflowRoute(APIRoute):
    """Answers every error of its endpoint in MLflow's shape, not the rest of the API's."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except MlflowError as exc:
                return error_response(exc.error_code, exc.message)
            except RequestValidationError as exc:
                return error_response(INVALID_PARAMETER_VALUE, _validation_message(exc))
            except RunlabError as exc:
                return _runlab_error(exc)
            except StarletteHTTPException as exc:
                code = RESOURCE_DOES_NOT_EXIST if exc.status_code == 404 else INVALID_PARAMETER_VALUE
                return error_response(code, str(exc.detail))

        return route


router = APIRouter(route_class=MlflowRoute, include_in_schema=False, tags=["mlflow"])
State = Annotated[StudioState, Depends(get_state)]


# -- request bodies -----------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")  # newer clients send fields this server has no use for


class KeyValue(_Body):
    key: str = Field(max_length=MAX_KEY_LENGTH)
    value: str = ""


class CreateExperimentIn(_Body):
    name: str = Field(max_length=1000)
    artifact_location: str | None = None
    tags: list[KeyValue] = Field(default_factory=list, max_length=MAX_BATCH_TAGS)


class ExperimentIdIn(_Body):
    experiment_id: str = Field(max_length=100)


class UpdateExperimentIn(ExperimentIdIn):
    new_name: str | None = None


class ExperimentTagIn(ExperimentIdIn):
    key: str = Field(max_length=MAX_KEY_LENGTH)
    value: str = ""


class DeleteExperimentTagIn(ExperimentIdIn):
    key: str = Field(max_length=MAX_KEY_LENGTH)


class SearchExperimentsIn(_Body):
    max_results: int | None = None
    page_token: str | None = Field(default=None, max_length=1000)
    filter: str | None = Field(default=None, max_length=MAX_FILTER_LENGTH)
    order_by: list[str] = Field(default_factory=list, max_length=20)
    view_type: str | int | None = None


class RunRef(_Body):
    run_id: str | None = Field(default=None, max_length=300)
    run_uuid: str | None = Field(default=None, max_length=300)  # the older name, sent too

    def id(self) -> str:
        run_id = self.run_id or self.run_uuid
        if not run_id:
            raise _invalid("Missing value for required parameter 'run_id'")
        return run_id


class CreateRunIn(_Body):
    experiment_id: str | None = Field(default=None, max_length=100)
    user_id: str | None = Field(default=None, max_length=1000)
    start_time: int | None = Field(default=None, ge=_INT64_MIN, le=_INT64_MAX)
    tags: list[KeyValue] = Field(default_factory=list, max_length=MAX_BATCH_TAGS * 10)
    run_name: str | None = Field(default=None, max_length=MAX_KEY_LENGTH)


class UpdateRunIn(RunRef):
    status: str | int | None = None
    end_time: int | None = Field(default=None, ge=_INT64_MIN, le=_INT64_MAX)
    run_name: str | None = Field(default=None, max_length=MAX_KEY_LENGTH)


class MetricIn(_Body):
    key: str = Field(max_length=MAX_KEY_LENGTH)
    value: float  # NaN and infinities as MLflow sends them ("NaN", "Infinity")
    timestamp: int | None = Field(default=None, ge=_INT64_MIN, le=_INT64_MAX)
    step: int = Field(default=0, ge=_INT64_MIN, le=_INT64_MAX)


class LogMetricIn(RunRef, MetricIn):
    pass


class LogParamIn(RunRef, KeyValue):
    pass


class SetTagIn(RunRef, KeyValue):
    pass


class DeleteTagIn(RunRef):
    key: str = Field(max_length=MAX_KEY_LENGTH)


class LogBatchIn(RunRef):
    metrics: list[MetricIn] = Field(default_factory=list, max_length=MAX_BATCH_METRICS)
    params: list[KeyValue] = Field(default_factory=list, max_length=MAX_BATCH_PARAMS)
    tags: list[KeyValue] = Field(default_factory=list, max_length=MAX_BATCH_TAGS)


class SearchRunsIn(_Body):
    experiment_ids: list[str] = Field(default_factory=list, max_length=1000)
    filter: str | None = Field(default=None, max_length=MAX_FILTER_LENGTH)
    run_view_type: str | int | None = None
    max_results: int = DEFAULT_SEARCH_RESULTS
    order_by: list[str] = Field(default_factory=list, max_length=20)
    page_token: str | None = Field(default=None, max_length=1000)


# -- checks -------------------------------------------------------------------------------------


def _check_key(key: str, what: str) -> str:
    if not key:
        raise _invalid(f"Invalid {what} name: it is empty")
    if not storable_text(key):
        raise _invalid(f"Invalid {what} name {shown(key)}: it holds a NUL character or text that is not valid Unicode")
    return key


def _check_value(value: str, what: str, key: str, limit: int) -> str:
    if len(value) > limit:
        raise _invalid(f"{what} {key!r} has a value of {len(value):,} characters, more than {limit:,}")
    if not storable_text(value):
        raise _invalid(f"{what} {key!r} has a value with a NUL character or text that is not valid Unicode")
    return value


def _check_metric_key(key: str) -> str:
    try:
        name = check_metric_name(key)
    except UserError as exc:
        raise _invalid(exc.message) from None
    if name.startswith(SYSTEM_METRIC_PREFIX):
        raise _invalid(f"metric {name!r}: names starting with {SYSTEM_METRIC_PREFIX!r} are reserved for runlab's "
                       "system metrics; log yours under another name")
    return name


def _ms_to_s(ms: int | None) -> float:
    return time.time() if ms is None else ms / 1000.0


def _s_to_ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(round(seconds * 1000))


def _number(value: float) -> float | str:
    """A double as protobuf's JSON writes it: NaN and infinities as strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


# -- statuses -----------------------------------------------------------------------------------

_TO_RUNLAB = {"RUNNING": RunStatus.RUNNING, "SCHEDULED": RunStatus.QUEUED, "FINISHED": RunStatus.COMPLETED,
              "FAILED": RunStatus.FAILED, "KILLED": RunStatus.CANCELED}
_ENUM_NUMBERS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}  # service.proto


def mlflow_status(status: RunStatus) -> str:
    if status == RunStatus.COMPLETED:
        return "FINISHED"
    if status == RunStatus.FAILED:
        return "FAILED"
    if status == RunStatus.CANCELED:
        return "KILLED"
    if status in (RunStatus.NOT_STARTED, RunStatus.QUEUED, RunStatus.PREPARING, RunStatus.STARTING):
        return "SCHEDULED"
    return "RUNNING"  # Running, Finalizing, CancelRequested


def _runlab_status(value: str | int) -> RunStatus:
    name = _ENUM_NUMBERS.get(value) if isinstance(value, int) else value.upper()
    if name is None or name not in _TO_RUNLAB:
        raise _invalid(f"Invalid run status {shown(value)}: use one of {', '.join(_TO_RUNLAB)}")
    return _TO_RUNLAB[name]


# -- experiments --------------------------------------------------------------------------------


def _experiment_id(record: ExperimentRecord) -> str:
    return DEFAULT_EXPERIMENT_ID if record.name == DEFAULT_EXPERIMENT_NAME else str(record.experiment_id)


_EXPERIMENT_ID = re.compile(r"[0-9]{1,18}")


def _find_experiment(state: StudioState, experiment_id: str) -> ExperimentRecord:
    """The experiment MLflow calls ``experiment_id`` ("0": Default, made when first asked for)."""
    if experiment_id == DEFAULT_EXPERIMENT_ID:
        return state.store.get_or_create_experiment(DEFAULT_EXPERIMENT_NAME)
    if _EXPERIMENT_ID.fullmatch(experiment_id):
        wanted = int(experiment_id)
        for record in state.store.list_experiments():
            if record.experiment_id == wanted:
                return record
    raise MlflowError(RESOURCE_DOES_NOT_EXIST, f"No Experiment with id={shown(experiment_id)} exists")


def _experiment_json(record: ExperimentRecord) -> dict[str, Any]:
    experiment_id = _experiment_id(record)
    return {
        "experiment_id": experiment_id,
        "name": record.name,
        "artifact_location": f"mlflow-artifacts:/{experiment_id}",
        "lifecycle_stage": "deleted" if record.archived else "active",
        "creation_time": _s_to_ms(record.created_at),
        "last_update_time": _s_to_ms(record.archived_at or record.created_at),
        "tags": [{"key": k, "value": v} for k, v in sorted(record.tags.items())],
    }


def _check_tags(tags: Sequence[KeyValue]) -> dict[str, str]:
    return {_check_key(t.key, "tag"): _check_value(t.value, "tag", t.key, MAX_TAG_VALUE_LENGTH) for t in tags}


@router.post(f"{PREFIX}/experiments/create")
def create_experiment(state: State, body: CreateExperimentIn) -> dict[str, Any]:
    try:
        name = check_experiment_name(body.name)
    except UserError as exc:
        raise _invalid(exc.message) from None
    tags = _check_tags(body.tags)
    store = state.store
    try:
        store.get_experiment(name)
    except ExperimentNotFoundError:
        pass
    else:
        raise MlflowError(RESOURCE_ALREADY_EXISTS, f"Experiment {name!r} already exists.")
    record = store.get_or_create_experiment(name)
    if tags:
        record = store.update_experiment(name, add_tags=tags)
    return {"experiment_id": _experiment_id(record)}


@router.get(f"{PREFIX}/experiments/get")
def get_experiment(state: State, experiment_id: Annotated[str, Query(max_length=100)]) -> dict[str, Any]:
    return {"experiment": _experiment_json(_find_experiment(state, experiment_id))}


@router.get(f"{PREFIX}/experiments/get-by-name")
def get_experiment_by_name(state: State,
                           experiment_name: Annotated[str, Query(max_length=1000)]) -> dict[str, Any]:
    store = state.store
    try:
        if experiment_name == DEFAULT_EXPERIMENT_NAME:
            record = store.get_or_create_experiment(DEFAULT_EXPERIMENT_NAME)
        else:
            record = store.get_experiment(experiment_name)
    except ExperimentNotFoundError:
        raise MlflowError(RESOURCE_DOES_NOT_EXIST,
                          f"Could not find experiment with name {shown(experiment_name)}") from None
    return {"experiment": _experiment_json(record)}


def _view_type(value: str | int | None) -> str:
    names = {1: "ACTIVE_ONLY", 2: "DELETED_ONLY", 3: "ALL"}
    name = "ACTIVE_ONLY" if value is None else names.get(value) if isinstance(value, int) else value.upper()
    if name is None or name not in names.values():
        raise _invalid(f"Invalid view type {shown(value)}: use ACTIVE_ONLY, DELETED_ONLY or ALL")
    return name


def _max_results(value: int | None, default: int) -> int:
    if value is None:
        return default
    if not 1 <= value <= MAX_SEARCH_RESULTS:
        raise _invalid(f"Invalid value {value} for parameter 'max_results': use 1 to {MAX_SEARCH_RESULTS}")
    return value


@router.post(f"{PREFIX}/experiments/search")
def search_experiments(state: State, body: SearchExperimentsIn) -> dict[str, Any]:
    view = _view_type(body.view_type)
    limit = _max_results(body.max_results, 1000)
    offset = decode_page_token(body.page_token)
    conditions = parse_filter(body.filter or "", EXPERIMENT_FILTER)
    orders = [parse_order_by(text, EXPERIMENT_FILTER) for text in body.order_by]
    records = [r for r in state.store.list_experiments()
               if view == "ALL" or (view == "DELETED_ONLY") == r.archived]
    rows = [_ExperimentRow(r) for r in records]
    rows = [row for row in rows if all(c.matches(row) for c in conditions)]
    defaults = [Order(_Field("attribute", "creation_time"), True), Order(_Field("attribute", "experiment_id"), False)]
    rows = sort_rows(rows, [*orders, *defaults])
    page = rows[offset:offset + limit]
    out: dict[str, Any] = {"experiments": [_experiment_json(row.record) for row in page]}
    if offset + limit < len(rows):
        out["next_page_token"] = encode_page_token(offset + limit)
    return out


@router.post(f"{PREFIX}/experiments/update")
def update_experiment(state: State, body: UpdateExperimentIn) -> dict[str, Any]:
    record = _find_experiment(state, body.experiment_id)
    if body.new_name is None or body.new_name == record.name:
        return {}
    raise MlflowError(NOT_IMPLEMENTED, f"runlab experiments cannot be renamed ({record.name!r})")


@router.post(f"{PREFIX}/experiments/delete")
def delete_experiment(state: State, body: ExperimentIdIn) -> dict[str, Any]:
    """MLflow's delete is undone by restore: here it archives the experiment."""
    record = _find_experiment(state, body.experiment_id)
    state.store.update_experiment(record.name, archived=True)
    return {}


@router.post(f"{PREFIX}/experiments/restore")
def restore_experiment(state: State, body: ExperimentIdIn) -> dict[str, Any]:
    record = _find_experiment(state, body.experiment_id)
    state.store.update_experiment(record.name, archived=False)
    return {}


@router.post(f"{PREFIX}/experiments/set-experiment-tag")
def set_experiment_tag(state: State, body: ExperimentTagIn) -> dict[str, Any]:
    record = _find_experiment(state, body.experiment_id)
    state.store.update_experiment(record.name, add_tags=_check_tags([KeyValue(key=body.key, value=body.value)]))
    return {}


@router.post(f"{PREFIX}/experiments/delete-experiment-tag")
def delete_experiment_tag(state: State, body: DeleteExperimentTagIn) -> dict[str, Any]:
    record = _find_experiment(state, body.experiment_id)
    state.store.update_experiment(record.name, remove_tags=[body.key])
    return {}


# -- runs ---------------------------------------------------------------------------------------


def _get_run(state: StudioState, run_id: str) -> RunRecord:
    try:
        return state.store.get_run(run_id)
    except RunNotFoundError:
        raise MlflowError(RESOURCE_DOES_NOT_EXIST, f"Run with id={shown(run_id)} not found") from None


def _run_info(record: RunRecord, experiment_id: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "run_id": record.run_id,
        "run_uuid": record.run_id,
        "run_name": record.display_name or record.run_id,
        "experiment_id": experiment_id,
        "user_id": record.tags.get("mlflow.user", record.owner or ""),
        "status": mlflow_status(record.status),
        "start_time": _s_to_ms(record.started_at or record.created_at),
        "artifact_uri": f"mlflow-artifacts:/{experiment_id}/{record.run_id}/artifacts",
        "lifecycle_stage": "active",
    }
    if record.status.is_terminal and record.ended_at is not None:
        info["end_time"] = _s_to_ms(record.ended_at)
    return info


def _latest_metrics(summaries: Iterable[MetricSummary]) -> dict[str, MetricSummary]:
    """The run's scalar metrics with a number as their last value (MLflow has no other kind)."""
    return {s.name: s for s in summaries
            if s.kind == MetricKind.SCALAR and isinstance(s.last, (int, float)) and not isinstance(s.last, bool)}


def _run_json(record: RunRecord, experiment_id: str, summaries: Iterable[MetricSummary]) -> dict[str, Any]:
    tags = dict(record.tags)
    if record.display_name and "mlflow.runName" not in tags:
        tags["mlflow.runName"] = record.display_name
    if record.parent_run_id and "mlflow.parentRunId" not in tags:
        tags["mlflow.parentRunId"] = record.parent_run_id
    metrics = [{"key": s.name, "value": _number(float(s.last)), "timestamp": _s_to_ms(s.last_time) or 0,
                "step": s.last_step or 0} for s in _latest_metrics(summaries).values()]
    return {
        "info": _run_info(record, experiment_id),
        "data": {
            "metrics": metrics,
            "params": [{"key": k, "value": v} for k, v in sorted(record.properties.items())],
            "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
        },
        "inputs": {},
    }


def _run_experiment_id(state: StudioState, record: RunRecord) -> str:
    if record.experiment_name == DEFAULT_EXPERIMENT_NAME:
        return DEFAULT_EXPERIMENT_ID
    return _experiment_id(state.store.get_experiment(record.experiment_name))


@router.post(f"{PREFIX}/runs/create")
def create_run(state: State, body: CreateRunIn) -> dict[str, Any]:
    experiment = _find_experiment(state, body.experiment_id or DEFAULT_EXPERIMENT_ID)
    if experiment.archived:
        raise MlflowError(INVALID_STATE, f"The experiment {experiment.name!r} (id {_experiment_id(experiment)}) "
                          "is deleted (archived): restore it to create runs in it")
    tags = _check_tags(body.tags)
    display_name = body.run_name or tags.get("mlflow.runName") or None
    if display_name is not None:
        _check_key(display_name, "run")
        tags["mlflow.runName"] = display_name
    if body.user_id and "mlflow.user" not in tags:
        tags["mlflow.user"] = _check_value(body.user_id, "user", "user_id", MAX_TAG_VALUE_LENGTH)
    store = state.store
    parent = tags.get("mlflow.parentRunId")
    if parent is not None:
        try:
            store.get_run(parent)
        except (RunNotFoundError, UserError):
            parent = None  # a parent from another server: kept as the tag only
    run_id = new_run_id(experiment.name)
    record = store.create_run(
        run_id, experiment.name, run_type=RunType.CHILD if parent else RunType.INTERACTIVE, status=RunStatus.RUNNING,
        display_name=display_name, parent_run_id=parent, target=TARGET, tags=tags,
        created_at=_ms_to_s(body.start_time),
    )
    return {"run": _run_json(record, _experiment_id(experiment), [])}


@router.post(f"{PREFIX}/runs/update")
def update_run(state: State, body: UpdateRunIn) -> dict[str, Any]:
    run_id = body.id()
    record = _get_run(state, run_id)
    store = state.store
    if body.run_name:
        _check_key(body.run_name, "run")
        store.set_display_name(run_id, body.run_name)
        store.set_tags(run_id, {"mlflow.runName": body.run_name})
    if body.status is not None:
        status = _runlab_status(body.status)
        when = _ms_to_s(body.end_time) if status.is_terminal else None
        if status != record.status or (status.is_terminal and body.end_time is not None):
            store.set_status(run_id, status, when=when)
    record = _get_run(state, run_id)
    return {"run_info": _run_info(record, _run_experiment_id(state, record))}


@router.get(f"{PREFIX}/runs/get")
def get_run(state: State, run_id: Annotated[str | None, Query(max_length=300)] = None,
            run_uuid: Annotated[str | None, Query(max_length=300)] = None) -> dict[str, Any]:
    ref = RunRef(run_id=run_id, run_uuid=run_uuid).id()
    record = _get_run(state, ref)
    return {"run": _run_json(record, _run_experiment_id(state, record), state.store.get_metric_summaries(ref))}


def _metric_batches(metrics: Sequence[MetricIn]) -> list[MetricBatch]:
    """One batch per key, in the order each key first appears; each key's points in log order."""
    grouped: dict[str, tuple[list[int | None], list[float], list[float]]] = {}
    for metric in metrics:
        steps, times, values = grouped.setdefault(_check_metric_key(metric.key), ([], [], []))
        steps.append(metric.step)
        times.append(_ms_to_s(metric.timestamp))
        values.append(float(metric.value))
    return [MetricBatch(name, MetricKind.SCALAR, steps, times, values) for name, (steps, times, values) in grouped.items()]


def _check_params(run_id: str, params: Sequence[KeyValue]) -> dict[str, str]:
    out: dict[str, str] = {}
    for param in params:
        key = _check_key(param.key, "param")
        value = _check_value(param.value, "param", key, MAX_PARAM_VALUE_LENGTH)
        if key in out and out[key] != value:
            raise _invalid(f"Duplicate parameter keys have been submitted: param {key!r} of run {run_id} "
                           f"is given both {out[key]!r} and {value!r}")
        out[key] = value
    return out


def _add_params(state: StudioState, run_id: str, params: Mapping[str, str]) -> None:
    """Params are run properties: set once (MLflow's rule too); a changed value is refused."""
    try:
        state.store.add_properties(run_id, params)
    except RunNotFoundError:
        raise MlflowError(RESOURCE_DOES_NOT_EXIST, f"Run with id={shown(run_id)} not found") from None
    except UserError as exc:  # PropertyConflictError
        raise _invalid(f"Changing param values is not allowed. {exc.message}") from None


@router.post(f"{PREFIX}/runs/log-metric")
def log_metric(state: State, body: LogMetricIn) -> dict[str, Any]:
    run_id = body.id()
    batches = _metric_batches([body])
    _get_run(state, run_id)
    state.store.append_metrics(run_id, batches)
    return {}


@router.post(f"{PREFIX}/runs/log-parameter")
def log_param(state: State, body: LogParamIn) -> dict[str, Any]:
    run_id = body.id()
    _add_params(state, run_id, _check_params(run_id, [body]))
    return {}


@router.post(f"{PREFIX}/runs/log-batch")
def log_batch(state: State, body: LogBatchIn) -> dict[str, Any]:
    run_id = body.id()
    total = len(body.metrics) + len(body.params) + len(body.tags)
    if total > MAX_BATCH_TOTAL:
        raise _invalid(f"A batch logging request can contain at most {MAX_BATCH_TOTAL} metrics, params and tags in "
                       f"all; got {total}")
    params = _check_params(run_id, body.params)
    tags = _check_tags(body.tags)
    batches = _metric_batches(body.metrics)
    _get_run(state, run_id)
    _add_params(state, run_id, params)  # first: a changed param refuses the whole batch
    if tags:
        _set_tags(state, run_id, tags)
    state.store.append_metrics(run_id, batches)
    return {}


def _set_tags(state: StudioState, run_id: str, tags: Mapping[str, str]) -> None:
    state.store.set_tags(run_id, tags)
    name = tags.get("mlflow.runName")
    if name:
        state.store.set_display_name(run_id, name)


@router.post(f"{PREFIX}/runs/set-tag")
def set_tag(state: State, body: SetTagIn) -> dict[str, Any]:
    run_id = body.id()
    tags = _check_tags([body])
    _get_run(state, run_id)
    _set_tags(state, run_id, tags)
    return {}


@router.post(f"{PREFIX}/runs/delete-tag")
def delete_tag(state: State, body: DeleteTagIn) -> dict[str, Any]:
    run_id = body.id()
    record = _get_run(state, run_id)
    if body.key not in record.tags:
        raise MlflowError(RESOURCE_DOES_NOT_EXIST, f"No tag with name {shown(body.key)} in run with id {run_id}")
    state.store.remove_tags(run_id, [body.key])
    return {}


@router.get(f"{PREFIX}/metrics/get-history")
def get_metric_history(
    state: State,
    metric_key: Annotated[str, Query(max_length=MAX_KEY_LENGTH)],
    run_id: Annotated[str | None, Query(max_length=300)] = None,
    run_uuid: Annotated[str | None, Query(max_length=300)] = None,
    max_results: Annotated[int | None, Query(ge=1, le=10_000_000)] = None,
    page_token: Annotated[str | None, Query(max_length=1000)] = None,
) -> dict[str, Any]:
    ref = RunRef(run_id=run_id, run_uuid=run_uuid).id()
    _get_run(state, ref)
    try:
        series = state.store.get_metric_series(ref, metric_key)
    except RunNotFoundError:
        raise MlflowError(RESOURCE_DOES_NOT_EXIST, f"Run with id={shown(ref)} not found") from None
    except NotFoundError:  # the run has no such metric: MLflow answers an empty history
        return {"metrics": []}
    if series.kind != MetricKind.SCALAR:
        raise _invalid(f"Metric {metric_key!r} of run {ref} holds {series.kind} values, not numbers: read it with "
                       "runlab's Run.get_metrics()")
    start = decode_page_token(page_token)
    stop = len(series) if max_results is None else min(len(series), start + max_results)
    steps, times, values = series.steps[start:stop].tolist(), series.times[start:stop].tolist(), series.values[start:stop]
    values = values.tolist() if hasattr(values, "tolist") else list(values)
    out: dict[str, Any] = {"metrics": [
        {"key": metric_key, "value": _number(float(v)), "timestamp": _s_to_ms(t), "step": s}
        for s, t, v in zip(steps, times, values)
    ]}
    if stop < len(series):
        out["next_page_token"] = encode_page_token(stop)
    return out


@router.post(f"{PREFIX}/runs/search")
def search_runs(state: State, body: SearchRunsIn) -> dict[str, Any]:
    view = _view_type(body.run_view_type)
    limit = _max_results(body.max_results, DEFAULT_SEARCH_RESULTS)
    offset = decode_page_token(body.page_token)
    conditions = parse_filter(body.filter or "", RUN_FILTER)
    orders = [parse_order_by(text, RUN_FILTER) for text in body.order_by]
    ids: dict[str, ExperimentRecord] = {}  # MLflow's id, and runlab's number of Default too
    for record in state.store.list_experiments():
        ids[_experiment_id(record)] = ids[str(record.experiment_id)] = record
    wanted: dict[str, str] = {}  # experiment name -> MLflow's id
    for experiment_id in body.experiment_ids:
        if not (experiment_id == DEFAULT_EXPERIMENT_ID or _EXPERIMENT_ID.fullmatch(experiment_id)):
            raise _invalid(f"Invalid experiment id {shown(experiment_id)}: experiment ids are numbers")
        if experiment_id in ids:  # an unknown id has no runs (as MLflow answers)
            wanted[ids[experiment_id].name] = _experiment_id(ids[experiment_id])
    rows: list[_RunRow] = []
    if view != "DELETED_ONLY":  # runlab keeps no deleted runs
        for name, mlflow_id in wanted.items():
            rows.extend(_RunRow(state, r, mlflow_id) for r in state.store.list_runs(experiment_name=name))
    rows = [row for row in rows if all(c.matches(row) for c in conditions)]
    defaults = [Order(_Field("attribute", "start_time"), True), Order(_Field("attribute", "run_id"), False)]
    rows = sort_rows(rows, [*orders, *defaults])
    page = rows[offset:offset + limit]
    out: dict[str, Any] = {"runs": [_run_json(row.record, row.experiment_id, row.summaries().values()) for row in page]}
    if offset + limit < len(rows):
        out["next_page_token"] = encode_page_token(offset + limit)
    return out


@router.post(f"{PREFIX}/runs/delete")
def delete_run(body: RunRef) -> dict[str, Any]:
    raise MlflowError(NOT_IMPLEMENTED, f"runlab keeps every run: run {shown(body.id())} cannot be deleted through "
                      "MLflow's API (delete its experiment with runlab instead)")


@router.api_route(f"{PREFIX}/{{path:path}}", methods=["GET", "POST", "PATCH", "DELETE", "PUT"])
def not_served(path: str) -> dict[str, Any]:
    raise MlflowError(ENDPOINT_NOT_FOUND, f"runlab does not serve MLflow's endpoint {shown('/api/2.0/mlflow/' + path)}: "
                      "it serves experiments, runs, params, tags and metrics")


@router.api_route("/2.0/mlflow-artifacts/{path:path}", methods=["GET", "POST", "PUT", "DELETE"])
def no_artifacts(path: str) -> dict[str, Any]:
    raise MlflowError(NOT_IMPLEMENTED, "runlab does not store MLflow artifacts: upload run files with runlab "
                      "(run.upload_file) instead")


# -- page tokens --------------------------------------------------------------------------------


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_page_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        data = None
    offset = data.get("offset") if isinstance(data, dict) else None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise _invalid(f"Invalid page token {shown(token)}: pass the next_page_token of a previous answer")
    return offset


# -- filters and order-by -----------------------------------------------------------------------
#
# MLflow's grammar (a subset), parsed by runlab.core.filterlang (shared with the studio's runs table):
# conditions joined by AND, each ``<type>.<key> <comparator> <value>``. Anything else is refused, as
# MLflow's INVALID_PARAMETER_VALUE.

_Field = filterlang.Field
Grammar = filterlang.Grammar
Condition = filterlang.Condition
Order = filterlang.Order
like = filterlang.like

RUN_FILTER = Grammar("runs", frozenset({"run_id", "run_name", "status", "user_id", "artifact_uri", "lifecycle_stage"}),
                     frozenset({"start_time", "end_time"}), frozenset({"metric", "param", "tag", "attribute"}),
                     {"created": "start_time", "run_uuid": "run_id"})
EXPERIMENT_FILTER = Grammar("experiments", frozenset({"name", "lifecycle_stage"}),
                            frozenset({"creation_time", "last_update_time", "experiment_id"}),
                            frozenset({"tag", "attribute"}), {})


def parse_filter(text: str, grammar: Grammar) -> list[Condition]:
    """MLflow's filter string as conditions that all must hold; INVALID_PARAMETER_VALUE otherwise."""
    try:
        return filterlang.parse_filter(text, grammar)
    except filterlang.FilterError as exc:
        raise _invalid(exc.message) from None


def parse_order_by(text: str, grammar: Grammar) -> Order:
    try:
        return filterlang.parse_order_by(text, grammar)
    except filterlang.FilterError as exc:
        raise _invalid(exc.message) from None


class _Row:
    """What a filter or a sort reads a value from."""

    def value(self, field: _Field) -> Any:
        raise NotImplementedError


class _RunRow(_Row):
    """A run as searches see it; its metrics are read only when a filter or sort needs them."""

    def __init__(self, state: StudioState, record: RunRecord, experiment_id: str) -> None:
        self.state, self.record, self.experiment_id = state, record, experiment_id
        self._summaries: dict[str, MetricSummary] | None = None

    def summaries(self) -> dict[str, MetricSummary]:
        if self._summaries is None:
            self._summaries = _latest_metrics(self.state.store.get_metric_summaries(self.record.run_id))
        return self._summaries

    def value(self, field: _Field) -> Any:
        record = self.record
        if field.entity == "metric":
            summary = self.summaries().get(field.key)
            return None if summary is None else float(summary.last)
        if field.entity == "param":
            return record.properties.get(field.key)
        if field.entity == "tag":
            if field.key == "mlflow.runName" and record.display_name:
                return record.tags.get(field.key, record.display_name)
            return record.tags.get(field.key)
        info = _run_info(record, self.experiment_id)
        return info.get(field.key)


class _ExperimentRow(_Row):
    def __init__(self, record: ExperimentRecord) -> None:
        self.record = record

    def value(self, field: _Field) -> Any:
        if field.entity == "tag":
            return self.record.tags.get(field.key)
        info = _experiment_json(self.record)
        return int(info["experiment_id"]) if field.key == "experiment_id" else info.get(field.key)


R = TypeVar("R", bound=_Row)


def _sort_key(value: Any) -> Any:
    if isinstance(value, float):
        return (0, math.isnan(value), 0.0 if math.isnan(value) else value)
    if isinstance(value, int):
        return (0, False, value)
    return (1, False, str(value))


def sort_rows(rows: list[R], orders: Sequence[Order]) -> list[R]:
    """Rows sorted by ``orders`` (the first decides first); missing values last either way."""
    for order in reversed(orders):
        present = [(row, row.value(order.field)) for row in rows]
        have = [(row, v) for row, v in present if v is not None]
        have.sort(key=lambda pair: _sort_key(pair[1]), reverse=order.descending)
        rows = [row for row, _ in have] + [row for row, v in present if v is None]
    return rows
