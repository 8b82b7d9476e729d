"""The object-store interface, against a local folder and a real S3 server (moto on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from runlab.core.errors import (
    InvalidNameError,
    NotFoundError,
    ObjectNotFoundError,
    StoreError,
    StoreUnavailableError,
    UserError,
)
from runlab.store.objects import TEMP_PREFIX, ObjectStore
from runlab.store.objects import local as local_module
from runlab.store.objects import s3 as s3_module
from runlab.store.objects.local import LocalObjectStore
from runlab.store.objects.s3 import S3ObjectStore

BIG = 9 << 20  # over the one-buffer size of the local store and the single-PUT size of S3


@pytest.fixture(params=["local", "s3"])
def objects(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    endpoint, bucket = request.getfixturevalue("s3_bucket")
    return S3ObjectStore(bucket, "some/prefix", endpoint)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read(store: ObjectStore, name: str) -> bytes:
    with store.open(name) as stream:
        return stream.read()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_put_get_open_stat_list_delete(objects: ObjectStore, tmp_path: Path) -> None:
    small = write(tmp_path / "src" / "small.txt", b"hello")
    big_data = os.urandom(BIG)
    big = write(tmp_path / "src" / "big.bin", big_data)
    seen: list[int] = []

    assert objects.put("a/small.txt", small).sha256 == sha(b"hello")
    info = objects.put("a/b/big.bin", big, progress=seen.append)
    assert (info.name, info.size, info.sha256) == ("a/b/big.bin", BIG, sha(big_data))
    assert sum(seen) == BIG
    objects.put_bytes("ab.txt", b"xy")
    with open(small, "rb") as stream:
        objects.put_stream("c.txt", stream)

    assert [(o.name, o.size) for o in objects.list()] == [
        ("a/b/big.bin", BIG), ("a/small.txt", 5), ("ab.txt", 2), ("c.txt", 5)]
    assert [o.name for o in objects.list("a")] == ["a/b/big.bin", "a/small.txt", "ab.txt"]  # a text prefix
    assert [o.name for o in objects.list("a/")] == ["a/b/big.bin", "a/small.txt"]
    assert objects.list("nothing/") == []
    stat = objects.stat("a/b/big.bin")
    assert stat.size == BIG and stat.etag == objects.list("a/b/")[0].etag
    with objects.open("a/small.txt") as stream:
        assert stream.read() == b"hello"
    got = objects.get("a/b/big.bin", tmp_path / "out" / "deep" / "big.bin")
    assert got.sha256 == sha(big_data) and (tmp_path / "out" / "deep" / "big.bin").read_bytes() == big_data
    assert [p.name for p in (tmp_path / "out" / "deep").iterdir()] == ["big.bin"]  # no temporary file left

    assert objects.exists("c.txt") and not objects.exists("a")  # a folder is not an object
    objects.delete("c.txt")
    objects.delete("c.txt")  # absent: nothing happens
    assert not objects.exists("c.txt")
    with pytest.raises(ObjectNotFoundError, match="c.txt"):
        objects.stat("c.txt")
    with pytest.raises(ObjectNotFoundError):
        objects.get("c.txt", tmp_path / "c.txt")
    assert not (tmp_path / "c.txt").exists()


def test_a_put_replaces_and_changes_the_etag(objects: ObjectStore, tmp_path: Path) -> None:
    first = objects.put("f.txt", write(tmp_path / "1", b"one")).etag
    second = objects.put("f.txt", write(tmp_path / "2", b"two")).etag
    assert first != second == objects.stat("f.txt").etag
    with objects.open("f.txt") as stream:
        assert stream.read() == b"two"


@pytest.mark.parametrize("name", ["../escape.txt", "a/../../escape.txt", "/etc/passwd", "a\x00b", "", ".",
                                  f"a/{TEMP_PREFIX}1-2"])
def test_names_that_leave_the_store_or_cannot_be_files_are_refused(objects: ObjectStore, tmp_path: Path,
                                                                   name: str) -> None:
    source = write(tmp_path / "s.txt", b"x")
    with pytest.raises(InvalidNameError):
        objects.put(name, source)
    with pytest.raises(InvalidNameError):
        objects.stat(name)
    assert not (tmp_path / "escape.txt").exists()
    assert objects.list() == []


def test_an_exception_mid_copy_leaves_no_object_and_keeps_the_old_one(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    store.put("data.bin", write(tmp_path / "old.bin", b"old"))
    real = local_module.copy_and_hash

    def half_then_fail(src: int, dst: int, size: int, progress: Any = None) -> tuple[int, str]:
        os.write(dst, os.pread(src, size // 2, 0))
        raise RuntimeError("interrupted")

    monkeypatch.setattr(local_module, "copy_and_hash", half_then_fail)
    with pytest.raises(RuntimeError, match="interrupted"):
        store.put("data.bin", write(tmp_path / "new.bin", os.urandom(1000)))
    with pytest.raises(RuntimeError):
        store.put("fresh/data.bin", tmp_path / "new.bin")
    monkeypatch.setattr(local_module, "copy_and_hash", real)
    assert read(store, "data.bin") == b"old"
    assert [o.name for o in store.list()] == ["data.bin"]
    assert sorted(p.name for p in store.root.rglob("*") if p.is_file()) == ["data.bin"]  # no temporary file left


def test_a_file_that_changes_while_it_is_copied_is_not_stored(objects: ObjectStore, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    source = write(tmp_path / "growing.log", os.urandom(BIG))

    def append_to_source() -> None:  # another program writes to the file while runlab copies it
        with open(source, "ab") as f:
            f.write(b"more\n")

    if isinstance(objects, LocalObjectStore):
        real = local_module.copy_and_hash

        def copy_meanwhile(src: int, dst: int, size: int, progress: Any = None) -> tuple[int, str]:
            result = real(src, dst, size, progress)
            append_to_source()
            return result

        monkeypatch.setattr(local_module, "copy_and_hash", copy_meanwhile)
    else:
        real_hash = s3_module.file_sha256

        def hash_meanwhile(path: Any) -> tuple[int, str]:
            result = real_hash(path)
            append_to_source()
            return result

        monkeypatch.setattr(s3_module, "file_sha256", hash_meanwhile)
    with pytest.raises(UserError, match="changed while runlab copied it"):
        objects.put("growing.log", source)
    monkeypatch.undo()
    assert not objects.exists("growing.log")
    assert objects.list() == []


def test_a_local_store_never_goes_through_a_link_that_leads_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside / "secret.txt", b"secret")
    store = LocalObjectStore(tmp_path / "objects")
    store.put_bytes("inside/real.txt", b"real")
    (store.root / "escape").symlink_to(outside, target_is_directory=True)
    (store.root / "secret-link.txt").symlink_to(outside / "secret.txt")
    (store.root / "alias.txt").symlink_to(store.root / "inside" / "real.txt")  # inside: read as the file

    assert [o.name for o in store.list()] == ["alias.txt", "inside/real.txt"]
    for name in ("escape/secret.txt", "secret-link.txt"):
        with pytest.raises(ObjectNotFoundError, match="leads outside"):
            store.open(name)
        assert not store.exists(name)
    with pytest.raises(StoreError, match="leads outside"):
        store.put_bytes("escape/new.txt", b"x")
    assert not (outside / "new.txt").exists()
    assert read(store, "alias.txt") == b"real"


def test_listings_skip_temporary_files_of_interrupted_copies(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    store.put_bytes("a/done.txt", b"done")
    write(store.root / "a" / f"{TEMP_PREFIX}999-1", b"half")
    assert [o.name for o in store.list()] == ["a/done.txt"]


def test_an_unreachable_s3_endpoint_is_a_clear_error_at_once(aws_env: dict[str, str]) -> None:
    from datastore_fixtures import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = S3ObjectStore("my-bucket", None, endpoint)
    attempts: list[str] = []
    store._client(checking=True).meta.events.register(  # type: ignore[attr-defined]
        "before-send.s3.HeadBucket", lambda request, **_: attempts.append(request.url))
    with pytest.raises(StoreUnavailableError) as caught:
        store.check()
    assert "my-bucket" in str(caught.value) and endpoint in str(caught.value)
    assert "Check the endpoint URL" in str(caught.value)
    assert len(attempts) == 1  # at once: the check does not retry


def test_a_missing_bucket_and_missing_credentials_are_clear_errors(s3_server: str, aws_env: dict[str, str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(NotFoundError, match="bucket 'no-such-bucket' does not exist at http://127.0.0.1"):
        S3ObjectStore("no-such-bucket", None, s3_server).check()
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(UserError, match="AWS_ACCESS_KEY_ID"):
        S3ObjectStore("any-bucket", None, s3_server).check()


def test_s3_keeps_the_sha256_in_the_object_metadata(s3_bucket: tuple[str, str], tmp_path: Path) -> None:
    endpoint, bucket = s3_bucket
    data = os.urandom(BIG)
    S3ObjectStore(bucket, "p", endpoint).put("x/big.bin", write(tmp_path / "big.bin", data))
    from datastore_fixtures import boto3_client

    head = boto3_client(endpoint).head_object(Bucket=bucket, Key="p/x/big.bin")
    assert head["Metadata"]["sha256"] == sha(data)
    assert S3ObjectStore(bucket, "p", endpoint).stat("x/big.bin").sha256 == sha(data)  # a new client knows it


def test_bad_s3_settings_are_refused_before_any_connection() -> None:
    with pytest.raises(InvalidNameError):
        S3ObjectStore("a", None, None)
    with pytest.raises(InvalidNameError):
        S3ObjectStore("good-bucket", "../up", None)
    with pytest.raises(UserError, match="endpoint_url"):
        S3ObjectStore("good-bucket", None, "127.0.0.1:9000")


def test_a_large_local_copy_falls_back_where_the_kernel_cannot_copy(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    def refuse(*_args: Any) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", refuse)
    data = os.urandom(BIG)
    store = LocalObjectStore(tmp_path / "objects")
    assert store.put("big.bin", write(tmp_path / "big.bin", data)).sha256 == sha(data)
    assert read(store, "big.bin") == data
    assert store.get("big.bin", tmp_path / "back.bin").sha256 == sha(data)


def test_many_files_in_parallel_give_what_one_thread_gives(tmp_path: Path) -> None:
    from runlab.store.transfer import folder_items, upload

    files = {f"d{i % 7}/f{i:03d}.bin": os.urandom(i * 37) for i in range(120)}
    for rel, data in files.items():
        write(tmp_path / "src" / rel, data)
    items, left_out = folder_items(tmp_path / "src", "t")
    results = {}
    for workers in (1, 4):
        store = LocalObjectStore(tmp_path / f"objects{workers}")
        rows: list[Any] = []
        result = upload(store, items, record=rows.extend, show_progress=False, max_workers=workers)
        assert sorted(result.copied) == sorted(f"t/{rel}" for rel in files) and left_out == []
        assert {r.path: r.sha256 for r in rows} == {f"t/{rel}": sha(d) for rel, d in files.items()}
        results[workers] = {o.name: read(store, o.name) for o in store.list()}
    assert results[1] == results[4] == {f"t/{rel}": d for rel, d in files.items()}
