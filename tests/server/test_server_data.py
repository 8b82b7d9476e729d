"""The workspace's own datastore (``workspaceblobstore``) from a client of ``runlab server``: upload,
list, download, datasets over it and runs that mount them, the same as on an embedded workspace
(``any_ws``); then what the server refuses (names, tokens)."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import httpx
import pytest

import runlab
from runlab import Dataset, ScriptRunConfig
from runlab.core.errors import InvalidNameError, ObjectNotFoundError, PermissionDeniedError
from runlab.sdk.datastore import Datastore
from runlab.store.remote.client import ServerClient
from runlab.store.remote.objects import SHA256_HEADER, HttpObjectStore
from runlab.store.sql.store import SqlStore
from runlab.store.sql.tokens import TokenStore
from server_support import ServerProcess

pytestmark = pytest.mark.slow

FILES = {
    "cifar-10-batches-py/data_batch_1": bytes(range(256)) * 4096 + b"one",  # 1 MiB and a bit: several blocks
    "cifar-10-batches-py/data_batch_2": b"two" * 1000,
    "cifar-10-batches-py/batches.meta": b"meta",
    "cifar-10-batches-py/readme.html": b"<p>hello</p>",
}

COUNT = textwrap.dedent("""
    import argparse, os
    from runlab import Run
    parser = argparse.ArgumentParser()
    parser.add_argument("--data_path")
    args = parser.parse_args()
    found = sorted(os.path.relpath(os.path.join(d, f), args.data_path) for d, _, fs in os.walk(args.data_path) for f in fs)
    run = Run.get_context()
    run.log("files", len(found))
    run.log("bytes", sum(os.path.getsize(os.path.join(args.data_path, f)) for f in found))
    print("found", found)
""")


def _data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    for name, data in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def test_the_default_datastore_round_trip(any_ws: runlab.Workspace, tmp_path: Path) -> None:
    """Upload a folder and files, list, download, re-upload (skipped), a FileDataset over it, registered,
    downloaded and mounted here."""
    datastore = any_ws.get_default_datastore()
    assert datastore.name == "workspaceblobstore"
    folder = _data(tmp_path)
    datastore.upload(src_dir=str(folder), target_path="datasets/cifar10", overwrite=True, show_progress=False)
    datastore.upload_files([str(tmp_path / "data/cifar-10-batches-py/batches.meta")], target_path="single",
                           show_progress=False)

    listed = {i.name: i for i in datastore.list_files("datasets/cifar10")}
    assert {n: i.size for n, i in listed.items()} == {f"datasets/cifar10/{n}": len(d) for n, d in FILES.items()}
    sums = {i.name: i.sha256 for i in datastore.list_files("datasets/cifar10", checksums=True)}
    assert sums == {f"datasets/cifar10/{n}": hashlib.sha256(d).hexdigest() for n, d in FILES.items()}
    assert [i.name for i in datastore.list_files("single/")] == ["single/batches.meta"]

    # the same files again: nothing is rewritten (same etags), as on an embedded workspace
    datastore.upload(src_dir=str(folder), target_path="datasets/cifar10", show_progress=False)
    assert {i.name: i.etag for i in datastore.list_files("datasets/cifar10")} == {n: i.etag for n, i in listed.items()}

    back = tmp_path / "back"
    assert datastore.download(str(back), prefix="datasets/cifar10", show_progress=False) == len(FILES)
    assert {p.relative_to(back / "datasets/cifar10").as_posix(): p.read_bytes()
            for p in back.rglob("*") if p.is_file()} == FILES

    objects = datastore.object_store
    with objects.open("datasets/cifar10/cifar-10-batches-py/data_batch_1") as stream:
        assert stream.read() == FILES["cifar-10-batches-py/data_batch_1"]
    info = objects.put_bytes("scratch/x.bin", b"x" * 10)
    assert info.size == 10 and info.sha256 == hashlib.sha256(b"x" * 10).hexdigest()
    assert objects.exists("scratch/x.bin") and objects.stat("scratch/x.bin").size == 10
    objects.delete("scratch/x.bin")
    objects.delete("scratch/x.bin")  # absent: nothing happens
    assert not objects.exists("scratch/x.bin")
    with pytest.raises(ObjectNotFoundError):
        objects.stat("scratch/x.bin")
    with pytest.raises(ObjectNotFoundError):
        objects.open("no/such/file")

    dataset = Dataset.File.from_files(path=(datastore, "datasets/cifar10"))
    registered = dataset.register(any_ws, "cifar10", description="four files")
    again = Dataset.get_by_name(any_ws, "cifar10")
    assert again.version == registered.version == 1
    got = again.download(str(tmp_path / "dl"))
    assert sorted(Path(p).read_bytes() for p in got) == sorted(FILES.values())
    with again.mount() as mounted:
        root = Path(mounted.mount_point)
        assert {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()} == FILES


def test_a_submitted_run_mounts_a_dataset_of_the_default_datastore(any_ws: runlab.Workspace, tmp_path: Path) -> None:
    """Tutorial part 4's shape: upload, Dataset.File.from_files, as_mount in a submitted run."""
    datastore = any_ws.get_default_datastore()
    datastore.upload(src_dir=str(_data(tmp_path)), target_path="datasets/cifar10", show_progress=False)
    dataset = Dataset.File.from_files(path=(datastore, "datasets/cifar10"))
    src = tmp_path / "src"
    src.mkdir()
    (src / "count.py").write_text(COUNT)
    for consume in (dataset.as_named_input("input").as_mount(),
                    dataset.register(any_ws, "cifar").as_named_input("input").as_download()):
        config = ScriptRunConfig(str(src), "count.py", arguments=["--data_path", consume])
        run = runlab.Experiment(any_ws, "data").submit(config)
        run.wait_for_completion(timeout_seconds=240)
        with run.open_file("azureml-logs/70_driver_log.txt") as f:
            log = f.read().decode(errors="replace")
        assert run.get_status() == "Completed", log[-3000:]
        assert run.get_metrics() == {"files": len(FILES), "bytes": sum(map(len, FILES.values()))}


