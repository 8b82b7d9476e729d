"""A server's files in an S3-compatible bucket: run files, model contents and the workspace's own datastores.

``runlab server --artifacts s3://bucket/prefix`` keeps under ``prefix``::

    workspace.json                    the workspace's id: a second workspace on the same prefix is refused
    runs/<run id>/<name>              run files written whole (outputs, uploads, images)
    parts/<run id>/<name>/<00000001>  what appends added to run file <name> (live logs), in order
    models/<ab>/<cdef...>             model contents, named by their sha256 (as files/models/objects/)
    datastores/<name>/<path>          the files of the workspace's own datastores (workspaceblobstore)
    snapshots/objects/<ab>/<cdef...>  source snapshots' file contents, named by their sha256, and
    snapshots/manifests/<id>.json     their manifests (as files/snapshots/: :class:`S3SnapshotStorage`)

S3 has no append: a live log is the file written whole (if any) followed by its parts. An append
rewrites the last part while it is under :data:`PART_REWRITE_MAX` bytes and starts a new part after,
so a log of any size costs at most that much per append and a read joins a few objects. Writing a
file whole removes its parts. Everything goes through :class:`~runlab.store.objects.s3.S3ObjectStore`
(its checks of names and its error translation); boto3 is imported on first use.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, BinaryIO, List

from runlab.core.errors import (
    ConfigError,
    FileNotFoundInRunError,
    ObjectNotFoundError,
    StoreError,
    UserError,
)
from runlab.core.names import check_datastore_name, check_run_id, shown
from runlab.store.artifacts import check_file_name
from runlab.store.blobs import Changed
from runlab.store.objects import HASH_BLOCK, ObjectInfo, ProgressCallback, copy_to_fd
from runlab.store.objects.s3 import SINGLE_PUT, S3ObjectStore

__all__ = ["PART_REWRITE_MAX", "S3Artifacts", "S3ArtifactStore", "S3BlobStore", "S3Datastores", "S3SnapshotStorage",
           "parse_s3_url"]

PART_REWRITE_MAX = 4 << 20
STALE_UPLOAD_S = 24 * 3600  # an unfinished multipart upload older than this is aborted when a server starts
_SEQ = re.compile(r"\d{8}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
MARKER = "workspace.json"
MANIFEST_MAX = 64 << 20  # a snapshot's manifest (2,000 files by default: some 300 kB); more is not one of runlab's
HEAD_WORKERS = 16  # HEAD requests in flight at once when a submit asks which of its files the bucket lacks


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix); :class:`UserError` for anything else."""
    match = re.fullmatch(r"s3://([^/]+)/?(.*)", str(url))
    if not match:
        raise UserError(f"{shown(str(url))} is not an S3 location: give s3://bucket or s3://bucket/prefix")
    return match.group(1), match.group(2).strip("/")


