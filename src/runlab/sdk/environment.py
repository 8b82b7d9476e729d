"""Environment: the Python a run needs, named and versioned in a workspace (Azure ML v1's ``Environment``).

::

    env = Environment.from_conda_specification(name="pytorch-env", file_path=".azureml/pytorch-env.yml")
    env.environment_variables["OMP_NUM_THREADS"] = "1"
    env = env.register(ws)                       # version "1"; the same definition again gives "1" again
    env.build_local(ws)                          # uv builds it into this machine's cache, once
    Environment.get(ws, "pytorch-env")           # the latest version; version="1" for another one

An :class:`Environment` is a mutable front over the execution layer's
:class:`~runlab.execution.environments.EnvironmentDefinition`; :meth:`Environment.definition` gives the
definition its attributes describe now. Packages live in ``env.python.conda_dependencies``
(a :class:`CondaDependencies`: conda entries, pip entries, channels); conda entries become PyPI
requirements as :mod:`runlab.execution.conda` translates them (``pytorch`` -> ``torch``).

Built environments live in one cache per machine (:func:`environment_cache_root`, shared by every
workspace), keyed by the definition's content hash: the same packages under two names build once.
"""

from __future__ import annotations

import builtins
import copy
import os
import re
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from runlab.core.errors import NotFoundError, UserError
from runlab.core.names import check_environment_name
from runlab.core.settings import load_settings
from runlab.execution.conda import CondaSpecError, load_conda_spec, translate_conda_spec
from runlab.execution.environments import (
    BuiltEnvironment,
    EnvironmentDefinition,
    EnvironmentStatus,
    build_environment,
    environment_status,
    normalize_requirement,
    prune,
    requirement_name,
)
from runlab.execution.interpreters import validate_request
from runlab.execution.pipconfig import read_requirement_lines

if TYPE_CHECKING:
    from runlab.sdk.workspace import Workspace

__all__ = [
    "CachedEnvironment",
    "CondaDependencies",
    "DockerSection",
    "Environment",
    "EnvironmentBuild",
    "PythonSection",
    "check_environment_name",
    "environment_cache_root",
    "list_cached_environments",
    "prune_cached_environments",
    "registered_environments",
]

_DEFAULT_CONDA_FILE = "conda_dependencies.yml"
_SAVED_DEFINITION = "azureml_environment.json"  # save_to_directory / load_from_directory
_CONDA_NAME = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_.\-]*)")
_CACHE_KEY = re.compile(r"^[0-9a-f]{16}$")


def environment_cache_root() -> Path:
    """Where built environments live: ``$RUNLAB_HOME/envs``, one cache per machine shared by all workspaces."""
    return load_settings().environments_dir


# ------------------------------------------------------------------------------ conda dependencies


