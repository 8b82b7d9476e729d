"""What clients of ``runlab server`` call: the store interface, run files and snapshots over HTTP.

- ``POST /api/store/<method>``: one method of the store (:mod:`runlab.store.remote.protocol` lists them
  and who may call each); ``POST /api/store/append_metrics``: a binary metric batch.
- ``/api/remote/runs/<id>/files[/<name>]``: run files, streamed both ways (PUT, POST ``?append=1``,
  GET, HEAD, DELETE of the whole run's files).
- ``/api/remote/snapshots/...``: a submit sends the objects the server lacks, then the manifest; both
  are checked (an object's bytes against its sha256, a manifest's id against its file list).
- ``POST /api/remote/runs/<id>/queued``: a client submitted a run; the server starts its target's agent.
- ``/api/remote/datastores/<name>[/objects[/<object>]|/stat/<object>]``: the files of the workspace's own
  datastores (:mod:`runlab.store.remote.objects`): writers write, readers and a run's own token read.
- ``/api/remote/models/blobs/<sha256>`` (HEAD, GET, PUT) and ``POST .../from-run``: registered models'
  contents (:mod:`runlab.store.remote.blobs`); ``register_model`` and ``delete_model`` calls run under the
  model files' lock (:func:`runlab.store.models.record_model`, :func:`~runlab.store.models.delete_version`).

Each handler checks the caller's token (the :class:`~runlab.server.auth.Principal` the auth middleware set):
writers write anything, readers read, and a run's own token reads and writes only its run.
These routes are not in the OpenAPI document: they are runlab's client protocol, not the studio's
REST API, and are described here.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Any, BinaryIO

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from runlab.core.errors import NotFoundError, PermissionDeniedError, RunlabError, StoreError, UserError
from runlab.core.names import check_run_id
from runlab.execution.snapshot import SnapshotStore
from runlab.server.api.files import _file_response, _iterate, files_with_sizes
from runlab.server.auth import Principal, current_principal
from runlab.server.state import StudioState, get_state
from runlab.store.artifacts import check_file_name, open_with_size
from runlab.store.objects import ObjectStore, check_object_name, check_prefix
from runlab.store.remote import codec
from runlab.store.remote.objects import SHA256_HEADER, info_to_json
from runlab.store.remote.protocol import METHODS, PRIVATE_META_PREFIX, Access

_log = logging.getLogger("runlab.server")

router = APIRouter(include_in_schema=False)
SPOOL_BYTES = 8 << 20
MAX_RPC_BODY = 64 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _forbidden(message: str) -> RunlabError:
    return PermissionDeniedError(message)


def _run_of(args: list[Any], kwargs: dict[str, Any]) -> str | None:
    run_id = kwargs.get("run_id", args[0] if args else None)
    return run_id if isinstance(run_id, str) else None


def _owns_run(state: StudioState, caller: Principal, run_id: str | None) -> bool:
    """A run token owns its run and the child runs it made (writers and admins: every run)."""
    if run_id is None:
        return False
    if caller.may_write_run(run_id):
        return True
    if caller.role != "run":
        return False
    try:
        return state.store.get_run(run_id).parent_run_id == caller.run_id
    except NotFoundError:
        return False


def authorize(state: StudioState, caller: Principal, method: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Raise the 403 error unless ``caller`` may call store method ``method`` with these arguments."""
    access = METHODS[method]
    if method in ("get_meta", "set_meta"):
        key = kwargs.get("key", args[0] if args else None)
        if not isinstance(key, str) or key.startswith(PRIVATE_META_PREFIX):
            raise _forbidden(f"workspace setting {key!r} is the server's own: no token can read or write it")
    if caller.can_write:
        return
    if caller.can_read:
        if access in (Access.READ, Access.LIST, Access.RUN_READ):
            return
        raise _forbidden(f"{caller.describe()} is a read-only token: {method} writes; ask an admin for a writer token")
    if caller.role == "run":
        if access == Access.READ:
            return
        if access in (Access.RUN_READ, Access.RUN_WRITE) and _owns_run(state, caller, _run_of(args, kwargs)):
            return
        if method == "create_run" and kwargs.get("parent_run_id") == caller.run_id:
            return
        if method == "register_model" and kwargs.get("run_id") in (None, caller.run_id):
            return  # its own run's files, or files of its machine (Model.register(ws, "outputs/model.pt"))
        if method == "get_or_create_experiment" and caller.run_id is not None:
            own = state.store.get_run(caller.run_id)
            if (kwargs.get("name", args[0] if args else None)) == own.experiment_name:
                return
        raise _forbidden(f"the token of run {caller.run_id} can read and write only that run (and its child runs): "
                         f"{method} is not allowed with it")
    raise _forbidden(f"a token with role {caller.role!r} cannot call {method}")


