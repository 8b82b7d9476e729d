"""Dataset: files and tables on a datastore or this machine, and their registered versions (Azure ML v1's).

::

    ds = ws.get_default_datastore()
    images = Dataset.File.from_files(path=(ds, "datasets/cifar10"))          # a folder, a file, a glob, a list
    weather = Dataset.Tabular.from_delimited_files([(ds, "weather/**/*.csv")])
    frame = weather.keep_columns(["city", "temp"]).take(1000).to_pandas_dataframe()
    weather = weather.register(ws, "weather", tags={"source": "noaa"})    # version 1: definition + files
    Dataset.get_by_name(ws, "weather", version=1)

A dataset is a :class:`~runlab.store.datasets.DatasetDefinition` (sources, reader options, steps);
``take``, ``skip``, ``keep_columns``... return new datasets with one more step, and nothing is read
until ``to_pandas_dataframe()``, ``download()``, ``mount()`` or ``register()``. Tables are read by
pyarrow (:mod:`runlab.store.tables`). A registered version is immutable: it records its definition
and its files (datastore, path, size, sha256); reading it reads exactly those files, and a file that
is not the size it was (or, when downloaded, the checksum) raises :class:`DatasetChangedError`.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import stat
import tempfile
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Mapping, Sequence, TypeVar

from runlab.core.assets import DatasetFile, DatasetRecord, DatastoreRecord
from runlab.core.errors import (
    DatasetChangedError,
    DatasetNotFoundError,
    DatasetPathError,
    UserError,
)
from runlab.core.names import check_id, shown, storable_text
from runlab.store import datasets as d
from runlab.store.copies import fetch_files, local_paths
from runlab.store.inputs import DIRECT, DOWNLOAD, INPUT_NAME, MODES, MOUNT, InputSpec, check_input_name
from runlab.store.objects import ObjectStore

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from runlab.sdk.datastore import Datastore
    from runlab.sdk.workspace import Workspace

CONVERTED_FOLDER = "datasets/converted"  # under $RUNLAB_HOME: to_csv_files() / to_parquet_files() output
_D = TypeVar("_D", bound="Dataset")

# What a path argument may be: (datastore, "relative/path"), a DataPath, a local path or glob, or a list.
PathArgument = Any


# -- column types --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnType:
    """A column type for ``set_column_types``: a pyarrow type name, and formats for timestamps."""

    alias: str
    formats: tuple[str, ...] = ()


class DataType:
    """Column types by Azure ML's names (``azureml.data.dataset_factory.DataType``)."""

    @staticmethod
    def to_string() -> ColumnType:
        return ColumnType("string")

    @staticmethod
    def to_long() -> ColumnType:
        return ColumnType("int64")

    @staticmethod
    def to_float() -> ColumnType:
        return ColumnType("float64")

    @staticmethod
    def to_bool() -> ColumnType:
        return ColumnType("bool")

    @staticmethod
    def to_datetime(formats: str | Sequence[str] | None = None) -> ColumnType:
        """A timestamp column; ``formats`` are strptime formats tried in order (default: ISO 8601)."""
        if isinstance(formats, str):
            formats = [formats]
        return ColumnType("timestamp[us]", tuple(formats or ()))


def _column_types(types: Mapping[str, Any] | None) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    if not types:
        return (), ()
    if not isinstance(types, Mapping):
        raise UserError(f"set_column_types is a dict of column name to type, got {shown(types)}: "
                        "for example {'age': DataType.to_long(), 'when': 'timestamp[s]'}")
    from runlab.store.tables import column_type

    pairs: list[tuple[str, str]] = []
    formats: list[str] = []
    for column, kind in types.items():
        if not isinstance(column, str):
            raise UserError(f"set_column_types: column names are str, got {shown(column)}")
        if isinstance(kind, ColumnType):
            formats.extend(f for f in kind.formats if f not in formats)
            kind = kind.alias
        alias = str(column_type(kind, column))  # checks the name; the canonical name is stored
        pairs.append((column, alias))
    return tuple(pairs), tuple(formats)


# -- sources -------------------------------------------------------------------------------------------


def _sources(path: PathArgument) -> tuple[tuple[d.DataSource, ...], "Workspace | None"]:
    """The sources of a path argument, and the workspace of their datastores (None for local paths)."""
    items = path if isinstance(path, list) else [path]
    if not items:
        raise DatasetPathError("a dataset needs at least one path: a (datastore, 'path') tuple, a DataPath, "
                               "a local path or a glob", path=path)
    sources: list[d.DataSource] = []
    workspace: Workspace | None = None
    for item in items:
        source, item_workspace = _source(item)
        if item_workspace is not None:
            if workspace is not None and item_workspace != workspace:
                raise UserError("the paths of one dataset are on datastores of two workspaces "
                                f"({workspace.name} and {item_workspace.name}): use one workspace")
            workspace = item_workspace
        sources.append(source)
    return tuple(sources), workspace


