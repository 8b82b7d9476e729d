"""``runlab server --artifacts s3://bucket/prefix``: run files, live logs, model contents and the workspace's own
datastore in an S3 bucket (moto's server on 127.0.0.1), the server's own folder (state) on this machine."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Iterator

import pytest

import runlab
from datastore_fixtures import boto3_client
from runlab import Dataset, ScriptRunConfig
from runlab.core.errors import FileNotFoundInRunError
from runlab.store import s3_artifacts
from runlab.store.objects.s3 import S3ObjectStore
from runlab.store.s3_artifacts import S3ArtifactStore, S3BlobStore
from server_support import ServerProcess

pytestmark = pytest.mark.slow

TRAIN = textwrap.dedent("""
    import os, sys
    from runlab import Run
    run = Run.get_context()
    for i in range(3):
        run.log("loss", 1.0 / (i + 1))
        print("epoch", i, flush=True)
    os.makedirs("outputs", exist_ok=True)
    with open("outputs/model.pt", "wb") as f:
        f.write(bytes(range(256)) * 40000)  # 10 MB: a multipart upload
    print("saved", flush=True)
""")


def _keys(endpoint: str, bucket: str, prefix: str) -> dict[str, int]:
    pages = boto3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", ())}


@pytest.fixture
def s3_server_ws(tmp_path: Path, s3_bucket: tuple[str, str], subprocess_env: dict[str, str],
                 aws_env: dict[str, str]) -> Iterator[tuple[runlab.Workspace, ServerProcess, str, str]]:
    endpoint, bucket = s3_bucket
    env = {**subprocess_env, **aws_env}
    server = ServerProcess(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "state", env,
                           extra=["--state", str(tmp_path / "state"), "--s3-endpoint-url", endpoint])
    server.artifacts_arg = f"s3://{bucket}/team"
    server.start()
    ws = runlab.Workspace.get("default", server=server.url)
    try:
        yield ws, server, endpoint, bucket
    finally:
        server.stop()


def test_a_submitted_run_keeps_its_logs_outputs_and_model_in_the_bucket(
        s3_server_ws: tuple[runlab.Workspace, ServerProcess, str, str], tmp_path: Path) -> None:
    ws, server, endpoint, bucket = s3_server_ws
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(TRAIN)
    runlab.ComputeTarget.create(ws, "cpu-cluster", runlab.AmlCompute.provisioning_configuration(max_nodes=1))
    run = runlab.Experiment(ws, "s3").submit(ScriptRunConfig(source_directory=str(src), script="train.py",
                                                             compute_target="cpu-cluster"))
    run.wait_for_completion(show_output=False, timeout_seconds=300)
    assert run.get_status() == "Completed", run.get_details().get("error")
    names = run.get_file_names()
    assert "outputs/model.pt" in names and "azureml-logs/70_driver_log.txt" in names
    log = tmp_path / "driver.txt"
    run.download_file("azureml-logs/70_driver_log.txt", str(log))
    text = log.read_text()
    assert "epoch 2" in text and "saved" in text
    assert run.get_metrics()["loss"] == [1.0, 0.5, 1.0 / 3]

    keys = _keys(endpoint, bucket, "team/")
    assert keys[f"team/runs/{run.id}/outputs/model.pt"] == 10_240_000
    assert any(k.startswith(f"team/parts/{run.id}/azureml-logs/70_driver_log.txt/") for k in keys)  # shipped live
    assert not list((tmp_path / "state" / "files" / "runs").rglob("*.pt"))  # nothing of it in the state folder

    model = run.register_model("net", "outputs/model.pt")
    digest = hashlib.sha256(bytes(range(256)) * 40000).hexdigest()
    assert _keys(endpoint, bucket, "team/models/") == {f"team/models/{digest[:2]}/{digest[2:]}": 10_240_000}
    out = Path(runlab.Model(ws, "net", version=model.version).download(str(tmp_path / "dl")))
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest
    again = run.register_model("net", "outputs/model.pt")  # the same content: kept once
    assert again.version == model.version + 1
    assert len(_keys(endpoint, bucket, "team/models/")) == 1


def test_client_files_and_the_default_datastore(s3_server_ws: tuple[runlab.Workspace, ServerProcess, str, str],
                                                tmp_path: Path) -> None:
    ws, _server, endpoint, bucket = s3_server_ws
    run = runlab.Experiment(ws, "files").start_logging()
    (tmp_path / "notes.txt").write_text("hello")
    run.upload_file("outputs/notes.txt", str(tmp_path / "notes.txt"))
    run.complete()
    run.download_file("outputs/notes.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == "hello"
    with pytest.raises(FileNotFoundInRunError):
        run.download_file("outputs/nope.txt", str(tmp_path / "nope.txt"))

    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.bin").write_bytes(b"a" * 1000)
    (data / "sub" / "b.bin").write_bytes(b"b" * 2000)
    datastore = ws.get_default_datastore()
    datastore.upload(str(data), target_path="cifar", show_progress=False)
    keys = _keys(endpoint, bucket, "team/datastores/")
    assert keys == {"team/datastores/workspaceblobstore/cifar/a.bin": 1000,
                    "team/datastores/workspaceblobstore/cifar/sub/b.bin": 2000}
    dataset = Dataset.File.from_files(path=(datastore, "cifar")).register(ws, "cifar")
    dataset.download(target_path=str(tmp_path / "got"))
    got = tmp_path / "got"
    assert sorted(p.relative_to(got).as_posix() for p in got.rglob("*") if p.is_file()) == ["a.bin", "sub/b.bin"]


def test_appends_go_to_parts_and_a_whole_write_replaces_them(s3_bucket: tuple[str, str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint, bucket = s3_bucket
    monkeypatch.setattr(s3_artifacts, "PART_REWRITE_MAX", 10)
    store = S3ArtifactStore(S3ObjectStore(bucket, "p", endpoint))
    sent = b""
    for i in range(12):
        chunk = f"line {i}\n".encode()
        store.append_bytes("run_1", "logs/driver.txt", chunk)
        sent += chunk
    assert store.size("run_1", "logs/driver.txt") == len(sent)
    with store.open("run_1", "logs/driver.txt") as f:
        assert f.read() == sent
    for offset in (0, 1, 7, 8, 9, 25, len(sent) - 1, len(sent), len(sent) + 5):  # across part boundaries
        with store.open("run_1", "logs/driver.txt", offset) as f:
            assert f.read() == sent[offset:], offset
    parts = [k for k in _keys(endpoint, bucket, "p/parts/")]
    assert 6 <= len(parts) <= 12  # a part is rewritten while small, then a new one starts
    assert store.list("run_1") == ["logs/driver.txt"]
    store.put_bytes("run_1", "logs/driver.txt", b"whole")
    assert _keys(endpoint, bucket, "p/parts/") == {}
    store.append_bytes("run_1", "logs/driver.txt", b"+more")  # after a whole write: the file, then its parts
    with store.open("run_1", "logs/driver.txt") as f:
        assert f.read() == b"whole+more"
    store.put_bytes("run_1", "logs/driver.txt.bak", b"x")  # a name that starts like another is its own file
    assert store.size("run_1", "logs/driver.txt") == 10 and store.list("run_1", "logs/") == [
        "logs/driver.txt", "logs/driver.txt.bak"]
    for bad in ("../other/x", "/abs", "a/../../b"):
        with pytest.raises(runlab.core.errors.InvalidNameError):
            store.append_bytes("run_1", bad, b"x")
    with pytest.raises(runlab.core.errors.InvalidNameError):
        store.put_bytes("../run_2", "x.txt", b"x")
    store.delete_run("run_1")
    assert _keys(endpoint, bucket, "p/") == {}
    with pytest.raises(FileNotFoundInRunError):
        store.size("run_1", "logs/driver.txt")


def test_blob_store_refuses_a_file_that_changes_while_it_is_stored(s3_bucket: tuple[str, str], tmp_path: Path) -> None:
    endpoint, bucket = s3_bucket
    blobs = S3BlobStore(S3ObjectStore(bucket, "m", endpoint))
    path = tmp_path / "model.bin"
    path.write_bytes(b"x" * 100_000)
    import os

    fd = os.open(path, os.O_RDONLY)
    try:
        sha, size, new = blobs.put_fd(fd, 100_000)
        assert new and size == 100_000 and blobs.has(sha, size) and not blobs.has(sha, 99)
        assert blobs.put_fd(fd, 100_000) == (sha, size, False)
        with pytest.raises(s3_artifacts.Changed):
            blobs.put_fd(fd, 200_000)  # the file holds fewer bytes than said
    finally:
        os.close(fd)
    out = tmp_path / "out.bin"
    with open(out, "wb") as f:
        blobs.copy_to(sha, size, f.fileno())
    assert out.read_bytes() == b"x" * 100_000
    assert blobs.count() == (1, 100_000)


def _server_cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runlab.cli", "server", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_a_prefix_holding_another_workspace_and_a_changed_location_are_refused(
        tmp_path: Path, s3_bucket: tuple[str, str], subprocess_env: dict[str, str], aws_env: dict[str, str]) -> None:
    endpoint, bucket = s3_bucket
    env = {**subprocess_env, **aws_env}
    first = ServerProcess(f"sqlite:///{tmp_path / 'one.db'}", tmp_path / "one", env,
                          extra=["--state", str(tmp_path / "one"), "--s3-endpoint-url", endpoint])
    first.artifacts_arg = f"s3://{bucket}/shared"
    first.start()
    first.stop()
    other = _server_cli(env, "--store", f"sqlite:///{tmp_path / 'two.db'}", "--artifacts", f"s3://{bucket}/shared",
                        "--state", str(tmp_path / "two"), "--s3-endpoint-url", endpoint, "--no-auth",
                        "--port", "1")
    assert other.returncode != 0
    assert "holds the files of another workspace" in other.stderr, other.stderr
    moved = _server_cli(env, "--store", f"sqlite:///{tmp_path / 'one.db'}", "--artifacts", f"s3://{bucket}/elsewhere",
                        "--state", str(tmp_path / "one"), "--s3-endpoint-url", endpoint, "--no-auth", "--port", "1")
    assert moved.returncode != 0 and "keeps its files in s3://" in moved.stderr, moved.stderr
    stray = _server_cli(env, "--store", f"sqlite:///{tmp_path / 'one.db'}", "--artifacts", str(tmp_path / "x"),
                        "--s3-endpoint-url", endpoint, "--no-auth")
    assert stray.returncode != 0 and "go with --artifacts s3://" in stray.stderr, stray.stderr


def test_an_unreachable_or_missing_bucket_stops_the_server_at_start_with_why(
        tmp_path: Path, s3_server: str, subprocess_env: dict[str, str], aws_env: dict[str, str]) -> None:
    from server_support import free_port

    env = {**subprocess_env, **aws_env}
    down = _server_cli(env, "--store", f"sqlite:///{tmp_path / 'a.db'}", "--artifacts", "s3://nobucket/x",
                       "--state", str(tmp_path / "a"), "--s3-endpoint-url", f"http://127.0.0.1:{free_port()}",
                       "--no-auth")
    assert down.returncode != 0 and "cannot reach the S3 endpoint" in down.stderr, down.stderr
    missing = _server_cli(env, "--store", f"sqlite:///{tmp_path / 'b.db'}", "--artifacts",
                          f"s3://missing-{uuid.uuid4().hex[:8]}/x", "--state", str(tmp_path / "b"),
                          "--s3-endpoint-url", s3_server, "--no-auth")
    assert missing.returncode != 0 and "does not exist" in missing.stderr, missing.stderr
    assert "Traceback" not in down.stderr + missing.stderr


def test_backup_of_an_s3_server_lists_the_bucket(s3_server_ws: tuple[runlab.Workspace, ServerProcess, str, str],
                                                 tmp_path: Path, subprocess_env: dict[str, str],
                                                 aws_env: dict[str, str]) -> None:
    import json

    ws, server, endpoint, bucket = s3_server_ws
    run = runlab.Experiment(ws, "backed").start_logging()
    run.upload_file("outputs/a.txt", __file__)
    run.complete()
    done = subprocess.run([sys.executable, "-m", "runlab.cli", "server", "backup", str(tmp_path / "bk"), "--store",
                           server.store_url, "--artifacts", str(server.artifacts)], env={**subprocess_env, **aws_env},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "listed in the manifest, not copied" in done.stdout
    manifest = json.loads((tmp_path / "bk" / "manifest.json").read_text())
    names = {o["name"] for o in manifest["s3"]["listing"]}
    assert f"runs/{run.id}/outputs/a.txt" in names and "workspace.json" in names
    assert manifest["s3"]["url"] == f"s3://{bucket}/team"


def test_unfinished_multipart_uploads_under_the_prefix_are_aborted_when_old(s3_bucket: tuple[str, str]) -> None:
    from runlab.store.s3_artifacts import S3Artifacts

    endpoint, bucket = s3_bucket
    client = boto3_client(endpoint)
    mine = client.create_multipart_upload(Bucket=bucket, Key="team/runs/r1/outputs/big.bin")["UploadId"]
    theirs = client.create_multipart_upload(Bucket=bucket, Key="elsewhere/big.bin")["UploadId"]
    artifacts = S3Artifacts(f"s3://{bucket}/team", endpoint)
    # moto reports every upload as started in 2010: the age is checked with a bound older than that
    assert artifacts.abort_stale_uploads(older_than_s=100 * 365 * 86400) == 0
    assert artifacts.abort_stale_uploads() == 1
    left = {u["UploadId"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])}
    assert mine not in left and theirs in left  # outside the server's prefix: not its to abort


def test_a_file_that_grows_while_it_is_sent_sends_what_its_length_said(
        ws: runlab.Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen in CI with a live log in S3: the size was read, then a part was added before the bytes were
    streamed; the response sent more than its Content-Length and the client got a broken read."""
    import warnings

    from runlab.server.app import create_app
    from runlab.store.artifacts import LocalArtifactStore

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient

    run = runlab.Experiment(ws, "grows").start_logging()
    ws.folder.artifacts.put_bytes(run.id, "logs/live.txt", b"0123456789" * 100)
    real_size, real_open_sized = LocalArtifactStore.size, LocalArtifactStore.open_sized
    monkeypatch.setattr(LocalArtifactStore, "size", lambda self, r, n: real_size(self, r, n) - 300)  # it grew since
    monkeypatch.setattr(LocalArtifactStore, "open_sized",
                        lambda self, r, n, o=0: (lambda got: (got[0], got[1] - 300))(real_open_sized(self, r, n, o)))
    with TestClient(create_app(ws.folder)) as client:
        for url in (f"/api/remote/runs/{run.id}/files/logs/live.txt?offset=100", f"/api/runs/{run.id}/files/logs/live.txt"):
            response = client.get(url)
            assert response.status_code == 200, response.text
            assert len(response.content) == int(response.headers["content-length"]), url
        assert response.content == (b"0123456789" * 100)[:700]
    run.complete()


