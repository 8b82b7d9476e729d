"""Datasets as inputs of submitted runs: real agents, real scripts, the three kinds of datastore."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest

import runlab
from runlab import Dataset, Datastore, ScriptRunConfig
from runlab.core.errors import DatasetPathError, DatastoreNotFoundError, StoreUnavailableError, UserError
from runlab.core.layout import AGENT_LOG, DRIVER_LOG
from runlab.core.status import RunStatus
from runlab.store.datacache import remove_tree
from tests_support import stop_agents

CSV = "city,temp,rain\nParis,12.5,true\nOslo,-3.0,false\nLima,19.25,false\n"

REPORT = r'''
import json, os, sys
from runlab import Run

run = Run.get_context()
args = sys.argv[1:]
data = args[args.index("--data_path") + 1]
files = {}
for root, _dirs, names in os.walk(data):
    for name in names:
        path = os.path.join(root, name)
        files[os.path.relpath(path, data)] = open(path, "rb").read().hex()
try:
    with open(os.path.join(data, sorted(files)[0]), "ab") as f:
        f.write(b"changed by the script")
    write = "written"
except OSError as exc:
    write = f"refused: {exc.errno}"
try:
    open(os.path.join(data, "new-file"), "w").close()
    create = "created"
except OSError as exc:
    create = f"refused: {exc.errno}"
report = {"args": args, "files": files, "write": write, "create": create, "env": os.environ.get("images"),
          "inputs": {k: v for k, v in run.input_datasets.items() if isinstance(v, str)}}
if "table" in run.input_datasets:
    report["table"] = run.input_datasets["table"].to_pandas_dataframe().to_csv(index=False)
    report["table_env"] = os.environ.get("table")
os.makedirs("outputs", exist_ok=True)
json.dump(report, open("outputs/report.json", "w"))
'''


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "report.py").write_text(REPORT)
    return folder


@pytest.fixture(autouse=True)
def _stop(ws: runlab.Workspace) -> Iterator[None]:
    yield
    stop_agents(ws)


def _put(datastore: Datastore, tmp_path: Path, files: dict[str, bytes], target: str) -> None:
    local = tmp_path / "upload" / target
    for rel, data in files.items():
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_bytes(data)
    datastore.upload(src_dir=str(local), target_path=target, overwrite=True, show_progress=False)


BATCHES = {f"cifar-10-batches-py/data_batch_{i}": os.urandom(300 + i) for i in range(1, 4)}
BATCHES["cifar-10-batches-py/batches.meta"] = b"meta"


def _report(run: runlab.Run) -> dict:
    details = run.wait_for_completion(raise_on_error=False, timeout_seconds=120)
    assert details["status"] == "Completed", _logs(run)
    with run.open_file("outputs/report.json") as f:
        return json.load(f)


def _logs(run: runlab.Run) -> str:
    out = []
    for name in (AGENT_LOG, DRIVER_LOG):
        try:
            with run.open_file(name) as f:
                out.append(f.read().decode(errors="replace"))
        except Exception as exc:  # noqa: BLE001 - a log that is not there is part of the picture
            out.append(f"{name}: {exc}")
    return "\n".join(out)


def _agent_log(run: runlab.Run) -> str:
    with run.open_file(AGENT_LOG) as f:
        return f.read().decode()


def test_a_mounted_folder_and_a_table_reach_the_script(ws: runlab.Workspace, datastore: Datastore, src: Path,
                                                       tmp_path: Path) -> None:
    """The tutorial's part 4 on each kind of datastore: files mounted, a table read in the script,
    other arguments passed through unchanged, the run's details naming what it consumed."""
    _put(datastore, tmp_path, BATCHES, "datasets/cifar10")
    _put(datastore, tmp_path, {"weather.csv": CSV.encode()}, "tables")
    images = Dataset.File.from_files(path=(datastore, "datasets/cifar10"))
    table = Dataset.Tabular.from_delimited_files((datastore, "tables/weather.csv")).register(ws, "weather")
    config = ScriptRunConfig(str(src), "report.py", arguments=[
        "--data_path", images.as_named_input("images").as_mount(), "--learning_rate", 0.003, "--momentum", 0.92,
        "--table", table.as_named_input("table")])
    run = runlab.Experiment(ws, "inputs").submit(config)
    report = _report(run)

    assert report["files"] == {name: data.hex() for name, data in BATCHES.items()}
    data_path = report["args"][1]
    assert report["args"] == ["--data_path", data_path, "--learning_rate", "0.003", "--momentum", "0.92",
                              "--table", table.id]
    assert report["env"] == data_path and report["inputs"] == {"images": data_path}
    assert report["table_env"] == table.id
    frame = pd.read_csv(io.StringIO(report["table"]))
    pd.testing.assert_frame_equal(frame, pd.read_csv(io.StringIO(CSV)))
    assert report["write"].startswith("refused") and report["create"].startswith("refused")

    with run.open_file(DRIVER_LOG) as f:
        driver = f.read().decode()
    assert '"DatasetConsumptionConfig:images"' in driver and f'"{data_path}"' in driver
    details = run.get_details()
    consumed = {i["consumptionDetails"]["inputName"]: i for i in details["inputDatasets"]}
    assert consumed["images"]["consumptionDetails"]["mechanism"] == "Mount"
    assert consumed["table"]["dataset"].name == "weather" and consumed["table"]["dataset"].version == 1
    assert details["runDefinition"]["arguments"][1] == "DatasetConsumptionConfig:images"
    inputs = {i.name: i for i in ws.folder.store.get_run_inputs(run.id)}
    assert inputs["images"].file_count == 4 and inputs["images"].total_size == sum(map(len, BATCHES.values()))
    assert (inputs["table"].dataset_name, inputs["table"].dataset_version) == ("weather", 1)
    assert [r.run_id for r in ws.folder.store.list_dataset_runs("weather", 1)] == [run.id]

    # the datastore's files are as they were, and a second run finds the files in the cache
    back = tmp_path / "back"
    datastore.download(str(back), prefix="datasets/cifar10", show_progress=False)
    assert {p.relative_to(back / "datasets/cifar10").as_posix(): p.read_bytes()
            for p in back.rglob("*") if p.is_file()} == BATCHES
    second = runlab.Experiment(ws, "inputs").submit(config)
    assert _report(second)["files"] == report["files"]
    assert "found in the data cache" in _agent_log(second)


