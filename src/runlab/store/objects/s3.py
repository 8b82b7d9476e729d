"""S3ObjectStore: objects in an S3-compatible bucket (AWS S3, MinIO, Ceph, moto), through boto3.

Object ``name`` is the key ``<prefix>/<name>``. Credentials come only from where boto3 looks for them
(``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` and the
shared credentials files, an instance role): runlab never asks for them, passes them on, or writes
them anywhere. With ``endpoint_url`` (a server other than AWS) keys are addressed path-style.

Each object written by runlab carries its sha256 in its metadata (``x-amz-meta-sha256``), so
:meth:`S3ObjectStore.stat` knows it. A PUT is atomic; a large file goes up as a multipart upload,
which S3 shows only once it is complete (and aborts when it fails). botocore's errors are translated
here, once (:meth:`S3ObjectStore._error`): an endpoint that does not answer is a
:class:`~runlab.core.errors.StoreUnavailableError` naming the bucket, the endpoint and what to check.

boto3 is imported on first use, never when runlab loads.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from runlab.core.errors import (
    InvalidNameError,
    NotFoundError,
    ObjectNotFoundError,
    RunlabError,
    StoreError,
    StoreUnavailableError,
    UserError,
)
from runlab.core.names import shown
from runlab.store.objects import (
    HASH_BLOCK,
    ObjectInfo,
    ProgressCallback,
    check_object_name,
    check_prefix,
    file_sha256,
    fingerprint,
    source_changed,
)
from runlab.store.objects.local import write_local_file

__all__ = ["DEFAULT_S3_WORKERS", "S3ObjectStore", "check_bucket_name"]

DEFAULT_S3_WORKERS = 16
SINGLE_PUT = 8 << 20  # files below this go up in one PUT, read once
PART_SIZE = 16 << 20
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 60
SHA256_KEY = "sha256"
BUCKET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{1,254}")
_CREDENTIALS_HINT = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment; runlab "
                     "reads them from there and never stores them")


def check_bucket_name(bucket: object) -> str:
    """``bucket`` when it can name an S3 bucket; else :class:`InvalidNameError`."""
    if not isinstance(bucket, str) or not BUCKET_NAME.fullmatch(bucket):
        raise InvalidNameError(f"invalid S3 bucket name {shown(bucket)}: use 3 to 63 lowercase letters, digits, "
                               "'.' or '-' (for example 'my-data')", name=bucket)
    return bucket


class S3ObjectStore:
    """Objects under ``prefix`` in S3 bucket ``bucket`` (at ``endpoint_url``, default AWS; in ``region``)."""

    kind = "s3"

    def __init__(
        self,
        bucket: str,
        prefix: str | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        *,
        max_workers: int = DEFAULT_S3_WORKERS,
    ) -> None:
        self.bucket = check_bucket_name(bucket)
        self.prefix = check_prefix(prefix or "", f"bucket {bucket!r}").rstrip("/")
        if endpoint_url is not None and not re.match(r"https?://[^/\s]+", str(endpoint_url)):
            raise UserError(f"invalid S3 endpoint_url {shown(endpoint_url)}: use an http:// or https:// URL, for "
                            "example 'http://127.0.0.1:9000'", endpoint_url=endpoint_url)
        self.endpoint_url = endpoint_url.rstrip("/") if endpoint_url else None
        self.region = region or None
        self.max_workers = max_workers
        self._key_prefix = self.prefix + "/" if self.prefix else ""
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.endpoint = self.endpoint_url or f"AWS S3 ({self.region or 'the default region'})"
        self.description = f"{where} at {self.endpoint}"
        self._lock = threading.Lock()
        self._clients: dict[bool, Any] = {}

    def __repr__(self) -> str:
        return (f"S3ObjectStore(bucket={self.bucket!r}, prefix={self.prefix!r}, endpoint_url={self.endpoint_url!r}, "
                f"region={self.region!r})")

    # -- the client and its errors ----------------------------------------------------------------

    def _client(self, checking: bool = False) -> Any:
        """The boto3 client (one per store, shared by threads); ``checking``: one that does not retry."""
        client = self._clients.get(checking)
        if client is not None:
            return client
        with self._lock:
            if checking not in self._clients:
                import boto3  # type: ignore[import-untyped]
                from botocore.config import Config  # type: ignore[import-untyped]

                options: dict[str, Any] = {
                    "connect_timeout": CONNECT_TIMEOUT_S,
                    "read_timeout": READ_TIMEOUT_S,
                    "retries": {"total_max_attempts": 1 if checking else 5, "mode": "standard"},
                    "max_pool_connections": max(10, 2 * self.max_workers),
                }
                if self.endpoint_url:
                    options["s3"] = {"addressing_style": "path"}
                session = boto3.session.Session()
                self._clients[checking] = session.client(
                    "s3", endpoint_url=self.endpoint_url, region_name=self.region, config=Config(**options))
            return self._clients[checking]

    def _key(self, name: str) -> tuple[str, str]:
        rel = check_object_name(name, self.description)
        return rel, self._key_prefix + rel

    @contextmanager
    def _boundary(self, doing: str, name: str | None = None) -> Iterator[None]:
        """Translate botocore's errors raised inside into runlab's, once."""
        try:
            yield
        except RunlabError:
            raise
        except Exception as exc:
            error = self._error(exc, doing, name)
            if error is None:
                raise
            raise error from exc

    def _error(self, exc: BaseException, doing: str, name: str | None = None) -> RunlabError | None:
        """The runlab error for botocore error ``exc`` raised while ``doing`` (None: not botocore's)."""
        from botocore import exceptions as bx  # type: ignore[import-untyped]

        inner = exc
        if type(exc).__module__.startswith("boto3") and isinstance(exc.__context__, Exception):
            inner = exc.__context__  # S3UploadFailedError wraps the ClientError
        if isinstance(inner, (bx.NoCredentialsError, bx.PartialCredentialsError, bx.CredentialRetrievalError)):
            return UserError(f"no usable AWS credentials to {doing} in {self.description} ({inner}): {_CREDENTIALS_HINT}",
                             bucket=self.bucket, endpoint=self.endpoint)
        if isinstance(inner, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError,
                              bx.ConnectionClosedError, bx.HTTPClientError)):
            return StoreUnavailableError(
                f"cannot reach the S3 endpoint {self.endpoint} (bucket {self.bucket!r}) to {doing}: {inner}. "
                "Check the endpoint URL and region, that the server is running, and that this machine can reach it",
                bucket=self.bucket, endpoint=self.endpoint)
        if isinstance(inner, bx.ClientError):
            response = getattr(inner, "response", {}) or {}
            code = str(response.get("Error", {}).get("Code", ""))
            message = str(response.get("Error", {}).get("Message", "")) or str(inner)
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket" or (status == 404 and name is None):
                return NotFoundError(
                    f"S3 bucket {self.bucket!r} does not exist at {self.endpoint}: create it, or check the bucket "
                    "name, endpoint_url and region", bucket=self.bucket, endpoint=self.endpoint)
            if code in ("NoSuchKey", "NotFound", "404") or status == 404:
                return ObjectNotFoundError(f"{self.description} has no file {name!r}", name=name)
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                        "InvalidToken", "Forbidden", "403") or status == 403:
                return UserError(
                    f"access denied to {self.description} while trying to {doing} ({code or status}: {message}): "
                    "check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE) and the "
                    "bucket's policy", bucket=self.bucket, endpoint=self.endpoint)
            if (isinstance(status, int) and status >= 500) or code in ("SlowDown", "ServiceUnavailable",
                                                                        "InternalError", "RequestTimeout"):
                return StoreUnavailableError(f"{self.description} cannot {doing} now ({code or status}: {message}); "
                                             "try again later", bucket=self.bucket, endpoint=self.endpoint)
            return StoreError(f"S3 refused to {doing} in {self.description} ({code or status}: {message})",
                              bucket=self.bucket, endpoint=self.endpoint)
        if isinstance(inner, bx.BotoCoreError):
            return StoreError(f"cannot {doing} in {self.description}: {inner}", bucket=self.bucket,
                              endpoint=self.endpoint)
        return None

    def check(self) -> None:
        """Raise unless the bucket can be reached with the credentials of the environment: a
        ``StoreUnavailableError`` for an endpoint that does not answer, ``NotFoundError`` for a missing
        bucket, ``UserError`` for missing or refused credentials. Does not retry."""
        with self._boundary("check the bucket"):
            self._client(checking=True).head_bucket(Bucket=self.bucket)

    # -- writing ------------------------------------------------------------------------------------

    def put(self, name: str, source: str | os.PathLike[str], *,
            progress: ProgressCallback | None = None) -> ObjectInfo:
        """Upload the local file ``source`` as ``name`` (one PUT, or a multipart upload when large)."""
        rel, key = self._key(name)
        try:
            f = open(source, "rb")
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise UserError(f"cannot read {shown(str(source))}: {reason}", path=str(source)) from exc
        with f:
            before = os.fstat(f.fileno())
            if not stat.S_ISREG(before.st_mode):
                raise UserError(f"{source} is not a regular file: only files can be stored", path=str(source))
            if before.st_size < SINGLE_PUT:
                try:
                    data = f.read()
                except OSError as exc:
                    raise UserError(f"cannot read {source}: {exc.strerror or exc}", path=str(source)) from exc
                if fingerprint(os.fstat(f.fileno())) != fingerprint(before):
                    raise source_changed(source)
                info = self._put_bytes(rel, key, data)
                if progress is not None:
                    progress(len(data))
                return info
            size, sha256 = file_sha256(source)
            if size != before.st_size:
                raise source_changed(source)
            f.seek(0)
            with self._boundary(f"upload {rel!r}", rel):
                from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]

                config = TransferConfig(multipart_threshold=SINGLE_PUT, multipart_chunksize=PART_SIZE,
                                        max_concurrency=4, use_threads=True)
                self._client().upload_fileobj(f, self.bucket, key, ExtraArgs={"Metadata": {SHA256_KEY: sha256}},
                                              Callback=progress, Config=config)
            if fingerprint(os.fstat(f.fileno())) != fingerprint(before):
                self.delete(rel)
                raise source_changed(source)
        return self.stat(rel)

    def _put_bytes(self, rel: str, key: str, data: bytes) -> ObjectInfo:
        sha256 = hashlib.sha256(data).hexdigest()
        with self._boundary(f"upload {rel!r}", rel):
            response = self._client().put_object(Bucket=self.bucket, Key=key, Body=data,
                                                 Metadata={SHA256_KEY: sha256})
        return ObjectInfo(name=rel, size=len(data), sha256=sha256, etag=str(response.get("ETag", "")).strip('"'))

    def put_bytes(self, name: str, data: bytes) -> ObjectInfo:
        """Upload ``data`` as ``name`` in one PUT."""
        rel, key = self._key(name)
        return self._put_bytes(rel, key, bytes(data))

    def put_stream(self, name: str, stream: BinaryIO, *, progress: ProgressCallback | None = None) -> ObjectInfo:
        """Upload what ``stream`` holds as ``name``: read into memory up to 8 MB, else through a
        temporary local file (the sha256 must be known before the upload starts)."""
        import tempfile

        head = stream.read(SINGLE_PUT)
        if len(head) < SINGLE_PUT:
            info = self.put_bytes(name, head)
            if progress is not None:
                progress(len(head))
            return info
        with tempfile.TemporaryDirectory(prefix="runlab-s3-") as folder:
            spool = Path(folder) / "spool"
            with open(spool, "wb") as out:
                out.write(head)
                while block := stream.read(HASH_BLOCK):
                    out.write(block)
            return self.put(name, spool, progress=progress)

    def delete(self, name: str) -> None:
        """Delete object ``name`` (nothing happens when it is absent)."""
        rel, key = self._key(name)
        with self._boundary(f"delete {rel!r}", rel):
            self._client().delete_object(Bucket=self.bucket, Key=key)

    # -- reading ------------------------------------------------------------------------------------

    def stat(self, name: str) -> ObjectInfo:
        """Size, ETag, sha256 (when runlab wrote it) and time of object ``name``."""
        rel, key = self._key(name)
        with self._boundary(f"read {rel!r}", rel):
            head = self._client().head_object(Bucket=self.bucket, Key=key)
        modified = head.get("LastModified")
        return ObjectInfo(name=rel, size=int(head.get("ContentLength", 0)),
                          sha256=(head.get("Metadata") or {}).get(SHA256_KEY),
                          etag=str(head.get("ETag", "")).strip('"') or None,
                          modified_at=modified.timestamp() if modified is not None else None)

    def exists(self, name: str) -> bool:
        """Whether object ``name`` exists (one HEAD)."""
        try:
            self.stat(name)
        except ObjectNotFoundError:
            return False
        return True

    def local_path(self, name: str) -> None:
        """None: an S3 object has no path on this machine."""
        self._key(name)
        return None

    def open(self, name: str, offset: int = 0) -> BinaryIO:
        """A stream of object ``name``'s bytes from ``offset`` on (botocore's streaming body)."""
        rel, key = self._key(name)
        ranged = {"Range": f"bytes={int(offset)}-"} if offset > 0 else {}
        with self._boundary(f"read {rel!r}", rel):
            response = self._client().get_object(Bucket=self.bucket, Key=key, **ranged)
        body: BinaryIO = response["Body"]
        return body

    def get(self, name: str, dest: Path, *, progress: ProgressCallback | None = None) -> ObjectInfo:
        """Download object ``name`` to the local file ``dest`` (atomically), checking its sha256
        against the one in its metadata when there is one."""
        rel, key = self._key(name)
        with self._boundary(f"download {rel!r}", rel):
            response = self._client().get_object(Bucket=self.bucket, Key=key)
            expected = (response.get("Metadata") or {}).get(SHA256_KEY)
            body = response["Body"]

            def fill(fd: int) -> tuple[int, str]:
                digest = hashlib.sha256()
                total = 0
                for block in body.iter_chunks(HASH_BLOCK):
                    digest.update(block)
                    view = memoryview(block)
                    while view:
                        view = view[os.write(fd, view):]
                    total += len(block)
                    if progress is not None:
                        progress(len(block))
                sha256 = digest.hexdigest()
                if expected and sha256 != expected:
                    raise StoreError(f"{rel!r} of {self.description} arrived with sha256 {sha256}, not the "
                                     f"{expected} it was stored with: download it again", name=rel)
                return total, sha256

            try:
                size, sha256 = write_local_file(Path(dest), fill)
            finally:
                body.close()
        modified = response.get("LastModified")
        return ObjectInfo(name=rel, size=size, sha256=sha256, etag=str(response.get("ETag", "")).strip('"') or None,
                          modified_at=modified.timestamp() if modified is not None else None)

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Objects whose names start with ``prefix``, sorted by name (one LIST call per 1,000)."""
        prefix = check_prefix(prefix, self.description)
        found = []
        with self._boundary("list the files"):
            pages = self._client().get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key_prefix + prefix)
            for page in pages:
                for item in page.get("Contents", ()):
                    name = str(item["Key"])[len(self._key_prefix):]
                    try:
                        check_object_name(name)
                    except InvalidNameError:
                        continue  # a folder marker ("a/"), or a key runlab cannot name
                    modified = item.get("LastModified")
                    found.append(ObjectInfo(name=name, size=int(item.get("Size", 0)),
                                            etag=str(item.get("ETag", "")).strip('"') or None,
                                            modified_at=modified.timestamp() if modified is not None else None))
        found.sort(key=lambda info: info.name)
        return found
