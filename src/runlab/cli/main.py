"""The ``runlab`` command: thin over the facade; heavy imports happen inside commands."""

from __future__ import annotations

import functools
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import click

if TYPE_CHECKING:
    from runlab.sdk.workspace import Workspace

F = TypeVar("F", bound=Callable[..., Any])


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # piped output (a file, grep) is not cut to 80 columns
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else 200)


def friendly_errors(fn: F) -> F:
    """One clear line for our errors (and for unexpected ones: RUNLAB_DEBUG=1 shows the traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from runlab.core.errors import RunlabError

        try:
            return fn(*args, **kwargs)
        except RunlabError as exc:
            _console(stderr=True).print(f"[red]error:[/red] {exc.message}", soft_wrap=True, markup=True)
            sys.exit(1)
        except (click.exceptions.Exit, click.UsageError, click.Abort, KeyboardInterrupt):
            raise
        except click.ClickException as exc:  # as our own errors: "error: ..." (click would print "Error: ...")
            from rich.text import Text  # the message as it is (no markup), after a red "error:"

            _console(stderr=True).print(Text.assemble(("error:", "red"), f" {exc.format_message()}"), soft_wrap=True)
            sys.exit(exc.exit_code)
        except Exception as exc:
            if os.environ.get("RUNLAB_DEBUG"):
                raise
            _console(stderr=True).print(
                f"[red]error:[/red] {type(exc).__name__}: {exc} (set RUNLAB_DEBUG=1 for the traceback)",
                soft_wrap=True,
            )
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


workspace_option = click.option(
    "--workspace", "-w", "workspace_ref", metavar="NAME|PATH",
    help="Workspace name or folder (default: config.json found from the current folder).",
)


def open_workspace(ref: str | None) -> "Workspace":
    """The workspace of ``-w NAME|PATH`` (a value that looks like a path is a path), else of the
    config.json found from the current folder."""
    from runlab.core.errors import ConfigError, WorkspaceNotFoundError
    from runlab.sdk.workspace import Workspace
    from runlab.store.folder import WorkspaceFolder

    if ref is None:
        try:
            return Workspace.from_config()
        except ConfigError as exc:
            searched = exc.context.get("searched")
            if not searched:
                raise
            raise ConfigError(_no_config_message(searched), searched=searched) from None
    if WorkspaceFolder.is_workspace(ref):
        return Workspace.from_path(ref)
    if _looks_like_path(ref):
        path = Path(ref).expanduser()
        why = "does not exist" if not path.exists() else "is not a workspace folder (it has no workspace.json)"
        raise WorkspaceNotFoundError(f"{ref} {why}: pass a workspace's folder or name (runlab workspace list)",
                                     path=path)
    return Workspace.get(ref)


def _looks_like_path(ref: str) -> bool:
    """Workspace names hold no slash and start with a letter or digit: anything else is a path."""
    return ref.startswith((".", "~")) or "/" in ref or os.sep in ref


def _no_config_message(searched: list[Path]) -> str:
    """The no-config error of the command line: two lines, and what to do there."""
    from runlab.sdk.workspace import Workspace

    names = sorted(Workspace.list())
    folders = [p for p in searched if p.name not in (".runlab", ".azureml", "aml_config")] or searched
    pick = (f"pass -w NAME (workspaces: {', '.join(names)})" if names
            else "create one: runlab workspace create NAME --write-config .")
    return (f"no config.json found (in .azureml/, .runlab/, aml_config/ or the folder itself) from {folders[0]} "
            f"up to {folders[-1]}\n  {pick}, or cd into a project that has .azureml/config.json")


def _when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


STATUS_STYLE = {
    "Completed": "green", "Failed": "red", "Canceled": "yellow", "Running": "cyan",
    "Queued": "magenta", "Preparing": "magenta", "Starting": "magenta", "Finalizing": "cyan",
}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="runlab")
def cli() -> None:
    """runlab: the Azure ML SDK v1 experience, self-hosted. Workspaces, runs, metrics."""


# -- workspace ---------------------------------------------------------------------------------


@cli.group()
def workspace() -> None:
    """Create, list and show workspaces."""


@workspace.command("create")
@click.argument("name")
@click.option("--path", type=click.Path(file_okay=False), help="Folder of the workspace (default: $RUNLAB_HOME/workspaces/NAME).")
@click.option("--exist-ok", is_flag=True, help="Succeed if the workspace already exists.")
@click.option("--write-config", "config_dir", type=click.Path(file_okay=False),
              help="Also write config.json into DIR/.azureml (e.g. --write-config .).")
@friendly_errors
def workspace_create(name: str, path: str | None, exist_ok: bool, config_dir: str | None) -> None:
    """Create the workspace NAME (a folder with a SQLite database)."""
    from runlab.sdk.workspace import Workspace

    ws = Workspace.create(name, path=path, exist_ok=exist_ok)
    _console().print(f"workspace [bold]{ws.name}[/bold] at {ws.path}")
    if config_dir is not None:
        _console().print(f"wrote {ws.write_config(config_dir)}")


@workspace.command("list")
@friendly_errors
def workspace_list() -> None:
    """List the workspaces registered on this machine."""
    from rich.table import Table

    from runlab.sdk.workspace import Workspace

    found = Workspace.list()
    if not found:
        _console().print("no workspaces yet: create one with `runlab workspace create NAME`")
        return
    table = Table("name", "path")
    for name, workspaces in found.items():
        table.add_row(name, str(workspaces[0].path))
    _console().print(table)


@workspace.command("show")
@click.argument("name", required=False)
@workspace_option
@friendly_errors
def workspace_show(name: str | None, workspace_ref: str | None) -> None:
    """Show a workspace (-w NAME|PATH; default: the one config.json names) and its experiments."""
    ws = open_workspace(workspace_ref or name)
    details = ws.get_details()
    console = _console()
    for key in ("name", "path", "id"):
        console.print(f"{key:>12}: {details[key]}")
    console.print(f"{'created':>12}: {_when(details['created_at'])}")
    experiments = ws.folder.store.list_experiments()
    console.print(f"{'experiments':>12}: {', '.join(e.name for e in experiments) or 'none'}")


# -- runs --------------------------------------------------------------------------------------


@cli.group()
def runs() -> None:
    """List and show runs."""


@runs.command("list")
@workspace_option
@click.option("--experiment", "-e", help="Only runs of this experiment.")
@click.option("--status", "-s", help="Only runs with this status (Running, Completed, Failed, ...).")
@click.option("--limit", "-n", default=50, show_default=True, type=click.IntRange(1, 1_000_000),
              help="At most this many runs, newest first (1 to 1,000,000).")
@friendly_errors
def runs_list(workspace_ref: str | None, experiment: str | None, status: str | None, limit: int) -> None:
    """List runs, newest first."""
    from rich.table import Column, Table

    from runlab.core.status import RunStatus
    from runlab.execution.targets import restart_dead_agents

    ws = open_workspace(workspace_ref)
    statuses = None if status is None else [RunStatus.parse(status)]
    records = ws.folder.store.list_runs(experiment_name=experiment, statuses=statuses, limit=limit)
    restart_dead_agents(ws.folder, {r.target for r in records if r.status == RunStatus.QUEUED})
    if not records:
        filters = [f"{flag} {value}" for flag, value in (("--experiment", experiment), ("--status", status)) if value]
        if filters:
            _console().print(f"no runs match {' '.join(filters)} (runlab runs list shows them all)")
        else:
            _console().print("no runs yet: start one with experiment.start_logging() or Run.get_context()")
        return
    table = Table(Column("run id", no_wrap=True), "experiment", Column("status", no_wrap=True), "started",
                  "duration", "target")
    for r in records:
        style = STATUS_STYLE.get(str(r.status), "")
        table.add_row(r.run_id, r.experiment_name, f"[{style}]{r.status}[/]" if style else str(r.status),
                      _when(r.started_at), _duration(r.duration_s), r.target)
    _console().print(table)


@runs.command("show")
@click.argument("run_id")
@workspace_option
@friendly_errors
def runs_show(run_id: str, workspace_ref: str | None) -> None:
    """Show one run: status, times, tags, properties, metrics and files."""
    ws = open_workspace(workspace_ref)
    run = ws.get_run(run_id)
    record = run.record
    console = _console()
    rows = [
        ("run id", record.run_id), ("experiment", record.experiment_name), ("status", str(record.status)),
        ("type", str(record.run_type)), ("target", record.target),
        *([("parent", record.parent_run_id)] if record.parent_run_id else []),
        ("created", _when(record.created_at)), ("started", _when(record.started_at)),
        ("ended", _when(record.ended_at)), ("duration", _duration(record.duration_s)),
    ]
    for key, value in rows:
        console.print(f"{key:>11}: {value}")
    if record.error:
        console.print(f"{'error':>11}: [red]{record.error.get('message', '')}[/red]")
    for title, mapping in (("tags", record.tags), ("properties", record.properties)):
        if mapping:
            console.print(f"{title:>11}: " + ", ".join(f"{k}={v}" for k, v in mapping.items()))
    summaries = ws.folder.store.get_metric_summaries(run_id)
    if summaries:
        console.print(f"{'metrics':>11}: " + "; ".join(f"{s.name} ({s.count} points, last {_value(s.last)})"
                                                        for s in summaries), soft_wrap=True)
    files = run.get_file_names()
    if files:
        console.print(f"{'files':>11}: " + ", ".join(files))


# -- metrics -----------------------------------------------------------------------------------


@cli.command()
@click.argument("run_id")
@click.argument("name", required=False)
@workspace_option
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
              help="table: one row per metric (or per point with NAME); csv/json: every point.")
@friendly_errors
def metrics(run_id: str, name: str | None, workspace_ref: str | None, fmt: str) -> None:
    """Show the metrics of RUN_ID (every point of NAME when given)."""
    ws = open_workspace(workspace_ref)
    store = ws.folder.store
    summaries = store.get_metric_summaries(run_id)
    if name is not None and name not in {s.name for s in summaries}:
        from runlab.core.errors import NotFoundError

        known = ", ".join(s.name for s in summaries) or "none"
        raise NotFoundError(f"run {run_id} has no metric named {name!r} (its metrics: {known})")
    wanted = [s for s in summaries if name in (None, s.name)]
    out = sys.stdout
    if fmt == "table" and name is None:
        from rich.table import Table

        if not wanted:
            _console().print(f"run {run_id} has no metrics yet")
            return
        table = Table("name", "kind", "points", "last", "min", "max")
        for s in wanted:
            table.add_row(s.name, s.kind, str(s.count), _value(s.last), _num(s.min), _num(s.max))
        _console().print(table)
        return
    series = [(s, store.get_metric_series(run_id, s.name)) for s in wanted]
    if fmt == "json":
        doc = {
            s.name: {"kind": s.kind, "steps": h.steps.tolist(), "timestamps": h.times.tolist(),
                     "values": h.values.tolist() if hasattr(h.values, "tolist") else list(h.values)}
            for s, h in series
        }
        out.write(json.dumps(doc, allow_nan=True) + "\n")
    elif fmt == "csv":
        import csv

        writer = csv.writer(out)
        writer.writerow(["name", "step", "timestamp", "value"])
        for s, h in series:
            values = h.values.tolist() if hasattr(h.values, "tolist") else list(h.values)
            for step, ts, value in zip(h.steps.tolist(), h.times.tolist(), values):
                writer.writerow([s.name, step, f"{ts:.6f}", value if not isinstance(value, (dict, list)) else json.dumps(value)])
    else:
        from rich.table import Table

        table = Table("step", "time", "value")
        (_s, h), = series
        values = h.values.tolist() if hasattr(h.values, "tolist") else list(h.values)
        for step, ts, value in zip(h.steps.tolist(), h.times.tolist(), values):
            table.add_row(str(step), _when(ts), repr(value))
        _console().print(table)


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _value(value: Any) -> str:
    """A metric's last value as min and max are shown: numbers to 6 significant digits."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _num(value)
    return repr(value)