async def _body(request: Request, limit: int) -> bytes:
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise UserError(f"request body over {limit >> 20} MiB: send fewer points or files per request")
        chunks.append(chunk)
    return b"".join(chunks)


def _result(value: Any) -> Response:
    return Response(codec.dumps({"result": value}), media_type="application/json")


@router.post("/store/append_metrics")
async def append_metrics(request: Request) -> Response:
    state = get_state(request)
    body = await _body(request, MAX_RPC_BODY)
    run_id, batches, batch_id = await run_in_threadpool(codec.decode_batches, body)  # 50,000 points: off the loop
    authorize(state, current_principal(request), "append_metrics", [run_id], {})
    await run_in_threadpool(state.store.append_metrics, check_run_id(run_id), batches, batch_id)
    return _result(None)


@router.post("/store/get_metric_series")
async def get_metric_series(request: Request) -> Response:
    """One series as binary arrays (codec.encode_series) for runlab's client; JSON for any other caller."""
    state = get_state(request)
    payload = codec.loads(await _body(request, MAX_RPC_BODY))
    args = payload.get("args", []) if isinstance(payload, dict) else None
    kwargs = payload.get("kwargs", {}) if isinstance(payload, dict) else None
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise codec.WireError("a store call's body is {\"args\": [...], \"kwargs\": {...}}")
    await run_in_threadpool(authorize, state, current_principal(request), "get_metric_series", args, kwargs)
    try:
        series = await run_in_threadpool(lambda: state.store.get_metric_series(*args, **kwargs))
    except TypeError as exc:
        raise UserError(f"get_metric_series: {exc}") from exc
    if "application/x-runlab-series" in request.headers.get("accept", ""):  # off the event loop: 24 MB a 1M series
        body = await run_in_threadpool(codec.encode_series, series)
        return StreamingResponse(_pieces(body), media_type="application/x-runlab-series",
                                 headers={"Content-Length": str(len(body))})
    return _result(series)


SEND_PIECE = 1 << 20


async def _pieces(body: bytes) -> AsyncIterator[memoryview]:
    """``body`` in pieces of 1 MiB. Written at once, 24 MB went into the asyncio transport's buffer,
    which Python 3.11 shifts down after each partial send: half the time of a 1M-point read."""
    view = memoryview(body)
    for at in range(0, len(view), SEND_PIECE):
        yield view[at:at + SEND_PIECE]


@router.post("/store/{method}")
async def call_store(method: str, request: Request) -> Response:
    if method not in METHODS:
        raise NotFoundError(f"the store has no method {method!r} that clients may call")
    state = get_state(request)
    payload = codec.loads(await _body(request, MAX_RPC_BODY))
    if not isinstance(payload, dict):
        raise codec.WireError("a store call's body is {\"args\": [...], \"kwargs\": {...}}")
    args, kwargs = payload.get("args", []), payload.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise codec.WireError("a store call's body is {\"args\": [...], \"kwargs\": {...}}")
    caller = current_principal(request)
    await run_in_threadpool(authorize, state, caller, method, args, kwargs)
    target = getattr(state.store, method)
    if method in _MODEL_FILE_METHODS:  # under the lock of the server's model files (runlab.store.models)
        target = _model_file_method(state, method)
    if method == "reap_stale_runs":
        kwargs.pop("throttle", None)
    if method == "delete_run":  # as the studio deletes: records, files and the run's tokens
        from runlab.server.api.runs import delete

        def target(run_id: str) -> list[str]:
            return delete(state, run_id)
    try:
        result = await run_in_threadpool(lambda: target(*args, **kwargs))
    except TypeError as exc:  # wrong arguments for the method: the client's mistake, said plainly
        raise UserError(f"{method}: {exc}") from exc
    return _result(result)


# -- run files ----------------------------------------------------------------------------------------


