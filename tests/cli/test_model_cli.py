"""``runlab model``: register (run files or local), list, show, download, delete; help everywhere, one-line errors."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from click.testing import CliRunner

import runlab
from runlab.cli.main import cli

COMMANDS = [["model"], ["model", "register"], ["model", "list"], ["model", "show"], ["model", "download"],
            ["model", "delete"]]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_model_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output and len(result.output.splitlines()) > 3


def test_register_list_show_download_delete(ws: runlab.Workspace, tmp_path: Path) -> None:
    runner = CliRunner()
    w = ["-w", str(ws.path)]
    run = runlab.Experiment(ws, "train").start_logging()
    run.upload_file("outputs/model.pt", io.BytesIO(b"weights"))
    run.complete()
    empty = runner.invoke(cli, ["model", "list", *w])
    assert empty.exit_code == 0 and "no models registered yet" in empty.output
    made = runner.invoke(cli, ["model", "register", "net", "outputs/model.pt", "--run", run.id, "--tag", "acc=0.9", *w])
    assert made.exit_code == 0, made.output
    assert "model net version 1 (net:1): 1 file, 7 B" in made.output
    local = tmp_path / "weights"
    local.mkdir()
    (local / "a.bin").write_bytes(b"aaa")
    assert runner.invoke(cli, ["model", "register", "net", str(local), "--description", "local", *w]).exit_code == 0
    listed = runner.invoke(cli, ["model", "list", *w])
    assert listed.exit_code == 0 and run.id in listed.output and "acc=0.9" in listed.output
    assert "no registered model version matches" in runner.invoke(cli, ["model", "list", "--tag", "x", *w]).output
    shown = runner.invoke(cli, ["model", "show", "net", "--version", "1", *w])
    assert shown.exit_code == 0 and "versions: 1, 2" in shown.output and "model.pt" in shown.output
    assert hashlib.sha256(b"weights").hexdigest() in shown.output
    got = runner.invoke(cli, ["model", "download", "net", str(tmp_path / "dl"), "--version", "1", *w])
    assert got.exit_code == 0, got.output
    assert (tmp_path / "dl" / "model.pt").read_bytes() == b"weights"
    again = runner.invoke(cli, ["model", "download", "net", str(tmp_path / "dl"), "--version", "1", *w])
    assert again.exit_code == 1 and "already exists" in again.output and "Traceback" not in again.output
    assert runner.invoke(cli, ["model", "download", "net", str(tmp_path / "dl"), "--version", "1", "--exist-ok",
                               *w]).exit_code == 0
    latest = runner.invoke(cli, ["model", "download", "net", str(tmp_path / "dl2"), *w])
    assert latest.exit_code == 0 and (tmp_path / "dl2" / "weights" / "a.bin").read_bytes() == b"aaa"
    assert runner.invoke(cli, ["model", "delete", "net", "--version", "1", *w]).exit_code == 0
    missing = runner.invoke(cli, ["model", "delete", "net", "--version", "1", *w])
    assert missing.exit_code == 1 and "has no version 1: its versions are 2" in missing.output


def test_errors_are_one_line(ws: runlab.Workspace, tmp_path: Path) -> None:
    runner = CliRunner()
    w = ["-w", str(ws.path)]
    for args, expected in ((["register", "my net", str(tmp_path)], "invalid model name 'my net'"),
                           (["register", "net", str(tmp_path / "nope")], "cannot be read"),
                           (["register", "net", "x", "--tag", "novalue"], "--tag takes KEY=VALUE"),
                           (["show", "net"], "no model named 'net'")):
        result = runner.invoke(cli, ["model", *args, *w])
        assert result.exit_code == 1 and expected in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
