"""Registered models from a client of ``runlab server``: registered from files of this machine and from a
run's files (the server copies those itself), downloaded byte-identical, listed, versioned, tagged and
deleted, inside submitted runs too, the same as on an embedded workspace (``any_ws``); then what the
server refuses (altered bytes, names that escape, readers, a run's token outside its run)."""

from __future__ import annotations

import hashlib
import io
import os
import textwrap
from pathlib import Path
from typing import Iterator

import httpx
import pytest

import runlab
from runlab import Model, ScriptRunConfig
from runlab.core.assets import ModelFile
from runlab.core.errors import InvalidNameError, ModelNotFoundError, PermissionDeniedError, UserError
from runlab.store.remote.blobs import SHA256_HEADER, HttpBlobStore
from runlab.store.remote.client import ServerClient
from runlab.store.remote.store import HttpStore
from runlab.store.sql.store import SqlStore
from runlab.store.sql.tokens import TokenStore
from server_support import ServerProcess
from tests_support import stop_agents

pytestmark = pytest.mark.slow


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_models_from_files_of_this_machine(any_ws: runlab.Workspace, tmp_path: Path) -> None:
    """A file and a folder: registered, downloaded byte-identical, listed, versions, tags, delete."""
    weights = os.urandom(3 << 20) + b"end"  # several blocks of 1 MiB
    (tmp_path / "model.pt").write_bytes(weights)
    folder = tmp_path / "net"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.bin").write_bytes(b"a" * 1000)
    (folder / "sub" / "b.json").write_text('{"b": 1}')

    one = Model.register(any_ws, model_path=str(tmp_path / "model.pt"), model_name="resnet", tags={"acc": 0.9},
                         description="first")
    assert (one.name, one.version, one.tags, one.description) == ("resnet", 1, {"acc": "0.9"}, "first")
    two = Model.register(any_ws, model_path=str(tmp_path / "model.pt"), model_name="resnet")  # unchanged: no upload
    assert two.version == 2
    tree = Model.register(any_ws, model_path=str(folder), model_name="tree")
    assert tree.version == 1

    got = Path(Model(any_ws, "resnet", version=1).download(tmp_path / "dl1"))
    assert got == tmp_path / "dl1" / "model.pt" and got.read_bytes() == weights
    with pytest.raises(UserError, match="already exists"):
        Model(any_ws, "resnet", version=1).download(tmp_path / "dl1")
    Model(any_ws, "resnet").download(tmp_path / "dl1", exist_ok=True)
    got_tree = Path(Model(any_ws, "tree").download(tmp_path / "dl2"))
    assert got_tree == tmp_path / "dl2" / "net" and _tree(got_tree) == _tree(folder)

    assert [(m.name, m.version) for m in Model.list(any_ws)] == [("resnet", 2), ("resnet", 1), ("tree", 1)]
    assert [m.version for m in Model.list(any_ws, name="resnet", latest=True)] == [2]
    assert [m.version for m in Model.list(any_ws, tags=[["acc", "0.9"]])] == [1]

    model = Model(any_ws, "resnet", version=2)
    model.add_tags({"stage": "prod"})
    model.remove_tags("nope")
    assert Model(any_ws, "resnet").tags == {"stage": "prod"}
    model.update(tags={"stage": "test"}, description="second")
    again = Model(any_ws, "resnet", version=2)
    assert again.tags == {"stage": "test"} and again.description == "second"

    Model(any_ws, "resnet", version=2).delete()
    with pytest.raises(ModelNotFoundError, match="its versions are 1"):
        Model(any_ws, "resnet", version=2)
    assert Path(Model(any_ws, "resnet").download(tmp_path / "dl3")).read_bytes() == weights  # v1 shares the content
    Model(any_ws, "resnet", version=1).delete()
    three = Model.register(any_ws, model_path=str(tmp_path / "model.pt"), model_name="resnet")
    assert three.version == 3  # never reused
    assert Path(three.download(tmp_path / "dl4")).read_bytes() == weights  # uploaded again after the delete


