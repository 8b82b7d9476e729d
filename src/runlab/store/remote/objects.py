"""The workspace's own datastores of a ``runlab server``, from a client: the ObjectStore interface over HTTP.

A ``workspaceblob`` datastore (``workspaceblobstore``) keeps its files in the server's folder
(``<artifacts>/files/datastores/<name>/``); a client reaches them through the server's routes
(:mod:`runlab.server.api.remote`), which act on the server's own object store for that datastore:

- ``GET /api/remote/datastores/<name>``: whether it can be used (``check``), and where it is;
- ``GET /api/remote/datastores/<name>/objects?prefix=``: the listing (name, size, sha256 when known,
  etag, modified_at);
- ``PUT /api/remote/datastores/<name>/objects/<object>``: a write, streamed, with its length and its
  sha256 (``X-Content-SHA256``), which the server checks before the object appears under its name
  (a short or altered body stores nothing); the answer is the new object's info, with the sha256
  the server computed;
- ``GET`` (the bytes, streamed), ``DELETE`` of ``.../objects/<object>``; ``GET .../stat/<object>``.

Local and S3 datastores are not served: a client opens those itself (an S3 bucket directly; a local
datastore's folder is one of the machine that opens it). Names are checked here as an object store
checks them (:func:`~runlab.store.objects.check_object_name`), and again by the server. Bodies are
never held whole in memory: files are read and written in blocks of 1 MiB.
"""

from __future__ import annotations

import builtins
import hashlib
import http.client
import io
import os
import stat as stat_module
import tempfile
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterator

from runlab.core.errors import StoreError, StoreUnavailableError, UserError
from runlab.core.names import check_datastore_name, shown
from runlab.store.objects import (
    HASH_BLOCK,
    ObjectInfo,
    ObjectStore,
    ProgressCallback,
    check_object_name,
    check_prefix,
    copy_to_fd,
    fingerprint,
    source_changed,
)
from runlab.store.remote.client import Response, ServerClient

__all__ = ["DEFAULT_HTTP_WORKERS", "SHA256_HEADER", "HttpObjectStore", "RemoteDatastores", "info_from_json",
           "info_to_json"]

SHA256_HEADER = "X-Content-SHA256"
DEFAULT_HTTP_WORKERS = 4  # requests at once: each thread has its own connection
OCTETS = "application/octet-stream"


def info_to_json(info: ObjectInfo) -> dict[str, Any]:
    return {"name": info.name, "size": info.size, "sha256": info.sha256, "etag": info.etag,
            "modified_at": info.modified_at}


def info_from_json(item: Any) -> ObjectInfo:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not isinstance(item.get("size"), int):
        raise StoreError(f"the runlab server sent a malformed object description: {shown(item)}")
    sha256, etag, modified_at = item.get("sha256"), item.get("etag"), item.get("modified_at")
    return ObjectInfo(name=item["name"], size=item["size"], sha256=sha256 if isinstance(sha256, str) else None,
                      etag=etag if isinstance(etag, str) else None,
                      modified_at=float(modified_at) if isinstance(modified_at, (int, float)) else None)


def _blocks(stream: BinaryIO, size: int, progress: ProgressCallback | None,
            unchanged: Callable[[], None] | None = None) -> Iterator[bytes]:
    """Exactly the first ``size`` bytes of ``stream`` (its Content-Length), never more: bytes past it
    would be read by the server as the start of the next request on the connection. A stream that
    ended early is padded (the server's sha256 check then refuses it) rather than sent short, which
    would leave the request waiting. ``unchanged`` runs before the last block is handed over: raising
    there cuts the body short, so that the server stores nothing."""
    sent = 0
    while sent < size:
        block = stream.read(min(HASH_BLOCK, size - sent)) or bytes(min(HASH_BLOCK, size - sent))
        sent += len(block)
        if sent >= size and unchanged is not None:
            unchanged()
        yield block
        if progress is not None:
            progress(len(block))


