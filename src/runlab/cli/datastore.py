"""``runlab datastore``: list, show, register, upload to and download from a workspace's datastores."""

from __future__ import annotations

from datetime import datetime

import click

from runlab.cli.main import _console, friendly_errors, open_workspace, workspace_option


@click.group()
def datastore() -> None:
    """List, show, register and set the default datastore; upload and download files."""


@datastore.command("list")
@workspace_option
@friendly_errors
def datastore_list(workspace_ref: str | None) -> None:
    """List the datastores of the workspace (the default is marked with *)."""
    from rich.table import Table

    ws = open_workspace(workspace_ref)
    default = ws.get_default_datastore().name
    table = Table("", "name", "type", "where")
    for name, ds in sorted(ws.datastores.items()):
        table.add_row("*" if name == default else "", name, ds.datastore_type, ds.location)
    _console().print(table)


@datastore.command("show")
@click.argument("name")
@workspace_option
@friendly_errors
def datastore_show(name: str, workspace_ref: str | None) -> None:
    """Show datastore NAME: its type, where its files are, how many and how large."""
    from runlab.sdk.datastore import Datastore
    from runlab.store.transfer import format_size

    ws = open_workspace(workspace_ref)
    ds = Datastore.get(ws, name)
    files = ds.list_files()
    console = _console()
    rows = [("name", ds.name), ("type", ds.datastore_type), ("where", ds.location),
            ("default", "yes" if ws.get_default_datastore().name == ds.name else "no"),
            ("registered", datetime.fromtimestamp(ds.created_at).strftime("%Y-%m-%d %H:%M:%S")),
            ("files", f"{len(files):,} ({format_size(sum(f.size for f in files))})")]
    for key, value in rows:
        console.print(f"{key:>10}: {value}")


@datastore.command("upload")
@click.argument("name")
@click.argument("src", type=click.Path(exists=True))
@click.option("--target-path", "-t", help="Folder on the datastore to copy into (default: its root).")
@click.option("--overwrite", is_flag=True, help="Copy every file, even those already there with the same bytes.")
@workspace_option
@friendly_errors
def datastore_upload(name: str, src: str, target_path: str | None, overwrite: bool, workspace_ref: str | None) -> None:
    """Copy the contents of folder SRC (or the file SRC) to datastore NAME."""
    import os

    from runlab.sdk.datastore import Datastore

    ds = Datastore.get(open_workspace(workspace_ref), name)
    if os.path.isdir(src):
        ds.upload(src, target_path=target_path, overwrite=overwrite, show_progress=True)
    else:
        ds.upload_files([src], target_path=target_path, overwrite=overwrite, show_progress=True)


@datastore.command("download")
@click.argument("name")
@click.argument("dest", type=click.Path(file_okay=False))
@click.option("--prefix", "-p", help="Only files whose path on the datastore starts with this.")
@click.option("--overwrite", is_flag=True, help="Copy every file, even those already in DEST with the same bytes.")
@workspace_option
@friendly_errors
def datastore_download(name: str, dest: str, prefix: str | None, overwrite: bool, workspace_ref: str | None) -> None:
    """Copy the files of datastore NAME (under --prefix) into folder DEST, keeping their paths."""
    from runlab.sdk.datastore import Datastore

    Datastore.get(open_workspace(workspace_ref), name).download(dest, prefix=prefix, overwrite=overwrite,
                                                                show_progress=True)


@datastore.group("register")
def datastore_register() -> None:
    """Register a folder of this machine or an S3 bucket as a datastore."""


@datastore_register.command("local")
@click.argument("name")
@click.argument("path", type=click.Path(file_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace a datastore already registered under NAME.")
@workspace_option
@friendly_errors
def datastore_register_local(name: str, path: str, overwrite: bool, workspace_ref: str | None) -> None:
    """Register folder PATH (created when missing) as datastore NAME."""
    from runlab.sdk.datastore import Datastore

    ds = Datastore.register_local(open_workspace(workspace_ref), name, path, overwrite=overwrite)
    _console().print(f"datastore [bold]{ds.name}[/bold]: {ds.location}")


@datastore_register.command("s3")
@click.argument("name")
@click.option("--bucket", required=True, help="The bucket's name.")
@click.option("--prefix", help="A folder in the bucket (default: its root).")
@click.option("--endpoint-url", help="An S3-compatible server (MinIO, Ceph...); default: AWS.")
@click.option("--region", help="The bucket's region (default: AWS_DEFAULT_REGION or the profile's).")
@click.option("--overwrite", is_flag=True, help="Replace a datastore already registered under NAME.")
@workspace_option
@friendly_errors
def datastore_register_s3(name: str, bucket: str, prefix: str | None, endpoint_url: str | None, region: str | None,
                          overwrite: bool, workspace_ref: str | None) -> None:
    """Register S3 bucket --bucket as datastore NAME; the bucket is reached now.

    Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE, as for the aws
    command; runlab never stores them."""
    from runlab.sdk.datastore import Datastore

    ds = Datastore.register_s3(open_workspace(workspace_ref), name, bucket, prefix=prefix, endpoint_url=endpoint_url,
                               region=region, overwrite=overwrite)
    _console().print(f"datastore [bold]{ds.name}[/bold]: {ds.location}")


@datastore.command("set-default")
@click.argument("name")
@workspace_option
@friendly_errors
def datastore_set_default(name: str, workspace_ref: str | None) -> None:
    """Make datastore NAME the workspace's default (ws.get_default_datastore())."""
    ws = open_workspace(workspace_ref)
    ws.set_default_datastore(name)
    _console().print(f"default datastore: [bold]{name}[/bold]")
