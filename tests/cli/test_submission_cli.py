"""runlab submit / logs / cancel / compute, with real agents."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner

import runlab
from runlab.cli.main import cli

pytestmark = pytest.mark.slow


@pytest.fixture
def project(ws: runlab.Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello.py").write_text("import sys\nprint('Hello world!', sys.argv[1:])\n")
    (src / "sleep.py").write_text("import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n")
    ws.write_config(tmp_path)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    from tests_support import stop_agents

    stop_agents(ws)


def test_compute_submit_logs_cancel(project: Path, ws: runlab.Workspace) -> None:
    runner = CliRunner()
    created = runner.invoke(cli, ["compute", "create", "cpu-cluster", "--max-nodes", "2", "--idle-seconds", "60"])
    assert created.exit_code == 0, created.output
    assert "cpu-cluster" in runner.invoke(cli, ["compute", "list"]).output
    shown = runner.invoke(cli, ["compute", "show", "cpu-cluster"])
    assert re.search(r"max_nodes: 2\n", shown.output) and re.search(r"queued_runs: 0\n", shown.output)

    done = runner.invoke(cli, ["submit", "-e", "cli", "--source", "src", "--script", "hello.py",
                               "--compute", "cpu-cluster", "--wait", "--", "--lr", "0.1"])
    assert done.exit_code == 0, done.output
    assert "Hello world! ['--lr', '0.1']" in done.output and "Status: Completed" in done.output
    run = next(runlab.Experiment(ws, "cli").get_runs())
    logs = runner.invoke(cli, ["logs", run.id])
    assert "Hello world!" in logs.output
    agent_log = runner.invoke(cli, ["logs", run.id, "--file", "azureml-logs/55_agent_log.txt"])
    assert "run Completed" in agent_log.output

    started = runner.invoke(cli, ["submit", "-e", "cli", "--script", "sleep.py", "--source", "src", "--compute", "cpu-cluster"])
    assert started.exit_code == 0, started.output
    sleeper = next(runlab.Experiment(ws, "cli").get_runs())
    deadline = time.monotonic() + 60
    while sleeper.get_status() != "Running" and time.monotonic() < deadline:
        time.sleep(0.05)
    canceled = runner.invoke(cli, ["cancel", sleeper.id])
    assert canceled.exit_code == 0 and "CancelRequested" in canceled.output
    assert sleeper.wait_for_completion(raise_on_error=False)["status"] == "Canceled"
    follow = runner.invoke(cli, ["logs", sleeper.id, "--follow"])
    assert "sleeping" in follow.output

    missing = runner.invoke(cli, ["logs", run.id, "--file", "nope.txt"])
    assert missing.exit_code == 1 and "has no log 'nope.txt'" in missing.output
    deleted = runner.invoke(cli, ["compute", "delete", "cpu-cluster"])
    assert deleted.exit_code == 0
    gone = runner.invoke(cli, ["compute", "show", "cpu-cluster"])
    assert gone.exit_code == 1 and "does not exist" in gone.output


def test_failed_build_fails_the_run_with_the_log_tail(project: Path, ws: runlab.Workspace) -> None:
    (project / "requirements.txt").write_text("this-package-does-not-exist-runlab==1.0\n")
    result = CliRunner().invoke(cli, ["submit", "-e", "badenv", "--source", "src", "--script", "hello.py",
                                      "--environment", "requirements.txt", "--wait"])
    assert result.exit_code == 1
    run = next(runlab.Experiment(ws, "badenv").get_runs())
    assert run.get_status() == "Failed"
    message = run.get_details()["error"]["message"]
    assert "preparing the run failed" in message and "this-package-does-not-exist-runlab" in message
