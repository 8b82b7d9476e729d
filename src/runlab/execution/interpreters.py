"""Installed Python interpreters, and the one that best matches an environment's python pin.

runlab never downloads a Python build: an environment is built on an interpreter already on
this machine. They are looked for, in this order:

- the interpreter runlab runs on (its base interpreter when runlab runs in a venv);
- pyenv: ``$PYENV_ROOT/versions/X.Y.Z/bin/python`` (default root ``~/.pyenv``);
- uv-managed: ``$UV_PYTHON_INSTALL_DIR`` or ``~/.local/share/uv/python/cpython-X.Y.Z-*``;
- ``python3`` and ``python3.N`` on ``PATH`` (pyenv shims skipped: a shim fails for every version
  but the selected one; the versions behind them are found above).

The first three give their version from the file system; only ``PATH`` entries are asked
(one short subprocess each), and only when the first three hold no exact match.

A python pin (a "request") is one of ``3``, ``3.11``, ``3.11.7`` (that prefix of the version),
or a specifier set such as ``>=3.10``, ``>=3.10,<3.13``, ``==3.11.*``, ``~=3.10``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from runlab.core.errors import UserError

__all__ = [
    "Interpreter",
    "PythonNotFoundError",
    "current_interpreter",
    "find_interpreters",
    "parse_version",
    "resolve_interpreter",
    "validate_request",
    "version_matches",
]

Version = tuple[int, int, int]

_BARE = re.compile(r"^\d+(\.\d+){0,2}$")
_CLAUSE = re.compile(r"^(==|!=|>=|<=|>|<|~=)\s*(\d+(?:\.\d+){0,2})(\.\*)?$")
_PYENV_NAME = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
_UV_NAME = re.compile(r"^cpython-(\d+)\.(\d+)\.(\d+)-")


class PythonNotFoundError(UserError):
    """No installed Python satisfies an environment's python pin (``installed`` lists what there is)."""

    installed: list[str]


@dataclass(frozen=True)
class Interpreter:
    """An installed Python: its version, executable and where it was found."""

    version: Version
    path: Path
    source: str  # "current", "pyenv", "uv", "PATH"

    @property
    def version_string(self) -> str:
        return ".".join(str(part) for part in self.version)

    def describe(self) -> str:
        return f"{self.version_string} ({self.path}, {self.source})"


def parse_version(text: str) -> Version:
    """``"3.11"`` -> ``(3, 11, 0)``; raises ValueError on anything else."""
    if not _BARE.match(text):
        raise ValueError(f"not a version: {text!r}")
    parts = [int(p) for p in text.split(".")] + [0, 0]
    return parts[0], parts[1], parts[2]


def validate_request(request: str) -> str:
    """The request with whitespace removed; raises :class:`UserError` when it is not a python pin."""
    text = "".join(request.split())
    if _BARE.match(text):
        return text
    clauses = text.split(",")
    if clauses and all(_CLAUSE.match(clause) for clause in clauses):
        return text
    raise UserError(
        f"python version {request!r} is not understood; write e.g. '3.11', '3.11.7', '>=3.10' or '>=3.10,<3.13'",
        request=request,
    )


def version_matches(request: str, version: Version) -> bool:
    """Whether ``version`` satisfies ``request`` (see the module docstring for the forms)."""
    text = validate_request(request)
    if _BARE.match(text):
        wanted = [int(p) for p in text.split(".")]
        return list(version[: len(wanted)]) == wanted
    for clause in text.split(","):
        match = _CLAUSE.match(clause)
        assert match is not None
        op, number, wildcard = match.group(1), match.group(2), match.group(3)
        parts = [int(p) for p in number.split(".")]
        if wildcard:
            prefix_equal = list(version[: len(parts)]) == parts
            if (op == "==" and not prefix_equal) or (op == "!=" and prefix_equal):
                return False
            if op not in ("==", "!="):
                return False
            continue
        target = parse_version(number)
        if op == "~=":
            if len(parts) < 2 or version < target or list(version[: len(parts) - 1]) != parts[:-1]:
                return False
        elif not _compare(op, version, target):
            return False
    return True


def _compare(op: str, left: Version, right: Version) -> bool:
    return {
        "==": left == right,
        "!=": left != right,
        ">=": left >= right,
        "<=": left <= right,
        ">": left > right,
        "<": left < right,
    }[op]


