"""Every test gets its own RUNLAB_HOME (workspaces registry, offline runs) in a temp folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

import runlab
from runlab.sdk import run as sdk_run

# a real S3 server (moto), a datastore fixture over the three kinds, and a real PostgreSQL, for every test module
pytest_plugins = ["datastore_fixtures", "pg_support"]


@pytest.fixture(autouse=True)
def runlab_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "runlab-home"
    monkeypatch.setenv("RUNLAB_HOME", str(home))
    for var in ("RUNLAB_WORKSPACE", "RUNLAB_RUN_ID", "RUNLAB_RUN_OWNER", "RUNLAB_OFFLINE_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(sdk_run, "_context_run", None)
    yield home


@pytest.fixture
def ws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator["runlab.Workspace"]:
    """The embedded workspace; with ``RUNLAB_TEST_WS=server``, any_ws's live server instead, so that a
    whole suite runs over HTTP (``RUNLAB_TEST_WS=server python -m pytest tests/sdk``)."""
    if os.environ.get("RUNLAB_TEST_WS") == "server":
        only = request.node.get_closest_marker("embedded_only")
        if only is not None:
            pytest.skip(f"embedded workspace only: {only.kwargs.get('reason') or (only.args or ['-'])[0]}")
        yield from _server_ws(request, tmp_path, request.getfixturevalue("subprocess_env"))
        return
    yield runlab.Workspace.create("test-ws", path=tmp_path / "ws")


@pytest.fixture(params=["embedded", "server"])
def any_ws(request: pytest.FixtureRequest, tmp_path: Path, subprocess_env: dict[str, str]) -> Iterator["runlab.Workspace"]:
    """One test, two kinds of workspace: the embedded folder, and a live `runlab server` (SQLite store,
    loopback, a process of its own) reached over HTTP. The test cannot tell which it has."""
    if request.param == "embedded":
        yield runlab.Workspace.create("test-ws", path=tmp_path / "ws")
        return
    yield from _server_ws(request, tmp_path, subprocess_env)


def _server_ws(request: pytest.FixtureRequest, tmp_path: Path, subprocess_env: dict[str, str]
               ) -> Iterator["runlab.Workspace"]:
    from server_support import ServerProcess

    server = ServerProcess(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "server-files", subprocess_env)
    # the server's agents read S3 datastores with the server's credentials (never the client's): moto's dummy ones
    from datastore_fixtures import AWS_KEY_ID, AWS_SECRET

    server.env.update({"AWS_ACCESS_KEY_ID": AWS_KEY_ID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"})
    if os.environ.get("RUNLAB_TEST_SERVER_S3"):  # the same tests with the server's files in S3 (moto)
        endpoint, bucket = request.getfixturevalue("s3_bucket")
        server.env.update(request.getfixturevalue("aws_env"))
        server.extra = ["--state", str(server.artifacts), "--s3-endpoint-url", endpoint]
        server.artifacts_arg = f"s3://{bucket}/ws"
    server.start()
    ws = runlab.Workspace.get("default", server=server.url)
    try:
        yield ws
    finally:
        _end_runs_of(ws)
        server.stop()


def _end_runs_of(ws: "runlab.Workspace") -> None:
    """End the runs this process still owns in ``ws`` while its server is there: at exit they would be
    ended into a journal under the real home (the test's RUNLAB_HOME is gone by then)."""
    from runlab.tracking import lifecycle

    with lifecycle._lock:
        owned = [run for run in lifecycle._owned if getattr(run, "_backend", None) is ws.folder]
    for run in owned:
        try:
            run.complete()
        except Exception:  # noqa: BLE001 - a test that broke its run: the server's reaper sees to it
            pass


@pytest.fixture
def subprocess_env(runlab_home: Path) -> dict[str, str]:
    """Environment for child Python processes: this interpreter's runlab, the test's home."""
    env = dict(os.environ)
    src = str(Path(runlab.__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    env["RUNLAB_HOME"] = str(runlab_home)
    return env


PYTHON = sys.executable
