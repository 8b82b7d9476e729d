"""The workspace's datastores and datasets as the studio shows them, from the store's records to the
API's response models: datastores with what they hold now, a datastore's folders a page at a time,
dataset versions with their definitions, files and the runs that used them, a tabular version's
first rows, and a run's inputs.

A datastore's files are listed from its storage (a folder, or an S3 bucket: ``open_object_store``)
and joined with the upload index for their sha256. One listing of a folder is kept for
:data:`LISTING_TTL_S` seconds, so paging through 100,000 files lists them once; a registered dataset
version never changes, so its file list is kept while it is among the last few read. Storage that
cannot be reached (an S3 endpoint that does not answer) is reported on the datastore, not raised.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
import time
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any, Callable, Generic, Hashable, Mapping, Sequence, TypeVar
from urllib.parse import quote

from runlab.core.assets import DatasetFile, DatasetRecord, DatastoreRecord
from runlab.core.errors import DatastoreNotFoundError, RunlabError
from runlab.core.names import check_datastore_name, check_id
from runlab.server import models
from runlab.server.state import StudioState
from runlab.store import datasets as d
from runlab.store import datastores as stores
from runlab.store.objects import ObjectInfo, ObjectStore, check_prefix

TYPES = {stores.WORKSPACE_BLOB: "blob", stores.LOCAL: "local", stores.S3: "s3"}
LISTING_TTL_S = 10.0  # how long one listing of a datastore folder answers for (pages, the summary)
MAX_RUNS = 500  # runs listed for one dataset version (newest first; runs_total counts them all)
PREVIEW_MAX_ROWS = 100
PREVIEW_MAX_BYTES = 64 << 20  # a preview that must read every row (a random split first) reads at most this
DATASET_EXAMPLE = "'cifar10'"

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Cache(Generic[K, V]):
    """A small thread-safe cache: the last ``size`` values, each for ``ttl_s`` seconds (None: for ever)."""

    def __init__(self, size: int, ttl_s: float | None) -> None:
        self.size = size
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K, load: Callable[[], V]) -> V:
        now = time.monotonic()
        with self._lock:
            found = self._items.get(key)
            if found is not None and (self.ttl_s is None or now - found[0] < self.ttl_s):
                self._items.move_to_end(key)
                return found[1]
        value = load()  # outside the lock: a slow listing does not hold up other datastores
        with self._lock:
            self._items[key] = (now, value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class _Folder:
    """One folder of a datastore, listed: its subfolders (with their totals), then its files. Response
    models are made only for the page asked for (a folder may hold 100,000 files)."""

    def __init__(self, prefix: str, infos: Sequence[ObjectInfo]) -> None:
        self.prefix = prefix
        self.file_count = len(infos)
        self.total_size = sum(i.size for i in infos)
        folders: dict[str, list[Any]] = {}
        files: list[ObjectInfo] = []
        start = len(prefix)
        for info in infos:
            slash = info.name.find("/", start)
            if slash < 0:
                files.append(info)
                continue
            entry = folders.get(info.name[start:slash])
            if entry is None:
                entry = folders[info.name[start:slash]] = [0, 0, None]
            entry[0] += 1
            entry[1] += info.size
            if info.modified_at is not None and (entry[2] is None or info.modified_at > entry[2]):
                entry[2] = info.modified_at
        self._folders = sorted(folders.items())
        self._files = sorted(files, key=lambda i: i.name)  # listings come sorted: this costs little
        self.total = len(self._folders) + len(self._files)

    def page(self, offset: int, limit: int) -> list[models.DatastoreEntry]:
        end = offset + limit
        out = [
            models.DatastoreEntry(kind="folder", name=name, path=f"{self.prefix}{name}/", size=size, file_count=count,
                                  sha256=None, modified_at=modified)
            for name, (count, size, modified) in self._folders[offset:end]
        ]
        skip = max(0, offset - len(self._folders))
        out += [
            models.DatastoreEntry(kind="file", name=info.name[len(self.prefix):], path=info.name, size=info.size,
                                  file_count=1, sha256=info.sha256, modified_at=info.modified_at)
            for info in self._files[skip:skip + limit - len(out)]
        ]
        return out


_LISTINGS: _Cache[tuple[str, ...], _Folder] = _Cache(32, LISTING_TTL_S)
_DATASET_FILES: _Cache[tuple[str, str], list[DatasetFile]] = _Cache(8, None)


def clear_caches() -> None:
    """Forget every listing and file list kept (tests; a listing otherwise answers for a few seconds)."""
    _LISTINGS.clear()
    _DATASET_FILES.clear()


# -- datastores ------------------------------------------------------------------------------------


def _workspace_blobstore() -> DatastoreRecord:
    """``workspaceblobstore`` before its first use registers it: every workspace has it."""
    return DatastoreRecord(name=stores.DEFAULT_DATASTORE, kind=stores.WORKSPACE_BLOB, config={}, created_at=math.nan)


def datastore_record(state: StudioState, name: str) -> DatastoreRecord:
    """Datastore ``name``: ``InvalidNameError`` for a name no datastore can have, ``DatastoreNotFoundError``
    naming those there are. Registers nothing (a GET writes nothing)."""
    check_datastore_name(name)
    try:
        return state.store.get_datastore(name)
    except DatastoreNotFoundError:
        if name == stores.DEFAULT_DATASTORE:
            return _workspace_blobstore()
        raise


def datastore_records(state: StudioState) -> list[DatastoreRecord]:
    records = state.store.list_datastores()
    if not any(r.name == stores.DEFAULT_DATASTORE for r in records):
        records.append(_workspace_blobstore())
    return sorted(records, key=lambda r: r.name)


def _objects(state: StudioState, record: DatastoreRecord) -> ObjectStore:
    return stores.open_object_store(record, state.folder.datastores_dir)


def _listing(state: StudioState, record: DatastoreRecord, objects: ObjectStore, prefix: str) -> _Folder:
    """Folder ``prefix`` ("" or ending with /) of the datastore, listed at most every few seconds."""
    key = (str(state.folder.path), record.name, record.kind, json.dumps(dict(record.config), sort_keys=True), prefix)

    def load() -> _Folder:
        if objects.kind == stores.S3:
            objects.check()  # one try: an endpoint that does not answer is reported at once, not after retries
        return _Folder(prefix, stores.file_infos(objects, state.store, record.name, prefix))

    return _LISTINGS.get(key, load)


def _where(record: DatastoreRecord, objects: ObjectStore | None) -> tuple[str | None, str | None, str | None]:
    """(path, endpoint, region) of a datastore: its folder, or s3://bucket/prefix."""
    config: Mapping[str, Any] = record.config
    if record.kind == stores.S3:
        prefix = str(config.get("prefix") or "").strip("/")
        path = f"s3://{config.get('bucket')}/{prefix}".rstrip("/")
        endpoint = config.get("endpoint_url")
        region = config.get("region")
        return path, str(endpoint) if endpoint else None, str(region) if region else None
    root = getattr(objects, "root", None)
    return (str(root) if root is not None else str(config.get("path") or "")) or None, None, None