def test_a_registered_version_is_copied_once_and_checked(ws: runlab.Workspace, src: Path, tmp_path: Path) -> None:
    datastore = ws.get_default_datastore()
    _put(datastore, tmp_path, BATCHES, "cifar")
    images = Dataset.File.from_files(path=(datastore, "cifar")).register(ws, "cifar10")
    config = ScriptRunConfig(str(src), "report.py", arguments=["--data_path", images.as_mount()])
    first = runlab.Experiment(ws, "registered").submit(config)
    assert _report(first)["files"] == {name: data.hex() for name, data in BATCHES.items()}
    assert "4 copied into the data cache" in _agent_log(first)
    second = runlab.Experiment(ws, "registered").submit(config)
    _report(second)
    assert "dataset cifar10:1, 4 files" in _agent_log(second) and "found in the data cache" in _agent_log(second)
    assert [i.dataset_version for i in ws.folder.store.get_run_inputs(second.id)] == [1]

    # a file changed after registration: runs still get the version's bytes, from the cache
    _put(datastore, tmp_path, {"cifar-10-batches-py/batches.meta": b"ATEM"}, "cifar")  # same size
    taken = Dataset.get_by_name(ws, "cifar10").take(1)  # a derived dataset: its own view
    config = ScriptRunConfig(str(src), "report.py", arguments=["--data_path", taken.as_named_input("few").as_download()])
    third = runlab.Experiment(ws, "registered").submit(config)
    assert _report(third)["files"] == {"cifar-10-batches-py/batches.meta": b"meta".hex()}
    # without the cache, the changed bytes are found out, and the run says so
    remove_tree(Path(os.environ["RUNLAB_HOME"]) / "datacache")
    fourth = runlab.Experiment(ws, "registered").submit(config)
    details = fourth.wait_for_completion(raise_on_error=False, timeout_seconds=120)
    assert details["status"] == "Failed"
    assert "changed since its dataset version was registered (its sha256 differs)" in details["error"]["message"]


