"""Run environments: definition -> normalized definition -> hash -> ``uv`` build -> cache.

An :class:`EnvironmentDefinition` says what a run needs (a python pin, pip requirements, or an
existing interpreter used as is). Built environments are cached by :meth:`~EnvironmentDefinition.content_hash`,
a hash of the normalized definition without its name (Azure ML hashes the definition too: two
names for the same packages share one build, and reordering packages changes the hash).

Cache layout, one folder per definition hash::

    <cache_root>/<hash[:16]>.lock      filelock: one process builds, the others wait
    <cache_root>/<hash[:16]>/venv/     the virtual environment
                            build.log  every command and its output
                            requirements.txt, definition.json   for the record
                            ready      written last (atomic rename): the build is complete

Deciding on a cache hit is a stat of ``ready`` and of the venv's python: no subprocess, no lock.

Inside every built environment ``import runlab`` works, with the same code as the workspace's:

- a ``_runlab.pth`` file in the venv's site-packages names the folder holding the ``runlab`` package
  of the running runlab (``src/`` of a checkout or editable install). For a regular install in a
  site-packages folder, which holds other packages too, a symlink to the ``runlab`` package
  folder is made instead, so nothing else leaks into the environment;
- runlab's own requirements (from its ``pyproject.toml`` in a checkout, else its installed
  metadata, minus extras) are installed with the user's packages, in one resolution, so a user pin
  that conflicts with runlab fails the build with uv's explanation instead of failing the run;
- Azure SDK packages (``azureml-*``) in a definition are removed (with a warning): runlab is the SDK.
  Such a definition gets ``azureml_compat``: runlab's ``azureml.core`` compatibility package
  (``compat/azureml-core-runlab``, see :func:`azureml_compat_source`) is linked into the environment
  the way runlab is, so ``from azureml.core import Run`` works in the run.

The hash includes runlab's version and requirements, so upgrading runlab rebuilds environments.

Python pin: runlab itself needs Python >= 3.10 inside the run environment. A pin that allows no
such version (the Azure tutorial's ``python=3.6.2``) is upgraded to the Python runlab runs on, with
a warning recorded in the normalized definition (``warnings``, ``python_resolved``) and in the
build log, so that tutorial code runs unchanged.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Mapping

from filelock import FileLock, Timeout

from runlab.core.errors import RunlabError, UserError
from runlab.execution import processes
from runlab.execution.conda import (
    find_conda_env_python,
    load_conda_spec,
    translate_conda_spec,
)
from runlab.execution.interpreters import (
    PythonNotFoundError,
    current_interpreter,
    parse_version,
    resolve_interpreter,
    validate_request,
    version_matches,
)
from runlab.execution.pipconfig import (
    PipConfig,
    RequirementsFileError,
    read_pip_config,
    read_requirement_lines,
)

__all__ = [
    "BUILD_LOG_TAIL_LINES",
    "MIN_RUN_PYTHON",
    "BuiltEnvironment",
    "EnvironmentBuildCanceled",
    "EnvironmentBuildError",
    "EnvironmentDefinition",
    "EnvironmentStatus",
    "build_environment",
    "environment_status",
    "normalize_requirement",
    "prune",
    "requirement_name",
    "runlab_requirements",
    "runlab_source_dir",
    "runlab_version",
]

#: Oldest Python that runlab (and so every run environment) supports.
MIN_RUN_PYTHON = (3, 10)
#: Lines of the build log quoted in an EnvironmentBuildError.
BUILD_LOG_TAIL_LINES = 30
#: Bumped when the build recipe changes in a way that needs old environments rebuilt.
RECIPE_VERSION = 1
DEFAULT_LOCK_TIMEOUT_S = 3600.0
CANCEL_POLL_S = 0.2  # how often a build waiting for another one's lock looks at ``cancel``

# Used only when neither a pyproject.toml nor installed metadata can be read; keep in step with pyproject.
_FALLBACK_REQUIREMENTS = (
    "sqlalchemy>=2.0", "alembic>=1.13", "click>=8.1", "rich>=13", "numpy>=1.24", "filelock>=3.12",
    "pathspec>=0.12", "pyyaml>=6", "uv>=0.4",
)
_KEY_LENGTH = 16
_KEY = re.compile(r"^[0-9a-f]{16}$")
_REQUIREMENT = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(\[[^\]]*\])?\s*(.*)$")

Progress = Callable[[str], None]


class EnvironmentBuildError(RunlabError):
    """Building an environment failed; the message quotes the end of the build log (``log_path``)."""

    hash: str
    log_path: Path


class EnvironmentBuildCanceled(EnvironmentBuildError):
    """The build was stopped (``cancel`` was set): the command it ran was killed with its process group,
    and nothing of the environment was kept."""


# --------------------------------------------------------------------------------------------- runlab


def runlab_source_dir() -> Path:
    """The folder that holds the running ``runlab`` package (``src/`` of a checkout, or a site-packages)."""
    return Path(__file__).resolve().parents[2]


@lru_cache(maxsize=1)
def _runlab_project() -> tuple[str, tuple[str, ...]]:
    source = runlab_source_dir()
    pyproject = source.parent / "pyproject.toml"
    if sys.version_info >= (3, 11) and pyproject.is_file() and source.name == "src":
        import tomllib

        try:
            project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        except (OSError, tomllib.TOMLDecodeError):
            project = {}
        if project.get("name") == "runlab":
            return str(project.get("version", "0+unknown")), tuple(project.get("dependencies", ()))
    try:
        version = importlib.metadata.version("runlab")
        requires = importlib.metadata.requires("runlab") or []
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown", _FALLBACK_REQUIREMENTS
    return version, tuple(r for r in requires if not re.search(r";.*\bextra\s*==", r))


def runlab_version() -> str:
    """The version of the running runlab (part of every environment hash)."""
    return _runlab_project()[0]


# What only the studio server needs: a training script never imports it, so run environments
# stay small (plotly alone is tens of MB).
SERVER_ONLY_REQUIREMENTS = frozenset({"fastapi", "uvicorn", "plotly", "swagger-ui-bundle", "swagger-ui-py"})


def runlab_requirements() -> tuple[str, ...]:
    """runlab's own runtime requirements that a run needs, installed into every built environment."""
    return tuple(r for r in _runlab_project()[1] if requirement_name(r) not in SERVER_ONLY_REQUIREMENTS)


