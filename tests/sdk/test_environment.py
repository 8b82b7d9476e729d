"""The Environment facade: definitions, registration and versions, and builds into the machine's cache."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import runlab
from runlab.core.errors import InvalidNameError, NotFoundError, UserError
from runlab.execution.conda import CondaEnvironmentNotFoundError, CondaSpecError
from runlab.execution.environments import EnvironmentDefinition
from runlab.execution.pipconfig import RequirementsFileError
from runlab.sdk.environment import (
    CondaDependencies,
    Environment,
    EnvironmentBuild,
    environment_cache_root,
    list_cached_environments,
    prune_cached_environments,
)
from tests_support import TUTORIAL_SPEC

CURRENT = ".".join(map(str, sys.version_info[:3]))



@pytest.fixture
def tutorial_spec(tmp_path: Path) -> Path:
    path = tmp_path / ".azureml" / "pytorch-env.yml"
    path.parent.mkdir()
    path.write_text(TUTORIAL_SPEC, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------ definition


def test_a_new_environment_is_empty_and_uses_the_current_python() -> None:
    env = Environment("myenv")
    assert (env.name, env.version, env.environment_variables) == ("myenv", None, {})
    assert env.python.user_managed_dependencies is False and env.python.interpreter_path is None
    assert env.python.conda_dependencies.get_pip_packages() == [] and env.docker.enabled is False
    assert env.definition() == EnvironmentDefinition("myenv")
    assert env.definition().normalized().python_resolved == CURRENT
    with pytest.raises(InvalidNameError, match="pytorch-env"):
        Environment("bad name!")


def test_changes_to_attributes_are_in_the_definition() -> None:
    env = Environment("myenv")
    env.environment_variables["OMP_NUM_THREADS"] = "1"
    env.python.conda_dependencies = CondaDependencies.create(
        pip_packages=["six", "NumPy >= 1.24"], conda_packages=["pytorch", "cudatoolkit=11.3"], python_version="3.11")
    definition = env.definition()
    assert definition.python_version == "3.11"
    assert definition.pip_requirements == ("torch", "six", "NumPy >= 1.24")
    assert definition.conda_packages_original == ("python=3.11", "pytorch", "cudatoolkit=11.3")
    assert definition.environment_variables == {"OMP_NUM_THREADS": "1"}
    assert any("cudatoolkit" in w for w in definition.warnings)
    env.python.conda_dependencies.add_pip_package("six==1.16")  # replaces six in place
    assert env.definition().pip_requirements == ("torch", "six==1.16", "NumPy >= 1.24")
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = sys.executable
    assert env.definition().user_managed and env.definition().interpreter_path == sys.executable
    env.python.conda_dependencies.add_conda_package("ffmpeg")
    with pytest.raises(CondaSpecError, match="ffmpeg"):
        env.definition()


def test_conda_dependencies(tmp_path: Path) -> None:
    deps = CondaDependencies.create(pip_packages=["six"], conda_packages=["numpy=1.24"], python_version="3.11",
                                    pip_indexurl="https://example.org/simple")
    assert deps.get_python_version() == "3.11"
    assert (deps.conda_packages, deps.pip_packages) == (["numpy=1.24"], ["six"])
    assert deps.pip_options == ["--extra-index-url https://example.org/simple"]
    deps.add_conda_package("numpy=1.26")
    deps.add_channel("conda-forge")
    deps.set_python_version(">=3.10")
    assert deps.conda_packages == ["numpy=1.26"] and deps.get_python_version() == ">=3.10"
    saved = CondaDependencies(deps.save(tmp_path / "env.yml"))
    assert saved == deps and saved.conda_channels == ["conda-forge"]
    deps.remove_conda_package("numpy")
    deps.remove_pip_package("six")
    assert deps.conda_packages == [] and deps.pip_packages == []
    with pytest.raises(UserError, match="not understood"):
        deps.set_python_version("three")


def test_conda_specification_of_the_tutorial(tutorial_spec: Path, ws: runlab.Workspace) -> None:
    env = Environment.from_conda_specification(name="pytorch-env", file_path=str(tutorial_spec))
    definition = env.definition()
    assert definition.pip_requirements[:2] == ("torch", "torchvision")
    assert definition.channels == ("defaults", "pytorch")
    assert definition.content_hash() == EnvironmentDefinition.from_conda_file(tutorial_spec).content_hash()
    normalized = definition.normalized()
    assert "azureml-sdk" not in normalized.pip_requirements  # runlab is the SDK
    assert any("python 3.6.2 requested" in w and CURRENT in w for w in normalized.warnings)
    conda = env.python.conda_dependencies
    assert conda.get_python_version() == "3.6.2" and conda.conda_packages == ["pytorch", "torchvision", "pip"]
    registered = env.register(ws)
    again = Environment.get(ws, "pytorch-env")
    assert again == env == registered and again.content_hash() == env.content_hash()
    assert again.python.conda_dependencies.conda_packages == ["pytorch", "torchvision", "pip"]
    again.python.conda_dependencies.add_pip_package("six")
    assert again.definition().pip_requirements == ("torch", "torchvision", "six")


def test_file_errors_come_from_the_execution_layer(tmp_path: Path) -> None:
    with pytest.raises(CondaSpecError, match="cannot read conda spec"):
        Environment.from_conda_specification("e", tmp_path / "missing.yml")
    refused = tmp_path / "refused.yml"
    refused.write_text("dependencies:\n  - ffmpeg\n  - r-base\n", encoding="utf-8")
    with pytest.raises(CondaSpecError, match="(?s)ffmpeg.*r-base"):
        Environment.from_conda_specification("e", refused)
    with pytest.raises(RequirementsFileError, match="cannot read pip requirements file"):
        Environment.from_pip_requirements("e", tmp_path / "missing.txt")
    with pytest.raises(InvalidNameError):
        Environment.from_pip_requirements("", tmp_path / "missing.txt")


def test_pip_requirements_and_existing_conda_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "base.txt").write_text("six\n", encoding="utf-8")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# comment\n-r base.txt\nnumpy>=1.24\n", encoding="utf-8")
    env = Environment.from_pip_requirements("pip-env", requirements, pip_version="23.0")
    assert env.definition().pip_requirements == ("six", "numpy>=1.24")
    assert env.definition() == EnvironmentDefinition.from_requirements_file(requirements, name="pip-env")

    python = tmp_path / "conda" / "envs" / "myenv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.touch()
    monkeypatch.setenv("CONDA_ENVS_PATH", str(tmp_path / "conda" / "envs"))
    monkeypatch.delenv("CONDA_EXE", raising=False)
    monkeypatch.delenv("CONDA_PREFIX", raising=False)
    existing = Environment.from_existing_conda_environment("mine", "myenv")
    assert existing.python.user_managed_dependencies and existing.python.interpreter_path == str(python)
    with pytest.raises(CondaEnvironmentNotFoundError, match="runlab-no-such-env"):
        Environment.from_existing_conda_environment("mine", "runlab-no-such-env")


def test_dict_round_trip_equality_and_repr() -> None:
    env = Environment("e")
    env.python.conda_dependencies.add_pip_package("six")
    env.environment_variables["K"] = "v"
    data = env.to_dict()
    assert data["version"] is None and data["pip_requirements"] == ["six"]
    assert Environment.from_dict(data) == env
    assert Environment.from_dict(data).content_hash() == env.content_hash()
    renamed = Environment.from_dict({**data, "name": "other"})
    assert renamed != env and renamed.content_hash() == env.content_hash()
    assert repr(env) == ("Environment(name='e', version=None, python=None, conda_packages=[], "
                         "pip_packages=['six'], environment_variables={'K': 'v'})")


# ---------------------------------------------------------------------------------------- registry


def test_register_assigns_versions(ws: runlab.Workspace) -> None:
    env = Environment("train-env")
    env.python.conda_dependencies.add_pip_package("six")
    first = env.register(ws)
    assert first.version == "1" and env.version is None and first == env
    assert env.register(ws).version == "1"  # same definition, same version
    env.python.conda_dependencies.add_pip_package("numpy")
    assert env.register(ws).version == "2"
    assert Environment.get(ws, "train-env").version == "2"
    assert Environment.get(ws, "train-env", version="1").definition().pip_requirements == ("six",)
    assert Environment.get(ws, "train-env", version=2).definition().pip_requirements == ("six", "numpy")
    Environment("other-env").register(ws)
    listed = Environment.list(ws)
    assert sorted(listed) == ["other-env", "train-env"] and listed["train-env"].version == "2"


def test_changed_environment_variables_make_a_new_version(ws: runlab.Workspace) -> None:
    env = Environment("vars-env")
    assert env.register(ws).version == "1"
    env.environment_variables["K"] = "v"
    assert env.register(ws).version == "2"
    assert Environment.get(ws, "vars-env").environment_variables == {"K": "v"}


def test_missing_environments_say_what_is_registered(ws: runlab.Workspace) -> None:
    with pytest.raises(NotFoundError,
                       match=rf"'nope' is not registered in workspace '{re.escape(ws.name)}' \(registered: none"):
        Environment.get(ws, "nope")
    Environment("there").register(ws)
    with pytest.raises(NotFoundError, match=r"registered: there\).*env.register\(ws\)"):
        Environment.get(ws, "nope")
    with pytest.raises(NotFoundError, match=r"no version 7 .*\(its versions: 1\)"):
        Environment.get(ws, "there", version="7")
    with pytest.raises(UserError, match="not a version number"):
        Environment.get(ws, "there", version="latest")


def test_clone_is_a_deep_unregistered_copy(ws: runlab.Workspace) -> None:
    env = Environment("base-env")
    env.python.conda_dependencies.add_pip_package("six")
    env.environment_variables["K"] = "v"
    registered = env.register(ws)
    twin = registered.clone("twin-env")
    assert (twin.name, twin.version) == ("twin-env", None)
    twin.python.conda_dependencies.add_pip_package("numpy")
    twin.environment_variables["K"] = "changed"
    assert registered.definition().pip_requirements == ("six",) and registered.environment_variables == {"K": "v"}
    assert twin.definition().pip_requirements == ("six", "numpy")
    with pytest.raises(InvalidNameError):
        env.clone("no spaces allowed")


# ------------------------------------------------------------------------------------------- build


def test_user_managed_build_returns_at_once(ws: runlab.Workspace, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    env = Environment("mine")
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = sys.executable
    env.python.conda_dependencies.add_pip_package("this-package-does-not-exist-runlab")

    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError("a user-managed environment starts no process")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    built = env.build_local(ws)
    assert isinstance(built, EnvironmentBuild) and built.user_managed and built.cached
    assert built.python_path == Path(sys.executable) and built.env_dir is None
    assert built.wait_for_completion(show_output=True) is built and built.status == "Succeeded"
    assert f"runs use {sys.executable} as it is" in capsys.readouterr().out
    assert not environment_cache_root().exists()
    assert env.cache_status().cached and env.get_build_log(ws) == ""


def test_cache_root_is_per_machine(runlab_home: Path) -> None:
    assert environment_cache_root() == runlab_home / "envs"
    assert list_cached_environments() == []
    with pytest.raises(NotFoundError, match="has not been built on this machine"):
        Environment("e").get_build_log()


@pytest.mark.slow
def test_build_local_builds_once_then_finds_it(ws: runlab.Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    env = Environment("empty-env")
    built = env.build_local(ws)
    out = capsys.readouterr().out
    assert not built.cached and built.env_dir == environment_cache_root() / built.hash[:16]
    assert f"build log: {built.log_path}" in out and "linking runlab into the environment" in out
    assert built.hash.startswith(out.split("(hash ")[1][:12])
    python_says = subprocess.run([str(built.python_path), "-c", "import runlab, sys; print(sys.version_info[:2])"],
                                 capture_output=True, text=True, check=True, cwd="/").stdout
    assert python_says.strip() == str(sys.version_info[:2])
    assert "runlab environment build: 'empty-env'" in env.get_build_log()

    renamed = env.clone("same-packages").build(ws, show_output=False)
    assert renamed.cached and renamed.python_path == built.python_path
    assert env.cache_status().cached
    (cached,) = list_cached_environments()
    assert (cached.key, cached.name) == (built.hash[:16], "empty-env") and cached.size_bytes > 0
    assert prune_cached_environments([env]) == []
    assert [c.key for c in prune_cached_environments([])] == [built.hash[:16]]
    assert not env.cache_status().cached
