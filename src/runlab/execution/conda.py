"""Translation of a conda environment spec into what runlab builds: a python pin and pip requirements.

runlab builds environments with uv from PyPI (and the user's pip sources), not with conda. A conda
spec (``environment.yml``) is translated entry by entry:

- ``python=3.6.2`` / ``python>=3.10`` becomes the python pin, which chooses the interpreter;
- a conda package becomes its PyPI name (:data:`CONDA_PACKAGES`: ``pytorch`` -> ``torch``...;
  a name not in the table is assumed to be the same on PyPI); conda-only system packages that the
  PyPI wheels do not need (``cudatoolkit``, ``mkl``, ``pip``...) are dropped with a note; those pip
  cannot provide (``ffmpeg``, ``r-base``...) are refused, all named in one :class:`CondaSpecError`;
- conda version syntax becomes PEP 440: ``pkg=1.2`` -> ``pkg==1.2.*``, ``pkg=1.2.3`` -> ``pkg==1.2.3``,
  ``pkg>=1.0`` kept, a build string (``pkg=1.2=py_0``) dropped, ``channel::pkg`` loses its channel;
- the ``pip:`` section is kept as written (``-r`` files read in place, relative paths made absolute);
- ``channels`` and the original entries are recorded; ``variables`` become environment variables.

:func:`find_conda_env_python` finds an existing conda environment's interpreter, for definitions
that use one as is (``from_existing_conda_environment``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

from runlab.core.errors import NotFoundError, UserError
from runlab.execution.interpreters import validate_request
from runlab.execution.pipconfig import read_requirement_lines

__all__ = [
    "CONDA_PACKAGES",
    "CondaEnvironmentNotFoundError",
    "CondaPackageRule",
    "CondaSpecError",
    "CondaTranslation",
    "conda_version_to_pep440",
    "find_conda_env_python",
    "load_conda_spec",
    "translate_conda_spec",
]


class CondaEnvironmentNotFoundError(NotFoundError):
    """``from_existing_conda_env`` found no conda environment of that name; ``searched`` lists where it looked."""

    env_name: str
    searched: list[str]


class CondaSpecError(UserError):
    """A conda spec cannot be read, or names packages pip cannot install (listed in ``entries``)."""

    path: str
    entries: list[str]


@dataclass(frozen=True)
class CondaPackageRule:
    """What a conda package becomes: a PyPI package, nothing (dropped, with why), or an error."""

    action: Literal["pypi", "drop", "refuse"]
    pypi_name: str = ""
    why: str = ""


def _pypi(name: str) -> CondaPackageRule:
    return CondaPackageRule("pypi", pypi_name=name)


def _drop(why: str) -> CondaPackageRule:
    return CondaPackageRule("drop", why=why)


def _refuse(why: str) -> CondaPackageRule:
    return CondaPackageRule("refuse", why=why)


_INSTALLER = "not needed: runlab installs packages with uv"
_CUDA = "CUDA libraries: the PyPI wheels that need them (torch, tensorflow...) bring their own"
_BLAS = "math library: numpy, scipy and torch wheels bundle theirs"
_PYTHON_PART = "part of the Python installation"
_BUNDLED = "native library: the PyPI wheels that need it bundle it"

#: conda package name -> what it becomes. Names not listed are assumed to be the same on PyPI.
CONDA_PACKAGES: dict[str, CondaPackageRule] = {
    # same project, another name on PyPI
    "pytorch": _pypi("torch"),
    "pytorch-cpu": _pypi("torch"),
    "pytorch-gpu": _pypi("torch"),
    "torchvision": _pypi("torchvision"),
    "torchaudio": _pypi("torchaudio"),
    "py-xgboost": _pypi("xgboost"),
    "py-xgboost-cpu": _pypi("xgboost"),
    "py-xgboost-gpu": _pypi("xgboost"),
    "opencv": _pypi("opencv-python"),
    "py-opencv": _pypi("opencv-python"),
    "matplotlib-base": _pypi("matplotlib"),
    "tensorflow-gpu": _pypi("tensorflow"),
    "keras-gpu": _pypi("keras"),
    "pytables": _pypi("tables"),
    "msgpack-python": _pypi("msgpack"),
    "python-graphviz": _pypi("graphviz"),
    "pyqt": _pypi("PyQt5"),
    "faiss": _pypi("faiss-cpu"),
    "faiss-gpu": _pypi("faiss-cpu"),
    "scikit-learn": _pypi("scikit-learn"),
    "pillow": _pypi("pillow"),
    # installer and interpreter parts
    "python": _drop("the python pin chooses the interpreter"),
    "pip": _drop(_INSTALLER),
    "setuptools": _drop(_INSTALLER),
    "wheel": _drop(_INSTALLER),
    **{name: _drop(_PYTHON_PART) for name in (
        "openssl", "ca-certificates", "libffi", "ncurses", "readline", "sqlite", "tk", "xz", "zlib",
        "libzlib", "bzip2", "tzdata", "libuuid", "libgcc-ng", "libstdcxx-ng", "libgomp", "_libgcc_mutex",
        "_openmp_mutex", "ld_impl_linux-64", "python_abi",
    )},
    # GPU and math libraries the wheels bring along
    **{name: _drop(_CUDA) for name in (
        "cudatoolkit", "cudnn", "cuda-toolkit", "cuda-runtime", "cuda-cudart", "nccl", "pytorch-cuda",
        "cpuonly", "pytorch-mutex",
    )},
    **{name: _drop(_BLAS) for name in (
        "mkl", "mkl-service", "mkl_fft", "mkl_random", "intel-openmp", "blas", "libblas", "libcblas",
        "liblapack", "openblas", "libopenblas", "nomkl",
    )},
    **{name: _drop(_BUNDLED) for name in ("jpeg", "libjpeg-turbo", "libpng", "freetype", "hdf5", "libsndfile")},
    # programs and libraries pip cannot install
    "ffmpeg": _refuse("a program, not a Python package (on PyPI, `imageio-ffmpeg` bundles one)"),
    "graphviz": _refuse("the Graphviz program (the Python binding is `graphviz` on PyPI and needs it)"),
    "r-base": _refuse("the R language"),
    "r-essentials": _refuse("R packages"),
    "nodejs": _refuse("a program, not a Python package"),
    "git": _refuse("a program, not a Python package"),
    "gcc": _refuse("a compiler"),
    "gxx": _refuse("a compiler"),
    "gcc_linux-64": _refuse("a compiler"),
    "gxx_linux-64": _refuse("a compiler"),
    "make": _refuse("a program, not a Python package"),
    "openjdk": _refuse("Java"),
    "gdal": _refuse("a native library (the PyPI `GDAL` package needs it installed)"),
    "libgdal": _refuse("a native library"),
    "poppler": _refuse("a native library and programs"),
    "tesseract": _refuse("a program, not a Python package"),
    "imagemagick": _refuse("a program, not a Python package"),
    "cairo": _refuse("a native library"),
}

#: Name prefixes refused as a family.
_REFUSED_PREFIXES = {"r-": "an R package"}

_OPERATORS = ("==", "!=", ">=", "<=", "~=", ">", "<")
_NAME = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_.\-]*)\s*(.*)$")


@dataclass(frozen=True)
class CondaTranslation:
    """What a conda spec becomes. ``notes`` say what was dropped or changed, for the build log."""

    name: str | None
    python_version: str | None
    pip_requirements: tuple[str, ...]
    channels: tuple[str, ...]
    conda_packages_original: tuple[str, ...]
    environment_variables: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def load_conda_spec(path: str | Path) -> dict[str, Any]:
    """Read a conda environment file.

    Raises:
        CondaSpecError: missing file, invalid YAML, or not a mapping.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise CondaSpecError(f"cannot read conda spec {file}: {exc.strerror or exc}", path=str(file)) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CondaSpecError(f"conda spec {file} is not valid YAML: {exc}", path=str(file)) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CondaSpecError(f"conda spec {file} must be a mapping with `dependencies:`", path=str(file))
    return data


