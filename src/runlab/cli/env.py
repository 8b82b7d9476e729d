"""``runlab env``: registered environments, their builds, and the machine's environment cache.

This module does not import :mod:`runlab.cli.main` when it loads (main imports this module to
register the group): the helpers of main are looked up when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from runlab.cli.late import friendly_errors

if TYPE_CHECKING:
    from runlab.sdk.environment import CachedEnvironment, Environment
    from runlab.sdk.workspace import Workspace


_CONDA_SUFFIXES = (".yml", ".yaml")

workspace_option = click.option(
    "--workspace", "-w", "workspace_ref", metavar="NAME|PATH",
    help="Workspace name or folder (default: config.json found from the current folder).",
)
version_option = click.option("--version", "version", type=int, metavar="N",
                              help="This version (default: the latest).")




def _console() -> Any:
    from runlab.cli.main import _console as console

    return console()


def _open_workspace(ref: str | None) -> "Workspace":
    from runlab.cli.main import open_workspace

    return open_workspace(ref)


@click.group("env")
def env() -> None:
    """Register, show, build and prune run environments."""


@env.command("list")
@workspace_option
@friendly_errors
def env_list(workspace_ref: str | None) -> None:
    """List the registered environments: versions, latest hash, and whether it is built here."""
    from rich.table import Table

    from runlab.sdk.environment import list_cached_environments, registered_environments

    ws = _open_workspace(workspace_ref)
    versions: dict[str, list["Environment"]] = {}
    for environment in registered_environments(ws):
        versions.setdefault(environment.name, []).append(environment)
    table = Table("name", "versions", "latest", "hash", "built")
    hashes: list[str] = []
    for name, found in versions.items():
        latest = found[-1]
        state = latest.cache_status()
        hashes.extend(e.cache_status().hash for e in found)
        built = "user-managed" if state.user_managed else ("yes" if state.cached else "no")
        table.add_row(name, ", ".join(str(e.version) for e in found), str(latest.version), state.hash[:12], built)
    # what submitted runs built without registering (Environment.from_conda_specification, as the tutorial does)
    unregistered = [c for c in list_cached_environments() if not any(h.startswith(c.key) for h in hashes)]
    for cached in unregistered:
        table.add_row(cached.name or "(no name)", "unregistered", "", cached.key[:12], "yes")
    if not versions and not unregistered:
        _console().print("no environments registered yet, none built: register one with env.register(ws)")
        return
    _console().print(table)


@env.command("show")
@click.argument("name")
@version_option
@workspace_option
@friendly_errors
def env_show(name: str, version: int | None, workspace_ref: str | None) -> None:
    """Show the environment NAME: python, packages, channels, variables, warnings, hash, cache state."""
    from rich.markup import escape

    from runlab.sdk.environment import Environment

    environment = Environment.get(_open_workspace(workspace_ref), name, version)
    definition = environment.definition().normalized()
    state = environment.cache_status()
    rows: list[tuple[str, str]] = [("name", environment.name), ("version", str(environment.version))]
    if definition.user_managed:
        rows.append(("python", f"{state.python_path} (user-managed: used as it is, nothing installed)"))
    else:
        rows.append(("python", f"{definition.python_version or '(not pinned)'} -> {definition.python_resolved}"))
    rows += [
        ("packages", ", ".join(definition.pip_requirements) or "(none: only runlab's own)"),
        ("conda", ", ".join(definition.conda_packages_original)),
        ("channels", ", ".join(definition.channels)),
        ("env vars", ", ".join(f"{k}={v}" for k, v in definition.environment_variables.items())),
        ("hash", state.hash),
    ]
    if not state.user_managed:
        where = f"yes, python {state.python_path}" if state.cached else f"no: build it with `runlab env build {name}`"
        rows += [("built", where), ("env dir", str(state.env_dir))]
    console = _console()
    for key, value in rows:
        if value:
            console.print(f"{key:>9}: {escape(value)}", soft_wrap=True)
    for warning in definition.warnings:
        console.print(f"{'warning':>9}: [yellow]{escape(warning)}[/yellow]", soft_wrap=True)


@env.command("build")
@click.argument("name", required=False)
@version_option
@click.option("--file", "-f", "file_path", type=click.Path(dir_okay=False),
              help="Build from a conda spec (.yml/.yaml) or a pip requirements file instead of a registered NAME.")
@workspace_option
@friendly_errors
def env_build(name: str | None, version: int | None, file_path: str | None, workspace_ref: str | None) -> None:
    """Build the registered environment NAME (or --file PATH) into this machine's cache."""
    from runlab.sdk.environment import Environment

    if (name is None) == (file_path is None):
        raise click.UsageError("give either NAME (a registered environment) or --file PATH, not both")
    if file_path is not None:
        if version is not None:
            raise click.UsageError("--version goes with NAME, not with --file")
        path = Path(file_path)
        from_file = (Environment.from_conda_specification if path.suffix.lower() in _CONDA_SUFFIXES
                     else Environment.from_pip_requirements)
        environment = from_file(_file_env_name(path), path)
        ws = None
    else:
        assert name is not None
        ws = _open_workspace(workspace_ref)
        environment = Environment.get(ws, name, version)
    built = environment.build_local(ws)
    console = _console()
    state = "user-managed (nothing built)" if built.user_managed else ("cached" if built.cached else "built")
    for key, value in (("hash", built.hash), ("seconds", f"{built.seconds:.1f}"), ("state", state),
                       ("python", str(built.python_path)), ("log", str(built.log_path or ""))):
        if value:
            console.print(f"{key:>7}: {value}", soft_wrap=True, markup=False)


