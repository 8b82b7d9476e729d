"""The tutorial (examples/tutorial, parts 1 to 3 of the Azure ML series) runs end to end here."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import runlab

TUTORIAL = Path(__file__).resolve().parents[1] / "examples" / "tutorial"


def _torch_wheel_available() -> bool:
    return any(Path("/opt/wheels").glob("torch-2.13.0*.whl")) or os.environ.get("RUNLAB_TEST_TORCH") == "1"


@pytest.mark.slow
@pytest.mark.skipif(not _torch_wheel_available(), reason="needs the local torch 2.13.0 CPU wheel (pip find-links)")
def test_tutorial_end_to_end(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    project = tmp_path / "tutorial"
    shutil.copytree(TUTORIAL, project, ignore=shutil.ignore_patterns("config.json", "__pycache__"))
    try:
        done = subprocess.run([sys.executable, "run_tutorial.py"], cwd=project, env=subprocess_env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "Hello world!" in done.stdout
        assert "Finished Training" in done.stdout
        config = json.loads((project / ".azureml" / "config.json").read_text())
        ws = runlab.Workspace.from_config(project)
        assert config["workspace_name"] == ws.name == "tutorial-ws"
        (run,) = runlab.Experiment(ws, "day1-experiment-train").get_runs()
        assert run.get_status() == "Completed"
        loss = run.get_metrics()["loss"]
        assert len(loss) == 10 and loss[-1] < loss[0]
        with run.open_file("azureml-logs/20_image_build_log.txt") as f:
            build_log = f.read().decode()
        assert "python 3.6.2 requested" in build_log and "azureml-sdk" in build_log

        # a second submit reuses the snapshot files and the environment
        again = subprocess.run([sys.executable, "04-run-pytorch.py"], cwd=project, env=subprocess_env,
                               capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr[-3000:]
        second = next(runlab.Experiment(ws, "day1-experiment-train").get_runs())
        assert second.id != run.id
        assert second.get_properties()["runlab.snapshot_id"] == run.get_properties()["runlab.snapshot_id"]
        with second.open_file("azureml-logs/20_image_build_log.txt") as f:
            assert "found in the cache" in f.read().decode()
    finally:
        for state in (Path(subprocess_env["RUNLAB_HOME"]) / "workspaces").glob("*/agents/*.json"):
            try:
                os.kill(json.loads(state.read_text())["pid"], signal.SIGKILL)
            except (OSError, ValueError, KeyError):
                pass