def test_models_from_a_runs_files(any_ws: runlab.Workspace, tmp_path: Path) -> None:
    run = runlab.Experiment(any_ws, "train").start_logging()
    try:
        first = os.urandom(200_000)
        run.upload_file("outputs/model.pt", io.BytesIO(first))
        run.upload_file("outputs/extra/vocab.txt", io.BytesIO(b"a b c"))
        one = run.register_model("net", model_path="outputs/model.pt", tags={"acc": 0.5})
        assert (one.name, one.version, one.run_id, one.tags) == ("net", 1, run.id, {"acc": "0.5"})
        whole = run.register_model("net-all", model_path="outputs")
        assert Path(Model(any_ws, "net").download(tmp_path / "one")).read_bytes() == first
        got = Path(whole.download(tmp_path / "all"))
        assert got.name == "outputs" and _tree(got) == {"model.pt": first, "extra/vocab.txt": b"a b c"}
        second = os.urandom(1000)
        run.upload_file("outputs/model.pt", io.BytesIO(second))
        two = run.register_model("net", model_path="outputs/model.pt")
        assert two.version == 2 and Path(two.download(tmp_path / "two")).read_bytes() == second
        assert [m.version for m in Model.list(any_ws, run_id=run.id, name="net")] == [2, 1]
        from runlab import ModelPathError

        with pytest.raises(ModelPathError, match="its files are"):
            run.register_model("net", model_path="outputs/missing.pt")
    finally:
        run.complete()


TRAIN = textwrap.dedent("""
    import os
    from runlab import Run
    run = Run.get_context()
    os.makedirs('outputs', exist_ok=True)
    with open('outputs/model.pt', 'wb') as f:
        f.write(os.urandom(4096) + run.id.encode())
    model = run.register_model('net', 'outputs/model.pt', tags={'acc': 0.9})
    print('REGISTERED', model.id)
    from runlab import Model  # the v1 way from a training script: a file of its machine, with its run's token
    local = Model.register(run.experiment.workspace, model_path='outputs/model.pt', model_name='net-local')
    print('REGISTERED', local.id)
""")

SCORE = textwrap.dedent("""
    import hashlib
    from runlab import Model, Run
    path = Model.get_model_path('net')
    print('MODEL', path, hashlib.sha256(open(path, 'rb').read()).hexdigest())
    ws = Run.get_context().experiment.workspace
    there = Model(ws, 'net', version=1).download('v1')
    print('V1', hashlib.sha256(open(there, 'rb').read()).hexdigest())
""")


def _log(run: runlab.Run) -> str:
    with run.open_file("azureml-logs/70_driver_log.txt") as f:
        return bytes(f.read()).decode(errors="replace")