def translate_conda_spec(spec: dict[str, Any], *, base_dir: Path | None = None, origin: str = "conda spec") -> CondaTranslation:
    """Translate a parsed conda spec (see the module docstring).

    ``base_dir`` is the spec's folder, against which ``pip:`` entries' relative paths are read.

    Raises:
        CondaSpecError: an entry cannot be translated; all such entries are listed, with the fix.
    """
    base = Path.cwd() if base_dir is None else base_dir
    channels = tuple(str(c).strip() for c in (spec.get("channels") or []))
    dependencies = spec.get("dependencies") or []
    if not isinstance(dependencies, list):
        raise CondaSpecError(f"{origin}: `dependencies` must be a list", path=origin)
    python_version: str | None = None
    requirements: list[str] = []
    originals: list[str] = []
    pip_entries: list[str] = []
    notes: list[str] = []
    problems: list[str] = []
    for entry in dependencies:
        if isinstance(entry, dict):
            for key, value in entry.items():
                if key != "pip" or not isinstance(value, list):
                    problems.append(f"{key}: {value!r}: only a `pip:` list may appear among dependencies")
                    continue
                pip_entries += [str(v) for v in value]
            continue
        text = str(entry).strip()
        originals.append(text)
        try:
            name, version = _split_match_spec(text)
        except ValueError as exc:
            problems.append(f"{text}: {exc}")
            continue
        if name == "python":
            try:
                python_version = _python_request(version)
            except ValueError as exc:
                problems.append(f"{text}: {exc}")
            continue
        rule = _rule_for(name)
        if rule.action == "drop":
            notes.append(f"conda package {text!r} dropped: {rule.why}")
            continue
        if rule.action == "refuse":
            problems.append(f"{text}: {rule.why}")
            continue
        try:
            specifier = conda_version_to_pep440(version)
        except ValueError as exc:
            problems.append(f"{text}: {exc}")
            continue
        pypi_name = rule.pypi_name or name
        if pypi_name != name:
            notes.append(f"conda package {name!r} installed as {pypi_name!r} from PyPI")
        requirements.append(pypi_name + specifier)
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise CondaSpecError(
            f"{origin}: these conda dependencies cannot be installed with pip:\n{listed}\n"
            "Fix: move a package under `- pip:` with its PyPI name, remove it, or set "
            "python.user_managed_dependencies = True with python.interpreter_path pointing to an "
            "interpreter that already has it (e.g. Environment.from_existing_conda_environment).",
            path=origin,
            entries=problems,
        )
    pip_requirements = read_requirement_lines(pip_entries, base, origin=origin)
    variables = spec.get("variables") or {}
    if not isinstance(variables, dict):
        raise CondaSpecError(f"{origin}: `variables` must be a mapping", path=origin)
    spec_name = spec.get("name")
    return CondaTranslation(
        name=str(spec_name) if spec_name else None,
        python_version=python_version,
        pip_requirements=tuple(requirements) + tuple(pip_requirements),
        channels=channels,
        conda_packages_original=tuple(originals),
        environment_variables={str(k): str(v) for k, v in variables.items()},
        notes=tuple(notes),
    )


