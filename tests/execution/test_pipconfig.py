"""pip configuration passed on to uv, and requirement files read the way pip reads them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from runlab.core.errors import ConfigError
from runlab.execution.pipconfig import (
    PipConfig,
    RequirementsFileError,
    pip_config_files,
    read_pip_config,
    read_requirement_lines,
)


def isolated_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment whose global and user pip files live under tmp_path (only /etc/pip.conf stays)."""
    (tmp_path / "home").mkdir(exist_ok=True)
    return {"HOME": str(tmp_path / "home"), "XDG_CONFIG_DIRS": str(tmp_path / "xdg"), **extra}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_config_file_sections_and_env_overrides(tmp_path: Path) -> None:
    config = write(tmp_path / "pip.conf", """
[global]
index-url = https://mirror.example/simple
extra-index-url =
    file:///opt/one/simple
    file:///opt/two/simple
find-links = ./wheels /srv/more-wheels
constraint = constraints.txt
trusted-host = mirror.example

[install]
index-url = https://install.example/simple

[download]
index-url = https://ignored.example/simple
""")
    env = isolated_env(tmp_path, PIP_CONFIG_FILE=str(config), PIP_TRUSTED_HOST="a.example b.example")
    result = read_pip_config(env, cwd=tmp_path)
    assert result.index_url == "https://install.example/simple"  # [install] overrides [global]
    assert result.extra_index_urls == ("file:///opt/one/simple", "file:///opt/two/simple")
    assert result.find_links == (str(tmp_path / "wheels"), "/srv/more-wheels")
    assert result.constraints == (str(tmp_path / "constraints.txt"),)
    assert result.trusted_hosts == ("a.example", "b.example")  # PIP_* overrides files
    assert str(config) in result.sources
    assert result.uv_args() == [
        "--index-url", "https://install.example/simple",
        "--extra-index-url", "file:///opt/one/simple",
        "--extra-index-url", "file:///opt/two/simple",
        "--find-links", str(tmp_path / "wheels"),
        "--find-links", "/srv/more-wheels",
        "--constraints", str(tmp_path / "constraints.txt"),
        "--allow-insecure-host", "a.example",
        "--allow-insecure-host", "b.example",
        "--index-strategy", "unsafe-best-match",
    ]


def test_env_variables_replace_file_lists_and_no_index(tmp_path: Path) -> None:
    config = write(tmp_path / "pip.conf", "[global]\nextra-index-url = file:///opt/one/simple\nfind-links = /a\n")
    env = isolated_env(
        tmp_path,
        PIP_CONFIG_FILE=str(config),
        PIP_EXTRA_INDEX_URL="file:///x/simple\nfile:///y/simple",
        PIP_FIND_LINKS="/b /c",
        PIP_CONSTRAINT="/etc/c1.txt /etc/c2.txt",
        PIP_NO_INDEX="yes",
        PIP_INDEX_URL="https://env.example/simple",
    )
    result = read_pip_config(env)
    assert result.extra_index_urls == ("file:///x/simple", "file:///y/simple")  # replaced, not merged
    assert result.find_links == ("/b", "/c")
    assert result.constraints == ("/etc/c1.txt", "/etc/c2.txt")
    assert result.no_index is True
    args = result.uv_args()
    assert args[0] == "--no-index"
    assert "--index-strategy" not in args  # with --no-index only find-links are used
    assert args.count("--constraints") == 2