class _Body(io.RawIOBase):
    """An object's bytes as the server streams them; a connection cut short is StoreUnavailableError."""

    def __init__(self, resp: Response, where: str) -> None:
        self._resp, self._where = resp, where
        self.length = int(resp.headers.get("content-length") or resp.headers.get("Content-Length") or -1)
        self._read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            n = int(self._resp.readinto(buffer))
        except (OSError, http.client.HTTPException) as exc:
            raise StoreUnavailableError(f"reading {self._where} stopped: {type(exc).__name__}: {exc}") from exc
        self._read += n
        if n == 0 and 0 <= self.length != self._read:
            raise StoreUnavailableError(f"reading {self._where} stopped after {self._read} of {self.length} bytes: "
                                        "the connection to the server was cut; read it again")
        return n

    def close(self) -> None:
        if not self.closed:
            self._resp.close()
        super().close()


class HttpObjectStore:
    """Datastore ``name`` of the server that ``client`` talks to (see the module's docstring)."""

    kind = "http"  # files of a runlab server: local_path is None, as for S3

    def __init__(self, client: ServerClient, name: str, *, max_workers: int = DEFAULT_HTTP_WORKERS) -> None:
        self.client = client
        self.name = check_datastore_name(name)
        self.description = f"datastore {self.name} of the runlab server at {client.url}"
        self.max_workers = max_workers
        self._base = f"/api/remote/datastores/{urllib.parse.quote(self.name, safe='')}"

    def __repr__(self) -> str:
        return f"HttpObjectStore({self.client.url!r}, {self.name!r})"

    def _object_path(self, rel: str, what: str = "objects") -> str:
        return f"{self._base}/{what}/{urllib.parse.quote(rel)}"

    def _rel(self, name: str) -> str:
        return check_object_name(name, self.description)

    # -- what it is ---------------------------------------------------------------------------------

    def check(self) -> None:
        """Raise unless the server answers for this datastore (``StoreUnavailableError``, ``NotFoundError``...)."""
        self.client.get_json(self._base)

    # -- writing --------------------------------------------------------------------------------------

    def _send(self, rel: str, body: Any, size: int, sha256: str) -> ObjectInfo:
        headers = {"Content-Type": OCTETS, "Content-Length": str(size), SHA256_HEADER: sha256}
        info = info_from_json(self.client.request("PUT", self._object_path(rel), body=body, headers=headers).json())
        if info.sha256 != sha256 or info.size != size:
            raise StoreError(f"the runlab server stored {rel!r} in {self.description} with size {info.size} and sha256 "
                             f"{info.sha256}, not {size} and {sha256}: upload it again", name=rel)
        return info

    def put(self, name: str, source: str | os.PathLike[str], *,
            progress: ProgressCallback | None = None) -> ObjectInfo:
        """Store the local file ``source`` as ``name``: hashed here, streamed, checked by the server."""
        rel = self._rel(name)
        try:
            stream = open(os.fspath(source), "rb")
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise UserError(f"cannot read {shown(str(source))}: {reason}", path=str(source)) from exc
        with stream:
            try:
                before = os.fstat(stream.fileno())
            except OSError as exc:
                raise UserError(f"cannot read {source}: {exc.strerror or exc}", path=str(source)) from exc
            if not stat_module.S_ISREG(before.st_mode):
                raise UserError(f"{source} is not a regular file: only files can be stored", path=str(source))
            digest = hashlib.sha256()
            try:
                while block := stream.read(HASH_BLOCK):
                    digest.update(block)
                stream.seek(0)
            except OSError as exc:
                raise UserError(f"cannot read {source}: {exc.strerror or exc}", path=str(source)) from exc
            def unchanged() -> None:
                if fingerprint(os.fstat(stream.fileno())) != fingerprint(before):
                    raise source_changed(source)  # written to meanwhile: the body is cut, nothing is stored

            unchanged()
            try:
                return self._send(rel, _blocks(stream, before.st_size, progress, unchanged), before.st_size,
                                  digest.hexdigest())
            except UserError as exc:  # the server refused bytes other than those hashed here: changed meanwhile?
                if fingerprint(os.fstat(stream.fileno())) != fingerprint(before):
                    raise source_changed(source) from exc
                raise

    def put_stream(self, name: str, stream: BinaryIO, *, progress: ProgressCallback | None = None) -> ObjectInfo:
        """Store what ``stream`` holds as ``name`` (spooled to a temporary file here: its length goes first)."""
        rel = self._rel(name)
        with tempfile.TemporaryFile() as spool:
            digest = hashlib.sha256()
            size = 0
            while block := stream.read(HASH_BLOCK):
                digest.update(block)
                spool.write(block)
                size += len(block)
            spool.seek(0)
            return self._send(rel, _blocks(spool, size, progress), size, digest.hexdigest())

    def put_bytes(self, name: str, data: bytes) -> ObjectInfo:
        """Store ``data`` as ``name``."""
        data = bytes(data)
        return self._send(self._rel(name), data, len(data), hashlib.sha256(data).hexdigest())

    def delete(self, name: str) -> None:
        """Remove object ``name`` (nothing happens when it is absent)."""
        self.client.request("DELETE", self._object_path(self._rel(name)))

    # -- reading --------------------------------------------------------------------------------------

    def open(self, name: str) -> BinaryIO:
        """Object ``name``, streamed from the server (``ObjectNotFoundError`` now when it is absent)."""
        rel = self._rel(name)
        resp = self.client.request("GET", self._object_path(rel), stream=True)
        return io.BufferedReader(_Body(resp, f"{rel!r} from {self.description}"), buffer_size=HASH_BLOCK)

    def get(self, name: str, dest: Path, *, progress: ProgressCallback | None = None) -> ObjectInfo:
        """Write object ``name`` to the local file ``dest`` (through a temporary file and a rename)."""
        from runlab.store.objects.local import write_local_file

        rel = self._rel(name)
        resp = self.client.request("GET", self._object_path(rel), stream=True)
        body = _Body(resp, f"{rel!r} from {self.description}")
        try:
            size, sha256 = write_local_file(Path(dest), lambda fd: copy_to_fd(body, fd, progress))  # type: ignore[arg-type]
        finally:
            body.close()
        known = resp.headers.get("x-object-sha256") or resp.headers.get("X-Object-SHA256")
        if known and known != sha256:
            Path(dest).unlink(missing_ok=True)
            raise StoreError(f"{rel!r} from {self.description} arrived with sha256 {sha256}, not {known}: "
                             "read it again", name=rel)
        etag = resp.headers.get("etag") or resp.headers.get("ETag")
        return ObjectInfo(name=rel, size=size, sha256=sha256, etag=etag.strip('"') if etag else None)

    def list(self, prefix: str = "") -> builtins.list[ObjectInfo]:
        """Objects whose names start with ``prefix``, sorted by name."""
        prefix = check_prefix(prefix, self.description)
        items = self.client.get_json(f"{self._base}/objects", prefix=prefix or None)
        if not isinstance(items, list):
            raise StoreError(f"the runlab server sent a malformed listing of {self.description}")
        return sorted((info_from_json(item) for item in items), key=lambda info: info.name)

    def stat(self, name: str) -> ObjectInfo:
        """Object ``name``'s size, etag and, where the server knows it, sha256."""
        return info_from_json(self.client.get_json(self._object_path(self._rel(name), "stat")))

    def exists(self, name: str) -> bool:
        from runlab.core.errors import ObjectNotFoundError

        try:
            self.stat(name)
        except ObjectNotFoundError:
            return False
        return True

    def local_path(self, name: str) -> None:
        return None  # the files are the server's


class RemoteDatastores:
    """What ``RemoteWorkspace.datastores_dir`` gives: the server's own datastores, opened by name
    (:func:`runlab.store.datastores.open_object_store` calls :meth:`open_datastore`)."""

    def __init__(self, client: ServerClient) -> None:
        self.client = client

    def open_datastore(self, name: str) -> HttpObjectStore:
        return HttpObjectStore(self.client, name)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, RemoteDatastores) and other.client.url == self.client.url
                and other.client.token == self.client.token)

    def __hash__(self) -> int:
        return hash((self.client.url, self.client.token))

    def __repr__(self) -> str:
        return f"RemoteDatastores({self.client.url!r})"


if TYPE_CHECKING:  # the interface is met (mypy checks it here)
    def _is_an_object_store(store: HttpObjectStore) -> ObjectStore:
        return store