# ------------------------------------------------------------------------------------ requirements


def normalize_requirement(line: str) -> str:
    """One requirement line in canonical form, for hashing: the same packages give the same text.

    The name is canonicalized (PEP 503: ``Scikit_Learn`` -> ``scikit-learn``), extras lowercased,
    whitespace removed from the version part and collapsed in markers. Option lines (``-c x``)
    and paths are only stripped. Order is never changed.
    """
    text = " ".join(line.split())
    if not text or text.startswith("-") or "/" in text.split(";")[0].split("@")[0]:
        return text
    match = _REQUIREMENT.match(text)
    if not match:
        return text
    name = _canonical(match.group(1))
    extras = ""
    if match.group(2):
        extras = "[" + ",".join(_canonical(e) for e in match.group(2)[1:-1].split(",") if e.strip()) + "]"
    rest, _, marker = match.group(3).partition(";")
    rest = rest.strip()
    if rest.startswith("@"):
        spec = " @ " + rest[1:].strip()
    else:
        spec = "".join(rest.split())
    marker = " ".join(marker.split())
    return name + extras + spec + (f"; {marker}" if marker else "")


def requirement_name(line: str) -> str | None:
    """The canonical project name of a requirement line, or None for options and paths."""
    text = line.strip()
    if not text or text.startswith("-") or "/" in text.split(";")[0].split("@")[0]:
        return None
    match = _REQUIREMENT.match(text)
    return _canonical(match.group(1)) if match else None


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def _is_azure_sdk(name: str | None) -> bool:
    return name is not None and (name == "azureml" or name.startswith("azureml-"))


# -------------------------------------------------------------------------------------- definition