SNAPSHOT_TRAIN = "from helpers.message import TEXT\nprint(TEXT, flush=True)\n"
MESSAGE = b"TEXT = 'from the snapshot'\n"
INTRUDER = b"TEXT = 'from an intruder!'\n"  # as long as MESSAGE: the object's size does not give it away


def test_a_submitted_snapshot_lives_in_the_bucket_and_a_changed_object_is_never_run(
        s3_server_ws: tuple[runlab.Workspace, ServerProcess, str, str], tmp_path: Path, subprocess_env: dict[str, str],
        aws_env: dict[str, str]) -> None:
    import json

    import httpx

    from runlab.core.errors import StoreError
    from runlab.execution.remote import pull_snapshot
    from runlab.execution.snapshot import SnapshotStore
    from runlab.store.remote.client import ServerClient

    ws, server, endpoint, bucket = s3_server_ws
    env = {**subprocess_env, **aws_env}
    src = tmp_path / "src"
    (src / "helpers").mkdir(parents=True)
    (src / "helpers" / "__init__.py").write_text("")
    (src / "helpers" / "message.py").write_bytes(MESSAGE)
    (src / "train.py").write_text(SNAPSHOT_TRAIN)
    runlab.ComputeTarget.create(ws, "cpu-cluster", runlab.AmlCompute.provisioning_configuration(max_nodes=1))
    config = ScriptRunConfig(source_directory=str(src), script="train.py", compute_target="cpu-cluster")
    run = runlab.Experiment(ws, "snap").submit(config)
    run.wait_for_completion(show_output=False, timeout_seconds=300)
    assert run.get_status() == "Completed", run.get_details().get("error")
    run.download_file("azureml-logs/70_driver_log.txt", str(tmp_path / "driver.txt"))
    assert "from the snapshot" in (tmp_path / "driver.txt").read_text()

    snapshot_id = run.get_snapshot_id()
    assert snapshot_id
    shas = {hashlib.sha256(p.read_bytes()).hexdigest() for p in src.rglob("*") if p.is_file()}
    keys = _keys(endpoint, bucket, "team/snapshots/")
    assert set(keys) == {f"team/snapshots/manifests/{snapshot_id}.json",
                         *(f"team/snapshots/objects/{sha[:2]}/{sha[2:]}" for sha in shas)}
    state = tmp_path / "state"
    assert [p for p in (state / "files" / "snapshots").rglob("*") if not p.is_dir()] == []  # none on the server's disk
    assert not [p for p in state.rglob("*") if p.is_file() and p.name == f"{snapshot_id}.json"]
    run_keys = _keys(endpoint, bucket, "team/")
    assert any(k.startswith((f"team/runs/{run.id}/azureml-logs/20_image_build_log.txt",
                             f"team/parts/{run.id}/azureml-logs/20_image_build_log.txt/")) for k in run_keys)

    # a second server process on the same bucket (and store, and state folder) serves the same snapshot
    second = ServerProcess(server.store_url, state, env, extra=["--state", str(state), "--s3-endpoint-url", endpoint,
                                                                "--no-agents"])
    second.artifacts_arg = f"s3://{bucket}/team"
    with second:
        info = httpx.get(f"{second.url}/api/runs/{run.id}/snapshot", timeout=30).json()
        assert sorted(f["path"] for f in info["files"]) == ["helpers/__init__.py", "helpers/message.py", "train.py"]
        got = httpx.get(f"{second.url}/api/runs/{run.id}/snapshot/helpers/message.py", timeout=30)
        assert got.status_code == 200 and got.content == MESSAGE
        agent_cache = SnapshotStore(tmp_path / "agent-cache")  # an agent on another machine fetches it
        pull_snapshot(ServerClient(second.url), agent_cache, snapshot_id)
        agent_cache.restore(snapshot_id, tmp_path / "agent-work")
        assert (tmp_path / "agent-work" / "helpers" / "message.py").read_bytes() == MESSAGE

    # the backup's manifest lists the snapshot with the bucket's other objects
    done = subprocess.run([sys.executable, "-m", "runlab.cli", "server", "backup", str(tmp_path / "bk"), "--store",
                           server.store_url, "--artifacts", str(state)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    listed = {o["name"] for o in json.loads((tmp_path / "bk" / "manifest.json").read_text())["s3"]["listing"]}
    assert {k[len("team/"):] for k in keys} <= listed

    # someone changes an object in the bucket: same length, other bytes
    sha = hashlib.sha256(MESSAGE).hexdigest()
    key = f"team/snapshots/objects/{sha[:2]}/{sha[2:]}"
    boto3_client(endpoint).put_object(Bucket=bucket, Key=key, Body=INTRUDER)
    with pytest.raises(httpx.HTTPError):  # the server cuts the response rather than send it whole
        httpx.get(f"{server.url}/api/remote/snapshots/{snapshot_id}/objects/{sha}", timeout=30).raise_for_status()
    with pytest.raises(StoreError, match="message.py"):
        pull_snapshot(ServerClient(server.url), SnapshotStore(tmp_path / "other-cache"), snapshot_id)
    again = runlab.Experiment(ws, "snap").submit(config)  # the same tree: the same snapshot, nothing sent again
    assert again.get_snapshot_id() == snapshot_id
    again.wait_for_completion(show_output=False, raise_on_error=False, timeout_seconds=300)
    assert again.get_status() == "Failed"
    error = str(again.get_details().get("error"))
    assert "damaged" in error and "helpers/message.py" in error and "changed outside runlab" in error, error
    assert "intruder" not in "".join(again.get_file_names())
    for name in again.get_file_names():
        if name.endswith(".txt"):
            again.download_file(name, str(tmp_path / "again.txt"))
            assert "intruder" not in (tmp_path / "again.txt").read_text()

    boto3_client(endpoint).put_object(Bucket=bucket, Key=key, Body=b"x")  # another length: refused up front, with why
    refused = httpx.get(f"{server.url}/api/remote/snapshots/{snapshot_id}/objects/{sha}", timeout=30)
    assert refused.status_code >= 400 and "holds 1 bytes" in refused.text, refused.text


def test_a_download_lists_the_files_objects_once(s3_bucket: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """open_sized (what the download endpoints use) gives open()'s bytes and size()'s size from one listing."""
    from runlab.store.artifacts import open_with_size

    endpoint, bucket = s3_bucket
    monkeypatch.setattr(s3_artifacts, "PART_REWRITE_MAX", 10)
    store = S3ArtifactStore(S3ObjectStore(bucket, "p", endpoint))
    store.put_bytes("run_1", "logs/driver.txt", b"whole\n")
    sent = b"whole\n"
    for i in range(5):
        chunk = f"line {i}\n".encode()
        store.append_bytes("run_1", "logs/driver.txt", chunk)
        sent += chunk
    calls: list[str] = []
    real_list = S3ObjectStore.list

    def counting(self: S3ObjectStore, prefix: str = "") -> list[object]:
        calls.append(prefix)
        return real_list(self, prefix)  # type: ignore[return-value]

    monkeypatch.setattr(S3ObjectStore, "list", counting)
    store.size("run_1", "logs/driver.txt")
    one_look = len(calls)
    for offset in (0, 3, 6, 7, len(sent) - 1, len(sent), len(sent) + 4):
        calls.clear()
        stream, size = open_with_size(store, "run_1", "logs/driver.txt", offset)
        with stream:
            assert (stream.read(), size) == (sent[offset:], len(sent)), offset
        assert len(calls) == one_look, calls  # not size()'s listing and then open()'s
    with pytest.raises(FileNotFoundInRunError):
        open_with_size(store, "run_1", "logs/none.txt")
