"""A Ray cluster as a compute target: runs become Ray jobs on a real cluster (the session's, 127.0.0.1)."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ray_support import GLOO, RayCluster, check_gloo_run

import runlab
from runlab import ComputeTarget, Experiment, RayCompute, ScriptRunConfig
from runlab.core.errors import ActivityFailedException, ComputeTargetException, NotSupportedError, UserError
from runlab.core.status import RunStatus
from runlab.execution.ray_target import job_id_for
from tests_support import stop_agents

DRIVER_LOG = "azureml-logs/70_driver_log.txt"
BUILD_LOG = "azureml-logs/20_image_build_log.txt"
WAIT_S = 120  # a shared machine with two cores: Ray can be slow


@pytest.fixture
def ray_ws(tmp_path: Path, ray_cluster: RayCluster) -> Any:
    ws = runlab.Workspace.create("ray-ws", path=tmp_path / "ws")
    ComputeTarget.attach(ws, "ray-cluster", RayCompute.attach_configuration(address=ray_cluster.address,
                                                                            num_cpus=0.5, max_nodes=2))
    yield ws
    stop_agents(ws)


def _source(tmp_path: Path, name: str, code: str) -> Path:
    folder = tmp_path / f"src-{name}"
    folder.mkdir(exist_ok=True)
    (folder / "train.py").write_text(textwrap.dedent(code))
    return folder


def _submit(ws: Any, source: Path, target: str = "ray-cluster", **kwargs: Any) -> Any:
    return Experiment(ws, "ray-exp").submit(ScriptRunConfig(source_directory=str(source), script="train.py",
                                                            compute_target=target, **kwargs))


def _text(run: Any, name: str) -> str:
    try:
        with run.open_file(name) as f:
            return f.read().decode("utf-8", errors="replace")  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 (not written yet)
        return ""


def _wait_for(predicate: Any, timeout: float = WAIT_S, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _client(cluster: RayCluster) -> Any:
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(cluster.address)


def test_hello_world_runs_as_a_ray_job_with_metrics_and_outputs(tmp_path: Path, ray_ws: Any,
                                                                ray_cluster: RayCluster) -> None:
    source = _source(tmp_path, "hello", """
        import os
        from runlab import Run
        run = Run.get_context()
        print("hello from ray", flush=True)
        print("[rank 0] a line of a one-process run", flush=True)  # one process: no rank's own file
        for i in range(5):
            run.log("loss", 1.0 / (i + 1))
        os.makedirs("outputs", exist_ok=True)
        with open("outputs/model.txt", "w") as f:
            f.write("weights")
        print("cwd is the run's own:", os.getcwd() != os.environ.get("RAY_JOB_WORKING_DIR", ""), flush=True)
    """)
    run = _submit(ray_ws, source)
    run.wait_for_completion(timeout_seconds=WAIT_S)
    assert run.get_status() == RunStatus.COMPLETED
    log = _text(run, DRIVER_LOG)
    assert "hello from ray" in log
    assert run.get_metrics()["loss"] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert "outputs/model.txt" in run.get_file_names()
    assert not [n for n in run.get_file_names() if n.startswith("azureml-logs/70_driver_log_")]
    assert _text(run, "outputs/model.txt") == "weights"
    details = run.get_details()
    assert details["runDefinition"]["rayJobId"] == job_id_for(run.id)
    info = _client(ray_cluster).get_job_info(job_id_for(run.id))
    assert str(info.status) == "SUCCEEDED" and info.metadata["runlab_run_id"] == run.id
    assert info.entrypoint.startswith("python -m runlab.execution.ray_entry -- python train.py")
    assert not (ray_ws.path / "work" / run.id).exists()  # the agent's copy of the snapshot is gone


def test_a_failing_script_fails_the_run_with_its_exit_code(tmp_path: Path, ray_ws: Any) -> None:
    source = _source(tmp_path, "fail", """
        import sys
        print("about to fail", flush=True)
        print("the reason: bad data", file=sys.stderr, flush=True)
        sys.exit(3)
    """)
    run = _submit(ray_ws, source)
    with pytest.raises(ActivityFailedException) as raised:
        run.wait_for_completion(timeout_seconds=WAIT_S)
    error = run.get_details()["error"]
    assert run.get_status() == RunStatus.FAILED
    assert error["exit_code"] == 3 and raised.value.exit_code == 3
    assert "exited with code 3" in error["message"]
    assert "bad data" in error["stderr_tail"]
    assert "about to fail" in _text(run, DRIVER_LOG)


def test_cancel_stops_the_ray_job_and_the_log_streams_while_it_runs(tmp_path: Path, ray_ws: Any,
                                                                     ray_cluster: RayCluster) -> None:
    source = _source(tmp_path, "long", """
        import time
        print("started", flush=True)
        for i in range(600):
            print("tick", i, flush=True)
            time.sleep(0.5)
    """)
    run = _submit(ray_ws, source)
    _wait_for(lambda: "tick 2" in _text(run, DRIVER_LOG), what="the job's log in the driver log")
    assert run.get_status() == RunStatus.RUNNING  # streamed while running, not at the end
    asked = time.monotonic()
    run.cancel()
    _wait_for(lambda: run.get_status() == RunStatus.CANCELED, timeout=30, what="Canceled")
    assert time.monotonic() - asked < 30
    status = _client(ray_cluster).get_job_status(job_id_for(run.id))
    assert str(status) == "STOPPED"


def test_max_nodes_bounds_the_jobs_at_once(tmp_path: Path, ray_ws: Any, ray_cluster: RayCluster) -> None:
    ComputeTarget.attach(ray_ws, "ray-one", RayCompute.attach_configuration(address=ray_cluster.address,
                                                                            num_cpus=0.1, max_nodes=1))
    source = _source(tmp_path, "window", """
        import time
        from runlab import Run
        run = Run.get_context()
        run.log("start", time.time())
        time.sleep(1.5)
        run.log("end", time.time())
    """)
    runs = [_submit(ray_ws, source, target="ray-one") for _ in range(2)]
    for run in runs:
        run.wait_for_completion(timeout_seconds=WAIT_S)
    windows = sorted((r.get_metrics()["start"], r.get_metrics()["end"]) for r in runs)
    assert windows[1][0] >= windows[0][1], f"two jobs at once with max_nodes=1: {windows}"


def test_what_ray_does_not_run_is_refused_at_submit(tmp_path: Path, ray_ws: Any) -> None:
    source = _source(tmp_path, "mpi", "print('never')\n")
    with pytest.raises(NotSupportedError, match="MpiConfiguration is not supported on a Ray target"):
        _submit(ray_ws, source, distributed_job_config=runlab.MpiConfiguration())
    with pytest.raises(UserError, match="process_count must be a multiple of node_count"):  # spread evenly
        _submit(ray_ws, source, distributed_job_config=runlab.PyTorchConfiguration(process_count=3, node_count=2))
    with pytest.raises(UserError, match="node_count=0"):
        _submit(ray_ws, source, distributed_job_config=runlab.PyTorchConfiguration(process_count=2, node_count=0))
    assert not list(Experiment(ray_ws, "ray-exp").get_runs())


@pytest.mark.slow  # Ray clones the test's virtualenv for a pip environment: 1-2 minutes here
def test_an_environment_that_does_not_resolve_fails_with_pips_message(tmp_path: Path, ray_ws: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (tmp_path / "pip.conf").write_text(f"[global]\nno-index = true\nfind-links = {wheels}\n")
    for var in [v for v in os.environ if v.startswith("PIP_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("PIP_CONFIG_FILE", str(tmp_path / "pip.conf"))  # read by the agent this submit starts
    env = runlab.Environment("broken")
    env.python.conda_dependencies = runlab.CondaDependencies.create(
        pip_packages=["runlab-test-no-such-package==9.9.9"])
    source = _source(tmp_path, "broken", "print('never runs')\n")
    run = _submit(ray_ws, source, environment=env)
    with pytest.raises(ActivityFailedException):
        run.wait_for_completion(timeout_seconds=400)
    error = run.get_details()["error"]
    assert error["code"] == "EnvironmentBuildFailed", error
    build_log = _text(run, BUILD_LOG)
    assert "runlab-test-no-such-package" in build_log
    assert f"--no-index --find-links {wheels}" in build_log  # the user's pip settings went with the environment
    assert "No matching distribution found for runlab-test-no-such-package" in error["message"]
    assert "never runs" not in _text(run, DRIVER_LOG)


def test_compute_show_prints_the_cluster(ray_ws: Any, ray_cluster: RayCluster) -> None:
    from runlab.cli.main import cli

    result = CliRunner().invoke(cli, ["compute", "show", "ray-cluster", "--workspace", str(ray_ws.path)])
    assert result.exit_code == 0, result.output
    assert ray_cluster.address in result.output
    assert "ray_nodes: 1 alive" in " ".join(result.output.split())
    assert "ray_cpus: 2" in " ".join(result.output.split())
    target = ComputeTarget(workspace=ray_ws, name="ray-cluster")
    assert isinstance(target, RayCompute) and target.type == "Ray"
    info = target.get_cluster()
    assert info["error"] is None and info["nodes"] == 1 and info["cpus"] == 2


def test_bad_addresses_are_refused_saying_what_to_do(tmp_path: Path) -> None:
    ws = runlab.Workspace.create("ray-bad", path=tmp_path / "bad")
    from ray_support import free_port

    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ComputeTargetException, match="cannot reach the Ray cluster's dashboard") as raised:
        ComputeTarget.attach(ws, "ray-cluster", RayCompute.attach_configuration(address=closed))
    assert "ray start --head" in str(raised.value)
    with pytest.raises(runlab.UserError, match="Ray Client address"):
        RayCompute.attach_configuration(address="ray://127.0.0.1:10001")
    for bad in ("", "ftp://host:8265", "http://", "http://host:notaport", "http://u:p@host:8265"):
        with pytest.raises(runlab.UserError):
            RayCompute.attach_configuration(address=bad)
    with pytest.raises(runlab.UserError, match="num_cpus"):
        RayCompute.attach_configuration(address=closed, num_cpus=-1)
    assert RayCompute.attach_configuration(address="10.0.0.5").address == "http://10.0.0.5:8265"
    assert not ws.folder.store.list_compute_targets()
    # the CLI says the same, without a traceback
    from runlab.cli.main import cli

    result = CliRunner().invoke(cli, ["compute", "attach", "ray", "ray-cluster", "--address", closed,
                                      "--workspace", str(ws.path)])
    assert result.exit_code != 0 and "cannot reach the Ray cluster's dashboard" in result.output
    assert "Traceback" not in result.output
    help_text = CliRunner().invoke(cli, ["compute", "attach", "ray", "--help"]).output
    for option in ("--address", "--num-cpus", "--num-gpus", "--memory", "--resource", "--max-nodes",
                   "--idle-seconds"):
        assert option in help_text


def test_a_two_process_run_on_one_ray_node_names_the_failing_rank(tmp_path: Path, ray_ws: Any) -> None:
    source = _source(tmp_path, "ranks", """
        import os, sys, time
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        print(f"rank {rank} of {world} at {os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}", flush=True)
        if os.environ.get("FAIL_RANK") == str(rank):
            print("rank broke: bad shard", file=sys.stderr, flush=True)
            sys.exit(4)
        time.sleep(0.5 if os.environ.get("FAIL_RANK") is None else 60)
    """)
    good = _submit(ray_ws, source, distributed_job_config=runlab.PyTorchConfiguration(process_count=2))
    good.wait_for_completion(timeout_seconds=WAIT_S)
    log = _text(good, DRIVER_LOG)
    assert "[rank 0] rank 0 of 2 at 127.0.0.1:" in log and "[rank 1] rank 1 of 2 at 127.0.0.1:" in log

    env = runlab.Environment("fail-rank")
    env.environment_variables = {"FAIL_RANK": "1"}
    started = time.monotonic()
    bad = _submit(ray_ws, source, environment=env,
                  distributed_job_config=runlab.PyTorchConfiguration(process_count=2))
    with pytest.raises(ActivityFailedException):
        bad.wait_for_completion(timeout_seconds=WAIT_S)
    error = bad.get_details()["error"]
    assert error["rank"] == 1 and error["exit_code"] == 4, error
    assert error["message"].startswith("rank 1 of 2 exited with code 4: ") and "bad shard" in error["message"]
    assert time.monotonic() - started < 50  # rank 0 (sleeping 60 s) was stopped, not waited for
    assert "rank broke: bad shard" in _text(bad, "azureml-logs/70_driver_log_1.txt").splitlines()
    assert "bad shard" not in _text(bad, "azureml-logs/70_driver_log_0.txt")


def test_a_two_process_gloo_all_reduce_on_one_ray_node(tmp_path: Path, ray_ws: Any) -> None:
    pytest.importorskip("torch", reason="the Ray node's Python (this one) runs the ranks: it needs torch")
    env = runlab.Environment("gloo")
    env.python.user_managed_dependencies = True  # the node's Python, which has torch
    run = _submit(ray_ws, _source(tmp_path, "gloo", GLOO), environment=env,
                  distributed_job_config=runlab.PyTorchConfiguration(process_count=2))
    run.wait_for_completion(timeout_seconds=WAIT_S * 2, raise_on_error=False)
    check_gloo_run(run)


def test_a_planted_target_address_is_never_read_as_a_file(tmp_path: Path) -> None:
    from runlab.core.assets import ComputeTargetRecord
    from runlab.execution.ray_target import cluster_info

    secret = tmp_path / "api" / "version"
    secret.parent.mkdir()
    secret.write_text('{"ray_version": "from a file"}')
    info = cluster_info(f"file://{tmp_path}")
    assert info["error"] and "rayVersion" not in info
    ws = runlab.Workspace.create("ray-planted", path=tmp_path / "ws")
    ws.folder.store.create_compute_target(ComputeTargetRecord(
        name="ray-planted", kind="ray", max_nodes=1, idle_seconds_before_scaledown=0, created_at=0.0,
        settings={"address": f"file://{tmp_path}"}))
    target = ComputeTarget(workspace=ws, name="ray-planted")
    assert isinstance(target, RayCompute) and "from a file" not in str(target.get_cluster())
    source = _source(tmp_path, "planted", "print('never runs')\n")
    run = _submit(ws, source, target="ray-planted")  # its agent fails the run, saying why; none waits for ever
    try:
        with pytest.raises(ActivityFailedException, match="invalid Ray settings"):
            run.wait_for_completion(timeout_seconds=60)
    finally:
        stop_agents(ws)


def test_a_job_left_by_a_dead_agent_is_stopped_by_the_next_one(tmp_path: Path, ray_cluster: RayCluster,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNLAB_HEARTBEAT_TIMEOUT", "4")  # the dead agent's run is marked Failed soon
    ws = runlab.Workspace.create("ray-orphan", path=tmp_path / "orphan")
    ComputeTarget.attach(ws, "ray-cluster", RayCompute.attach_configuration(address=ray_cluster.address,
                                                                            num_cpus=0.1))
    try:
        source = _source(tmp_path, "orphan", "import time\nprint('working', flush=True)\ntime.sleep(600)\n")
        run = _submit(ws, source)
        _wait_for(lambda: run.get_status() == RunStatus.RUNNING, what="Running")
        stop_agents(ws)  # SIGKILL: the agent is gone, its Ray job goes on
        client = _client(ray_cluster)
        assert str(client.get_job_status(job_id_for(run.id))) == "RUNNING"
        _wait_for(lambda: run.get_status() == RunStatus.FAILED, timeout=30, what="the reaper")
        quick = _submit(ws, _source(tmp_path, "quick", "print('next')\n"))  # starts a new agent
        _wait_for(lambda: str(client.get_job_status(job_id_for(run.id))) == "STOPPED", timeout=60,
                  what="the orphaned job stopped")
        quick.wait_for_completion(timeout_seconds=WAIT_S)
    finally:
        stop_agents(ws)
