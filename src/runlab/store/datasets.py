"""Dataset definitions, and their resolution into an exact list of files.

A **definition** says what a dataset is made of. It is a small frozen value; its canonical JSON
(sorted keys, no spaces) is what a registered version stores, and its sha256 is its identity::

    {"format": 1,
     "kind": "tabular",                                         # or "file"
     "sources": [{"datastore": "workspaceblobstore", "path": "weather/**/*.csv"},
                 {"datastore": null, "path": "/home/me/extra.csv"}],   # null: a path on this machine
     "reader": {"format": "delimited", "separator": ",", "header": true, "infer_column_types": true,
                "column_types": {"temp": "float64"}, "timestamp_formats": [], "encoding": "utf8",
                "multi_line": false},                           # {"format": "parquet"}, {"format": "json_lines"};
                                                                # null for a file dataset
     "steps": [{"op": "skip", "count": 10}, {"op": "take", "count": 100},
               {"op": "keep_columns", "columns": ["temp"]}, {"op": "drop_columns", "columns": ["id"]},
               {"op": "random_split", "percentage": 0.8, "seed": 42, "part": 0}],
     "timestamp_column": null, "partition_timestamp_column": null}

Steps are lazy: nothing is read until the dataset is. A file dataset's steps pick files (in the
dataset's order); a tabular dataset's steps pick rows and columns after reading.

**Sources** are paths on a datastore (relative to its root; ``..`` is refused, a leading ``/`` means
the root, as in Azure ML) or absolute paths on this machine. A path may be a file, a folder (every
file under it) or a glob: ``*``, ``?`` and ``[...]`` match within one path part (as
:func:`fnmatch.fnmatchcase` reads them), ``**`` matches any number of parts. A glob is matched against
the listing of its literal prefix (``images/`` for ``images/**/*.png``), so it cannot reach out of it.

**Resolution** (:func:`resolve_files`) lists each source through the datastore's object store
(``list``/``stat``) and gives :class:`~runlab.core.assets.DatasetFile` rows: datastore, path,
size, the file's name inside the dataset (its path relative to the sources' common folder), and,
when asked, its sha256. Order: the sources' order, then by path; a file named twice is kept once.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import stat as stat_module
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable, Iterator, Mapping, Sequence, Union

from runlab.core.assets import DatasetFile, DatastoreFileRecord
from runlab.core.errors import DatasetPathError, ObjectNotFoundError, UserError
from runlab.core.names import shown
from runlab.store.objects import ObjectInfo, ObjectStore, file_sha256

if TYPE_CHECKING:
    import numpy as np

DEFINITION_FORMAT = 1
FILE = "file"
TABULAR = "tabular"
KINDS = (FILE, TABULAR)
DELIMITED = "delimited"
PARQUET = "parquet"
JSON_LINES = "json_lines"
READER_FORMATS = (DELIMITED, PARQUET, JSON_LINES)
GLOB_CHARACTERS = frozenset("*?[")
HASH_CHUNK = 1 << 20
HASH_THREADS = 8


OpenDatastore = Callable[[str], ObjectStore]
"""A datastore's name -> its object store (list, stat, open, get, local_path)."""

KnownChecksums = Callable[[str, str], Mapping[str, DatastoreFileRecord]]
"""(datastore name, path prefix) -> what the datastore's file index knows of the files there (their
size, etag and sha256 when runlab wrote them), so that resolution need not read them again."""


# -- sources ---------------------------------------------------------------------------------------


def _has_glob(part: str) -> bool:
    return not GLOB_CHARACTERS.isdisjoint(part)


def check_datastore_path(path: object) -> str:
    """``path`` as a datastore path (``a/b``, no leading or trailing ``/``; ``""`` is the root), or
    :class:`DatasetPathError` for one that could leave the datastore."""
    if not isinstance(path, str):
        raise DatasetPathError(f"a dataset path must be a str, got {type(path).__name__} {shown(path)}: "
                               "for example (datastore, 'datasets/cifar10')", path=path)
    if "\x00" in path:
        raise DatasetPathError(f"dataset path {shown(path)} holds a NUL character, which no path can hold",
                               path=path)
    posix = PurePosixPath(path)
    if ".." in posix.parts:
        raise DatasetPathError(
            f"dataset path {shown(path)} leads out of its datastore ('..'): use a path relative to the "
            "datastore's root, for example 'datasets/cifar10' or 'images/**/*.png'", path=path)
    parts = [p for p in posix.parts if p not in ("/", ".")]
    return "/".join(parts)


