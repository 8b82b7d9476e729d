"""Helpers shared by test modules (not fixtures)."""

from __future__ import annotations

import json
import os
import signal
import time

import runlab
from runlab.execution.targets import read_agent_state

# The conda spec of tutorial part 3 (shared/seed), as Azure users have it.
TUTORIAL_SPEC = """\
name: pytorch-env
channels:
    - defaults
    - pytorch
dependencies:
    - python=3.6.2
    - pytorch
    - torchvision
    - pip
    - pip:
        - azureml-sdk
"""


def stop_agents(ws: runlab.Workspace) -> None:
    """Stop the agents a test started, by their own pid (their scripts die with them)."""
    agents = ws.path / "agents"
    for state_file in agents.glob("*.json"):
        try:
            os.kill(json.loads(state_file.read_text())["pid"], signal.SIGKILL)
        except (OSError, ValueError, KeyError):
            pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(read_agent_state(ws.folder, p.stem) for p in agents.glob("*.lock")):
        time.sleep(0.05)


def plant_run(ws: runlab.Workspace, run_id: str, experiment: str = "exp") -> None:
    """Put a run with any id into the database, as an older runlab or a hand edit could: the store
    itself refuses ids that break the id rule, so the run is created valid and renamed in SQL."""
    import sqlite3

    from runlab.core.status import RunStatus, RunType

    ws.folder.store.create_run("planted-run", experiment, run_type=RunType.INTERACTIVE, status=RunStatus.COMPLETED)
    conn = sqlite3.connect(ws.folder.db_path)
    with conn:
        conn.execute("UPDATE runs SET run_id = ? WHERE run_id = 'planted-run'", (run_id,))
    conn.close()


def run_context_env(ws: runlab.Workspace) -> dict[str, str]:
    """What an agent tells a submitted run's process about its workspace (with RUNLAB_RUN_ID): the
    folder's path, or for a workspace of ``runlab server`` the server's URL and the workspace's id."""
    if getattr(ws.folder, "remote", False):
        return {"RUNLAB_WORKSPACE": ws.folder.workspace_id,  # type: ignore[attr-defined]
                "RUNLAB_SERVER": ws.folder.server_url}  # type: ignore[attr-defined]
    return {"RUNLAB_WORKSPACE": str(ws.path)}