@env.command("prune")
@click.option("--keep-registered/--all", "keep_registered", default=True, show_default=True,
              help="Keep the environments registered in the workspaces of this machine, or remove every one.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@workspace_option
@friendly_errors
def env_prune(keep_registered: bool, yes: bool, workspace_ref: str | None) -> None:
    """Delete built environments from this machine's cache.

    The cache is shared by every workspace: by default the environments registered (any version)
    in the workspace given with -w (or found from config.json) and in every workspace registered
    on this machine are kept.
    """
    from runlab.sdk.environment import (
        environment_cache_root,
        list_cached_environments,
        prune_cached_environments,
        registered_environments,
    )

    console = _console()
    keep: list[Environment] = []
    if keep_registered:
        workspaces = _workspaces_to_keep(workspace_ref)
        for ws in workspaces:
            keep += registered_environments(ws)
        console.print(f"keeping the {len(keep)} environment version(s) registered in "
                      f"{', '.join(sorted(ws.name for ws in workspaces)) or 'no workspace'}", soft_wrap=True)
    kept = {e.content_hash()[:16] for e in keep}
    root = environment_cache_root()
    candidates = [c for c in list_cached_environments(root) if c.key not in kept]
    if not candidates:
        console.print(f"nothing to remove from {root}", soft_wrap=True)
        return
    for cached in candidates:
        console.print(f"  {cached.key}  {cached.name or '?':<24} {_size(cached.exclusive_bytes)}", soft_wrap=True,
                      markup=False)
    if not yes:
        try:
            confirmed = click.confirm(f"remove these {len(candidates)} environment(s) from {root}?")
        except click.Abort:  # end of input (no terminal): not a yes
            confirmed = False
        if not confirmed:
            console.print("nothing removed (--yes skips this question)")
            raise click.exceptions.Exit(1)
    removed = prune_cached_environments(keep, root)
    console.print(f"removed {len(removed)} environment(s) ({', '.join(c.key for c in removed)}): "
                  f"{_freed(removed)}", soft_wrap=True, markup=False)
    skipped = len(candidates) - len(removed)
    if skipped:
        console.print(f"{skipped} left in place: being built by another process", soft_wrap=True)


def _workspaces_to_keep(workspace_ref: str | None) -> list["Workspace"]:
    from runlab.core.errors import ConfigError
    from runlab.sdk.workspace import Workspace

    found = {ws.path: ws for workspaces in Workspace.list().values() for ws in workspaces}
    if workspace_ref is not None:
        given = _open_workspace(workspace_ref)
        found[given.path] = given
    else:
        try:
            current = Workspace.from_config()
        except ConfigError:
            pass
        else:
            found[current.path] = current
    return list(found.values())


def _file_env_name(path: Path) -> str:
    import re

    name = re.sub(r"[^\w.\-]+", "-", path.stem).strip("-._") or "environment"
    return name if name[0].isalnum() else f"env-{name}"


def _freed(removed: list["CachedEnvironment"]) -> str:
    freed = sum(c.exclusive_bytes for c in removed)
    total = sum(c.size_bytes for c in removed)
    if total > freed:
        return (f"{_size(freed)} freed ({_size(total)} in all; the rest are hard links to uv's package cache, "
                "which stays)")
    return f"{_size(freed)} freed"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