@dataclass(frozen=True)
class EnvironmentDefinition:
    """What a run's Python environment must contain.

    ``python_version`` is the pin as written (``3.6.2``, ``3.11``, ``>=3.10``; None: the Python
    runlab runs on); ``pip_requirements`` are pip requirement lines in order (a conda spec's
    packages, translated, then its ``pip:`` section); ``channels`` and ``conda_packages_original``
    record a conda spec; ``user_managed`` means use ``interpreter_path`` (or the current
    interpreter) as is, building nothing. ``warnings`` say what translation and normalization
    changed; ``python_resolved`` is set by :meth:`normalized`: the python request the build uses (an
    exact version, once set, is kept by later normalizations while it still fits the pin).
    """

    name: str
    python_version: str | None = None
    pip_requirements: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    conda_packages_original: tuple[str, ...] = ()
    user_managed: bool = False
    interpreter_path: str | None = None
    environment_variables: Mapping[str, str] = field(default_factory=dict, hash=False)
    warnings: tuple[str, ...] = ()
    python_resolved: str | None = None
    azureml_compat: bool = False

    def __post_init__(self) -> None:
        for name in ("pip_requirements", "channels", "conda_packages_original", "warnings"):
            object.__setattr__(self, name, tuple(str(v) for v in getattr(self, name)))
        object.__setattr__(
            self, "environment_variables", {str(k): str(v) for k, v in dict(self.environment_variables).items()}
        )

    # ---- constructors

    @classmethod
    def from_conda_file(cls, path: str | Path, *, name: str | None = None) -> EnvironmentDefinition:
        """A definition from a conda environment file (see :mod:`runlab.execution.conda`).

        Raises:
            CondaSpecError: unreadable file, or entries pip cannot install (all listed, with the fix).
        """
        file = Path(path)
        translation = translate_conda_spec(load_conda_spec(file), base_dir=file.parent.resolve(), origin=str(file))
        return cls(
            name=name or translation.name or file.stem,
            python_version=translation.python_version,
            pip_requirements=translation.pip_requirements,
            channels=translation.channels,
            conda_packages_original=translation.conda_packages_original,
            environment_variables=translation.environment_variables,
            warnings=translation.notes,
        )

    @classmethod
    def from_requirements_file(
        cls, path: str | Path, *, name: str | None = None, python_version: str | None = None
    ) -> EnvironmentDefinition:
        """A definition from a pip requirements file (``-r`` includes are read in place).

        Raises:
            RequirementsFileError: the file or an included one cannot be read.
        """
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise RequirementsFileError(
                f"cannot read pip requirements file {file}: {exc.strerror or exc}", path=str(file)
            ) from exc
        lines = read_requirement_lines(text.splitlines(), file.parent.resolve(), origin=str(file))
        return cls(name=name or file.stem, python_version=python_version, pip_requirements=tuple(lines))

    @classmethod
    def from_existing_conda_env(
        cls, env_name: str, *, name: str | None = None, environ: Mapping[str, str] | None = None
    ) -> EnvironmentDefinition:
        """A user-managed definition whose interpreter is the python of an existing conda environment.

        The environment is found with ``conda env list --json`` when conda is installed, else
        under ``$CONDA_ENVS_PATH``, ``$CONDA_PREFIX``, ``~/miniconda3/envs``, ``~/anaconda3/envs``,
        ``~/miniforge3/envs``, ``~/mambaforge/envs`` and ``/opt/conda/envs``. ``env_name`` may
        also be the environment's folder.

        Raises:
            CondaEnvironmentNotFoundError: not found; the message lists where runlab looked.
        """
        python = find_conda_env_python(env_name, environ=environ)
        return cls(name=name or env_name, user_managed=True, interpreter_path=str(python))

    # ---- serialization

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` reads it back."""
        return {
            "name": self.name,
            "python_version": self.python_version,
            "pip_requirements": list(self.pip_requirements),
            "channels": list(self.channels),
            "conda_packages_original": list(self.conda_packages_original),
            "user_managed": self.user_managed,
            "interpreter_path": self.interpreter_path,
            "environment_variables": dict(self.environment_variables),
            "warnings": list(self.warnings),
            "python_resolved": self.python_resolved,
            **({"azureml_compat": True} if self.azureml_compat else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnvironmentDefinition:
        """Read what :meth:`to_dict` wrote (missing keys take their defaults)."""
        try:
            return cls(
                name=str(data["name"]),
                python_version=data.get("python_version"),
                pip_requirements=tuple(data.get("pip_requirements") or ()),
                channels=tuple(data.get("channels") or ()),
                conda_packages_original=tuple(data.get("conda_packages_original") or ()),
                user_managed=bool(data.get("user_managed", False)),
                interpreter_path=data.get("interpreter_path"),
                environment_variables=dict(data.get("environment_variables") or {}),
                warnings=tuple(data.get("warnings") or ()),
                python_resolved=data.get("python_resolved"),
                azureml_compat=bool(data.get("azureml_compat", False)),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"not an environment definition: {exc}") from exc

    # ---- normalization and hash

    def normalized(self) -> EnvironmentDefinition:
        """The definition as the build sees it (idempotent).

        Requirement lines canonical (:func:`normalize_requirement`, order kept), Azure SDK
        packages removed, the python pin validated and ``python_resolved`` set (upgraded, with a
        warning, when the pin allows no Python >= 3.10).

        Raises:
            UserError: the python pin is not understood.
        """
        warnings = list(self.warnings)

        def warn(message: str) -> None:
            if message not in warnings:
                warnings.append(message)

        requirements: list[str] = []
        azureml_compat = self.azureml_compat
        for line in self.pip_requirements:
            text = normalize_requirement(line)
            if not text:
                continue
            if _is_azure_sdk(requirement_name(text)):
                warn(f"{line.strip()!r} removed: runlab provides the Azure ML SDK API in the run environment "
                     f"(runlab {runlab_version()}, with its azureml.core compatibility package, azureml-core-runlab, "
                     "so `from azureml.core import Run` works)")
                azureml_compat = True
                continue
            requirements.append(text)
        pin = validate_request(self.python_version) if self.python_version else None
        resolved: str | None = None
        if not self.user_managed:
            resolved, note = _effective_python(pin)
            if note:
                warn(note)
            if self.python_resolved and _still_valid(self.python_resolved, pin, upgraded=note is not None):
                # Keep the interpreter chosen where the definition was first normalized (the submitting
                # process), so that an agent running on another Python builds, and hashes, the same thing.
                resolved = self.python_resolved
        return replace(
            self,
            python_version=pin,
            pip_requirements=tuple(requirements),
            channels=tuple(c.strip() for c in self.channels if c.strip()),
            conda_packages_original=tuple(" ".join(c.split()) for c in self.conda_packages_original),
            interpreter_path=self.interpreter_path.strip() if self.interpreter_path else None,
            warnings=tuple(warnings),
            python_resolved=resolved,
            azureml_compat=azureml_compat,
        )

    def hash_payload(self) -> dict[str, Any]:
        """What :meth:`content_hash` hashes: the normalized definition without name, variables and warnings,
        plus runlab's version and requirements."""
        norm = self.normalized()
        return {
            "recipe": RECIPE_VERSION,
            "runlab": runlab_version(),
            "runlab_requirements": list(runlab_requirements()),
            "python_version": norm.python_version,
            "python_resolved": norm.python_resolved,
            "pip_requirements": list(norm.pip_requirements),
            "channels": list(norm.channels),
            "conda_packages_original": list(norm.conda_packages_original),
            "user_managed": norm.user_managed,
            "interpreter_path": norm.interpreter_path,
            **({"azureml_compat": True} if norm.azureml_compat else {}),
        }

    def content_hash(self) -> str:
        """sha256 (hex) of :meth:`hash_payload`: same packages, same hash, whatever the name."""
        text = json.dumps(self.hash_payload(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _still_valid(resolved: str, pin: str | None, *, upgraded: bool) -> bool:
    """Whether an earlier ``python_resolved`` (an exact version) still fits the pin."""
    try:
        version = parse_version(resolved)
    except ValueError:
        return False
    if resolved.count(".") != 2 or version < (*MIN_RUN_PYTHON, 0):
        return False
    return pin is None or upgraded or version_matches(pin, version)


def _effective_python(pin: str | None) -> tuple[str, str | None]:
    """The python request a build satisfies, and the warning when the pin had to be upgraded."""
    current = current_interpreter().version
    current_text = ".".join(map(str, current))
    if pin is None:
        return current_text, None
    floor = ".".join(map(str, MIN_RUN_PYTHON))
    supported = [current] + [(3, minor, micro) for minor in range(MIN_RUN_PYTHON[1], 40) for micro in (0, 99)]
    if not any(version_matches(pin, v) for v in supported if v >= (*MIN_RUN_PYTHON, 0)):
        return current_text, (
            f"python {pin} requested, but runlab needs Python >= {floor} inside the run environment; "
            f"using Python {current_text} (the one runlab runs on). Pin python>={floor} in the spec to choose."
        )
    if re.match(r"^\d", pin):
        return pin, None
    return f"{pin},>={floor}", None  # e.g. >=3.8 -> >=3.8,>=3.10: never an interpreter runlab cannot run on


# ------------------------------------------------------------------------------------------- build


@dataclass(frozen=True)
class BuiltEnvironment:
    """A ready environment: run ``python_path``. ``cached``: this call built nothing (found in the cache,
    built by another process meanwhile, or user-managed: then ``env_dir`` and ``log_path`` are None).
    """

    hash: str
    python_path: Path
    env_dir: Path | None
    log_path: Path | None
    cached: bool
    seconds: float
    user_managed: bool = False
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class EnvironmentStatus:
    """Whether a definition is built in a cache (found with a stat, no subprocess); ``failed`` when
    it is not and the last build of it failed (its build log, ``env_dir/build.log``, says why)."""

    hash: str
    cached: bool
    env_dir: Path | None
    python_path: Path | None
    user_managed: bool = False
    failed: bool = False


def environment_status(definition: EnvironmentDefinition, cache_root: str | Path) -> EnvironmentStatus:
    """Whether ``definition`` is already built under ``cache_root`` (fast: hashing and two stats)."""
    digest = definition.content_hash()
    if definition.user_managed:
        return EnvironmentStatus(digest, True, None, _user_managed_python(definition), user_managed=True)
    env_dir = Path(cache_root).expanduser().absolute() / digest[:_KEY_LENGTH]
    python = _venv_python(env_dir / "venv")
    ready = _is_ready(env_dir)
    return EnvironmentStatus(digest, ready, env_dir, python, failed=not ready and _build_failed(env_dir / "build.log"))


def build_environment(
    definition: EnvironmentDefinition,
    cache_root: str | Path,
    progress: Progress | None = None,
    *,
    pip_config: PipConfig | None = None,
    uv_cache_dir: str | Path | None = None,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
    cancel: threading.Event | None = None,
) -> BuiltEnvironment:
    """Build ``definition`` into ``cache_root``, or find it there already built.

    The same definition is never built twice: a finished build is found by its ``ready`` marker,
    and concurrent callers (threads or processes) wait on a file lock while one of them builds.
    ``progress`` receives one line per phase. ``pip_config`` defaults to :func:`read_pip_config`
    (the user's pip configuration passed on to uv); ``uv_cache_dir`` overrides uv's own cache
    (default ``~/.cache/uv``, shared by all environments so repeated builds are fast).
    Every command runs in its own process group, killed when the command ends. Setting ``cancel``
    (from another thread) stops the build within a fraction of a second: the running command and
    whatever it started are killed, as is a wait for another process's build of the same definition.

    Raises:
        EnvironmentBuildCanceled: ``cancel`` was set.
        EnvironmentBuildError: a build step failed (message: the end of the build log, and its path).
        PythonNotFoundError: no installed Python matches the pin (message: the installed ones).
        UserError: the definition is invalid (python pin not understood...).
    """
    started = time.monotonic()
    say: Progress = progress if progress is not None else (lambda line: None)
    norm = definition.normalized()
    digest = norm.content_hash()
    if norm.user_managed:
        python = _user_managed_python(norm)
        if not python.exists():
            raise PythonNotFoundError(
                f"environment {norm.name!r}: interpreter_path {python} does not exist; point "
                "python.interpreter_path to an installed python, or turn user_managed_dependencies off",
                path=str(python),
            )
        say(f"using {python} as is (user-managed dependencies)")
        return BuiltEnvironment(digest, python, None, None, cached=True, seconds=0.0, user_managed=True,
                                warnings=norm.warnings)

    root = Path(cache_root).expanduser().absolute()
    env_dir = root / digest[:_KEY_LENGTH]
    if _is_ready(env_dir):
        return _cached(digest, env_dir, started, norm)
    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(root / f"{digest[:_KEY_LENGTH]}.lock"))
    deadline = time.monotonic() + lock_timeout_s
    while True:
        try:
            lock.acquire(timeout=lock_timeout_s if cancel is None
                         else max(0.0, min(CANCEL_POLL_S, deadline - time.monotonic())))
            break
        except Timeout as exc:
            if cancel is not None and cancel.is_set():
                raise EnvironmentBuildCanceled(
                    f"building environment {norm.name!r} (hash {digest[:_KEY_LENGTH]}) was canceled while "
                    "waiting for another process's build of it", hash=digest, log_path=env_dir / "build.log",
                ) from None
            if time.monotonic() >= deadline:
                raise EnvironmentBuildError(
                    f"environment {norm.name!r} (hash {digest[:_KEY_LENGTH]}) is being built by another process "
                    f"for over {lock_timeout_s:.0f} s; see {env_dir / 'build.log'}",
                    hash=digest, log_path=env_dir / "build.log",
                ) from exc
    try:
        if _is_ready(env_dir):  # another process built it while this one waited
            say("built by another process meanwhile")
            return _cached(digest, env_dir, started, norm)
        return _build(norm, digest, env_dir, say, started, pip_config, uv_cache_dir, cancel)
    finally:
        lock.release()


def prune(cache_root: str | Path, keep: Iterable[str]) -> list[str]:
    """Remove built environments whose hash is not in ``keep`` (full hashes or 16-char prefixes).

    An environment being built (its lock held) is left alone. Returns the removed folder names.
    """
    root = Path(cache_root).expanduser().absolute()
    if not root.is_dir():
        return []
    kept = {h[:_KEY_LENGTH] for h in keep}
    removed: list[str] = []
    for entry in sorted(root.iterdir()):
        if not entry.is_dir() or not _KEY.match(entry.name) or entry.name in kept:
            continue
        lock_path = root / f"{entry.name}.lock"
        lock = FileLock(str(lock_path))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        try:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
        finally:
            lock.release()
        lock_path.unlink(missing_ok=True)
    return removed


def _build(
    norm: EnvironmentDefinition,
    digest: str,
    env_dir: Path,
    say: Progress,
    started: float,
    pip_config: PipConfig | None,
    uv_cache_dir: str | Path | None,
    cancel: threading.Event | None,
) -> BuiltEnvironment:
    venv = env_dir / "venv"
    log_path = env_dir / "build.log"
    if venv.exists():  # left by a build that crashed
        shutil.rmtree(venv)
    env_dir.mkdir(parents=True, exist_ok=True)
    (env_dir / "ready.tmp").unlink(missing_ok=True)
    config = read_pip_config() if pip_config is None else pip_config
    uv = _uv_binary()
    process_env = {**os.environ, **config.uv_env(), "UV_NO_PROGRESS": "1", "NO_COLOR": "1",
                   "UV_PYTHON_DOWNLOADS": "never"}
    process_env.pop("VIRTUAL_ENV", None)
    if uv_cache_dir is not None:
        process_env["UV_CACHE_DIR"] = str(Path(uv_cache_dir).expanduser().absolute())
    step = "resolving interpreter"
    with open(log_path, "w", encoding="utf-8") as log:
        _log_header(log, norm, digest, config)
        try:
            say(f"resolving interpreter for python {norm.python_resolved}")
            interpreter = resolve_interpreter(norm.python_resolved)
            _note(log, f"interpreter: {interpreter.describe()}")

            step = "creating venv"
            say(f"creating venv with Python {interpreter.version_string} ({interpreter.path})")
            _note(log, f"creating venv with Python {interpreter.version_string}")
            _run([uv, "venv", "--no-project", "--python", str(interpreter.path), str(venv)], log, process_env, env_dir,
                 cancel)

            step = "installing packages"
            own = runlab_requirements()
            user = [r for r in norm.pip_requirements if not r.startswith("-")]
            requirements_file = env_dir / "requirements.txt"
            requirements_file.write_text(
                "# from the environment definition\n" + "".join(f"{r}\n" for r in norm.pip_requirements)
                + f"# runlab {runlab_version()}'s own requirements (runlab itself is linked, see _runlab.pth)\n"
                + "".join(f"{r}\n" for r in own),
                encoding="utf-8",
            )
            say(f"installing {len(user) + len(own)} packages ({len(user)} from the definition, {len(own)} for runlab)")
            _note(log, "installing packages")
            python = _venv_python(venv)
            _run([uv, "pip", "install", "--python", str(python), *config.uv_args(), "-r", str(requirements_file)],
                 log, process_env, env_dir, cancel)

            step = "linking runlab"
            say("linking runlab into the environment")
            _note(log, _link_runlab(venv))
            if norm.azureml_compat:
                _note(log, _link_azureml_compat(venv))
            _run([str(python), "-c", "import runlab, sys; print('runlab importable:', list(runlab.__path__))"],
                 log, {k: v for k, v in process_env.items() if k != "PYTHONPATH"}, env_dir, cancel)

            (env_dir / "definition.json").write_text(
                json.dumps({"hash": digest, **norm.to_dict()}, indent=2) + "\n", encoding="utf-8"
            )
            seconds = time.monotonic() - started
            _note(log, f"done in {seconds:.1f} s")
        except BaseException as exc:
            shutil.rmtree(venv, ignore_errors=True)
            if isinstance(exc, _StepFailed):
                log.flush()
                raise _build_error(norm, digest, step, log_path) from None
            if isinstance(exc, _Canceled):
                _note(log, f"canceled while {step}: stopped, nothing kept")
                raise EnvironmentBuildCanceled(
                    f"building environment {norm.name!r} (hash {digest[:_KEY_LENGTH]}) was canceled while {step}",
                    hash=digest, log_path=log_path, step=step,
                ) from None
            _note(log, f"failed while {step}: {exc}")
            raise
    marker = env_dir / "ready.tmp"
    marker.write_text(json.dumps({
        "hash": digest, "python": str(python), "interpreter": interpreter.version_string,
        "seconds": round(seconds, 3), "built_at": datetime.now(timezone.utc).isoformat(),
    }) + "\n", encoding="utf-8")
    os.replace(marker, env_dir / "ready")
    say(f"done in {seconds:.1f} s")
    return BuiltEnvironment(digest, python, env_dir, log_path, cached=False, seconds=seconds, warnings=norm.warnings)


class _StepFailed(Exception):
    pass


class _Canceled(Exception):
    pass


def _run(command: list[str], log: IO[str], env: Mapping[str, str], cwd: Path, cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise _Canceled(command[0])
    log.write(f"$ {shlex.join(command)}\n")
    log.flush()
    code = processes.run(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         env=dict(env), cwd=cwd, cancel=cancel)
    if cancel is not None and cancel.is_set():
        log.write("(stopped: the build was canceled)\n")
        log.flush()
        raise _Canceled(command[0])
    if code != 0:
        log.write(f"(exit code {code})\n")
        log.flush()
        raise _StepFailed(command[0])


def _note(log: IO[str], message: str) -> None:
    log.write(f"[{datetime.now().strftime('%H:%M:%S')}] {message}\n")
    log.flush()


def _log_header(log: IO[str], norm: EnvironmentDefinition, digest: str, config: PipConfig) -> None:
    log.write(f"runlab environment build: {norm.name!r}, hash {digest}\n")
    log.write(f"runlab {runlab_version()} from {runlab_source_dir()}\n")
    log.write(f"python: {norm.python_version or '(not pinned)'} -> {norm.python_resolved}\n")
    for warning in norm.warnings:
        log.write(f"WARNING: {warning}\n")
    log.write(f"pip configuration read from: {', '.join(config.sources) or '(no files)'}; "
              f"passed to uv as: {shlex.join(config.uv_args()) or '(nothing)'}\n")
    log.flush()


def _build_error(norm: EnvironmentDefinition, digest: str, step: str, log_path: Path) -> EnvironmentBuildError:
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    tail = "\n".join(lines[-BUILD_LOG_TAIL_LINES:])
    return EnvironmentBuildError(
        f"building environment {norm.name!r} (hash {digest[:_KEY_LENGTH]}) failed while {step}. "
        f"Last lines of the build log {log_path}:\n{tail}",
        hash=digest, log_path=log_path, step=step,
    )


def _cached(digest: str, env_dir: Path, started: float, norm: EnvironmentDefinition) -> BuiltEnvironment:
    return BuiltEnvironment(digest, _venv_python(env_dir / "venv"), env_dir, env_dir / "build.log", cached=True,
                            seconds=time.monotonic() - started, warnings=norm.warnings)


# How a failed build ends its log (see _run and _build): a step's exit code, or what was raised.
# A build that starts again rewrites the log, so only the last build's ending is read.
_FAILED_LOG_LINE = re.compile(r"^(\(exit code -?\d+\)|\[\d\d:\d\d:\d\d\] failed while .*)$", re.MULTILINE)
_LOG_TAIL_BYTES = 16 * 1024


def _build_failed(log_path: Path) -> bool:
    """Whether the build that wrote ``log_path`` failed (read from the end of its log; no ready marker)."""
    try:
        with open(log_path, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - _LOG_TAIL_BYTES))
            tail = log.read().decode("utf-8", errors="replace")
    except OSError:
        return False
    return _FAILED_LOG_LINE.search(tail) is not None


def _is_ready(env_dir: Path) -> bool:
    return (env_dir / "ready").is_file() and _venv_python(env_dir / "venv").exists()


def _venv_python(venv: Path) -> Path:
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def _user_managed_python(definition: EnvironmentDefinition) -> Path:
    return Path(definition.interpreter_path).expanduser() if definition.interpreter_path else Path(sys.executable)


def _uv_binary() -> str:
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return found
    raise EnvironmentBuildError("uv is not installed; `pip install uv` in the environment runlab runs in")


def _link_runlab(venv: Path) -> str:
    """Make the running runlab importable in ``venv``; returns what was done, for the log."""
    if os.name == "nt":
        site_packages = venv / "Lib" / "site-packages"
    else:
        found = sorted((venv / "lib").glob("python*/site-packages"))
        if not found:
            raise EnvironmentBuildError(f"no site-packages folder in {venv}")
        site_packages = found[0]
    source = runlab_source_dir()
    if source.name in ("site-packages", "dist-packages"):
        target = site_packages / "runlab"
        target.symlink_to(source / "runlab", target_is_directory=True)
        return f"linked {target} -> {source / 'runlab'}"
    pth = site_packages / "_runlab.pth"
    pth.write_text(f"{source}\n", encoding="utf-8")
    return f"wrote {pth}: {source}"


AZUREML_COMPAT_DISTRIBUTION = "azureml-core-runlab"
AZUREML_COMPAT_PACKAGES = ("core", "data", "exceptions")  # azureml/<these>: what the compat package holds


def azureml_compat_source() -> Path | None:
    """The folder that holds runlab's ``azureml`` compatibility package (the one with ``azureml/core``): where
    the running Python finds it (``pip install ./compat/azureml-core-runlab``), else ``compat/azureml-core-runlab/src``
    of the checkout runlab runs from; None when neither has it. Microsoft's ``azureml-core`` is never taken."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("azureml.core")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin and _is_compat_core(Path(spec.origin)):
        return Path(spec.origin).resolve().parents[2]
    checkout = runlab_source_dir().parent / "compat" / AZUREML_COMPAT_DISTRIBUTION / "src"
    if _is_compat_core(checkout / "azureml" / "core" / "__init__.py"):
        return checkout
    return None


def _is_compat_core(init: Path) -> bool:
    try:
        return "__runlab_compat__" in init.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def _link_azureml_compat(venv: Path) -> str:
    """Make the azureml compatibility package importable in ``venv`` (as :func:`_link_runlab` does runlab)."""
    source = azureml_compat_source()
    if source is None:
        return (f"WARNING: the environment asks for the Azure ML SDK, but runlab's compatibility package is not "
                f"installed: `from azureml.core import ...` will fail in the run; install it with "
                f"`pip install ./compat/{AZUREML_COMPAT_DISTRIBUTION}` (or `pip install runlab[azureml]`), or import "
                "from runlab")
    site_packages = _site_packages(venv)
    if source.name in ("site-packages", "dist-packages"):
        (site_packages / "azureml").mkdir(exist_ok=True)
        for name in AZUREML_COMPAT_PACKAGES:
            target = site_packages / "azureml" / name
            if not target.exists():
                target.symlink_to(source / "azureml" / name, target_is_directory=True)
        return f"linked azureml.{{{','.join(AZUREML_COMPAT_PACKAGES)}}} from {source / 'azureml'}"
    pth = site_packages / "_azureml_runlab.pth"
    pth.write_text(f"{source}\n", encoding="utf-8")
    return f"wrote {pth}: {source} (azureml.core from {AZUREML_COMPAT_DISTRIBUTION})"


def _site_packages(venv: Path) -> Path:
    if os.name == "nt":
        return venv / "Lib" / "site-packages"
    found = sorted((venv / "lib").glob("python*/site-packages"))
    if not found:
        raise EnvironmentBuildError(f"no site-packages folder in {venv}")
    return found[0]
