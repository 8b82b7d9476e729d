"""Fixtures for datastore tests: a real S3 server (moto's, a subprocess on 127.0.0.1), dummy AWS
credentials in the environment, and ``datastore``, parametrized over the three kinds of datastore
(the workspace's default, a local folder, an S3 bucket). Loaded by tests/conftest.py as a plugin, so
every test module can use them; moto and boto3 are imported only by tests that do."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

import runlab

# Dummy credentials: unique strings, so that a test can look for them in every file of a workspace.
AWS_KEY_ID = "RUNLABTESTKEYID" + uuid.uuid4().hex[:12].upper()
AWS_SECRET = "runlab-test-secret-" + uuid.uuid4().hex
DATASTORE_KINDS = ["default", "local", "s3"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The endpoint URL of a moto S3 server on 127.0.0.1, stopped by its own pid at the end."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e '.[test]')")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    with open(log, "wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                  stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the moto server did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Dummy AWS credentials in the environment, and nothing else boto3 could find (no profile, no
    instance metadata lookup: nothing leaves 127.0.0.1)."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL",
                "AWS_ENDPOINT_URL_S3", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(var, raising=False)
    values = {
        "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def boto3_client(endpoint: str) -> Any:
    import boto3

    return boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture
def s3_bucket(s3_server: str, aws_env: dict[str, str]) -> tuple[str, str]:
    """(endpoint URL, name) of a new, empty bucket on the moto server."""
    bucket = f"runlab-{uuid.uuid4().hex[:16]}"
    boto3_client(s3_server).create_bucket(Bucket=bucket)
    return s3_server, bucket


@pytest.fixture(params=DATASTORE_KINDS)
def datastore(request: pytest.FixtureRequest, ws: runlab.Workspace, tmp_path: Path) -> runlab.Datastore:
    """A datastore of ``ws``: the default (workspaceblobstore), a local folder, or an S3 bucket on moto."""
    if request.param == "default":
        return ws.get_default_datastore()
    if request.param == "local":
        return runlab.Datastore.register_local(ws, "local_store", tmp_path / "local-datastore")
    endpoint, bucket = request.getfixturevalue("s3_bucket")
    return runlab.Datastore.register_s3(ws, "s3_store", bucket, prefix="team/data", endpoint_url=endpoint)
