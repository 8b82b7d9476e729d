"""``runlab quickstart``: the tutorial's files, one copy of them, written into a project folder.
(The end-to-end run is tests/test_tutorial.py.)"""

from __future__ import annotations

import sys
from pathlib import Path

from click.testing import CliRunner

from runlab.cli.main import cli
from runlab.cli.quickstart import tutorial_source, write_project

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "tutorial"


def test_help_names_the_options() -> None:
    result = CliRunner().invoke(cli, ["quickstart", "--help"])
    assert result.exit_code == 0
    for option in ("--images", "--epochs", "--open", "--port", "runlab-tutorial"):
        assert option in result.output


def test_port_is_refused_without_open(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["quickstart", str(tmp_path / "project"), "--port", "9999"])
    assert result.exit_code == 2
    assert "--port is the port of the studio that --open starts: add --open" in result.output
    assert not (tmp_path / "project").exists()  # refused before anything is written


def test_there_is_one_copy_of_the_tutorial_and_the_wheel_carries_it() -> None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"] == {
        "examples/tutorial": "runlab/tutorial"}
    assert not (REPO / "src" / "runlab" / "tutorial").exists()
    assert tutorial_source() == EXAMPLE


def test_write_project_copies_the_tutorial_and_keeps_the_users_edits(tmp_path: Path) -> None:
    project = tmp_path / "runlab-tutorial"
    written, kept = write_project(project)
    expected = {"01-create-workspace.py", "02-create-compute.py", "03-run-hello.py", "04-run-pytorch.py",
                "05-upload-data.py", "06-run-pytorch-data.py", "make_cifar10.py", "src/train.py", "src/model.py",
                "src/hello.py", ".azureml/pytorch-env.yml"}
    files = {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()}
    assert expected <= files and kept == 0 and written == len(files)
    assert not any(name.startswith("data/") or name.endswith(("config.json", ".pyc")) for name in files)
    assert (project / "src" / "train.py").read_bytes() == (EXAMPLE / "src" / "train.py").read_bytes()
    (project / "src" / "train.py").write_text("# mine\n")
    assert write_project(project) == (0, written)
    assert (project / "src" / "train.py").read_text() == "# mine\n"
