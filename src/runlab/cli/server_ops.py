"""``runlab server backup`` and ``runlab server restore`` (registered by the ``server`` group:
``server.add_command(backup_command, "backup")``)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from runlab.cli.late import friendly_errors

PHASES = {"database": "database", "files": "files", "verify": "checking sha256s"}


@contextmanager
def _progress() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress display on stderr, as a ``progress(phase, done, total)`` callback."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    tasks: dict[str, Any] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:

        def report(phase: str, done: int, total: int) -> None:
            task = tasks.get(phase)
            if task is None:
                task = tasks[phase] = bar.add_task(PHASES.get(phase, phase), total=max(total, 1))
            bar.update(task, completed=done, total=max(total, 1))

        yield report


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


@click.command("backup")
@click.argument("dest", type=click.Path(path_type=Path, file_okay=False))
@click.option("--store", "store_url", metavar="URL",
              help="A server's store (postgresql+psycopg://user@host:port/db or sqlite:////path/workspace.db); "
                   "with --artifacts. Default: the embedded workspace of --workspace.")
@click.option("--artifacts", type=click.Path(path_type=Path, file_okay=False), metavar="PATH",
              help="The server's artifacts folder (with --store); for a server with --artifacts s3://..., its "
                   "--state folder (the bucket's objects are listed in the manifest, not copied).")
@click.option("--workspace", "-w", "workspace_ref", metavar="NAME|PATH",
              help="An embedded workspace's name or folder (default: config.json found from the current folder).")
@click.option("--copy", "copy_files", is_flag=True,
              help="Copy every file instead of hard-linking the files of finished runs (links are made only on "
                   "the same file system).")
@friendly_errors
def backup_command(dest: Path, store_url: str | None, artifacts: Path | None, workspace_ref: str | None,
                   copy_files: bool) -> None:
    """Back up a workspace into DEST (a new or empty folder): the database (pg_dump, or SQLite's
    online backup API, safe while runs write), the files, and a manifest with every file's sha256."""
    from runlab.cli.main import open_workspace
    from runlab.server.backup import backup
    from runlab.store.folder import WorkspaceFolder
    from runlab.store.hosted import HostedWorkspace

    folder: WorkspaceFolder
    if store_url is not None or artifacts is not None:
        if store_url is None or artifacts is None:
            raise click.UsageError("--store and --artifacts go together: give both for a server's workspace, "
                                   "or neither (and --workspace) for an embedded one")
        if workspace_ref is not None:
            raise click.UsageError("give either --store/--artifacts (a server's workspace) or --workspace, not both")
        folder = HostedWorkspace(store_url, artifacts, create=False)
    else:
        folder = open_workspace(workspace_ref).folder
    with _progress() as report:
        result = backup(folder, dest, progress=report, link=not copy_files)
    click.echo(f"backed up workspace {result.workspace_name!r} into {result.dest}: {result.database} database "
               f"(schema {result.schema_revision}), {result.files} files ({_size(result.bytes)}, "
               f"{result.linked} hard-linked)")
    if result.bucket:
        click.echo(f"  the server's files in S3: {result.bucket}")


@click.command("restore")
@click.argument("source", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--artifacts", type=click.Path(path_type=Path, file_okay=False), metavar="PATH", required=True,
              help="Where the files go: a server's artifacts folder, or (without --store) the folder of an embedded "
                   "workspace, whose database goes to PATH/workspace.db.")
@click.option("--store", "store_url", metavar="URL",
              help="Where the database goes, for a server: postgresql+psycopg://user@host:port/db (an existing "
                   "database) or sqlite:////path/workspace.db. Default: PATH/workspace.db (embedded).")
@click.option("--force", is_flag=True,
              help="Replace what the target folder and store hold (refused by default when they are not empty).")
@friendly_errors
def restore_command(source: Path, artifacts: Path, store_url: str | None, force: bool) -> None:
    """Restore the backup in SOURCE, after checking every file's sha256 against its manifest."""
    from runlab.server.backup import restore

    with _progress() as report:
        result = restore(source, store_url=store_url, artifacts=artifacts, force=force, progress=report)
    click.echo(f"restored workspace {result.workspace_name!r} ({result.files} files, {_size(result.bytes)}) into "
               f"{result.artifacts}; database into {result.store} (schema {result.schema_revision})")
