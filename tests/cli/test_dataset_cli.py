"""``runlab dataset``: create (and register), list, show, download; help everywhere, one-line errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner

import runlab
from runlab.cli.main import cli

COMMANDS = [["dataset"], ["dataset", "create"], ["dataset", "list"], ["dataset", "show"], ["dataset", "download"]]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_dataset_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output and len(result.output.splitlines()) > 3


@pytest.fixture
def ws(tmp_path: Path) -> runlab.Workspace:
    ws = runlab.Workspace.create("cli-data", path=tmp_path / "ws")
    data = tmp_path / "upload"
    (data / "batches").mkdir(parents=True)
    for n in range(3):
        (data / "batches" / f"data_batch_{n}").write_bytes(bytes([n]) * 1000)
    (data / "weather.csv").write_text("city,temp\noslo,3.5\nrome,17.0\n")
    ws.get_default_datastore().upload(str(data), target_path="datasets/cifar10", show_progress=False)
    return ws


def test_create_register_list_show_download(ws: runlab.Workspace, tmp_path: Path) -> None:
    runner = CliRunner()
    w = ["-w", str(ws.path)]
    dry = runner.invoke(cli, ["dataset", "create", "cifar", "--files", "datasets/cifar10/batches",
                              "--datastore", "workspaceblobstore", *w])
    assert dry.exit_code == 0, dry.output
    assert "3 files, 3.0 KB" in dry.output and "data_batch_0" in dry.output and "not registered" in dry.output
    assert ws.datasets == {}
    made = runner.invoke(cli, ["dataset", "create", "cifar", "--files", "datasets/cifar10/batches",
                               "--datastore", "workspaceblobstore", "--register", "--tag", "split=train",
                               "--description", "three batches", *w])
    assert made.exit_code == 0, made.output
    assert "dataset cifar version 1" in made.output and "3 files, 3.0 KB" in made.output
    table = runner.invoke(cli, ["dataset", "create", "weather", "--delimited", "datasets/cifar10/weather.csv",
                                "--datastore", "workspaceblobstore", "--register", *w])
    assert table.exit_code == 0, table.output
    listed = runner.invoke(cli, ["dataset", "list", *w])
    assert listed.exit_code == 0 and "cifar" in listed.output and "weather" in listed.output
    assert "three batches" in listed.output and "tabular" in listed.output
    shown = runner.invoke(cli, ["dataset", "show", "cifar", "--version", "1", *w])
    assert shown.exit_code == 0, shown.output
    digest = hashlib.sha256(bytes([0]) * 1000).hexdigest()
    assert digest[:16] in shown.output and "split=train" in shown.output and '"kind": "file"' in shown.output
    assert "versions: 1" in shown.output and "3 files, 3.0 KB" in shown.output
    assert "used by: no run yet" in shown.output
    from runlab.core.assets import RunInputRecord

    run = runlab.Experiment(ws, "consumer").start_logging()
    run.complete()
    cifar = ws.datasets["cifar"]
    ws.folder.store.record_run_inputs(run.id, [RunInputRecord(run.id, "input", "file", "mount", cifar.id, "cifar", 1)])
    used = runner.invoke(cli, ["dataset", "show", "cifar", *w])
    assert f"used by: 1 run: {run.id} (input, mount)" in used.output
    down = runner.invoke(cli, ["dataset", "download", "cifar", str(tmp_path / "dl"), *w])
    assert down.exit_code == 0, down.output
    assert "downloaded 3 files, 3.0 KB of dataset cifar version 1" in down.output
    assert (tmp_path / "dl" / "data_batch_2").read_bytes() == bytes([2]) * 1000
    again = runner.invoke(cli, ["dataset", "download", "cifar", str(tmp_path / "dl"), *w])
    assert again.exit_code == 1 and "already exist" in again.output
    assert runner.invoke(cli, ["dataset", "download", "cifar", str(tmp_path / "dl"), "--overwrite", *w]).exit_code == 0


def test_local_paths_and_new_versions(ws: runlab.Workspace, tmp_path: Path) -> None:
    runner = CliRunner()
    w = ["-w", str(ws.path)]
    csv = tmp_path / "local.csv"
    csv.write_text("a;b\n1;2\n")
    made = runner.invoke(cli, ["dataset", "create", "loc", "--delimited", str(csv), "--separator", ";", "--register", *w])
    assert made.exit_code == 0, made.output
    csv.write_text("a;b\n1;2\n3;4\n")
    conflict = runner.invoke(cli, ["dataset", "create", "loc", "--delimited", str(csv), "--separator", ";",
                                   "--register", *w])
    assert conflict.exit_code == 1 and "error:" in conflict.output and "create_new_version=True" in conflict.output
    assert "Traceback" not in conflict.output
    newer = runner.invoke(cli, ["dataset", "create", "loc", "--delimited", str(csv), "--separator", ";",
                                "--register", "--new-version", *w])
    assert newer.exit_code == 0 and "version 2" in newer.output


@pytest.mark.parametrize("args, message", [
    (["dataset", "show", "nope"], "no dataset named 'nope'"),
    (["dataset", "show", "../x"], "invalid dataset name"),
    (["dataset", "create", "x", "--files", "nothing/**/*.png", "--datastore", "workspaceblobstore"], "no file matches"),
    (["dataset", "create", "x", "--files", "../up", "--datastore", "workspaceblobstore"], "leads out of its datastore"),
    (["dataset", "create", "x", "--files", "a", "--datastore", "missing"], "no datastore named 'missing'"),
    (["dataset", "create", "x", "--files", "a", "--tag", "novalue", "--register"], "KEY=VALUE"),
    (["dataset", "download", "nope", "dest"], "no dataset named 'nope'"),
])
def test_errors_are_one_clear_line(ws: runlab.Workspace, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, [*args, "-w", str(ws.path)])
    assert result.exit_code == 1 and message in result.output, result.output
    assert result.output.startswith("error: ") and "Traceback" not in result.output