def conda_version_to_pep440(version: str) -> str:
    """A conda version constraint as a PEP 440 specifier (``""`` for none).

    ``=1.2`` -> ``==1.2.*``; ``=1.2.3`` -> ``==1.2.3``; ``=1.2=build`` -> ``==1.2.*``;
    ``1.2.*`` -> ``==1.2.*``; ``>=1.0,<2`` kept; ``1.2.3 build`` -> ``==1.2.3``.

    Raises:
        ValueError: the constraint cannot be written for pip (``1.2|1.3``).
    """
    text = version.strip()
    if not text:
        return ""
    if "|" in text:
        raise ValueError("conda 'or' versions (a|b) have no pip equivalent; pick one version")
    if text.startswith("=") and not text.startswith("=="):
        return _fuzzy(text[1:].split("=")[0].strip())
    if text.startswith("=="):
        exact = text[2:].split("=")[0].split()[0]
        return "==" + exact
    if text.startswith(_OPERATORS):
        return text.split()[0]  # `>=1.0,<2 build`: the constraint, without the build
    bare = text.split()[0]  # `pkg 1.2.3 build`: the version, exact unless it has a wildcard
    if "*" in bare:
        return _fuzzy(bare)
    return "==" + bare


def _fuzzy(version: str) -> str:
    core = version.rstrip("*").rstrip(".")
    if not core:
        return ""
    if version.endswith("*") or core.count(".") < 2:
        return f"=={core}.*"
    return f"=={core}"


