"""Uploads to and downloads from an object store: which files, in parallel, checksummed, with progress.

Used by datastores (``Datastore.upload``, ``upload_files``, ``download``) and, later, by the agent.

**Which files.** :func:`folder_items` takes the *contents* of a folder (as Azure ML's
``upload(src_dir, target_path)`` does: ``data/a.png`` goes to ``<target_path>/a.png``);
:func:`file_items` takes a list of files, named relative to ``relative_root`` (default: their common
folder). A link to a file inside the source is uploaded as that file; a link that leads outside it
(a file or a folder) is refused with an error naming it, before anything is copied; broken links,
links to folders inside the source, special files and leftovers of interrupted copies are left out
and named in the summary. Target paths with ``..``, a leading ``/`` or a NUL are refused.

**What is skipped.** Unless ``overwrite``, a file is skipped when the store already holds the same
bytes under its name: same size, and same sha256 (from the datastore's file index, when the object's
etag is the one recorded; else from the store, where it keeps one). A file of the same size with
other bytes is copied. ``overwrite=True`` copies every file without comparing.

**What is recorded.** ``record`` receives a :class:`~runlab.core.assets.DatastoreFileRecord` (size,
sha256, etag) for each file once the store holds all of it, in batches: an interrupted upload leaves
no row for a file it did not finish, and no half-written file (stores write atomically), so a later
upload copies it again.

**Parallelism.** Files go to a thread pool of the store's ``max_workers`` (the GIL is released while
bytes move and are hashed), except small files (under 1 MB on average) to a local folder, which one
thread copies fastest; one file, or ``max_workers=1``, runs in the calling thread.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Mapping, Sequence

from runlab.core.assets import DatastoreFileRecord
from runlab.core.errors import InvalidNameError, ObjectNotFoundError, StoreError, UserError
from runlab.core.names import shown
from runlab.store.objects import TEMP_PREFIX, ObjectInfo, ObjectStore, check_object_name, check_prefix, file_sha256
from runlab.store.paths import check_relative_name, leads_out

__all__ = [
    "LeftOut",
    "TransferResult",
    "common_folder",
    "UploadItem",
    "download",
    "file_items",
    "folder_items",
    "format_size",
    "target_prefix",
    "upload",
]

RECORD_BATCH = 500  # index rows written at once
RECORD_INTERVAL_S = 1.0  # ... or at least this often
LISTING_THRESHOLD = 20  # from this many files on, list the target once instead of one stat per file
# On a local disk, threads pay off only for files that take long to copy: for small files the GIL and
# the folder's lock make 2 or 4 threads slower than one (measured: benchmarks/bench_data.py --figures workers).
LOCAL_PARALLEL_MIN_MEAN_SIZE = 1 << 20
_SHOWN = 5  # paths named in one error message
RecordFiles = Callable[[Sequence[DatastoreFileRecord]], None]


@dataclass(frozen=True)
class UploadItem:
    """One file to upload: ``source`` (a path) on this machine, ``name`` in the store, ``size`` when listed."""

    source: str
    name: str
    size: int


@dataclass(frozen=True)
class LeftOut:
    """A path of the source that is not copied, and why."""

    path: str
    reason: str


@dataclass
class TransferResult:
    """What an upload or a download did: names copied, names skipped (already there), paths left
    out, bytes copied and seconds taken. :meth:`summary` is the line printed at the end."""

    verb: str
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    left_out: list[LeftOut] = field(default_factory=list)
    nbytes: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """``Uploaded 5 files, 170.5 MB in 1.9 s; skipped 2 already there``."""
        n = len(self.copied)
        line = f"{self.verb} {n:,} file{'' if n == 1 else 's'}, {format_size(self.nbytes)} in {self.seconds:.1f} s"
        if self.skipped:
            line += f"; skipped {len(self.skipped):,} already there"
        if self.left_out:
            named = ", ".join(f"{x.path} ({x.reason})" for x in self.left_out[:_SHOWN])
            more = f" and {len(self.left_out) - _SHOWN:,} more" if len(self.left_out) > _SHOWN else ""
            line += f"; left out {len(self.left_out):,}: {named}{more}"
        return line


def format_size(nbytes: int) -> str:
    """Bytes in decimal units, as ``170.5 MB``."""
    if nbytes < 1000:
        return f"{nbytes} B"
    value = float(nbytes)
    for unit in ("KB", "MB", "GB", "TB", "PB"):
        value /= 1000
        if value < 1000 or unit == "PB":
            return f"{value:.1f} {unit}"
    return f"{nbytes} B"  # not reached


# -- which files -------------------------------------------------------------------------------------


def target_prefix(target_path: object, where: str = "the datastore") -> str:
    """``target_path`` as a folder name in the store: "" for None, "", "." or "/" (the root), else a
    checked relative path without trailing ``/``; :class:`InvalidNameError` naming it otherwise."""
    if target_path is None:
        return ""
    if isinstance(target_path, os.PathLike):
        target_path = os.fspath(target_path)
    if not isinstance(target_path, str):
        raise InvalidNameError(f"target_path must be a str, got {shown(target_path)}", name=target_path)
    text = target_path.replace("\\", "/")
    if text in ("", ".", "/", "./"):
        return ""
    if text.startswith("/"):
        raise InvalidNameError(
            f"target_path {shown(target_path)} must be relative to the datastore's root (no leading '/'): "
            "for example 'datasets/cifar10'", name=target_path)
    return check_relative_name(text.rstrip("/"), "target_path", where, "for example 'datasets/cifar10'")


def _join(prefix: str, rel: str) -> str:
    return f"{prefix}/{rel}" if prefix else rel


def _outside_error(links: list[tuple[str, str]], root: str) -> UserError:
    named = "; ".join(f"{path} -> {target}" for path, target in links[:_SHOWN])
    more = f" and {len(links) - _SHOWN} more" if len(links) > _SHOWN else ""
    return UserError(
        f"{'a link' if len(links) == 1 else f'{len(links)} links'} in {root} lead{'s' if len(links) == 1 else ''} "
        f"outside it ({named}{more}): runlab does not upload what such links point to; replace "
        f"{'it' if len(links) == 1 else 'them'} with the files, or upload the folder they point to. Nothing was "
        "uploaded", path=links[0][0], links=[p for p, _t in links])


def folder_items(src_dir: str | os.PathLike[str], target_path: object = None,
                 where: str = "the datastore") -> tuple[list[UploadItem], list[LeftOut]]:
    """The files under ``src_dir``, named ``<target_path>/<path relative to src_dir>``, and what is left
    out. ``UserError`` for a ``src_dir`` that is not a folder or that holds a link leading outside it;
    ``InvalidNameError`` for a bad ``target_path``."""
    prefix = target_prefix(target_path, where)
    try:
        root = os.path.abspath(os.fspath(src_dir))
        st = os.stat(root)
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"cannot upload {shown(src_dir)}: it does not exist or cannot be read ({exc})",
                        path=str(src_dir)) from exc
    if not stat.S_ISDIR(st.st_mode):
        raise UserError(f"cannot upload {root} with upload(): it is not a folder; use upload_files([{str(src_dir)!r}])",
                        path=root)
    real_root = os.path.realpath(root)
    items: list[UploadItem] = []
    left_out: list[LeftOut] = []
    outside: list[tuple[str, str]] = []

    def walk(folder: str, rel_dir: str) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise UserError(f"cannot read folder {folder}: {exc.strerror or exc}", path=folder) from exc
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if entry.name.startswith(TEMP_PREFIX):
                left_out.append(LeftOut(rel, "a temporary file of an interrupted copy"))
                continue
            if entry.is_symlink():
                real = os.path.realpath(entry.path)
                if real != real_root and not real.startswith(real_root + os.sep):
                    outside.append((entry.path, real))
                    continue
                try:
                    target = os.stat(entry.path)
                except OSError:
                    left_out.append(LeftOut(rel, "a broken link"))
                    continue
                if stat.S_ISDIR(target.st_mode):
                    left_out.append(LeftOut(rel, "a link to a folder inside the source: its files are uploaded "
                                                 "under their own paths"))
                elif stat.S_ISREG(target.st_mode):
                    items.append(UploadItem(entry.path, _join(prefix, rel), target.st_size))
                else:
                    left_out.append(LeftOut(rel, "not a regular file"))
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    walk(entry.path, rel)
                elif entry.is_file(follow_symlinks=False):
                    items.append(UploadItem(entry.path, _join(prefix, rel), entry.stat(follow_symlinks=False).st_size))
                else:
                    left_out.append(LeftOut(rel, "not a regular file"))
            except OSError:
                left_out.append(LeftOut(rel, "gone while it was listed"))

    walk(root, "")
    if outside:
        raise _outside_error(outside, root)
    return _checked_items(items, left_out, where), left_out


def _checked_items(items: list[UploadItem], left_out: list[LeftOut], where: str) -> list[UploadItem]:
    checked = []
    for item in items:
        try:
            checked.append(UploadItem(item.source, check_object_name(item.name, where), item.size))
        except InvalidNameError as exc:
            left_out.append(LeftOut(item.source, exc.message))
    return checked


def file_items(files: Iterable[str | os.PathLike[str]], relative_root: str | os.PathLike[str] | None = None,
               target_path: object = None, where: str = "the datastore") -> tuple[list[UploadItem], list[LeftOut]]:
    """The files ``files``, each named ``<target_path>/<its path relative to relative_root>``
    (``relative_root`` defaults to the files' common folder). ``UserError`` for a path that is not a
    file, is not under ``relative_root``, or is a link leading outside it."""
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    prefix = target_prefix(target_path, where)
    paths: list[str] = []
    for f in files:
        try:
            path = os.path.abspath(os.fspath(f))
            st = os.stat(path)
        except (OSError, ValueError, TypeError) as exc:
            raise UserError(f"cannot upload {shown(f)}: it does not exist or cannot be read ({exc}). Nothing was "
                            "uploaded", path=str(f)) from exc
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"cannot upload {path} with upload_files(): it is not a file (for a folder use "
                            "upload(src_dir=...)). Nothing was uploaded", path=path)
        paths.append(path)
    if not paths:
        return [], []
    if relative_root is None:
        root = os.path.commonpath([os.path.dirname(p) for p in paths])
    else:
        try:
            root = os.path.abspath(os.fspath(relative_root))
        except (ValueError, TypeError) as exc:
            raise UserError(f"invalid relative_root {shown(relative_root)}: {exc}", path=relative_root) from exc
    real_root = os.path.realpath(root)
    items: list[UploadItem] = []
    outside: list[tuple[str, str]] = []
    seen: set[str] = set()
    for path in paths:
        if path != root and not path.startswith(root.rstrip(os.sep) + os.sep):
            raise UserError(f"{path} is not under relative_root {root}: pass a relative_root that holds every file "
                            "(or leave it out: the files' common folder). Nothing was uploaded", path=path)
        real = os.path.realpath(path)
        if not real.startswith(real_root.rstrip(os.sep) + os.sep):
            outside.append((path, real))
            continue
        rel = PurePosixPath(*Path(os.path.relpath(path, root)).parts).as_posix()
        name = _join(prefix, rel)
        if name in seen:
            continue
        seen.add(name)
        items.append(UploadItem(path, name, os.stat(path).st_size))
    if outside:
        raise _outside_error(outside, root)
    left_out: list[LeftOut] = []
    return _checked_items(items, left_out, where), left_out


# -- progress -----------------------------------------------------------------------------------------


class _Progress:
    """Counters that worker threads bump; when shown, a rich bar (files and bytes) redrawn 10 times
    a second from them, so that 10,000 small files cost 10,000 additions, not 10,000 redraws."""

    def __init__(self, verb: str, files: int, nbytes: int, show: bool, console: Any = None) -> None:
        self._lock = threading.Lock()
        self.files = 0
        self.nbytes = 0
        self._show = show
        self._bar: Any = None
        if not show:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.console = console if console is not None else Console()
        self._bar = Progress(
            TextColumn(f"[bold]{verb}[/bold]"), BarColumn(), TextColumn("{task.fields[files]}/" f"{files:,} files"),
            DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
            console=self.console, auto_refresh=False, transient=False)
        self._task = self._bar.add_task(verb, total=max(nbytes, 1), files="0")
        self._bar.start()
        self._stop = threading.Event()
        self._painter = threading.Thread(target=self._paint, name="runlab-progress", daemon=True)
        self._painter.start()

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self.nbytes += n

    def add_file(self) -> None:
        with self._lock:
            self.files += 1

    def _draw(self) -> None:
        with self._lock:
            files, nbytes = self.files, self.nbytes
        self._bar.update(self._task, completed=nbytes, files=f"{files:,}")
        self._bar.refresh()

    def _paint(self) -> None:
        while not self._stop.wait(0.1):
            self._draw()

    def close(self, done: bool) -> None:
        if self._bar is None:
            return
        self._stop.set()
        self._painter.join()
        if done:
            total = self._bar.tasks[0].total
            with self._lock:
                if self.nbytes == 0:
                    self.nbytes = int(total or 1)  # an empty upload is complete, not at 0 %
        self._draw()
        self._bar.stop()

    def print(self, line: str) -> None:
        if self._show:
            self.console.print(line, highlight=False, markup=False, soft_wrap=True)


# -- the engine -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    name: str
    copied: bool
    nbytes: int
    row: DatastoreFileRecord | None


def _trusted_sha256(there: ObjectInfo, row: DatastoreFileRecord | None) -> str | None:
    """The sha256 of the object ``there`` that the index knows, if the object has not changed since."""
    if there.sha256 is not None:
        return there.sha256
    if row is not None and row.size == there.size and row.etag is not None and row.etag == there.etag:
        return row.sha256
    return None


def _stat_or_none(store: ObjectStore, name: str) -> ObjectInfo | None:
    try:
        return store.stat(name)
    except ObjectNotFoundError:
        return None


def _run(items: Sequence[Any], work: Callable[[Any], _Outcome], workers: int,
         on_outcome: Callable[[_Outcome], None]) -> None:
    """``work`` on each item, in ``workers`` threads; ``on_outcome`` in this thread, as each ends.
    The first error stops what has not started and is raised once the running ones are done."""
    if workers <= 1 or len(items) <= 1:
        for item in items:
            on_outcome(work(item))
        return
    executor = ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="runlab-transfer")
    try:
        pending: set[Future[_Outcome]] = {executor.submit(work, item) for item in items}
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION, timeout=RECORD_INTERVAL_S)
            failed = None
            for future in done:
                if future.exception() is not None:
                    failed = failed or future
                else:
                    on_outcome(future.result())
            if failed is not None:
                for future in pending:
                    future.cancel()
                for future in wait(pending).done:
                    if not future.cancelled() and future.exception() is None:
                        on_outcome(future.result())
                failed.result()  # raises its error
            on_outcome(_TICK)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


_TICK = _Outcome("", False, 0, None)  # a heartbeat: lets the caller write its rows at least every second


class _Recorder:
    """Index rows, written in batches (and at least every second) once their files are complete."""

    def __init__(self, record: RecordFiles | None) -> None:
        self._record = record
        self._rows: list[DatastoreFileRecord] = []
        self._last = time.monotonic()

    def add(self, row: DatastoreFileRecord | None) -> None:
        if row is not None and self._record is not None:
            self._rows.append(row)
        if len(self._rows) >= RECORD_BATCH or (self._rows and time.monotonic() - self._last >= RECORD_INTERVAL_S):
            self.flush()

    def flush(self) -> None:
        if self._rows and self._record is not None:
            rows, self._rows = self._rows, []
            self._record(rows)
        self._last = time.monotonic()


def upload(
    store: ObjectStore,
    items: Sequence[UploadItem],
    *,
    known: Mapping[str, DatastoreFileRecord] | None = None,
    record: RecordFiles | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
    max_workers: int | None = None,
    left_out: Sequence[LeftOut] = (),
    console: Any = None,
) -> TransferResult:
    """Copy ``items`` into ``store``; see this module's docstring for what is skipped and recorded.

    ``known`` is the datastore's file index (by name), ``record`` writes rows to it. Raises the
    store's errors (``UserError`` for a source that cannot be read or changed meanwhile,
    ``StoreUnavailableError``...) once the files being copied are done; rows of the files completed
    before are recorded first.
    """
    known = known or {}
    started = time.perf_counter()
    result = TransferResult("Uploaded", left_out=list(left_out))
    listing: dict[str, ObjectInfo] | None = None
    if not overwrite and len(items) >= LISTING_THRESHOLD:
        listing = {info.name: info for info in store.list(common_folder([i.name for i in items]))}
    progress = _Progress("Uploading", len(items), sum(i.size for i in items), show_progress, console)
    recorder = _Recorder(record)

    def work(item: UploadItem) -> _Outcome:
        if not overwrite:
            there = listing.get(item.name) if listing is not None else _stat_or_none(store, item.name)
            if there is not None and there.size == item.size:
                row = known.get(item.name)
                sha_there = _trusted_sha256(there, row)
                if sha_there is None and listing is not None:
                    sha_there = (_stat_or_none(store, item.name) or there).sha256  # S3 keeps it in metadata
                if sha_there is not None:
                    size, sha256 = file_sha256(item.source)
                    if size == there.size and sha256 == sha_there:
                        progress.add_bytes(size)
                        progress.add_file()
                        stale = row is None or row.sha256 != sha256 or row.etag != there.etag
                        new_row = DatastoreFileRecord(item.name, size, sha256, there.etag, time.time())
                        return _Outcome(item.name, False, 0, new_row if stale else None)
        info = store.put(item.name, item.source, progress=progress.add_bytes)
        progress.add_file()
        sha256 = info.sha256 if info.sha256 is not None else file_sha256(item.source)[1]
        return _Outcome(item.name, True, info.size, DatastoreFileRecord(info.name, info.size, sha256, info.etag,
                                                                        time.time()))

    def on_outcome(outcome: _Outcome) -> None:
        if outcome is not _TICK:
            (result.copied if outcome.copied else result.skipped).append(outcome.name)
            result.nbytes += outcome.nbytes
        recorder.add(outcome.row)

    done = False
    try:
        _run(items, work, max_workers or _workers(store, [i.size for i in items]), on_outcome)
        done = True
    finally:
        try:
            recorder.flush()
        finally:
            progress.close(done)
            result.seconds = time.perf_counter() - started
    progress.print(result.summary())
    return result


def _workers(store: ObjectStore, sizes: Sequence[int]) -> int:
    """How many threads copy ``sizes`` to or from ``store`` fastest (see LOCAL_PARALLEL_MIN_MEAN_SIZE)."""
    if not sizes:
        return 1
    if store.kind == "local" and sum(sizes) / len(sizes) < LOCAL_PARALLEL_MIN_MEAN_SIZE:
        return 1
    return max(1, store.max_workers)


def common_folder(names: Sequence[str]) -> str:
    """The deepest folder (with a trailing ``/``) holding every name; "" for the root."""
    if not names:
        return ""
    folders = [n.rsplit("/", 1)[0] if "/" in n else "" for n in names]
    common = os.path.commonpath(folders) if all(folders) else ""
    return common + "/" if common else ""


def download(
    store: ObjectStore,
    target_dir: str | os.PathLike[str],
    *,
    prefix: str | None = None,
    known: Mapping[str, DatastoreFileRecord] | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
    max_workers: int | None = None,
    console: Any = None,
) -> TransferResult:
    """Copy the objects whose names start with ``prefix`` to ``<target_dir>/<name>``.

    Unless ``overwrite``, a local file already holding the object's bytes (same size and sha256) is
    skipped. Every file is written through a temporary file and a rename. ``UserError`` when a name
    would be written through a link in ``target_dir`` that leads outside it (nothing is copied then).
    """
    known = known or {}
    started = time.perf_counter()
    result = TransferResult("Downloaded")
    try:
        root = os.path.realpath(os.fspath(target_dir))
        os.makedirs(root, exist_ok=True)
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"cannot download into {shown(target_dir)}: {exc}", path=str(target_dir)) from exc
    objects = store.list(check_prefix(prefix, store.description))
    outside = [(os.path.join(root, o.name), os.path.realpath(os.path.join(root, o.name)))
               for o in objects if leads_out(root, o.name)]
    if outside:
        raise _outside_error(outside, root)
    progress = _Progress("Downloading", len(objects), sum(o.size for o in objects), show_progress, console)

    def work(obj: ObjectInfo) -> _Outcome:
        dest = os.path.join(root, obj.name)
        if not overwrite:
            try:
                st = os.lstat(dest)
            except OSError:
                st = None
            if st is not None and stat.S_ISREG(st.st_mode) and st.st_size == obj.size:
                sha_there = _trusted_sha256(obj, known.get(obj.name))
                if sha_there is None:
                    sha_there = (_stat_or_none(store, obj.name) or obj).sha256
                if sha_there is not None and file_sha256(dest) == (obj.size, sha_there):
                    progress.add_bytes(obj.size)
                    progress.add_file()
                    return _Outcome(obj.name, False, 0, None)
        try:
            info = store.get(obj.name, Path(dest), progress=progress.add_bytes)
        except StoreError as exc:
            if os.path.isdir(dest):
                raise StoreError(f"cannot download {obj.name!r} to {dest}: a folder of that name is there",
                                 path=dest) from exc
            raise
        progress.add_file()
        return _Outcome(obj.name, True, info.size, None)

    def on_outcome(outcome: _Outcome) -> None:
        if outcome is not _TICK:
            (result.copied if outcome.copied else result.skipped).append(outcome.name)
            result.nbytes += outcome.nbytes

    done = False
    try:
        _run(objects, work, max_workers or _workers(store, [o.size for o in objects]), on_outcome)
        done = True
    finally:
        progress.close(done)
        result.seconds = time.perf_counter() - started
    progress.print(result.summary())
    return result
