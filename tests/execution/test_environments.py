"""Environment definitions, their hash, interpreter discovery, and real uv builds into a cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock

from runlab.core.errors import NotFoundError, UserError
from runlab.execution.conda import CondaEnvironmentNotFoundError
from runlab.execution.environments import (
    BuiltEnvironment,
    EnvironmentBuildError,
    EnvironmentDefinition,
    build_environment,
    environment_status,
    normalize_requirement,
    prune,
    runlab_requirements,
    runlab_source_dir,
    runlab_version,
)
from runlab.execution.interpreters import (
    PythonNotFoundError,
    current_interpreter,
    find_interpreters,
    resolve_interpreter,
    version_matches,
)

CURRENT = ".".join(map(str, sys.version_info[:3]))


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(runlab_source_dir())}


# ------------------------------------------------------------------------------------ definitions


@pytest.mark.parametrize(
    ("line", "normalized"),
    [
        ("Scikit_Learn >= 1.0 ", "scikit-learn>=1.0"),
        ("numpy >=1.24, <3", "numpy>=1.24,<3"),
        ("Requests[Security , SOCKS]==2.31", "requests[security,socks]==2.31"),
        ("pkg ; python_version  <  '3.12' and sys_platform=='linux'",
         "pkg; python_version < '3.12' and sys_platform=='linux'"),
        ("pkg @ https://example.org/pkg-1.0.tar.gz", "pkg @ https://example.org/pkg-1.0.tar.gz"),
        ("-c   /etc/constraints.txt", "-c /etc/constraints.txt"),
        ("/abs/path/to/Pkg", "/abs/path/to/Pkg"),
    ],
)
def test_normalize_requirement(line: str, normalized: str) -> None:
    assert normalize_requirement(line) == normalized


def test_hash_ignores_name_variables_spelling_but_not_order() -> None:
    base = EnvironmentDefinition("a", python_version="3.11", pip_requirements=("numpy>=1.24", "six"))
    digest = base.content_hash()
    assert len(digest) == 64 and digest == base.content_hash()
    assert EnvironmentDefinition("other-name", python_version="3.11", pip_requirements=("numpy>=1.24", "six"),
                                 environment_variables={"X": "1"}).content_hash() == digest
    assert EnvironmentDefinition("a", python_version=" 3.11", pip_requirements=("NumPy >= 1.24", "Six ")
                                 ).content_hash() == digest
    assert EnvironmentDefinition("a", python_version="3.11", pip_requirements=("six", "numpy>=1.24")
                                 ).content_hash() != digest  # order matters, as in Azure ML
    assert EnvironmentDefinition("a", python_version="3.12", pip_requirements=("numpy>=1.24", "six")
                                 ).content_hash() != digest
    with_sdk = EnvironmentDefinition("a", python_version="3.11", pip_requirements=("numpy>=1.24", "six", "azureml-core"))
    # the Azure SDK is replaced by runlab's azureml compatibility package, linked in: another build, whichever entry
    assert with_sdk.content_hash() != digest and with_sdk.normalized().pip_requirements == ("numpy>=1.24", "six")
    assert EnvironmentDefinition("a", python_version="3.11", pip_requirements=("numpy>=1.24", "azureml-sdk", "six")
                                 ).content_hash() == with_sdk.content_hash()
    payload = base.hash_payload()
    assert payload["runlab"] == runlab_version()
    assert payload["runlab_requirements"] == list(runlab_requirements())
    assert "name" not in payload and "environment_variables" not in payload


def test_hash_is_the_same_in_another_process() -> None:
    definition = EnvironmentDefinition("a", python_version="3.11", pip_requirements=("numpy", "six==1.16"))
    code = ("from runlab.execution.environments import EnvironmentDefinition as D;"
            "print(D('b', python_version='3.11', pip_requirements=('numpy', 'six==1.16')).content_hash())")
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == definition.content_hash()


def test_dict_round_trip_and_idempotent_normalization() -> None:
    definition = EnvironmentDefinition(
        "a", python_version="3.6.2", pip_requirements=("azureml-sdk", "Six"), channels=("defaults",),
        conda_packages_original=("python=3.6.2",), environment_variables={"K": "v"}, warnings=("w",),
    )
    assert EnvironmentDefinition.from_dict(json.loads(json.dumps(definition.to_dict()))) == definition
    normalized = definition.normalized()
    assert normalized.normalized() == normalized
    assert normalized.content_hash() == definition.content_hash()
    assert normalized.pip_requirements == ("six",)
    assert normalized.warnings[0] == "w" and len(normalized.warnings) == 3
    with pytest.raises(UserError):
        EnvironmentDefinition.from_dict({"python_version": "3.11"})


@pytest.mark.parametrize(
    ("pin", "resolved", "upgraded"),
    [(None, CURRENT, False), ("3.6.2", CURRENT, True), ("3.9", CURRENT, True), ("<3.10", CURRENT, True),
     ("3.12", "3.12", False), (">=3.8", ">=3.8,>=3.10", False), (">=3.10,<3.14", ">=3.10,<3.14,>=3.10", False)],
)
def test_python_pin_resolution(pin: str | None, resolved: str, upgraded: bool) -> None:
    normalized = EnvironmentDefinition("a", python_version=pin).normalized()
    assert normalized.python_resolved == resolved
    assert any("runlab needs Python >= 3.10" in w for w in normalized.warnings) == upgraded


def test_resolved_python_is_kept_where_the_definition_travels() -> None:
    # Normalized where the run was submitted, stored, read back by an agent on another Python.
    stored = EnvironmentDefinition("a", python_resolved="3.12.1").normalized()
    assert stored.python_resolved == "3.12.1"
    assert EnvironmentDefinition("a", python_version="3.6.2", python_resolved="3.12.1").normalized(
    ).python_resolved == "3.12.1"
    # ...but not once the pin changed under it, nor when it is older than runlab supports.
    assert EnvironmentDefinition("a", python_version="3.13", python_resolved="3.12.1").normalized(
    ).python_resolved == "3.13"
    assert EnvironmentDefinition("a", python_resolved="3.8.1").normalized().python_resolved == CURRENT


def test_invalid_python_pin() -> None:
    with pytest.raises(UserError, match="not understood"):
        EnvironmentDefinition("a", python_version="three").normalized()


def test_requirements_file(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("numpy>=1.24\n", encoding="utf-8")
    (tmp_path / "requirements.txt").write_text("-r base.txt\nsix  # tiny\n", encoding="utf-8")
    definition = EnvironmentDefinition.from_requirements_file(tmp_path / "requirements.txt")
    assert definition.name == "requirements"
    assert definition.pip_requirements == ("numpy>=1.24", "six")
    assert definition.python_version is None


def test_existing_conda_env(tmp_path: Path) -> None:
    prefix = tmp_path / "envs" / "myenv"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "python").symlink_to(sys.executable)
    environ = {"PATH": "", "HOME": str(tmp_path), "CONDA_ENVS_PATH": str(tmp_path / "envs")}
    definition = EnvironmentDefinition.from_existing_conda_env("myenv", environ=environ)
    assert definition.user_managed and definition.interpreter_path == str(prefix / "bin" / "python")
    assert definition.name == "myenv"
    by_path = EnvironmentDefinition.from_existing_conda_env(str(prefix), name="x", environ=environ)
    assert by_path.interpreter_path == definition.interpreter_path

    with pytest.raises(CondaEnvironmentNotFoundError) as caught:
        EnvironmentDefinition.from_existing_conda_env("missing", environ=environ)
    assert isinstance(caught.value, NotFoundError)
    assert str(tmp_path / "envs" / "missing") in str(caught.value)
    assert str(tmp_path / "miniconda3" / "envs" / "missing") in caught.value.searched


# ----------------------------------------------------------------------------------- interpreters


def test_interpreter_discovery_finds_the_current_python() -> None:
    found = find_interpreters()
    assert found[0] == current_interpreter()
    assert found[0].version == sys.version_info[:3]
    assert resolve_interpreter(None) == current_interpreter()
    assert resolve_interpreter(CURRENT).version == sys.version_info[:3]
    major_minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert resolve_interpreter(major_minor).source == "current"  # preferred among equal matches


def test_missing_python_lists_the_installed_ones() -> None:
    with pytest.raises(PythonNotFoundError) as caught:
        resolve_interpreter("3.99")
    message = str(caught.value)
    assert isinstance(caught.value, UserError)
    assert f"{CURRENT} ({current_interpreter().path}" in message
    assert "does not download" in message and "pyenv install 3.99" in message


@pytest.mark.parametrize(
    ("request_", "version", "ok"),
    [("3", (3, 11, 7), True), ("3.11", (3, 11, 7), True), ("3.11.7", (3, 11, 7), True), ("3.11.6", (3, 11, 7), False),
     (">=3.10", (3, 11, 0), True), (">=3.10,<3.11", (3, 11, 0), False), ("==3.11.*", (3, 11, 2), True),
     ("!=3.11.*", (3, 11, 2), False), ("~=3.10", (3, 12, 0), True), ("~=3.10.2", (3, 11, 0), False)],
)
def test_version_matches(request_: str, version: tuple[int, int, int], ok: bool) -> None:
    assert version_matches(request_, version) is ok


# --------------------------------------------------------------------------- user-managed, status, prune


def test_user_managed_builds_nothing(tmp_path: Path) -> None:
    definition = EnvironmentDefinition("mine", user_managed=True, interpreter_path=sys.executable,
                                       pip_requirements=("this-package-does-not-exist-runlab",))
    built = build_environment(definition, tmp_path / "cache")
    assert built == BuiltEnvironment(definition.content_hash(), Path(sys.executable), None, None, cached=True,
                                     seconds=0.0, user_managed=True)
    assert not (tmp_path / "cache").exists()
    assert environment_status(definition, tmp_path / "cache").cached
    with pytest.raises(PythonNotFoundError, match="does not exist"):
        build_environment(EnvironmentDefinition("x", user_managed=True, interpreter_path=str(tmp_path / "nope")),
                          tmp_path / "cache")


def test_status_of_an_unbuilt_environment_is_fast(tmp_path: Path) -> None:
    definition = EnvironmentDefinition("a", pip_requirements=("six",))
    environment_status(definition, tmp_path)  # warm the one-time read of runlab's pyproject
    started = time.perf_counter()
    status = environment_status(definition, tmp_path)
    assert time.perf_counter() - started < 0.05
    assert not status.cached and status.env_dir == tmp_path / status.hash[:16]


def test_prune_keeps_what_is_asked_and_what_is_being_built(tmp_path: Path) -> None:
    names = ["0123456789abcdef", "fedcba9876543210", "aaaaaaaaaaaaaaaa"]
    for name in names:
        (tmp_path / name / "venv").mkdir(parents=True)
        (tmp_path / f"{name}.lock").touch()
    (tmp_path / "not-an-env").mkdir()
    keep = {"0123456789abcdef" + "0" * 48}
    with FileLock(str(tmp_path / "aaaaaaaaaaaaaaaa.lock")):
        removed = prune(tmp_path, keep)
    assert removed == ["fedcba9876543210"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "0123456789abcdef", "0123456789abcdef.lock", "aaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaa.lock", "not-an-env"]
    assert prune(tmp_path / "missing", set()) == []


# ------------------------------------------------------------------------------------ real builds


def run_in(python: Path, code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(python), "-c", code], env=env, capture_output=True, text=True, check=True,
                          cwd="/").stdout.strip()


@pytest.mark.slow
def test_build_tutorial_like_environment_then_cache_hit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The tutorial's pins without torch: python=3.6.2 (upgraded) and azureml-sdk (replaced by runlab).
    definition = EnvironmentDefinition("pytorch-env", python_version="3.6.2", pip_requirements=("azureml-sdk",))
    lines: list[str] = []
    built = build_environment(definition, tmp_path, lines.append)
    assert not built.cached and built.env_dir == tmp_path / built.hash[:16]
    assert [line.split()[0] for line in lines] == ["resolving", "creating", "installing", "linking", "done"]
    assert (built.env_dir / "ready").is_file() and built.log_path is not None
    log = built.log_path.read_text(encoding="utf-8")
    assert "WARNING: python 3.6.2 requested" in log and "azureml-sdk" in log
    out = run_in(built.python_path, "import sys, runlab, sqlalchemy, numpy;"
                                    "print(sys.version_info[:2] >= (3, 10), list(runlab.__path__))")
    assert out == f"True {[str(runlab_source_dir() / 'runlab')]}"

    def no_subprocess(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cache hit must not start a process")

    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    started = time.perf_counter()
    again = build_environment(EnvironmentDefinition("renamed", python_version="3.6.2",
                                                    pip_requirements=("azureml-sdk",)), tmp_path)
    assert time.perf_counter() - started < 0.05
    assert again.cached and again.python_path == built.python_path
    assert environment_status(definition, tmp_path).cached


@pytest.mark.slow
def test_build_with_one_small_package(tmp_path: Path) -> None:
    built = build_environment(EnvironmentDefinition("six-env", pip_requirements=("six",)), tmp_path)
    assert run_in(built.python_path, "import six, runlab; print(six.__name__)") == "six"
    requirements = (built.env_dir / "requirements.txt").read_text(encoding="utf-8")  # type: ignore[operator]
    assert requirements.splitlines()[1] == "six"
    assert all(r in requirements for r in runlab_requirements())


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["threads", "processes"])
def test_concurrent_builds_build_once(tmp_path: Path, mode: str) -> None:
    definition = EnvironmentDefinition("together", pip_requirements=("six",))
    if mode == "threads":
        results: list[BuiltEnvironment] = []
        threads = [threading.Thread(target=lambda: results.append(build_environment(definition, tmp_path)))
                   for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        cached = sorted(r.cached for r in results)
    else:
        code = ("import sys; from runlab.execution.environments import EnvironmentDefinition as D, build_environment;"
                f"print(build_environment(D('together', pip_requirements=('six',)), {str(tmp_path)!r}).cached)")
        processes = [subprocess.Popen([sys.executable, "-c", code], env=subprocess_env(), stdout=subprocess.PIPE,
                                      text=True) for _ in range(2)]
        outputs = [p.communicate(timeout=300)[0].strip() for p in processes]
        assert [p.returncode for p in processes] == [0, 0]
        cached = sorted(out == "True" for out in outputs)
    assert cached == [False, True]
    log = (tmp_path / definition.content_hash()[:16] / "build.log").read_text(encoding="utf-8")
    assert log.count("creating venv with") == 1


@pytest.mark.slow
def test_failed_build_raises_with_log_tail_and_leaves_no_ready_marker(tmp_path: Path) -> None:
    definition = EnvironmentDefinition("broken", pip_requirements=("this-package-does-not-exist-runlab",))
    with pytest.raises(EnvironmentBuildError) as caught:
        build_environment(definition, tmp_path)
    error = caught.value
    env_dir = tmp_path / definition.content_hash()[:16]
    assert error.log_path == env_dir / "build.log"
    message = str(error)
    assert str(env_dir / "build.log") in message
    assert "this-package-does-not-exist-runlab" in message and "installing packages" in message
    assert len(message.splitlines()) <= 31
    assert not (env_dir / "ready").exists() and not (env_dir / "venv").exists()
    assert not environment_status(definition, tmp_path).cached
    with pytest.raises(EnvironmentBuildError):  # not remembered as built
        build_environment(definition, tmp_path)


def test_run_environments_get_runlab_without_the_studio_server() -> None:
    from runlab.execution.environments import requirement_name, runlab_requirements

    names = {requirement_name(r) for r in runlab_requirements()}
    assert {"sqlalchemy", "numpy", "filelock"} <= names
    assert not names & {"fastapi", "uvicorn", "plotly", "swagger-ui-bundle"}