class CondaDependencies:
    """The packages of an environment, as a conda spec holds them (Azure ML's ``CondaDependencies``).

    Conda entries (``python=3.11``, ``pytorch``, ``numpy=1.24``) are kept as written, in order, and
    translated to PyPI requirements when the environment is built; pip entries are pip requirement
    lines. ``CondaDependencies(path)`` reads a conda environment file; ``-r`` includes of its
    ``pip:`` section are read in place and relative paths made absolute.

    Raises:
        CondaSpecError: the file cannot be read, or names packages pip cannot install.
    """

    def __init__(self, conda_dependencies_file_path: str | os.PathLike[str] | None = None, **_azure: Any) -> None:
        self._conda: list[str] = []
        self._pip: list[str] = []
        self._channels: list[str] = []
        self._file: Path | None = None
        if conda_dependencies_file_path is not None:
            file = Path(conda_dependencies_file_path)
            self._file = file
            spec = load_conda_spec(file)
            translate_conda_spec(spec, base_dir=file.parent.resolve(), origin=str(file))  # every problem, at once
            self._read_spec(spec, file)

    @staticmethod
    def create(
        pip_packages: Iterable[str] | None = None,
        conda_packages: Iterable[str] | None = None,
        python_version: str | None = None,
        pin_sdk_version: bool = True,
        pip_indexurl: str | None = None,
        **_azure: Any,
    ) -> "CondaDependencies":
        """New dependencies with these packages (``pin_sdk_version`` is ignored: runlab is the SDK).

        ``pip_indexurl`` is added as ``--extra-index-url``, on top of the pip sources configured on
        this machine.

        Raises:
            UserError: ``python_version`` is not a python pin (``3.11``, ``>=3.10``).
        """
        dependencies = CondaDependencies()
        if python_version is not None:
            dependencies.set_python_version(python_version)
        for package in conda_packages or ():
            dependencies.add_conda_package(package)
        for package in pip_packages or ():
            dependencies.add_pip_package(package)
        if pip_indexurl:
            dependencies.set_pip_option(f"--extra-index-url {pip_indexurl}")
        return dependencies

    def _read_spec(self, spec: Mapping[str, Any], file: Path) -> None:
        base = file.parent.resolve()
        self._channels = [str(c).strip() for c in spec.get("channels") or ()]
        pip_entries: list[str] = []
        for entry in spec.get("dependencies") or ():
            if isinstance(entry, dict):
                pip_entries += [str(v) for v in entry.get("pip") or ()]
            else:
                self._conda.append(str(entry).strip())
        self._pip = read_requirement_lines(pip_entries, base, origin=str(file))

    # ---- reading

    @property
    def conda_packages(self) -> builtins.list[str]:
        """Conda entries as written, without the python pin (see :meth:`get_python_version`)."""
        return [c for c in self._conda if _conda_name(c) != "python"]

    @property
    def pip_packages(self) -> builtins.list[str]:
        """pip requirement lines, without option lines (``--index-url ...``)."""
        return [p for p in self._pip if not p.startswith("-")]

    @property
    def pip_options(self) -> builtins.list[str]:
        """pip option lines (``--extra-index-url ...``, ``-c constraints.txt``)."""
        return [p for p in self._pip if p.startswith("-")]

    @property
    def conda_channels(self) -> builtins.list[str]:
        """Channels of the spec; recorded only: packages come from PyPI and the configured pip sources."""
        return list(self._channels)

    def get_pip_packages(self) -> builtins.list[str]:
        """The pip requirement lines (same as :attr:`pip_packages`)."""
        return self.pip_packages

    def get_python_version(self) -> str | None:
        """The python pin (``3.6.2``, ``>=3.10``), or None: the Python runlab runs on."""
        pins = [c for c in self._conda if _conda_name(c) == "python"]
        if not pins:
            return None
        return translate_conda_spec({"dependencies": pins[-1:]}, origin="python pin").python_version

    # ---- changing

    def set_python_version(self, version: str) -> None:
        """Pin python (``"3.11"``, ``"3.11.7"``, ``">=3.10"``), replacing an earlier pin.

        Raises:
            UserError: not a python pin.
        """
        text = validate_request(str(version))
        entry = f"python{text}" if text[0] in "<>=!~" else f"python={text}"
        for index, existing in enumerate(self._conda):
            if _conda_name(existing) == "python":
                self._conda[index] = entry
                return
        self._conda.insert(0, entry)

    def add_conda_package(self, conda_package: str) -> None:
        """Add a conda entry (``numpy``, ``pytorch=1.13``); one with the same name is replaced in place.

        Raises:
            UserError: not a conda package spec.
        """
        text = " ".join(str(conda_package).split())
        name = _conda_name(text)
        if name is None:
            raise UserError(f"{conda_package!r} is not a conda package spec; write e.g. 'numpy' or 'numpy=1.24'")
        _put(self._conda, text, lambda entry: _conda_name(entry) == name)

    def remove_conda_package(self, conda_package: str) -> None:
        """Remove the conda entries named like ``conda_package`` (its version is ignored)."""
        name = _conda_name(conda_package.strip())
        self._conda = [c for c in self._conda if _conda_name(c) != name]

    def add_pip_package(self, pip_package: str) -> None:
        """Add a pip requirement line (``six``, ``torch>=2``); one for the same project is replaced in place."""
        text = " ".join(str(pip_package).split())
        if not text:
            raise UserError("add_pip_package needs a requirement, e.g. 'six' or 'torch>=2'")
        name = requirement_name(text)
        _put(self._pip, text, lambda entry: entry == text or (name is not None and requirement_name(entry) == name))

    def remove_pip_package(self, pip_package: str) -> None:
        """Remove the pip lines for the project ``pip_package`` names (or that exact line)."""
        text = " ".join(pip_package.split())
        name = requirement_name(text)
        self._pip = [p for p in self._pip if p != text and (name is None or requirement_name(p) != name)]

    def set_pip_option(self, pip_option: str) -> None:
        """Add a pip option line (``--extra-index-url URL``, ``--pre``), once."""
        text = " ".join(pip_option.split())
        if text not in self._pip:
            self._pip.append(text)

    def add_channel(self, channel: str) -> None:
        """Add a conda channel (recorded only)."""
        if channel.strip() not in self._channels:
            self._channels.append(channel.strip())

    def remove_channel(self, channel: str) -> None:
        """Remove a conda channel."""
        self._channels = [c for c in self._channels if c != channel.strip()]

    # ---- output

    def as_spec(self) -> dict[str, Any]:
        """The dependencies as a parsed conda spec (``channels``, ``dependencies`` with a ``pip:`` list)."""
        dependencies: builtins.list[Any] = list(self._conda)
        if self._pip:
            dependencies.append({"pip": list(self._pip)})
        spec: dict[str, Any] = {"dependencies": dependencies}
        if self._channels:
            spec = {"channels": list(self._channels), **spec}
        return spec

    def serialize_to_string(self) -> str:
        """The dependencies as conda environment YAML."""
        import yaml

        return str(yaml.safe_dump(self.as_spec(), sort_keys=False))

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the dependencies as a conda environment file; returns its path. ``path=None``: the file
        they were read from, else ``conda_dependencies.yml`` in the current folder."""
        target = Path(path) if path is not None else (self._file or Path(_DEFAULT_CONDA_FILE))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.serialize_to_string(), encoding="utf-8")
        return target

    def save_to_file(self, base_directory: str | os.PathLike[str],
                     conda_file_path: str | os.PathLike[str] | None = None) -> Path:
        """Write the conda file ``conda_file_path`` (default ``conda_dependencies.yml``) under ``base_directory``."""
        return self.save(Path(base_directory) / (conda_file_path or _DEFAULT_CONDA_FILE))

    def merge_dependencies(self, other: "CondaDependencies") -> None:
        """Add ``other``'s channels, conda packages and pip packages (its entry wins for a package both name)."""
        for channel in other._channels:
            self.add_channel(channel)
        for conda_package in other._conda:
            self.add_conda_package(conda_package)
        for pip_package in other._pip:
            if pip_package.startswith("-"):
                self.set_pip_option(pip_package)
            else:
                self.add_pip_package(pip_package)

    def _translate(self, origin: str) -> EnvironmentDefinition:
        """The packages as an EnvironmentDefinition (name left empty), translated by the execution layer."""
        translation = translate_conda_spec(self.as_spec(), base_dir=Path.cwd(), origin=origin)
        return EnvironmentDefinition(
            name="",
            python_version=translation.python_version,
            pip_requirements=translation.pip_requirements,
            channels=translation.channels,
            conda_packages_original=translation.conda_packages_original,
            warnings=translation.notes,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CondaDependencies):
            return NotImplemented
        return (self._conda, self._pip, self._channels) == (other._conda, other._pip, other._channels)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"CondaDependencies(conda_packages={self._conda!r}, pip_packages={self._pip!r}, "
                f"channels={self._channels!r})")