def datastore_info(state: StudioState, record: DatastoreRecord, *, default: str | None = None) -> models.DatastoreInfo:
    """A datastore with its type, where its files are, and how many files and bytes it holds now
    (``available=False`` with the reason when its storage cannot be reached or listed)."""
    if default is None:
        default = stores.default_datastore_name(state.store)
    objects: ObjectStore | None = None
    error: str | None = None
    folder: _Folder | None = None
    try:
        objects = _objects(state, record)
        folder = _listing(state, record, objects, "")
    except RunlabError as exc:
        error = exc.message
    path, endpoint, region = _where(record, objects)
    return models.DatastoreInfo(
        name=record.name, type=TYPES.get(record.kind, record.kind), path=path, endpoint=endpoint, region=region,
        location=objects.description if objects is not None else (path or ""), is_default=record.name == default,
        created_at=None if math.isnan(record.created_at) else record.created_at,
        file_count=folder.file_count if folder is not None else None,
        total_size=folder.total_size if folder is not None else None,
        available=error is None, error=error,
    )


def datastore_infos(state: StudioState) -> list[models.DatastoreInfo]:
    default = stores.default_datastore_name(state.store)
    return [datastore_info(state, r, default=default) for r in datastore_records(state)]


def browse_datastore(state: StudioState, name: str, prefix: str, offset: int, limit: int) -> models.DatastoreListing:
    """A page of the folders, then the files, directly in folder ``prefix`` of datastore ``name``.

    Raises ``InvalidNameError`` for a prefix with ``..``, a leading ``/`` or a NUL, and what listing
    the storage raises (``StoreUnavailableError`` for an S3 endpoint that does not answer).
    """
    record = datastore_record(state, name)
    objects = _objects(state, record)
    folder_prefix = check_prefix(prefix, f"datastore {name!r}")
    if folder_prefix and not folder_prefix.endswith("/"):
        folder_prefix += "/"
    folder = _listing(state, record, objects, folder_prefix)
    parent = None
    if folder_prefix:
        above = folder_prefix.rstrip("/").rpartition("/")[0]
        parent = f"{above}/" if above else ""
    return models.DatastoreListing(
        datastore=record.name, prefix=folder_prefix, parent=parent, total=folder.total, offset=offset,
        limit=limit, file_count=folder.file_count, total_size=folder.total_size,
        entries=folder.page(offset, limit),
    )


