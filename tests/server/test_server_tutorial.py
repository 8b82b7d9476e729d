"""Issue 8's acceptance test: the tutorial's parts 1-4 against a live ``runlab server`` (PostgreSQL store,
files in S3 on moto's server, tokens on, its agent beside it), the scripts unchanged, only ``.azureml/config.json`` naming the server
and a writer token in ``RUNLAB_TOKEN``.

Script 01 is skipped: it creates a workspace folder on this machine (``Workspace.create``) and writes a
config.json naming it, which is what a server's user does not do; the config.json below replaces it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import runlab
from runlab.cli.quickstart import write_project
from runlab.store.sql.store import SqlStore
from runlab.store.sql.tokens import TokenStore
from server_support import ServerProcess

SCRIPTS = ["02-create-compute.py", "03-run-hello.py", "04-run-pytorch.py", "05-upload-data.py",
           "06-run-pytorch-data.py"]


def _torch_wheel_available() -> bool:  # as tests/test_tutorial.py decides it
    return any(Path("/opt/wheels").glob("torch-2.13.0*.whl")) or os.environ.get("RUNLAB_TEST_TORCH") == "1"


@pytest.mark.slow
@pytest.mark.skipif(not _torch_wheel_available(), reason="needs the local torch 2.13.0 CPU wheel (pip find-links)")
def test_tutorial_parts_1_to_4_against_a_live_server(tmp_path: Path, subprocess_env: dict[str, str],
                                                     postgres_url: str, s3_bucket: tuple[str, str],
                                                     aws_env: dict[str, str]) -> None:
    from datastore_fixtures import boto3_client
    from pg_support import drop_database, fresh_database

    url = fresh_database(postgres_url)
    try:
        _tutorial(tmp_path, subprocess_env, url, s3_bucket, aws_env, boto3_client)
    finally:
        drop_database(postgres_url, url)


def _tutorial(tmp_path: Path, subprocess_env: dict[str, str], url: str, s3_bucket: tuple[str, str],
              aws_env: dict[str, str], boto3_client: Any) -> None:
    endpoint, bucket = s3_bucket
    store = SqlStore(url)
    writer, _ = TokenStore(store.engine).create("tutorial", "writer")
    store.close()
    server = ServerProcess(url, tmp_path / "server-state", {**subprocess_env, **aws_env}, auth=True,
                           extra=["--state", str(tmp_path / "server-state"), "--s3-endpoint-url", endpoint])
    server.artifacts_arg = f"s3://{bucket}/team"
    project = tmp_path / "runlab-tutorial"
    project.mkdir()
    write_project(project)
    (project / ".azureml" / "config.json").write_text(json.dumps({"server": server.url, "workspace_name": "default"}))
    made = subprocess.run([sys.executable, "make_cifar10.py", "--images", "1000"], cwd=project, env=subprocess_env,
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-3000:]
    env = {**subprocess_env, "RUNLAB_TOKEN": writer}
    env.pop("RUNLAB_STORE_URL", None)
    with server:
        for script in SCRIPTS:
            done = subprocess.run([sys.executable, script], cwd=project, env=env, capture_output=True, text=True,
                                  timeout=900)
            assert done.returncode == 0, (script + done.stdout[-3000:] + done.stderr[-3000:]
                                          + server.output()[-3000:])

        ws = runlab.Workspace.get("default", server=server.url, token=writer)
        assert runlab.ComputeTarget(workspace=ws, name="cpu-cluster").name == "cpu-cluster"
        (hello,) = runlab.Experiment(ws, "day1-experiment-hello").get_runs()
        assert hello.get_status() == "Completed"
        with hello.open_file("azureml-logs/70_driver_log.txt") as f:
            assert "Hello world!" in f.read().decode()
        (train,) = runlab.Experiment(ws, "day1-experiment-train").get_runs()
        assert train.get_status() == "Completed"
        loss = train.get_metrics()["loss"]
        assert len(loss) >= 2 and loss[-1] < loss[0]

        # part 4: the data uploaded to the server's own datastore, mounted into the run
        uploaded = ws.get_default_datastore().list_files("datasets/cifar10")
        keys = [o["Key"] for o in boto3_client(endpoint).list_objects_v2(
            Bucket=bucket, Prefix="team/datastores/workspaceblobstore/datasets/cifar10/").get("Contents", [])]
        assert len(uploaded) == 7 and len(keys) == 7, keys
        (data_run,) = runlab.Experiment(ws, "day1-experiment-data").get_runs()
        with data_run.open_file("azureml-logs/70_driver_log.txt") as f:
            driver = f.read().decode()
        assert data_run.get_status() == "Completed", driver[-3000:]
        data_loss = data_run.get_metrics()["loss"]
        assert len(data_loss) >= 2 and data_loss[-1] < data_loss[0]
        assert "Mounted input input to " in driver and '"--learning_rate", "0.003", "--momentum", "0.92"' in driver
        (consumed,) = data_run.get_details()["inputDatasets"]
        assert consumed["consumptionDetails"] == {"type": "RunInput", "inputName": "input", "mechanism": "Mount"}
        (recorded,) = ws.folder.store.get_run_inputs(data_run.id)
        assert recorded.file_count == 7