def test_submitted_runs_register_and_use_models(any_ws: runlab.Workspace, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(TRAIN)
    (src / "score.py").write_text(SCORE)
    experiment = runlab.Experiment(any_ws, "train-net")
    try:
        runs = []
        for _ in range(2):
            run = experiment.submit(ScriptRunConfig(str(src), "train.py"))
            run.wait_for_completion(timeout_seconds=240)
            assert run.get_status() == "Completed", _log(run)[-3000:]
            runs.append(run)
        models = {m.version: m for m in Model.list(any_ws, name="net")}
        assert sorted(models) == [1, 2]
        assert sorted(m.version for m in Model.list(any_ws, name="net-local")) == [1, 2]
        written = []
        for version, run in zip((1, 2), runs):
            assert models[version].run_id == run.id and models[version].tags == {"acc": "0.9"}
            with run.open_file("outputs/model.pt") as f:
                written.append(bytes(f.read()))
            assert Path(models[version].download(tmp_path / f"v{version}")).read_bytes() == written[-1]
        score = experiment.submit(ScriptRunConfig(str(src), "score.py"))
        score.wait_for_completion(timeout_seconds=240)
        log = _log(score)
        assert score.get_status() == "Completed", log[-3000:]
        _, path, digest = next(line for line in log.splitlines() if line.startswith("MODEL ")).split()
        assert path.endswith("azureml-models/net/2/model.pt") and digest == sha(written[1])
        assert next(line for line in log.splitlines() if line.startswith("V1 ")).split()[1] == sha(written[0])
    finally:
        stop_agents(any_ws)


# -- what the server refuses -------------------------------------------------------------------------


@pytest.fixture
def secured(tmp_path: Path, subprocess_env: dict[str, str]) -> Iterator[tuple[ServerProcess, TokenStore]]:
    url = f"sqlite:///{tmp_path / 'secure.db'}"
    store = SqlStore(url)
    tokens = TokenStore(store.engine)
    proc = ServerProcess(url, tmp_path / "artifacts", subprocess_env, auth=True)
    proc.start()
    yield proc, tokens
    proc.stop()
    store.close()


def test_what_the_model_routes_refuse(secured: tuple[ServerProcess, TokenStore], tmp_path: Path) -> None:
    server, tokens = secured
    writer, _ = tokens.create("ci", "writer")
    reader, _ = tokens.create("viewer", "reader")
    ws = runlab.Workspace.get("default", server=server.url, token=writer)
    run = runlab.Experiment(ws, "tokens").start_logging()
    other = runlab.Experiment(ws, "tokens").start_logging()
    run.upload_file("outputs/model.pt", io.BytesIO(b"weights"))
    other.upload_file("outputs/model.pt", io.BytesIO(b"other weights"))
    run_token, _ = tokens.create("run-token", "run", run_id=run.id)
    headers = {"Authorization": f"Bearer {writer}"}
    blobs_url = f"{server.url}/api/remote/models/blobs"
    objects = server.artifacts / "files" / "models" / "objects"

    # altered or short bytes store nothing
    good = sha(b"abc")
    altered = httpx.put(f"{blobs_url}/{good}", content=b"abd", headers={**headers, SHA256_HEADER: good})
    assert altered.status_code == 400 and "nothing stored" in altered.text
    assert httpx.head(f"{blobs_url}/{good}", headers=headers).status_code == 404
    assert not HttpBlobStore(ServerClient(server.url, writer)).has(good, 3)
    assert not objects.exists() or not any(p.is_file() for p in objects.rglob("*"))
    for bad in ("../../etc/passwd", "ABC", "0" * 63, "%2e%2e%2f" + "0" * 60):
        refused = httpx.put(f"{blobs_url}/{bad}", content=b"x", headers=headers)
        assert refused.status_code in (400, 404, 405, 422), (bad, refused.status_code, refused.text)
    stored = httpx.put(f"{blobs_url}/{good}", content=b"abc", headers=headers)
    assert stored.status_code == 200 and stored.json() == {"sha256": good, "size": 3, "new": True}
    assert httpx.get(f"{blobs_url}/{good}", headers=headers).content == b"abc"

    # a registration naming a content the server lacks, or a file name that escapes: nothing registered
    store = HttpStore(ServerClient(server.url, writer))
    missing = ModelFile(path="model.pt", size=5, sha256=sha(b"never"), source="x", source_etag=None)
    with pytest.raises(UserError, match="nothing was registered"):
        store.register_model("evil", path="model.pt", source="x", files=[missing], files_hash="0" * 64)
    for name in ("../evil.pt", "/etc/passwd", "a/../../b"):
        escaping = ModelFile(path=name, size=3, sha256=good, source="x", source_etag=None)
        with pytest.raises(InvalidNameError):
            store.register_model("evil", path=name, source="x", files=[escaping], files_hash="0" * 64)
    with pytest.raises(ModelNotFoundError):
        Model(ws, "evil")
    copy = httpx.post(f"{blobs_url}/from-run", json={"run_id": run.id, "names": ["../other/outputs/model.pt"]},
                      headers=headers)
    assert copy.status_code in (400, 422), copy.text

    # a reader reads, and registers nothing
    model = run.register_model("net", model_path="outputs/model.pt")
    as_reader = runlab.Workspace.get("default", server=server.url, token=reader)
    assert Path(Model(as_reader, "net").download(tmp_path / "r")).read_bytes() == b"weights"
    (tmp_path / "m.bin").write_bytes(b"from a reader")
    with pytest.raises(PermissionDeniedError):
        Model.register(as_reader, model_path=str(tmp_path / "m.bin"), model_name="nope")
    reader_blobs = HttpBlobStore(ServerClient(server.url, reader))
    with pytest.raises(PermissionDeniedError):
        reader_blobs.copy_run_files(run.id, ["outputs/model.pt"])
    refused = httpx.put(f"{blobs_url}/{sha(b'r')}", content=b"r", headers={"Authorization": f"Bearer {reader}"})
    assert refused.status_code == 403
    with pytest.raises(PermissionDeniedError):
        Model(as_reader, "net").delete()

    # a run's own token: reads models, copies and registers only its own run's files
    run_blobs = HttpBlobStore(ServerClient(server.url, run_token))
    run_store = HttpStore(ServerClient(server.url, run_token))
    files, _new, _size = run_blobs.copy_run_files(run.id, ["outputs/model.pt"])
    assert files["outputs/model.pt"].sha256 == sha(b"weights")
    with pytest.raises(PermissionDeniedError):
        run_blobs.copy_run_files(other.id, ["outputs/model.pt"])
    own = ModelFile(path="model.pt", size=7, sha256=sha(b"weights"), source="x", source_etag=None)
    with pytest.raises(PermissionDeniedError):
        run_store.register_model("stolen", path="model.pt", source="x", files=[own], files_hash="0" * 64,
                                 run_id=other.id)
    record = run_store.register_model("mine", path="model.pt", source="outputs/model.pt", files=[own],
                                      files_hash="0" * 64, run_id=run.id)
    assert record.version == 1 and record.run_id == run.id
    assert Path(Model(ws, "mine").download(tmp_path / "mine")).read_bytes() == b"weights"
    fd = _fd(tmp_path / "q.bin", b"q")
    try:  # a file of the run's machine (Model.register(ws, "outputs/model.pt") in a training script)
        assert run_blobs.put_fd(fd, 1) == (sha(b"q"), 1, True)
    finally:
        os.close(fd)
    local = ModelFile(path="q.bin", size=1, sha256=sha(b"q"), source="/tmp/q.bin", source_etag=None)
    record = run_store.register_model("from-script", path="q.bin", source="/tmp/q.bin", files=[local],
                                      files_hash="1" * 64)
    assert record.run_id is None and record.version == 1
    assert run_blobs.has(sha(b"weights"), 7)
    with pytest.raises(PermissionDeniedError):
        run_store.delete_model("net", model.version)
    run.complete()
    other.complete()


def _fd(path: Path, data: bytes) -> int:
    path.write_bytes(data)
    return os.open(path, os.O_RDONLY)


def test_a_download_from_a_damaged_server_store_is_refused(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """The server's copy of a content altered on its disk (same size, other bytes): the client checks the
    sha256 of what it receives, refuses it and leaves nothing behind."""
    server = ServerProcess(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "server-files", subprocess_env)
    server.start()
    try:
        ws = runlab.Workspace.get("default", server=server.url)
        (tmp_path / "model.pt").write_bytes(b"good bytes")
        model = Model.register(ws, model_path=str(tmp_path / "model.pt"), model_name="net")
        digest = model.get_files()[0].sha256
        (blob,) = [p for p in (tmp_path / "server-files").rglob(digest[2:]) if p.parent.name == digest[:2]]
        blob.chmod(0o644)
        blob.write_bytes(b"evil bytes")
        with pytest.raises(runlab.core.errors.StoreError, match="changed outside runlab"):
            model.download(tmp_path / "again")
        assert not (tmp_path / "again").exists() or list((tmp_path / "again").iterdir()) == []  # no temporary file
    finally:
        server.stop()