def current_interpreter() -> Interpreter:
    """The Python runlab runs on (the base interpreter when runlab runs inside a venv)."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    path = Path(base) if base and Path(base).exists() else Path(sys.executable)
    info = sys.version_info
    return Interpreter((info.major, info.minor, info.micro), path, "current")


def find_interpreters(*, include_path: bool = True, environ: Mapping[str, str] | None = None) -> list[Interpreter]:
    """Installed Pythons, one per real executable, in the order of the module docstring."""
    env = os.environ if environ is None else environ
    found: list[Interpreter] = []
    seen: set[Path] = set()

    def add(interpreter: Interpreter) -> None:
        key = _real(interpreter.path)
        if key not in seen:
            seen.add(key)
            found.append(interpreter)

    add(current_interpreter())
    for interpreter in _pyenv_interpreters(env):
        add(interpreter)
    for interpreter in _uv_interpreters(env):
        add(interpreter)
    if include_path:
        for path in _path_candidates(env):
            if _real(path) in seen:
                continue
            version = _ask_version(path)
            if version is not None:
                add(Interpreter(version, path, "PATH"))
    return found


def resolve_interpreter(request: str | None, *, environ: Mapping[str, str] | None = None) -> Interpreter:
    """The installed Python that best matches ``request``.

    ``None`` means the current interpreter. A full version (``3.6.2``) takes that exact version
    if installed, else the newest of the same major.minor. Otherwise the current interpreter is
    preferred when it matches, then the newest matching one.

    Raises:
        PythonNotFoundError: nothing installed matches; the message lists what is installed.
    """
    if request is None:
        return current_interpreter()
    text = validate_request(request)
    cheap = find_interpreters(include_path=False, environ=environ)
    choice = _choose(text, cheap)
    exact_wanted = _BARE.match(text) is not None and text.count(".") == 2
    if choice is not None and (not exact_wanted or choice.version == parse_version(text)):
        return choice  # no need to ask the PATH's interpreters for their versions
    everything = find_interpreters(include_path=True, environ=environ)
    choice = _choose(text, everything)
    if choice is not None:
        return choice
    installed = "\n".join(f"  - {i.describe()}" for i in sorted(everything, key=lambda i: i.version, reverse=True))
    raise PythonNotFoundError(
        f"No installed Python matches python {text}. Installed Pythons:\n{installed or '  (none found)'}\n"
        "runlab does not download Python builds. Install a matching one (for example "
        f"`pyenv install {_install_hint(text)}`) or change the python pin of the environment.",
        request=text,
        installed=[i.describe() for i in everything],
    )


def _choose(text: str, candidates: list[Interpreter]) -> Interpreter | None:
    if _BARE.match(text) and text.count(".") == 2:
        wanted = parse_version(text)
        exact = [i for i in candidates if i.version == wanted]
        if exact:
            return exact[0]
        text = ".".join(text.split(".")[:2])
    matching = [i for i in candidates if version_matches(text, i.version)]
    if not matching:
        return None
    current = [i for i in matching if i.source == "current"]
    if current:
        return current[0]
    return max(matching, key=lambda i: i.version)


def _install_hint(text: str) -> str:
    match = re.search(r"\d+\.\d+(\.\d+)?", text)
    return match.group(0) if match else "3.11"


def _real(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path


def _pyenv_interpreters(env: Mapping[str, str]) -> Iterable[Interpreter]:
    root = Path(env.get("PYENV_ROOT") or Path(env.get("HOME") or Path.home()) / ".pyenv")
    versions = root / "versions"
    if not versions.is_dir():
        return []
    out = []
    for entry in sorted(versions.iterdir()):
        match = _PYENV_NAME.match(entry.name)
        if not match or entry.is_symlink():  # symlinks are pyenv-virtualenv environments
            continue
        python = _first_existing(entry / "bin" / f"python{match.group(1)}.{match.group(2)}",
                                 entry / "bin" / "python3", entry / "bin" / "python")
        if python is not None:
            out.append(Interpreter((int(match.group(1)), int(match.group(2)), int(match.group(3))), python, "pyenv"))
    return out


def _uv_interpreters(env: Mapping[str, str]) -> Iterable[Interpreter]:
    if env.get("UV_PYTHON_INSTALL_DIR"):
        root = Path(env["UV_PYTHON_INSTALL_DIR"])
    else:
        data = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local" / "share")
        root = Path(data) / "uv" / "python"
    if not root.is_dir():
        return []
    out = []
    for entry in sorted(root.iterdir()):
        match = _UV_NAME.match(entry.name)
        if not match:  # also skips free-threaded builds (cpython-3.13.0+freethreaded-...)
            continue
        python = _first_existing(entry / "bin" / "python3", entry / "python.exe")
        if python is not None:
            out.append(Interpreter((int(match.group(1)), int(match.group(2)), int(match.group(3))), python, "uv"))
    return out


def _path_candidates(env: Mapping[str, str]) -> list[Path]:
    pyenv_root = env.get("PYENV_ROOT") or str(Path(env.get("HOME") or Path.home()) / ".pyenv")
    shims = {_real(Path(pyenv_root) / "shims")}
    out = []
    for folder in (env.get("PATH") or "").split(os.pathsep):
        if not folder or _real(Path(folder)) in shims:
            continue
        if Path(folder).name == "shims" and any("pyenv" in part for part in Path(folder).parts):
            continue
        for name in ["python3"] + [f"python3.{minor}" for minor in range(6, 20)]:
            path = Path(folder) / name
            if path.is_file() and os.access(path, os.X_OK):
                out.append(path)
    return out


def _ask_version(path: Path) -> Version | None:
    try:
        result = subprocess.run(
            [str(path), "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    try:
        return parse_version(result.stdout.strip()) if result.returncode == 0 else None
    except ValueError:
        return None


def _first_existing(*paths: Path) -> Path | None:
    for path in paths:
        if path.exists():
            return path
    return None