def _source(item: Any) -> tuple[d.DataSource, "Workspace | None"]:
    on_datastore = _on_datastore(item)
    if on_datastore is not None:
        store, rel = on_datastore
        return d.DataSource.on_datastore(store.name, rel), store.workspace
    if isinstance(item, (str, os.PathLike)):
        text = os.fspath(item)
        if "://" in text:
            raise DatasetPathError(f"{shown(text)} is a URL; runlab reads datastores and local paths: register "
                                   "the bucket with Datastore.register_s3 and pass (datastore, 'path')", path=text)
        return d.DataSource.local(text), None
    raise DatasetPathError(f"cannot make a dataset path of {type(item).__name__} {shown(item)}: pass "
                           "(datastore, 'relative/path'), datastore.path('relative/path'), or a local path",
                           path=item)


def _on_datastore(item: Any) -> "tuple[Datastore, str] | None":
    """(datastore, path) of ``(datastore, 'path')`` or a DataPath; None for anything else."""
    from runlab.sdk.datastore import DataPath, Datastore

    if isinstance(item, DataPath):
        if item.datastore is None:
            raise DatasetPathError(f"{item!r} has no datastore: make it with datastore.path('...')", path=str(item))
        return item.datastore, item.path_on_datastore
    if not isinstance(item, tuple):
        return None
    if len(item) != 2 or not isinstance(item[0], Datastore) or not isinstance(item[1], str):
        raise DatasetPathError(f"a datastore path is a tuple (datastore, 'relative/path') with a Datastore "
                               f"(ws.get_default_datastore(), Datastore.get(ws, name)), got {shown(item)}", path=item)
    return item[0], item[1]


def _opener(workspace: "Workspace | None") -> d.OpenDatastore | None:
    """Datastore name -> its object store in ``workspace``, each opened once."""
    if workspace is None:
        return None
    opened: dict[str, ObjectStore] = {}

    def open_datastore(name: str) -> ObjectStore:
        if name not in opened:
            opened[name] = _object_store(workspace, name)
        return opened[name]

    return open_datastore


def _object_store(workspace: "Workspace", name: str) -> ObjectStore:
    """Datastore ``name``'s object store (``DatastoreNotFoundError``, listing those there are, when absent)."""
    from runlab.store.datastores import DEFAULT_DATASTORE, ensure_workspace_blobstore

    store = workspace.folder.store
    record = ensure_workspace_blobstore(store) if name == DEFAULT_DATASTORE else store.get_datastore(name)
    config = json.dumps(dict(record.config), sort_keys=True)
    where = workspace.folder.datastores_dir  # a folder, or the server's datastores (hashable: same server, same key)
    return _opened_store(record.name, record.kind, config, Path(where) if isinstance(where, (str, Path)) else where)


@functools.lru_cache(maxsize=64)
def _opened_store(name: str, kind: str, config: str, datastores_dir: Any) -> ObjectStore:
    """One object store per datastore as registered (an S3 client takes a while to make)."""
    from runlab.store.datastores import open_object_store

    return open_object_store(DatastoreRecord(name, kind, json.loads(config), 0.0), datastores_dir)


# -- the facade ----------------------------------------------------------------------------------------