def _conda_name(entry: str) -> str | None:
    text = entry.split("::", 1)[1] if "::" in entry else entry
    match = _CONDA_NAME.match(text.strip())
    return match.group(1).lower() if match else None


def _put(entries: builtins.list[str], text: str, same: Callable[[str], bool]) -> None:
    for index, entry in enumerate(entries):
        if same(entry):
            entries[index] = text
            return
    entries.append(text)


def _conda_from_definition(definition: EnvironmentDefinition) -> CondaDependencies:
    """Dependencies whose translation gives ``definition``'s packages back (best effort for hand-made ones).

    A definition stores the translated requirement list (conda-derived ones first, then the
    ``pip:`` section); the conda-derived head is recognized by translating the conda entries again.
    """
    dependencies = CondaDependencies()
    dependencies._channels = list(definition.channels)
    conda = list(definition.conda_packages_original)
    pip = list(definition.pip_requirements)
    if conda:
        try:
            derived = translate_conda_spec({"dependencies": conda}, origin="stored definition").pip_requirements
        except CondaSpecError:
            derived = ()
        head = [normalize_requirement(r) for r in pip[: len(derived)]]
        if head == [normalize_requirement(r) for r in derived]:
            pip = pip[len(derived):]
        else:  # the requirements do not start with the conda ones: keep them all as pip lines
            conda = [c for c in conda if _conda_name(c) == "python"]
    dependencies._conda = conda
    dependencies._pip = pip
    if definition.python_version and dependencies.get_python_version() is None:
        dependencies.set_python_version(definition.python_version)
    return dependencies


# ------------------------------------------------------------------------------------- sections


