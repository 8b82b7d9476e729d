"""A Ray target of a live runlab server: the job reports over HTTP with the run's own token."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from ray_support import RayCluster

import runlab
from runlab import ComputeTarget, Experiment, RayCompute, ScriptRunConfig
from runlab.core.errors import AuthenticationError
from runlab.core.status import RunStatus
from runlab.store.remote.client import ServerClient
from runlab.store.remote.store import HttpStore
from runlab.store.sql.store import SqlStore
from runlab.store.sql.tokens import TokenStore
from server_support import ServerProcess

SCRIPT = """
import os
from runlab import Run
from runlab.store.remote.client import ServerClient
from runlab.store.remote.store import HttpStore

run = Run.get_context()
for step in range(3):
    run.log("accuracy", 0.5 + step / 10)
print("reports to", os.environ["RUNLAB_SERVER"], flush=True)
os.makedirs("outputs", exist_ok=True)
with open("outputs/token.txt", "w") as f:
    f.write(os.environ["RUNLAB_TOKEN"])
try:
    HttpStore(ServerClient(os.environ["RUNLAB_SERVER"], os.environ["RUNLAB_TOKEN"])).list_runs()
    print("the run's token lists every run", flush=True)
except Exception as exc:
    print("the run's token may not list runs:", type(exc).__name__, flush=True)
print("store url leaked:", "RUNLAB_STORE_URL" in os.environ, flush=True)
"""


@pytest.fixture
def secured(tmp_path: Path, subprocess_env: dict[str, str]) -> Any:
    url = f"sqlite:///{tmp_path / 'server.db'}"
    store = SqlStore(url)
    writer, _ = TokenStore(store.engine).create("ci", "writer")
    server = ServerProcess(url, tmp_path / "artifacts", subprocess_env, auth=True)
    server.start()
    yield server, writer
    server.stop()
    store.close()


def test_a_server_run_on_ray_reports_with_its_own_token(tmp_path: Path, secured: Any,
                                                         ray_cluster: RayCluster) -> None:
    server, writer = secured
    ws = runlab.Workspace.get("default", server=server.url, token=writer)
    ComputeTarget.attach(ws, "ray-cluster", RayCompute.attach_configuration(address=ray_cluster.address,
                                                                            num_cpus=0.5))
    assert ComputeTarget(workspace=ws, name="ray-cluster").serialize()["address"] == ray_cluster.address
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(textwrap.dedent(SCRIPT))
    run = Experiment(ws, "ray-server").submit(ScriptRunConfig(source_directory=str(source), script="train.py",
                                                              compute_target="ray-cluster"))
    run.wait_for_completion(timeout_seconds=150)
    assert run.get_status() == RunStatus.COMPLETED
    assert run.get_metrics()["accuracy"] == pytest.approx([0.5, 0.6, 0.7])
    with run.open_file("azureml-logs/70_driver_log.txt") as f:
        log = f.read().decode()
    assert f"reports to {server.url}" in log
    assert "the run's token may not list runs: PermissionDeniedError" in log
    assert "store url leaked: False" in log
    with run.open_file("outputs/token.txt") as f:
        token = f.read().decode()
    assert token and token != writer
    # the studio's compute page and API show the cluster, with a link to its dashboard
    headers = {"Authorization": f"Bearer {writer}"}
    (target,) = httpx.get(f"{server.url}/api/compute", headers=headers, timeout=30).json()
    assert target["address"] == ray_cluster.address and target["type"] == "ray"
    assert target["cluster"]["nodes"] == 1 and target["cluster"]["cpus"] == 2 and target["cluster"]["error"] is None
    page = httpx.get(f"{server.url}/compute", headers=headers, timeout=30).text
    assert "Ray clusters" in page and f'href="{ray_cluster.address}"' in page
    deadline = time.monotonic() + 15  # the run's token ends with the run
    while True:
        try:
            HttpStore(ServerClient(server.url, token)).get_run(run.id)
        except AuthenticationError:
            break
        assert time.monotonic() < deadline, "the run's token still works after the run ended"
        time.sleep(0.3)


def test_each_ranks_own_log_of_a_server_run_on_ray_reaches_the_server(tmp_path: Path, secured: Any,
                                                                       ray_cluster: RayCluster) -> None:
    server, writer = secured
    ws = runlab.Workspace.get("default", server=server.url, token=writer)
    ComputeTarget.attach(ws, "ray-cluster", RayCompute.attach_configuration(address=ray_cluster.address,
                                                                            num_cpus=0.5))
    source = tmp_path / "src"
    source.mkdir()
    (source / "ranks.py").write_text("import os\nprint('hello from', os.environ['RANK'], flush=True)\n")
    run = Experiment(ws, "ray-server").submit(ScriptRunConfig(
        source_directory=str(source), script="ranks.py", compute_target="ray-cluster",
        distributed_job_config=runlab.PyTorchConfiguration(process_count=2)))
    run.wait_for_completion(timeout_seconds=150)
    assert run.get_status() == RunStatus.COMPLETED
    for rank in (0, 1):
        with run.open_file(f"azureml-logs/70_driver_log_{rank}.txt") as f:
            assert f.read().decode() == f"hello from {rank}\n"
    with run.open_file("azureml-logs/70_driver_log.txt") as f:
        log = f.read().decode()
    assert "[rank 0] hello from 0" in log and "[rank 1] hello from 1" in log