class S3Artifacts:
    """The server's bucket and prefix, and the stores over it."""

    def __init__(self, url: str, endpoint_url: str | None = None, region: str | None = None) -> None:
        bucket, prefix = parse_s3_url(url)
        self.url = f"s3://{bucket}/{prefix}".rstrip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self.objects = S3ObjectStore(bucket, prefix or None, endpoint_url, region)
        self.description = self.objects.description
        self._subs: dict[str, S3ObjectStore] = {}
        self._lock = threading.Lock()

    def sub(self, prefix: str) -> S3ObjectStore:
        """The objects under ``<prefix>/`` of the server's prefix (one store, and boto3 client, each)."""
        with self._lock:
            if prefix not in self._subs:
                base = self.objects.prefix
                self._subs[prefix] = S3ObjectStore(self.objects.bucket, f"{base}/{prefix}" if base else prefix,
                                                   self.endpoint_url, self.region)
            return self._subs[prefix]

    def abort_stale_uploads(self, older_than_s: float = STALE_UPLOAD_S) -> int:
        """Abort the multipart uploads under the server's prefix started more than ``older_than_s`` ago
        (an upload cut by an outage or a killed process leaves its parts billed and invisible); how many."""
        import time

        client = self.objects._client()
        base = self.objects.prefix + "/" if self.objects.prefix else ""
        aborted = 0
        with self.objects._boundary("list unfinished uploads"):
            pages = client.get_paginator("list_multipart_uploads").paginate(Bucket=self.objects.bucket, Prefix=base)
            for page in pages:
                for upload in page.get("Uploads", ()):
                    started = upload.get("Initiated")
                    if started is not None and time.time() - started.timestamp() >= older_than_s:
                        client.abort_multipart_upload(Bucket=self.objects.bucket, Key=upload["Key"],
                                                      UploadId=upload["UploadId"])
                        aborted += 1
        return aborted

    def pair(self, workspace_id: str, name: str) -> None:
        """Record the workspace in the bucket, or refuse a bucket prefix that holds another workspace's files."""
        self.objects.check()
        try:
            with self.objects.open(MARKER) as f:
                recorded = json.loads(f.read() or b"{}")
        except ObjectNotFoundError:
            self.objects.put_bytes(MARKER, (json.dumps({"id": workspace_id, "name": name}, indent=2) + "\n").encode())
            return
        except ValueError as exc:
            raise ConfigError(f"{self.description}/{MARKER} is not runlab's ({exc}): give an empty prefix") from exc
        if not isinstance(recorded, dict) or recorded.get("id") != workspace_id:
            other = recorded.get("id") if isinstance(recorded, dict) else None
            raise ConfigError(
                f"{self.description} holds the files of another workspace (id {other}) than this server's state folder "
                f"(workspace {name!r}, id {workspace_id}): give the bucket prefix this workspace was made with, or a "
                "new prefix")


class _Joined(io.RawIOBase):
    """One readable stream over several objects, opened one after the other."""

    def __init__(self, store: S3ObjectStore, names: list[str], offset: int = 0) -> None:
        self._store, self._names = store, list(names)
        self._current: BinaryIO | None = None
        self._offset = offset  # into the first object

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while True:
            if self._current is None:
                if not self._names:
                    return 0
                self._current = self._store.open(self._names.pop(0), self._offset)
                self._offset = 0
            data = self._current.read(len(buffer))
            if data:
                buffer[:len(data)] = data
                return len(data)
            self._current.close()
            self._current = None

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
        super().close()