@dataclass
class PythonSection:
    """``env.python``: how the run's Python is made.

    ``user_managed_dependencies=True`` builds nothing: the run uses ``interpreter_path`` (default:
    the Python runlab runs on) as it is, and ``conda_dependencies`` are not installed.
    """

    user_managed_dependencies: bool = False
    interpreter_path: str | None = None
    conda_dependencies: CondaDependencies = field(default_factory=CondaDependencies)


@dataclass
class DockerSection:
    """``env.docker``: accepted so that Azure ML code runs; runlab builds virtual environments, not images."""

    enabled: bool = False
    base_image: str | None = None
    base_dockerfile: str | None = None
    shm_size: str | None = None
    arguments: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------- build


@dataclass(frozen=True)
class EnvironmentBuild(BuiltEnvironment):
    """A finished build (a :class:`BuiltEnvironment`), with the methods of Azure ML's build details."""

    @classmethod
    def of(cls, built: BuiltEnvironment) -> "EnvironmentBuild":
        return cls(**{f.name: getattr(built, f.name) for f in fields(built)})

    @property
    def status(self) -> str:
        """``"Succeeded"``: a build that failed raised EnvironmentBuildError instead."""
        return "Succeeded"

    def wait_for_completion(self, show_output: bool = False) -> "EnvironmentBuild":
        """Return at once (the build already finished); ``show_output=True`` prints the build log."""
        if show_output:
            print(self.get_log(), end="")
        return self

    def get_log(self) -> str:
        """The build log (empty for a user-managed environment, which builds nothing)."""
        if self.log_path is None or not self.log_path.is_file():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@dataclass(frozen=True)
class CachedEnvironment:
    """A built environment in the cache. ``exclusive_bytes``: what deleting it frees (most files are
    hard links into uv's package cache, which stay); ``size_bytes``: the size of all its files."""

    key: str
    path: Path
    name: str | None
    size_bytes: int
    exclusive_bytes: int


# ----------------------------------------------------------------------------------- environment