# -- what the server refuses -------------------------------------------------------------------------


@pytest.fixture
def secured(tmp_path: Path, subprocess_env: dict[str, str]) -> tuple[ServerProcess, TokenStore]:
    url = f"sqlite:///{tmp_path / 'secure.db'}"
    store = SqlStore(url)
    tokens = TokenStore(store.engine)
    proc = ServerProcess(url, tmp_path / "artifacts", subprocess_env, auth=True)
    proc.start()
    yield proc, tokens
    proc.stop()
    store.close()


def test_names_and_tokens_the_datastore_routes_refuse(secured: tuple[ServerProcess, TokenStore],
                                                      tmp_path: Path) -> None:
    server, tokens = secured
    writer, _ = tokens.create("ci", "writer")
    reader, _ = tokens.create("viewer", "reader")
    ws = runlab.Workspace.get("default", server=server.url, token=writer)
    datastore = ws.get_default_datastore()
    folder = _data(tmp_path)
    datastore.upload(src_dir=str(folder), target_path="d", show_progress=False)
    src = tmp_path / "src"
    src.mkdir()
    (src / "noop.py").write_text("print('ok')\n")
    meta = Dataset.File.from_files(path=(datastore, "d/cifar-10-batches-py/batches.meta")).register(ws, "meta")
    run = runlab.Experiment(ws, "tokens").submit(ScriptRunConfig(
        source_directory=str(src), script="noop.py", arguments=[meta.as_named_input("meta").as_mount()]))
    run_token, _ = tokens.create("run-token", "run", run_id=run.id)

    # names: refused here, and by the server when sent anyway
    objects = datastore.object_store
    for bad in ("../escape", "/etc/passwd", "a/../../b", ".runlab-tmp-1/x", "a\x00b"):
        with pytest.raises(InvalidNameError):
            objects.put_bytes(bad, b"x")
    headers = {"Authorization": f"Bearer {writer}"}
    base = f"{server.url}/api/remote/datastores/workspaceblobstore"
    for raw in ("/objects/.runlab-tmp-1", "/objects/a/%2e%2e/%2e%2e/b", "/objects/%2Fetc%2Fpasswd",
                "/objects/..%2F..%2Fx"):
        refused = httpx.put(base + raw, content=b"x", headers=headers)
        assert refused.status_code in (400, 404, 422), (raw, refused.status_code, refused.text)
    assert not (server.artifacts.parent / "x").exists() and not (server.artifacts / "files" / "x").exists()
    altered = httpx.put(base + "/objects/ok.bin", content=b"abc",
                        headers={**headers, SHA256_HEADER: hashlib.sha256(b"abd").hexdigest()})
    assert altered.status_code == 400 and "nothing stored" in altered.text
    assert not objects.exists("ok.bin")
    unknown = httpx.get(f"{server.url}/api/remote/datastores/nope/objects", headers=headers)
    assert unknown.status_code == 404
    (tmp_path / "mine").mkdir()
    Datastore.register_local(ws, "mine", str(tmp_path / "mine"))  # a folder of the client's machine
    other_kind = httpx.get(f"{server.url}/api/remote/datastores/mine/objects", headers=headers)
    assert other_kind.status_code == 400 and "serves only the workspace's own" in other_kind.text

    # a reader reads, and cannot write
    as_reader = HttpObjectStore(ServerClient(server.url, reader), "workspaceblobstore")
    assert [i.name for i in as_reader.list("d/")] == sorted(f"d/{n}" for n in FILES)
    with as_reader.open("d/cifar-10-batches-py/batches.meta") as stream:
        assert stream.read() == b"meta"
    with pytest.raises(PermissionDeniedError):
        as_reader.put_bytes("from-reader.txt", b"no")
    with pytest.raises(PermissionDeniedError):
        as_reader.delete("d/cifar-10-batches-py/batches.meta")
    with pytest.raises(PermissionDeniedError):
        Datastore.get(runlab.Workspace.get("default", server=server.url, token=reader),
                      "workspaceblobstore").upload(src_dir=str(folder), target_path="r", show_progress=False)

    # a run's own token reads its inputs, nothing else there, and writes nothing
    as_run = HttpObjectStore(ServerClient(server.url, run_token), "workspaceblobstore")
    assert [i.name for i in as_run.list("d/")] == ["d/cifar-10-batches-py/batches.meta"]
    assert as_run.stat("d/cifar-10-batches-py/batches.meta").size == 4
    for folder in ("d", "d/cifar-10-batches-py"):  # a folder of its inputs (a dataset resolved on a Ray node)
        with pytest.raises(ObjectNotFoundError):
            as_run.stat(folder)
    with pytest.raises(PermissionDeniedError, match="dataset inputs"):
        as_run.stat("d/cifar-10")  # not a folder of its inputs: refused as before
    with as_run.open("d/cifar-10-batches-py/batches.meta") as stream:
        assert stream.read() == b"meta"
    for other in ("d/cifar-10-batches-py/data_batch_1", "d/cifar-10-batches-py/readme.html"):
        with pytest.raises(PermissionDeniedError, match="dataset inputs"):
            as_run.stat(other)
        with pytest.raises(PermissionDeniedError, match="dataset inputs"):
            with as_run.open(other) as stream:
                stream.read()
    with pytest.raises(PermissionDeniedError, match="writer token"):
        as_run.put_bytes("from-run.txt", b"no")
    with pytest.raises(PermissionDeniedError):
        as_run.delete("d/cifar-10-batches-py/batches.meta")
    assert objects.exists("d/cifar-10-batches-py/batches.meta")
    assert not objects.exists("from-reader.txt") and not objects.exists("from-run.txt")
    run.wait_for_completion(timeout_seconds=300)
    assert run.get_status() == "Completed"
