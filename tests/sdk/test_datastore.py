"""Datastores through the Azure-named facade, each test against the three kinds: the workspace's
default (workspaceblobstore), a local folder, and an S3 bucket on a real moto server."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import runlab
from datastore_fixtures import AWS_KEY_ID, AWS_SECRET, boto3_client, free_port
from runlab.core.errors import (
    DatastoreNotFoundError,
    InvalidNameError,
    NotFoundError,
    StoreUnavailableError,
    UserError,
)
from runlab.store.objects import TEMP_PREFIX
from runlab.store.objects import local as local_module
from runlab.store.objects import s3 as s3_module
from runlab.store.remote import objects as remote_objects

TREE = {
    "a.txt": b"alpha",
    "empty.txt": b"",
    "sub/b.bin": bytes(range(256)) * 12,
    "sub/deeper/c.csv": b"x,y\n1,2\n",
}


def make_tree(root: Path, files: dict[str, bytes] = TREE) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def stored(ds: runlab.Datastore, prefix: str = "") -> dict[str, bytes]:
    """Every file of the datastore under ``prefix``, read back through its object store."""
    out = {}
    for info in ds.object_store.list(prefix):
        with ds.object_store.open(info.name) as stream:
            out[info.name] = stream.read()
    return out


def index(ds: runlab.Datastore) -> dict[str, Any]:
    return ds.workspace.folder.store.get_datastore_files(ds.name)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def etags(ds: runlab.Datastore) -> dict[str, str | None]:
    return {o.name: o.etag for o in ds.object_store.list()}


def test_upload_copies_the_contents_of_src_dir_under_target_path(datastore: runlab.Datastore, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    src = make_tree(tmp_path / "data")
    path = datastore.upload(src_dir=str(src), target_path="datasets/cifar10", overwrite=True)

    assert isinstance(path, runlab.DataPath)
    assert path.datastore is datastore and path.path_on_datastore == "datasets/cifar10"
    expected = {f"datasets/cifar10/{rel}": data for rel, data in TREE.items()}
    assert stored(datastore) == expected
    rows = index(datastore)
    assert {name: (r.size, r.sha256) for name, r in rows.items()} == {
        name: (len(data), sha(data)) for name, data in expected.items()}
    out = capsys.readouterr().out
    assert "Uploaded 4 files, 3.1 KB in" in out and "4/4 files" in out


def test_a_second_upload_skips_identical_files_and_sha256_decides(datastore: runlab.Datastore, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    src = make_tree(tmp_path / "data")
    datastore.upload(src, target_path="d")
    before = etags(datastore)
    capsys.readouterr()

    changed = bytes(reversed(TREE["sub/b.bin"]))  # same size, other bytes
    (src / "sub" / "b.bin").write_bytes(changed)
    (src / "new.txt").write_bytes(b"new")
    datastore.upload(src, target_path="d")

    out = capsys.readouterr().out
    assert "Uploaded 2 files, 3.1 KB in" in out and "skipped 3 already there" in out
    assert stored(datastore)["d/sub/b.bin"] == changed and stored(datastore)["d/new.txt"] == b"new"
    after = etags(datastore)
    for name in ("d/a.txt", "d/empty.txt", "d/sub/deeper/c.csv"):
        assert after[name] == before[name]  # not written again
    assert after["d/sub/b.bin"] != before["d/sub/b.bin"]
    assert index(datastore)["d/sub/b.bin"].sha256 == sha(changed)


def test_the_summary_says_what_was_skipped(datastore: runlab.Datastore, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    src = make_tree(tmp_path / "data")
    datastore.upload(src, show_progress=False)
    assert capsys.readouterr().out == ""  # show_progress=False prints nothing
    datastore.upload(src)
    assert "Uploaded 0 files, 0 B in" in (out := capsys.readouterr().out) and "skipped 4 already there" in out


def test_overwrite_copies_every_file_again(datastore: runlab.Datastore, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    src = make_tree(tmp_path / "data")
    datastore.upload(src)
    capsys.readouterr()
    datastore.upload(src, overwrite=True)
    out = capsys.readouterr().out
    assert "Uploaded 4 files" in out and "skipped" not in out
    assert stored(datastore) == TREE


@pytest.mark.parametrize("target", ["../up", "a/../../up", "/abs/path", "a\x00b"])
def test_target_paths_that_leave_the_datastore_are_refused(datastore: runlab.Datastore, tmp_path: Path,
                                                           target: str) -> None:
    src = make_tree(tmp_path / "data")
    shown = repr(target)[1:-1]
    with pytest.raises(InvalidNameError) as caught:
        datastore.upload(src, target_path=target)
    assert shown in str(caught.value)
    with pytest.raises(InvalidNameError):
        datastore.upload_files([src / "a.txt"], target_path=target)
    with pytest.raises(InvalidNameError):
        datastore.path(target)
    assert stored(datastore) == {}
    assert not (tmp_path / "up").exists() and not (tmp_path.parent / "up").exists()


def test_a_link_in_src_that_leads_outside_is_refused_before_anything_is_copied(datastore: runlab.Datastore,
                                                                               tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "id_rsa"
    secret.parent.mkdir()
    secret.write_bytes(b"PRIVATE KEY")
    src = make_tree(tmp_path / "data")
    (src / "sub" / "key").symlink_to(secret)
    with pytest.raises(UserError) as caught:
        datastore.upload(src)
    assert str(src / "sub" / "key") in caught.value.message and "Nothing was uploaded" in caught.value.message
    (src / "sub" / "key").unlink()
    (src / "home").symlink_to(secret.parent, target_is_directory=True)
    with pytest.raises(UserError, match="home"):
        datastore.upload(src)
    with pytest.raises(UserError, match="outside"):
        datastore.upload_files([src / "a.txt", src / "home" / "id_rsa"], relative_root=src)
    assert stored(datastore) == {}


def test_links_inside_src_are_uploaded_as_their_files_and_broken_ones_left_out(
        datastore: runlab.Datastore, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_tree(tmp_path / "data")
    (src / "alias.txt").symlink_to(src / "a.txt")
    (src / "broken").symlink_to(src / "missing")
    (src / "subalias").symlink_to(src / "sub", target_is_directory=True)
    datastore.upload(src)
    files = stored(datastore)
    assert files["alias.txt"] == b"alpha" and "broken" not in files
    assert not any(name.startswith("subalias") for name in files)
    out = capsys.readouterr().out
    assert "left out 2: broken (a broken link), subalias (a link to a folder" in out


def test_an_empty_folder_uploads_nothing(datastore: runlab.Datastore, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert datastore.upload(tmp_path / "empty", target_path="x").path_on_datastore == "x"
    assert "Uploaded 0 files, 0 B in" in capsys.readouterr().out
    assert stored(datastore) == {} and index(datastore) == {}
    datastore.upload_files([], target_path="x")


def test_upload_files_names_each_file_relative_to_its_root(datastore: runlab.Datastore, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "data")
    datastore.upload_files([src / "sub" / "b.bin", str(src / "sub" / "deeper" / "c.csv")], target_path="t1")
    datastore.upload_files([src / "sub" / "b.bin"], relative_root=src, target_path="t2")
    datastore.upload_files([src / "a.txt"])
    assert set(stored(datastore)) == {"t1/b.bin", "t1/deeper/c.csv", "t2/sub/b.bin", "a.txt"}
    with pytest.raises(UserError, match="is not under relative_root"):
        datastore.upload_files([src / "a.txt"], relative_root=src / "sub")
    with pytest.raises(UserError, match="not a file"):
        datastore.upload_files([src / "sub"])
    with pytest.raises(UserError, match="missing.txt"):
        datastore.upload_files([src / "a.txt", src / "missing.txt"], target_path="t3")
    with pytest.raises(UserError, match="null"):
        datastore.upload_files([str(src / "a.txt"), str(src) + "/a\x00.txt"], target_path="t3")
    with pytest.raises(UserError):
        datastore.upload(str(src) + "\x00", target_path="t3")
    assert not any(name.startswith("t3") for name in stored(datastore))


def _interrupt_the_third_file(datastore: runlab.Datastore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make the third file copied fail half-way (local: half its bytes written; S3: its PUT never
    completes); returns the names that failed."""
    failed: list[str] = []
    calls = {"n": 0}
    if datastore.kind == "s3":
        def lose_connection(request: Any, **_kwargs: Any) -> None:
            calls["n"] += 1
            if calls["n"] == 3:
                failed.append(request.url.rsplit("/team/data/", 1)[1])
                raise RuntimeError("the connection was lost")

        client = datastore.object_store._client()  # type: ignore[attr-defined]
        client.meta.events.register("before-send.s3.PutObject", lose_connection)
        return failed
    if datastore.object_store.kind == "http":  # files of a runlab server: the PUT's body stops half-way
        real_blocks = remote_objects._blocks

        def half_then_cut(stream: Any, *args: Any) -> Any:
            calls["n"] += 1
            if calls["n"] != 3:
                yield from real_blocks(stream, *args)
                return
            yield stream.read(max(1, os.fstat(stream.fileno()).st_size // 2))
            failed.append(stream.name)
            raise RuntimeError("the power went out")

        monkeypatch.setattr(remote_objects, "_blocks", half_then_cut)
        return failed
    real = local_module.copy_and_hash

    def half_then_fail(src: int, dst: int, size: int, progress: Any = None) -> tuple[int, str]:
        calls["n"] += 1
        if calls["n"] == 3:
            os.write(dst, os.pread(src, max(1, size // 2), 0))
            failed.append(os.readlink(f"/proc/self/fd/{src}"))
            raise RuntimeError("the power went out")
        return real(src, dst, size, progress)

    monkeypatch.setattr(local_module, "copy_and_hash", half_then_fail)
    return failed


def test_an_upload_interrupted_mid_file_leaves_nothing_a_later_upload_would_skip(
        datastore: runlab.Datastore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    files = {f"f{i}.bin": os.urandom(2000 + i) for i in range(6)}
    src = make_tree(tmp_path / "data", files)
    failed = _interrupt_the_third_file(datastore, monkeypatch)
    with pytest.raises(RuntimeError):
        datastore.upload(src, target_path="up", show_progress=False)
    monkeypatch.undo()
    assert len(failed) == 1
    name = "up/" + Path(failed[0]).name
    assert name not in stored(datastore) and name not in index(datastore)
    for done, data in stored(datastore).items():  # what is there is whole, and recorded as such
        assert data == files[done[3:]] and index(datastore)[done].sha256 == sha(data)
    assert not [p for p in tmp_path.rglob(f"{TEMP_PREFIX}*")]  # the half-written file was removed

    datastore.upload(src, target_path="up")
    assert stored(datastore) == {f"up/{n}": d for n, d in files.items()}
    assert "Uploaded" in capsys.readouterr().out
    assert index(datastore)[name].sha256 == sha(files[Path(failed[0]).name])


KILLED_UPLOAD = """
import os, sys, time
import runlab
from runlab.store.objects import local

real = local.copy_and_hash

def slow(src, dst, size, progress=None):
    os.write(dst, os.pread(src, size // 2, 0))
    open(sys.argv[3], "w").close()  # half of the file is written: the parent kills this process now
    time.sleep(120)
    return real(src, dst, size, progress)

local.copy_and_hash = slow

from runlab.store.remote import objects as remote  # files of a runlab server: the PUT's body stops half-way

def slow_blocks(stream, *args):
    yield stream.read(os.fstat(stream.fileno()).st_size // 2)
    open(sys.argv[3], "w").close()
    time.sleep(120)

remote._blocks = slow_blocks
ws = runlab.Workspace.from_config(sys.argv[1])
runlab.Datastore.get(ws, sys.argv[2]).upload(sys.argv[4], target_path="big", show_progress=False)
"""


def test_an_upload_killed_mid_file_leaves_nothing_a_later_upload_would_skip(
        datastore: runlab.Datastore, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    if datastore.kind == "s3":
        pytest.skip("an S3 object appears only when its PUT completes: the interrupted-upload test covers S3")
    data = os.urandom(3 << 20)
    src = make_tree(tmp_path / "data", {"model.bin": data})
    marker = tmp_path / "half-written"
    config = datastore.workspace.write_config(tmp_path / "project")
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED_UPLOAD), str(config),
                              datastore.name, str(marker), str(src)], env=subprocess_env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None, "the uploading process ended before it was killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait()
    root = datastore.object_store.local_path("big")
    if root is not None:  # a folder of this machine: the killed process's leftover is there
        assert [p.name.startswith(TEMP_PREFIX) for p in root.iterdir()] == [True]
    else:  # files of a runlab server, which lives on: it drops the cut PUT's temporary file itself
        deadline = time.monotonic() + 60
        while [p for p in tmp_path.rglob(f"{TEMP_PREFIX}*")]:
            assert time.monotonic() < deadline, "the server kept the temporary file of a cut upload"
            time.sleep(0.1)
    assert stored(datastore) == {} and index(datastore) == {}

    datastore.upload(src, target_path="big", show_progress=False)
    assert stored(datastore) == {"big/model.bin": data}
    assert index(datastore)["big/model.bin"].sha256 == sha(data)


def test_a_file_written_to_during_the_upload_is_not_recorded(datastore: runlab.Datastore, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_tree(tmp_path / "data", {"live.log": os.urandom(9 << 20)})  # large: hashed, then sent

    def another_program_writes() -> None:
        with open(src / "live.log", "ab") as f:
            f.write(b"more")

    if datastore.kind == "s3":
        real_hash = s3_module.file_sha256

        def hash_meanwhile(path: Any) -> tuple[int, str]:
            result = real_hash(path)
            another_program_writes()
            return result

        monkeypatch.setattr(s3_module, "file_sha256", hash_meanwhile)
    elif datastore.object_store.kind == "http":  # files of a runlab server: changed while it is sent
        real_blocks = remote_objects._blocks

        def send_meanwhile(*args: Any) -> Any:
            for i, block in enumerate(real_blocks(*args)):
                yield block
                if i == 0:
                    another_program_writes()

        monkeypatch.setattr(remote_objects, "_blocks", send_meanwhile)
    else:
        real = local_module.copy_and_hash

        def copy_meanwhile(src_fd: int, dst: int, size: int, progress: Any = None) -> tuple[int, str]:
            result = real(src_fd, dst, size, progress)
            another_program_writes()
            return result

        monkeypatch.setattr(local_module, "copy_and_hash", copy_meanwhile)
    with pytest.raises(UserError, match="live.log changed while runlab copied it"):
        datastore.upload(src, show_progress=False)
    monkeypatch.undo()
    assert stored(datastore) == {} and index(datastore) == {}


def test_an_unknown_datastore_is_a_clear_error_naming_those_there_are(ws: runlab.Workspace, tmp_path: Path) -> None:
    runlab.Datastore.register_local(ws, "mine", tmp_path / "mine")
    with pytest.raises(DatastoreNotFoundError) as caught:
        runlab.Datastore.get(ws, "nope")
    assert "'nope'" in caught.value.message and "registered: mine, workspaceblobstore" in caught.value.message
    with pytest.raises(DatastoreNotFoundError, match="registered: mine, workspaceblobstore"):
        ws.set_default_datastore("nope")
    with pytest.raises(DatastoreNotFoundError):
        runlab.Datastore(ws, "nope")
    with pytest.raises(InvalidNameError, match="datastore name"):
        runlab.Datastore.get(ws, "../etc")
    assert ws.get_default_datastore().name == "workspaceblobstore"


def test_the_default_datastore_and_setting_another(ws: runlab.Workspace, tmp_path: Path) -> None:
    ds = ws.get_default_datastore()
    assert (ds.name, ds.datastore_type) == ("workspaceblobstore", "AzureBlob")
    assert runlab.Datastore.get_default(ws) == ds == runlab.Datastore.get(ws, "workspaceblobstore")
    ds.upload_files([make_tree(tmp_path / "data") / "a.txt"], target_path="x")
    assert stored(ds, "x/") == {"x/a.txt": b"alpha"}
    mine = runlab.Datastore.register_local(ws, "mine", tmp_path / "mine")
    ws.set_default_datastore("mine")
    assert ws.get_default_datastore() == mine == runlab.Datastore(ws)
    again = runlab.Workspace.from_config(ws.write_config(tmp_path / "project"))
    assert again.get_default_datastore().name == "mine"  # kept in the workspace, not in this object
    assert sorted(again.datastores) == ["mine", "workspaceblobstore"]


@pytest.mark.embedded_only(reason="reads the default datastore's files in the workspace folder's files/datastores/; "
                            "over a server: test_the_default_datastore_and_setting_another")
def test_the_default_datastore_is_a_folder_of_the_workspace(ws: runlab.Workspace, tmp_path: Path) -> None:
    ds = ws.get_default_datastore()
    assert (ds.name, ds.datastore_type, ds.kind) == ("workspaceblobstore", "AzureBlob", "workspaceblob")
    assert runlab.Datastore.get_default(ws) == ds == runlab.Datastore.get(ws, "workspaceblobstore")
    ds.upload_files([make_tree(tmp_path / "data") / "a.txt"], target_path="x")
    assert (ws.path / "files" / "datastores" / "workspaceblobstore" / "x" / "a.txt").read_bytes() == b"alpha"
    assert list(ws.datastores) == ["workspaceblobstore"]

    mine = runlab.Datastore.register_local(ws, "mine", tmp_path / "mine")
    ws.set_default_datastore("mine")
    assert ws.get_default_datastore() == mine == runlab.Datastore(ws)
    assert runlab.Workspace.from_path(ws.path).get_default_datastore().name == "mine"  # kept in the workspace
    assert sorted(ws.datastores) == ["mine", "workspaceblobstore"]
    ds.set_as_default()
    assert ws.get_default_datastore().name == "workspaceblobstore"


def test_a_local_datastore_is_registered_once(ws: runlab.Workspace, tmp_path: Path) -> None:
    first = runlab.Datastore.register_local(ws, "mine", tmp_path / "a")
    assert (tmp_path / "a").is_dir() and first.datastore_type == "Local"
    assert first.config == {"path": str((tmp_path / "a").resolve())}
    assert runlab.Datastore.register_local(ws, "mine", tmp_path / "a") == first
    with pytest.raises(UserError, match="overwrite=True"):
        runlab.Datastore.register_local(ws, "mine", tmp_path / "b")
    assert runlab.Datastore.register_local(ws, "mine", tmp_path / "b", overwrite=True).config["path"].endswith("/b")
    with pytest.raises(UserError, match="workspace's own datastore"):
        runlab.Datastore.register_local(ws, "workspaceblobstore", tmp_path / "c")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreUnavailableError, match="not a folder|cannot use"):
        runlab.Datastore.register_local(ws, "onfile", tmp_path / "file")
    with pytest.raises(DatastoreNotFoundError):
        runlab.Datastore.get(ws, "onfile")


def test_register_s3_reaches_the_bucket_at_once(ws: runlab.Workspace, s3_server: str,
                                                aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreUnavailableError) as caught:
        runlab.Datastore.register_s3(ws, "remote", "my-bucket", endpoint_url=closed)
    message = caught.value.message
    assert "cannot register datastore 'remote'" in message and "'my-bucket'" in message and closed in message
    with pytest.raises(NotFoundError, match="bucket 'missing-bucket' does not exist"):
        runlab.Datastore.register_s3(ws, "remote", "missing-bucket", endpoint_url=s3_server)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(UserError, match="AWS_SECRET_ACCESS_KEY"):
        runlab.Datastore.register_s3(ws, "remote", "my-bucket", endpoint_url=s3_server)
    assert list(ws.datastores) == ["workspaceblobstore"]  # nothing registered


def test_credentials_are_never_written_into_the_workspace(ws: runlab.Workspace, s3_bucket: tuple[str, str],
                                                          tmp_path: Path, runlab_home: Path) -> None:
    endpoint, bucket = s3_bucket
    ds = runlab.Datastore.register_s3(ws, "remote", bucket, prefix="p", endpoint_url=endpoint, region="us-east-1")
    ds.upload(make_tree(tmp_path / "data"), target_path="t")
    ds.download(tmp_path / "back", prefix="t")
    ds.list_files(checksums=True)
    ws.folder.close()
    assert ds.config == {"bucket": bucket, "prefix": "p", "endpoint_url": endpoint, "region": "us-east-1"}
    for root in (ws.path, runlab_home):
        for path in root.rglob("*"):
            if path.is_file():
                content = path.read_bytes()
                assert AWS_SECRET.encode() not in content and AWS_KEY_ID.encode() not in content, path


def test_a_bucket_shared_by_two_workspaces_skips_what_the_other_uploaded(
        s3_bucket: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    endpoint, bucket = s3_bucket
    src = make_tree(tmp_path / "data")
    first = runlab.Workspace.create("first-ws", path=tmp_path / "ws1")
    second = runlab.Workspace.create("second-ws", path=tmp_path / "ws2")
    runlab.Datastore.register_s3(first, "shared", bucket, endpoint_url=endpoint).upload(src)
    capsys.readouterr()
    runlab.Datastore.register_s3(second, "shared", bucket, endpoint_url=endpoint).upload(src)
    assert "skipped 4 already there" in capsys.readouterr().out  # the sha256 S3 keeps with each object
    head = boto3_client(endpoint).head_object(Bucket=bucket, Key="sub/b.bin")
    assert head["Metadata"]["sha256"] == sha(TREE["sub/b.bin"])


def test_download_brings_files_back_and_skips_identical_ones(datastore: runlab.Datastore, tmp_path: Path) -> None:
    datastore.upload(make_tree(tmp_path / "data"), target_path="ds")
    dest = tmp_path / "back"
    assert datastore.download(dest, prefix="ds/sub", show_progress=False) == 2
    assert (dest / "ds" / "sub" / "deeper" / "c.csv").read_bytes() == TREE["sub/deeper/c.csv"]
    assert datastore.download(dest, show_progress=False) == 2  # a.txt, empty.txt: the others are there
    assert datastore.download(dest, show_progress=False) == 0
    (dest / "ds" / "a.txt").write_bytes(b"ALPHA")  # same size, other bytes: replaced
    assert datastore.download(dest, show_progress=False) == 1
    assert (dest / "ds" / "a.txt").read_bytes() == b"alpha"
    assert datastore.download(dest, overwrite=True, show_progress=False) == 4
    assert not list(dest.rglob(f"{TEMP_PREFIX}*"))
    with pytest.raises(InvalidNameError):
        datastore.download(dest, prefix="../..")
    with pytest.raises(InvalidNameError):
        datastore.download(dest, prefix="ds/\x00")


def test_download_never_writes_through_a_link_that_leads_out(datastore: runlab.Datastore, tmp_path: Path) -> None:
    datastore.upload(make_tree(tmp_path / "data"))
    dest = tmp_path / "back"
    dest.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (dest / "sub").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(UserError, match="outside"):
        datastore.download(dest, show_progress=False)
    assert list((tmp_path / "elsewhere").iterdir()) == [] and not (dest / "a.txt").exists()


def test_list_files_knows_the_checksums_of_what_runlab_wrote(datastore: runlab.Datastore, tmp_path: Path) -> None:
    datastore.upload(make_tree(tmp_path / "data"))
    datastore.object_store.put_bytes("later.txt", b"later")  # written without the datastore's index
    folder = datastore.object_store.local_path("by-hand.txt")  # a folder of this machine (not S3, not a server's)
    if folder is not None:  # and a file put into the folder by hand
        folder.write_bytes(b"by hand")
    files = {f.name: f for f in datastore.list_files()}
    assert files["sub/b.bin"].sha256 == sha(TREE["sub/b.bin"]) and files["sub/b.bin"].size == len(TREE["sub/b.bin"])
    if folder is not None:
        assert files["by-hand.txt"].sha256 is None
    with_checksums = {f.name: f.sha256 for f in datastore.list_files(checksums=True)}
    assert with_checksums["later.txt"] == sha(b"later")
    assert "later.txt" in index(datastore)  # computed once, then known
    assert [f.name for f in datastore.list_files("sub/")] == ["sub/b.bin", "sub/deeper/c.csv"]


def test_datapath(datastore: runlab.Datastore) -> None:
    path = datastore.path("datasets/cifar10/")
    assert (path.datastore, path.datastore_name, path.path_on_datastore) == (
        datastore, datastore.name, "datasets/cifar10")
    assert datastore.path().path_on_datastore == "" and path == datastore.path("datasets/cifar10")
    assert runlab.DataPath(datastore, "a/b") == datastore.path("a/b")


def test_a_run_file_that_grows_while_uploaded_is_stored_as_measured(ws: runlab.Workspace, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A log still written while run.upload_file sends it: stored as long as it was when measured, and
    over HTTP no byte past that length reaches the connection (the server would read it as the start of
    the next request)."""
    from runlab.store.remote import artifacts as remote_artifacts

    data = os.urandom(3 << 20)
    log = tmp_path / "train.log"
    log.write_bytes(data)
    real_blocks = remote_artifacts._blocks

    def written_meanwhile(*args: Any) -> Any:
        for i, block in enumerate(real_blocks(*args)):
            yield block
            if i == 0:
                with open(log, "ab") as f:
                    f.write(b"more lines\n")

    monkeypatch.setattr(remote_artifacts, "_blocks", written_meanwhile)
    run = runlab.Experiment(ws, "grows").start_logging()
    try:
        run.upload_file("logs/train.log", str(log))
        assert "logs/train.log" in run.get_file_names()  # the next request on the connection is understood
        with run.open_file("logs/train.log") as f:
            assert f.read()[:len(data)] == data
    finally:
        run.complete()
