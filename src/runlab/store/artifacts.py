"""Run files (outputs, logs, images, uploads): the artifact store interface and a local folder.

An S3-compatible implementation for server mode has the same methods. Run ids follow the id rule
(:func:`runlab.core.names.check_run_id`). Names are POSIX paths relative to the run
(``outputs/model.pt``); ``..``, absolute names, NUL, a part over 255 bytes and text no file name
can hold are refused (:func:`check_file_name`). Both raise :class:`InvalidNameError`.

The local store never follows a link out of a run's folder: a run folder that is a link, or a
file whose real path is not under its run's folder, is absent to reads and listings, and writes
to it are refused. File system errors are translated here, once.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Protocol

from runlab.core.errors import (
    FileNotFoundInRunError,
    InvalidNameError,
    RunlabError,
    StoreError,
    StoreUnavailableError,
)
from runlab.core.names import check_run_id, shown
from runlab.store.paths import MAX_NAME_PART_BYTES, check_relative_name, leads_out

__all__ = ["MAX_NAME_PART_BYTES", "ArtifactStore", "LocalArtifactStore", "check_file_name", "open_with_size"]

EXAMPLE = "for example 'outputs/model.pt'"
_ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EISDIR)


def check_file_name(name: object) -> str:
    """``name`` as the store keeps it (``/`` separators), or :class:`InvalidNameError`."""
    return check_relative_name(name, "run file name", "the run", EXAMPLE)


class ArtifactStore(Protocol):
    def put_file(self, run_id: str, name: str, source: Path) -> None: ...
    def put_stream(self, run_id: str, name: str, stream: BinaryIO) -> None: ...
    def put_bytes(self, run_id: str, name: str, data: bytes) -> None: ...
    def append_bytes(self, run_id: str, name: str, data: bytes) -> None: ...
    def list(self, run_id: str, prefix: str = "") -> list[str]: ...
    def size(self, run_id: str, name: str) -> int: ...
    def open(self, run_id: str, name: str, offset: int = 0) -> BinaryIO: ...
    def get_to_path(self, run_id: str, name: str, dest: Path) -> Path: ...
    def delete_run(self, run_id: str) -> None: ...


def open_with_size(store: ArtifactStore, run_id: str, name: str, offset: int = 0) -> tuple[BinaryIO, int]:
    """``store.open(run_id, name, offset)`` and the file's whole size: from one look at the file when the
    store can (``open_sized``: an S3 store lists a file's objects once, not once for each), else
    ``size`` then ``open``."""
    opener = getattr(store, "open_sized", None)
    if opener is not None:
        stream, size = opener(run_id, name, offset)
        return stream, int(size)
    size = store.size(run_id, name)
    return store.open(run_id, name, offset), size


class LocalArtifactStore:
    """Files under ``<root>/<run_id>/<name>``; writes go through a temp file and a rename."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._real_root: str | None = None

    # -- paths: built only from checked ids and names, and kept inside the run's folder --------------

    def _run_dir(self, run_id: str) -> Path:
        return self.root / check_run_id(run_id)

    def _leads_out(self, run_id: str, name: str = "") -> bool:
        """True when file ``name`` of run ``run_id`` (a checked id and name; "": the run's folder) is
        reached through a link whose target is not under the run's folder."""
        if self._real_root is None:
            self._real_root = os.path.realpath(self.root)
        return leads_out(os.path.join(self._real_root, run_id), name)

    def _checked(self, run_id: str, name: str) -> tuple[Path, str]:
        """The path of run file ``name`` and the name as stored, both checked."""
        run_dir = self._run_dir(run_id)
        rel = check_file_name(name)
        return run_dir / rel, rel

    def _readable(self, run_id: str, name: str) -> Path:
        path, rel = self._checked(run_id, name)
        if self._leads_out(run_id, rel):
            raise FileNotFoundInRunError(
                f"run {run_id} has no file {shown(name)}: it is a link that leads outside the run's folder, "
                "and runlab does not follow such links", run_id=run_id, name=name)
        return path

    def _writable(self, run_id: str, name: str) -> Path:
        path, rel = self._checked(run_id, name)
        if self._leads_out(run_id, rel):
            raise StoreError(
                f"cannot write run file {shown(name)} of run {run_id}: {self.root / run_id} holds a link that "
                f"leads outside the run's folder (to {os.path.realpath(path)}); remove the link",
                run_id=run_id, name=name)
        return path

    def _os_error(self, exc: OSError, run_id: str, name: str, writing: bool) -> RunlabError:
        """The runlab error for a file system error on run file ``name``."""
        if exc.errno == errno.ENAMETOOLONG:
            return InvalidNameError(f"run file name {shown(name)} is too long for the file system "
                                    f"({exc.strerror}): use a shorter name", run_id=run_id, name=name)
        if not writing and exc.errno in _ABSENT:
            return FileNotFoundInRunError(f"run {run_id} has no file {shown(name)}: see run.get_file_names()",
                                          run_id=run_id, name=name)
        doing = "write" if writing else "read"
        cls = StoreUnavailableError if writing else StoreError
        return cls(f"cannot {doing} run file {shown(name)} of run {run_id}: {exc}", run_id=run_id, name=name)

    # -- writing -----------------------------------------------------------------------------------

    def _write(self, run_id: str, name: str, fill: Callable[[BinaryIO], object]) -> None:
        dest = self._writable(run_id, name)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".upload-")
            try:
                with os.fdopen(fd, "wb") as out:
                    fill(out)
                os.replace(tmp, dest)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise self._os_error(exc, run_id, name, writing=True) from exc

    def local_path(self, run_id: str, name: str) -> Path:
        """Where the file lives on this machine (the agent appends live logs there)."""
        path = self._writable(run_id, name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._os_error(exc, run_id, name, writing=True) from exc
        return path

    def put_file(self, run_id: str, name: str, source: Path) -> None:
        with open(source, "rb") as src:
            self._write(run_id, name, lambda out: shutil.copyfileobj(src, out, 1 << 20))

    def put_stream(self, run_id: str, name: str, stream: BinaryIO) -> None:
        self._write(run_id, name, lambda out: shutil.copyfileobj(stream, out, 1 << 20))

    def put_bytes(self, run_id: str, name: str, data: bytes) -> None:
        self._write(run_id, name, lambda out: out.write(data))

    def append_bytes(self, run_id: str, name: str, data: bytes) -> None:
        dest = self._writable(run_id, name)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(dest, "ab") as out:
                out.write(data)
        except OSError as exc:
            raise self._os_error(exc, run_id, name, writing=True) from exc

    # -- reading -----------------------------------------------------------------------------------

    def list(self, run_id: str, prefix: str = "") -> list[str]:
        base = self._run_dir(run_id)
        if self._leads_out(run_id) or not base.is_dir():
            return []
        names = []
        for dirpath, _dirs, files in os.walk(base):  # linked folders are listed in _dirs, not walked
            for file in files:
                if file.startswith(".upload-"):
                    continue
                path = os.path.join(dirpath, file)
                rel = Path(path).relative_to(base).as_posix()
                if os.path.islink(path) and self._leads_out(run_id, rel):  # folders it walked are no links
                    continue
                if rel.startswith(prefix):
                    names.append(rel)
        return sorted(names)

    def _regular_file(self, run_id: str, name: str) -> tuple[Path, os.stat_result]:
        path = self._readable(run_id, name)
        try:
            st = path.stat()
        except OSError as exc:
            raise self._os_error(exc, run_id, name, writing=False) from exc
        if not stat.S_ISREG(st.st_mode):
            raise FileNotFoundInRunError(f"run {run_id} has no file {shown(name)}: see run.get_file_names()",
                                         run_id=run_id, name=name)
        return path, st

    def size(self, run_id: str, name: str) -> int:
        return self._regular_file(run_id, name)[1].st_size

    def open(self, run_id: str, name: str, offset: int = 0) -> BinaryIO:
        """The file's bytes from ``offset`` on."""
        path, _st = self._regular_file(run_id, name)
        try:
            stream = open(path, "rb")
        except OSError as exc:
            raise self._os_error(exc, run_id, name, writing=False) from exc
        if offset:
            stream.seek(offset)
        return stream

    def open_sized(self, run_id: str, name: str, offset: int = 0) -> tuple[BinaryIO, int]:
        """:meth:`open` and the size of the file opened."""
        stream = self.open(run_id, name, offset)
        return stream, os.fstat(stream.fileno()).st_size

    def get_to_path(self, run_id: str, name: str, dest: Path) -> Path:
        dest = Path(dest)
        with self.open(run_id, name) as src:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        return dest

    # -- deleting ----------------------------------------------------------------------------------

    def delete_run(self, run_id: str) -> None:
        """Remove every file of a run (a deleted experiment's runs); a link out of the folder is unlinked,
        never followed."""
        base = self._run_dir(run_id)
        if os.path.islink(base):
            base.unlink()
        elif base.is_dir():
            shutil.rmtree(base)