class S3ArtifactStore:
    """Run files in the bucket: :class:`~runlab.store.artifacts.ArtifactStore`'s methods."""

    kind = "s3"

    def __init__(self, objects: S3ObjectStore) -> None:
        self.objects = objects
        self.description = objects.description

    def _main(self, run_id: str, name: str) -> str:
        return f"runs/{check_run_id(run_id)}/{check_file_name(name)}"

    def _parts_prefix(self, run_id: str, name: str) -> str:
        return f"parts/{check_run_id(run_id)}/{check_file_name(name)}/"

    def _parts(self, run_id: str, name: str) -> list[ObjectInfo]:
        prefix = self._parts_prefix(run_id, name)
        return [p for p in self.objects.list(prefix) if _SEQ.fullmatch(p.name[len(prefix):])]

    def _main_info(self, run_id: str, name: str) -> ObjectInfo | None:
        key = self._main(run_id, name)
        return next((o for o in self.objects.list(key) if o.name == key), None)

    # -- writing -------------------------------------------------------------------------------

    def _written_whole(self, run_id: str, name: str) -> None:
        for part in self._parts(run_id, name):
            self.objects.delete(part.name)

    def put_file(self, run_id: str, name: str, source: Path) -> None:
        self.objects.put(self._main(run_id, name), source)
        self._written_whole(run_id, name)

    def put_stream(self, run_id: str, name: str, stream: BinaryIO) -> None:
        self.objects.put_stream(self._main(run_id, name), stream)
        self._written_whole(run_id, name)

    def put_bytes(self, run_id: str, name: str, data: bytes) -> None:
        self.objects.put_bytes(self._main(run_id, name), bytes(data))
        self._written_whole(run_id, name)

    def append_bytes(self, run_id: str, name: str, data: bytes) -> None:
        if not data:
            self._main(run_id, name)
            return
        prefix = self._parts_prefix(run_id, name)
        parts = self._parts(run_id, name)
        if parts and parts[-1].size + len(data) <= PART_REWRITE_MAX:
            last = parts[-1].name
            with self.objects.open(last) as f:
                old = f.read()
            self.objects.put_bytes(last, old + bytes(data))
            return
        seq = int(parts[-1].name[len(prefix):]) + 1 if parts else 1
        self.objects.put_bytes(f"{prefix}{seq:08d}", bytes(data))

    def local_path(self, run_id: str, name: str) -> None:
        """None: the files are in the bucket (the agent appends live logs here and ships them)."""
        check_file_name(name)
        return None

    # -- reading -------------------------------------------------------------------------------

    def list(self, run_id: str, prefix: str = "") -> list[str]:
        run = check_run_id(run_id)
        names = {o.name[len(f"runs/{run}/"):] for o in self.objects.list(f"runs/{run}/")}
        base = f"parts/{run}/"
        for o in self.objects.list(base):
            head, _, seq = o.name[len(base):].rpartition("/")
            if head and _SEQ.fullmatch(seq):
                names.add(head)
        return sorted(n for n in names if n.startswith(prefix))

    def _pieces(self, run_id: str, name: str) -> List[ObjectInfo]:  # noqa: UP006 - `list` is a method here
        main = self._main_info(run_id, name)
        parts = self._parts(run_id, name)
        if main is None and not parts:
            raise FileNotFoundInRunError(f"run {run_id} has no file {shown(name)}: see run.get_file_names()",
                                         run_id=run_id, name=name)
        return ([main] if main is not None else []) + parts

    def size(self, run_id: str, name: str) -> int:
        return sum(p.size for p in self._pieces(run_id, name))

    def open(self, run_id: str, name: str, offset: int = 0) -> BinaryIO:
        """The file's bytes from ``offset`` on: the objects before it are not read, the first in part."""
        return self._open_pieces(self._pieces(run_id, name), offset)

    def open_sized(self, run_id: str, name: str, offset: int = 0) -> tuple[BinaryIO, int]:
        """:meth:`open` and the file's whole size (:meth:`size`) from one listing of its objects."""
        pieces = self._pieces(run_id, name)
        return self._open_pieces(pieces, offset), sum(p.size for p in pieces)

    def _open_pieces(self, pieces: List[ObjectInfo], offset: int) -> BinaryIO:  # noqa: UP006
        while pieces and offset >= pieces[0].size and len(pieces) > 1:
            offset -= pieces[0].size
            pieces = pieces[1:]
        if len(pieces) == 1:
            if offset >= pieces[0].size:
                return io.BytesIO(b"")  # at (or past) the end: S3 refuses such a range
            return self.objects.open(pieces[0].name, offset)
        return io.BufferedReader(_Joined(self.objects, [p.name for p in pieces], offset), 1 << 20)

    def get_to_path(self, run_id: str, name: str, dest: Path) -> Path:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with self.open(run_id, name) as src, open(dest, "wb") as out:
            while block := src.read(1 << 20):
                out.write(block)
        return dest

    def delete_run(self, run_id: str) -> None:
        run = check_run_id(run_id)
        for prefix in (f"runs/{run}/", f"parts/{run}/"):
            for o in self.objects.list(prefix):
                self.objects.delete(o.name)


