"""What pip reads, read the way pip reads it: configuration files, ``PIP_*`` variables, requirement files.

The environment builder installs packages with ``uv``, and uv does not read pip's configuration.
Users (and this machine) keep their package sources there: a mirror index, extra indexes, a
folder of wheels, a constraint file. :func:`read_pip_config` gathers those settings in pip's own
order and :meth:`PipConfig.uv_args` turns them into uv flags, so a build sees the packages that
``pip install`` would see.

pip's order (pip 23, ``pip config debug`` shows the same files):

1. files, later overriding earlier: global (``$XDG_CONFIG_DIRS/pip/pip.conf``, default
   ``/etc/xdg/pip/pip.conf``, then ``/etc/pip.conf``), user (``~/.pip/pip.conf`` then
   ``$XDG_CONFIG_HOME/pip/pip.conf``; skipped when ``PIP_CONFIG_FILE`` names an existing file),
   site (``sys.prefix/pip.conf``), then ``PIP_CONFIG_FILE``. ``PIP_CONFIG_FILE=/dev/null``
   skips every file;
2. within those, the ``[global]`` section first, then ``[install]`` overriding it;
3. ``PIP_*`` environment variables override both.

A later value replaces an earlier one, also for list options (pip does not merge
``extra-index-url`` across files). Keys are pip's long option names (``constraint``, not
``constraints``: pip ignores unknown keys, and so does runlab).
"""

from __future__ import annotations

import configparser
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from runlab.core.errors import ConfigError, UserError

__all__ = [
    "PipConfig",
    "RequirementsFileError",
    "pip_config_files",
    "read_pip_config",
    "read_requirement_lines",
]

# pip option dest -> config keys that set it (pip's long option names, normalized).
_KEYS: dict[str, tuple[str, ...]] = {
    "index_url": ("index-url",),
    "extra_index_urls": ("extra-index-url",),
    "find_links": ("find-links",),
    "constraints": ("constraint",),
    "trusted_hosts": ("trusted-host",),
    "no_index": ("no-index",),
    "cert": ("cert",),
    "timeout": ("timeout", "default-timeout"),
    "proxy": ("proxy",),
}
_LIST_OPTIONS = frozenset({"extra_index_urls", "find_links", "constraints", "trusted_hosts"})
_TRUE = frozenset({"y", "yes", "t", "true", "on", "1"})
_FALSE = frozenset({"n", "no", "f", "false", "off", "0"})


@dataclass(frozen=True)
class PipConfig:
    """The package-source settings of pip that matter to an install.

    ``sources`` lists the configuration files that were read, in order, for build logs.
    """

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    no_index: bool = False
    cert: str | None = None
    timeout: str | None = None
    proxy: str | None = None
    sources: tuple[str, ...] = field(default=(), compare=False)

    def uv_args(self) -> list[str]:
        """Flags for ``uv pip install`` that reproduce these settings.

        ``--index-strategy unsafe-best-match`` is added when more than one index is in play: pip
        looks at every index (and every find-links folder) and takes the best version, while uv by
        default stops at the first index that has a package at all. Without the flag a mirror
        holding only some versions of a package would hide newer ones on the other index, and
        ``pip install`` and a runlab build would disagree. (uv calls it "unsafe" because it allows
        dependency confusion across indexes; pip has the same exposure with the same configuration.)
        """
        args: list[str] = []
        if self.no_index:
            args.append("--no-index")
        if self.index_url:
            args += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        for link in self.find_links:
            args += ["--find-links", link]
        for constraint in self.constraints:
            args += ["--constraints", constraint]
        for host in self.trusted_hosts:
            args += ["--allow-insecure-host", host]
        if not self.no_index and self.extra_index_urls:
            args += ["--index-strategy", "unsafe-best-match"]
        return args

    def pip_args(self) -> list[str]:
        """Flags for ``pip install`` that reproduce these settings (where pip itself installs: Ray's pip
        runtime environment), beside :meth:`uv_args`."""
        args: list[str] = []
        if self.no_index:
            args.append("--no-index")
        if self.index_url:
            args += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        for link in self.find_links:
            args += ["--find-links", link]
        for constraint in self.constraints:
            args += ["--constraint", constraint]
        for host in self.trusted_hosts:
            args += ["--trusted-host", host]
        if self.cert:
            args += ["--cert", self.cert]
        if self.timeout:
            args += ["--timeout", str(self.timeout)]
        if self.proxy:
            args += ["--proxy", self.proxy]
        return args

    def uv_env(self) -> dict[str, str]:
        """Environment variables for uv for the settings it takes only that way (certificate, timeout, proxy)."""
        env: dict[str, str] = {}
        if self.cert:
            env["SSL_CERT_FILE"] = self.cert
        if self.timeout:
            env["UV_HTTP_TIMEOUT"] = str(int(float(self.timeout))) if _is_number(self.timeout) else self.timeout
        if self.proxy:
            env["HTTPS_PROXY"] = self.proxy
            env["HTTP_PROXY"] = self.proxy
        return env


