"""Source snapshots in an S3 bucket (``runlab server --artifacts s3://...``): SnapshotStore over
S3SnapshotStorage, on moto's server on 127.0.0.1. The end-to-end tests (a submit to a server, its agent
running the run from the bucket) are in test_server_s3.py."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

import pytest

from datastore_fixtures import boto3_client
from runlab.core.errors import NotFoundError, StoreError, UserError
from runlab.execution.snapshot import SnapshotStore
from runlab.store.objects.s3 import SINGLE_PUT, S3ObjectStore
from runlab.store.s3_artifacts import S3SnapshotStorage

pytestmark = pytest.mark.slow


def _keys(endpoint: str, bucket: str, prefix: str) -> dict[str, int]:
    pages = boto3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", ())}


def _store(endpoint: str, bucket: str, prefix: str = "team/snapshots") -> SnapshotStore:
    return SnapshotStore(S3SnapshotStorage(S3ObjectStore(bucket, prefix, endpoint)))


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    (folder / "pkg").mkdir(parents=True)
    (folder / "train.py").write_text("print('hello')\n")
    (folder / "pkg" / "util.py").write_text("X = 1\n")
    (folder / "pkg" / "copy.py").write_text("X = 1\n")  # the same content: one object
    (folder / "run.sh").write_text("#!/bin/sh\n")
    (folder / "run.sh").chmod(0o755)
    return folder


def test_take_restore_and_stats_in_the_bucket(src: Path, tmp_path: Path, s3_bucket: tuple[str, str]) -> None:
    endpoint, bucket = s3_bucket
    store = _store(endpoint, bucket)
    snap = store.take(src)
    assert (snap.file_count, snap.new_files) == (4, 3)
    keys = _keys(endpoint, bucket, "team/snapshots/")
    for entry in store.manifest(snap.snapshot_id)["files"]:
        assert keys[f"team/snapshots/objects/{entry['sha256'][:2]}/{entry['sha256'][2:]}"] == entry["size"]
    assert f"team/snapshots/manifests/{snap.snapshot_id}.json" in keys
    assert snap.manifest_path == f"s3://{bucket}/team/snapshots/manifests/{snap.snapshot_id}.json"
    stats = store.stats()
    assert (stats.snapshots, stats.objects, stats.object_bytes) == (1, 3, len("print('hello')\n") + 6 + 10)
    again = store.take(src)  # nothing new to send
    assert again.snapshot_id == snap.snapshot_id and again.new_files == 0

    dest = tmp_path / "dest"
    written = store.restore(snap.snapshot_id, dest)
    assert sorted(p.relative_to(dest).as_posix() for p in written) == ["pkg/copy.py", "pkg/util.py", "run.sh",
                                                                       "train.py"]
    assert (dest / "train.py").read_text() == "print('hello')\n" and os.access(dest / "run.sh", os.X_OK)
    assert not os.access(dest / "train.py", os.X_OK)
    with pytest.raises(NotFoundError, match="not found"):
        store.manifest("0" * 64)
    with pytest.raises(NotFoundError):
        store.manifest("../../workspace")


def test_a_changed_object_is_never_restored(src: Path, tmp_path: Path, s3_bucket: tuple[str, str]) -> None:
    endpoint, bucket = s3_bucket
    store = _store(endpoint, bucket)
    snap = store.take(src)
    sha = next(f["sha256"] for f in store.manifest(snap.snapshot_id)["files"] if f["path"] == "train.py")
    key = f"team/snapshots/objects/{sha[:2]}/{sha[2:]}"
    boto3_client(endpoint).put_object(Bucket=bucket, Key=key, Body=b"print('owned')\n")  # same length, other bytes
    dest = tmp_path / "dest"
    with pytest.raises(StoreError, match="damaged: the content of train.py .* changed outside runlab"):
        store.restore(snap.snapshot_id, dest)
    assert not (dest / "train.py").exists()  # not even in part
    assert not [p for p in dest.rglob("*") if p.name.startswith(".tmp-")]
    boto3_client(endpoint).delete_object(Bucket=bucket, Key=key)
    with pytest.raises(StoreError, match="is missing from"):
        store.restore(snap.snapshot_id, dest)


def test_import_checks_the_bytes_before_they_are_stored(s3_bucket: tuple[str, str]) -> None:
    endpoint, bucket = s3_bucket
    store = _store(endpoint, bucket)
    small = b"print(1)\n"
    big = os.urandom(SINGLE_PUT + 12345)  # spooled through a temporary file, not memory
    for data in (small, big):
        sha = hashlib.sha256(data).hexdigest()
        assert store.missing_objects([sha]) == [sha]
        before = _keys(endpoint, bucket, "team/snapshots/")
        with pytest.raises(UserError, match="not stored"):
            store.import_object(io.BytesIO(data[:-1] + b"!"), sha)  # one byte changed
        with pytest.raises(UserError, match="not stored"):
            store.import_object(io.BytesIO(data[: len(data) // 2]), sha)  # cut short
        assert _keys(endpoint, bucket, "team/snapshots/") == before  # nothing, under no name
        store.import_object(io.BytesIO(data), sha)
        assert store.missing_objects([sha]) == [] and store.has_object(sha)
        stream, size = store.open_object(sha)
        with stream:
            assert size == len(data) and stream.read() == data
    assert _keys(endpoint, bucket, "team/snapshots/objects/")[
        f"team/snapshots/objects/{hashlib.sha256(big).hexdigest()[:2]}/{hashlib.sha256(big).hexdigest()[2:]}"] == len(big)
    for bad in ("../../workspace.json", "A" * 64, "abc", "0" * 63 + "/"):
        with pytest.raises(StoreError, match="not a sha256"):
            store.missing_objects([bad])
        with pytest.raises(StoreError, match="not a sha256"):
            store.open_object(bad)
    with pytest.raises(NotFoundError, match="missing"):
        store.open_object("0" * 64)


def test_a_manifest_is_refused_until_its_objects_are_there(src: Path, tmp_path: Path,
                                                           s3_bucket: tuple[str, str]) -> None:
    endpoint, bucket = s3_bucket
    local = SnapshotStore(tmp_path / "local")
    snap = local.take(src)
    manifest = local.manifest(snap.snapshot_id)
    remote = _store(endpoint, bucket)
    with pytest.raises(UserError, match="has not been sent"):
        remote.import_manifest(snap.snapshot_id, manifest)
    for sha in remote.missing_objects(sorted({f["sha256"] for f in manifest["files"]})):
        with open(local.object_path(sha), "rb") as f:
            remote.import_object(f, sha)
    forged = {**manifest, "files": [{**manifest["files"][0], "path": "../escape.py"}, *manifest["files"][1:]]}
    with pytest.raises(UserError, match="unsafe path"):
        remote.import_manifest(snap.snapshot_id, forged)
    with pytest.raises(UserError, match="does not match"):
        remote.import_manifest("f" * 64, manifest)
    remote.import_manifest(snap.snapshot_id, manifest)
    assert remote.manifest(snap.snapshot_id) == manifest
    remote.restore(snap.snapshot_id, tmp_path / "dest")
    assert (tmp_path / "dest" / "pkg" / "util.py").read_text() == "X = 1\n"
    with pytest.raises(StoreError, match="not files on this machine"):
        remote.object_path(manifest["files"][0]["sha256"])


def test_concurrent_uploads_of_one_object_leave_it_whole(s3_bucket: tuple[str, str]) -> None:
    """Several server processes on one bucket: the same content sent at once by many, and wrong bytes
    claiming its name at the same time, leave the right bytes or nothing, never a mix."""
    endpoint, bucket = s3_bucket
    data = os.urandom(SINGLE_PUT + 1000)
    sha = hashlib.sha256(data).hexdigest()
    errors: list[BaseException] = []

    def send(payload: bytes) -> None:
        store = _store(endpoint, bucket)  # a client (and boto3 session) of its own, as another process has
        try:
            store.import_object(io.BytesIO(payload), sha)
        except UserError as exc:
            if payload == data:
                errors.append(exc)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(data if i % 2 == 0 else os.urandom(len(data)),)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    stream, size = _store(endpoint, bucket).open_object(sha)
    with stream:
        assert size == len(data) and hashlib.sha256(stream.read()).hexdigest() == sha
    assert len(_keys(endpoint, bucket, "team/snapshots/objects/")) == 1
