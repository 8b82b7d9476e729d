"""The first hour of a new user on the command line (issue 14's friction list), one test per item."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import runlab
from runlab.cli.main import cli
from runlab.cli.quickstart import look_further


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def _project_with_a_run(tmp_path: Path) -> tuple[Path, runlab.Run]:
    """A tutorial-like project: config.json in project/.azureml, a run with a loss."""
    project = tmp_path / "runlab-tutorial"
    ws = runlab.Workspace.create("first-ws")
    ws.write_config(path=str(project / ".azureml"))
    run = runlab.Experiment(ws, "day1").start_logging()
    for step in range(3):
        run.log("loss", 1 / (step + 3))
    run.complete()
    return project, run


def _runlab_env(subprocess_env: dict[str, str]) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)  # the `runlab` command of this environment
    return {**subprocess_env, "PATH": bin_dir + os.pathsep + subprocess_env.get("PATH", "")}


def test_suggested_commands_work_where_the_user_stands(tmp_path: Path, subprocess_env: dict[str, str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    project, run = _project_with_a_run(tmp_path)
    monkeypatch.chdir(tmp_path)  # where the user ran quickstart
    commands = look_further(project, run.id)
    assert commands[0] == "cd runlab-tutorial && runlab runs list"
    env = _runlab_env(subprocess_env)
    for command in commands[:-1]:
        done = subprocess.run(["/bin/sh", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, command + done.stdout + done.stderr
        assert run.id in done.stdout or "0.2" in done.stdout
    # the studio, last: it must start (on a free port) from here too
    studio = subprocess.Popen(["/bin/sh", "-c", commands[-1] + " --port 0"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert studio.stdout is not None
        first = studio.stdout.readline()
        assert "runlab studio: workspace first-ws" in first, first + studio.stdout.read()
    finally:
        os.killpg(studio.pid, signal.SIGTERM)
        studio.wait(timeout=30)
        if studio.stdout is not None:
            studio.stdout.close()
    # and from inside the project, no `cd`
    monkeypatch.chdir(project)
    assert look_further(project, None)[0] == "runlab runs list"


def test_run_tutorial_suggestions_name_the_project_folder() -> None:
    script = (Path(__file__).resolve().parents[2] / "examples" / "tutorial" / "run_tutorial.py").read_text()
    assert "runlab quickstart" in script and "{cd}runlab runs list" in script


def test_no_config_error_is_two_lines_with_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "a" / "b"
    empty.mkdir(parents=True)
    monkeypatch.chdir(empty)
    none_yet = invoke("runs", "list")
    assert none_yet.exit_code == 1
    assert "runlab workspace create NAME" in none_yet.output
    runlab.Workspace.create("other-ws")
    runlab.Workspace.create("first-ws")
    result = invoke("runs", "list")
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) <= 2, result.output
    assert f"from {empty} up to /" in lines[0] and "no config.json found" in lines[0]
    assert "-w NAME (workspaces: first-ws, other-ws)" in result.output
    assert "Workspace.create" not in result.output and "write_config" not in result.output


@pytest.mark.parametrize("ref", ["./nosuchdir", "nosuch/dir", "~/nosuchdir-runlab"])
def test_a_workspace_option_that_looks_like_a_path_is_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            ref: str) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("runs", "list", "-w", ref)
    assert result.exit_code == 1
    assert f"{ref} does not exist" in result.output and "no workspace named" not in result.output
    (tmp_path / "plain").mkdir()
    not_a_workspace = invoke("runs", "list", "-w", "./plain")
    assert not_a_workspace.exit_code == 1 and "is not a workspace folder" in not_a_workspace.output
    ws = runlab.Workspace.create("path-ws", path=tmp_path / "ws-folder")
    assert invoke("runs", "list", "-w", "./ws-folder").exit_code == 0
    assert invoke("runs", "list", "-w", str(ws.path)).exit_code == 0


def test_runs_list_with_filters_that_match_nothing_says_so(tmp_path: Path) -> None:
    _project, run = _project_with_a_run(tmp_path)
    by_experiment = invoke("runs", "list", "-w", "first-ws", "-e", "nosuch")
    assert by_experiment.exit_code == 0
    assert "no runs match --experiment nosuch" in by_experiment.output and "start one" not in by_experiment.output
    running = invoke("runs", "list", "-w", "first-ws", "--status", "running")
    assert "no runs match --status running" in running.output
    assert run.id in invoke("runs", "list", "-w", "first-ws").output
    runlab.Workspace.create("empty-ws")
    assert "no runs yet" in invoke("runs", "list", "-w", "empty-ws").output


def test_the_default_compute_target_local_is_listed_and_shown(tmp_path: Path) -> None:
    runlab.Workspace.create("first-ws")
    listed = invoke("compute", "list", "-w", "first-ws")
    assert listed.exit_code == 0 and "local (built in)" in listed.output
    shown = invoke("compute", "show", "local", "-w", "first-ws")
    assert shown.exit_code == 0, shown.output
    assert re.search(r"max_nodes: \d+", shown.output) and "agent_state: Stopped" in shown.output
    assert "does not exist" not in shown.output
    assert "submit" in invoke("submit", "--help").output and "local" in invoke("submit", "--help").output


@pytest.mark.slow
def test_env_list_shows_cached_environments_as_unregistered(tmp_path: Path) -> None:
    ws = runlab.Workspace.create("first-ws")
    runlab.Environment("loose-env").build_local(show_output=False)  # as a submitted run builds one
    listed = invoke("env", "list", "-w", "first-ws")
    assert listed.exit_code == 0, listed.output
    (row,) = [line for line in listed.output.splitlines() if "loose-env" in line]
    assert "unregistered" in row and "yes" in row
    assert "no environments registered yet" not in listed.output
    runlab.Environment("loose-env").register(ws)
    rows = [line for line in invoke("env", "list", "-w", "first-ws").output.splitlines() if "loose-env" in line]
    assert len(rows) == 1 and "unregistered" not in rows[0]


def test_runs_show_metrics_compute_show_studio_and_workspace_show_read_alike(tmp_path: Path) -> None:
    ws = runlab.Workspace.create("first-ws")
    parent = runlab.Experiment(ws, "exp").start_logging()
    parent.log("loss", 1 / 3)
    parent.log("loss", 2 / 3)
    child = parent.child_run()
    child.complete()
    parent.complete()

    shown = invoke("runs", "show", parent.id, "-w", "first-ws")
    assert shown.exit_code == 0, shown.output
    assert "parent:" not in shown.output  # no empty row
    assert not any(line.rstrip().endswith(",") for line in shown.output.splitlines())
    assert "last 0.666667" in shown.output
    assert f"parent: {parent.id}" in invoke("runs", "show", child.id, "-w", "first-ws").output

    table = invoke("metrics", parent.id, "-w", "first-ws").output
    (row,) = [line for line in table.splitlines() if "loss" in line]
    assert "0.666667" in row and "0.333333" in row and "0.6666666666" not in row

    runlab.ComputeTarget.create(ws, "cpu-cluster", runlab.AmlCompute.provisioning_configuration(max_nodes=2))
    compute = invoke("compute", "show", "cpu-cluster", "-w", "first-ws").output
    assert "idle_seconds_before_scaledown: " in compute and "max_nodes: 2" in compute
    assert not re.search(r"\b[a-z]+[A-Z][a-zA-Z]*:", compute), compute  # no camelCase keys

    studio = invoke("studio", "-w", "ghost-ws")
    assert studio.exit_code == 1 and studio.output.startswith("error: ") and "Error:" not in studio.output

    by_option = invoke("workspace", "show", "-w", "first-ws")
    assert by_option.exit_code == 0 and "first-ws" in by_option.output
    assert invoke("workspace", "show", "--help").output.count("-w, --workspace") == 1


@pytest.mark.slow
def test_an_idle_agent_does_not_poll(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle agent waits to be woken (it used ~2% of a core polling 20 times a second): with a 10-minute
    wait between looks at its queue, a submit is still served at once, and SIGTERM still ends it at once."""
    import psutil

    from runlab.execution.agent import IDLE_AFTER_S
    from runlab.execution.targets import ensure_agent, read_agent_state, stop_agent, wait_for_agent_exit

    monkeypatch.setenv("RUNLAB_AGENT_IDLE_WAIT", "600")  # the agent inherits it: without a wake-up, 10 minutes
    ws = runlab.Workspace.create("first-ws")
    runlab.ComputeTarget.create(ws, "cpu-cluster", runlab.AmlCompute.provisioning_configuration(max_nodes=1))
    assert ensure_agent(ws.folder, "cpu-cluster")
    try:
        deadline = time.monotonic() + 20
        while (state := read_agent_state(ws.folder, "cpu-cluster")) is None:
            assert time.monotonic() < deadline, "the agent did not start"
            time.sleep(0.1)
        agent = psutil.Process(state["pid"])
        time.sleep(IDLE_AFTER_S + 1)
        before = agent.cpu_times()
        time.sleep(4)
        after = agent.cpu_times()
        used = (after.user + after.system) - (before.user + before.system)
        assert used < 0.02, f"the idle agent used {used:.3f} s of CPU in 4 s"
        # a submit wakes it (the wait is 600 s)
        run = runlab.Experiment(ws, "exp").submit(runlab.ScriptRunConfig(
            source_directory=str(_hello(tmp_path)), script="hello.py", compute_target="cpu-cluster"))
        run.wait_for_completion(timeout_seconds=240)
        assert run.get_status() == "Completed"
        time.sleep(IDLE_AFTER_S + 1)  # idle again
        agent.terminate()  # SIGTERM wakes it too: it exits, not waits out its 600 s
        assert wait_for_agent_exit(ws.folder, "cpu-cluster", 120), "SIGTERM did not end the idle agent"
        agent.wait(30)  # the process itself is gone too (psutil.TimeoutExpired otherwise)
    finally:
        stop_agent(ws.folder, "cpu-cluster")


def _hello(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "hello.py").write_text("print('Hello world!')\n")
    return src