class Environment:
    """A named Python environment for runs: ``Environment(name)`` is empty (no packages; the Python
    runlab runs on). Attributes: ``name``, ``version`` (None until registered; ``"1"``, ``"2"``...),
    ``python`` (:class:`PythonSection`), ``environment_variables`` (set in the run's process),
    ``docker`` (:class:`DockerSection`, ignored).

    Raises:
        InvalidNameError: ``name`` breaks the naming rule.
    """

    def __init__(self, name: str, **_azure: Any) -> None:
        self._load(EnvironmentDefinition(name=check_environment_name(name)), version=None)

    def _load(self, base: EnvironmentDefinition, version: str | None,
              conda: CondaDependencies | None = None) -> None:
        self.name: str = base.name
        self.version: str | None = version
        self.python = PythonSection(
            user_managed_dependencies=base.user_managed,
            interpreter_path=base.interpreter_path,
            conda_dependencies=conda if conda is not None else _conda_from_definition(base),
        )
        self.environment_variables: dict[str, str] = dict(base.environment_variables)
        self.docker = DockerSection()
        # Packages unchanged since loading: definition() uses base's, byte for byte (same hash).
        self._base = base
        self._base_conda = copy.deepcopy(self.python.conda_dependencies)

    @classmethod
    def _of(cls, definition: EnvironmentDefinition, version: str | None = None,
            conda: CondaDependencies | None = None) -> "Environment":
        env = cls.__new__(cls)
        env._load(definition, version, conda)
        return env

    # ---- constructors

    @classmethod
    def from_conda_specification(cls, name: str, file_path: str | os.PathLike[str]) -> "Environment":
        """An environment from a conda environment file (``environment.yml``).

        Conda packages are installed from PyPI under their PyPI names (``pytorch`` -> ``torch``); a
        python pin older than runlab supports (``python=3.6.2``) is upgraded, with a warning.

        Raises:
            InvalidNameError: bad ``name``.
            CondaSpecError: unreadable file, or entries pip cannot install (all listed, with the fix).
            RequirementsFileError: a ``-r`` file of the ``pip:`` section cannot be read.
        """
        check_environment_name(name)
        definition = EnvironmentDefinition.from_conda_file(Path(file_path), name=name)
        return cls._of(definition, conda=CondaDependencies(file_path))

    @classmethod
    def from_pip_requirements(cls, name: str, file_path: str | os.PathLike[str],
                              pip_version: str | None = None) -> "Environment":
        """An environment from a pip requirements file (``-r`` includes read in place).

        ``pip_version`` is ignored: runlab installs packages with uv.

        Raises:
            InvalidNameError: bad ``name``.
            RequirementsFileError: the file, or one it includes, cannot be read.
        """
        check_environment_name(name)
        definition = EnvironmentDefinition.from_requirements_file(Path(file_path), name=name)
        conda = CondaDependencies()
        conda._pip = list(definition.pip_requirements)
        return cls._of(definition, conda=conda)

    @classmethod
    def from_existing_conda_environment(cls, name: str, conda_environment_name: str) -> "Environment":
        """A user-managed environment: the python of an existing conda environment, used as it is.

        Raises:
            InvalidNameError: bad ``name``.
            CondaEnvironmentNotFoundError: no such conda environment (the message lists where runlab looked).
        """
        check_environment_name(name)
        return cls._of(EnvironmentDefinition.from_existing_conda_env(conda_environment_name, name=name))

    @classmethod
    def from_docker_image(cls, name: str, image: str, container_registry: Any = None,
                          conda_specification: str | os.PathLike[str] | None = None,
                          pip_requirements: str | os.PathLike[str] | None = None) -> "Environment":
        """Accepted so that Azure ML code runs: runlab builds Python environments, not images. ``image``
        is recorded (``env.docker.base_image``) and not used; the environment holds the packages of
        ``conda_specification`` or ``pip_requirements`` (list the image's packages there), else none
        (the run uses the Python runlab runs on). Prints a note saying so."""
        env = cls._from_docker(name, f"from_docker_image(image={image!r})", conda_specification, pip_requirements)
        env.docker.base_image = image
        return env

    @classmethod
    def from_dockerfile(cls, name: str, dockerfile: str | os.PathLike[str],
                        conda_specification: str | os.PathLike[str] | None = None,
                        pip_requirements: str | os.PathLike[str] | None = None) -> "Environment":
        """Accepted so that Azure ML code runs: runlab builds Python environments, not images. The
        Dockerfile (its text, or a path to it) is recorded (``env.docker.base_dockerfile``) and not used;
        the packages are those of ``conda_specification`` or ``pip_requirements``, as
        :meth:`from_docker_image`. Prints a note saying so."""
        text = str(dockerfile)
        candidate = Path(text) if "\n" not in text and len(text) < 4096 else None
        if candidate is not None and candidate.is_file():
            text = candidate.read_text(encoding="utf-8", errors="replace")
        env = cls._from_docker(name, "from_dockerfile(...)", conda_specification, pip_requirements)
        env.docker.base_dockerfile = text
        return env

    @classmethod
    def _from_docker(cls, name: str, call: str, conda_specification: str | os.PathLike[str] | None,
                     pip_requirements: str | os.PathLike[str] | None) -> "Environment":
        if conda_specification is not None and pip_requirements is not None:
            raise UserError(f"Environment.{call}: give conda_specification or pip_requirements, not both")
        if conda_specification is not None:
            env = cls.from_conda_specification(name, conda_specification)
        elif pip_requirements is not None:
            env = cls.from_pip_requirements(name, pip_requirements)
        else:
            env = cls(name)
        packages = "the packages of that file" if (conda_specification or pip_requirements) else (
            "no packages (the Python runlab runs on); pass conda_specification= or pip_requirements= "
            "with the image's packages")
        print(f"runlab: Environment.{call} for {name!r}: runlab builds Python environments, not images; the "
              f"image is recorded in env.docker and not used. The environment has {packages}.", file=sys.stderr)
        env.docker.enabled = True
        return env

    def save_to_directory(self, path: str | os.PathLike[str], overwrite: bool = False) -> None:
        """Write the environment into folder ``path``: ``azureml_environment.json`` (the definition,
        ``docker`` and ``version``) and ``conda_dependencies.yml`` (the packages, as written);
        :meth:`load_from_directory` reads them back. Raises UserError when the files exist and
        ``overwrite`` is False."""
        import json

        folder = Path(path)
        files = (folder / _SAVED_DEFINITION, folder / _DEFAULT_CONDA_FILE)
        if not overwrite and any(f.exists() for f in files):
            raise UserError(f"save_to_directory: {folder} already holds a saved environment; pass overwrite=True",
                            path=folder)
        folder.mkdir(parents=True, exist_ok=True)
        data = {**self.to_dict(), "docker": asdict(self.docker)}
        files[0].write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        self.python.conda_dependencies.save(files[1])

    @classmethod
    def load_from_directory(cls, path: str | os.PathLike[str]) -> "Environment":
        """Read an environment that :meth:`save_to_directory` wrote. Raises UserError when ``path`` holds
        none, or the files are not an environment."""
        import json

        folder = Path(path)
        saved = folder / _SAVED_DEFINITION
        try:
            data = json.loads(saved.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise UserError(f"load_from_directory: no {_SAVED_DEFINITION} in {folder} (write one with "
                            "env.save_to_directory(path))", path=folder) from exc
        except (OSError, ValueError) as exc:
            raise UserError(f"load_from_directory: {saved} is not valid JSON ({exc})", path=saved) from exc
        if not isinstance(data, dict):
            raise UserError(f"load_from_directory: {saved} does not hold an environment", path=saved)
        env = cls.from_dict(data)
        conda_file = folder / _DEFAULT_CONDA_FILE
        if conda_file.is_file():
            conda = CondaDependencies(conda_file)
            if conda._translate(f"environment {env.name!r}").pip_requirements == env._base.pip_requirements:
                env = cls._of(env._base, env.version, conda)  # the packages as they were written
        docker = data.get("docker")
        if isinstance(docker, dict):
            env.docker = DockerSection(**{k: v for k, v in docker.items() if k in DockerSection.__dataclass_fields__})
        return env

    @staticmethod
    def add_private_pip_wheel(workspace: "Workspace", file_path: str | os.PathLike[str],
                              exist_ok: bool = False) -> str:
        """Keep a wheel file in the workspace (``files/wheels/``) and return its path, to add to an
        environment: ``conda_dependencies.add_pip_package(Environment.add_private_pip_wheel(ws, path))``.
        Raises UserError when ``file_path`` is not a ``.whl`` file, or when a different wheel of that name
        is kept already and ``exist_ok`` is False (the kept one is returned with ``exist_ok=True``)."""
        import filecmp
        import shutil

        source = Path(file_path)
        if not source.is_file() or source.suffix != ".whl":
            raise UserError(f"add_private_pip_wheel: {source} is not a wheel file (*.whl)", path=source)
        target = workspace.folder.path / "files" / "wheels" / source.name
        if target.exists():
            if exist_ok or filecmp.cmp(source, target, shallow=False):
                return str(target)
            raise UserError(f"add_private_pip_wheel: a different {source.name} is kept in workspace "
                            f"{workspace.name} already ({target}); pass exist_ok=True to use that one, or "
                            "give the wheel a new version", path=target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
        return str(target)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Environment":
        """Read what :meth:`to_dict` wrote (an EnvironmentDefinition dict, plus ``version``).

        Raises:
            UserError: not an environment definition.
        """
        version = data.get("version")
        return cls._of(EnvironmentDefinition.from_dict(data), None if version is None else str(version))

    def to_dict(self) -> dict[str, Any]:
        """The definition as a JSON-ready dict (EnvironmentDefinition's), plus ``version``."""
        return {**self.definition().to_dict(), "version": self.version}

    # ---- the definition

    def definition(self) -> EnvironmentDefinition:
        """The execution layer's definition of this environment as its attributes are now.

        Raises:
            CondaSpecError: conda packages added since loading cannot be installed with pip.
        """
        conda = self.python.conda_dependencies
        packages = self._base if conda == self._base_conda else conda._translate(f"environment {self.name!r}")
        interpreter = self.python.interpreter_path
        return replace(
            packages,
            name=self.name,
            user_managed=bool(self.python.user_managed_dependencies),
            interpreter_path=str(interpreter) if interpreter else None,
            environment_variables={str(k): str(v) for k, v in self.environment_variables.items()},
            python_resolved=self._base.python_resolved,
        )

    def content_hash(self) -> str:
        """The hash built environments are cached by: same packages, same hash, whatever the name."""
        return self.definition().content_hash()

    def cache_status(self) -> EnvironmentStatus:
        """Whether this environment is built in this machine's cache (a hash and two stats; no subprocess)."""
        return environment_status(self.definition(), environment_cache_root())

    # ---- workspace registry

    def register(self, workspace: "Workspace") -> "Environment":
        """Register this definition in ``workspace`` as the next version of its name.

        Registering the same packages as the latest version returns that version. Returns the
        registered environment (``version`` set); this object is left as it is.

        Raises:
            InvalidNameError: bad ``name``.
            CondaSpecError: conda packages cannot be installed with pip.
            StoreError: the workspace database failed.
        """
        check_environment_name(self.name)
        definition = self.definition().normalized()
        record = workspace.folder.store.register_environment(self.name, definition.content_hash(),
                                                             definition.to_dict())
        return self._registered(record.definition, record.version, like=self)

    @classmethod
    def _registered(cls, stored: Mapping[str, Any], version: int,
                    like: "Environment | None" = None) -> "Environment":
        definition = EnvironmentDefinition.from_dict(stored)
        conda = None
        if like is not None and like.definition().normalized() == definition:
            conda = copy.deepcopy(like.python.conda_dependencies)  # keep how the packages were written
        return cls._of(definition, str(version), conda)

    @classmethod
    def get(cls, workspace: "Workspace", name: str, version: int | str | None = None,
            label: str | None = None) -> "Environment":
        """The registered environment ``name``: its latest version, or ``version`` (``label`` is accepted
        and ignored: runlab has no labels). An Azure ML curated name (``AzureML-Minimal``,
        ``AzureML-PyTorch-...``, ``AzureML-sklearn-...``: :mod:`runlab.sdk.curated`) not registered in the
        workspace gives runlab's definition of it, as version ``"1"``.

        Raises:
            NotFoundError: no such name or version (the message lists what is registered).
            UserError: ``version`` is not a number.
        """
        from runlab.sdk.curated import curated_definition

        number = _version_number(version)
        store = workspace.folder.store
        try:
            record = store.get_environment(name, number)
        except NotFoundError as exc:
            curated = curated_definition(name)
            if curated is not None and number in (None, 1):
                return cls._of(curated, "1")
            raise NotFoundError(_missing(workspace, name, number), name=name, version=version) from exc
        return cls._registered(record.definition, record.version)

    @classmethod
    def list(cls, workspace: "Workspace") -> dict[str, "Environment"]:
        """The registered environments of ``workspace``, as Azure returns them: ``{name: latest version}``."""
        return {env.name: env for env in registered_environments(workspace)}

    def clone(self, new_name: str) -> "Environment":
        """A deep copy named ``new_name``, not registered (``version`` None).

        Raises:
            InvalidNameError: bad ``new_name``.
        """
        check_environment_name(new_name)
        twin = copy.deepcopy(self)
        twin.name = new_name
        twin.version = None
        return twin

    # ---- build

    def build_local(self, workspace: "Workspace | None" = None, platform: str | None = None, *,
                    useDocker: bool = False, pushImageToWorkspaceAcr: bool = False,
                    show_output: bool = True) -> EnvironmentBuild:
        """Build this environment on this machine (or find it built), with a progress line per phase.

        The build goes into the machine's cache (:func:`environment_cache_root`), shared by every
        workspace, so ``workspace`` is not needed; ``platform``, ``useDocker`` and
        ``pushImageToWorkspaceAcr`` are accepted for Azure ML code and ignored (no Docker: uv
        builds a virtual environment). A user-managed environment builds nothing.

        Raises:
            EnvironmentBuildError: a build step failed (the message quotes the build log and names it).
            PythonNotFoundError: no installed Python matches the python pin.
            CondaSpecError: conda packages cannot be installed with pip.
        """
        definition = self.definition()
        if not show_output:
            return EnvironmentBuild.of(build_environment(definition, environment_cache_root()))
        from rich.console import Console
        from rich.markup import escape

        console = Console(highlight=False)
        if useDocker:
            console.print("note: useDocker is ignored: runlab builds a virtual environment with uv", soft_wrap=True)
        console.print(f"environment [bold]{escape(self.name)}[/bold] (hash {definition.content_hash()[:12]})",
                      soft_wrap=True)
        with console.status(f"building environment {escape(self.name)}") as status:

            def progress(line: str) -> None:
                status.update(f"{escape(self.name)}: {escape(line)}")
                console.print(f"  {escape(line)}", soft_wrap=True)

            built = build_environment(definition, environment_cache_root(), progress)
        for warning in built.warnings:
            console.print(f"[yellow]warning:[/yellow] {escape(warning)}", soft_wrap=True)
        if built.user_managed:
            console.print(f"user-managed: runs use {built.python_path} as it is", soft_wrap=True)
        elif built.cached:
            console.print(f"already built: {built.env_dir}; build log: {built.log_path}", soft_wrap=True)
        else:
            console.print(f"built in {built.seconds:.1f} s; build log: {built.log_path}", soft_wrap=True)
        return EnvironmentBuild.of(built)

    def build(self, workspace: "Workspace | None" = None, **kwargs: Any) -> EnvironmentBuild:
        """Same as :meth:`build_local` (Azure ML builds in the cloud; runlab builds here)."""
        return self.build_local(workspace, **kwargs)

    def get_build_log(self, workspace: "Workspace | None" = None) -> str:
        """The log of this environment's build in the machine's cache (empty if user-managed).

        Raises:
            NotFoundError: not built on this machine yet.
        """
        state = self.cache_status()
        if state.user_managed or state.env_dir is None:
            return ""
        log = state.env_dir / "build.log"
        if not log.is_file():
            raise NotFoundError(
                f"environment {self.name!r} (hash {state.hash[:12]}) has not been built on this machine: "
                f"build it with env.build_local(ws) or `runlab env build {self.name}`", name=self.name,
            )
        return log.read_text(encoding="utf-8", errors="replace")

    # ---- object protocol

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Environment):
            return NotImplemented
        return self.name == other.name and self.definition().normalized() == other.definition().normalized()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        conda = self.python.conda_dependencies
        parts = [f"name={self.name!r}", f"version={self.version!r}"]
        if self.python.user_managed_dependencies:
            parts.append(f"interpreter_path={self.python.interpreter_path!r}")
        else:
            parts += [f"python={conda.get_python_version()!r}", f"conda_packages={conda.conda_packages!r}",
                      f"pip_packages={conda._pip!r}"]
        if self.environment_variables:
            parts.append(f"environment_variables={self.environment_variables!r}")
        return f"Environment({', '.join(parts)})"


def _version_number(version: int | str | None) -> int | None:
    if version is None or isinstance(version, int):
        return version
    text = str(version).strip()
    if not text.isdigit():
        raise UserError(f"environment version {version!r} is not a version number; write e.g. version='1'")
    return int(text)


def _missing(workspace: "Workspace", name: str, version: int | None) -> str:
    records = workspace.folder.store.list_environments()
    versions = [str(r.version) for r in records if r.name == name]
    if versions and version is not None:
        return (f"environment {name!r} has no version {version} in workspace {workspace.name!r} "
                f"(its versions: {', '.join(versions)}); leave version out for the latest")
    names = sorted({r.name for r in records})
    known = ", ".join(names) if names else "none yet"
    return (f"environment {name!r} is not registered in workspace {workspace.name!r} (registered: {known}): "
            "register it with env.register(ws), or list them with `runlab env list`")


# ------------------------------------------------------------------------------------ registry, cache


def registered_environments(workspace: "Workspace") -> builtins.list[Environment]:
    """Every registered version of every environment of ``workspace``, by name then version."""
    return [Environment._registered(r.definition, r.version) for r in workspace.folder.store.list_environments()]


def list_cached_environments(cache_root: str | os.PathLike[str] | None = None) -> builtins.list[CachedEnvironment]:
    """The environments built in the cache (default :func:`environment_cache_root`), with their sizes."""
    import json

    root = Path(cache_root) if cache_root is not None else environment_cache_root()
    if not root.is_dir():
        return []
    found = []
    for entry in sorted(root.iterdir()):
        if not entry.is_dir() or not _CACHE_KEY.match(entry.name):
            continue
        try:
            name = json.loads((entry / "definition.json").read_text(encoding="utf-8")).get("name")
        except (OSError, ValueError, AttributeError):
            name = None
        size, exclusive = _sizes(entry)
        found.append(CachedEnvironment(entry.name, entry, name if isinstance(name, str) else None, size, exclusive))
    return found


def prune_cached_environments(keep: Iterable[Environment | EnvironmentDefinition | str],
                              cache_root: str | os.PathLike[str] | None = None) -> builtins.list[CachedEnvironment]:
    """Delete the cached environments not in ``keep`` (environments, definitions or content hashes).

    An environment being built is left alone. Returns what was removed, sized before removal.
    """
    root = Path(cache_root) if cache_root is not None else environment_cache_root()
    hashes = {k if isinstance(k, str) else k.content_hash() for k in keep}
    before = {c.key: c for c in list_cached_environments(root)}
    return [before[key] for key in prune(root, hashes) if key in before]


def _sizes(folder: Path) -> tuple[int, int]:
    total = exclusive = 0
    for directory, _subdirs, files in os.walk(folder):
        for file in files:
            try:
                info = os.lstat(os.path.join(directory, file))
            except OSError:
                continue
            total += info.st_size
            if info.st_nlink <= 1:
                exclusive += info.st_size
    return total, exclusive
