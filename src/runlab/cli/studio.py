"""``runlab studio``: serve the studio (REST API and pages) of a workspace in one process."""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

import click

from runlab.cli.late import friendly_errors

DEFAULT_PORT = 8765
DEFAULT_HOST = "127.0.0.1"


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise click.ClickException(
                    f"port {port} on {host} is already in use (another studio?): open that one, or pick "
                    f"another port with --port") from exc
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


@click.command()
@click.option("--port", "-p", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on.")
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help="Address to listen on. The studio has no login: keep 127.0.0.1 unless you trust the network.")
@click.option("--workspace", "-w", "workspace_ref", metavar="NAME|PATH",
              help="Workspace name or folder (default: config.json found from the current folder).")
@friendly_errors
def studio(port: int, host: str, workspace_ref: str | None) -> None:
    """Serve the studio of a workspace: runs, live metric charts and logs, comparisons, REST API.

    Open the printed URL in a browser; run.get_portal_url() links to a run's page on it.
    """
    from runlab.cli.main import open_workspace

    folder = open_workspace(workspace_ref).folder

    _check_port_free(host, port)
    url = _url(host, port)
    if not os.environ.get("RUNLAB_STUDIO_URL"):
        os.environ["RUNLAB_STUDIO_URL"] = url  # so that the API's portal URLs name this server

    import uvicorn

    from runlab.server.app import create_app
    from runlab.server.auth import studio_config

    app = create_app(folder, auth=studio_config(host))  # no tokens; Host names of --host

    class StudioServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            app.state.studio.stopping.set()  # end live streams now, so shutdown does not wait on them
            super().handle_exit(sig, frame)

    click.echo(f"runlab studio: workspace {folder.name} ({folder.path})")
    click.echo(f"  open {url}   (REST API: {url}/api/docs)   Ctrl+C to stop")
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"  warning: listening on {host}: anyone who can reach this machine can read the workspace "
                   "(the studio has no login)", err=True)
    elif port != DEFAULT_PORT and os.environ.get("RUNLAB_STUDIO_URL") == url:
        click.echo(f"  tip: export RUNLAB_STUDIO_URL={url} so that run.get_portal_url() in your scripts links here")
    from runlab.server.app import MAX_REQUEST_HEAD_BYTES

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2,
                            access_log=False, h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES)
    try:
        StudioServer(config).run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl+C it handled: that is a normal stop
        pass
    click.echo("runlab studio: stopped")
