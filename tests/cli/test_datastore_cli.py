"""``runlab datastore``: help everywhere, the commands end to end, one clear line for errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import runlab
from datastore_fixtures import free_port
from runlab.cli.main import cli

COMMANDS = [["datastore"], ["datastore", "list"], ["datastore", "show"], ["datastore", "upload"],
            ["datastore", "download"], ["datastore", "register"], ["datastore", "register", "local"],
            ["datastore", "register", "s3"], ["datastore", "set-default"]]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_datastore_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and len(result.output.splitlines()) > 3


def test_register_upload_list_show_download_and_set_default(ws: runlab.Workspace, tmp_path: Path) -> None:
    runner = CliRunner()
    w = ["-w", str(ws.path)]
    src = tmp_path / "data"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"alpha")
    (src / "sub" / "b.txt").write_bytes(b"beta")

    registered = runner.invoke(cli, ["datastore", "register", "local", "mine", str(tmp_path / "mine"), *w])
    assert registered.exit_code == 0, registered.output
    assert "mine" in registered.output and str(tmp_path / "mine") in registered.output

    uploaded = runner.invoke(cli, ["datastore", "upload", "mine", str(src), "--target-path", "datasets/x", *w])
    assert uploaded.exit_code == 0, uploaded.output
    assert "Uploaded 2 files, 9 B in" in uploaded.output
    assert (tmp_path / "mine" / "datasets" / "x" / "sub" / "b.txt").read_bytes() == b"beta"
    again = runner.invoke(cli, ["datastore", "upload", "mine", str(src), "-t", "datasets/x", *w])
    assert "skipped 2 already there" in again.output
    forced = runner.invoke(cli, ["datastore", "upload", "mine", str(src), "-t", "datasets/x", "--overwrite", *w])
    assert "Uploaded 2 files" in forced.output and "skipped" not in forced.output
    single = runner.invoke(cli, ["datastore", "upload", "mine", str(src / "a.txt"), *w])
    assert single.exit_code == 0 and (tmp_path / "mine" / "a.txt").is_file()

    listed = runner.invoke(cli, ["datastore", "list", *w])
    assert listed.exit_code == 0 and "mine" in listed.output and "workspaceblobstore" in listed.output
    assert "AzureBlob" in listed.output and "Local" in listed.output
    shown = runner.invoke(cli, ["datastore", "show", "mine", *w])
    assert shown.exit_code == 0 and "3 (14 B)" in shown.output and "Local" in shown.output

    dest = tmp_path / "back"
    downloaded = runner.invoke(cli, ["datastore", "download", "mine", str(dest), "--prefix", "datasets/", *w])
    assert downloaded.exit_code == 0, downloaded.output
    assert "Downloaded 2 files" in downloaded.output
    assert (dest / "datasets" / "x" / "a.txt").read_bytes() == b"alpha" and not (dest / "a.txt").exists()

    assert runner.invoke(cli, ["datastore", "set-default", "mine", *w]).exit_code == 0
    assert ws.get_default_datastore().name == "mine"
    rows = runner.invoke(cli, ["datastore", "list", *w]).output.splitlines()
    assert "*" in next(r for r in rows if " mine " in r).split("mine")[0]  # the default is marked
    assert "*" not in next(r for r in rows if "workspaceblobstore" in r).split("workspaceblobstore")[0]


def test_errors_are_one_clear_line(ws: runlab.Workspace, tmp_path: Path, aws_env: dict[str, str]) -> None:
    runner = CliRunner()
    w = ["-w", str(ws.path)]
    unknown = runner.invoke(cli, ["datastore", "show", "nope", *w])
    assert unknown.exit_code == 1
    assert unknown.output.startswith("error: no datastore named 'nope'") and "workspaceblobstore" in unknown.output
    assert "Traceback" not in unknown.output

    (tmp_path / "src").mkdir()
    bad_target = runner.invoke(cli, ["datastore", "upload", "workspaceblobstore", str(tmp_path / "src"),
                                     "--target-path", "../../etc", *w])
    assert bad_target.exit_code == 1 and "error: target_path '../../etc' must be relative" in bad_target.output

    endpoint = f"http://127.0.0.1:{free_port()}"
    unreachable = runner.invoke(cli, ["datastore", "register", "s3", "remote", "--bucket", "my-bucket",
                                      "--endpoint-url", endpoint, *w])
    assert unreachable.exit_code == 1 and "Traceback" not in unreachable.output
    assert "cannot register datastore 'remote'" in unreachable.output and endpoint in unreachable.output
    assert len(unreachable.output.strip().splitlines()) == 1