@dataclass(frozen=True)
class DataSource:
    """One path of a dataset: on datastore ``datastore``, or on this machine when it is None."""

    datastore: str | None
    path: str

    @classmethod
    def on_datastore(cls, datastore: str, path: str) -> "DataSource":
        return cls(datastore, check_datastore_path(path))

    @classmethod
    def local(cls, path: str | os.PathLike[str]) -> "DataSource":
        text = os.fspath(path)
        if "\x00" in text:
            raise DatasetPathError(f"local path {shown(text)} holds a NUL character", path=text)
        return cls(None, os.path.abspath(os.path.expanduser(text)))

    @property
    def is_glob(self) -> bool:
        return any(_has_glob(p) for p in self.parts)

    @property
    def parts(self) -> tuple[str, ...]:
        if self.datastore is None:
            return PurePosixPath(self.path).parts[1:]  # without the leading "/"
        return tuple(p for p in self.path.split("/") if p)

    @property
    def literal_parts(self) -> tuple[str, ...]:
        """The parts before the first one with a glob character: the folder a glob is matched in."""
        out = []
        for part in self.parts:
            if _has_glob(part):
                break
            out.append(part)
        return tuple(out)

    def describe(self) -> str:
        return f"({self.datastore}, {self.path!r})" if self.datastore is not None else repr(self.path)

    def to_dict(self) -> dict[str, Any]:
        return {"datastore": self.datastore, "path": self.path}


class Glob:
    """A glob over ``/``-separated parts: each part as :func:`fnmatch.fnmatchcase` reads it (compiled
    once with :func:`fnmatch.translate`), ``**`` for any number of parts."""

    def __init__(self, pattern: Sequence[str]) -> None:
        self.pattern = tuple(pattern)
        self._matchers: list[Callable[[str], object] | None] = [
            None if part == "**" else re.compile(fnmatch.translate(part)).match for part in self.pattern]

    def _closure(self, states: set[int]) -> set[int]:
        todo = list(states)
        while todo:  # a "**" may match no part at all
            i = todo.pop()
            if i < len(self.pattern) and self._matchers[i] is None and i + 1 not in states:
                states.add(i + 1)
                todo.append(i + 1)
        return states

    def matches(self, parts: Sequence[str]) -> bool:
        end = len(self.pattern)
        states = self._closure({0})
        for part in parts:
            following: set[int] = set()
            for i in states:
                if i == end:
                    continue
                matcher = self._matchers[i]
                if matcher is None:
                    following.add(i)  # "**" takes this part too
                elif matcher(part):
                    following.add(i + 1)
            if not following:
                return False
            states = self._closure(following)
        return end in states


def glob_match(pattern: Sequence[str], parts: Sequence[str]) -> bool:
    """True when path ``parts`` match glob ``pattern`` (both split on ``/``); see :class:`Glob`."""
    return Glob(pattern).matches(parts)


# -- steps -------------------------------------------------------------------------------------------


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"{what} needs a count of 0 or more, got {shown(value)}", value=value)
    return value


@dataclass(frozen=True)
class Take:
    """The first ``count`` files or rows."""

    count: int
    op = "take"

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "count": self.count}


@dataclass(frozen=True)
class Skip:
    """All but the first ``count`` files or rows."""

    count: int
    op = "skip"

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "count": self.count}


@dataclass(frozen=True)
class KeepColumns:
    columns: tuple[str, ...]
    op = "keep_columns"

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "columns": list(self.columns)}


@dataclass(frozen=True)
class DropColumns:
    columns: tuple[str, ...]
    op = "drop_columns"

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "columns": list(self.columns)}