class Dataset:
    """A file or tabular dataset. Make one with ``Dataset.File.from_files(...)`` or
    ``Dataset.Tabular.from_delimited_files(...)``; get a registered one with ``Dataset.get_by_name``."""

    File: ClassVar[type["FileDatasetFactory"]]
    Tabular: ClassVar[type["TabularDatasetFactory"]]

    def __init__(
        self,
        definition: d.DatasetDefinition,
        *,
        workspace: "Workspace | None" = None,
        registration: DatasetRecord | None = None,
        pinned: "PinnedFiles | None" = None,
        pinned_steps: int = 0,
        derived_from: DatasetRecord | None = None,
    ) -> None:
        self._definition = definition
        self._workspace = workspace
        self._registration = registration
        # the registered version whose files this dataset reads (itself, or the one it was derived from)
        self._origin = registration or derived_from
        # a registered version's files (and how many of the definition's steps they already reflect)
        self._pinned = pinned
        self._pinned_steps = pinned_steps

    # -- what it is ------------------------------------------------------------------------------------

    @property
    def definition(self) -> d.DatasetDefinition:
        return self._definition

    @property
    def workspace(self) -> "Workspace | None":
        return self._workspace

    @property
    def name(self) -> str | None:
        return self._registration.name if self._registration is not None else None

    @property
    def version(self) -> int | None:
        return self._registration.version if self._registration is not None else None

    @property
    def id(self) -> str | None:
        return self._registration.dataset_id if self._registration is not None else None

    @property
    def description(self) -> str | None:
        return self._registration.description if self._registration is not None else None

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._registration.tags) if self._registration is not None else {}

    @property
    def data_changed_time(self) -> datetime | None:
        """When the newest of the registered files last changed (None before registration)."""
        if self._registration is None or self._registration.data_changed_at is None:
            return None
        return datetime.fromtimestamp(self._registration.data_changed_at, tz=timezone.utc)

    @property
    def is_registered(self) -> bool:
        return self._registration is not None

    @property
    def registration(self) -> DatasetRecord | None:
        """The registered version's record (name, version, id, file count, total size...), or None."""
        return self._registration

    def __repr__(self) -> str:
        kind = type(self).__name__
        sources = ", ".join(s.describe() for s in self._definition.sources)
        steps = "".join(f".{s.op}(...)" for s in self._definition.steps)
        if self._registration is not None:
            return f"{kind}(name={self.name!r}, version={self.version}, id={self.id!r}, sources=[{sources}]){steps}"
        return f"{kind}(sources=[{sources}]){steps}"

    # -- files -----------------------------------------------------------------------------------------

    def _open_datastore(self) -> d.OpenDatastore | None:
        return _opener(self._workspace)

    def _files(self, *, checksums: bool = False, opener: d.OpenDatastore | None = None) -> list[DatasetFile]:
        """The files this dataset reads now: a registered version's recorded files, else the definition
        resolved (for a file dataset, after its steps)."""
        opener = opener if opener is not None else self._open_datastore()
        if self._pinned is None:
            return d.resolve_files(self._definition, opener, checksums=checksums)
        files = self._pinned.files()
        if self._definition.kind == d.FILE:
            files = d.apply_file_steps(files, self._definition.steps[self._pinned_steps:])
        return files

    def _check_unchanged(self, files: Sequence[DatasetFile], opener: d.OpenDatastore | None) -> None:
        """For a registered version: each file is still the size it was (a cheap check; download() also
        compares checksums)."""
        if self._pinned is None or self._origin is None:
            return
        name, version = self._origin.name, self._origin.version
        for file in files:
            size = d.current_size(file, opener)
            if size != file.size:
                now = "it is gone" if size is None else f"it has {size:,} bytes now"
                raise DatasetChangedError(
                    f"{d.describe_file(file)} of dataset {name!r} version {version} changed since it was "
                    f"registered ({file.size:,} bytes recorded, {now}): register the data as it is now with "
                    f"Dataset.get_by_name(ws, {name!r}).register(ws, {name!r}, create_new_version=True)",
                    path=file.path, dataset=name, version=version)

    def download_files(self, target_path: str | os.PathLike[str], overwrite: bool = False) -> list[Path]:
        """Copy the dataset's files (a tabular dataset's: the files it reads) under ``target_path``, keeping
        their names; a registered version's are checked against their recorded sha256."""
        return self._download_to(Path(target_path).expanduser().resolve(), overwrite=overwrite)

    def _download_to(self, root: Path, *, overwrite: bool, read_only: bool = False) -> list[Path]:
        opener = self._open_datastore()
        files = self._files(opener=opener)
        # a registered version's files are checked while they are copied (size and sha256), not before
        return fetch_files(files, opener, root, overwrite=overwrite, verify=self._pinned is not None, read_only=read_only)

    def _derive(self: _D, step: d.Step) -> _D:
        return type(self)(self._definition.with_step(step), workspace=self._workspace, pinned=self._pinned,
                          derived_from=self._origin,
                          pinned_steps=self._pinned_steps)

    def _random_split(self: _D, percentage: float, seed: int | None) -> tuple[_D, _D]:
        if seed is None:
            seed = int.from_bytes(os.urandom(4), "little")  # recorded in both halves, so they stay complementary
        first = d.make_random_split(percentage, seed, 0)
        return self._derive(first), self._derive(replace(first, part=1))

    # -- registration ------------------------------------------------------------------------------------

    def register(
        self: _D,
        workspace: "Workspace",
        name: str,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        create_new_version: bool = False,
    ) -> _D:
        """Register this dataset under ``name``: a new version records the definition and its files now
        (datastore, path, size, sha256). The same definition and files as the latest version return that
        version; anything else needs ``create_new_version=True`` (else :class:`DatasetConflictError`)."""
        check_id(name, "dataset name", "'cifar10' or 'weather-2024'")
        if self._workspace is not None and self._workspace != workspace:
            raise UserError(f"this dataset's datastores are in workspace {self._workspace.name}; register it there, "
                            f"not in {workspace.name}")
        clean_tags = _check_tags(tags)
        if description is not None and (not isinstance(description, str) or not storable_text(description)):
            raise UserError(f"a dataset description is text without NUL characters, got {shown(description)}")
        # validate: a version records files, and a path that matches none is a mistake
        files = d.resolve_files(self._definition, _opener(workspace), checksums=True, validate=True,
                                known=workspace.folder.store.get_datastore_files)
        if not files:
            raise DatasetPathError(f"{self!r} holds no file after its steps: there is nothing to register", path=[])
        changed = [f.modified_at for f in files if f.modified_at is not None]
        record = workspace.folder.store.register_dataset(
            name, kind=self._definition.kind, definition=self._definition.to_dict(), files=files,
            files_hash=d.files_hash(files), description=description or "", tags=clean_tags,
            data_changed_at=max(changed) if changed else None, create_new_version=create_new_version,
        )
        return from_record(workspace, record, type(self))  # type: ignore[return-value]

    @staticmethod
    def get_by_name(workspace: "Workspace", name: str, version: int | str = "latest") -> "Dataset":
        """Registered dataset ``name``, at ``version`` (an int, or 'latest')."""
        check_id(name, "dataset name", "'cifar10'")
        number: int | None
        if version == "latest" or version is None:
            number = None
        else:
            try:
                number = int(version)
            except (TypeError, ValueError):
                raise UserError(f"a dataset version is a number or 'latest', got {shown(version)}") from None
        record = workspace.folder.store.get_dataset(name, number)
        return from_record(workspace, record)

    @staticmethod
    def get_by_id(workspace: "Workspace", id: str) -> "Dataset":
        """The registered dataset version with this id (``dataset.id``)."""
        if not isinstance(id, str) or not id or len(id) > 64:
            raise DatasetNotFoundError(f"no dataset has id {shown(id)}: ids look like {uuid.UUID(int=0)}", id=id)
        return from_record(workspace, workspace.folder.store.get_dataset_by_id(id))

    @staticmethod
    def get_all(workspace: "Workspace") -> dict[str, "Dataset"]:
        """Registered datasets by name, each at its latest version (as ``ws.datasets``)."""
        return {r.name: from_record(workspace, r) for r in workspace.folder.store.list_datasets()}

    def get_files(self) -> list[DatasetFile]:
        """The files (datastore, path, size, sha256, name in the dataset): a registered version's as it
        recorded them; else resolved now, without checksums."""
        return self._files()

    # -- as a run's input ---------------------------------------------------------------------------------

    def as_named_input(self, name: str) -> "DatasetConsumptionConfig":
        """This dataset as input ``name`` of a run (``^[a-zA-Z_][a-zA-Z0-9_]*$``): put it in
        ``ScriptRunConfig(arguments=[...])`` or ``run_config.data``; a file dataset then takes
        ``.as_mount()`` or ``.as_download()``. Inside the run, ``run.input_datasets[name]``."""
        return DatasetConsumptionConfig(name, self)

    def _default_input_name(self) -> str:
        if self.name is not None and INPUT_NAME.match(self.name):
            return self.name
        return f"input_{self._definition.content_hash[:8]}"


