"""Distributed runs on the local pool (issue 10): PyTorchConfiguration(process_count=N) starts N ranks.

Real agents, real processes, a real workspace; the scripts are plain Python (torch only where the
submitting interpreter has it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import textwrap
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

import runlab
from runlab import MpiConfiguration, PyTorchConfiguration, RunFailedError, ScriptRunConfig
from runlab.core.errors import NotSupportedError, UserError
from runlab.execution.distributed import machine_cores
from runlab.sdk.job_config import TensorflowConfiguration
from tests_support import stop_agents

pytestmark = pytest.mark.slow

DEADLINE_S = 60.0  # what takes a second or two, or forever when it is broken

RANK_SCRIPT = """\
import json, os, sys, time
from pathlib import Path
import runlab

rank = int(os.environ["RANK"])
names = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "OMP_NUM_THREADS")
Path("outputs", f"rank-{rank}.json").write_text(json.dumps({n: os.environ.get(n) for n in names}))
run = runlab.Run.get_context()
run.log("rank", rank)
print(f"hello from {rank}")
print(f"note from {rank}", file=sys.stderr)
time.sleep(float(sys.argv[1]))
"""

# argv: pid folder, then per rank what it does: "sleep" or an exit code
BEHAVE_SCRIPT = """\
import os, sys, time
from pathlib import Path

rank = int(os.environ["RANK"])
Path(sys.argv[1], str(rank)).write_text(str(os.getpid()))
what = sys.argv[2 + rank]
if what == "sleep":
    time.sleep(300)
deadline = time.monotonic() + 30  # fail once every rank has started (its pid is known)
while len(list(Path(sys.argv[1]).iterdir())) < int(os.environ["WORLD_SIZE"]) and time.monotonic() < deadline:
    time.sleep(0.02)
print(f"rank {rank} gives up", file=sys.stderr)
sys.exit(int(what))
"""

TORCH_SCRIPT = """\
import json, os
from pathlib import Path
import torch
import torch.distributed as dist

dist.init_process_group(backend="gloo", init_method="env://")
value = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(value)
Path("outputs", f"rank-{dist.get_rank()}.json").write_text(json.dumps({"sum": value.item(),
                                                                      "world": dist.get_world_size()}))
