"""``runlab agent --server URL --target NAME``: this machine joins a runlab server as compute."""

from __future__ import annotations

import click

from runlab.cli.late import friendly_errors


@click.command()
@click.option("--server", "server_url", required=True, metavar="URL", envvar="RUNLAB_SERVER_URL",
              help="The runlab server whose queued runs this machine runs, for example http://runlab.internal:8765.")
@click.option("--target", required=True, metavar="NAME",
              help="The compute target whose runs it claims (ComputeTarget.create or `runlab compute create`).")
@click.option("--token", envvar="RUNLAB_TOKEN", metavar="TOKEN",
              help="A writer token (default: RUNLAB_TOKEN, else the credentials file). Runs get tokens of their own.")
@friendly_errors
def agent(server_url: str, target: str, token: str | None) -> None:
    """Run the queued runs of a compute target of a runlab server on this machine.

    The agent claims runs through the server's API, fetches their snapshots, builds their environments
    here (cached by hash), runs the scripts, and sends their logs, metrics and outputs to the server.
    It serves until Ctrl+C or SIGTERM (it finishes the runs it has first). Start one on each machine that
    joins; with `runlab server --no-agents` only such agents run the server's runs.
    """
    from runlab.execution.agent import make_agent
    from runlab.execution.targets import TargetSettings
    from runlab.store.remote.workspace import RemoteWorkspace

    folder = RemoteWorkspace(server_url, token)
    settings = TargetSettings.load(folder, target)  # type: ignore[arg-type]  # ComputeTargetException: no such target
    click.echo(f"runlab agent: target {target} of workspace {folder.name} at {folder.server_url} "
               f"(max_nodes={settings.max_nodes}); Ctrl+C to stop")
    try:
        code = make_agent(folder, target, stay=True).serve()  # type: ignore[arg-type]
    except KeyboardInterrupt:
        code = 0
    click.echo("runlab agent: stopped")
    raise SystemExit(code)
