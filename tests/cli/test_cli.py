"""The runlab command: help everywhere, one clear line for errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import runlab
from runlab.cli.main import cli

COMMANDS = [[], ["workspace"], ["workspace", "create"], ["workspace", "list"], ["workspace", "show"], ["runs"],
            ["runs", "list"], ["runs", "show"], ["metrics"], ["sync"]]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output and len(result.output.splitlines()) > 3


def test_workspace_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    created = runner.invoke(cli, ["workspace", "create", "cli-ws", "--write-config", "."])
    assert created.exit_code == 0, created.output
    assert (tmp_path / ".azureml" / "config.json").is_file()
    assert "cli-ws" in runner.invoke(cli, ["workspace", "list"]).output
    shown = runner.invoke(cli, ["workspace", "show"])
    assert shown.exit_code == 0 and "cli-ws" in shown.output


def _populated(tmp_path: Path) -> tuple[runlab.Workspace, runlab.Run]:
    ws = runlab.Workspace.create("runs-ws", path=tmp_path / "ws")
    run = runlab.Experiment(ws, "exp").start_logging()
    for i in range(3):
        run.log("loss", 1.0 / (i + 1))
    run.log("acc", 0.75)
    run.complete()
    return ws, run


def test_runs_and_metrics(tmp_path: Path) -> None:
    ws, run = _populated(tmp_path)
    runner = CliRunner()
    listed = runner.invoke(cli, ["runs", "list", "-w", str(ws.path)])
    assert listed.exit_code == 0 and run.id in listed.output and "Completed" in listed.output
    assert run.id not in runner.invoke(cli, ["runs", "list", "-w", "runs-ws", "--status", "failed"]).output
    shown = runner.invoke(cli, ["runs", "show", run.id, "-w", "runs-ws"])
    assert shown.exit_code == 0 and "loss (3 points" in shown.output
    table = runner.invoke(cli, ["metrics", run.id, "-w", "runs-ws"])
    assert "loss" in table.output and "acc" in table.output
    csv_out = runner.invoke(cli, ["metrics", run.id, "loss", "-w", "runs-ws", "--format", "csv"]).output
    assert csv_out.splitlines()[0] == "name,step,timestamp,value" and len(csv_out.splitlines()) == 4
    doc = json.loads(runner.invoke(cli, ["metrics", run.id, "-w", "runs-ws", "--format", "json"]).output)
    assert doc["loss"]["steps"] == [0, 1, 2] and doc["acc"]["values"] == [0.75]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "show", "exp_1_deadbeef", "-w", "runs-ws"], "does not exist"),
        (["metrics", "RUN", "nope", "-w", "runs-ws"], "no metric named 'nope'"),
        (["runs", "list", "-w", "ghost-ws"], "no workspace named 'ghost-ws'"),
        (["runs", "list", "-w", "runs-ws", "--status", "done"], "unknown run status"),
        (["workspace", "create", "x"], "invalid workspace name"),
        (["runs", "list"], "no config.json found"),
    ],
)
def test_errors_are_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str) -> None:
    _ws, run = _populated(tmp_path)
    monkeypatch.chdir(tmp_path)
    args = [run.id if a == "RUN" else a for a in args]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert message in result.output
    assert result.output.startswith("error:")


def test_python_dash_m_runlab_is_the_runlab_command() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "runlab", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Usage: runlab" in done.stdout and "sync" in done.stdout
