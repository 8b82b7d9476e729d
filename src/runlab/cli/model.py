"""``runlab model``: register, list, show, download and delete registered models."""

from __future__ import annotations

from datetime import datetime

import click

from runlab.cli.main import _console, friendly_errors, open_workspace, workspace_option

version_option = click.option("--version", "version", type=int, metavar="N", help="This version (default: the latest).")


def _pairs(items: tuple[str, ...], option: str) -> dict[str, str]:
    from runlab.core.errors import UserError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"{option} takes KEY=VALUE, got {item!r}")
        out[key] = value
    return out


@click.group()
def model() -> None:
    """Register models (files of a run or of this machine), list, show, download and delete their versions."""


@model.command("register")
@click.argument("name")
@click.argument("path")
@click.option("--run", "run_id", metavar="RUN_ID",
              help="PATH is a file or folder of this run's files (outputs/model.pt); default: a path of this machine.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A tag (repeatable).")
@click.option("--property", "properties", multiple=True, metavar="KEY=VALUE", help="A property (repeatable).")
@click.option("--description", help="A description.")
@workspace_option
@friendly_errors
def model_register(name: str, path: str, run_id: str | None, tags: tuple[str, ...], properties: tuple[str, ...],
                   description: str | None, workspace_ref: str | None) -> None:
    """Register PATH (a file or a folder) as the next version of model NAME.

    Example: runlab model register net outputs/model.pt --run day1_1700000000_abcd1234 --tag acc=0.9"""
    import time

    from runlab.sdk.model import Model
    from runlab.store.transfer import format_size

    ws = open_workspace(workspace_ref)
    tag_map, property_map = _pairs(tags, "--tag"), _pairs(properties, "--property")
    started = time.perf_counter()
    if run_id is not None:
        registered = ws.get_run(run_id).register_model(name, path, tags=tag_map, properties=property_map,
                                                       description=description)
    else:
        registered = Model.register(ws, path, name, tags=tag_map, properties=property_map, description=description)
    record = registered.record
    _console().print(f"model [bold]{registered.name}[/bold] version {registered.version} ({registered.id}): "
                     f"{record.file_count:,} file{'' if record.file_count == 1 else 's'}, "
                     f"{format_size(record.total_size)} in {time.perf_counter() - started:.1f} s")


@model.command("list")
@click.option("--name", help="Only versions of this model.")
@click.option("--tag", "tags", multiple=True, metavar="KEY[=VALUE]", help="Only versions with this tag (repeatable).")
@click.option("--run", "run_id", metavar="RUN_ID", help="Only versions this run made.")
@click.option("--latest", is_flag=True, help="Only the newest version of each model.")
@workspace_option
@friendly_errors
def model_list(name: str | None, tags: tuple[str, ...], run_id: str | None, latest: bool,
               workspace_ref: str | None) -> None:
    """List registered model versions: name, version, run, files, size, tags."""
    from rich.table import Table

    from runlab.sdk.model import Model
    from runlab.store.transfer import format_size

    ws = open_workspace(workspace_ref)
    wanted = [[k, v] if sep else k for k, sep, v in (t.partition("=") for t in tags)]
    found = Model.list(ws, name=name, tags=wanted or None, run_id=run_id, latest=latest)
    if not found and (name or tags or run_id):
        _console().print("no registered model version matches: list them all with `runlab model list`")
        return
    if not found:
        _console().print("no models registered yet: register one with run.register_model('net', 'outputs/model.pt') "
                         "or `runlab model register NAME PATH`")
        return
    table = Table("name", "version", "run", "files", "size", "registered", "tags")
    for m in found:
        r = m.record
        table.add_row(m.name, str(m.version), m.run_id or "", f"{r.file_count:,}", format_size(r.total_size),
                      _when(r.created_at), ", ".join(f"{k}={v}" for k, v in r.tags.items()))
    _console().print(table)


@model.command("show")
@click.argument("name")
@version_option
@click.option("--limit", "-n", default=20, show_default=True, help="Files to list (0: all).")
@workspace_option
@friendly_errors
def model_show(name: str, version: int | None, limit: int, workspace_ref: str | None) -> None:
    """Show model NAME: its run, tags, properties, datasets, and files with sizes and sha256."""
    from rich.table import Table

    from runlab.sdk.model import Model
    from runlab.store.transfer import format_size

    ws = open_workspace(workspace_ref)
    found = Model(ws, name, version=version)
    r = found.record
    versions = [m.version for m in Model.list(ws, name=name)]
    console = _console()
    datasets = ", ".join(f"{d.scenario}: {d.dataset_name}:{d.dataset_version}" if d.dataset_name
                         else f"{d.scenario}: (not registered)" for d in r.datasets)
    rows = [("name", r.name), ("version", f"{r.version} (versions: {', '.join(map(str, sorted(versions)))})"),
            ("id", r.model_id), ("run", r.run_id or "(files of this machine)"), ("source", r.source),
            ("registered", _when(r.created_at)), ("description", r.description),
            ("framework", " ".join(x for x in (r.framework, r.framework_version) if x)),
            ("tags", ", ".join(f"{k}={v}" for k, v in r.tags.items())),
            ("properties", ", ".join(f"{k}={v}" for k, v in r.properties.items())), ("datasets", datasets),
            ("files", f"{r.file_count:,}, {format_size(r.total_size)}")]
    for key, value in rows:
        console.print(f"{key:>12}: {value}", soft_wrap=True, markup=False)
    files = found.get_files()
    shown = files if limit <= 0 else files[:limit]
    table = Table("path", "size", "sha256")
    for f in shown:
        table.add_row(f.path, format_size(f.size), f.sha256)
    console.print(table)
    if len(shown) < len(files):
        console.print(f"... and {len(files) - len(shown):,} more (--limit 0 lists them all)")


@model.command("download")
@click.argument("name")
@click.argument("dest", default=".", type=click.Path(file_okay=False))
@version_option
@click.option("--exist-ok", is_flag=True, help="Overwrite the model's files if DEST already holds them.")
@workspace_option
@friendly_errors
def model_download(name: str, dest: str, version: int | None, exist_ok: bool, workspace_ref: str | None) -> None:
    """Copy the files of model NAME into folder DEST (default: here), checked against their sha256."""
    import time

    from runlab.sdk.model import Model
    from runlab.store.transfer import format_size

    ws = open_workspace(workspace_ref)
    found = Model(ws, name, version=version)
    started = time.perf_counter()
    path = found.download(dest, exist_ok=exist_ok)
    r = found.record
    _console().print(f"downloaded model {found.id} ({r.file_count:,} file{'' if r.file_count == 1 else 's'}, "
                     f"{format_size(r.total_size)}) to {path} in {time.perf_counter() - started:.1f} s")


@model.command("delete")
@click.argument("name")
@click.option("--version", "version", type=int, metavar="N", required=True, help="The version to delete.")
@workspace_option
@friendly_errors
def model_delete(name: str, version: int, workspace_ref: str | None) -> None:
    """Delete version N of model NAME (the number is not given again); files no other version holds are removed."""
    from runlab.sdk.model import Model

    ws = open_workspace(workspace_ref)
    Model(ws, name, version=version).delete()
    _console().print(f"deleted model {name}:{version}")


def _when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")