# -- sync --------------------------------------------------------------------------------------


@cli.command()
@workspace_option
@click.option("--offline-dir", type=click.Path(file_okay=False), help="Offline runs folder (default: $RUNLAB_HOME/offline).")
@friendly_errors
def sync(workspace_ref: str | None, offline_dir: str | None) -> None:
    """Upload offline runs (recorded by Run.get_context() outside a submitted run) to a workspace,
    and write metrics that crashed processes left in journals."""
    from runlab.core.settings import load_settings
    from runlab.sdk.sync import replay_orphan_journals, sync_offline_runs
    from runlab.store.folder import WorkspaceFolder

    ws = open_workspace(workspace_ref)
    console = _console()
    journaled = replay_orphan_journals(ws.folder)
    if journaled:
        console.print(f"wrote {journaled} journaled points left by processes that died")
    source = Path(offline_dir) if offline_dir else load_settings().offline_root
    if not WorkspaceFolder.is_workspace(source):
        console.print(f"no offline runs in {source}")
        return
    synced = sync_offline_runs(WorkspaceFolder(source), ws.folder, progress=console.print)
    where = getattr(ws.folder, "server_url", None) or ws.path
    console.print(f"{len(synced)} offline run(s) synced to workspace {ws.name} ({where})")


def _register_commands() -> None:
    from runlab.cli.agent import agent
    from runlab.cli.compute import compute
    from runlab.cli.dataset import dataset
    from runlab.cli.datastore import datastore
    from runlab.cli.env import env
    from runlab.cli.model import model
    from runlab.cli.quickstart import quickstart
    from runlab.cli.server import server
    from runlab.cli.studio import studio
    from runlab.cli.submission import cancel, logs, submit
    from runlab.cli.token import token

    for command in (compute, dataset, datastore, env, model, submit, logs, cancel, studio, quickstart, server,
                    token, agent):
        cli.add_command(command)


_register_commands()


def main() -> None:
    cli(prog_name="runlab")