class S3BlobStore:
    """Model contents in the bucket, each named by its sha256: :class:`~runlab.store.blobs.BlobStore`'s methods."""

    def __init__(self, objects: S3ObjectStore) -> None:
        self.objects = objects
        self.root = objects.description

    def __repr__(self) -> str:
        return f"S3BlobStore({self.objects.description!r})"

    def _name(self, sha256: str) -> str:
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise StoreError(f"{str(sha256)[:80]!r} is not a sha256: the record that names it is damaged",
                             sha256=sha256)
        return f"{sha256[:2]}/{sha256[2:]}"

    def has(self, sha256: str, size: int) -> bool:
        try:
            return self.objects.stat(self._name(sha256)).size == size
        except ObjectNotFoundError:
            return False

    def put_fd(self, src: int, size: int, progress: ProgressCallback | None = None) -> tuple[str, int, bool]:
        """Store the first ``size`` bytes of open file ``src`` (hashed first, so a content that is there
        already is not sent again): (sha256, size, whether it was new)."""
        digest = hashlib.sha256()
        for block in _blocks(src, size):
            digest.update(block)
        sha256 = digest.hexdigest()
        if self.has(sha256, size):
            return sha256, size, False
        reader = _FdReader(src, size)
        self.objects.put_stream(self._name(sha256), io.BufferedReader(reader, 1 << 20), progress=progress)
        if reader.digest.hexdigest() != sha256 or reader.read_total != size:
            self.objects.delete(self._name(sha256))
            raise Changed()
        return sha256, size, True

    def open(self, sha256: str) -> tuple[BinaryIO, int]:
        """The content, open for reading, and its size; :class:`FileNotFoundError` when it is not kept."""
        name = self._name(sha256)
        try:
            size = self.objects.stat(name).size
            return self.objects.open(name), size
        except ObjectNotFoundError:
            raise FileNotFoundError(sha256) from None

    def copy_to(self, sha256: str, size: int, dest_fd: int, progress: ProgressCallback | None = None) -> None:
        try:
            stream = self.objects.open(self._name(sha256))
        except ObjectNotFoundError as exc:
            raise StoreError(f"the content {sha256[:16]}... is missing from {self.root}: the workspace's model files "
                             "were changed outside runlab", sha256=sha256) from exc
        with stream:
            total, digest = copy_to_fd(stream, dest_fd, progress)
        if total != size or digest != sha256:
            raise StoreError(f"the content {sha256[:16]}... in {self.root} is damaged (its bytes are not those "
                             "recorded): the workspace's model files were changed outside runlab", sha256=sha256)

    def delete(self, sha256: str) -> None:
        self.objects.delete(self._name(sha256))

    def count(self) -> tuple[int, int]:
        found = [o for o in self.objects.list("") if _SHA256.fullmatch(o.name.replace("/", "", 1))]
        return len(found), sum(o.size for o in found)