def _check_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise UserError(f"tags are a dict of str to str, got {shown(tags)}")
    clean = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not key or not storable_text(key) or len(key) > 255:
            raise UserError(f"a tag name is 1 to 255 characters of text, got {shown(key)}")
        text = value if isinstance(value, str) else str(value)
        if not storable_text(text):
            raise UserError(f"tag {key!r} has a value that cannot be stored (a NUL character): {shown(value)}")
        clean[key] = text
    return clean


class PinnedFiles:
    """A registered version's file list, read from the store on first use (it may hold 100,000 files)."""

    def __init__(self, workspace: "Workspace", dataset_id: str) -> None:
        self._workspace = workspace
        self._dataset_id = dataset_id
        self._files: tuple[DatasetFile, ...] | None = None

    def files(self) -> list[DatasetFile]:
        if self._files is None:
            self._files = tuple(self._workspace.folder.store.get_dataset_files(self._dataset_id))
        return list(self._files)


def from_record(workspace: "Workspace", record: DatasetRecord, cls: type[Dataset] | None = None) -> Dataset:
    """The dataset of registered version ``record``: its definition, reading its recorded files."""
    definition = d.DatasetDefinition.from_dict(record.definition)
    kind = cls or (FileDataset if definition.kind == d.FILE else TabularDataset)
    steps = len(definition.steps) if definition.kind == d.FILE else 0
    return kind(definition, workspace=workspace, registration=record,
                pinned=PinnedFiles(workspace, record.dataset_id), pinned_steps=steps)


# -- run inputs ------------------------------------------------------------------------------------------