def pip_config_files(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The configuration files pip would read, lowest priority first (existing or not)."""
    env = os.environ if environ is None else environ
    config_file = env.get("PIP_CONFIG_FILE")
    if config_file is not None and config_file == os.devnull:
        return []
    home = Path(env.get("HOME") or Path.home())
    xdg_dirs = env.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    files = [Path(d) / "pip" / "pip.conf" for d in xdg_dirs.split(os.pathsep) if d]
    files.append(Path("/etc/pip.conf"))
    if not (config_file and Path(config_file).exists()):
        files.append(home / ".pip" / "pip.conf")
        files.append(Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "pip" / "pip.conf")
    files.append(Path(sys.prefix) / "pip.conf")
    if config_file:
        files.append(Path(config_file))
    return files


def read_pip_config(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> PipConfig:
    """Read pip's package-source settings as ``pip install`` would see them.

    Relative find-links folders and constraint files are made absolute against ``cwd``
    (default: the current folder), since uv runs elsewhere.

    Raises:
        ConfigError: a configuration file cannot be parsed, or ``no-index`` is not a boolean.
    """
    env = os.environ if environ is None else environ
    base = Path.cwd() if cwd is None else cwd
    # key -> value per section, files in order; later files replace earlier keys.
    sections: dict[str, dict[str, str]] = {"global": {}, "install": {}}
    sources: list[str] = []
    for path in pip_config_files(env):
        if not path.is_file():
            continue
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"pip configuration file {path} cannot be read: {exc}", path=str(path)) from exc
        sources.append(str(path))
        for section in ("global", "install"):
            if parser.has_section(section):
                for key, value in parser.items(section):
                    if value:
                        sections[section][_normalize_key(key)] = value
    env_values = {
        _normalize_key(key[4:]): value for key, value in env.items() if key.startswith("PIP_") and value
    }
    values: dict[str, str] = {}
    for dest, keys in _KEYS.items():
        # pip applies items in order; when two keys set the same dest, the later layer wins.
        for layer in (sections["global"], sections["install"], env_values):
            for key in keys:
                if key in layer:
                    values[dest] = layer[key]

    def as_list(dest: str) -> tuple[str, ...]:
        return tuple(values[dest].split()) if dest in values else ()

    no_index = False
    if "no_index" in values:
        flag = values["no_index"].strip().lower()
        if flag not in _TRUE | _FALSE:
            raise ConfigError(
                f"pip setting no-index={values['no_index']!r} is not a boolean; use yes/no, true/false or 1/0"
            )
        no_index = flag in _TRUE
    return PipConfig(
        index_url=values.get("index_url"),
        extra_index_urls=as_list("extra_index_urls"),
        find_links=tuple(_absolute_location(link, base) for link in as_list("find_links")),
        constraints=tuple(_absolute_location(c, base) for c in as_list("constraints")),
        trusted_hosts=as_list("trusted_hosts"),
        no_index=no_index,
        cert=values.get("cert"),
        timeout=values.get("timeout"),
        proxy=values.get("proxy"),
        sources=tuple(sources),
    )


class RequirementsFileError(UserError):
    """A pip requirements file (or a conda spec's ``pip:`` section) cannot be read."""


_COMMENT = re.compile(r"(^|\s+)#.*$")
_OPTION_WITH_PATH = re.compile(r"^(-r|--requirement|-c|--constraint|-e|--editable)(?:\s+|=)(.+)$")


def read_requirement_lines(lines: Iterable[str], base_dir: Path, *, origin: str = "requirements") -> list[str]:
    """Requirement lines as pip reads them, ready to be written into another file.

    Comments, blank lines and line continuations are removed; ``-r other.txt`` is read in
    place (so a definition records the packages, not a file name); relative paths in ``-c``,
    ``-e`` and local-path requirements are made absolute against ``base_dir``. Other option
    lines (``--index-url``, ``--pre``...) are kept as they are: uv reads them too.

    Raises:
        RequirementsFileError: an included file is missing, or includes itself.
    """
    return _read_lines(list(lines), base_dir, origin, seen=frozenset())


def _read_lines(lines: list[str], base_dir: Path, origin: str, seen: frozenset[Path]) -> list[str]:
    out: list[str] = []
    joined: list[str] = []
    pending = ""
    for raw in lines:
        line = _COMMENT.sub("", raw.rstrip("\n"))
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        joined.append(pending + line)
        pending = ""
    if pending:
        joined.append(pending)
    for line in (" ".join(part.split()) for part in joined):
        if not line:
            continue
        match = _OPTION_WITH_PATH.match(line)
        if match:
            option, target = match.group(1), match.group(2).strip()
            if option in ("-r", "--requirement"):
                path = _absolute_path(target, base_dir)
                if path in seen:
                    raise RequirementsFileError(f"{origin}: {path} includes itself through -r", path=str(path))
                try:
                    text = path.read_text(encoding="utf-8")
                except OSError as exc:
                    raise RequirementsFileError(
                        f"{origin}: cannot read {path} (from `{line}`): {exc.strerror or exc}", path=str(path)
                    ) from exc
                out += _read_lines(text.splitlines(), path.parent, str(path), seen | {path})
                continue
            short = "-c" if option in ("-c", "--constraint") else "-e"
            out.append(f"{short} {_absolute_location(target, base_dir)}")
            continue
        if _is_local_path(line):
            out.append(_absolute_location(line, base_dir))
            continue
        out.append(line)
    return out


def _normalize_key(key: str) -> str:
    name = key.lower().replace("_", "-")
    return name[2:] if name.startswith("--") else name


def _is_local_path(text: str) -> bool:
    return text.startswith(("./", "../", "/", "~")) or text in (".", "..")


def _absolute_path(text: str, base: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _absolute_location(text: str, base: Path) -> str:
    """An URL as is; a local path made absolute."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text):
        return text
    extras = ""
    match = re.match(r"^(.*?)(\[[^\]/]*\])$", text)
    if match:  # ./pkg[extra]
        text, extras = match.group(1), match.group(2)
    return str(_absolute_path(text, base)) + extras


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
