"""A content-addressed file store: each distinct content kept once, named by its sha256.

::

    <root>/ab/cdef0123...    the bytes whose sha256 is abcdef0123..., read-only

A content is written to a temporary file in the root (:data:`~runlab.store.objects.TEMP_PREFIX`) while
it is hashed, in one pass (:func:`~runlab.store.objects.local.copy_and_hash`: the kernel copies, a
second thread hashes the same bytes), then renamed to its name, or dropped when that content is there
already. A crash leaves at most a temporary file, never a short blob under a sha256. Registered model
versions keep their files here (``files/models/objects/``), as source snapshots keep theirs in
``files/snapshots/objects/`` (:mod:`runlab.execution.snapshot`, which hashes before it copies: a source
tree is mostly unchanged files).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import BinaryIO

from runlab.core.errors import StoreError, StoreUnavailableError
from runlab.store.objects import TEMP_PREFIX, ProgressCallback
from runlab.store.objects.local import _FULL, _Shrank, _temp_name, copy_and_hash

__all__ = ["BlobStore", "Changed"]

_SHA256 = re.compile(r"[0-9a-f]{64}")


class Changed(Exception):
    """The source had other bytes than expected while it was copied (it shrank, or grew)."""


class BlobStore:
    """Contents under ``root`` (created on first write), each named by its sha256."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"BlobStore({str(self.root)!r})"

    def path(self, sha256: str) -> Path:
        """Where the content with this sha256 is (or would be) kept."""
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise StoreError(f"{str(sha256)[:80]!r} is not a sha256: the record that names it is damaged",
                             sha256=sha256)
        return self.root / sha256[:2] / sha256[2:]

    def has(self, sha256: str, size: int) -> bool:
        """Whether the content is kept, with ``size`` bytes (one ``stat``)."""
        try:
            st = os.stat(self.path(sha256))
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and st.st_size == size

    def put_fd(self, src: int, size: int, progress: ProgressCallback | None = None) -> tuple[str, int, bool]:
        """Store the first ``size`` bytes of open file ``src``: (sha256, size, whether it was new).

        Raises :class:`Changed` when ``src`` did not hold ``size`` bytes throughout the copy,
        :class:`StoreUnavailableError` for a full disk, :class:`StoreError` otherwise.
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.root / _temp_name()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o444)
        except OSError as exc:
            raise self._error(exc, "write to") from exc
        try:
            try:
                try:
                    copied, sha256 = copy_and_hash(src, fd, size, progress)
                except _Shrank:
                    raise Changed() from None
            finally:
                os.close(fd)
            if copied != size:
                raise Changed()
            final = self.path(sha256)
            if self.has(sha256, size):
                os.unlink(tmp)
                return sha256, size, False
            final.parent.mkdir(exist_ok=True)
            os.replace(tmp, final)
        except OSError as exc:
            _unlink(tmp)
            raise self._error(exc, "write to") from exc
        except BaseException:
            _unlink(tmp)
            raise
        return sha256, size, True

    def open(self, sha256: str) -> tuple[BinaryIO, int]:
        """The content, open for reading, and its size; :class:`FileNotFoundError` when it is not kept."""
        stream = open(self.path(sha256), "rb")
        return stream, os.fstat(stream.fileno()).st_size

    def copy_to(self, sha256: str, size: int, dest_fd: int, progress: ProgressCallback | None = None) -> None:
        """Write the content into open file ``dest_fd``, checked against its sha256 and size
        (:class:`StoreError` when the kept bytes are not those: the store was damaged)."""
        path = self.path(sha256)
        try:
            src = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise StoreError(f"the content {sha256[:16]}... is missing from {self.root} ({exc.strerror}): the "
                             "workspace's model files were changed outside runlab", sha256=sha256) from exc
        try:
            try:
                copied, digest = copy_and_hash(src, dest_fd, size, progress)
            except _Shrank:
                copied, digest = -1, ""
        finally:
            os.close(src)
        if copied != size or digest != sha256:
            raise StoreError(f"the content {sha256[:16]}... in {self.root} is damaged (its bytes are not those "
                             "recorded): the workspace's model files were changed outside runlab", sha256=sha256)

    def delete(self, sha256: str) -> None:
        """Remove a content (nothing happens when it is absent)."""
        path = self.path(sha256)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._error(exc, "delete from") from exc
        try:
            os.rmdir(path.parent)  # only when empty
        except OSError:
            pass

    def count(self) -> tuple[int, int]:
        """(contents, bytes) kept: a walk of the store, for tests and benchmarks."""
        files = total = 0
        if not self.root.is_dir():
            return 0, 0
        for folder in self.root.iterdir():
            if folder.is_dir():
                for blob in folder.iterdir():
                    if not blob.name.startswith(TEMP_PREFIX):
                        files += 1
                        total += blob.stat().st_size
        return files, total

    def _error(self, exc: OSError, doing: str) -> StoreError:
        cls = StoreUnavailableError if exc.errno in _FULL else StoreError
        return cls(f"cannot {doing} the file store {self.root}: {exc.strerror or exc}", path=str(self.root))


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
