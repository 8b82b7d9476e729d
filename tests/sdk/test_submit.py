"""Submitted runs end to end: real agents, real processes, a real workspace."""

from __future__ import annotations

import os
import signal
import time
import zipfile
from pathlib import Path
from typing import Iterator

import pytest

import runlab
from runlab import (
    AmlCompute,
    ComputeTarget,
    ComputeTargetException,
    RunFailedError,
    ScriptRunConfig,
    UserError,
)
from runlab.execution.targets import agent_state_path, read_agent_state
from tests_support import stop_agents

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(ws: runlab.Workspace) -> Iterator[ComputeTarget]:
    config = AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=2, idle_seconds_before_scaledown=30)
    target = ComputeTarget.create(ws, "cpu-cluster", config)
    yield target
    stop_agents(ws)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "hello.py").write_text('print("Hello world!")\n')
    return folder


def test_tutorial_part_two_hello_world(ws: runlab.Workspace, cluster: ComputeTarget, src: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(src.parent)
    with pytest.raises(ComputeTargetException, match="does not exist"):
        ComputeTarget(workspace=ws, name="gpu-cluster")
    found = ComputeTarget(workspace=ws, name="cpu-cluster")
    assert isinstance(found, AmlCompute) and found.max_nodes == 2
    experiment = runlab.Experiment(workspace=ws, name="day1-experiment-hello")
    config = ScriptRunConfig(source_directory="./src", script="hello.py", compute_target="cpu-cluster")
    assert config.source_directory == str(src)  # recorded absolute
    run = experiment.submit(config)
    assert run.get_portal_url().endswith(f"/runs/{run.id}")
    details = run.wait_for_completion(show_output=False)
    assert details["status"] == "Completed"
    with run.open_file("azureml-logs/70_driver_log.txt") as f:
        assert b"Hello world!" in f.read()
    assert {"azureml-logs/20_image_build_log.txt", "azureml-logs/55_agent_log.txt",
            "azureml-logs/70_driver_log.txt"} <= set(details["logFiles"])
    assert details["target"] == "cpu-cluster" and details["runDefinition"]["script"] == "hello.py"
    assert [h["status"] for h in details["statusHistory"]] == [
        "Queued", "Preparing", "Starting", "Running", "Finalizing", "Completed"]

    second = experiment.submit(config)
    second.wait_for_completion()
    assert second.get_properties()["runlab.snapshot_id"] == run.get_properties()["runlab.snapshot_id"]
    assert list(ws.compute_targets) == ["cpu-cluster"]


def test_failed_script_keeps_outputs_metrics_and_traceback(ws: runlab.Workspace, cluster: ComputeTarget, src: Path) -> None:
    (src / "train.py").write_text(
        "import os\n"
        "from runlab import Run\n"
        "run = Run.get_context()\n"
        "for i in range(10):\n"
        "    run.log('loss', 1.0 / (i + 1))\n"
        "os.makedirs('outputs', exist_ok=True)\n"
        "open('outputs/model.pt', 'wb').write(b'weights')\n"
        "raise ValueError('diverged at step 10')\n"
    )
    run = runlab.Experiment(ws, "fails").submit(ScriptRunConfig(str(src), "train.py", compute_target=cluster))
    with pytest.raises(RunFailedError) as info:
        run.wait_for_completion(show_output=True)
    assert "exited with code 1" in str(info.value) and "ValueError: diverged at step 10" in str(info.value)
    assert info.value.exit_code == 1  # type: ignore[attr-defined]
    assert run.get_status() == "Failed"
    with run.open_file("azureml-logs/70_driver_log.txt") as f:
        log = f.read().decode()
    assert "Traceback (most recent call last)" in log and "ValueError: diverged at step 10" in log
    assert "outputs/model.pt" in run.get_file_names()
    assert len(run.get_metrics()["loss"]) == 10


def test_outputs_links_leading_outside_are_not_uploaded_and_the_log_says_so(ws: runlab.Workspace, cluster: ComputeTarget,
                                                                          src: Path, tmp_path: Path) -> None:
    """./outputs is uploaded by one rule (store.paths.folder_files): a link to a file inside is that
    file; a link to a file or a folder outside (a key, a dataset) is not followed, the run still
    completes, and its agent log (azureml-logs/55_agent_log.txt) names what was left out."""
    home = tmp_path / "home"
    (home / "datasets").mkdir(parents=True)
    (home / "id_rsa").write_text("secret")
    (home / "datasets" / "big.bin").write_bytes(b"x" * 1000)
    (src / "train.py").write_text(
        "import os\n"
        "os.makedirs('outputs', exist_ok=True)\n"
        "open('outputs/model.pt', 'wb').write(b'weights')\n"
        "os.symlink('model.pt', 'outputs/best.pt')\n"
        f"os.symlink({str(home / 'id_rsa')!r}, 'outputs/key')\n"
        f"os.symlink({str(home / 'datasets')!r}, 'outputs/data')\n"
    )
    run = runlab.Experiment(ws, "links").submit(ScriptRunConfig(str(src), "train.py", compute_target=cluster))
    run.wait_for_completion()
    assert run.get_status() == "Completed"
    assert [n for n in run.get_file_names() if n.startswith("outputs/")] == ["outputs/best.pt", "outputs/model.pt"]
    with run.open_file("azureml-logs/55_agent_log.txt") as f:
        log = f.read().decode()
    assert f"outputs/key is a link to {home / 'id_rsa'}, outside ./outputs: not uploaded" in log
    assert f"outputs/data is a link to {home / 'datasets'}, outside ./outputs: not uploaded" in log
    assert "uploaded 2 output file(s)" in log


def test_arguments_environment_variables_and_logs_folder(ws: runlab.Workspace, cluster: ComputeTarget, src: Path) -> None:
    (src / "args.py").write_text(
        "import os, sys\n"
        "from runlab import Run\n"
        "print('argv', sys.argv[1:])\n"
        "assert Run.get_context().id == os.environ['RUNLAB_RUN_ID']\n"
        "os.makedirs('logs', exist_ok=True)\n"
        "open('logs/progress.txt', 'w').write('halfway')\n"
    )
    config = ScriptRunConfig(str(src), "args.py", arguments=["--lr", 0.003, "--momentum", 0.92, "--flag", True],
                             compute_target="cpu-cluster")
    run = runlab.Experiment(ws, "args").submit(config)
    run.wait_for_completion()
    with run.open_file("azureml-logs/70_driver_log.txt") as f:
        assert "argv ['--lr', '0.003', '--momentum', '0.92', '--flag', 'True']" in f.read().decode()
    assert "logs/progress.txt" in run.get_file_names()


@pytest.mark.embedded_only(reason="kills the agent found in the folder's agents/ state file; a server's agents are "
                            "its own processes (killed agent -> run Failed: tests/server/test_server_faults.py)")
def test_killing_the_agent_leaves_no_run_running(ws: runlab.Workspace, cluster: ComputeTarget, src: Path) -> None:
    (src / "sleep.py").write_text("import time\nprint('started', flush=True)\ntime.sleep(600)\n")
    run = runlab.Experiment(ws, "agent-dies").submit(ScriptRunConfig(str(src), "sleep.py", compute_target="cpu-cluster"))
    _wait_for(lambda: run.get_status() == "Running")
    state = read_agent_state(ws.folder, "cpu-cluster")
    assert state is not None
    os.kill(state["pid"], signal.SIGKILL)
    _wait_for(lambda: read_agent_state(ws.folder, "cpu-cluster") is None)
    assert run.get_status() == "Failed"
    assert "died" in run.get_details()["error"]["message"]
    assert agent_state_path(ws.folder, "cpu-cluster").exists()  # left by the killed agent; harmless


def test_cancel_and_max_run_duration(ws: runlab.Workspace, cluster: ComputeTarget, src: Path) -> None:
    (src / "sleep.py").write_text("import time\nprint('started', flush=True)\ntime.sleep(600)\n")
    experiment = runlab.Experiment(ws, "stops")
    long_run = experiment.submit(ScriptRunConfig(str(src), "sleep.py", compute_target="cpu-cluster"))
    short = experiment.submit(ScriptRunConfig(str(src), "sleep.py", compute_target="cpu-cluster", max_run_duration_seconds=1))
    _wait_for(lambda: long_run.get_status() == "Running")
    long_run.cancel()
    assert long_run.wait_for_completion(raise_on_error=False)["status"] == "Canceled"
    with pytest.raises(RunFailedError, match="max_run_duration_seconds=1"):
        short.wait_for_completion()


def test_cancel_a_queued_run(ws: runlab.Workspace, src: Path) -> None:
    config = AmlCompute.provisioning_configuration(max_nodes=1, idle_seconds_before_scaledown=30)
    ComputeTarget.create(ws, "one-node", config)
    (src / "sleep.py").write_text("import time\ntime.sleep(600)\n")
    try:
        experiment = runlab.Experiment(ws, "queue")
        first = experiment.submit(ScriptRunConfig(str(src), "sleep.py", compute_target="one-node"))
        queued = experiment.submit(ScriptRunConfig(str(src), "sleep.py", compute_target="one-node"))
        _wait_for(lambda: first.get_status() == "Running")
        assert queued.get_status() == "Queued"
        status = ComputeTarget(workspace=ws, name="one-node").get_status()
        assert status.queued_runs == 1 and status.busy_nodes == 1
        queued.cancel()
        assert queued.get_status() == "Canceled"
        first.cancel()
        first.wait_for_completion(raise_on_error=False)
    finally:
        stop_agents(ws)


def test_max_nodes_bounds_concurrent_runs(ws: runlab.Workspace, cluster: ComputeTarget, src: Path, tmp_path: Path) -> None:
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    (src / "stamp.py").write_text(
        "import os, sys, time\n"
        "start = time.time(); time.sleep(0.5)\n"
        "open(os.path.join(sys.argv[1], os.environ['RUNLAB_RUN_ID']), 'w').write(f'{start} {time.time()}')\n"
    )
    experiment = runlab.Experiment(ws, "pool")
    runs = [experiment.submit(ScriptRunConfig(str(src), "stamp.py", arguments=[str(stamps)], compute_target="cpu-cluster"))
            for _ in range(5)]
    for run in runs:
        run.wait_for_completion()
    spans = [tuple(map(float, p.read_text().split())) for p in stamps.iterdir()]
    assert len(spans) == 5
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most <= 2


def test_agent_scales_down_when_idle_and_restarts_on_submit(ws: runlab.Workspace, src: Path) -> None:
    ComputeTarget.create(ws, "quick", AmlCompute.provisioning_configuration(max_nodes=1, idle_seconds_before_scaledown=1))
    try:
        experiment = runlab.Experiment(ws, "idle")
        experiment.submit(ScriptRunConfig(str(src), "hello.py", compute_target="quick")).wait_for_completion()
        _wait_for(lambda: read_agent_state(ws.folder, "quick") is None, timeout=30)
        again = experiment.submit(ScriptRunConfig(str(src), "hello.py", compute_target="quick"))
        assert again.wait_for_completion()["status"] == "Completed"
    finally:
        stop_agents(ws)


def test_submit_errors_are_clear(ws: runlab.Workspace, src: Path, tmp_path: Path) -> None:
    experiment = runlab.Experiment(ws, "errors")
    (tmp_path / "outside.py").write_text("")
    cases = [
        (ScriptRunConfig(str(src), "missing.py"), UserError, "not found in source_directory"),
        (ScriptRunConfig(str(src), "../outside.py"), UserError, "outside source_directory"),
        (ScriptRunConfig(str(tmp_path / "nope"), "x.py"), UserError, "is not a folder"),
        (ScriptRunConfig(str(src), "hello.py", compute_target="gpu-cluster"), ComputeTargetException, "does not exist"),
        (ScriptRunConfig(str(src), "hello.py", arguments=[{"a": 1}]), UserError, "argument 0"),
        (ScriptRunConfig(str(src), "hello.py", max_run_duration_seconds=0), UserError, "max_run_duration_seconds"),
    ]
    for config, error, message in cases:
        with pytest.raises(error, match=message):
            experiment.submit(config)
    with pytest.raises(ComputeTargetException, match="reserved"):
        ComputeTarget.create(ws, "local", AmlCompute.provisioning_configuration(max_nodes=1))
    (src / "big.bin").write_bytes(b"x" * 5000)
    with pytest.raises(UserError, match=r"\.runlabignore"):
        experiment.submit(ScriptRunConfig(str(src), "hello.py"), snapshot_max_bytes=1000)
    assert list(experiment.get_runs()) == []  # nothing was recorded


def test_restore_snapshot(ws: runlab.Workspace, cluster: ComputeTarget, src: Path, tmp_path: Path) -> None:
    run = runlab.Experiment(ws, "restore").submit(ScriptRunConfig(str(src), "hello.py", compute_target="cpu-cluster"))
    run.wait_for_completion()
    archive = run.restore_snapshot(path=tmp_path / "restored")  # Azure ML v1's: a ZIP of the snapshot
    assert archive == tmp_path / "restored" / f"{run.get_snapshot_id()}.zip"
    with zipfile.ZipFile(archive) as z:
        assert z.read("hello.py") == b'print("Hello world!")\n'


def _wait_for(condition, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")