def _check_run_access(state: StudioState, caller: Principal, run_id: str, writing: bool) -> None:
    if (caller.can_read and not writing) or _owns_run(state, caller, run_id):
        return
    if caller.can_read:
        raise _forbidden(f"{caller.describe()} is a read-only token: it cannot write files of run {run_id}")
    raise _forbidden(f"the token of run {caller.run_id} cannot reach the files of run {run_id}")


async def _spool(request: Request) -> BinaryIO:
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    async for chunk in request.stream():
        spool.write(chunk)
    spool.seek(0)
    return spool  # type: ignore[return-value]


@router.put("/remote/runs/{run_id}/files/{name:anypath}")
async def put_file(run_id: str, name: str, request: Request) -> Response:
    state = get_state(request)
    run_id, name = check_run_id(run_id), check_file_name(name)
    await run_in_threadpool(_check_run_access, state, current_principal(request), run_id, True)
    await run_in_threadpool(state.store.get_run, run_id)
    spool = await _spool(request)
    try:
        await run_in_threadpool(state.artifacts.put_stream, run_id, name, spool)
    finally:
        spool.close()
    return Response(status_code=204)


@router.post("/remote/runs/{run_id}/files/{name:anypath}")
async def append_file(run_id: str, name: str, request: Request, append: int = 0) -> Response:
    if append != 1:
        raise UserError("POST to a run file appends: add ?append=1 (PUT replaces the file)")
    state = get_state(request)
    run_id, name = check_run_id(run_id), check_file_name(name)
    await run_in_threadpool(_check_run_access, state, current_principal(request), run_id, True)
    data = await _body(request, MAX_RPC_BODY)
    await run_in_threadpool(state.artifacts.append_bytes, run_id, name, data)
    return Response(status_code=204)


@router.get("/remote/runs/{run_id}/files")
def list_files(run_id: str, request: Request, prefix: str = "") -> JSONResponse:
    state = get_state(request)
    run_id = check_run_id(run_id)
    _check_run_access(state, current_principal(request), run_id, False)
    return JSONResponse([{"name": name, "size": size} for name, size in files_with_sizes(state, run_id, prefix)])


@router.api_route("/remote/runs/{run_id}/files/{name:anypath}", methods=["GET", "HEAD"])
def get_file(run_id: str, name: str, request: Request, offset: int = 0) -> Response:
    """The file's bytes from ``offset`` on (a client following a growing log asks for what is new)."""
    state = get_state(request)
    run_id, name = check_run_id(run_id), check_file_name(name)
    _check_run_access(state, current_principal(request), run_id, False)
    if request.method == "HEAD":
        return Response(headers={"Content-Length": str(state.artifacts.size(run_id, name))})
    if offset < 0:
        raise UserError(f"offset {offset} is negative")
    stream, size = open_with_size(state.artifacts, run_id, name, offset)  # one listing of its objects in S3
    return _file_response(stream, name, size - min(offset, size), download=True)


@router.delete("/remote/runs/{run_id}/files")
def delete_files(run_id: str, request: Request) -> Response:
    state = get_state(request)
    run_id = check_run_id(run_id)
    if not current_principal(request).can_write:
        raise _forbidden("deleting a run's files needs a writer token")
    state.artifacts.delete_run(run_id)
    return Response(status_code=204)


# -- snapshots ----------------------------------------------------------------------------------------


def _snapshots(state: StudioState) -> SnapshotStore:
    return SnapshotStore(state.folder.snapshots_dir)


def _sha(value: str) -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise UserError(f"{str(value)[:80]!r} is not a sha256 (64 lowercase hex digits)")
    return value


def _require_writer(request: Request, doing: str) -> None:
    if not current_principal(request).can_write:
        raise _forbidden(f"{doing} needs a writer token")


def _run_may_read_snapshot(state: StudioState, caller: Principal, snapshot_id: str) -> bool:
    if caller.can_read:
        return True
    if caller.role == "run" and caller.run_id:
        definition = state.store.get_run(caller.run_id).definition or {}
        return definition.get("snapshotId") == snapshot_id
    return False


@router.post("/remote/snapshots/missing")
async def missing_objects(request: Request) -> JSONResponse:
    """Of the sha256s in the body (``{"objects": [...]}``), those the server does not hold."""
    _require_writer(request, "sending a snapshot")
    state = get_state(request)
    payload = json.loads(await _body(request, MAX_RPC_BODY) or b"{}")
    shas = payload.get("objects") if isinstance(payload, dict) else None
    if not isinstance(shas, list):
        raise UserError('the body is {"objects": [sha256, ...]}')
    checked = [_sha(sha) for sha in shas]
    missing = await run_in_threadpool(_snapshots(state).missing_objects, checked)  # HEADs, in a bucket
    return JSONResponse({"missing": missing})