# -- datasets --------------------------------------------------------------------------------------


def check_dataset_name(name: str) -> str:
    return check_id(name, "dataset name", DATASET_EXAMPLE)


def dataset_info(record: DatasetRecord, run_count: int | None = None) -> models.DatasetInfo:
    return models.DatasetInfo(
        name=record.name, version=record.version, type=record.kind, id=record.dataset_id,
        created_at=record.created_at, description=record.description, tags=dict(record.tags),
        file_count=record.file_count, total_size=record.total_size, data_changed_at=record.data_changed_at,
        run_count=run_count,
    )


def dataset_infos(state: StudioState) -> list[models.DatasetInfo]:
    """The latest version of every registered dataset, by name."""
    return [dataset_info(r) for r in state.store.list_datasets()]


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [dict(v) for v in value if isinstance(v, Mapping)] if isinstance(value, (list, tuple)) else []


def dataset_details(state: StudioState, name: str, version: int | None) -> models.DatasetDetails:
    """Version ``version`` (None: the latest) of dataset ``name``: its definition, every version of
    the dataset, and the runs that used this one."""
    record = state.store.get_dataset(check_dataset_name(name), version)
    versions = sorted((r for r in state.store.list_datasets(all_versions=True) if r.name == record.name),
                      key=lambda r: -r.version)
    uses = state.store.list_dataset_runs(record.name)
    counts = Counter(u.dataset_version for u in uses)
    mine = [u for u in uses if u.dataset_version == record.version]
    runs = {r.run_id: r for r in state.queries.run_records(list(dict.fromkeys(u.run_id for u in mine[:MAX_RUNS])))}
    definition = dict(record.definition)
    reader = definition.get("reader")
    return models.DatasetDetails(
        **dataset_info(record, counts.get(record.version, 0)).model_dump(),
        definition=definition,
        sources=[models.DatasetSource(datastore=s.get("datastore"), path=str(s.get("path", "")))
                 for s in _dicts(definition.get("sources"))],
        reader=dict(reader) if isinstance(reader, Mapping) else None,
        steps=_dicts(definition.get("steps")),
        versions=[dataset_info(r, counts.get(r.version, 0)) for r in versions],
        runs=[models.DatasetRun(
            run_id=u.run_id, input_name=u.name, mode=u.mode, version=u.dataset_version,
            display_name=runs[u.run_id].display_name if u.run_id in runs else None,
            experiment=runs[u.run_id].experiment_name if u.run_id in runs else None,
            status=str(runs[u.run_id].status) if u.run_id in runs else None,
            created_at=runs[u.run_id].created_at if u.run_id in runs else None,
        ) for u in mine[:MAX_RUNS]],
        runs_total=len(mine),
    )


def _version_files(state: StudioState, record: DatasetRecord) -> list[DatasetFile]:
    """The files a version recorded (a version never changes: kept while among the last few read)."""
    key = (str(state.folder.path), record.dataset_id)
    return _DATASET_FILES.get(key, lambda: state.store.get_dataset_files(record.dataset_id))


