"""The data cache shared by runs: a dataset's files on this machine, fetched once, viewed read-only.

::

    $RUNLAB_HOME/datacache/
        objects/ab/<sha256>      each distinct content once (read-only files)
        views/<key>/<name>...    a dataset's tree of hard links to its objects (read-only folders)
        tmp/                     what is being fetched or linked (removed on failure)

:meth:`DataCache.view` gives a run its input: the folder ``views/<key>``, where ``key`` names the
exact files (for files with a recorded sha256, their names and checksums; for others, their
place, size and modification time). The first run of some data copies each file it lacks into
``objects`` (from any datastore, hashing while it copies, and checking a registered version's
files against their recorded size and sha256), links the tree under ``tmp`` and renames it into
place; later runs of the same files find the view and copy nothing. A run never sees the
datastore's own files, so a script cannot change them; the objects and views are read-only
(0444 files, 0555 folders) to anyone but root.

Two agents preparing the same data at once both build; the first rename wins and the other's tree
is removed (it uses the winner's view). An object once in place is never replaced (a second copy of
its content is dropped), so an agent can always link what it found there. A file whose content is
in the cache is linked again, not copied (except where its object has as many links as the file
system allows: then that one file is copied).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Sequence

from runlab.core.assets import DatasetFile
from runlab.core.errors import DatasetChangedError, DatasetPathError, ObjectNotFoundError, RunlabError
from runlab.core.process import current_identity, hostname, is_local_process_dead
from runlab.store.copies import copy_file_to
from runlab.store.datasets import OpenDatastore, describe_file
from runlab.store.objects.local import LocalObjectStore, copy_and_hash

READ_ONLY_FILE = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
READ_ONLY_DIR = READ_ONLY_FILE | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
LOCAL_THREADS = 2  # large files of this machine; S3: the datastore's max_workers
SMALL_FILE = 4 << 20  # up to this size, a file of this machine is copied in one read
SMALL_AVERAGE = 1 << 20  # files under this size on average: copied by one thread
KEY_FORMAT = 1


class CacheCanceled(RunlabError):
    """Preparing an input was stopped (the run was canceled)."""


@dataclass(frozen=True)
class CachedView:
    """A dataset's files, read-only, in ``path``; what it took to make them available."""

    path: Path
    key: str
    file_count: int
    total_size: int
    fetched_files: int
    fetched_bytes: int
    reused: bool
    seconds: float

    def describe(self) -> str:
        size = _mb(self.total_size)
        if self.reused:
            return f"{self.file_count:,} files ({size}) found in the data cache in {self.seconds:.2f} s"
        return (f"{self.file_count:,} files ({size}) ready in {self.seconds:.2f} s: {self.fetched_files:,} copied "
                f"into the data cache ({_mb(self.fetched_bytes)}), {self.file_count - self.fetched_files:,} there already")


def view_key(files: Sequence[DatasetFile]) -> str:
    """The name of the view of exactly these files: a file with a sha256 by its content, one without
    by its place, size and modification time."""
    lines = sorted(
        json.dumps([f.name, "sha256", f.sha256]) if f.sha256 else
        json.dumps([f.name, "at", f.datastore, f.path, f.size, f.modified_at])
        for f in files
    )
    return hashlib.sha256("\n".join([f"runlab-view {KEY_FORMAT}", *lines]).encode()).hexdigest()


def safe_name(name: str) -> PurePosixPath:
    """A file's name inside a dataset as a relative path that stays inside its folder."""
    path = PurePosixPath(name)
    if (not name or "\x00" in name or path.is_absolute()
            or any(part in ("", ".", "..") for part in name.split("/"))):
        raise DatasetPathError(f"a dataset file is named {name!r}, which would leave its folder: not made available",
                               path=name)
    return path


@dataclass
class _Progress:
    said: float
    files: int = 0
    bytes: int = 0


class DataCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.views = self.root / "views"
        self.tmp = self.root / "tmp"

    def object_path(self, sha256: str) -> Path:
        return self.objects / sha256[:2] / sha256

    def find(self, key: str) -> Path | None:
        """The view named ``key`` when it is in the cache."""
        path = self.views / key
        return path if path.is_dir() else None

    def view(self, files: Sequence[DatasetFile], opener: OpenDatastore | None, *, verify: bool,
             key: str | None = None, cancel: threading.Event | None = None,
             progress: Callable[[str], None] | None = None) -> CachedView:
        """The read-only folder of ``files`` (each at its dataset name), made now if it is not in the cache.

        ``verify``: the files are a registered version's; a file whose bytes are not the recorded ones
        raises :class:`DatasetChangedError`, and nothing of it reaches the view. ``key`` names the view
        (default: :func:`view_key` of the files)."""
        started = time.monotonic()
        key = key or view_key(files)
        path = self.views / key
        total = sum(f.size for f in files)
        if path.is_dir():
            return CachedView(path, key, len(files), total, 0, 0, True, time.monotonic() - started)
        names = [safe_name(f.name) for f in files]
        for folder in (self.views, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)
        self.sweep()
        digests, fetched, fetched_bytes = self._fill(files, opener, verify=verify, cancel=cancel, progress=progress)
        tree = self.tmp / f"view-{_owner()}-{uuid.uuid4().hex}"
        try:
            self._link(tree, names, digests, cancel)
            try:
                os.rename(tree, path)
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not path.is_dir():
                    raise
                remove_tree(tree)  # another agent made the same view first
        except BaseException:
            if tree.exists():
                remove_tree(tree)
            raise
        return CachedView(path, key, len(files), total, fetched, fetched_bytes, False, time.monotonic() - started)

    def sweep(self) -> int:
        """Remove what processes that died (an agent killed while copying) left in ``tmp``; the count."""
        removed = 0
        try:
            entries = list(os.scandir(self.tmp))
        except FileNotFoundError:
            return 0
        for entry in entries:
            parts = entry.name.split("-")  # <kind>-<pid>-<start ticks>-<uuid>: see _owner
            if len(parts) != 4 or not is_local_process_dead(f"{hostname()}:{parts[1]}:{parts[2]}"):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    remove_tree(Path(entry.path))
                else:
                    os.unlink(entry.path)
                removed += 1
            except FileNotFoundError:
                pass  # another agent swept it first
        return removed

    # -- objects ---------------------------------------------------------------------------------------

    def _fill(self, files: Sequence[DatasetFile], opener: OpenDatastore | None, *, verify: bool,
              cancel: threading.Event | None, progress: Callable[[str], None] | None) -> tuple[list[str], int, int]:
        """The sha256 of each file, after copying into ``objects`` each file whose content is not there."""
        digests: list[str | None] = [f.sha256 if f.sha256 and self.object_path(f.sha256).is_file() else None
                                     for f in files]
        todo = [i for i, d in enumerate(digests) if d is None]
        if not todo:
            return [d for d in digests if d is not None], 0, 0
        for n in range(256):
            (self.objects / f"{n:02x}").mkdir(parents=True, exist_ok=True)
        lock = threading.Lock()
        done = _Progress(said=time.monotonic())
        todo_bytes = sum(files[i].size for i in todo)

        def fetch(i: int) -> None:
            if cancel is not None and cancel.is_set():
                raise CacheCanceled("preparing the run's inputs was canceled")
            file = files[i]
            size, digest = self._store_object(file, opener)
            if verify and (size != file.size or (file.sha256 is not None and digest != file.sha256)):
                why = f"{size:,} bytes, {file.size:,} recorded" if size != file.size else "its sha256 differs"
                raise DatasetChangedError(
                    f"{describe_file(file)} changed since its dataset version was registered ({why}): register "
                    "the data as it is now with create_new_version=True", path=file.path)
            digests[i] = digest
            with lock:
                done.files += 1
                done.bytes += size
                now = time.monotonic()
                if progress is not None and now - done.said >= 2.0:
                    done.said = now
                    progress(f"copied {done.files:,} of {len(todo):,} files into the data cache "
                             f"({_mb(done.bytes)} of {_mb(todo_bytes)})")

        stores = {name for i in todo if (name := files[i].datastore) is not None}
        remote = opener is not None and any(not isinstance(opener(s), LocalObjectStore) for s in stores)
        small = todo_bytes / len(todo) < SMALL_AVERAGE
        # small local files: one thread is fastest (the work is system calls under the GIL); S3: many
        threads = (max(opener(s).max_workers for s in stores) if remote and opener is not None
                   else 1 if small else LOCAL_THREADS)
        if threads == 1:
            for i in todo:
                fetch(i)
        else:
            with ThreadPoolExecutor(max_workers=min(threads, len(todo))) as pool:
                for _ in pool.map(fetch, todo):
                    pass
        return [d for d in digests if d is not None], done.files, done.bytes

    def _store_object(self, file: DatasetFile, opener: OpenDatastore | None) -> tuple[int, str]:
        """Copy ``file`` into ``objects`` under its sha256: (size, sha256) of the bytes stored."""
        tmp = f"{self.tmp}/object-{_owner()}-{uuid.uuid4().hex}"
        source = _open_source(file, opener)
        try:
            if source is None:  # not on this machine (S3): the store writes it
                size, digest = copy_file_to(file, opener, Path(tmp))
                os.chmod(tmp, READ_ONLY_FILE)
            else:
                size, digest = _copy_fd(source, tmp)
            try:  # never over an object in place: an agent linking it would get ENOENT (its inode unlinked)
                os.link(tmp, f"{self.objects}/{digest[:2]}/{digest}")
            except FileExistsError:
                pass  # the same content, stored by another agent meanwhile: this copy goes
            os.unlink(tmp)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        finally:
            if source is not None:
                os.close(source)
        return size, digest

    # -- the tree --------------------------------------------------------------------------------------

    def _link(self, tree: Path, names: Sequence[PurePosixPath], digests: Sequence[str],
              cancel: threading.Event | None) -> None:
        tree.mkdir()
        root, objects = str(tree), str(self.objects)
        folders = {""}
        for n, (name, digest) in enumerate(zip(names, digests)):
            if n % 1024 == 0 and cancel is not None and cancel.is_set():
                raise CacheCanceled("preparing the run's inputs was canceled")
            rel = str(name)
            parent = rel.rpartition("/")[0]
            if parent not in folders:
                os.makedirs(f"{root}/{parent}", exist_ok=True)
                folders.update("/".join(parent.split("/")[:k]) for k in range(1, parent.count("/") + 2))
            source, target = f"{objects}/{digest[:2]}/{digest}", f"{root}/{rel}"
            try:
                os.link(source, target)
            except OSError as exc:
                if exc.errno != errno.EMLINK:
                    raise
                shutil.copyfile(source, target)  # as many links as the file system allows: this one is a copy
                os.chmod(target, READ_ONLY_FILE)
        for folder in sorted(folders, key=lambda f: f.count("/") + bool(f), reverse=True):
            os.chmod(f"{root}/{folder}" if folder else root, READ_ONLY_DIR)