@router.put("/remote/snapshots/objects/{sha256}")
async def put_object(sha256: str, request: Request) -> Response:
    _require_writer(request, "sending a snapshot")
    state = get_state(request)
    expected = _sha(sha256)
    spool = await _spool(request)
    try:
        digest = hashlib.sha256()
        while block := spool.read(1 << 20):
            digest.update(block)
        if digest.hexdigest() != expected:
            raise UserError(f"the bytes sent for object {expected} have sha256 {digest.hexdigest()}: nothing stored")
        spool.seek(0)
        await run_in_threadpool(_snapshots(state).import_object, spool, expected)
    finally:
        spool.close()
    return Response(status_code=204)


@router.put("/remote/snapshots/manifests/{snapshot_id}")
async def put_manifest(snapshot_id: str, request: Request) -> Response:
    _require_writer(request, "sending a snapshot")
    state = get_state(request)
    manifest = json.loads(await _body(request, MAX_RPC_BODY))
    await run_in_threadpool(_snapshots(state).import_manifest, _sha(snapshot_id), manifest)
    return Response(status_code=204)


@router.get("/remote/snapshots/manifests/{snapshot_id}")
def get_manifest(snapshot_id: str, request: Request) -> JSONResponse:
    state = get_state(request)
    if not _run_may_read_snapshot(state, current_principal(request), _sha(snapshot_id)):
        raise _forbidden("a run's token reads only its own run's snapshot")
    return JSONResponse(_snapshots(state).manifest(snapshot_id))


@router.get("/remote/snapshots/{snapshot_id}/objects/{sha256}")
def get_object(snapshot_id: str, sha256: str, request: Request) -> Response:
    state = get_state(request)
    if not _run_may_read_snapshot(state, current_principal(request), _sha(snapshot_id)):
        raise _forbidden("a run's token reads only its own run's snapshot")
    store = _snapshots(state)
    entry = next((f for f in store.manifest(snapshot_id)["files"]
                  if isinstance(f, dict) and f.get("sha256") == _sha(sha256)), None)
    if entry is None:
        raise NotFoundError(f"snapshot {snapshot_id} holds no object {sha256}")
    try:
        stream, size = store.open_object(sha256)
    except NotFoundError as exc:
        raise StoreError(f"snapshot {snapshot_id} is damaged: the content of {entry.get('path')!r} is missing from "
                         f"{store.where}", snapshot_id=snapshot_id) from exc
    if size != entry.get("size"):
        stream.close()
        raise StoreError(f"snapshot {snapshot_id} is damaged: the content of {entry.get('path')!r} ({sha256}) in "
                         f"{store.where} holds {size} bytes, not the {entry.get('size')} its manifest records: it was "
                         "changed outside runlab. Submit the run again to send the files anew", snapshot_id=snapshot_id)
    return StreamingResponse(_verified(stream, size, sha256, snapshot_id), media_type="application/octet-stream",
                             headers={"Content-Length": str(size)})


def _verified(stream: BinaryIO, size: int, sha256: str, snapshot_id: str) -> Iterator[bytes]:
    """The object's bytes, hashed as they go; the last block is held back until the hash is known, so a
    content changed in the store (same length, other bytes) never reaches the client whole: the response
    is cut instead."""
    digest = hashlib.sha256()
    held = b""
    for block in _iterate(stream, size):
        digest.update(block)
        if held:
            yield held
        held = block
    if digest.hexdigest() != sha256:
        _log.error("snapshot %s: object %s has sha256 %s in the store: changed outside runlab, not sent",
                   snapshot_id, sha256, digest.hexdigest())
        raise StoreError(f"snapshot object {sha256} of snapshot {snapshot_id} is damaged in the store: not sent")
    if held:
        yield held


# -- the workspace's own datastores ------------------------------------------------------------------