def dataset_files(state: StudioState, name: str, version: int, offset: int, limit: int) -> models.DatasetFileList:
    """A page of the files of version ``version`` of dataset ``name``, in the dataset's order."""
    record = state.store.get_dataset(check_dataset_name(name), version)
    files = _version_files(state, record)
    return models.DatasetFileList(
        name=record.name, version=record.version, total=len(files), offset=offset, limit=limit,
        files=[models.DatasetFileInfo(name=f.name, datastore=f.datastore, path=f.path, size=f.size, sha256=f.sha256)
               for f in files[offset:offset + limit]],
    )


def _json_value(value: Any) -> Any:
    """A table cell as JSON: times as ISO text, bytes as text, NaN as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def dataset_preview(state: StudioState, name: str, version: int, rows: int) -> models.DatasetPreview:
    """The first ``rows`` rows of a tabular version, read only when cheap: its files are on this
    machine, unchanged since it was registered, and the rows wanted are bounded (else at most
    :data:`PREVIEW_MAX_BYTES` are read). Otherwise ``available=False`` with the reason."""
    from runlab.store.tables import apply_steps, read_table, rows_needed

    record = state.store.get_dataset(check_dataset_name(name), version)

    def unavailable(reason: str) -> models.DatasetPreview:
        return models.DatasetPreview(name=record.name, version=record.version, available=False, reason=reason)

    if record.kind != d.TABULAR:
        return unavailable("a file dataset has no rows to preview: its files are listed below")
    try:
        definition = d.DatasetDefinition.from_dict(record.definition)
    except RunlabError as exc:
        return unavailable(exc.message)
    if definition.reader is None:
        return unavailable("this version records no reader options")
    steps = (*definition.steps, d.Take(rows))
    needed = rows_needed(steps)
    if needed is None and record.total_size > PREVIEW_MAX_BYTES:
        return unavailable(f"its first rows depend on every row (a random split), and its files hold "
                           f"{record.total_size:,} bytes: read it with Dataset.get_by_name(ws, {record.name!r}).head(5)")
    opened: dict[str, ObjectStore] = {}

    def open_datastore(datastore: str) -> ObjectStore:
        if datastore not in opened:
            opened[datastore] = _objects(state, datastore_record(state, datastore))
        return opened[datastore]

    files = _version_files(state, record)
    try:
        paths: list[tuple[str, Path]] = []
        for file in files:
            path = d.local_path(file, open_datastore)
            if path is None:
                return unavailable("its files are not on this machine (an S3 datastore): the studio previews "
                                   "only files it can read without copying them")
            if d.current_size(file, open_datastore) != file.size:
                return unavailable(f"{d.describe_file(file)} changed since this version was registered")
            paths.append((d.describe_file(file), path))
        table = apply_steps(read_table(paths, definition.reader, row_limit=needed), steps)
    except RunlabError as exc:  # DatasetReadError (a malformed row), a datastore gone...
        return unavailable(exc.message)
    columns = [models.PreviewColumn(name=field.name, type=str(field.type)) for field in table.schema]
    values = [table.column(i).to_pylist() for i in range(table.num_columns)]
    cells = [[_json_value(column[row]) for column in values] for row in range(table.num_rows)]
    return models.DatasetPreview(name=record.name, version=record.version, available=True, columns=columns,
                                 rows=cells)


# -- a run's inputs --------------------------------------------------------------------------------


def dataset_url(name: str, version: int | None) -> str:
    url = f"/datasets/{quote(name, safe='')}"
    return f"{url}?version={version}" if version is not None else url


def run_inputs(state: StudioState, run_id: str) -> list[models.RunInput]:
    """The datasets run ``run_id`` consumed, by input name (``RunNotFoundError`` for an unknown run)."""
    return [
        models.RunInput(
            name=i.name, kind=i.kind, mode=i.mode, dataset_id=i.dataset_id, dataset_name=i.dataset_name,
            dataset_version=i.dataset_version, files_hash=i.files_hash, file_count=i.file_count,
            total_size=i.total_size,
            url=dataset_url(i.dataset_name, i.dataset_version) if i.dataset_name else None,
        )
        for i in state.store.get_run_inputs(run_id)
    ]