class DatasetConsumptionConfig:
    """A dataset as a named input of a run (Azure's ``DatasetConsumptionConfig``): made by
    ``dataset.as_named_input(name)``, then ``.as_mount()`` or ``.as_download()`` for a file dataset.

    In ``ScriptRunConfig(arguments=[...])`` it becomes, in the run, the path of the input's folder
    (a file dataset) or the dataset's id (a tabular dataset; its name when it is not registered);
    ``run.input_datasets[name]`` gives the path or the :class:`TabularDataset`, and the environment
    variable ``name`` the same text as the argument."""

    def __init__(self, name: str, dataset: "Dataset", mode: str = DIRECT, path_on_compute: str | None = None) -> None:
        if not isinstance(dataset, Dataset):
            raise UserError(f"a run input is a Dataset, got {shown(dataset)}")
        self.name = check_input_name(name)
        self.dataset = dataset
        if mode not in MODES:
            raise UserError(f"an input's mode is one of {', '.join(MODES)}, got {shown(mode)}")
        self.mode = mode
        self.path_on_compute = _check_path_on_compute(path_on_compute)

    def as_mount(self, path_on_compute: str | None = None) -> "DatasetConsumptionConfig":
        """The input's files, read-only, in a folder of the run's machine (``path_on_compute``: where;
        relative to the run's working folder, or absolute)."""
        return self._as(MOUNT, path_on_compute)

    def as_download(self, path_on_compute: str | None = None) -> "DatasetConsumptionConfig":
        """The input's files copied to the run's machine before the script starts (in runlab: the same
        read-only folder of the data cache as a mount; copy a file to change it)."""
        return self._as(DOWNLOAD, path_on_compute)

    def _as(self, mode: str, path_on_compute: str | None) -> "DatasetConsumptionConfig":
        if not isinstance(self.dataset, FileDataset):
            raise UserError(f"input {self.name!r} is a tabular dataset, which is read, not {mode}ed: pass "
                            f"dataset.as_named_input({self.name!r}) and read it in the script with "
                            f"run.input_datasets[{self.name!r}].to_pandas_dataframe()", name=self.name)
        return DatasetConsumptionConfig(self.name, self.dataset, mode, path_on_compute)

    def spec(self) -> InputSpec:
        """What the run's definition records of this input."""
        dataset = self.dataset
        origin = dataset._origin
        if isinstance(dataset, FileDataset) and self.mode == DIRECT:
            raise UserError(f"input {self.name!r} is a file dataset: say how the run gets its files with "
                            f"dataset.as_named_input({self.name!r}).as_mount() or .as_download()", name=self.name)
        return InputSpec(
            name=self.name, mode=self.mode, kind=dataset.definition.kind, definition=dataset.definition.to_dict(),
            path_on_compute=self.path_on_compute,
            origin_id=origin.dataset_id if origin is not None else None,
            origin_name=origin.name if origin is not None else None,
            origin_version=origin.version if origin is not None else None,
            origin_files_hash=origin.files_hash if origin is not None else None,
            pinned_steps=dataset._pinned_steps if origin is not None else 0,
            registered=dataset._registration is not None,
        )

    def __repr__(self) -> str:
        where = f", path_on_compute={self.path_on_compute!r}" if self.path_on_compute else ""
        return f"DatasetConsumptionConfig(name={self.name!r}, mode={self.mode!r}{where}, dataset={self.dataset!r})"


def _check_path_on_compute(path: object) -> str | None:
    if path is None:
        return None
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path) or "\x00" in os.fspath(path):
        raise UserError(f"path_on_compute is a folder path, got {shown(path)}", path=path)
    text = os.fspath(path)
    if ".." in Path(text).parts:
        raise UserError(f"path_on_compute {text!r} has '..': give a folder inside the run's working folder, or an "
                        "absolute path", path=text)
    return str(text)


def dataset_of_input(workspace: "Workspace", spec: InputSpec) -> Dataset:
    """The dataset a run's input ``spec`` stands for, as the submitting script had it."""
    definition = spec.dataset_definition
    kind: type[Dataset] = FileDataset if definition.kind == d.FILE else TabularDataset
    if spec.origin_id is None:
        return kind(definition, workspace=workspace)
    record = workspace.folder.store.get_dataset_by_id(spec.origin_id)
    if spec.registered:
        return from_record(workspace, record, kind)
    return kind(definition, workspace=workspace, pinned=PinnedFiles(workspace, record.dataset_id),
                pinned_steps=spec.pinned_steps, derived_from=record)


# -- mounts ----------------------------------------------------------------------------------------------


