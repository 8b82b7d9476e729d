"""The tutorial (examples/tutorial, the four parts of the Azure ML series) runs end to end here:
``runlab quickstart`` with its short options, again (nothing built, nothing uploaded), then the six
scripts one by one in the project it wrote, as a user does next."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pytest

import runlab
from runlab.execution.targets import agent_is_running
from tests_support import stop_agents

SCRIPTS = ["01-create-workspace.py", "02-create-compute.py", "03-run-hello.py", "04-run-pytorch.py",
           "05-upload-data.py", "06-run-pytorch-data.py"]


def _torch_wheel_available() -> bool:
    """torch 2.13.0's CPU wheel in a folder pip's configuration names (find-links), as .ci/run looks for it;
    RUNLAB_TEST_TORCH=1 says a mirror has it."""
    if os.environ.get("RUNLAB_TEST_TORCH") == "1":
        return True
    from runlab.execution.pipconfig import read_pip_config

    folders = [Path(link.removeprefix("file://")) for link in read_pip_config().find_links if "://" not in link
               or link.startswith("file://")]
    return any(any(folder.glob("torch-2.13.0*.whl")) for folder in folders if folder.is_dir())


def _quickstart(cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "runlab", "quickstart", "--images", "1000", "--epochs", "1"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _quickstart_then_studio(cwd: Path, env: dict[str, str], run_id: str) -> str:
    """``runlab quickstart --open`` in a project already made: once the studio it starts at the end answers
    on 127.0.0.1 with the run's loss chart, it is stopped by its pid. Returns what the command printed."""
    port = _free_port()
    command = [sys.executable, "-m", "runlab", "quickstart", "--images", "1000", "--epochs", "1", "--open",
               "--port", str(port)]
    proc = subprocess.Popen(command, cwd=cwd, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    chart: dict[str, object] = {}
    try:
        deadline = time.monotonic() + 600  # a safety limit for a hung command, not a measure
        while not chart and proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs/{run_id}/metrics/loss",
                                            timeout=5) as response:
                    chart = json.load(response)
            except urllib.error.HTTPError:
                raise
            except OSError:  # not listening yet: the tutorial's steps run first
                time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # Ctrl+C, to its own pid (uvicorn re-raises a SIGTERM it handled)
        try:
            output, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
    assert chart.get("count") == 5, output[-3000:]
    assert proc.returncode == 0, output[-3000:]
    assert "runlab studio: stopped" in output
    return output


def _chart(ws: runlab.Workspace, run_id: str) -> dict[str, object]:
    with warnings.catch_warnings():  # starlette's test client warns that it moves to httpx2
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient
    from runlab.server.app import create_app

    with TestClient(create_app(ws.folder)) as client:
        response = client.get(f"/api/runs/{run_id}/metrics/loss")
    assert response.status_code == 200, response.text
    doc: dict[str, object] = response.json()
    return doc


