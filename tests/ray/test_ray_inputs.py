"""Dataset inputs of a run on a Ray target, against a live runlab server: the job makes them available on
the node (read with the run's own token) before the script starts, as the local pool's agent does; and the
tutorial's hello world (part 2) on the Ray target of the same server."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from ray_support import RayCluster

import runlab
from runlab import ComputeTarget, Dataset, Experiment, RayCompute, ScriptRunConfig
from runlab.core.status import RunStatus
from runlab.store.remote.client import ServerClient
from runlab.store.remote.store import HttpStore
from runlab.store.sql.store import SqlStore
from runlab.store.sql.tokens import TokenStore
from server_support import ServerProcess

DRIVER_LOG = "azureml-logs/70_driver_log.txt"
FILES = {"a.txt": b"alpha", "sub/b.bin": b"\x00" * 100, "sub/deeper/c.csv": b"x,y\n1,2\n"}

COUNT = """
import argparse
import os
from pathlib import Path
from runlab import Run

parser = argparse.ArgumentParser()
parser.add_argument("--data_path")
args = parser.parse_args()
run = Run.get_context()
files = [p for p in Path(args.data_path).rglob("*") if p.is_file()]
run.log("files", len(files))
run.log("bytes", sum(p.stat().st_size for p in files))
print("data at", args.data_path, flush=True)
print("input_datasets:", run.input_datasets, flush=True)
print("same path:", run.input_datasets.get("data") == args.data_path, flush=True)
print("variable:", os.environ.get("AZUREML_DATAREFERENCE_data") == args.data_path, flush=True)
"""


@pytest.fixture
def served(tmp_path: Path, subprocess_env: dict[str, str], ray_cluster: RayCluster) -> Any:
    url = f"sqlite:///{tmp_path / 'server.db'}"
    store = SqlStore(url)
    writer, _ = TokenStore(store.engine).create("ci", "writer")
    server = ServerProcess(url, tmp_path / "artifacts", subprocess_env, auth=True)
    server.start()
    try:
        ws = runlab.Workspace.get("default", server=server.url, token=writer)
        ComputeTarget.attach(ws, "ray-cluster", RayCompute.attach_configuration(address=ray_cluster.address,
                                                                                num_cpus=0.5))
        data = tmp_path / "data"
        for name, content in FILES.items():
            (data / name).parent.mkdir(parents=True, exist_ok=True)
            (data / name).write_bytes(content)
        source = tmp_path / "src"
        source.mkdir()
        (source / "count.py").write_text(textwrap.dedent(COUNT))
        yield server, writer, ws, data, source
    finally:
        server.stop()
        store.close()


def _log(run: Any) -> str:
    with run.open_file(DRIVER_LOG) as f:
        return f.read().decode("utf-8", errors="replace")  # type: ignore[no-any-return]


def test_a_file_dataset_is_mounted_on_the_ray_node_before_the_script(served: Any) -> None:
    server, writer, ws, data, source = served
    datastore = ws.get_default_datastore()
    datastore.upload(src_dir=str(data), target_path="datasets/small", show_progress=False)
    dataset = Dataset.File.from_files(path=(datastore, "datasets/small"))
    config = ScriptRunConfig(source_directory=str(source), script="count.py", compute_target="ray-cluster",
                             arguments=["--data_path", dataset.as_named_input("data").as_mount()])
    run = Experiment(ws, "ray-inputs").submit(config)
    run.wait_for_completion(timeout_seconds=150)
    log = _log(run)
    assert run.get_status() == RunStatus.COMPLETED, log[-3000:]
    assert run.get_metrics() == {"files": len(FILES), "bytes": sum(map(len, FILES.values()))}
    assert "runlab: Mounted input data to " in log
    assert "same path: True" in log and "variable: True" in log
    node_path = next(line.split("data at ", 1)[1] for line in log.splitlines() if line.startswith("data at "))
    assert node_path.startswith("/") and "DatasetConsumptionConfig" not in node_path
    assert run.input_datasets == {"data": node_path}
    (consumed,) = HttpStore(ServerClient(server.url, writer)).get_run_inputs(run.id)
    assert (consumed.name, consumed.mode, consumed.file_count, consumed.total_size) == (
        "data", "mount", len(FILES), sum(map(len, FILES.values())))
    assert consumed.files_hash


def test_an_input_that_cannot_be_read_fails_the_run_saying_which(served: Any) -> None:
    server, writer, ws, data, source = served
    datastore = ws.get_default_datastore()
    (data / "a.txt").write_bytes(b"bytes no data cache has seen")  # else the node's cache has them already
    datastore.upload(src_dir=str(data), target_path="datasets/gone", show_progress=False)
    registered = Dataset.File.from_files(path=(datastore, "datasets/gone")).register(ws, "soon-gone")
    datastore.object_store.delete("datasets/gone/a.txt")  # recorded in the version, no longer there
    config = ScriptRunConfig(source_directory=str(source), script="count.py", compute_target="ray-cluster",
                             arguments=["--data_path", registered.as_named_input("data").as_download()])
    run = Experiment(ws, "ray-inputs").submit(config)
    run.wait_for_completion(timeout_seconds=150, raise_on_error=False)
    assert run.get_status() == RunStatus.FAILED
    error = run.get_details()["error"]
    message = error["message"]
    assert message.startswith("preparing the run failed: the inputs could not be made available on the Ray node")
    assert "a.txt" in message, message
    assert error["code"] != "ScriptFailed"
    assert "data at" not in _log(run)  # the script never started
    assert run.get_metrics() == {}


def test_tutorial_part_2_runs_on_the_ray_target_with_only_compute_target_changed(
        served: Any, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """examples/tutorial/03-run-hello.py as the quickstart writes it, against the server, on the Ray target."""
    import json
    import subprocess
    import sys

    from runlab.cli.quickstart import write_project

    server, writer, ws, _data, _source = served
    project = tmp_path / "runlab-tutorial"
    project.mkdir()
    write_project(project)
    (project / ".azureml" / "config.json").write_text(json.dumps({"server": server.url, "workspace_name": "default"}))
    script = project / "03-run-hello.py"
    text = script.read_text()
    assert text.count("compute_target='cpu-cluster'") == 1
    script.write_text(text.replace("compute_target='cpu-cluster'", "compute_target='ray-cluster'"))
    env = {**subprocess_env, "RUNLAB_TOKEN": writer}
    env.pop("RUNLAB_STORE_URL", None)
    done = subprocess.run([sys.executable, script.name], cwd=project, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Hello world!" in done.stdout  # wait_for_completion(show_output=True) streamed the driver log
    (hello,) = Experiment(ws, "day1-experiment-hello").get_runs()
    assert hello.get_status() == RunStatus.COMPLETED
    definition = hello.get_details()["runDefinition"]
    assert definition["target"] == "ray-cluster" and definition["rayJobId"] == f"runlab-{hello.id}"


def _torch_wheel_available() -> bool:  # as tests/test_tutorial.py: pip's find-links has torch 2.13.0's CPU wheel
    import os

    return any(Path("/opt/wheels").glob("torch-2.13.0*.whl")) or os.environ.get("RUNLAB_TEST_TORCH") == "1"


@pytest.mark.slow  # Ray clones the test's virtualenv for the pip environment once (1-2 minutes here)
@pytest.mark.skipif(not _torch_wheel_available(), reason="needs the local torch 2.13.0 CPU wheel (pip find-links)")
def test_tutorial_parts_3_and_4_run_on_the_ray_target_with_only_compute_target_changed(
        served: Any, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """examples/tutorial/04-run-pytorch.py (train.py in the conda environment .azureml/pytorch-env.yml, which
    reaches Ray as a pip runtime environment with this machine's pip settings), then 05-upload-data.py and
    06-run-pytorch-data.py (a dataset input, mounted on the Ray node), against the server, on the Ray target."""
    import json
    import subprocess
    import sys

    from runlab.cli.quickstart import write_project

    server, writer, ws, _data, _source = served
    project = tmp_path / "runlab-tutorial"
    project.mkdir()
    write_project(project)
    (project / ".azureml" / "config.json").write_text(json.dumps({"server": server.url, "workspace_name": "default"}))
    for name in ("04-run-pytorch.py", "06-run-pytorch-data.py"):
        script = project / name
        text = script.read_text()
        assert text.count("compute_target='cpu-cluster'") == 1
        script.write_text(text.replace("compute_target='cpu-cluster'", "compute_target='ray-cluster'"))
    env = {**subprocess_env, "RUNLAB_TOKEN": writer}
    env.pop("RUNLAB_STORE_URL", None)
    # part 4's data: the synthetic CIFAR-10 of `runlab quickstart --images 200` (the real one is not downloaded)
    made = subprocess.run([sys.executable, "make_cifar10.py", "--images", "200"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr[-3000:]

    def part(script: str) -> str:
        done = subprocess.run([sys.executable, script], cwd=project, env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, script + done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout

    out = part("04-run-pytorch.py")
    assert "Finished Training" in out  # wait_for_completion(show_output=True) streamed the driver log
    (train,) = Experiment(ws, "day1-experiment-train").get_runs()
    assert train.get_status() == RunStatus.COMPLETED
    loss = train.get_metrics()["loss"]
    assert isinstance(loss, list) and len(loss) >= 2 and loss[-1] < loss[0], loss
    details = train.get_details()
    assert details["runDefinition"]["target"] == "ray-cluster"
    assert details["runDefinition"]["rayJobId"] == f"runlab-{train.id}"
    with train.open_file("azureml-logs/20_image_build_log.txt") as f:
        build_log = f.read().decode()
    assert "runtime_env pip): torch==2.13.0" in build_log, build_log  # azureml-sdk dropped, pytorch -> torch
    assert "--find-links" in build_log  # this machine's pip settings went with it: the local CPU wheel

    part("05-upload-data.py")
    out = part("06-run-pytorch-data.py")
    assert "Finished Training" in out
    (data_run,) = Experiment(ws, "day1-experiment-data").get_runs()
    assert data_run.get_status() == RunStatus.COMPLETED
    data_loss = data_run.get_metrics()["loss"]
    assert isinstance(data_loss, list) and len(data_loss) >= 2 and data_loss[-1] < data_loss[0], data_loss
    (consumed,) = data_run.get_details()["inputDatasets"]
    assert consumed["consumptionDetails"] == {"type": "RunInput", "inputName": "input", "mechanism": "Mount"}
    log = _log(data_run)
    assert "runlab: Mounted input input to " in log, log[-3000:]
    assert '"--learning_rate", "0.003", "--momentum", "0.92"' in log
    node_path = data_run.input_datasets["input"]
    assert node_path.startswith("/") and f'"--data_path", "{node_path}"' in log
