"""``runlab env``: list, show, build and prune, with one clear line for errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import runlab
from runlab.cli.env import env as env_group
from runlab.sdk.environment import (
    Environment,
    environment_cache_root,
    list_cached_environments,
)

COMMANDS = [[], ["list"], ["show"], ["build"], ["prune"]]


def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(env_group, list(args), input=input)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output and len(result.output.splitlines()) > 3


def test_the_module_imports_in_either_order_with_main() -> None:
    for first, second in (("env", "main"), ("main", "env")):
        code = f"import runlab.cli.{first}, runlab.cli.{second}"
        subprocess.run([sys.executable, "-c", code], check=True)


def test_list_and_show(ws: runlab.Workspace, tmp_path: Path) -> None:
    assert "no environments registered yet" in invoke("list", "-w", str(ws.path)).output
    spec = tmp_path / "pytorch-env.yml"
    spec.write_text("channels: [defaults, pytorch]\n"
                    "dependencies: [python=3.6.2, pytorch, torchvision, pip, {pip: [azureml-sdk]}]\n"
                    "variables: {OMP_NUM_THREADS: '1'}\n", encoding="utf-8")
    first = Environment.from_conda_specification("pytorch-env", spec).register(ws)
    first.python.conda_dependencies.add_pip_package("six")
    latest = first.register(ws)
    listed = invoke("list", "-w", "test-ws")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if "pytorch-env" in line)
    assert "1, 2" in row and latest.content_hash()[:12] in row and row.split()[-2] == "no"

    shown = invoke("show", "pytorch-env", "-w", "test-ws")
    assert shown.exit_code == 0, shown.output
    lines = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in shown.output.splitlines()
             if ":" in line and not line.lstrip().startswith("warning")}
    assert lines["version"] == "2" and lines["packages"] == "torch, torchvision, six"
    assert lines["python"] == f"3.6.2 -> {'.'.join(map(str, sys.version_info[:3]))}"
    assert lines["channels"] == "defaults, pytorch" and lines["env vars"] == "OMP_NUM_THREADS=1"
    assert lines["hash"] == latest.content_hash() and lines["built"].startswith("no: build it with")
    assert lines["env dir"] == str(environment_cache_root() / latest.content_hash()[:16])
    assert "python 3.6.2 requested" in shown.output and "'azureml-sdk' removed" in shown.output
    assert "torch, torchvision\n" in invoke("show", "pytorch-env", "--version", "1", "-w", "test-ws").output


def test_errors_are_one_clear_line(ws: runlab.Workspace, tmp_path: Path) -> None:
    missing = invoke("show", "nope", "-w", "test-ws")
    assert missing.exit_code == 1
    assert missing.output.startswith("error: environment 'nope' is not registered in workspace 'test-ws'")
    assert len(missing.output.strip().splitlines()) == 1
    unreadable = invoke("build", "--file", str(tmp_path / "missing.txt"))
    assert unreadable.exit_code == 1 and unreadable.output.startswith("error: cannot read pip requirements file")
    assert invoke("build").exit_code == 2 and "either NAME" in invoke("build").output
    assert invoke("build", "x", "--file", "y.txt").exit_code == 2


@pytest.mark.slow
def test_build_then_prune(ws: runlab.Workspace, tmp_path: Path) -> None:
    Environment("kept-env").register(ws)
    built = invoke("build", "kept-env", "-w", "test-ws")
    assert built.exit_code == 0, built.output
    fields = dict(re.findall(r"^ *(hash|seconds|state|python|log): (.*)$", built.output, re.MULTILINE))
    assert fields["state"] == "built" and Path(fields["python"]).is_file() and Path(fields["log"]).is_file()
    kept_key = fields["hash"][:16]
    assert invoke("build", "kept-env", "-w", "test-ws").output.count("state: cached") == 1
    assert "yes" in next(line for line in invoke("list", "-w", "test-ws").output.splitlines() if "kept-env" in line)

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six\n", encoding="utf-8")
    from_file = invoke("build", "--file", str(requirements))
    assert from_file.exit_code == 0, from_file.output
    assert re.search(r"installing \d+ packages \(1 from the definition", from_file.output)
    assert sorted(c.name for c in list_cached_environments()) == ["kept-env", "requirements"]

    declined = invoke("prune", "-w", "test-ws", input="n\n")
    assert declined.exit_code == 1 and "remove these 1 environment(s)" in declined.output
    assert "nothing removed" in declined.output and "error" not in declined.output
    assert len(list_cached_environments()) == 2
    pruned = invoke("prune", "--yes", "-w", "test-ws")
    assert pruned.exit_code == 0, pruned.output
    assert "removed 1 environment(s)" in pruned.output and "freed" in pruned.output
    assert [c.key for c in list_cached_environments()] == [kept_key]
    assert "nothing to remove" in invoke("prune", "--yes", "-w", "test-ws").output
    assert "removed 1 environment(s)" in invoke("prune", "--all", "--yes").output
    assert list_cached_environments() == []