def _split_match_spec(text: str) -> tuple[str, str]:
    """``channel::name[version='>=1'] 1.2 build`` -> (name, version constraint)."""
    spec = text.split("::", 1)[1] if "::" in text else text
    bracket_version = ""
    bracket = re.search(r"\[(.*)\]\s*$", spec)
    if bracket:
        for key, value in re.findall(r"(\w+)\s*=\s*['\"]?([^'\",]*)['\"]?", bracket.group(1)):
            if key == "version":
                bracket_version = value
        spec = spec[: bracket.start()]
    match = _NAME.match(spec.strip())
    if not match:
        raise ValueError("not a conda package spec")
    name = match.group(1).lower()
    version = match.group(2).strip() or bracket_version
    return name, version


def _python_request(version: str) -> str | None:
    """A conda python constraint as an interpreter request (see runlab.execution.interpreters)."""
    specifier = conda_version_to_pep440(version)
    if not specifier:
        return None
    if specifier.startswith("==") and "," not in specifier:
        specifier = specifier[2:].removesuffix(".*")
    try:
        return validate_request(specifier)
    except UserError as exc:
        raise ValueError(f"python version {version!r} is not understood") from exc


def _rule_for(name: str) -> CondaPackageRule:
    rule = CONDA_PACKAGES.get(name)
    if rule is not None:
        return rule
    for prefix, why in _REFUSED_PREFIXES.items():
        if name.startswith(prefix):
            return _refuse(why)
    return _pypi(name)



def find_conda_env_python(env_name: str, *, environ: Mapping[str, str] | None = None) -> Path:
    """The python executable of the conda environment ``env_name`` (a name or a folder).

    Raises:
        CondaEnvironmentNotFoundError: not found; the message lists where runlab looked.
    """
    env = os.environ if environ is None else environ
    searched: list[str] = []
    direct = Path(env_name).expanduser()
    if direct.is_absolute() or os.sep in env_name:
        python = _conda_python(direct)
        if python is not None:
            return python
        searched.append(str(direct))
    conda = env.get("CONDA_EXE") or shutil.which("conda", path=env.get("PATH"))
    if conda:
        for prefix in _conda_env_list(conda):
            if prefix.name == env_name or (env_name == "base" and (prefix / "conda-meta").is_dir()
                                           and not prefix.parent.name == "envs"):
                python = _conda_python(prefix)
                if python is not None:
                    return python
        searched.append(f"`{conda} env list --json`")
    home = Path(env.get("HOME") or Path.home())
    folders: list[Path] = [Path(p) for p in (env.get("CONDA_ENVS_PATH") or "").split(os.pathsep) if p]
    if env.get("CONDA_PREFIX"):
        prefix = Path(env["CONDA_PREFIX"])
        folders.append(prefix / "envs")
        if prefix.parent.name == "envs":
            folders.append(prefix.parent)
    folders += [home / d / "envs" for d in ("miniconda3", "anaconda3", "miniforge3", "mambaforge")]
    folders.append(Path("/opt/conda/envs"))
    for folder in dict.fromkeys(folders):
        candidate = folder / env_name
        searched.append(str(candidate))
        python = _conda_python(candidate)
        if python is not None:
            return python
    listed = "\n".join(f"  - {s}" for s in searched)
    raise CondaEnvironmentNotFoundError(
        f"conda environment {env_name!r} not found (or it has no python). Looked in:\n{listed}\n"
        f"Create it (`conda create -n {env_name} python=3.11`), pass its folder instead of its name, "
        "or set CONDA_ENVS_PATH to the folder that holds it.",
        env_name=env_name,
        searched=searched,
    )


def _conda_env_list(conda: str) -> list[Path]:
    try:
        result = subprocess.run([conda, "env", "list", "--json"], capture_output=True, text=True, timeout=60,
                                check=False)
        return [Path(p) for p in json.loads(result.stdout).get("envs", [])] if result.returncode == 0 else []
    except (OSError, subprocess.SubprocessError, ValueError, AttributeError):
        return []


def _conda_python(prefix: Path) -> Path | None:
    for python in (prefix / "bin" / "python", prefix / "python.exe"):
        if python.is_file():
            return python
    return None