class S3SnapshotStorage:
    """Source snapshots in the bucket, under ``snapshots/``: the
    :class:`~runlab.execution.snapshot.SnapshotStorage` of a server whose files are in S3.

    An object is named by the sha256 of its bytes, computed here from the bytes about to be sent (spooled
    first: in memory up to 8 MB, else in a temporary file), so a wrong or cut upload is never stored under
    a name it does not hash to. S3's PUT is atomic: two servers that store the same content at once both
    write the same bytes, and a reader sees one whole object or none.
    """

    def __init__(self, objects: S3ObjectStore) -> None:
        self.objects = objects
        self.description = objects.description

    def __repr__(self) -> str:
        return f"S3SnapshotStorage({self.objects.description!r})"

    @staticmethod
    def _object(sha256: str) -> str:
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise StoreError(f"{str(sha256)[:80]!r} is not a sha256: the snapshot manifest that names it is damaged",
                             sha256=sha256)
        return f"objects/{sha256[:2]}/{sha256[2:]}"

    @staticmethod
    def _manifest(snapshot_id: str) -> str:
        if not isinstance(snapshot_id, str) or not _SHA256.fullmatch(snapshot_id):
            raise StoreError(f"{str(snapshot_id)[:80]!r} is not a snapshot id", snapshot_id=snapshot_id)
        return f"manifests/{snapshot_id}.json"

    def _size(self, name: str) -> int | None:
        try:
            return self.objects.stat(name).size
        except ObjectNotFoundError:
            return None

    def object_sizes(self, shas: Sequence[str]) -> dict[str, int | None]:
        names = {sha: self._object(sha) for sha in shas}
        if len(names) <= 1:
            return {sha: self._size(name) for sha, name in names.items()}
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(HEAD_WORKERS, len(names)), thread_name_prefix="snapshot-head") as pool:
            return dict(zip(names, pool.map(self._size, names.values())))

    def store_object(self, source: IO[bytes], expected: str, only_expected: bool) -> tuple[str, int, bool]:
        import tempfile

        self._object(expected)
        digest = hashlib.sha256()
        head = source.read(SINGLE_PUT)
        digest.update(head)
        if len(head) < SINGLE_PUT:  # small (most source files): from memory, in one PUT
            sha256, size = digest.hexdigest(), len(head)
            if (only_expected and sha256 != expected) or self._size(self._object(sha256)) == size:
                return sha256, size, False
            self.objects.put_bytes(self._object(sha256), head)
            return sha256, size, True
        with tempfile.TemporaryDirectory(prefix="runlab-snapshot-") as folder:
            spool = Path(folder) / "object"
            size = len(head)
            with open(spool, "wb") as out:
                out.write(head)
                del head
                while block := source.read(HASH_BLOCK):
                    digest.update(block)
                    out.write(block)
                    size += len(block)
            sha256 = digest.hexdigest()
            if (only_expected and sha256 != expected) or self._size(self._object(sha256)) == size:
                return sha256, size, False
            self.objects.put(self._object(sha256), spool)  # hashes the spool again for the object's metadata
        return sha256, size, True

    def open_object(self, sha256: str) -> tuple[BinaryIO, int]:
        name = self._object(sha256)
        try:
            size = self.objects.stat(name).size
            return self.objects.open(name), size
        except ObjectNotFoundError:
            raise FileNotFoundError(f"{self.description} has no snapshot object {sha256}") from None

    def manifest_location(self, snapshot_id: str) -> str:
        base = f"{self.objects.prefix}/" if self.objects.prefix else ""
        return f"s3://{self.objects.bucket}/{base}{self._manifest(snapshot_id)}"

    def manifest_exists(self, snapshot_id: str) -> bool:
        return self.objects.exists(self._manifest(snapshot_id))

    def read_manifest(self, snapshot_id: str) -> bytes:
        try:
            with self.objects.open(self._manifest(snapshot_id)) as f:
                data = f.read(MANIFEST_MAX + 1)
        except ObjectNotFoundError:
            raise FileNotFoundError(f"{self.description} has no manifest of snapshot {snapshot_id}") from None
        if len(data) > MANIFEST_MAX:
            raise StoreError(f"the manifest of snapshot {snapshot_id} in {self.description} is over "
                             f"{MANIFEST_MAX >> 20} MiB: it is not runlab's", snapshot_id=snapshot_id)
        return bytes(data)

    def write_manifest(self, snapshot_id: str, data: bytes) -> None:
        self.objects.put_bytes(self._manifest(snapshot_id), data)

    def counts(self) -> tuple[int, int, int]:
        manifests = sum(1 for o in self.objects.list("manifests/") if o.name.endswith(".json"))
        objects = [o for o in self.objects.list("objects/")
                   if _SHA256.fullmatch(o.name[len("objects/"):].replace("/", "", 1))]
        return manifests, len(objects), sum(o.size for o in objects)


class S3Datastores:
    """The workspace's own datastores (``workspaceblob``) in the bucket, opened by name
    (:class:`~runlab.store.datastores.ServedDatastores`)."""

    def __init__(self, artifacts: S3Artifacts) -> None:
        self.artifacts = artifacts

    def open_datastore(self, name: str) -> S3ObjectStore:
        return self.artifacts.sub(f"datastores/{check_datastore_name(name)}")


def _blocks(fd: int, size: int) -> Iterator[bytes]:
    offset = 0
    while offset < size:
        block = os.pread(fd, min(HASH_BLOCK, size - offset), offset)
        if not block:
            raise Changed()
        offset += len(block)
        yield block


class _FdReader(io.RawIOBase):
    """The first ``size`` bytes of an open file, by offset (the file's position is left alone), hashed as read."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size, self.read_total = fd, size, 0
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self.size - self.read_total)
        if want <= 0:
            return 0
        data = os.pread(self.fd, want, self.read_total)
        buffer[:len(data)] = data
        self.read_total += len(data)
        self.digest.update(data)
        return len(data)