@dataclass(frozen=True)
class RandomSplit:
    """Part 0 (``round(n * percentage)`` items) or part 1 (the others) of a seeded shuffle; each
    part keeps the dataset's order, and the two parts are disjoint and complete."""

    percentage: float
    seed: int
    part: int
    op = "random_split"

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "percentage": self.percentage, "seed": self.seed, "part": self.part}

    def indices(self, n: int) -> "np.ndarray[Any, Any]":
        import numpy as np

        order = np.random.default_rng(self.seed).permutation(n)
        cut = int(round(n * self.percentage))
        return np.sort(order[:cut] if self.part == 0 else order[cut:])


Step = Union[Take, Skip, KeepColumns, DropColumns, RandomSplit]
FILE_STEPS = ("take", "skip", "random_split")


def _columns(value: object, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(c, str) for c in value):
        raise UserError(f"{what} needs a non-empty list of column names, got {shown(value)}", value=value)
    return tuple(value)


def make_random_split(percentage: object, seed: object, part: int) -> RandomSplit:
    if isinstance(percentage, bool) or not isinstance(percentage, (int, float)) or not 0 <= percentage <= 1:
        raise UserError(f"random_split needs a percentage between 0 and 1 (0.8 for 80%), got {shown(percentage)}",
                        value=percentage)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"random_split needs an int seed, got {shown(seed)}", value=seed)
    return RandomSplit(float(percentage), seed, part)


def step_from_dict(data: Mapping[str, Any]) -> Step:
    op = data.get("op")
    if op == "take":
        return Take(_count(data.get("count"), "take"))
    if op == "skip":
        return Skip(_count(data.get("count"), "skip"))
    if op == "keep_columns":
        return KeepColumns(_columns(data.get("columns"), "keep_columns"))
    if op == "drop_columns":
        return DropColumns(_columns(data.get("columns"), "drop_columns"))
    if op == "random_split":
        part = data.get("part")
        if part not in (0, 1):
            raise UserError(f"a random_split step has part 0 or 1, got {shown(part)}")
        return make_random_split(data.get("percentage"), data.get("seed"), int(part))
    raise UserError(f"unknown dataset step {shown(op)}: known steps are take, skip, keep_columns, drop_columns "
                    "and random_split")


def apply_file_steps(files: Sequence[DatasetFile], steps: Sequence[Step]) -> list[DatasetFile]:
    """The files a file dataset's steps pick, in order."""
    out = list(files)
    for step in steps:
        if isinstance(step, Take):
            out = out[: step.count]
        elif isinstance(step, Skip):
            out = out[step.count :]
        elif isinstance(step, RandomSplit):
            out = [out[int(i)] for i in step.indices(len(out))]
        else:
            raise UserError(f"a file dataset has no columns: {step.op} applies to tabular datasets")
    return out


