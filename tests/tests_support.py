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
