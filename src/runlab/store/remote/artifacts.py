"""Run files on a server: the :class:`~runlab.store.artifacts.ArtifactStore` interface over HTTP.

Files go up streamed (``PUT /api/remote/runs/<id>/files/<name>``, the body read from the file in
blocks, never whole in memory) and come down streamed. Names are checked here as the local store
checks them, and again by the server.
"""

from __future__ import annotations

import builtins
import os
import shutil
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from runlab.core.errors import UserError
from runlab.core.names import check_run_id
from runlab.store.artifacts import check_file_name
from runlab.store.remote.client import ServerClient

BLOCK = 1 << 20
OCTETS = {"Content-Type": "application/octet-stream"}


def _path(run_id: str, name: str | None = None) -> str:
    """The route of the run's files, or of its file ``name`` (checked here, "" too: never the files' route)."""
    base = f"/api/remote/runs/{urllib.parse.quote(check_run_id(run_id), safe='')}/files"
    return base if name is None else base + "/" + urllib.parse.quote(check_file_name(name))


def _blocks(stream: BinaryIO, size: int, source: object) -> Iterator[bytes]:
    """Exactly the first ``size`` bytes of ``stream`` (its Content-Length): a file that grew meanwhile
    (a log still written) is sent as it was when measured, never with bytes past its length, which the
    server would read as the start of the next request; one that shrank cuts the body short (nothing is
    stored) with an error, rather than leave the request waiting for bytes that never come."""
    sent = 0
    while sent < size:
        data = stream.read(min(BLOCK, size - sent))
        if not data:
            raise UserError(f"{source} shrank from {size} to {sent} bytes while it was uploaded (is another program "
                            "writing it?): nothing was stored; upload it again", path=str(source))
        sent += len(data)
        yield data


class _RemoteFile:
    """A run file on the server, read as a stream; ``seek`` before reading starts the download there
    (how ``wait_for_completion`` follows a growing driver log: an open answer not read yet is dropped
    and asked again from the offset)."""

    def __init__(self, client: ServerClient, path: str) -> None:
        self._client, self._path = client, path
        self._offset = 0
        self._resp: Any = None
        self._read_any = False

    def _open(self) -> Any:
        if self._resp is None:
            self._resp = self._client.request("GET", self._path, stream=True,
                                              query={"offset": self._offset} if self._offset else None)
        return self._resp

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0 or self._read_any:
            raise OSError("a server's run file can only seek to an absolute offset before it is read")
        if self._resp is not None and offset != self._offset:
            self.close()  # opened (to say at once whether the file is there), not read: asked again from offset
        self._offset = offset
        return offset

    def read(self, amt: int | None = -1) -> bytes:
        data = self._open().read(None if amt is None or amt < 0 else amt)
        self._read_any = True
        self._offset += len(data)
        return bytes(data)

    def readinto(self, buffer: Any) -> int:
        n = int(self._open().readinto(buffer))
        self._read_any = True
        self._offset += n
        return n

    def tell(self) -> int:
        return self._offset

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if self._resp is not None:
            self._resp.close()
            self._resp = None

    def __enter__(self) -> "_RemoteFile":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class HttpArtifactStore:
    def __init__(self, client: ServerClient) -> None:
        self.client = client

    def put_file(self, run_id: str, name: str, source: Path) -> None:
        try:
            size = os.stat(source).st_size
            with open(source, "rb") as stream:
                self._put(run_id, name, stream, size)
        except OSError as exc:
            raise UserError(f"cannot read {source} to upload it as {name}: {exc.strerror or exc}", path=str(source)) from exc

    def put_stream(self, run_id: str, name: str, stream: BinaryIO) -> None:
        self._put(run_id, name, stream, None)

    def put_bytes(self, run_id: str, name: str, data: bytes) -> None:
        self.client.request("PUT", _path(run_id, name), body=bytes(data), headers=OCTETS)

    def _put(self, run_id: str, name: str, stream: BinaryIO, size: int | None) -> None:
        headers = dict(OCTETS)
        if size is not None:
            headers["Content-Length"] = str(size)
            self.client.request("PUT", _path(run_id, name), body=_blocks(stream, size, name), headers=headers)
            return
        with tempfile.TemporaryFile() as spool:  # an unknown length: spooled to disk, then sent with its length
            shutil.copyfileobj(stream, spool, BLOCK)
            length = spool.tell()
            headers["Content-Length"] = str(length)
            spool.seek(0)
            self.client.request("PUT", _path(run_id, name), body=_blocks(spool, length, name), headers=headers)

    def append_bytes(self, run_id: str, name: str, data: bytes) -> None:
        self.client.request("POST", _path(run_id, name), body=bytes(data), headers=OCTETS, query={"append": 1})

    def list(self, run_id: str, prefix: str = "") -> builtins.list[str]:
        return [str(item["name"]) for item in self.list_with_sizes(run_id, prefix)]

    def list_with_sizes(self, run_id: str, prefix: str = "") -> builtins.list[dict[str, object]]:
        return list(self.client.get_json(_path(run_id), prefix=prefix or None))

    def size(self, run_id: str, name: str) -> int:
        resp = self.client.request("HEAD", _path(run_id, name))
        return int(resp.headers.get("content-length") or resp.headers.get("Content-Length") or 0)

    def open(self, run_id: str, name: str, offset: int = 0) -> BinaryIO:
        stream = _RemoteFile(self.client, _path(run_id, name))
        if offset:
            stream.seek(offset)
        stream._open()  # now, as a folder's open does: a file that is not there is FileNotFoundInRunError here
        return stream  # type: ignore[return-value]

    def get_to_path(self, run_id: str, name: str, dest: Path) -> Path:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        resp = _RemoteFile(self.client, _path(run_id, name))
        try:
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".download-")
            try:
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(resp, out, BLOCK)
                os.replace(tmp, dest)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        finally:
            resp.close()
        return dest

    def delete_run(self, run_id: str) -> None:
        self.client.request("DELETE", _path(run_id))

    def local_path(self, run_id: str, name: str) -> None:
        return None  # the files are the server's


__all__ = ["HttpArtifactStore"]
