"""The object-store interface: named files (objects) under a root, in a folder or an S3 bucket.

One narrow interface, :class:`ObjectStore`, with two implementations:
:class:`~runlab.store.objects.local.LocalObjectStore` (a folder on this machine) and
:class:`~runlab.store.objects.s3.S3ObjectStore` (an S3-compatible bucket, through boto3). Datastores sit
on it today; run files and snapshots can in server mode.

Names are POSIX paths relative to the store's root (``datasets/cifar10/data_batch_1``), checked by
:func:`check_object_name`: no ``..``, no leading ``/``, no NUL, no part over 255 bytes, and no part
starting with :data:`TEMP_PREFIX` (the names of files being written). Every write is atomic: a local
file is written under a temporary name in its folder and renamed; an S3 object appears only once its
PUT (or multipart upload) is complete. So a reader, or a later upload, never sees half a file.

Errors: :class:`~runlab.core.errors.ObjectNotFoundError` for a name with no object;
:class:`~runlab.core.errors.InvalidNameError` for a bad name; :class:`~runlab.core.errors.UserError` for a
source file that cannot be read or that changed while it was copied;
:class:`~runlab.core.errors.StoreUnavailableError` when the store cannot be reached or written now (an
S3 endpoint that does not answer, a full disk); :class:`~runlab.core.errors.StoreError` otherwise.
Implementations translate their own errors (``OSError``, botocore's) into these, once.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Protocol, runtime_checkable

from runlab.core.errors import InvalidNameError, UserError
from runlab.core.names import shown
from runlab.store.paths import check_relative_name

__all__ = [
    "TEMP_PREFIX",
    "ObjectInfo",
    "ObjectStore",
    "ProgressCallback",
    "check_object_name",
    "check_prefix",
    "file_sha256",
    "source_changed",
]

TEMP_PREFIX = ".runlab-tmp-"
"""Files being written are named so; listings never show them, and no object may be named so."""

HASH_BLOCK = 1 << 20

ProgressCallback = Callable[[int], None]
"""Called, maybe from another thread, with the number of bytes just transferred."""


@dataclass(frozen=True)
class ObjectInfo:
    """One object: its name in the store, its size, its sha256 when known (a put computes it; S3
    keeps it in the object's metadata; a local listing does not read files), an ``etag`` that changes
    whenever the object is rewritten (local: inode, mtime and size; S3: the ETag) and when it was
    last written (unix time)."""

    name: str
    size: int
    sha256: str | None = None
    etag: str | None = None
    modified_at: float | None = None


@runtime_checkable
class ObjectStore(Protocol):
    """Named files under a root. Every method raises the errors listed in this module's docstring."""

    kind: str  # "local" (files on this machine: local_path gives their paths) or "s3"
    description: str  # where, for messages: "folder /data/x", "s3://bucket/prefix at http://127.0.0.1:9000"
    max_workers: int  # how many transfers at once pay off (a thread pool's size)

    def check(self) -> None:
        """Raise (``StoreUnavailableError``, ``NotFoundError``, ``UserError``) unless the store can be used now."""
        ...

    def put(self, name: str, source: str | os.PathLike[str], *,
            progress: ProgressCallback | None = None) -> ObjectInfo:
        """Store the file ``source`` as ``name``, atomically, replacing what was there; its sha256 is
        computed on the way. ``UserError`` when ``source`` cannot be read or changes meanwhile."""
        ...

    def put_stream(self, name: str, stream: BinaryIO, *, progress: ProgressCallback | None = None) -> ObjectInfo:
        """Store what ``stream`` holds, read to its end, as ``name``, atomically."""
        ...

    def put_bytes(self, name: str, data: bytes) -> ObjectInfo:
        """Store ``data`` as ``name``, atomically."""
        ...

    def get(self, name: str, dest: Path, *, progress: ProgressCallback | None = None) -> ObjectInfo:
        """Write object ``name`` to the local file ``dest`` (through a temporary file and a rename,
        creating its folder); the returned info has the sha256 of the bytes written."""
        ...

    def open(self, name: str) -> BinaryIO:
        """A binary stream that reads object ``name`` (close it, or use ``with``)."""
        ...

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """The objects whose names start with ``prefix`` (text: ``"a/b"`` matches ``a/b.txt`` and
        ``a/b/c``; end it with ``/`` for a folder), sorted by name, with their sizes."""
        ...

    def stat(self, name: str) -> ObjectInfo:
        """Object ``name``'s size, etag and, where known, sha256; ``ObjectNotFoundError`` when absent."""
        ...

    def exists(self, name: str) -> bool:
        """Whether object ``name`` exists."""
        ...

    def delete(self, name: str) -> None:
        """Remove object ``name``; nothing happens when it is absent."""
        ...

    def local_path(self, name: str) -> Path | None:
        """Where object ``name``'s bytes lie on this machine (a local store), or None (S3)."""
        ...


def check_object_name(name: object, where: str = "the datastore") -> str:
    """``name`` as an object name (``/`` separators), or :class:`InvalidNameError` naming it."""
    rel = check_relative_name(name, "datastore path", where, "for example 'datasets/cifar10/data_batch_1'")
    if any(part.startswith(TEMP_PREFIX) for part in rel.split("/")):
        raise InvalidNameError(f"datastore path {shown(name)} has a part starting with {TEMP_PREFIX!r}, which "
                               "runlab keeps for files being written: rename it", name=name)
    return rel


def check_prefix(prefix: object, where: str = "the datastore") -> str:
    """``prefix`` as a listing prefix: "" (everything) or a name's beginning, with a trailing ``/`` kept."""
    if prefix is None or prefix == "":
        return ""
    if not isinstance(prefix, str):
        raise InvalidNameError(f"a datastore prefix must be a str, got {shown(prefix)}", name=prefix)
    stripped = prefix.replace("\\", "/").strip("/")
    if prefix.startswith("/") or prefix.startswith("\\"):
        raise InvalidNameError(f"datastore prefix {shown(prefix)} must be relative (no leading '/'): for example "
                               "'datasets/cifar10'", name=prefix)
    if not stripped:
        return ""
    rel = check_relative_name(stripped, "datastore prefix", where, "for example 'datasets/cifar10'")
    return rel + "/" if prefix.endswith(("/", "\\")) else rel


def file_sha256(path: str | os.PathLike[str]) -> tuple[int, str]:
    """(size, sha256) of the local file at ``path``, read in blocks; ``UserError`` when it cannot be read."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(HASH_BLOCK)
    view = memoryview(buffer)
    try:
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buffer):
                digest.update(view[:n])
                size += n
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}", path=str(path)) from exc
    return size, digest.hexdigest()


def copy_to_fd(stream: BinaryIO, fd: int, progress: ProgressCallback | None = None) -> tuple[int, str]:
    """Copy what ``stream`` holds into open file ``fd``, hashing on the way: (bytes, sha256)."""
    digest = hashlib.sha256()
    total = 0
    view = memoryview(bytearray(HASH_BLOCK))
    while n := stream.readinto(view):  # type: ignore[attr-defined]
        digest.update(view[:n])
        out = view[:n]
        while out:
            out = out[os.write(fd, out):]
        total += n
        if progress is not None:
            progress(n)
    return total, digest.hexdigest()


def fingerprint(st: os.stat_result) -> tuple[int, int, int, int]:
    """What changes when a file is written to: size, inode, mtime and ctime (nanoseconds)."""
    return st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns


def source_changed(source: str | os.PathLike[str]) -> UserError:
    """The error for a file that changed while it was being copied."""
    return UserError(f"{source} changed while runlab copied it (is another program writing it?): nothing was "
                     "stored for it; copy it again once it is complete", path=str(source))
