"""``runlab dataset``: define, register, list, show and download datasets."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from runlab.cli.main import _console, friendly_errors, open_workspace, workspace_option

if TYPE_CHECKING:
    from runlab.core.assets import DatasetFile
    from runlab.sdk.dataset import Dataset

KINDS = {"files": "files", "delimited": "delimited text (CSV)", "parquet": "Parquet", "json_lines": "JSON lines"}
version_option = click.option("--version", "version", type=int, metavar="N", help="This version (default: the latest).")


@click.group()
def dataset() -> None:
    """Define and register datasets; list, show and download registered versions."""


@dataset.command("create")
@click.argument("name")
@click.argument("paths", nargs=-1, required=True)
@click.option("--files", "kind", flag_value="files", default=True, help="A file dataset (the default).")
@click.option("--delimited", "kind", flag_value="delimited", help="A tabular dataset of CSV (delimited) files.")
@click.option("--parquet", "kind", flag_value="parquet", help="A tabular dataset of Parquet files.")
@click.option("--json-lines", "kind", flag_value="json_lines", help="A tabular dataset of JSON lines files.")
@click.option("--datastore", "datastore_name", metavar="NAME",
              help="PATHS are on this datastore (default: PATHS are on this machine).")
@click.option("--separator", default=",", show_default=True, help="With --delimited: the column separator.")
@click.option("--no-header", is_flag=True, help="With --delimited: the first row is data (columns Column1...).")
@click.option("--register", "do_register", is_flag=True, help="Register it as NAME (else: only show what it holds).")
@click.option("--new-version", is_flag=True, help="With --register: record a new version if NAME's latest differs.")
@click.option("--description", help="With --register: a description.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="With --register: a tag (repeatable).")
@workspace_option
@friendly_errors
def dataset_create(name: str, paths: tuple[str, ...], kind: str, datastore_name: str | None, separator: str,
                   no_header: bool, do_register: bool, new_version: bool, description: str | None,
                   tags: tuple[str, ...], workspace_ref: str | None) -> None:
    """Define dataset NAME from PATHS (files, folders or globs such as 'images/**/*.png'), show what it
    holds, and with --register record it as a version.

    Example: runlab dataset create cifar10 --files datasets/cifar10 --datastore workspaceblobstore --register"""
    from runlab.core.errors import UserError
    from runlab.core.names import check_id
    from runlab.sdk.dataset import Dataset

    check_id(name, "dataset name", "'cifar10'")
    tag_map = {}
    for tag in tags:
        key, sep, value = tag.partition("=")
        if not sep or not key:
            raise UserError(f"--tag takes KEY=VALUE, got {tag!r}")
        tag_map[key] = value
    ws = open_workspace(workspace_ref)
    sources: list[Any] = list(paths)
    if datastore_name is not None:
        from runlab.sdk.datastore import Datastore

        store = Datastore.get(ws, datastore_name)
        sources = [(store, path) for path in paths]
    argument = sources if len(sources) > 1 else sources[0]
    if kind == "files":
        made: Dataset = Dataset.File.from_files(argument)
    elif kind == "delimited":
        made = Dataset.Tabular.from_delimited_files(argument, separator=separator, header=not no_header)
    elif kind == "parquet":
        made = Dataset.Tabular.from_parquet_files(argument)
    else:
        made = Dataset.Tabular.from_json_lines_files(argument)
    console = _console()
    if not do_register:
        files = made.get_files()
        console.print(f"dataset {name} ({KINDS[kind]}): {_files_summary(files)}")
        _print_files(files, limit=10)
        console.print(f"not registered: add --register to record it as {name}")
        return
    registered = made.register(ws, name, description=description, tags=tag_map, create_new_version=new_version)
    files = registered.get_files()
    console.print(f"dataset [bold]{registered.name}[/bold] version {registered.version} ({registered.id}): "
                  f"{_files_summary(files)}")


@dataset.command("list")
@workspace_option
@friendly_errors
def dataset_list(workspace_ref: str | None) -> None:
    """List the registered datasets: latest version, kind, files and size."""
    from rich.table import Table

    from runlab.store.transfer import format_size

    ws = open_workspace(workspace_ref)
    records = ws.folder.store.list_datasets()
    if not records:
        _console().print("no datasets registered yet: register one with dataset.register(ws, name) or "
                         "`runlab dataset create NAME --files PATH --register`")
        return
    table = Table("name", "version", "kind", "files", "size", "registered", "description")
    for r in records:
        table.add_row(r.name, str(r.version), r.kind, f"{r.file_count:,}", format_size(r.total_size),
                      _when(r.created_at), r.description)
    _console().print(table)


@dataset.command("show")
@click.argument("name")
@version_option
@click.option("--limit", "-n", default=20, show_default=True, help="Files to list (0: all).")
@workspace_option
@friendly_errors
def dataset_show(name: str, version: int | None, limit: int, workspace_ref: str | None) -> None:
    """Show registered dataset NAME: its definition, versions, and files with sizes and checksums."""
    import json

    from runlab.sdk.dataset import Dataset

    ws = open_workspace(workspace_ref)
    found = Dataset.get_by_name(ws, name, version="latest" if version is None else version)
    record = found.registration
    assert record is not None
    versions = [r.version for r in ws.folder.store.list_datasets(all_versions=True) if r.name == name]
    console = _console()
    changed = found.data_changed_time
    rows = [("name", name), ("version", f"{record.version} (versions: {', '.join(map(str, versions))})"),
            ("id", record.dataset_id), ("kind", record.kind), ("registered", _when(record.created_at)),
            ("data changed", changed.astimezone().strftime("%Y-%m-%d %H:%M:%S") if changed else ""),
            ("description", record.description), ("tags", ", ".join(f"{k}={v}" for k, v in record.tags.items())),
            ("definition", json.dumps(dict(record.definition), sort_keys=True))]
    used = ws.folder.store.list_dataset_runs(name, record.version)
    shown_runs = ", ".join(f"{u.run_id} ({u.name}, {u.mode})" for u in used[:5])
    rows.append(("used by", (f"{len(used):,} run{'' if len(used) == 1 else 's'}: {shown_runs}"
                             + (f" and {len(used) - 5:,} more" if len(used) > 5 else "")) if used else "no run yet"))
    for key, value in rows:
        console.print(f"{key:>12}: {value}", soft_wrap=True, markup=False)
    files = found.get_files()
    console.print(f"{'files':>12}: {_files_summary(files)}")
    _print_files(files, limit=limit)


@dataset.command("download")
@click.argument("name")
@click.argument("dest", type=click.Path(file_okay=False))
@version_option
@click.option("--overwrite", is_flag=True, help="Replace files already in DEST.")
@workspace_option
@friendly_errors
def dataset_download(name: str, dest: str, version: int | None, overwrite: bool, workspace_ref: str | None) -> None:
    """Copy the files of registered dataset NAME into folder DEST (checked against their recorded sha256)."""
    import time

    from runlab.sdk.dataset import Dataset
    from runlab.store.transfer import format_size

    ws = open_workspace(workspace_ref)
    found = Dataset.get_by_name(ws, name, version="latest" if version is None else version)
    started = time.perf_counter()
    paths = found.download_files(dest, overwrite=overwrite)
    size = sum(p.stat().st_size for p in paths)
    _console().print(f"downloaded {len(paths):,} file{'' if len(paths) == 1 else 's'}, {format_size(size)} of "
                     f"dataset {name} version "
                     f"{found.version} to {dest} in {time.perf_counter() - started:.1f} s")


def _files_summary(files: "list[DatasetFile]") -> str:
    from runlab.store.transfer import format_size

    return f"{len(files):,} file{'' if len(files) == 1 else 's'}, {format_size(sum(f.size for f in files))}"


def _print_files(files: "list[DatasetFile]", limit: int) -> None:
    from rich.table import Table

    from runlab.store.transfer import format_size

    if not files:
        return
    shown = files if limit <= 0 else files[:limit]
    checksums = any(f.sha256 for f in shown)  # registered versions; a dry run does not read the files
    table = Table("name", "size", *(["sha256"] if checksums else []), "where")
    for f in shown:
        where = f.path if f.datastore is None else f"{f.datastore}:{f.path}"
        table.add_row(f.name, format_size(f.size), *([(f.sha256 or "")[:16]] if checksums else []), where)
    console = _console()
    console.print(table)
    if len(shown) < len(files):
        console.print(f"... and {len(files) - len(shown):,} more (--limit 0 lists them all)")


def _when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")
