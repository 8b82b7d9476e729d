"""A run over two Ray nodes: PyTorchConfiguration(process_count=2, node_count=2) on a cluster of a head and
a second raylet on this machine (its own temp dir and ports, stopped by its pids)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest
from ray_support import GLOO, RayCluster, RayNode, check_gloo_run

import runlab
from runlab import ComputeTarget, Experiment, RayCompute, ScriptRunConfig
from runlab.core.errors import FileNotFoundInRunError
from runlab.core.status import RunStatus
from tests_support import stop_agents

DRIVER_LOG = "azureml-logs/70_driver_log.txt"

RANKS = """
import os, sys, time
from runlab import Run
rank = int(os.environ["RANK"])
print("rank", rank, "local", os.environ["LOCAL_RANK"], "world", os.environ["WORLD_SIZE"],
      "node_rank", os.environ["NODE_RANK"], "master", os.environ["MASTER_ADDR"] + ":" + os.environ["MASTER_PORT"],
      "ray_node", os.environ["RUNLAB_RAY_NODE_ID"], flush=True)
if rank == 0:
    Run.get_context().log("world", int(os.environ["WORLD_SIZE"]))
    os.makedirs("outputs", exist_ok=True)
    open("outputs/rank0.txt", "w").write("from rank 0")
if os.environ.get("FAIL_RANK") == str(rank):
    print("rank", rank, "gives up", file=sys.stderr, flush=True)
    sys.exit(5)
if os.environ.get("FAIL_RANK") or os.environ.get("SLEEP"):
    print("rank", rank, "sleeps", flush=True)
    time.sleep(120)  # stopped by the failing rank's end (or the cancel), not waited for
"""


@pytest.fixture(scope="module")
def two_nodes(ray_cluster: RayCluster) -> Iterator[RayNode]:
    node = ray_cluster.add_node(num_cpus=1)
    try:
        yield node
    finally:
        node.stop()
        left = node.processes()
        node.remove()
        assert not left, f"processes of the second Ray node left running: {[p.pid for p in left]}"


@pytest.fixture
def nodes_ws(tmp_path: Path, ray_cluster: RayCluster, two_nodes: RayNode) -> Any:
    ws = runlab.Workspace.create("ray-nodes", path=tmp_path / "ws")
    ComputeTarget.attach(ws, "ray-cluster", RayCompute.attach_configuration(address=ray_cluster.address,
                                                                            num_cpus=0.5, max_nodes=1))
    yield ws
    stop_agents(ws)


def _submit(ws: Any, tmp_path: Path, code: str = RANKS, **env: str) -> Any:
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "train.py").write_text(textwrap.dedent(code))
    renv = runlab.Environment("ranks")
    renv.python.user_managed_dependencies = True
    renv.environment_variables = dict(env)
    config = ScriptRunConfig(source_directory=str(source), script="train.py", compute_target="ray-cluster",
                             environment=renv,
                             distributed_job_config=runlab.PyTorchConfiguration(process_count=2, node_count=2))
    return Experiment(ws, "ray-nodes").submit(config)


def _log(run: Any) -> str:
    try:
        with run.open_file(DRIVER_LOG) as f:
            return f.read().decode("utf-8", errors="replace")  # type: ignore[no-any-return]
    except FileNotFoundInRunError:  # not written yet
        return ""


def test_two_ranks_run_on_two_ray_nodes_and_a_failing_rank_stops_the_other(tmp_path: Path, nodes_ws: Any) -> None:
    run = _submit(nodes_ws, tmp_path)
    run.wait_for_completion(timeout_seconds=150, raise_on_error=False)
    log = _log(run)
    assert run.get_status() == RunStatus.COMPLETED, log[-3000:]
    found = {int(m.group(1)): m for m in re.finditer(
        r"^\[rank (\d)\] rank (\d) local (\d) world (\d) node_rank (\d) master (\S+) ray_node (\S+)$", log, re.M)}
    assert sorted(found) == [0, 1], log[-3000:]
    assert [found[r].group(2) for r in (0, 1)] == ["0", "1"]
    assert {found[r].group(3) for r in (0, 1)} == {"0"} and {found[r].group(4) for r in (0, 1)} == {"2"}
    assert [found[r].group(5) for r in (0, 1)] == ["0", "1"]
    assert found[0].group(6) == found[1].group(6) and found[0].group(6).startswith("127.0.0.1:")
    assert found[0].group(7) != found[1].group(7), "STRICT_SPREAD put both ranks on one Ray node"
    assert "STRICT_SPREAD" in log
    assert run.get_metrics() == {"world": 2}
    with run.open_file("outputs/rank0.txt") as f:
        assert f.read() == b"from rank 0"
    for rank in (0, 1):  # each rank's lines, unprefixed, in its own file too
        with run.open_file(f"azureml-logs/70_driver_log_{rank}.txt") as f:
            (own,) = f.read().decode().splitlines()
        assert own.startswith(f"rank {rank} local 0 world 2 node_rank {rank} master 127.0.0.1:"), own

    failing = _submit(nodes_ws, tmp_path, FAIL_RANK="1")
    failing.wait_for_completion(timeout_seconds=150, raise_on_error=False)
    assert failing.get_status() == RunStatus.FAILED
    error = failing.get_details()["error"]
    assert error["rank"] == 1 and error["exit_code"] == 5, error
    assert error["message"] == "rank 1 of 2 exited with code 5: rank 1 gives up", error
    failed_log = _log(failing)
    assert "[rank 1] rank 1 gives up" in failed_log
    # rank 0 sleeps 120 s unless stopped: the run ended long before
    assert failing.record.ended_at - failing.record.started_at < 60


def test_a_gloo_all_reduce_over_two_ray_nodes(tmp_path: Path, nodes_ws: Any) -> None:
    pytest.importorskip("torch", reason="the Ray nodes' Python (this one) runs the ranks: it needs torch")
    run = _submit(nodes_ws, tmp_path, GLOO)
    run.wait_for_completion(timeout_seconds=240, raise_on_error=False)
    check_gloo_run(run)
    log = _log(run)
    nodes = re.findall(r"^runlab: node (\d) \(ranks .*Ray node (\w+)$", log, re.M)
    assert len(nodes) == 2 and nodes[0][1] != nodes[1][1], log[-3000:]  # STRICT_SPREAD: two Ray nodes


def test_canceling_a_run_over_two_nodes_stops_every_rank(tmp_path: Path, nodes_ws: Any) -> None:
    import time

    import psutil

    run = _submit(nodes_ws, tmp_path, SLEEP="1")
    deadline = time.monotonic() + 120
    while not all(f"[rank {r}] rank {r} sleeps" in _log(run) for r in (0, 1)):
        assert time.monotonic() < deadline and not run.record.status.is_terminal, _log(run)[-3000:]
        time.sleep(0.3)

    def ranks_alive() -> list[int]:
        found = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            try:
                argv = proc.info["cmdline"] or []  # a rank is `python train.py` (not ray_entry, nor its shell)
                if argv[1:2] == ["train.py"] and proc.environ().get("RUNLAB_RUN_ID") == run.id:
                    found.append(proc.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found

    assert len(ranks_alive()) == 2  # one per node, both on this machine
    canceled_at = time.monotonic()
    run.cancel()
    run.wait_for_completion(timeout_seconds=60, raise_on_error=False)
    assert run.get_status() == RunStatus.CANCELED
    assert time.monotonic() - canceled_at < 40
    while ranks_alive():
        assert time.monotonic() - canceled_at < 40, f"ranks of a canceled run still running: {ranks_alive()}"
        time.sleep(0.3)