def _served_store(state: StudioState, name: str) -> ObjectStore:
    """The server's object store of datastore ``name``: only the workspace's own (``workspaceblob``) ones
    are served; a client opens S3 and local datastores itself."""
    from runlab.store import datastores as stores

    record = stores.get_datastore(state.store, name)
    if record.kind != stores.WORKSPACE_BLOB:
        raise UserError(f"datastore {name!r} has kind {record.kind!r}: the server serves only the workspace's own "
                        f"datastores (kind {stores.WORKSPACE_BLOB!r}); clients open {record.kind} datastores "
                        "themselves (an S3 bucket directly, a local datastore's folder on their own machine)",
                        name=name)
    return stores.open_object_store(record, state.folder.datastores_dir)


def _check_datastore_read(request: Request, name: str) -> frozenset[str] | None:
    """None when the caller may read every object of datastore ``name``; for a run's own token, the
    paths of that datastore its inputs stand for (the only ones it may read)."""
    caller = current_principal(request)
    if caller.can_read:
        return None
    if caller.role != "run" or caller.run_id is None:
        raise _forbidden(f"a token with role {caller.role!r} cannot read datastore {name!r}")
    return _input_paths(get_state(request), caller.run_id).get(name, frozenset())


_INPUT_PATHS_TTL_S = 30.0
_input_paths_cache: dict[tuple[int, str], tuple[float, dict[str, frozenset[str]]]] = {}


def _input_paths(state: StudioState, run_id: str) -> dict[str, frozenset[str]]:
    """Datastore name -> the paths run ``run_id``'s dataset inputs stand for (kept 30 s: a run reads many
    files, and a definition's files are resolved by listing its datastores)."""
    import time

    from runlab.store.datastores import datastore_opener
    from runlab.store.inputs import InputSpec, input_files

    key = (id(state), run_id)
    now = time.monotonic()
    hit = _input_paths_cache.get(key)
    if hit is not None and now - hit[0] < _INPUT_PATHS_TTL_S:
        return hit[1]
    record = state.store.get_run(run_id)
    opener = datastore_opener(state.store, state.folder.datastores_dir)
    paths: dict[str, set[str]] = {}
    for item in (record.definition or {}).get("inputDatasets") or []:
        for file in input_files(InputSpec.from_dict(item), state.store, opener):
            if file.datastore is not None:
                paths.setdefault(file.datastore, set()).add(file.path)
    found = {name: frozenset(p) for name, p in paths.items()}
    if len(_input_paths_cache) > 1000:
        _input_paths_cache.clear()
    _input_paths_cache[key] = (now, found)
    return found


def _check_input_path(allowed: frozenset[str] | None, name: str, rel: str, run_id: str | None) -> None:
    if allowed is not None and rel not in allowed:
        raise _forbidden(f"the token of run {run_id} reads only the files of the run's dataset inputs, and "
                         f"{rel!r} of datastore {name!r} is not one: pass the dataset to the run as an input "
                         "(ScriptRunConfig(arguments=[dataset.as_named_input('data').as_mount()]))")


async def _spool_hashed(request: Request) -> tuple[BinaryIO, int, str]:
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    digest = hashlib.sha256()
    size = 0
    try:
        async for chunk in request.stream():
            digest.update(chunk)
            size += len(chunk)
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool, size, digest.hexdigest()  # type: ignore[return-value]


@router.get("/remote/datastores/{name}")
def datastore_info(name: str, request: Request) -> JSONResponse:
    _check_datastore_read(request, name)
    objects = _served_store(get_state(request), name)
    objects.check()
    return JSONResponse({"name": name, "kind": objects.kind, "description": objects.description})


@router.get("/remote/datastores/{name}/objects")
def list_datastore_objects(name: str, request: Request, prefix: str = "") -> JSONResponse:
    allowed = _check_datastore_read(request, name)
    objects = _served_store(get_state(request), name)
    found = objects.list(check_prefix(prefix, objects.description))
    return JSONResponse([info_to_json(info) for info in found if allowed is None or info.name in allowed])


@router.get("/remote/datastores/{name}/stat/{obj:anypath}")
def stat_datastore_object(name: str, obj: str, request: Request) -> JSONResponse:
    allowed = _check_datastore_read(request, name)
    objects = _served_store(get_state(request), name)
    rel = check_object_name(obj, objects.description)
    if allowed is not None and rel not in allowed and any(path.startswith(rel + "/") for path in allowed):
        from runlab.core.errors import ObjectNotFoundError

        # a folder of the run's input files (a dataset of a folder, resolved where the run runs: it asks
        # whether the path is a file before it lists it): no object, as for any token
        raise ObjectNotFoundError(f"{rel!r} of datastore {name!r} is no object", name=rel)
    _check_input_path(allowed, name, rel, current_principal(request).run_id)
    return JSONResponse(info_to_json(objects.stat(rel)))


