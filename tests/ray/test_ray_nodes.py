"""A run over two Ray nodes: PyTorchConfiguration(process_count=2, node_count=2) on a cluster of a head and
a second raylet on this machine (its own temp dir and ports, stopped by its pids)."""

from __future__ import annotations

import hashlib
import re
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest
from ray_support import GLOO, RayCluster, RayNode, check_gloo_run

import runlab
from runlab import ComputeTarget, Dataset, Experiment, RayCompute, ScriptRunConfig
from runlab.core.errors import FileNotFoundInRunError
from runlab.core.status import RunStatus
from runlab.store.remote.client import ServerClient
from runlab.store.remote.store import HttpStore
from runlab.store.sql.store import SqlStore
from runlab.store.sql.tokens import TokenStore
from server_support import ServerProcess
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


FILES = {"a.txt": b"alpha on two nodes", "sub/b.bin": bytes(range(256)) * 4, "sub/deeper/c.csv": b"x,y\n1,2\n"}

READ_INPUT = """
import argparse, hashlib, os
from pathlib import Path
from runlab import Run

parser = argparse.ArgumentParser()
parser.add_argument("--data_path")
args = parser.parse_args()
rank = int(os.environ["RANK"])
digest = hashlib.sha256()
for path in sorted(p for p in Path(args.data_path).rglob("*") if p.is_file()):
    digest.update(path.relative_to(args.data_path).as_posix().encode() + b"\\0" + path.read_bytes())
print("rank", rank, "data at", args.data_path, "sha256", digest.hexdigest(),
      "variable", os.environ.get("AZUREML_DATAREFERENCE_data") == args.data_path, flush=True)
if rank == 0:
    run = Run.get_context()
    run.log("checksum", int(digest.hexdigest()[:12], 16))
    print("input_datasets:", run.input_datasets, flush=True)
"""


def _checksum(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name])
    return digest.hexdigest()


@pytest.fixture
def served_nodes(tmp_path: Path, subprocess_env: dict[str, str], ray_cluster: RayCluster, two_nodes: RayNode) -> Any:
    """A runlab server (the runs read their inputs through it with their own token), a Ray target on the
    two nodes, a folder of files and a source folder with READ_INPUT."""
    url = f"sqlite:///{tmp_path / 'server.db'}"
    store = SqlStore(url)
    writer, _ = TokenStore(store.engine).create("ci", "writer")
    server = ServerProcess(url, tmp_path / "artifacts", subprocess_env, auth=True)
    server.start()
    try:
        ws = runlab.Workspace.get("default", server=server.url, token=writer)
        ComputeTarget.attach(ws, "ray-cluster", RayCompute.attach_configuration(address=ray_cluster.address,
                                                                                num_cpus=0.5, max_nodes=1))
        data = tmp_path / "data"
        for name, content in FILES.items():
            (data / name).parent.mkdir(parents=True, exist_ok=True)
            (data / name).write_bytes(content)
        source = tmp_path / "src"
        source.mkdir()
        (source / "read.py").write_text(textwrap.dedent(READ_INPUT))
        yield server, writer, ws, data, source
    finally:
        server.stop()
        store.close()


def _submit_with_input(ws: Any, source: Path, argument: Any) -> Any:
    renv = runlab.Environment("ranks")
    renv.python.user_managed_dependencies = True
    config = ScriptRunConfig(source_directory=str(source), script="read.py", compute_target="ray-cluster",
                             environment=renv, arguments=["--data_path", argument],
                             distributed_job_config=runlab.PyTorchConfiguration(process_count=2, node_count=2))
    return Experiment(ws, "ray-nodes-inputs").submit(config)


