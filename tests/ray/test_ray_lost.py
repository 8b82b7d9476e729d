"""A Ray cluster that restarts or goes away under a running run: the run fails, saying why, never stays Running."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from ray_support import RayCluster, new_cluster

import runlab
from runlab import ComputeTarget, Experiment, RayCompute, ScriptRunConfig
from runlab.core.status import RunStatus
from tests_support import stop_agents

SLEEPER = """
import time
print("working", flush=True)
time.sleep(600)
"""


@pytest.fixture(scope="module")
def doomed_cluster() -> Iterator[RayCluster]:
    """A cluster of this module's own, since its tests kill it."""
    cluster = new_cluster(num_cpus=1)
    try:
        cluster.warm()
        yield cluster
    finally:
        cluster.stop()
        left = cluster.processes()
        cluster.remove()
        assert not left, f"processes of the test's Ray cluster left running: {[p.pid for p in left]}"


def _running(tmp_path: Path, cluster: RayCluster, name: str) -> tuple[Any, Any]:
    ws = runlab.Workspace.create(name, path=tmp_path / name)
    ComputeTarget.attach(ws, "ray-cluster", RayCompute.attach_configuration(address=cluster.address, num_cpus=0.5))
    source = tmp_path / f"src-{name}"
    source.mkdir()
    (source / "train.py").write_text(textwrap.dedent(SLEEPER))
    run = Experiment(ws, "lost").submit(ScriptRunConfig(source_directory=str(source), script="train.py",
                                                        compute_target="ray-cluster"))
    deadline = time.monotonic() + 120
    while run.get_status() != RunStatus.RUNNING:
        assert time.monotonic() < deadline and not RunStatus(run.get_status()).is_terminal, run.get_details()
        time.sleep(0.2)
    return ws, run


def _ended(run: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not RunStatus(run.get_status()).is_terminal:
        assert time.monotonic() < deadline, f"still {run.get_status()} after {timeout} s"
        time.sleep(0.3)
    return dict(run.get_details())


def test_a_job_gone_after_a_cluster_restart_fails_the_run(tmp_path: Path, doomed_cluster: RayCluster,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNLAB_RAY_LOST_TIMEOUT", "180")  # the agent waits for the cluster to come back
    ws, run = _running(tmp_path, doomed_cluster, "restart-ws")
    try:
        doomed_cluster.kill()
        doomed_cluster.start(num_cpus=1)  # same ports, a new session: it knows nothing of the job
        details = _ended(run, 120)
        assert details["status"] == RunStatus.FAILED
        assert details["error"]["code"] == "RayJobLost"
        assert "is gone from the cluster" in details["error"]["message"]
    finally:
        stop_agents(ws)


def test_a_cluster_that_stops_answering_fails_its_runs(tmp_path: Path, doomed_cluster: RayCluster,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNLAB_RAY_LOST_TIMEOUT", "3")
    ws, run = _running(tmp_path, doomed_cluster, "lost-ws")
    try:
        doomed_cluster.kill()  # the head is lost for good
        details = _ended(run, 60)
        assert details["status"] == RunStatus.FAILED
        assert details["error"]["code"] == "RayClusterLost"
        assert "did not answer for 3 s" in details["error"]["message"]
        assert doomed_cluster.address in details["error"]["message"]
    finally:
        stop_agents(ws)