class MountContext:
    """``with dataset.mount() as mount:`` the dataset's files under ``mount.mount_point``, read-only,
    removed on exit. Files are copied there (runs get a cached, shared copy instead)."""

    def __init__(self, dataset: "FileDataset", mount_point: str | os.PathLike[str] | None = None) -> None:
        self._dataset = dataset
        self._requested = Path(mount_point).expanduser().resolve() if mount_point is not None else None
        self._root: Path | None = None
        self._created = False

    @property
    def mount_point(self) -> str:
        if self._root is None:
            raise UserError("the dataset is not mounted: call start(), or use `with dataset.mount() as mount:`")
        return str(self._root)

    def start(self) -> None:
        if self._root is not None:
            return
        if self._requested is None:
            root, created = Path(tempfile.mkdtemp(prefix="runlab-mount-")), True
        else:
            root = self._requested
            if root.exists() and (not root.is_dir() or any(root.iterdir())):
                raise UserError(f"mount point {root} exists and is not an empty folder: choose another one", path=root)
            created = not root.exists()
            root.mkdir(parents=True, exist_ok=True)
        try:
            self._dataset._download_to(root, overwrite=False, read_only=True)
        except BaseException:
            _remove_tree(root, keep_root=not created)
            raise
        self._root, self._created = root, created

    def stop(self) -> None:
        if self._root is None:
            return
        _remove_tree(self._root, keep_root=not self._created)
        self._root = None

    def __enter__(self) -> "MountContext":
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _remove_tree(root: Path, *, keep_root: bool) -> None:
    def writable_again(function: Callable[..., Any], path: str, _exc: Any) -> None:
        os.chmod(os.path.dirname(path), stat.S_IRWXU)
        os.chmod(path, stat.S_IRWXU)
        function(path)

    if keep_root:
        for child in root.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, onerror=writable_again)
            else:
                child.unlink()
    else:
        shutil.rmtree(root, onerror=writable_again)


# -- file datasets ---------------------------------------------------------------------------------------


class FileDataset(Dataset):
    """Files: downloaded, mounted, or given to a run. ``Dataset.File.from_files(path)``."""

    def to_path(self) -> list[str]:
        """The files' paths inside the dataset, as a mount or download shows them (``/sub/a.png``)."""
        return ["/" + f.name for f in self._files()]

    def download(self, target_path: str | os.PathLike[str] | None = None, overwrite: bool = False) -> list[str]:
        """Copy the files under ``target_path`` (default: a new temporary folder), keeping their folders;
        the local paths. A registered version's files are checked against their recorded sha256."""
        root = Path(target_path).expanduser().resolve() if target_path is not None else \
            Path(tempfile.mkdtemp(prefix="runlab-dataset-"))
        return [str(p) for p in self._download_to(root, overwrite=overwrite)]

    def mount(self, mount_point: str | os.PathLike[str] | None = None) -> MountContext:
        """A context manager: the files, read-only, under ``mount_point`` (default: a temporary folder)."""
        return MountContext(self, mount_point)

    def as_mount(self, path_on_compute: str | None = None) -> "DatasetConsumptionConfig":
        """This dataset as a run input mounted read-only (named as the dataset, or ``input_<hash>``)."""
        return DatasetConsumptionConfig(self._default_input_name(), self).as_mount(path_on_compute)

    def as_download(self, path_on_compute: str | None = None) -> "DatasetConsumptionConfig":
        """This dataset as a run input downloaded before the script starts."""
        return DatasetConsumptionConfig(self._default_input_name(), self).as_download(path_on_compute)

    def take(self, count: int) -> "FileDataset":
        """The first ``count`` files (in the dataset's order: by source, then path)."""
        return self._derive(d.Take(d._count(count, "take")))

    def skip(self, count: int) -> "FileDataset":
        return self._derive(d.Skip(d._count(count, "skip")))

    def random_split(self, percentage: float, seed: int | None = None) -> tuple["FileDataset", "FileDataset"]:
        """Two datasets: about ``percentage`` of the files (chosen with ``seed``), and the others."""
        return self._random_split(percentage, seed)


class FileDatasetFactory:
    """``Dataset.File``."""

    @staticmethod
    def from_files(path: PathArgument, validate: bool = True) -> FileDataset:
        """A dataset of the files at ``path``: ``(datastore, 'relative/path')``, ``datastore.path(...)``,
        a local path, or a glob (``'images/**/*.png'``), or a list of them. A folder means every file
        under it. ``validate`` checks that each path matches a file (else :class:`DatasetPathError`
        naming what was searched)."""
        sources, workspace = _sources(path)
        dataset = FileDataset(d.DatasetDefinition(d.FILE, sources), workspace=workspace)
        if validate:
            d.check_matches(d.list_sources(dataset.definition, dataset._open_datastore()))
        return dataset

    @staticmethod
    def upload_directory(src_dir: str | os.PathLike[str], target: Any, pattern: str | None = None,
                         overwrite: bool = False, show_progress: bool = True) -> FileDataset:
        """Upload ``src_dir``'s contents (the files matching glob ``pattern``, relative to it, when given)
        to ``target`` (``(datastore, 'path')`` or a DataPath) and return the dataset of what is there."""
        on_datastore = _on_datastore(target)
        if on_datastore is None:
            raise DatasetPathError(f"upload_directory needs target=(datastore, 'path') or a DataPath, got "
                                   f"{shown(target)}", path=target)
        store, rel = on_datastore[0], d.check_datastore_path(on_datastore[1])
        source = Path(src_dir).expanduser()
        if not source.is_dir():
            raise DatasetPathError(f"upload_directory: {source} is not a folder", path=str(source))
        if pattern is None:
            store.upload(src_dir=str(source), target_path=rel or None, overwrite=overwrite,
                         show_progress=show_progress)
            return FileDatasetFactory.from_files((store, rel))
        pattern_parts = [p for p in pattern.split("/") if p not in ("", ".")]
        if ".." in pattern_parts:
            raise DatasetPathError(f"upload_directory: pattern {pattern!r} leads out of {source} ('..')", path=pattern)
        chosen = [str(p) for p in sorted(source.rglob("*"))
                  if p.is_file() and d.glob_match(pattern_parts, p.relative_to(source).parts)]
        if not chosen:
            raise DatasetPathError(f"upload_directory: no file under {source} matches {pattern!r}", path=pattern)
        store.upload_files(chosen, relative_root=str(source), target_path=rel or None, overwrite=overwrite,
                           show_progress=show_progress)
        return FileDatasetFactory.from_files((store, "/".join([*([rel] if rel else []), *pattern_parts])))