def test_a_file_dataset_is_mounted_on_each_ray_node_before_its_ranks(
        served_nodes: Any, ray_cluster: RayCluster, two_nodes: RayNode) -> None:
    server, writer, ws, data, source = served_nodes
    datastore = ws.get_default_datastore()
    datastore.upload(src_dir=str(data), target_path="datasets/two-nodes", show_progress=False)
    dataset = Dataset.File.from_files(path=(datastore, "datasets/two-nodes"))
    run = _submit_with_input(ws, source, dataset.as_named_input("data").as_mount())
    run.wait_for_completion(timeout_seconds=180, raise_on_error=False)
    log = _log(run)
    assert run.get_status() == RunStatus.COMPLETED, log[-4000:]
    found = {int(m.group(1)): m for m in re.finditer(
        r"^\[rank (\d)\] rank \d data at (\S+) sha256 (\w+) variable (\w+)$", log, re.M)}
    assert sorted(found) == [0, 1], log[-4000:]
    expected = _checksum(FILES)
    assert [found[r].group(3) for r in (0, 1)] == [expected, expected]  # every rank read all of the data
    assert [found[r].group(4) for r in (0, 1)] == ["True", "True"]  # AZUREML_DATAREFERENCE_data: its path
    assert run.get_metrics() == {"checksum": int(expected[:12], 16)}
    paths = {r: found[r].group(2) for r in (0, 1)}
    assert paths[0] != paths[1], "both ranks read one node's copy"
    # each node its own data cache: the head's (rank 0) and the second raylet's (rank 1) RUNLAB_HOME
    assert paths[0].startswith(str(ray_cluster.temp_dir / "home" / "datacache")), paths
    assert paths[1].startswith(str(two_nodes.temp_dir / "home" / "datacache")), paths
    assert "runlab: node 0: Mounted input data to " in log and "runlab: node 1: Mounted input data to " in log
    # the run records rank 0's node's paths, before any rank starts (rank 0 reads them)
    assert run.input_datasets == {"data": paths[0]}
    assert f"[rank 0] input_datasets: {{'data': '{paths[0]}'}}" in log
    assert log.index("runlab: inputs ready: ") < log.index("[rank 0] rank 0 data at")
    assert log.index("runlab: inputs ready: ") < log.index("[rank 1] rank 1 data at")
    (named,) = run.get_details()["inputDatasets"]
    assert named["consumptionDetails"] == {"type": "RunInput", "inputName": "data", "mechanism": "Mount"}
    (consumed,) = HttpStore(ServerClient(server.url, writer)).get_run_inputs(run.id)  # once, not once per node
    assert (consumed.name, consumed.mode, consumed.file_count, consumed.total_size) == (
        "data", "mount", len(FILES), sum(map(len, FILES.values())))


def test_an_input_that_cannot_be_read_on_the_nodes_fails_the_run_before_any_rank(served_nodes: Any) -> None:
    server, writer, ws, data, source = served_nodes
    datastore = ws.get_default_datastore()
    (data / "a.txt").write_bytes(b"bytes no node's data cache has seen")
    datastore.upload(src_dir=str(data), target_path="datasets/gone", show_progress=False)
    registered = Dataset.File.from_files(path=(datastore, "datasets/gone")).register(ws, "soon-gone-nodes")
    datastore.object_store.delete("datasets/gone/a.txt")  # recorded in the version, no longer there
    run = _submit_with_input(ws, source, registered.as_named_input("data").as_download())
    run.wait_for_completion(timeout_seconds=180, raise_on_error=False)
    log = _log(run)
    assert run.get_status() == RunStatus.FAILED, log[-4000:]
    error = run.get_details()["error"]
    message = error["message"]
    assert message.startswith("preparing the run failed: the inputs could not be made available on the Ray nodes: "
                              "node 0 (rank 0) (on node 1 too): input 'data': "), message
    assert "a.txt" in message, message
    assert error["code"] != "ScriptFailed"
    assert not re.search(r"^\[rank \d\] ", log, re.M), log[-4000:]  # no rank started its script
    assert "data at" not in log
    assert run.get_metrics() == {}


def test_an_input_that_fails_on_one_node_only_fails_the_run_and_no_rank_starts(served_nodes: Any,
                                                                               tmp_path: Path) -> None:
    """An absolute path_on_compute: both "nodes" of this machine link the same path, so the second to try
    fails (on a cluster they are machines of their own). The run fails naming that node; no rank starts,
    not even the other node's; and the other node's link is removed."""
    server, writer, ws, data, source = served_nodes
    datastore = ws.get_default_datastore()
    datastore.upload(src_dir=str(data), target_path="datasets/one-node", show_progress=False)
    dataset = Dataset.File.from_files(path=(datastore, "datasets/one-node"))
    shared = tmp_path / "shared-mount"
    run = _submit_with_input(ws, source, dataset.as_named_input("data").as_mount(path_on_compute=str(shared)))
    run.wait_for_completion(timeout_seconds=180, raise_on_error=False)
    log = _log(run)
    assert run.get_status() == RunStatus.FAILED, log[-4000:]
    message = run.get_details()["error"]["message"]
    assert re.match(r"preparing the run failed: the inputs could not be made available on the Ray nodes: "
                    r"node ([01]) \(rank \1\): ", message), message
    assert "too)" not in message and str(shared) in message, message
    assert not re.search(r"^\[rank \d\] ", log, re.M), log[-4000:]  # no rank started its script
    assert not shared.is_symlink() and not shared.exists()  # the node that linked it removed its link
