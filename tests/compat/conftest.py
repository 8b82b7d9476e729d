"""The azureml compatibility package (compat/azureml-core-runlab) from its source folder: on sys.path for
in-process imports, and on PYTHONPATH for child processes (control scripts, agents, runs)."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Iterator

import pytest

COMPAT_SRC = Path(__file__).resolve().parents[2] / "compat" / "azureml-core-runlab" / "src"
if str(COMPAT_SRC) not in sys.path:
    sys.path.insert(0, str(COMPAT_SRC))


@pytest.fixture
def v1_env(subprocess_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """Child processes see runlab and the compat package; agents they started are killed afterwards."""
    env = dict(subprocess_env)
    env["PYTHONPATH"] = str(COMPAT_SRC) + os.pathsep + env.get("PYTHONPATH", "")
    yield env
    for state in (Path(env["RUNLAB_HOME"]) / "workspaces").glob("*/agents/*.json"):
        try:
            os.kill(json.loads(state.read_text())["pid"], signal.SIGKILL)
        except (OSError, ValueError, KeyError):
            pass