def test_user_files_read_in_pip_order_unless_config_file_exists(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    home = Path(env["HOME"])
    write(tmp_path / "xdg" / "pip" / "pip.conf", "[global]\nindex-url = https://global.example/simple\n"
                                                 "find-links = /global-wheels\n")
    write(home / ".pip" / "pip.conf", "[global]\nindex-url = https://legacy.example/simple\n")
    write(home / ".config" / "pip" / "pip.conf", "[global]\nindex-url = https://user.example/simple\n")
    files = pip_config_files(env)
    assert files.index(tmp_path / "xdg" / "pip" / "pip.conf") < files.index(Path("/etc/pip.conf"))
    assert files.index(home / ".pip" / "pip.conf") < files.index(home / ".config" / "pip" / "pip.conf")
    assert files[-1] == Path(sys.prefix) / "pip.conf"
    result = read_pip_config(env)
    assert result.index_url == "https://user.example/simple"
    assert result.find_links == ("/global-wheels",)

    # An existing PIP_CONFIG_FILE turns the user files off (pip does the same) and comes last.
    env_file = write(tmp_path / "env.conf", "[global]\nextra-index-url = file:///env/simple\n")
    env["PIP_CONFIG_FILE"] = str(env_file)
    result = read_pip_config(env)
    assert result.index_url == "https://global.example/simple"
    assert result.extra_index_urls == ("file:///env/simple",)
    assert pip_config_files(env)[-1] == env_file


def test_devnull_config_file_skips_every_file(tmp_path: Path) -> None:
    write(tmp_path / "xdg" / "pip" / "pip.conf", "[global]\nindex-url = https://global.example/simple\n")
    env = isolated_env(tmp_path, PIP_CONFIG_FILE=os.devnull, PIP_FIND_LINKS="/only-env")
    result = read_pip_config(env)
    assert result.sources == ()
    assert result.index_url is None
    assert result.find_links == ("/only-env",)


def test_unknown_keys_are_ignored_as_pip_does(tmp_path: Path) -> None:
    config = write(tmp_path / "pip.conf", "[global]\nconstraints = /not-a-pip-option.txt\nconstraint = /c.txt\n")
    result = read_pip_config(isolated_env(tmp_path, PIP_CONFIG_FILE=str(config)))
    assert result.constraints == ("/c.txt",)


def test_reads_os_environ_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write(tmp_path / "pip.conf", "[global]\nfind-links = /from-file\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "file:///from-env/simple")
    result = read_pip_config()
    assert result.find_links == ("/from-file",)
    assert result.extra_index_urls == ("file:///from-env/simple",)


def test_invalid_boolean_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no-index"):
        read_pip_config(isolated_env(tmp_path, PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="maybe"))


def test_cert_and_timeout_go_to_uv_environment() -> None:
    config = PipConfig(cert="/etc/ssl/ca.pem", timeout="180")
    assert config.uv_env() == {"SSL_CERT_FILE": "/etc/ssl/ca.pem", "UV_HTTP_TIMEOUT": "180"}
    assert config.uv_args() == []


def test_requirement_lines(tmp_path: Path) -> None:
    write(tmp_path / "sub" / "more.txt", "packaging>=23  # trailing comment\n-c ../constraints.txt\n")
    lines = [
        "# a comment",
        "",
        "numpy >= 1.24, \\",
        "   < 3",
        "-r sub/more.txt",
        "--extra-index-url https://example.org/simple",
        "./local_pkg[extra]",
        "-e ./editable",
        "six",
    ]
    assert read_requirement_lines(lines, tmp_path) == [
        "numpy >= 1.24, < 3",
        "packaging>=23",
        f"-c {tmp_path / 'constraints.txt'}",
        "--extra-index-url https://example.org/simple",
        f"{tmp_path / 'local_pkg'}[extra]",
        f"-e {tmp_path / 'editable'}",
        "six",
    ]


def test_requirement_include_errors(tmp_path: Path) -> None:
    with pytest.raises(RequirementsFileError, match="missing.txt"):
        read_requirement_lines(["-r missing.txt"], tmp_path)
    write(tmp_path / "a.txt", "-r b.txt\n")
    write(tmp_path / "b.txt", "-r a.txt\n")
    with pytest.raises(RequirementsFileError, match="includes itself"):
        read_requirement_lines(["-r a.txt"], tmp_path)