# -- tabular datasets ------------------------------------------------------------------------------------


class TabularDataset(Dataset):
    """Rows and columns, read with pyarrow into pandas. ``Dataset.Tabular.from_delimited_files(path)``."""

    @property
    def timestamp_columns(self) -> tuple[str | None, str | None]:
        return self._definition.timestamp_column, self._definition.partition_timestamp_column

    def _reader(self) -> d.ReaderOptions:
        assert self._definition.reader is not None
        return self._definition.reader

    def _table(self) -> "pa.Table":
        from runlab.store.tables import apply_steps, read_table, rows_needed

        opener = self._open_datastore()
        files = self._files(opener=opener)
        self._check_unchanged(files, opener)
        with tempfile.TemporaryDirectory(prefix="runlab-read-") as scratch:
            paths = local_paths(files, opener, Path(scratch))
            table = read_table([(d.describe_file(f), p) for f, p in zip(files, paths)], self._reader(),
                               row_limit=rows_needed(self._definition.steps))
        return apply_steps(table, self._definition.steps)

    def to_pandas_dataframe(self) -> "pd.DataFrame":
        """The rows as a pandas DataFrame (pyarrow reads the files; pandas dtypes follow pyarrow's types)."""
        from runlab.store.tables import to_pandas

        return to_pandas(self._table())

    def to_arrow(self) -> "pa.Table":
        """The rows as a pyarrow Table."""
        return self._table()

    def head(self, count: int) -> "pd.DataFrame":
        """The first ``count`` rows as a DataFrame (reads only as much as they need)."""
        return self.take(count).to_pandas_dataframe()

    def take(self, count: int) -> "TabularDataset":
        return self._derive(d.Take(d._count(count, "take")))

    def skip(self, count: int) -> "TabularDataset":
        return self._derive(d.Skip(d._count(count, "skip")))

    def keep_columns(self, columns: str | Sequence[str], validate: bool = False) -> "TabularDataset":
        """Only these columns (in the dataset's order). ``validate`` reads the first rows to check them."""
        derived = self._derive(d.KeepColumns(d._columns(columns, "keep_columns")))
        if validate:
            derived.take(1).to_arrow()
        return derived

    def drop_columns(self, columns: str | Sequence[str]) -> "TabularDataset":
        return self._derive(d.DropColumns(d._columns(columns, "drop_columns")))

    def random_split(self, percentage: float, seed: int | None = None) -> tuple["TabularDataset", "TabularDataset"]:
        """Two datasets: ``round(rows * percentage)`` rows chosen with ``seed``, and the other rows; each
        keeps the rows' order, and together they hold every row once."""
        return self._random_split(percentage, seed)

    def with_timestamp_columns(self, timestamp: str | None = None, partition_timestamp: str | None = None,
                               validate: bool = False) -> "TabularDataset":
        """The same rows, with ``timestamp`` (and ``partition_timestamp``) recorded as its time columns."""
        for value in (timestamp, partition_timestamp):
            if value is not None and not isinstance(value, str):
                raise UserError(f"a timestamp column is named by a str, got {shown(value)}")
        derived = TabularDataset(
            replace(self._definition, timestamp_column=timestamp, partition_timestamp_column=partition_timestamp),
            workspace=self._workspace, pinned=self._pinned, pinned_steps=self._pinned_steps, derived_from=self._origin)
        if validate:
            columns = derived.take(1).to_arrow().column_names
            missing = [c for c in (timestamp, partition_timestamp) if c is not None and c not in columns]
            if missing:
                raise UserError(f"with_timestamp_columns: no column {', '.join(map(repr, missing))}; the columns are "
                                f"{', '.join(map(repr, columns))}", columns=missing)
        return derived

    def to_csv_files(self, separator: str = ",", target: Any = None) -> FileDataset:
        """Write the rows as CSV; the FileDataset of the written file. ``target``: a local folder,
        ``(datastore, 'path')`` or a DataPath (default: a folder under ``$RUNLAB_HOME/datasets/converted``)."""
        from runlab.store.tables import write_csv

        d.ReaderOptions(d.DELIMITED, separator=separator)  # checks the separator
        return self._write("csv", lambda table, path: write_csv(table, path, separator), target)

    def to_parquet_files(self, target: Any = None) -> FileDataset:
        """Write the rows as Parquet; the FileDataset of the written file (``target`` as in to_csv_files)."""
        from runlab.store.tables import write_parquet

        return self._write("parquet", write_parquet, target)

    def _write(self, suffix: str, write: Callable[["pa.Table", Path], None], target: Any) -> FileDataset:
        import hashlib

        table = self._table()
        file_name = f"part-00000.{suffix}"
        if target is None or isinstance(target, (str, os.PathLike)):
            if target is None:
                from runlab.core.settings import load_settings

                fingerprint = hashlib.sha256(self._definition.to_json().encode())
                for f in self._files():
                    fingerprint.update(repr((f.datastore, f.path, f.size, f.modified_at, f.sha256)).encode())
                folder = load_settings().home / CONVERTED_FOLDER / f"{fingerprint.hexdigest()[:24]}-{suffix}"
            else:
                folder = Path(target).expanduser().resolve()
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".write-")
            os.close(fd)
            try:
                write(table, Path(tmp))
                os.replace(tmp, folder / file_name)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return FileDatasetFactory.from_files(str(folder / file_name))
        on_datastore = _on_datastore(target)
        if on_datastore is None:
            raise DatasetPathError(f"write target must be a local folder, (datastore, 'path') or a DataPath, got "
                                   f"{shown(target)}", path=target)
        store, rel = on_datastore[0], d.check_datastore_path(on_datastore[1])
        with tempfile.TemporaryDirectory(prefix="runlab-write-") as scratch:
            write(table, Path(scratch) / file_name)
            store.upload(src_dir=scratch, target_path=rel or None, overwrite=True, show_progress=False)
        return FileDatasetFactory.from_files((store, "/".join([*([rel] if rel else []), file_name])))


