"""Offline runs: the full API outside a submitted run, then `runlab sync`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

import runlab
from runlab.cli.main import cli
from tests_support import run_context_env

SCRIPT = """
import runlab
run = runlab.Run.get_context()
assert run is runlab.Run.get_context()
for i in range(100):
    run.log("loss", 1.0 / (i + 1))
run.tag("where", "laptop")
run.upload_file("outputs/note.txt", __file__)
print("experiment:", run.experiment.name)
print("metrics:", len(run.get_metrics()["loss"]))
"""


def test_offline_run_records_locally_then_syncs(tmp_path: Path, subprocess_env: dict[str, str], runlab_home: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=subprocess_env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "experiment: train" in done.stdout and "metrics: 100" in done.stdout
    offline_lines = [line for line in done.stderr.splitlines() if "offline run" in line]
    assert len(offline_lines) == 1 and str(runlab_home / "offline") in offline_lines[0]

    ws = runlab.Workspace.create("team-ws", path=tmp_path / "ws")
    result = CliRunner().invoke(cli, ["sync", "--workspace", str(ws.path)])
    assert result.exit_code == 0, result.output
    assert "1 offline run(s) synced" in result.output
    (run,) = runlab.Experiment(ws, "train").get_runs()
    assert run.get_status() == "Completed"
    assert len(run.get_metrics()["loss"]) == 100
    assert run.get_tags() == {"where": "laptop"}
    assert run.get_file_names() == ["outputs/note.txt"]
    again = CliRunner().invoke(cli, ["sync", "--workspace", str(ws.path)])
    assert "0 offline run(s) synced" in again.output


def test_get_context_in_a_submitted_run_uses_the_environment(ws: runlab.Workspace, subprocess_env: dict[str, str]) -> None:
    run = runlab.Experiment(ws, "submitted").start_logging()
    env = {**subprocess_env, **run_context_env(ws), "RUNLAB_RUN_ID": run.id, "RUNLAB_RUN_OWNER": "agent"}
    code = (
        "import sys, runlab\n"
        "run = runlab.Run.get_context()\n"
        "print(run.id, 'sqlalchemy' in sys.modules)\n"
        "run.log('acc', 0.5)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    run_id, heavy = done.stdout.split()
    assert run_id == run.id
    assert heavy == "False"  # get_context loads no database layer in the training process
    assert run.get_metrics() == {"acc": 0.5}
    assert run.get_status() == "Running"  # the agent, not the script, ends a submitted run


def test_get_context_without_offline_raises() -> None:
    import pytest

    with pytest.raises(runlab.RunlabError, match="not a submitted run"):
        runlab.Run.get_context(allow_offline=False)