@pytest.mark.slow
@pytest.mark.skipif(not _torch_wheel_available(), reason="needs the local torch 2.13.0 CPU wheel (pip find-links)")
def test_tutorial_end_to_end(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    project = tmp_path / "runlab-tutorial"
    try:
        done = _quickstart(tmp_path, subprocess_env)
        ws = runlab.Workspace.from_config(project)
        assert ws.name == "tutorial-ws"
        assert "SYNTHETIC: 1000 images" in done.stdout
        assert "cd runlab-tutorial && runlab studio" in done.stdout
        assert not agent_is_running(ws.folder, "cpu-cluster")  # quickstart stopped it
        (hello,) = runlab.Experiment(ws, "day1-experiment-hello").get_runs()
        assert hello.get_status() == "Completed"
        with hello.open_file("azureml-logs/70_driver_log.txt") as f:
            assert "Hello world!" in f.read().decode()

        (run,) = runlab.Experiment(ws, "day1-experiment-train").get_runs()
        assert run.get_status() == "Completed"
        loss = run.get_metrics()["loss"]
        assert len(loss) == 5 and loss[-1] < loss[0]
        assert f"loss {loss[0]:.3f} -> {loss[-1]:.3f}" in done.stdout
        with run.open_file("azureml-logs/20_image_build_log.txt") as f:
            build_log = f.read().decode()
        assert "python 3.6.2 requested" in build_log and "azureml-sdk" in build_log
        with run.open_file("azureml-logs/70_driver_log.txt") as f:
            assert "Finished Training" in f.read().decode()

        # part 4: CIFAR-10's on-disk format uploaded, mounted into the run, the arguments passed through
        assert "uploaded 7 files" in done.stdout
        (data_run,) = runlab.Experiment(ws, "day1-experiment-data").get_runs()
        assert data_run.get_status() == "Completed"
        data_loss = data_run.get_metrics()["loss"]
        assert len(data_loss) == 5 and data_loss[-1] < data_loss[0]
        with data_run.open_file("azureml-logs/70_driver_log.txt") as f:
            driver = f.read().decode()
        assert "Mounted input input to " in driver and '"DatasetConsumptionConfig:input"' in driver
        assert '"--learning_rate", "0.003", "--momentum", "0.92"' in driver
        (consumed,) = data_run.get_details()["inputDatasets"]
        assert consumed["consumptionDetails"] == {"type": "RunInput", "inputName": "input", "mechanism": "Mount"}
        (recorded,) = ws.folder.store.get_run_inputs(data_run.id)
        assert recorded.file_count == 7 and recorded.files_hash
        chart = _chart(ws, data_run.id)  # the studio's chart data
        assert chart["values"] == data_loss and chart["count"] == 5

        # a second quickstart builds nothing and uploads nothing; with --open it ends in the studio
        uploaded = ws.folder.store.get_datastore_files("workspaceblobstore", "datasets/cifar10")
        again = _quickstart_then_studio(tmp_path, subprocess_env, data_run.id)
        assert "nothing uploaded: all 7 files already in" in again
        assert "environment built" not in again
        assert again.count("environment reused from the cache (nothing built)") == 2
        assert again.index("the same steps by hand") < again.index("runlab studio: workspace tutorial-ws")
        assert ws.folder.store.get_datastore_files("workspaceblobstore", "datasets/cifar10") == uploaded
        second = next(runlab.Experiment(ws, "day1-experiment-train").get_runs())
        assert second.id != run.id
        with second.open_file("azureml-logs/20_image_build_log.txt") as f:
            assert "found in the cache" in f.read().decode()
        assert not agent_is_running(ws.folder, "cpu-cluster")

        # then the six scripts, one by one, from the project folder
        for script in SCRIPTS:
            by_hand = subprocess.run([sys.executable, script], cwd=project, env=subprocess_env,
                                     capture_output=True, text=True, timeout=600)
            assert by_hand.returncode == 0, script + by_hand.stdout[-3000:] + by_hand.stderr[-3000:]
        train_runs = list(runlab.Experiment(ws, "day1-experiment-train").get_runs())
        assert len(train_runs) == 3 and train_runs[0].get_status() == "Completed"
        # a submit of the same files reuses the snapshot files and the environment
        assert train_runs[0].get_properties()["runlab.snapshot_id"] == run.get_properties()["runlab.snapshot_id"]
        hand_loss = train_runs[0].get_metrics()["loss"]
        assert len(hand_loss) == 10 and hand_loss[-1] < hand_loss[0]
        data_runs = list(runlab.Experiment(ws, "day1-experiment-data").get_runs())
        assert len(data_runs) == 3 and data_runs[0].get_status() == "Completed"
    finally:
        folder = Path(subprocess_env["RUNLAB_HOME"]) / "workspaces" / "tutorial-ws"
        if folder.is_dir():
            stop_agents(runlab.Workspace.from_path(folder))