# -- reader options ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReaderOptions:
    """How a tabular dataset's files are read (pyarrow.csv, pyarrow.parquet, pyarrow.json)."""

    format: str
    separator: str = ","
    header: bool = True
    infer_column_types: bool = True
    column_types: tuple[tuple[str, str], ...] = ()  # (column, pyarrow type alias: "int64", "string", ...)
    timestamp_formats: tuple[str, ...] = ()  # strptime formats tried for timestamp columns
    encoding: str = "utf8"
    multi_line: bool = False  # quoted values may hold line breaks (slower: parsed on one thread)

    def __post_init__(self) -> None:
        if self.format not in READER_FORMATS:
            raise UserError(f"unknown table format {shown(self.format)}: use one of {', '.join(READER_FORMATS)}")
        if self.format == DELIMITED and (not isinstance(self.separator, str) or len(self.separator) != 1
                                         or self.separator in "\r\n"):
            raise UserError(f"separator must be one character (',' or '\\t' or ';'...), got {shown(self.separator)}",
                            value=self.separator)

    def to_dict(self) -> dict[str, Any]:
        if self.format != DELIMITED:
            return {"format": self.format}
        return {
            "format": self.format, "separator": self.separator, "header": self.header,
            "infer_column_types": self.infer_column_types, "column_types": dict(self.column_types),
            "timestamp_formats": list(self.timestamp_formats), "encoding": self.encoding,
            "multi_line": self.multi_line,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ReaderOptions":
        fmt = data.get("format")
        if fmt != DELIMITED:
            return cls(str(fmt))
        types = data.get("column_types") or {}
        return cls(
            DELIMITED, separator=data.get("separator", ","), header=bool(data.get("header", True)),
            infer_column_types=bool(data.get("infer_column_types", True)),
            column_types=tuple((str(k), str(v)) for k, v in dict(types).items()),
            timestamp_formats=tuple(str(f) for f in data.get("timestamp_formats") or ()),
            encoding=str(data.get("encoding", "utf8")), multi_line=bool(data.get("multi_line", False)),
        )


# -- the definition ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetDefinition:
    kind: str
    sources: tuple[DataSource, ...]
    reader: ReaderOptions | None = None
    steps: tuple[Step, ...] = ()
    timestamp_column: str | None = None
    partition_timestamp_column: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UserError(f"a dataset is 'file' or 'tabular', not {shown(self.kind)}")
        if (self.reader is None) != (self.kind == FILE):
            raise UserError("a tabular dataset has reader options and a file dataset has none")
        if self.kind == FILE and any(s.op not in FILE_STEPS for s in self.steps):
            raise UserError("a file dataset has no columns: keep_columns and drop_columns apply to tabular datasets")

    def with_step(self, step: Step) -> "DatasetDefinition":
        return replace(self, steps=(*self.steps, step))

    @property
    def datastores(self) -> tuple[str, ...]:
        return tuple(sorted({s.datastore for s in self.sources if s.datastore is not None}))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": DEFINITION_FORMAT, "kind": self.kind, "sources": [s.to_dict() for s in self.sources],
            "reader": self.reader.to_dict() if self.reader is not None else None,
            "steps": [s.to_dict() for s in self.steps], "timestamp_column": self.timestamp_column,
            "partition_timestamp_column": self.partition_timestamp_column,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DatasetDefinition":
        """The definition ``to_dict`` gave (a registered version's); :class:`UserError` when malformed."""
        try:
            if data.get("format", DEFINITION_FORMAT) != DEFINITION_FORMAT:
                raise UserError(f"dataset definition format {data.get('format')!r} is newer than this runlab "
                                f"understands ({DEFINITION_FORMAT}): upgrade runlab")
            sources = []
            for s in data["sources"]:
                store = s["datastore"]
                sources.append(DataSource.on_datastore(store, s["path"]) if store is not None
                               else DataSource.local(s["path"]))
            reader = data.get("reader")
            return cls(
                kind=data["kind"], sources=tuple(sources),
                reader=ReaderOptions.from_dict(reader) if reader is not None else None,
                steps=tuple(step_from_dict(s) for s in data.get("steps") or ()),
                timestamp_column=data.get("timestamp_column"),
                partition_timestamp_column=data.get("partition_timestamp_column"),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"malformed dataset definition ({type(exc).__name__}: {exc}): {shown(dict(data))}") from exc

    @classmethod
    def from_json(cls, text: str) -> "DatasetDefinition":
        return cls.from_dict(json.loads(text))


# -- resolution --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Found:
    path: str
    size: int
    modified_at: float | None
    sha256: str | None = None  # when the store keeps it (an S3 object runlab wrote)


@dataclass
class _SourceFiles:
    source: DataSource
    base: tuple[str, ...]  # the folder the files' names are relative to
    found: list[_Found] = field(default_factory=list)
    searched: str = ""


def _found(info: ObjectInfo, known: Mapping[str, DatastoreFileRecord] | None = None) -> _Found:
    sha256 = info.sha256
    row = known.get(info.name) if known else None
    if sha256 is None and row is not None and row.size == info.size and row.etag == info.etag:
        sha256 = row.sha256  # written by runlab, and not changed since
    return _Found(info.name, info.size, info.modified_at, sha256)


def _list_datastore(store: ObjectStore, source: DataSource, known: KnownChecksums | None) -> _SourceFiles:
    parts = source.parts
    name = source.datastore or ""
    where = f"datastore {name} ({store.description})"
    if source.is_glob:
        base = source.literal_parts
        prefix = "/".join(base) + "/" if base else ""
        index = known(name, prefix) if known is not None else None
        glob = Glob(parts)
        found = [_found(info, index) for info in store.list(prefix) if glob.matches(info.name.split("/"))]
        return _SourceFiles(source, base, found, searched=f"the files under {prefix or '/'} of {where}")
    path = "/".join(parts)
    single = _stat(store, path) if path else None
    if single is not None:
        index = known(name, path) if known is not None else None
        return _SourceFiles(source, parts[:-1], [_found(single, index)], searched=f"{path} of {where}")
    prefix = path + "/" if path else ""
    index = known(name, prefix) if known is not None else None
    found = [_found(info, index) for info in store.list(prefix)]
    return _SourceFiles(source, parts, found, searched=f"{path or '/'} (a file, or a folder) of {where}")


def _stat(store: ObjectStore, path: str) -> ObjectInfo | None:
    try:
        return store.stat(path)
    except ObjectNotFoundError:
        return None


def current_size(file: DatasetFile, open_datastore: OpenDatastore | None) -> int | None:
    """The size of ``file`` now, or None when it is gone."""
    if file.datastore is None:
        try:
            return os.stat(file.path).st_size
        except OSError:
            return None
    if open_datastore is None:
        return None
    info = _stat(open_datastore(file.datastore), file.path)
    return None if info is None else info.size


def _list_local(source: DataSource) -> _SourceFiles:
    parts = source.parts
    base = source.literal_parts if source.is_glob else parts
    root = "/" + "/".join(base)
    if not source.is_glob:
        try:
            st = os.stat(root)
        except OSError:
            return _SourceFiles(source, base, [], searched=f"{root} on this machine (it does not exist)")
        if stat_module.S_ISREG(st.st_mode):
            return _SourceFiles(source, base[:-1], [_Found(root, st.st_size, st.st_mtime)],
                                searched=f"{root} on this machine")
    found = []
    glob = Glob(parts) if source.is_glob else None
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(dirpath, name)
            try:
                st = os.stat(full)
            except OSError:
                continue  # a broken link
            if not stat_module.S_ISREG(st.st_mode):
                continue
            if glob is not None and not glob.matches(PurePosixPath(full).parts[1:]):
                continue
            found.append(_Found(full, st.st_size, st.st_mtime))
    return _SourceFiles(source, base, found, searched=f"the files under {root} on this machine")


def _common_base(bases: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
    common = list(bases[0])
    for base in bases[1:]:
        n = 0
        while n < min(len(common), len(base)) and common[n] == base[n]:
            n += 1
        del common[n:]
    return tuple(common)


def _relative(path: str, datastore: str | None, base: tuple[str, ...]) -> str:
    parts = PurePosixPath(path).parts[1:] if datastore is None else tuple(path.split("/"))
    return "/".join(parts[len(base):])


def list_sources(definition: DatasetDefinition, open_datastore: OpenDatastore | None,
                 known: KnownChecksums | None = None) -> list[_SourceFiles]:
    """What each source matches, with what was searched for it."""
    out = []
    for source in definition.sources:
        if source.datastore is None:
            out.append(_list_local(source))
            continue
        if open_datastore is None:
            raise UserError(f"source {source.describe()} is on a datastore, and this dataset has no workspace to "
                            "find it in: build it from the datastore object, (datastore, 'path')")
        listed = _list_datastore(open_datastore(source.datastore), source, known)
        out.append(listed)
    return out


def check_matches(listed: Sequence[_SourceFiles]) -> None:
    """:class:`DatasetPathError` naming each source that matches no file and what was searched."""
    empty = [s for s in listed if not s.found]
    if empty:
        lines = "; ".join(f"{s.source.describe()}: searched {s.searched}" for s in empty)
        raise DatasetPathError(
            f"no file matches {'this dataset path' if len(empty) == 1 else 'these dataset paths'}: {lines}. "
            "Check the path (a file, a folder, or a glob such as 'images/**/*.png'), or pass validate=False",
            path=[s.source.path for s in empty], searched=[s.searched for s in empty])


def resolve_files(
    definition: DatasetDefinition,
    open_datastore: OpenDatastore | None,
    *,
    checksums: bool = False,
    validate: bool = False,
    apply_steps: bool = True,
    known: KnownChecksums | None = None,
) -> list[DatasetFile]:
    """The files of ``definition`` now: for a file dataset after its steps, for a tabular dataset
    every file that is read. ``checksums`` gives each file its sha256: the one the store or the
    datastore's file index (``known``) has for it unchanged, else computed by reading the file."""
    listed = list_sources(definition, open_datastore, known)
    if validate:
        check_matches(listed)
    same_place = len({s.source.datastore for s in listed}) == 1
    common = _common_base([s.base for s in listed]) if listed and same_place else None
    files: list[DatasetFile] = []
    seen: dict[tuple[str | None, str], int] = {}
    names: dict[str, DatasetFile] = {}
    for item in listed:
        store = item.source.datastore
        base = common if common is not None else item.base
        for found in sorted(item.found, key=lambda f: f.path):
            key = (store, found.path)
            if key in seen:
                continue
            seen[key] = len(files)
            file = DatasetFile(datastore=store, path=found.path, size=found.size, sha256=found.sha256,
                               name=_relative(found.path, store, base), modified_at=found.modified_at)
            if file.name in names:
                other = names[file.name]
                raise DatasetPathError(
                    f"two files would have the same name {file.name!r} in this dataset: {_where(other)} and "
                    f"{_where(file)}; give paths on one datastore (their common folder keeps them apart)",
                    path=file.path)
            names[file.name] = file
            files.append(file)
    if definition.kind == FILE and apply_steps:
        files = apply_file_steps(files, definition.steps)
    if checksums:
        files = add_checksums(files, open_datastore)
    return files


def _where(file: DatasetFile) -> str:
    return file.path if file.datastore is None else f"{file.path} of datastore {file.datastore}"


def describe_file(file: DatasetFile) -> str:
    return _where(file)


# -- bytes -------------------------------------------------------------------------------------------


def local_path(file: DatasetFile, open_datastore: OpenDatastore | None) -> Path | None:
    """Where ``file`` can be read on this machine without a copy, or None (an S3 object)."""
    if file.datastore is None:
        return Path(file.path)
    if open_datastore is None:
        return None
    try:
        return open_datastore(file.datastore).local_path(file.path)
    except ObjectNotFoundError:
        return None


def open_file(file: DatasetFile, open_datastore: OpenDatastore | None) -> BinaryIO:
    if file.datastore is None:
        return open(file.path, "rb")
    if open_datastore is None:
        raise UserError(f"{_where(file)} is on a datastore, and this dataset has no workspace to find it in")
    return open_datastore(file.datastore).open(file.path)


def sha256_of(file: DatasetFile, open_datastore: OpenDatastore | None) -> str:
    """The file's sha256: hashed on this machine when it is here; else the one its store keeps (S3
    metadata written by runlab's upload); else hashed while streaming it."""
    path = local_path(file, open_datastore)
    if path is not None:
        return file_sha256(path)[1]
    if file.datastore is not None and open_datastore is not None:
        kept = open_datastore(file.datastore).stat(file.path).sha256
        if kept is not None:
            return kept
    digest = hashlib.sha256()
    with open_file(file, open_datastore) as stream:
        for chunk in iter_chunks(stream):
            digest.update(chunk)
    return digest.hexdigest()


def add_checksums(files: Sequence[DatasetFile], open_datastore: OpenDatastore | None) -> list[DatasetFile]:
    """``files`` with their sha256, hashed on a few threads (hashlib and file reads release the GIL)."""
    todo = [f for f in files if f.sha256 is None]
    if not todo:
        return list(files)
    with ThreadPoolExecutor(max_workers=min(HASH_THREADS, len(todo))) as pool:
        digests = dict(zip(((f.datastore, f.path) for f in todo), pool.map(lambda f: sha256_of(f, open_datastore),
                                                                             todo)))
    return [f if f.sha256 is not None else replace(f, sha256=digests[(f.datastore, f.path)]) for f in files]


def files_hash(files: Iterable[DatasetFile]) -> str:
    """The identity of a file list: sha256 over each file's place, name, size and checksum, in order."""
    digest = hashlib.sha256()
    for f in files:
        digest.update(json.dumps([f.datastore, f.path, f.name, f.size, f.sha256]).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def iter_chunks(stream: BinaryIO) -> Iterator[bytes]:
    return iter(lambda: stream.read(HASH_CHUNK), b"")