def _owner() -> str:
    """``<pid>-<start ticks>`` of this process, as its temporary names in the cache carry it, so that a
    later sweep can tell a dead owner from a live one (whose pid may have been reused)."""
    pid = os.getpid()
    if pid not in _OWNERS:  # once per process: it reads /proc, and a view may take 100,000 names
        _host, _pid, start = current_identity().rsplit(":", 2)
        _OWNERS[pid] = f"{pid}-{start}"
    return _OWNERS[pid]


_OWNERS: dict[int, str] = {}


def _open_source(file: DatasetFile, opener: OpenDatastore | None) -> int | None:
    """A read-only descriptor of ``file`` when it lies on this machine, else None."""
    try:
        if file.datastore is None:
            return os.open(file.path, os.O_RDONLY | os.O_CLOEXEC)
        if opener is None:
            raise DatasetPathError(f"{describe_file(file)} is on a datastore, and this dataset has no workspace",
                                   path=file.path)
        store = opener(file.datastore)
        if not isinstance(store, LocalObjectStore):
            return None
        return store.open_fd(file.path)
    except OSError as exc:
        raise DatasetPathError(f"cannot read {describe_file(file)}: {exc.strerror or exc}", path=file.path) from exc
    except ObjectNotFoundError as exc:
        raise DatasetPathError(f"cannot read {describe_file(file)}: {exc}", path=file.path) from exc


def _copy_fd(source: int, dest: str) -> tuple[int, str]:
    """Copy the open file ``source`` to the new read-only file ``dest``: (size, sha256). A small file
    goes in one read and one write (most of the cost is opening files); a large one through the
    kernel's copy while another thread hashes it."""
    size = os.fstat(source).st_size
    out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, READ_ONLY_FILE)
    try:
        if size > SMALL_FILE:
            return copy_and_hash(source, out, size)
        chunks = []
        while chunk := os.read(source, max(size + 1, 1 << 16)):  # to the end, if the file grew meanwhile
            chunks.append(chunk)
        data = b"".join(chunks)
        view = memoryview(data)
        while view:
            view = view[os.write(out, view):]
        return len(data), hashlib.sha256(data).hexdigest()
    finally:
        os.close(out)


def remove_tree(root: Path) -> None:
    """Remove a tree whose folders are read-only."""
    def writable_again(function: Callable[..., object], path: str, _exc: object) -> None:
        os.chmod(os.path.dirname(path), stat.S_IRWXU)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, stat.S_IRWXU)
        function(path)

    if root.is_dir():
        root.chmod(stat.S_IRWXU)
    shutil.rmtree(root, onerror=writable_again)


def _mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"
