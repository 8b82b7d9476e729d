"""Hostile arguments to the CLI (`runlab runs list/show`, `runlab metrics`, `runlab token create
--expires`, `runlab server --store/--state/--artifacts`): one clear error line each, never a traceback,
never a token made that the command then fails to show."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import runlab
from runlab.cli.main import cli


def _one_error_line(result: object, *words: str) -> str:
    output: str = getattr(result, "output")
    assert getattr(result, "exit_code") != 0, output
    assert "Traceback" not in output and "sqlalche.me" not in output and "[red]" not in output, output
    lines = [line for line in output.strip().splitlines() if line.strip()]
    error = [line for line in lines if line.lower().startswith("error")]
    assert len(error) == 1, output
    for word in words:
        assert word in output, (word, output)
    return error[0]


@pytest.mark.parametrize("expires, words", [
    ("0d", ["longer than 0"]), ("-1d", ["not a duration"]), ("abc", ["not a duration"]), ("1x", ["not a duration"]),
    ("99999999d", ["more than 100 years"]), ("1e9w", ["not a duration"]), ("", ["give a duration"]),
    ("36526d", ["more than 100 years"]),
])
def test_token_expires_with_odd_values(tmp_path: Path, expires: str, words: list[str]) -> None:
    store = f"sqlite:///{tmp_path / 's.db'}"
    result = CliRunner().invoke(cli, ["token", "create", "--store", store, "--name", "ada", "--expires", expires])
    _one_error_line(result, *words)
    listed = CliRunner().invoke(cli, ["token", "list", "--store", store])
    assert "ada" not in listed.output, listed.output  # no token was made (and then not shown)


def test_token_expires_at_the_limit_works(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 's.db'}"
    result = CliRunner().invoke(cli, ["token", "create", "--store", store, "--name", "ada", "--expires", "36525d"])
    assert result.exit_code == 0, result.output
    assert "rl_" in result.output


@pytest.mark.parametrize("limit", ["-1", "0", "99999999999999999999", "abc"])
def test_runs_list_limit(tmp_path: Path, limit: str) -> None:
    runlab.Workspace.create("cli-attacks", path=tmp_path / "ws")
    result = CliRunner().invoke(cli, ["runs", "list", "-w", "cli-attacks", "--limit", limit])
    assert result.exit_code == 2 and "--limit" in result.output and "Traceback" not in result.output, result.output


@pytest.mark.parametrize("args, words", [
    (["runs", "show", "../../etc"], ["invalid run id"]), (["runs", "show", "a\x01b"], ["invalid run id"]),
    (["runs", "show", ""], ["invalid run id"]), (["runs", "show", "nope"], ["does not exist"]),
    (["metrics", "../x"], ["does not exist"]), (["metrics", "nope", "loss"], ["does not exist"]),
    (["runs", "list", "--status", "bogus"], ["unknown run status"]),
])
def test_runs_show_and_metrics_with_hostile_ids(tmp_path: Path, args: list[str], words: list[str]) -> None:
    runlab.Workspace.create("cli-attacks", path=tmp_path / "ws")
    _one_error_line(CliRunner().invoke(cli, [*args, "-w", "cli-attacks"]), *words)


def _server(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RUNLAB_HOME": str(tmp_path / "home")}
    env.pop("RUNLAB_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "runlab.cli", "server", "--port", "0", *args], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("case", ["missing-folder", "refused-postgres", "state-unwritable", "artifacts-unwritable"])
def test_server_with_a_bad_store_or_state_says_so_in_one_line(tmp_path: Path, case: str) -> None:
    ok_store = f"sqlite:///{tmp_path / 'store.db'}"
    args = {
        "missing-folder": ["--store", f"sqlite:///{tmp_path / 'no' / 'such' / 'x.db'}", "--artifacts", str(tmp_path / "a")],
        "refused-postgres": ["--store", "postgresql+psycopg://u:secret@127.0.0.1:1/db", "--artifacts", str(tmp_path / "a")],
        "state-unwritable": ["--store", ok_store, "--artifacts", "s3://bucket/x", "--state", "/proc/runlab-state"],
        "artifacts-unwritable": ["--store", ok_store, "--artifacts", "/proc/runlab-files"],
    }[case]
    done = _server(tmp_path, *args)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "Traceback" not in out and "sqlalche.me" not in out and "[red]" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out
    assert "secret" not in out  # a password in the URL is never printed
    expected = {"missing-folder": "does its folder exist", "refused-postgres": "is the database server running",
                "state-unwritable": "/proc/runlab-state", "artifacts-unwritable": "/proc/runlab-files"}[case]
    assert expected in errors[0], out
