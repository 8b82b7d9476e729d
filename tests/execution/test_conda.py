"""Translation of conda specs into a python pin and pip requirements."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runlab.core.errors import UserError
from runlab.execution.conda import (
    CONDA_PACKAGES,
    CondaSpecError,
    conda_version_to_pep440,
    load_conda_spec,
    translate_conda_spec,
)
from runlab.execution.environments import EnvironmentDefinition
from tests_support import TUTORIAL_SPEC


@pytest.mark.parametrize(
    ("conda", "pep440"),
    [
        ("", ""),
        ("=1.2", "==1.2.*"),
        ("=1.2.3", "==1.2.3"),
        ("=1", "==1.*"),
        ("=1.2.*", "==1.2.*"),
        ("=1.2=py39_0", "==1.2.*"),
        ("=1.2.3=h1234_0", "==1.2.3"),
        ("==1.2.3", "==1.2.3"),
        ("==1.2.3=build", "==1.2.3"),
        (">=1.0", ">=1.0"),
        (">=1.0,<2", ">=1.0,<2"),
        ("1.2.*", "==1.2.*"),
        ("1.2.3 py_0", "==1.2.3"),
    ],
)
def test_version_syntax(conda: str, pep440: str) -> None:
    assert conda_version_to_pep440(conda) == pep440


def test_or_versions_cannot_be_translated() -> None:
    with pytest.raises(ValueError, match="or"):
        conda_version_to_pep440("1.2|1.3")


@pytest.mark.parametrize(
    ("entry", "requirement"),
    [
        ("pytorch", "torch"),
        ("pytorch-cpu=2.1", "torch==2.1.*"),
        ("py-xgboost>=1.7", "xgboost>=1.7"),
        ("scikit-learn=1.3.2", "scikit-learn==1.3.2"),
        ("opencv", "opencv-python"),
        ("pillow", "pillow"),
        ("matplotlib-base=3.8", "matplotlib==3.8.*"),
        ("tensorflow-gpu", "tensorflow"),
        ("torchvision", "torchvision"),
        ("conda-forge::numpy=1.26", "numpy==1.26.*"),
        ("numpy[version='>=1.24']", "numpy>=1.24"),
        ("some-unknown-package=0.3", "some-unknown-package==0.3.*"),
    ],
)
def test_package_names(entry: str, requirement: str) -> None:
    result = translate_conda_spec({"dependencies": [entry]})
    assert result.pip_requirements == (requirement,)
    assert result.conda_packages_original == (entry,)


@pytest.mark.parametrize("entry", ["cudatoolkit=11.8", "cudnn", "mkl", "pip", "setuptools", "wheel", "libgcc-ng"])
def test_conda_only_packages_are_dropped_with_a_note(entry: str) -> None:
    result = translate_conda_spec({"dependencies": [entry]})
    assert result.pip_requirements == ()
    assert any(entry.split("=")[0] in note and "dropped" in note for note in result.notes)


@pytest.mark.parametrize(
    ("entry", "pin"),
    [("python=3.6.2", "3.6.2"), ("python=3.11", "3.11"), ("python>=3.10", ">=3.10"),
     ("python 3.8.*", "3.8"), ("python==3.12.1", "3.12.1"), ("python", None),
     ("python>=3.10,<3.13", ">=3.10,<3.13")],
)
def test_python_pin(entry: str, pin: str | None) -> None:
    assert translate_conda_spec({"dependencies": [entry]}).python_version == pin


def test_tutorial_spec(tmp_path: Path) -> None:
    spec = tmp_path / "pytorch-env.yml"
    spec.write_text(TUTORIAL_SPEC, encoding="utf-8")
    translation = translate_conda_spec(load_conda_spec(spec))
    assert translation.name == "pytorch-env"
    assert translation.channels == ("defaults", "pytorch")
    assert translation.python_version == "3.6.2"
    assert translation.pip_requirements == ("torch", "torchvision", "azureml-sdk")
    assert translation.conda_packages_original == ("python=3.6.2", "pytorch", "torchvision", "pip")

    definition = EnvironmentDefinition.from_conda_file(spec, name="pytorch-env")
    normalized = definition.normalized()
    assert normalized.pip_requirements == ("torch", "torchvision")  # azureml-sdk removed: runlab is the SDK
    assert any("azureml-sdk" in w and "removed" in w for w in normalized.warnings)
    current = ".".join(map(str, sys.version_info[:3]))
    assert normalized.python_version == "3.6.2"
    assert normalized.python_resolved == current  # upgraded: runlab needs >= 3.10 in the run
    assert any("3.6.2" in w and current in w and ">= 3.10" in w for w in normalized.warnings)


def test_untranslatable_entries_are_all_named_with_the_fix(tmp_path: Path) -> None:
    spec = tmp_path / "env.yml"
    spec.write_text("dependencies:\n  - python=3.11\n  - ffmpeg\n  - r-base=4.3\n  - r-ggplot2\n"
                    "  - numpy\n  - cudatoolkit\n", encoding="utf-8")
    with pytest.raises(CondaSpecError) as caught:
        EnvironmentDefinition.from_conda_file(spec)
    error = caught.value
    assert isinstance(error, UserError)
    assert [e.split(":")[0] for e in error.entries] == ["ffmpeg", "r-base=4.3", "r-ggplot2"]
    message = str(error)
    assert str(spec) in message
    assert "pip:" in message and "user_managed_dependencies" in message


def test_pip_section_paths_and_variables(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("six\n", encoding="utf-8")
    spec = tmp_path / "env.yml"
    spec.write_text("dependencies:\n  - numpy=1.26\n  - pip:\n    - -r requirements.txt\n    - ./local_pkg\n"
                    "variables:\n  OMP_NUM_THREADS: 1\n", encoding="utf-8")
    definition = EnvironmentDefinition.from_conda_file(spec)
    assert definition.name == "env"
    assert definition.pip_requirements == ("numpy==1.26.*", "six", str(tmp_path / "local_pkg"))
    assert definition.environment_variables == {"OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize(
    ("text", "match"),
    [("dependencies: [a, b", "YAML"), ("- just\n- a list\n", "mapping"), ("dependencies: numpy\n", "list"),
     ("dependencies:\n  - {conda: [x]}\n", "pip")],
)
def test_malformed_specs(tmp_path: Path, text: str, match: str) -> None:
    spec = tmp_path / "env.yml"
    spec.write_text(text, encoding="utf-8")
    with pytest.raises(CondaSpecError, match=match):
        EnvironmentDefinition.from_conda_file(spec)


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(CondaSpecError, match="cannot read"):
        load_conda_spec(tmp_path / "nope.yml")


def test_table_is_one_consistent_table() -> None:
    for name, rule in CONDA_PACKAGES.items():
        assert name == name.lower()
        assert (rule.action == "pypi") == bool(rule.pypi_name), name
        assert rule.action == "pypi" or rule.why, name