@router.get("/remote/datastores/{name}/objects/{obj:anypath}")
def get_datastore_object(name: str, obj: str, request: Request) -> Response:
    allowed = _check_datastore_read(request, name)
    objects = _served_store(get_state(request), name)
    rel = check_object_name(obj, objects.description)
    _check_input_path(allowed, name, rel, current_principal(request).run_id)
    info = objects.stat(rel)
    stream = objects.open(rel)
    try:
        size = os.fstat(stream.fileno()).st_size
    except (OSError, AttributeError, io.UnsupportedOperation):
        size = info.size
    headers = {"Content-Length": str(size)}
    if size == info.size and info.etag:
        headers["ETag"] = f'"{info.etag}"'
    return StreamingResponse(_iterate(stream, size), media_type="application/octet-stream", headers=headers)


@router.put("/remote/datastores/{name}/objects/{obj:anypath}")
async def put_datastore_object(name: str, obj: str, request: Request) -> JSONResponse:
    """Store the body as object ``obj``, once its length and sha256 (``X-Content-SHA256``) are checked."""
    _require_writer(request, f"writing to datastore {name!r}")
    state = get_state(request)
    objects = await run_in_threadpool(_served_store, state, name)
    rel = check_object_name(obj, objects.description)
    expected = request.headers.get(SHA256_HEADER)
    if expected is not None:
        _sha(expected)
    spool, size, sha256 = await _spool_hashed(request)
    try:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) != size:
            raise UserError(f"{rel!r}: {size} bytes arrived of the {length} announced: nothing stored")
        if expected is not None and expected != sha256:
            raise UserError(f"the bytes sent for {rel!r} have sha256 {sha256}, not {expected}: nothing stored")
        info = await run_in_threadpool(objects.put_stream, rel, spool)
    finally:
        spool.close()
    return JSONResponse(info_to_json(info))


@router.delete("/remote/datastores/{name}/objects/{obj:anypath}")
def delete_datastore_object(name: str, obj: str, request: Request) -> Response:
    _require_writer(request, f"deleting from datastore {name!r}")
    objects = _served_store(get_state(request), name)
    objects.delete(check_object_name(obj, objects.description))
    return Response(status_code=204)


# -- registered models' files -------------------------------------------------------------------------

_MODEL_FILE_METHODS = ("register_model", "delete_model")


def _model_file_method(state: StudioState, method: str) -> Any:
    """``register_model`` checks that the contents named are there and records under the model files' lock;
    ``delete_model`` removes the contents no version holds any more under it (both in store.models)."""
    from runlab.store import models

    if method == "register_model":
        return lambda *args, **kwargs: models.record_model(state.folder, *args, **kwargs)
    return lambda *args, **kwargs: models.delete_version(state.folder, *args, **kwargs)


def _open_model_blob(state: StudioState, sha256: str) -> tuple[Any, int]:
    from runlab.store.models import model_blobs

    return model_blobs(state.folder).open(_sha(sha256))


@router.api_route("/remote/models/blobs/{sha256}", methods=["GET", "HEAD"])
def get_model_blob(sha256: str, request: Request) -> Response:
    """A registered model's content (readers, and a run's own token: a run downloads the models it asks for)."""
    caller = current_principal(request)
    if not (caller.can_read or caller.role == "run"):
        raise _forbidden(f"a token with role {caller.role!r} cannot read model files")
    try:
        stream, size = _open_model_blob(get_state(request), sha256)
    except FileNotFoundError:
        raise NotFoundError(f"the server holds no model content {sha256}") from None
    except OSError as exc:
        raise StoreError(f"model content {sha256} cannot be read: {exc.strerror or exc}") from exc
    if request.method == "HEAD":
        stream.close()
        return Response(headers={"Content-Length": str(size)})
    return StreamingResponse(_iterate(stream, size), media_type="application/octet-stream",
                             headers={"Content-Length": str(size)})


