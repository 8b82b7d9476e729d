"""The model file store of a ``runlab server``, from a client: what :class:`~runlab.store.blobs.BlobStore`
offers registrations and downloads, over HTTP.

The server keeps registered models' files in its own content-addressed store
(``<artifacts>/files/models/objects/``); its routes (:mod:`runlab.server.api.remote`) are:

- ``HEAD /api/remote/models/blobs/<sha256>``: whether the content is there (its size in
  ``Content-Length``), 404 when it is not;
- ``PUT /api/remote/models/blobs/<sha256>``: a content, streamed with its length; the server hashes the
  bytes as they arrive and keeps them only when their sha256 is the one named (writers only);
- ``GET /api/remote/models/blobs/<sha256>``: the bytes, streamed (checked here against the sha256 and
  the size recorded as they are written out);
- ``POST /api/remote/models/blobs/from-run`` ``{"run_id": ..., "names": [...]}``: the server copies run
  files of its own into the store (nothing goes through the client) and answers each one's sha256,
  size and identity (writers, and a run's own token for its own run's files).

Deleting is the server's: a ``delete_model`` call removes the contents no version holds any more, under
the server's lock, as a registration records its files under it (checked to be there).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Iterator, Sequence

from runlab.core.assets import ModelFile
from runlab.core.errors import NotFoundError, StoreError, UserError
from runlab.store.blobs import _SHA256, Changed
from runlab.store.objects import HASH_BLOCK, ProgressCallback, copy_to_fd
from runlab.store.remote.client import ServerClient

__all__ = ["BLOBS_PATH", "HttpBlobStore"]

BLOBS_PATH = "/api/remote/models/blobs"
SHA256_HEADER = "X-Content-SHA256"


class HttpBlobStore:
    """The model contents of the server ``client`` talks to (see the module's docstring)."""

    def __init__(self, client: ServerClient) -> None:
        self.client = client

    def __repr__(self) -> str:
        return f"HttpBlobStore({self.client.url!r})"

    def _path(self, sha256: str) -> str:
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise StoreError(f"{str(sha256)[:80]!r} is not a sha256: the record that names it is damaged",
                             sha256=sha256)
        return f"{BLOBS_PATH}/{sha256}"

    def has(self, sha256: str, size: int) -> bool:
        """Whether the server keeps the content, with ``size`` bytes (one HEAD request)."""
        try:
            resp = self.client.request("HEAD", self._path(sha256), ok=(200,))
        except NotFoundError:
            return False
        length = resp.headers.get("content-length") or resp.headers.get("Content-Length")
        return length is not None and length.isdigit() and int(length) == size

    def put_fd(self, src: int, size: int, progress: ProgressCallback | None = None) -> tuple[str, int, bool]:
        """Send the first ``size`` bytes of open file ``src`` unless the server has them: (sha256, size,
        whether it was new). Hashed here first (one read), then streamed; the server checks the sha256
        before the content appears. :class:`Changed` when ``src`` did not hold those bytes throughout."""
        digest = hashlib.sha256()
        read = 0
        for block in _blocks(src, size, pad=False):
            digest.update(block)
            read += len(block)
        sha256 = digest.hexdigest()
        if read != size or os.fstat(src).st_size != size:  # it shrank, or grew
            raise Changed()
        if self.has(sha256, size):
            return sha256, size, False
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size), SHA256_HEADER: sha256}
        try:
            answer = self.client.request("PUT", self._path(sha256), body=_counted(_blocks(src, size, pad=True), progress),
                                         headers=headers).json()
        except UserError as exc:
            if "nothing stored" in str(exc):  # other bytes arrived than those hashed: the file changed meanwhile
                raise Changed() from exc
            raise
        if not isinstance(answer, dict) or answer.get("sha256") != sha256 or answer.get("size") != size:
            raise StoreError(f"the runlab server at {self.client.url} stored a model file as {answer!r}, not "
                             f"{size} bytes with sha256 {sha256}: register the model again")
        return sha256, size, bool(answer.get("new"))

    def copy_to(self, sha256: str, size: int, dest_fd: int, progress: ProgressCallback | None = None) -> None:
        """Write the content into open file ``dest_fd``, checked against its sha256 and size."""
        resp = self.client.request("GET", self._path(sha256), stream=True, ok=(200,))
        try:
            total, digest = copy_to_fd(resp, dest_fd, progress)  # type: ignore[arg-type]
        finally:
            resp.close()
        if total != size or digest != sha256:
            raise StoreError(f"the model content {sha256[:16]}... from the runlab server at {self.client.url} "
                             f"arrived as {total} bytes with other contents than recorded ({size} bytes): "
                             "download it again; if it happens again, the server's model files were changed "
                             "outside runlab", sha256=sha256)

    def copy_run_files(self, run_id: str, names: Sequence[str]) -> tuple[dict[str, ModelFile], int, int]:
        """Have the server store run ``run_id``'s files ``names`` itself: ({name: the file as stored, named by
        its run file name}, new contents, their bytes)."""
        answer: Any = self.client.post_json(f"{BLOBS_PATH}/from-run", {"run_id": run_id, "names": list(names)})
        items = answer.get("files") if isinstance(answer, dict) else None
        if not isinstance(items, list):
            raise StoreError(f"the runlab server at {self.client.url} sent a malformed answer to a model file copy")
        out: dict[str, ModelFile] = {}
        for item in items:
            if not (isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("size"), int)
                    and isinstance(item.get("sha256"), str) and _SHA256.fullmatch(item["sha256"])):
                raise StoreError(f"the runlab server at {self.client.url} sent a malformed model file: {item!r}"[:300])
            etag = item.get("source_etag")
            out[item["name"]] = ModelFile(path=item["name"], size=item["size"], sha256=item["sha256"],
                                          source=f"run:{run_id}/{item['name']}",
                                          source_etag=etag if isinstance(etag, str) else None)
        missing = [n for n in names if n not in out]
        if missing:
            raise StoreError(f"the runlab server at {self.client.url} did not store run files {missing[:5]}")
        return out, int(answer.get("new_files") or 0), int(answer.get("new_bytes") or 0)


def _blocks(fd: int, size: int, *, pad: bool) -> Iterator[bytes]:
    """The first ``size`` bytes of ``fd`` in blocks (read at offsets: the file's position is not used).
    ``pad``: a file that shrank meanwhile is sent padded to ``size`` (the server's sha256 check then
    refuses it) rather than short, which would leave the request waiting for bytes that never come."""
    offset = 0
    while offset < size:
        data = os.pread(fd, min(HASH_BLOCK, size - offset), offset)
        if not data:
            if pad:
                yield bytes(min(HASH_BLOCK, size - offset))
                offset += min(HASH_BLOCK, size - offset)
                continue
            return
        offset += len(data)
        yield data


def _counted(blocks: Iterator[bytes], progress: ProgressCallback | None) -> Iterator[bytes]:
    for block in blocks:
        yield block
        if progress is not None:
            progress(len(block))
