"""LocalObjectStore: objects as files under a folder of this machine.

``<root>/<name>``, written through ``<folder>/.runlab-tmp-...`` and ``os.replace``: a crash or an
exception mid-copy leaves at most a temporary file, which listings skip, never a short file under
the object's name. Files are not fsynced (as ``cp`` does not): a power cut may lose the last writes,
a killed process loses nothing that was renamed into place.

Names are checked (:func:`runlab.store.objects.check_object_name`) and never read or written
through a link that leads out of the root: such a file is absent to reads and listings, and writes
through it are refused. A link inside the root to a file inside the root is read as that file.

Copies move bytes with ``os.copy_file_range`` (in the kernel, as ``cp`` does) while a second
thread computes the sha256 of the same range, so hashing costs no extra time on a machine with two
cores; small files are read, hashed and written in one go.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import stat
import threading
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, TypeVar

from runlab.core.errors import (
    InvalidNameError,
    ObjectNotFoundError,
    RunlabError,
    StoreError,
    StoreUnavailableError,
    UserError,
)
from runlab.core.names import shown
from runlab.store.objects import (
    HASH_BLOCK,
    TEMP_PREFIX,
    ObjectInfo,
    ProgressCallback,
    check_object_name,
    check_prefix,
    fingerprint,
    source_changed,
)
from runlab.store.paths import leads_out

T = TypeVar("T")

__all__ = ["DEFAULT_LOCAL_WORKERS", "LocalObjectStore", "copy_and_hash", "write_local_file"]

DEFAULT_LOCAL_WORKERS = 2  # for large files; small ones go one at a time (store.transfer)
SMALL_FILE = 8 << 20  # below this, read, hash and write in one thread
_KERNEL_CHUNK = 16 << 20
_ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EISDIR)
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
_NO_KERNEL_COPY = (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF, errno.EPERM)
_counter = itertools.count()


class _Shrank(Exception):
    """The source had fewer bytes for the hashing thread than for the copy: it changed meanwhile."""


def _temp_name() -> str:
    """A name no other writer uses: this process, a counter, and random bits (a leftover of a killed
    process whose pid is reused does not collide)."""
    return f"{TEMP_PREFIX}{os.getpid()}-{next(_counter)}-{os.urandom(4).hex()}"


def _etag(st: os.stat_result) -> str:
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"


def _info(name: str, st: os.stat_result, sha256: str | None = None) -> ObjectInfo:
    return ObjectInfo(name=name, size=st.st_size, sha256=sha256, etag=_etag(st), modified_at=st.st_mtime)


def copy_and_hash(src: int, dst: int, size: int, progress: ProgressCallback | None = None) -> tuple[int, str]:
    """Copy ``size`` bytes from the start of file descriptor ``src`` to ``dst``; (bytes copied, their sha256).

    Large files go through ``os.copy_file_range`` while another thread hashes the same bytes with
    ``os.preadv``; small ones, or where the kernel cannot copy between the two files, through one
    buffer. Stops early at the end of ``src`` (a file that shrank: the caller's check sees it).
    """
    if size >= SMALL_FILE and hasattr(os, "copy_file_range"):
        try:
            return _kernel_copy(src, dst, size, progress)
        except OSError as exc:
            if exc.errno not in _NO_KERNEL_COPY:
                raise
            os.lseek(dst, 0, os.SEEK_SET)
            os.ftruncate(dst, 0)
    return _buffered_copy(src, dst, size, progress)


def _buffered_copy(src: int, dst: int, size: int, progress: ProgressCallback | None) -> tuple[int, str]:
    digest = hashlib.sha256()
    total = 0
    offset = 0
    block = min(HASH_BLOCK, size + 1) if size < HASH_BLOCK else HASH_BLOCK  # a small file: one read
    while True:
        data = os.pread(src, block, offset)
        if not data:
            break
        offset += len(data)
        digest.update(data)
        view = memoryview(data)
        while view:
            written = os.write(dst, view)
            view = view[written:]
        total += len(data)
        if progress is not None:
            progress(len(data))
        if len(data) < block and total == size:
            break  # at the end (a file that grew is seen by the caller's check)
    return total, digest.hexdigest()


def _kernel_copy(src: int, dst: int, size: int, progress: ProgressCallback | None) -> tuple[int, str]:
    digest = hashlib.sha256()
    hashed = [0]
    failure: list[BaseException] = []
    stop = threading.Event()  # set when the copy fails: the hasher need not finish

    def hash_range() -> None:
        buffer = bytearray(4 * HASH_BLOCK)
        view = memoryview(buffer)
        try:
            while hashed[0] < size and not stop.is_set():
                n = os.preadv(src, [view[: min(len(buffer), size - hashed[0])]], hashed[0])
                if n == 0:
                    break
                digest.update(view[:n])
                hashed[0] += n
        except BaseException as exc:  # re-raised in the copying thread
            failure.append(exc)

    hasher = threading.Thread(target=hash_range, name="runlab-hash", daemon=True)
    hasher.start()
    copied = 0
    try:
        while copied < size:
            n = os.copy_file_range(src, dst, min(_KERNEL_CHUNK, size - copied), copied, copied)
            if n == 0:
                break
            copied += n
            if progress is not None:
                progress(n)
    except BaseException:
        stop.set()
        raise
    finally:
        hasher.join()
    if failure:
        raise failure[0]
    if hashed[0] != copied:  # the source shrank between the two reads
        raise _Shrank()
    return copied, digest.hexdigest()


class LocalObjectStore:
    """Objects as files under ``root`` (a folder; created when missing unless ``create=False``)."""

    kind = "local"

    def __init__(self, root: Path | str, *, create: bool = True, max_workers: int = DEFAULT_LOCAL_WORKERS) -> None:
        self.root = Path(os.path.realpath(os.fspath(root)))
        self._root = str(self.root)
        self._create = create
        self._checked_root = False
        self._safe_folders: set[str] = set()  # folders (relative) reached through no link leading out
        self.description = f"folder {self.root}"
        self.max_workers = max_workers

    def __repr__(self) -> str:
        return f"LocalObjectStore({str(self.root)!r})"

    # -- the root, names and errors -----------------------------------------------------------------

    def check(self) -> None:
        """Raise ``StoreUnavailableError`` unless the root is a folder that can be used (made if missing)."""
        try:
            if self._create:
                self.root.mkdir(parents=True, exist_ok=True)
            st = os.stat(self._root)
        except OSError as exc:
            raise StoreUnavailableError(f"cannot use {self.description} as a datastore: {exc.strerror or exc}; "
                                        "check that the folder exists and can be written", path=self._root) from exc
        if not stat.S_ISDIR(st.st_mode):
            raise StoreUnavailableError(f"cannot use {self.root} as a datastore: it is not a folder", path=self._root)
        self._checked_root = True

    def _name(self, name: str) -> str:
        return check_object_name(name, self.description)

    def _path(self, rel: str, writing: bool) -> str:
        """The path of checked name ``rel``, refused when a link on the way leads out of the root.

        A write replaces the last part (a rename never follows a link), so only the folders on the
        way are checked; a read checks the last part too. Folders found safe are remembered.
        """
        folder = rel.rpartition("/")[0]
        out = bool(folder) and folder not in self._safe_folders and leads_out(self._root, folder)
        if not out and not writing:
            out = leads_out(os.path.join(self._root, folder) if folder else self._root, rel.rpartition("/")[2])
            out = out and leads_out(self._root, rel)  # a link to a file elsewhere inside the root is fine
        if out:
            if writing:
                raise StoreError(
                    f"cannot write {rel!r} in {self.description}: a link on the way leads outside the folder "
                    f"(to {os.path.realpath(os.path.join(self._root, folder))}); remove the link", name=rel)
            raise ObjectNotFoundError(
                f"{self.description} has no file {rel!r}: it is a link that leads outside the folder, and runlab "
                "does not follow such links", name=rel)
        return os.path.join(self._root, rel)

    def _folder_is_safe(self, rel: str) -> None:
        """Remember that the folder of ``rel`` exists and is reached through no link leading out."""
        if len(self._safe_folders) > 100_000:
            self._safe_folders.clear()
        self._safe_folders.add(rel.rpartition("/")[0])

    def _os_error(self, exc: OSError, rel: str, writing: bool) -> RunlabError:
        if exc.errno == errno.ENAMETOOLONG:
            return InvalidNameError(f"datastore path {shown(rel)} is too long for the file system "
                                    f"({exc.strerror}): use a shorter name", name=rel)
        if not writing and exc.errno in _ABSENT:
            return ObjectNotFoundError(f"{self.description} has no file {rel!r}", name=rel)
        if writing and exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
            return StoreError(f"cannot write {rel!r} in {self.description}: a file and a folder would have the "
                              f"same name ({exc.strerror})", name=rel)
        doing = "write" if writing else "read"
        cls = StoreUnavailableError if writing and exc.errno in _FULL else StoreError
        return cls(f"cannot {doing} {rel!r} in {self.description}: {exc.strerror or exc}", name=rel)

    # -- writing --------------------------------------------------------------------------------------

    def _write(self, name: str, fill: Callable[[int], tuple[int, str]]) -> ObjectInfo:
        """Write object ``name`` through a temporary file that ``fill(fd)`` fills; (size, sha256) from it."""
        rel = self._name(name)
        dest = self._path(rel, writing=True)
        folder = os.path.dirname(dest)
        tmp = os.path.join(folder, _temp_name())
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            try:
                fd = os.open(tmp, flags, 0o666)
            except FileNotFoundError:
                if not self._checked_root:
                    self.check()
                os.makedirs(folder, exist_ok=True)
                self._safe_folders.discard(rel.rpartition("/")[0])
                self._path(rel, writing=True)  # no link leading out was made on the way meanwhile
                fd = os.open(tmp, flags, 0o666)
        except OSError as exc:
            raise self._os_error(exc, rel, writing=True) from exc
        try:
            (size, sha256), st = fill_then_rename(fd, tmp, dest, lambda fd: (fill(fd), os.fstat(fd)))
        except OSError as exc:
            raise self._os_error(exc, rel, writing=True) from exc
        self._folder_is_safe(rel)
        return _info(rel, st, sha256)

    def put(self, name: str, source: str | os.PathLike[str], *,
            progress: ProgressCallback | None = None) -> ObjectInfo:
        """Store the local file ``source`` as ``name`` (see :meth:`ObjectStore.put`)."""
        try:
            src = os.open(os.fspath(source), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise UserError(f"cannot read {shown(str(source))}: {reason}", path=str(source)) from exc
        try:
            before = os.fstat(src)
            if not stat.S_ISREG(before.st_mode):
                raise UserError(f"{source} is not a regular file: only files can be stored", path=str(source))

            def fill(fd: int) -> tuple[int, str]:
                try:
                    size, sha256 = copy_and_hash(src, fd, before.st_size, progress)
                except _Shrank:
                    raise source_changed(source) from None
                except OSError as exc:
                    if exc.errno in _FULL:
                        raise  # the store's side: StoreUnavailableError
                    raise StoreError(f"cannot copy {source} to {name!r} in {self.description}: "
                                     f"{exc.strerror or exc}", path=str(source), name=name) from exc
                if size != before.st_size or fingerprint(os.fstat(src)) != fingerprint(before):
                    raise source_changed(source)
                return size, sha256

            return self._write(name, fill)
        finally:
            os.close(src)

    def put_stream(self, name: str, stream: BinaryIO, *, progress: ProgressCallback | None = None) -> ObjectInfo:
        """Store what ``stream`` holds, read to its end, as ``name``."""

        def fill(fd: int) -> tuple[int, str]:
            digest = hashlib.sha256()
            total = 0
            while block := stream.read(HASH_BLOCK):
                digest.update(block)
                view = memoryview(block)
                while view:
                    view = view[os.write(fd, view):]
                total += len(block)
                if progress is not None:
                    progress(len(block))
            return total, digest.hexdigest()

        return self._write(name, fill)

    def put_bytes(self, name: str, data: bytes) -> ObjectInfo:
        """Store ``data`` as ``name``."""

        def fill(fd: int) -> tuple[int, str]:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            return len(data), hashlib.sha256(data).hexdigest()

        return self._write(name, fill)

    def delete(self, name: str) -> None:
        """Remove object ``name`` (nothing happens when it is absent)."""
        rel = self._name(name)
        path = self._path(rel, writing=True)
        try:
            if stat.S_ISDIR(os.lstat(path).st_mode):
                return  # a folder is no object
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno in _ABSENT:
                return
            raise self._os_error(exc, rel, writing=True) from exc

    # -- reading --------------------------------------------------------------------------------------

    def _regular(self, name: str) -> tuple[str, str, os.stat_result]:
        rel = self._name(name)
        path = self._path(rel, writing=False)
        try:
            st = os.stat(path)
        except (OSError, ValueError) as exc:
            if isinstance(exc, OSError):
                raise self._os_error(exc, rel, writing=False) from exc
            raise ObjectNotFoundError(f"{self.description} has no file {rel!r}", name=rel) from exc
        if not stat.S_ISREG(st.st_mode):
            raise ObjectNotFoundError(f"{self.description} has no file {rel!r} (it is a folder)", name=rel)
        return rel, path, st

    def stat(self, name: str) -> ObjectInfo:
        """Size, etag and modification time of object ``name`` (sha256 is not kept by a folder: None)."""
        rel, _path, st = self._regular(name)
        return _info(rel, st)

    def exists(self, name: str) -> bool:
        """Whether ``name`` is a file of the store."""
        try:
            self._regular(name)
        except ObjectNotFoundError:
            return False
        return True

    def local_path(self, name: str) -> Path:
        """The file's path on this machine (checked: inside the root, through no link leading out)."""
        return Path(self._path(self._name(name), writing=False))

    def open_fd(self, name: str) -> int:
        """A read-only file descriptor of object ``name``, checked as :meth:`local_path` checks, with
        fewer system calls for many files of a few folders: each folder is checked once, and the file
        is opened without following a link (a link inside the root is then checked as usual)."""
        rel = self._name(name)
        folder = rel.rpartition("/")[0]
        if folder and folder not in self._safe_folders:
            if leads_out(self._root, folder):
                raise ObjectNotFoundError(
                    f"{self.description} has no file {rel!r}: a folder on the way is a link that leads outside "
                    "the folder, and runlab does not follow such links", name=rel)
            self._folder_is_safe(rel)
        try:
            return os.open(os.path.join(self._root, rel), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise self._os_error(exc, rel, writing=False) from exc
        try:  # the file is a link: allowed when it leads to a file inside the root
            return os.open(self._path(rel, writing=False), os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise self._os_error(exc, rel, writing=False) from exc

    def open(self, name: str) -> BinaryIO:
        """Object ``name``, open for reading."""
        rel, path, _st = self._regular(name)
        try:
            return open(path, "rb")
        except OSError as exc:
            raise self._os_error(exc, rel, writing=False) from exc

    def get(self, name: str, dest: Path, *, progress: ProgressCallback | None = None) -> ObjectInfo:
        """Copy object ``name`` to the local file ``dest`` (atomically; its folder is created)."""
        rel, path, st = self._regular(name)
        dest = Path(dest)
        try:
            src = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise self._os_error(exc, rel, writing=False) from exc
        try:
            size, sha256 = write_local_file(dest, lambda fd: _copy_object(src, fd, st.st_size, progress, rel))
        finally:
            os.close(src)
        return ObjectInfo(name=rel, size=size, sha256=sha256, etag=_etag(st), modified_at=st.st_mtime)

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Objects whose names start with ``prefix``, sorted by name (see :meth:`ObjectStore.list`)."""
        prefix = check_prefix(prefix, self.description)
        start = prefix if prefix.endswith("/") or not prefix else os.path.dirname(prefix)
        start = start.rstrip("/")
        if start and leads_out(self._root, start):
            return []
        found = [info for info in self._walk(start) if info.name.startswith(prefix)]
        found.sort(key=lambda info: info.name)
        return found

    def _walk(self, rel_dir: str) -> Iterator[ObjectInfo]:
        folder = os.path.join(self._root, rel_dir) if rel_dir else self._root
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith(TEMP_PREFIX):
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                if entry.is_symlink():
                    if leads_out(self._root, rel):
                        continue
                    st = os.stat(entry.path)
                    if stat.S_ISREG(st.st_mode):  # a link to a folder is not walked: its files have their names
                        yield _info(rel, st)
                elif entry.is_dir(follow_symlinks=False):
                    yield from self._walk(rel)
                elif entry.is_file(follow_symlinks=False):
                    yield _info(rel, entry.stat(follow_symlinks=False))
            except OSError:
                continue  # gone meanwhile, or a broken link


def _copy_object(src: int, dst: int, size: int, progress: ProgressCallback | None, rel: str) -> tuple[int, str]:
    try:
        return copy_and_hash(src, dst, size, progress)
    except _Shrank:
        raise StoreError(f"{rel!r} changed while runlab copied it: copy it again", name=rel) from None


def write_local_file(dest: Path, fill: Callable[[int], tuple[int, str]]) -> tuple[int, str]:
    """Write ``dest`` through a temporary file in its folder that ``fill(fd)`` fills, then rename it."""
    folder = dest.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create folder {folder}: {exc.strerror or exc}", path=str(folder)) from exc
    tmp = folder / _temp_name()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as exc:
        raise StoreError(f"cannot write {dest}: {exc.strerror or exc}", path=str(dest)) from exc
    try:
        return fill_then_rename(fd, str(tmp), str(dest), fill)
    except OSError as exc:
        cls = StoreUnavailableError if exc.errno in _FULL else StoreError
        raise cls(f"cannot write {dest}: {exc.strerror or exc}", path=str(dest)) from exc


def fill_then_rename(fd: int, tmp: str, dest: str, fill: Callable[[int], T]) -> T:
    """``fill(fd)`` the open temporary file ``tmp``, close it and rename it to ``dest``. On any
    failure (an exception, Ctrl-C) the temporary file is removed and the error raised: no half
    file ever carries the final name."""
    try:
        try:
            result = fill(fd)
        finally:
            os.close(fd)
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return result

