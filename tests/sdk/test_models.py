"""Registered models: versions from run files and local files, stored once by content, downloaded
byte-identical; the promises attacked (paths that escape, links, files that change, bad names...)."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

import runlab
from runlab import Model, ModelNotFoundError, ModelPathError, ScriptRunConfig
from runlab.core.errors import (
    InvalidNameError,
    InvalidValueError,
    NotSupportedError,
    PropertyConflictError,
    RunNotFoundError,
    StoreError,
    UserError,
)
from runlab.store.blobs import BlobStore
from runlab.store.models import model_blobs
from tests_support import stop_agents


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def run(ws: runlab.Workspace) -> Iterator[runlab.Run]:
    run = runlab.Experiment(ws, "train").start_logging()
    yield run
    run.complete()


def test_run_files_become_versions_that_download_byte_identical(ws: runlab.Workspace, run: runlab.Run,
                                                                tmp_path: Path) -> None:
    first = os.urandom(100_000)
    run.upload_file("outputs/model.pt", io.BytesIO(first))
    one = run.register_model("net", "outputs/model.pt", tags={"acc": 0.9}, properties={"lr": 0.01},
                             description="first try", model_framework=Model.Framework.PYTORCH,
                             model_framework_version="2.13")
    assert (one.name, one.version, one.id, one.run_id) == ("net", 1, "net:1", run.id)
    assert one.tags == {"acc": "0.9"} and one.properties == {"lr": "0.01"} and one.description == "first try"
    assert one.model_framework == "PyTorch" and one.created_time.tzinfo is not None
    assert one.url.endswith("/models#net:1") and one.run is not None and one.run.id == run.id
    second = os.urandom(50_000)
    run.upload_file("outputs/model.pt", io.BytesIO(second))
    two = run.register_model("net", "outputs/model.pt")
    assert two.version == 2 and Model(ws, "net").version == 2 and Model(ws, id="net:1").tags == {"acc": "0.9"}

    path_one = Path(Model(ws, "net", version=1).download(tmp_path / "one"))
    path_two = Path(two.download(tmp_path / "two"))
    assert path_one == tmp_path / "one" / "model.pt" and path_one.read_bytes() == first
    assert path_two.read_bytes() == second
    files = one.get_files()
    assert [(f.path, f.size, f.sha256) for f in files] == [("model.pt", 100_000, sha(first))]
    assert isinstance(runlab.Model, type) and "Model" in runlab.__all__


def test_a_folder_keeps_its_name_and_layout(ws: runlab.Workspace, run: runlab.Run, tmp_path: Path) -> None:
    run.upload_file("outputs/weights/a.bin", io.BytesIO(b"a" * 10))
    run.upload_file("outputs/config.json", io.BytesIO(b"{}"))
    run.upload_file("logs/train.log", io.BytesIO(b"not in the model"))
    model = run.register_model("folder-net", "outputs/")
    assert sorted(f.path for f in model.get_files()) == ["outputs/config.json", "outputs/weights/a.bin"]
    where = Path(model.download(tmp_path / "dl"))
    assert where == tmp_path / "dl" / "outputs"
    assert (where / "weights" / "a.bin").read_bytes() == b"a" * 10 and (where / "config.json").read_bytes() == b"{}"
    assert run.register_model("outputs").get_files()[0].path.startswith("outputs/")  # model_path defaults to the name


@pytest.mark.embedded_only(reason="counts and stats the contents of the folder's model blob store; over a server "
                            "tests/server/test_server_models.py checks registration and download")
def test_unchanged_files_are_stored_once_and_not_read_again(ws: runlab.Workspace, run: runlab.Run,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    run.upload_file("outputs/big.bin", io.BytesIO(os.urandom(9 << 20)))  # over the kernel-copy size
    run.upload_file("outputs/small.txt", io.BytesIO(b"small"))
    blobs = model_blobs(ws.folder)
    run.register_model("twice", "outputs")
    before = blobs.count()
    stamps = {p: p.stat().st_mtime_ns for p in blobs.root.rglob("*") if p.is_file()}

    def no_copy(*_args: object) -> None:
        raise AssertionError("an unchanged file was read again")

    monkeypatch.setattr(BlobStore, "put_fd", no_copy)
    two = run.register_model("twice", "outputs")
    monkeypatch.undo()
    assert two.version == 2 and blobs.count() == before == (2, (9 << 20) + 5)
    assert {p: p.stat().st_mtime_ns for p in blobs.root.rglob("*") if p.is_file()} == stamps
    other_run = runlab.Experiment(ws, "other").start_logging()
    other_run.upload_file("outputs/copy.txt", io.BytesIO(b"small"))  # the same bytes elsewhere: one content
    other_run.register_model("copy", "outputs/copy.txt")
    other_run.complete()
    assert blobs.count() == before


@pytest.mark.embedded_only(reason="rewrites a run file in place inside the folder (same size and mtime); over a "
                            "server a run file changes only by a new upload (test_server_models.py)")
def test_a_file_changed_between_registrations_is_a_new_content(ws: runlab.Workspace, run: runlab.Run,
                                                               tmp_path: Path) -> None:
    run.upload_file("outputs/model.pt", io.BytesIO(b"v1" * 100))
    run.register_model("net", "outputs/model.pt")
    local = ws.folder.artifacts.local_path(run.id, "outputs/model.pt")
    mtime = local.stat().st_mtime_ns
    with open(local, "r+b") as f:  # same size, same mtime: only the bytes (and ctime) differ
        f.write(b"v2")
    os.utime(local, ns=(mtime, mtime))
    two = run.register_model("net", "outputs/model.pt")
    assert two.get_files()[0].sha256 == sha(b"v2" + b"v1" * 99)
    assert Path(Model(ws, "net", version=1).download(tmp_path / "a")).read_bytes() == b"v1" * 100
    assert Path(two.download(tmp_path / "b")).read_bytes() == b"v2" + b"v1" * 99


def test_a_model_path_that_names_no_run_file_lists_what_is_there(ws: runlab.Workspace, run: runlab.Run) -> None:
    with pytest.raises(ModelPathError, match="has no files yet"):
        run.register_model("net", "outputs/model.pt")
    run.upload_file("outputs/model.pt", io.BytesIO(b"x"))
    run.upload_file("outputs/other.bin", io.BytesIO(b"y"))
    with pytest.raises(ModelPathError, match=r"its files are: outputs/model.pt, outputs/other.bin") as info:
        run.register_model("net", "outputs/modl.pt")
    assert info.value.files == ["outputs/model.pt", "outputs/other.bin"]  # type: ignore[attr-defined]
    with pytest.raises(ModelPathError):
        run.register_model("net", "output")  # a prefix of a folder's name is not the folder
    for bad in ("../train/outputs/model.pt", "outputs/../../x", "/etc/passwd", "outputs/\x00model.pt", ""):
        with pytest.raises(InvalidNameError):
            run.register_model("net", bad)
    assert Model.list(ws) == []


def test_model_names_follow_azures_rule(ws: runlab.Workspace, run: runlab.Run) -> None:
    run.upload_file("outputs/model.pt", io.BytesIO(b"x"))
    for bad in ("my net", "net\x00", "-net", ".net", "n" * 256, "net/1", "", "net:1"):
        with pytest.raises(InvalidNameError, match="model name"):
            run.register_model(bad, "outputs/model.pt")
    assert run.register_model("n" * 255, "outputs/model.pt").version == 1
    assert run.register_model("Net_v2.final-1", "outputs/model.pt").version == 1
    with pytest.raises(InvalidValueError, match="NUL"):
        run.register_model("net", "outputs/model.pt", tags={"a": "b\x00"})
    with pytest.raises(InvalidValueError):
        run.register_model("net", "outputs/model.pt", tags={"": "empty key"})


def test_versions_that_do_not_exist_are_named_clearly(ws: runlab.Workspace, run: runlab.Run) -> None:
    with pytest.raises(ModelNotFoundError, match=r"no model named 'net' is registered .*registered: none"):
        Model(ws, "net")
    run.upload_file("outputs/model.pt", io.BytesIO(b"x"))
    run.register_model("net", "outputs/model.pt")
    run.register_model("net", "outputs/model.pt")
    with pytest.raises(ModelNotFoundError, match="has no version 7: its versions are 1, 2"):
        Model(ws, "net", version=7)
    with pytest.raises(ModelNotFoundError, match="registered: net"):
        Model(ws, "nett")
    for bad_id in ("net", "net:x", "net:"):
        with pytest.raises(UserError, match="name:version"):
            Model(ws, id=bad_id)
    with pytest.raises(InvalidValueError):
        Model(ws, "net", version=0)


@pytest.mark.embedded_only(reason="counts the contents left in the folder's model blob store after deletes; the "
                            "same deletes and versions over a server: test_server_models.py")
def test_delete_then_list_and_versions_are_never_reused(ws: runlab.Workspace, run: runlab.Run) -> None:
    run.upload_file("outputs/shared.bin", io.BytesIO(b"shared"))
    run.upload_file("outputs/only-two.bin", io.BytesIO(b"two"))
    one = run.register_model("net", "outputs/shared.bin")
    two = run.register_model("net", "outputs")
    blobs = model_blobs(ws.folder)
    assert blobs.count()[0] == 2
    two.delete()
    assert [m.id for m in Model.list(ws)] == ["net:1"] and Model(ws, "net").version == 1
    assert blobs.count()[0] == 1  # only-two.bin's content went with its last version; shared.bin's stays
    assert Path(one.download(ws.path.parent / "dl")).read_bytes() == b"shared"
    with pytest.raises(ModelNotFoundError):
        two.delete()
    assert run.register_model("net", "outputs").version == 3  # 2 is not given again
    one.delete()
    Model(ws, "net", version=3).delete()
    assert Model.list(ws) == [] and blobs.count() == (0, 0)
    assert run.register_model("net", "outputs/shared.bin").version == 4


def test_tags_properties_description_and_filters(ws: runlab.Workspace, run: runlab.Run) -> None:
    run.upload_file("outputs/model.pt", io.BytesIO(b"x"))
    a = run.register_model("net", "outputs/model.pt", tags={"stage": "dev", "team": "vision"}, properties={"k": 1})
    b = run.register_model("net", "outputs/model.pt", tags={"stage": "prod"})
    run.register_model("other", "outputs/model.pt", tags={"stage": "dev"})
    a.add_tags({"acc": 0.95})
    a.remove_tags(["team", "absent"])
    assert Model(ws, "net", version=1).tags == {"stage": "dev", "acc": "0.95"}
    a.add_properties({"k": "1", "j": "2"})
    with pytest.raises(PropertyConflictError, match="add-only"):
        a.add_properties({"k": "changed"})
    a.update(description="better", tags={"only": "this"})
    assert (a.description, a.tags, a.properties) == ("better", {"only": "this"}, {"j": "2", "k": "1"})
    assert [m.id for m in Model.list(ws, tags=[["stage", "dev"]])] == ["other:1"]
    assert [m.id for m in Model.list(ws, tags=["stage"])] == ["net:2", "other:1"]
    assert [m.id for m in Model.list(ws, tags={"stage": "prod"}, properties=None)] == ["net:2"]
    assert [m.id for m in Model.list(ws, name="net")] == ["net:2", "net:1"]
    assert [m.id for m in Model.list(ws, latest=True)] == ["net:2", "other:1"]
    assert [m.id for m in Model.list(ws, properties=[["j", "2"]])] == ["net:1"]
    assert [m.id for m in Model.list(ws, run_id=run.id)] == ["net:2", "net:1", "other:1"]
    assert Model.list(ws, run_id="nobody") == []
    assert Model(ws, "net", tags={"only": "this"}).version == 1 and Model(ws, "net", tags=["stage"]) == b
    with pytest.raises(ModelNotFoundError, match="no version of model 'net' has tags"):
        Model(ws, "net", tags={"stage": "nope"})


def test_datasets_are_recorded_by_name_version_and_id(ws: runlab.Workspace, run: runlab.Run, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("a,b\n1,2\n")
    ds = ws.get_default_datastore()
    ds.upload(str(data), target_path="train", show_progress=False)
    registered = runlab.Dataset.File.from_files(path=(ds, "train")).register(ws, "train-data")
    unregistered = runlab.Dataset.File.from_files(path=(ds, "train"))
    run.upload_file("outputs/model.pt", io.BytesIO(b"x"))
    model = run.register_model("net", "outputs/model.pt",
                               datasets=[("training data", registered), ("validation data", unregistered)])
    (train, valid) = model.record.datasets
    assert (train.scenario, train.dataset_name, train.dataset_version, train.dataset_id) == (
        "training data", "train-data", 1, registered.id)
    assert (valid.dataset_name, valid.dataset_id) == (None, None)
    assert model.datasets["training data"][0].id == registered.id and model.datasets["validation data"] == [None]
    for bad in ([registered], [("training data", "train-data")], ("training data", registered)):
        with pytest.raises(InvalidValueError, match="datasets="):
            run.register_model("net", "outputs/model.pt", datasets=bad)


def test_deploy_calls_say_runlab_deploys_no_services(ws: runlab.Workspace) -> None:
    for call in (Model.deploy, Model.package, Model.profile):
        with pytest.raises(NotSupportedError, match=rf"Model.{call.__name__}\(\): runlab does not deploy web services"):
            call(ws, "service", [])


@pytest.mark.embedded_only(reason="plants links in the run's files folder inside the workspace folder; a server's "
                            "run files are uploads, never links (tests/server/test_hostile_paths.py)")
def test_links_in_a_runs_folder_never_take_files_from_outside(ws: runlab.Workspace, run: runlab.Run,
                                                              tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"do not register me")
    run.upload_file("outputs/model.pt", io.BytesIO(b"weights"))
    run_dir = ws.folder.artifacts.local_path(run.id, "outputs/model.pt").parent
    (run_dir / "leak.txt").symlink_to(secret)
    (run_dir / "inside.pt").symlink_to(run_dir / "model.pt")
    with pytest.raises(ModelPathError, match="its files are"):
        run.register_model("net", "outputs/leak.txt")
    folder_model = run.register_model("net", "outputs")
    assert sorted(f.path for f in folder_model.get_files()) == ["outputs/inside.pt", "outputs/model.pt"]


def test_links_never_take_local_files_from_outside(ws: runlab.Workspace, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"do not register me")
    local = tmp_path / "local"
    local.mkdir()
    (local / "model.pt").write_bytes(b"local weights")
    (local / "leak.txt").symlink_to(secret)
    (local / "broken").symlink_to(tmp_path / "nothing")
    (local / "alias.pt").symlink_to(local / "model.pt")
    registered = Model.register(ws, str(local), "local-net")
    assert sorted(f.path for f in registered.get_files()) == ["local/alias.pt", "local/model.pt"]
    err = capsys.readouterr().err
    assert "leak.txt (link to a file outside" in err and "broken (broken link)" in err


def test_local_registration_errors(ws: runlab.Workspace, tmp_path: Path) -> None:
    with pytest.raises(ModelPathError, match="cannot be read"):
        Model.register(ws, str(tmp_path / "missing.pt"), "net")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelPathError, match="holds no files"):
        Model.register(ws, str(tmp_path / "empty"), "net")
    with pytest.raises(NotSupportedError, match="child_paths"):
        Model.register(ws, str(tmp_path / "empty"), "net", child_paths=["a"])
    weights = tmp_path / "model.onnx"
    weights.write_bytes(b"onnx")
    model = Model.register(ws, str(weights), "onnx-net", tags={"format": "onnx"})
    assert (model.run_id, model.record.path, model.record.source) == (None, "model.onnx", str(weights))
    with pytest.raises(RunNotFoundError):
        ws.folder.store.register_model("x", path="p", source="s", files=[], files_hash="0" * 64, run_id="no_run")


def test_download_refuses_to_overwrite_and_checks_the_bytes(ws: runlab.Workspace, run: runlab.Run,
                                                             tmp_path: Path) -> None:
    run.upload_file("outputs/model.pt", io.BytesIO(b"good bytes"))
    model = run.register_model("net", "outputs/model.pt")
    model.download(tmp_path)
    with pytest.raises(UserError, match="already exists: pass exist_ok=True"):
        model.download(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"stale")
    assert Path(model.download(tmp_path, exist_ok=True)).read_bytes() == b"good bytes"


@pytest.mark.embedded_only(reason="damages a content in the folder's model blob store; over a server the client "
                            "checks the sha256 of what it gets (tests/server/test_server_models.py)")
def test_download_checks_the_bytes_of_a_damaged_store(ws: runlab.Workspace, run: runlab.Run, tmp_path: Path) -> None:
    run.upload_file("outputs/model.pt", io.BytesIO(b"good bytes"))
    model = run.register_model("net", "outputs/model.pt")
    blob = model_blobs(ws.folder).path(model.get_files()[0].sha256)
    blob.chmod(0o644)
    blob.write_bytes(b"evil bytes")  # same size, other bytes: a damaged store
    with pytest.raises(StoreError, match="damaged"):
        model.download(tmp_path / "again")
    assert not (tmp_path / "again" / "model.pt").exists()
    assert [p.name for p in (tmp_path / "again").iterdir()] == []  # no temporary file left either


def test_get_model_path_downloads_once_into_azureml_models(ws: runlab.Workspace, run: runlab.Run, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    run.upload_file("outputs/model.pt", io.BytesIO(b"weights"))
    run.register_model("net", "outputs/model.pt")
    monkeypatch.chdir(tmp_path)
    path = Path(Model.get_model_path("net", _workspace=ws))
    assert path == tmp_path / "azureml-models" / "net" / "1" / "model.pt" and path.read_bytes() == b"weights"
    assert Model.get_model_path("net", version=1, _workspace=ws) == str(path)
    with pytest.raises(UserError, match="pass _workspace=ws"):
        Model.get_model_path("net")  # no run, no config.json here
    ws.write_config(tmp_path)
    assert Model.get_model_path("net") == str(path)


def test_register_inside_a_script_stores_its_pending_outputs(ws: runlab.Workspace, tmp_path: Path,
                                                             subprocess_env: dict[str, str]) -> None:
    """An offline run's script, like a submitted one's, registers ./outputs before anything uploads it."""
    script = tmp_path / "train.py"
    script.write_text(
        "import os\n"
        "from runlab import Run\n"
        "run = Run.get_context()\n"
        "os.makedirs('outputs', exist_ok=True)\n"
        "open('outputs/model.pt', 'wb').write(b'trained')\n"
        "os.symlink('/etc/hostname', 'outputs/leak')\n"
        "print(run.register_model('net', 'outputs').id, sorted(f.path for f in run.register_model('net', 'outputs').get_files()))\n"
    )
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=subprocess_env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "net:1 ['outputs/model.pt']"


@pytest.mark.slow
def test_acceptance_submitted_twice_then_used_by_a_later_run(ws: runlab.Workspace, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(
        "import os\n"
        "from runlab import Run\n"
        "run = Run.get_context()\n"
        "os.makedirs('outputs', exist_ok=True)\n"
        "with open('outputs/model.pt', 'wb') as f:\n"
        "    f.write(os.urandom(4096) + run.id.encode())\n"
        "run.register_model('net', 'outputs/model.pt', tags={'acc': 0.9})\n"
    )
    (src / "score.py").write_text(
        "import hashlib\n"
        "from runlab import Model\n"
        "path = Model.get_model_path('net')\n"
        "print('MODEL', path, hashlib.sha256(open(path, 'rb').read()).hexdigest())\n"
    )
    experiment = runlab.Experiment(ws, "train-net")
    try:
        runs = []
        for _ in range(2):
            run = experiment.submit(ScriptRunConfig(str(src), "train.py"))
            run.wait_for_completion(raise_on_error=True)
            runs.append(run)
        models = {m.version: m for m in Model.list(ws, name="net")}
        assert sorted(models) == [1, 2] and Model(ws, "net").version == 2
        for version, run in zip((1, 2), runs):
            model = models[version]
            assert model.run_id == run.id and model.tags == {"acc": "0.9"}
            with run.open_file("outputs/model.pt") as f:
                written = f.read()
            assert written.endswith(run.id.encode())
            assert Path(model.download(tmp_path / f"v{version}")).read_bytes() == written
        score = experiment.submit(ScriptRunConfig(str(src), "score.py"))
        score.wait_for_completion(raise_on_error=True)
        with score.open_file("azureml-logs/70_driver_log.txt") as f:
            line = next(line for line in f.read().decode().splitlines() if line.startswith("MODEL "))
        _, path, digest = line.split()
        assert path.endswith("azureml-models/net/2/model.pt")
        with runs[1].open_file("outputs/model.pt") as f:
            assert digest == sha(f.read())
    finally:
        stop_agents(ws)