def test_path_on_compute_and_run_config_data(ws: runlab.Workspace, tmp_path: Path) -> None:
    datastore = ws.get_default_datastore()
    _put(datastore, tmp_path, {"a.txt": b"alpha", "sub/b.txt": b"beta"}, "small")
    small = Dataset.File.from_files(path=(datastore, "small"))
    outside = tmp_path / "elsewhere" / "data"
    src = tmp_path / "src2"
    src.mkdir()
    (src / "show.py").write_text(
        "import os, json\nfrom runlab import Run\nrun = Run.get_context()\n"
        "os.makedirs('outputs', exist_ok=True)\n"
        "json.dump({'here': open('data/sub/b.txt').read(), 'far': open(os.environ['far'] + '/a.txt').read(),\n"
        "           'PATH_kept': os.environ['PATH'] != os.environ['AZUREML_DATAREFERENCE_PATH'],\n"
        "           'inputs': sorted(run.input_datasets)}, open('outputs/report.json', 'w'))\n")
    config = ScriptRunConfig(str(src), "show.py")
    config.run_config.data = {"here": small.as_named_input("here").as_mount("data"),
                              "far": small.as_named_input("far").as_download(str(outside)),
                              "PATH": small.as_named_input("PATH").as_mount()}
    run = runlab.Experiment(ws, "placed").submit(config)
    report = _report(run)
    assert report == {"here": "beta", "far": "alpha", "PATH_kept": True, "inputs": ["PATH", "far", "here"]}
    assert not outside.exists() and not outside.is_symlink()  # the link is removed with the run


def test_bad_inputs_fail_the_submit(ws: runlab.Workspace, src: Path, tmp_path: Path) -> None:
    datastore = ws.get_default_datastore()
    _put(datastore, tmp_path, {"a.txt": b"alpha"}, "small")
    small = Dataset.File.from_files(path=(datastore, "small"))
    table = Dataset.Tabular.from_delimited_files((datastore, "small/a.txt"))
    experiment = runlab.Experiment(ws, "bad")

    def submit(*arguments: object) -> None:
        experiment.submit(ScriptRunConfig(str(src), "report.py", arguments=list(arguments)))

    with pytest.raises(UserError, match="invalid input name 'my-data'"):
        small.as_named_input("my-data")
    gone = Dataset.File.from_files(path=(datastore, "small/a.txt"))
    by_hand = datastore.object_store.local_path("small/a.txt")
    if by_hand is not None:  # a folder of this machine: removed behind runlab's back
        by_hand.unlink()
    else:  # files of a runlab server
        datastore.object_store.delete("small/a.txt")
    with pytest.raises(DatasetPathError, match="small/a.txt"):
        submit("--data_path", gone.as_named_input("gone").as_mount())
    with pytest.raises(DatasetPathError, match=r"\.\."):
        Dataset.File.from_files(path=(datastore, "../outside"))
    with pytest.raises(UserError, match="as_mount"):
        submit("--data_path", small.as_named_input("direct"))  # a file dataset needs a mode
    with pytest.raises(UserError, match="tabular dataset, which is read, not mounted"):
        table.as_named_input("t").as_mount()
    with pytest.raises(UserError, match="as_named_input"):
        submit("--data_path", small)
    with pytest.raises(UserError, match="two different inputs are named 'x'"):
        submit(small.as_named_input("x").as_mount(), table.as_named_input("x"))
    with pytest.raises(UserError, match=r"'\.\.'"):
        small.as_named_input("up").as_mount("../up")
    other = runlab.Workspace.create("other-ws", path=tmp_path / "other")
    _put(other.get_default_datastore(), tmp_path / "o", {"a.txt": b"a"}, "x")
    foreign = Dataset.File.from_files(path=(other.get_default_datastore(), "x"))
    with pytest.raises(UserError, match="workspace other-ws"):
        submit(foreign.as_mount())
    assert ws.folder.store.list_runs() == []  # nothing was queued


