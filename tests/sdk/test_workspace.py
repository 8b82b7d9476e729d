"""Workspaces and config.json, as the tutorial's 01 and 02 scripts use them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import runlab
from runlab import (
    ConfigError,
    InvalidNameError,
    WorkspaceExistsError,
    WorkspaceNotFoundError,
)


def test_create_get_list(runlab_home: Path) -> None:
    ws = runlab.Workspace.create("my-ws")
    assert ws.path == runlab_home / "workspaces" / "my-ws"
    assert (ws.path / "workspace.db").is_file()
    assert runlab.Workspace.get("my-ws") == ws
    assert list(runlab.Workspace.list()) == ["my-ws"]


def test_create_with_azure_arguments_and_exist_ok(tmp_path: Path) -> None:
    ws = runlab.Workspace.create(
        name="tutorial-ws", subscription_id="<sub>", resource_group="rg", create_resource_group=True,
        location="westeurope", path=tmp_path / "w",
    )
    with pytest.raises(WorkspaceExistsError, match="exist_ok=True"):
        runlab.Workspace.create("tutorial-ws")
    assert runlab.Workspace.create("tutorial-ws", exist_ok=True) == ws


@pytest.mark.parametrize("name", ["ab", "-abc", "a" * 34, "has space", "", "dot.name"])
def test_workspace_name_rules(name: str) -> None:
    with pytest.raises(InvalidNameError, match="3 to 33"):
        runlab.Workspace.create(name)


def test_get_unknown_names_known_ones() -> None:
    runlab.Workspace.create("known-one")
    with pytest.raises(WorkspaceNotFoundError, match="known-one"):
        runlab.Workspace.get("nope")


def test_folder_that_is_not_a_workspace(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(WorkspaceNotFoundError, match="not a runlab workspace"):
        runlab.Workspace.from_path(tmp_path / "plain")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(runlab.UserError, match="not empty"):
        runlab.Workspace.create("full-one", path=tmp_path / "full")


def test_malformed_workspace_marker(ws: runlab.Workspace) -> None:
    (ws.path / "workspace.json").write_text("{broken")
    with pytest.raises(ConfigError, match="malformed"):
        runlab.Workspace.from_path(ws.path)


def test_write_config_does_not_nest_azureml(ws: runlab.Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "tutorial"
    project.mkdir()
    monkeypatch.chdir(project)
    written = ws.write_config(path=".azureml")
    assert written.resolve() == project / ".azureml" / "config.json"
    assert not (project / ".azureml" / ".azureml").exists()
    assert ws.write_config().resolve() == project / ".azureml" / "config.json"
    config = json.loads(written.read_text())
    assert config["workspace_name"] == ws.name
    assert runlab.Workspace.from_config(written) == ws  # a folder's path, or a server's URL: the same workspace again


@pytest.mark.parametrize("folder", [".runlab", ".azureml", "aml_config", "."])
def test_from_config_searches_known_folders_walking_up(ws: runlab.Workspace, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, folder: str) -> None:
    project = tmp_path / "proj"
    (project / folder).mkdir(parents=True, exist_ok=True)
    (project / folder / "config.json").write_text(ws.write_config(tmp_path / "written").read_text())
    deep = project / "src" / "deeper"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert runlab.Workspace.from_config() == ws
    assert runlab.Workspace.from_config(path=project) == ws


@pytest.mark.embedded_only(reason="a config with only workspace_name is looked up in this machine's registry of "
                            "workspace folders; a server's workspace is found by the config's \"server\"")
def test_from_config_by_registered_name_only(ws: runlab.Workspace, tmp_path: Path) -> None:
    (tmp_path / "p" / ".azureml").mkdir(parents=True)
    (tmp_path / "p" / ".azureml" / "config.json").write_text(
        json.dumps({"subscription_id": "x", "resource_group": "y", "workspace_name": "test-ws"})
    )
    assert runlab.Workspace.from_config(tmp_path / "p") == ws


def test_from_config_failure_names_every_folder_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    start = tmp_path / "a" / "b"
    start.mkdir(parents=True)
    monkeypatch.chdir(start)
    with pytest.raises(ConfigError) as info:
        runlab.Workspace.from_config()
    message = str(info.value)
    for folder in (start / ".runlab", start / ".azureml", start / "aml_config", start, tmp_path / "a" / ".azureml"):
        assert str(folder) in message
    assert "write_config" in message


@pytest.mark.parametrize(
    ("content", "match"),
    [("{not json", "not valid JSON"), ("[1, 2]", "JSON object"), ("{}", "neither 'path' nor 'workspace_name'"),
     ('{"workspace_name": "ghost-ws"}', "not registered")],
)
def test_malformed_config(tmp_path: Path, content: str, match: str) -> None:
    (tmp_path / ".azureml").mkdir()
    (tmp_path / ".azureml" / "config.json").write_text(content)
    with pytest.raises((ConfigError, WorkspaceNotFoundError), match=match):
        runlab.Workspace.from_config(tmp_path)


def test_experiments_and_names(ws: runlab.Workspace) -> None:
    runlab.Experiment(ws, "day1-experiment-hello")
    runlab.Experiment(workspace=ws, name="day1-experiment-hello")  # get, not create twice
    assert list(ws.experiments) == ["day1-experiment-hello"]
    assert [e.name for e in runlab.Experiment.list(ws)] == ["day1-experiment-hello"]
    with pytest.raises(InvalidNameError, match="experiment name"):
        runlab.Experiment(ws, "bad name!")


def test_runlab_home_is_where_workspaces_live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNLAB_HOME", str(tmp_path / "elsewhere"))
    ws = runlab.Workspace.create("homed")
    assert ws.path == tmp_path / "elsewhere" / "workspaces" / "homed"
    assert os.path.isfile(tmp_path / "elsewhere" / "workspaces.json")