class TabularDatasetFactory:
    """``Dataset.Tabular``."""

    @staticmethod
    def from_delimited_files(
        path: PathArgument,
        validate: bool = True,
        include_path: bool = False,
        infer_column_types: bool = True,
        set_column_types: Mapping[str, Any] | None = None,
        separator: str = ",",
        header: bool = True,
        encoding: str = "utf8",
        support_multi_line: bool = False,
    ) -> TabularDataset:
        """A table from delimited text files (CSV, TSV...), read with ``pyarrow.csv``.

        ``header=False``: the first row is data and columns are named Column1, Column2...
        ``infer_column_types=False``: every column is a string (except those in ``set_column_types``,
        a dict of column to type: ``'int64'``, ``'float64'``, ``'string'``, ``'bool'``,
        ``'timestamp[s]'``, a pyarrow type, or ``DataType.to_long()``...).
        """
        if include_path:
            raise UserError("include_path=True is not supported: the file of each row is not recorded; "
                            "use one dataset per file")
        types, formats = _column_types(set_column_types)
        reader = d.ReaderOptions(d.DELIMITED, separator=separator, header=bool(header),
                                 infer_column_types=bool(infer_column_types), column_types=types,
                                 timestamp_formats=formats, encoding=encoding, multi_line=bool(support_multi_line))
        return _tabular(path, reader, validate)

    @staticmethod
    def from_parquet_files(path: PathArgument, validate: bool = True) -> TabularDataset:
        """A table from Parquet files, read with ``pyarrow.parquet``."""
        return _tabular(path, d.ReaderOptions(d.PARQUET), validate)

    @staticmethod
    def from_json_lines_files(path: PathArgument, validate: bool = True) -> TabularDataset:
        """A table from JSON lines files (one object per line), read with ``pyarrow.json``."""
        return _tabular(path, d.ReaderOptions(d.JSON_LINES), validate)


def _tabular(path: PathArgument, reader: d.ReaderOptions, validate: bool) -> TabularDataset:
    sources, workspace = _sources(path)
    dataset = TabularDataset(d.DatasetDefinition(d.TABULAR, sources, reader), workspace=workspace)
    if validate:
        d.check_matches(d.list_sources(dataset.definition, dataset._open_datastore()))
    return dataset


Dataset.File = FileDatasetFactory
Dataset.Tabular = TabularDatasetFactory


def registered_datasets(workspace: "Workspace") -> Iterable[Dataset]:
    """Every registered version, by name then version (for listings)."""
    for record in workspace.folder.store.list_datasets(all_versions=True):
        yield from_record(workspace, record)