@pytest.mark.embedded_only(reason="registers and then deletes a datastore with SQL in the folder's SQLite file, "
                            "as another process could have")
def test_a_datastore_gone_before_the_submit_fails_it(ws: runlab.Workspace, src: Path, tmp_path: Path) -> None:
    experiment = runlab.Experiment(ws, "bad")

    def submit(*arguments: object) -> None:
        experiment.submit(ScriptRunConfig(str(src), "report.py", arguments=list(arguments)))

    ws.folder.store.register_datastore("gone_store", "local", {"path": str(tmp_path / "gone-store")})
    lost = Dataset.File.from_files(path=(Datastore.get(ws, "gone_store"), "x"), validate=False)
    with ws.folder.store._write("forgetting a datastore") as conn:  # as another process could have
        import sqlalchemy as sa

        conn.execute(sa.text("DELETE FROM datastores WHERE name = 'gone_store'"))
    with pytest.raises(DatastoreNotFoundError, match="gone_store"):
        submit(lost.as_mount())
    assert ws.folder.store.list_runs() == []  # nothing was queued


def test_an_unreachable_bucket_fails_the_submit(ws: runlab.Workspace, src: Path, aws_env: dict[str, str]) -> None:
    ws.folder.store.register_datastore("dead_s3", "s3", {"bucket": "nowhere", "prefix": None, "region": "us-east-1",
                                                         "endpoint_url": "http://127.0.0.1:9"})
    dataset = Dataset.File.from_files(path=(Datastore.get(ws, "dead_s3"), "x"), validate=False)
    with pytest.raises(StoreUnavailableError, match="nowhere"):
        runlab.Experiment(ws, "dead").submit(ScriptRunConfig(str(src), "report.py", arguments=[dataset.as_mount()]))


def test_a_run_canceled_while_its_input_is_copied_ends_canceled(ws: runlab.Workspace, src: Path,
                                                                tmp_path: Path) -> None:
    """Copying many files into the cache stops at a cancel, and leaves nothing half made."""
    folder = tmp_path / "many"
    for i in range(3000):
        (folder / f"d{i % 30}").mkdir(parents=True, exist_ok=True)
        (folder / f"d{i % 30}" / f"f{i}.bin").write_bytes(i.to_bytes(4, "little") * 64)
    many = Dataset.File.from_files(path=str(folder))
    run = runlab.Experiment(ws, "cancel").submit(ScriptRunConfig(str(src), "report.py",
                                                                  arguments=["--data_path", many.as_mount()]))
    deadline = 60.0
    import time

    start = time.monotonic()
    while "making them available" not in (_agent_log(run) if _has_agent_log(run) else ""):
        assert time.monotonic() - start < deadline
        time.sleep(0.01)
    run.cancel()
    details = run.wait_for_completion(raise_on_error=False, timeout_seconds=60)
    if details["status"] == "Completed":
        pytest.skip("the copy finished before the cancel reached it on this machine")
    assert details["status"] == str(RunStatus.CANCELED)
    cache = Path(os.environ["RUNLAB_HOME"]) / "datacache"
    assert list((cache / "tmp").iterdir()) == []
    assert not (cache / "views").exists() or list((cache / "views").iterdir()) == []


def _has_agent_log(run: runlab.Run) -> bool:
    return AGENT_LOG in run.get_file_names()


def test_sha_of_objects_names_their_bytes(ws: runlab.Workspace, src: Path, tmp_path: Path) -> None:
    datastore = ws.get_default_datastore()
    _put(datastore, tmp_path, BATCHES, "cifar")
    run = runlab.Experiment(ws, "objects").submit(ScriptRunConfig(
        str(src), "report.py", arguments=["--data_path", Dataset.File.from_files((datastore, "cifar")).as_mount()]))
    _report(run)
    objects = Path(os.environ["RUNLAB_HOME"]) / "datacache" / "objects"
    stored = [p for p in objects.rglob("*") if p.is_file()]
    assert len(stored) == len(BATCHES)
    for path in stored:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name  # the script's write was refused