dist.destroy_process_group()
"""


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "ranks.py").write_text(RANK_SCRIPT)
    (folder / "behave.py").write_text(BEHAVE_SCRIPT)
    (folder / "dist_torch.py").write_text(TORCH_SCRIPT)
    return folder


@pytest.fixture(autouse=True)
def agents(request: pytest.FixtureRequest) -> Iterator[None]:
    ws = request.getfixturevalue("ws") if "ws" in request.fixturenames else None  # any_ws tests stop their own
    yield
    if ws is not None:
        stop_agents(ws)


def _config(src: Path, script: str, arguments: list[str], count: int) -> ScriptRunConfig:
    return ScriptRunConfig(source_directory=src, script=script, arguments=arguments,
                           distributed_job_config=PyTorchConfiguration(process_count=count))


def _wait_for(condition: Callable[[], bool], timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().decode(errors="replace").rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _driver_log(run: runlab.Run) -> str:
    with run.open_file("azureml-logs/70_driver_log.txt") as f:
        return f.read().decode()


def _pids(folder: Path, count: int) -> list[int]:
    _wait_for(lambda: all((folder / str(i)).is_file() and (folder / str(i)).read_text() for i in range(count)))
    return [int((folder / str(i)).read_text()) for i in range(count)]


def test_two_ranks_get_torch_variables_log_to_the_run_and_are_sampled(
        ws: runlab.Workspace, src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNLAB_SYSTEM_METRICS_INTERVAL", "0.2")  # the agent inherits it
    if machine_cores() < 2:
        pytest.skip("needs 2 cores for 2 processes")
    run = runlab.Experiment(ws, "dist").submit(_config(src, "ranks.py", ["1.5"], 2))
    assert run.wait_for_completion()["status"] == "Completed"
    seen = [json.loads(run.download_file(f"outputs/rank-{i}.json", tmp_path / f"r{i}.json").read_text())
            for i in range(2)]
    assert [s["RANK"] for s in seen] == ["0", "1"] and [s["LOCAL_RANK"] for s in seen] == ["0", "1"]
    assert {s["WORLD_SIZE"] for s in seen} == {"2"} and {s["NODE_RANK"] for s in seen} == {"0"}
    assert {s["MASTER_ADDR"] for s in seen} == {"127.0.0.1"}
    ports = {s["MASTER_PORT"] for s in seen}
    assert len(ports) == 1 and 0 < int(ports.pop()) < 65536
    from runlab.execution.targets import TargetSettings

    threads = max(1, TargetSettings.load(ws.folder, "local").threads_per_run // 2)
    if "OMP_NUM_THREADS" not in os.environ:
        assert {s["OMP_NUM_THREADS"] for s in seen} == {str(threads)}
    log = _driver_log(run)
    for rank in range(2):
        assert f"[rank {rank}] hello from {rank}\n" in log and f"[rank {rank}] note from {rank}\n" in log
    # and one file per rank as Azure writes them, that rank's lines only, unprefixed
    names = run.get_file_names()
    assert "azureml-logs/70_driver_log_0.txt" in names and "azureml-logs/70_driver_log_1.txt" in names
    assert "azureml-logs/70_driver_log_2.txt" not in names
    for rank in range(2):
        with run.open_file(f"azureml-logs/70_driver_log_{rank}.txt") as f:
            own = f.read().decode()
        assert f"hello from {rank}\n" in own and f"note from {rank}\n" in own
        assert "[rank" not in own and f"hello from {1 - rank}" not in own
    assert sorted(run.get_metrics("rank")["rank"]) == [0, 1]  # every rank logs into the one run
    processes = run.get_metrics("sys/processes").get("sys/processes")
    assert processes and max(processes) >= 3  # the launcher and both ranks are one sampled tree
    assert run.get_details()["runDefinition"]["processCount"] == 2


def test_a_failing_rank_fails_the_run_naming_it_and_stops_the_others(
        ws: runlab.Workspace, src: Path, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    started = time.monotonic()
    run = runlab.Experiment(ws, "dist").submit(_config(src, "behave.py", [str(pids), "sleep", "3"], 2))
    with pytest.raises(RunFailedError):
        run.wait_for_completion()
    assert time.monotonic() - started < 30  # the sleeping rank does not hold the run
    error = run.get_details()["error"]
    message = error["error"]["message"] if "error" in error else error["message"]
    assert "rank 1 of 2 exited with code 3" in message and "rank 1 gives up" in message
    sleeper, failer = _pids(pids, 2)
    assert not _alive(sleeper) and not _alive(failer)
    assert "runlab: rank 1 exited with code 3: stopping the other ranks" in _driver_log(run)
    with run.open_file("azureml-logs/70_driver_log_1.txt") as f:
        assert f.read().decode() == "rank 1 gives up\n"


def test_cancel_stops_every_rank(ws: runlab.Workspace, src: Path, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    run = runlab.Experiment(ws, "dist").submit(_config(src, "behave.py", [str(pids), "sleep", "sleep"], 2))
    ranks = _pids(pids, 2)
    assert all(map(_alive, ranks))
    run.cancel()
    _wait_for(lambda: run.get_status() == "Canceled")
    _wait_for(lambda: not any(map(_alive, ranks)), timeout=5)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                    reason="torch is not importable by the submitting interpreter (runs without an environment use it)")
def test_two_ranks_all_reduce_with_torch_distributed_and_gloo(
        ws: runlab.Workspace, src: Path, tmp_path: Path) -> None:
    run = runlab.Experiment(ws, "dist").submit(_config(src, "dist_torch.py", [], 2))
    assert run.wait_for_completion()["status"] == "Completed", _driver_log(run)
    for rank in range(2):
        got = json.loads(run.download_file(f"outputs/rank-{rank}.json", tmp_path / f"t{rank}.json").read_text())
        assert got == {"sum": 3.0, "world": 2}


@pytest.mark.parametrize(("job_config", "error", "words"), [
    (PyTorchConfiguration(process_count=2, node_count=2), NotSupportedError, "the local pool is one machine"),
    (PyTorchConfiguration(process_count=0), UserError, "process_count=0"),
    (PyTorchConfiguration(process_count=machine_cores() + 1), UserError, "more processes than this machine"),
    (MpiConfiguration(process_count_per_node=2), NotSupportedError, "MpiConfiguration"),
    (MpiConfiguration(node_count=3), NotSupportedError, "the local pool is one machine"),
    (TensorflowConfiguration(worker_count=2), NotSupportedError, "TensorflowConfiguration"),
])
def test_what_the_local_pool_cannot_run_is_refused_at_submit(
        ws: runlab.Workspace, src: Path, job_config: object, error: type[Exception], words: str) -> None:
    config = ScriptRunConfig(source_directory=src, script="ranks.py", distributed_job_config=job_config)
    with pytest.raises(error, match=words):
        runlab.Experiment(ws, "dist").submit(config)
    assert ws.folder.store.count_runs_by_status("local") == {} or not any(
        ws.folder.store.count_runs_by_status("local").values())


def test_one_process_and_mpi_of_one_process_run_as_before(ws: runlab.Workspace, src: Path, tmp_path: Path) -> None:
    for job_config in (PyTorchConfiguration(), MpiConfiguration(), TensorflowConfiguration()):
        config = ScriptRunConfig(source_directory=src, script="behave.py", arguments=[str(tmp_path), "0"],
                                 distributed_job_config=job_config)
        assert config.validate()["processCount"] == 1
    (src / "plain.py").write_text(textwrap.dedent("""\
        import os
        print("RANK" in os.environ)
    """))
    run = runlab.Experiment(ws, "dist").submit(ScriptRunConfig(
        source_directory=src, script="plain.py", distributed_job_config=PyTorchConfiguration(process_count=1)))
    assert run.wait_for_completion()["status"] == "Completed"
    log = _driver_log(run)
    assert "False" in log and "[rank" not in log  # one process: started as any run
    assert not [n for n in run.get_file_names() if n.startswith("azureml-logs/70_driver_log_")]


def test_per_rank_driver_logs_in_a_folder_and_on_a_server(any_ws: runlab.Workspace, src: Path) -> None:
    """``70_driver_log_<i>.txt`` for each rank (Azure's names) beside the combined log, in a workspace folder
    and in a workspace of ``runlab server`` (where the agent sends the logs over HTTP)."""
    try:
        run = runlab.Experiment(any_ws, "dist-logs").submit(_config(src, "ranks.py", ["0"], 2))
        assert run.wait_for_completion(timeout_seconds=240)["status"] == "Completed", _driver_log(run)
        for rank in range(2):
            with run.open_file(f"azureml-logs/70_driver_log_{rank}.txt") as f:
                own = f.read().decode()
            # that rank's stdout and stderr lines, unprefixed (their order between the two pipes is not fixed)
            assert sorted(own.splitlines()) == [f"hello from {rank}", f"note from {rank}"], own
        log = _driver_log(run)
        assert "[rank 0] hello from 0" in log and "[rank 1] hello from 1" in log
    finally:
        stop_agents(any_ws)