@router.put("/remote/models/blobs/{sha256}")
async def put_model_blob(sha256: str, request: Request) -> JSONResponse:
    """Store the body as content ``sha256`` once its length and sha256 are checked (writers, and a run's own
    token: a training script registers the model it wrote with Model.register)."""
    caller = current_principal(request)
    if not (caller.can_write or caller.role == "run"):
        _require_writer(request, "sending model files")
    state = get_state(request)
    expected = _sha(sha256)
    spool, size, digest = await _spool_hashed(request)
    try:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) != size:
            raise UserError(f"model content {expected}: {size} bytes arrived of the {length} announced: nothing stored")
        if digest != expected:
            raise UserError(f"the bytes sent for model content {expected} have sha256 {digest}: nothing stored")
        fd = spool.fileno()  # on disk from here (a spool in memory is written out)
        stored, stored_size, new = await run_in_threadpool(_put_model_blob, state, fd, size)
    finally:
        spool.close()
    if stored != expected:
        raise StoreError(f"model content {expected} was stored as {stored}")
    return JSONResponse({"sha256": stored, "size": stored_size, "new": new})


def _put_model_blob(state: StudioState, fd: int, size: int) -> tuple[str, int, bool]:
    from runlab.store.blobs import Changed
    from runlab.store.models import model_blobs

    try:
        return model_blobs(state.folder).put_fd(fd, size)
    except Changed:
        raise StoreError("a model content changed while the server stored it") from None


@router.post("/remote/models/blobs/from-run")
async def model_blobs_from_run(request: Request) -> JSONResponse:
    """``{"run_id": ..., "names": [...]}``: store run files of this server as model contents (nothing goes
    through the client); writers, and a run's own token for its own run (to register its model)."""
    state = get_state(request)
    payload = json.loads(await _body(request, MAX_RPC_BODY) or b"{}")
    run_id = payload.get("run_id") if isinstance(payload, dict) else None
    names = payload.get("names") if isinstance(payload, dict) else None
    if not isinstance(run_id, str) or not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UserError('the body is {"run_id": "...", "names": ["outputs/model.pt", ...]}')
    run_id = check_run_id(run_id)
    caller = current_principal(request)
    if not (caller.can_write or (caller.role == "run" and caller.run_id == run_id)):
        if caller.can_read:
            raise _forbidden(f"{caller.describe()} is a read-only token: registering a model needs a writer token")
        raise _forbidden(f"{caller.describe()} registers models only of its own run, not of run {run_id}")
    checked = [check_file_name(n) for n in names]
    from runlab.store.models import copy_run_files

    stored = await run_in_threadpool(copy_run_files, state.folder, run_id, checked)
    return JSONResponse({"files": [{"name": f.path, "size": f.size, "sha256": f.sha256, "source_etag": f.source_etag}
                                   for f in stored.files],
                         "new_files": stored.new_files, "new_bytes": stored.new_bytes})


# -- submitted runs -----------------------------------------------------------------------------------


@router.post("/remote/targets/{target}/agent")
def start_agent(target: str, request: Request) -> JSONResponse:
    """A client queued a run on ``target``: start the target's agent beside this server unless one runs."""
    _require_writer(request, "submitting a run")
    state = get_state(request)
    from runlab.execution.targets import TargetSettings, ensure_agent

    TargetSettings.load(state.folder, target)  # ComputeTargetException (404) for an unknown target
    return JSONResponse({"target": target, "agent_started": ensure_agent(state.folder, target)})


@router.post("/remote/runs/{run_id}/token")
def issue_token(run_id: str, request: Request) -> JSONResponse:
    """An agent starts run ``run_id``: a token that can write only that run, for its script."""
    _require_writer(request, "starting a run")
    state = get_state(request)
    record = state.store.get_run(check_run_id(run_id))
    if record.status.is_terminal:
        raise UserError(f"run {record.run_id} has ended ({record.status}): it gets no token")
    from runlab.store.sql.tokens import issue_run_token

    return JSONResponse({"token": issue_run_token(state.store.engine, record.run_id, None)})


@router.delete("/remote/runs/{run_id}/token")
def revoke_token(run_id: str, request: Request) -> Response:
    """Run ``run_id`` ended: its own tokens stop working."""
    _require_writer(request, "ending a run")
    from runlab.store.sql.tokens import revoke_run_tokens

    revoke_run_tokens(get_state(request).store.engine, check_run_id(run_id))
    return Response(status_code=204)


@router.get("/remote/workspace")
def workspace(request: Request) -> JSONResponse:
    """Who this server is: any valid token may ask (a run's own token too)."""
    folder = get_state(request).folder
    return JSONResponse({"name": folder.name, "id": folder.workspace_id})
