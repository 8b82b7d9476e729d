"""``runlab server``: one shared workspace for a team, over HTTP, on PostgreSQL (or SQLite) and a files folder."""

from __future__ import annotations

import os
from typing import Any

import click

from runlab.cli.late import friendly_errors

DEFAULT_PORT = 8765
LOOPBACK = ("127.0.0.1", "localhost", "::1")

STORE_HELP = ("Database of the workspace's metadata and metrics: postgresql+psycopg://user:password@host:port/db "
              "or sqlite:////absolute/path.db (env RUNLAB_STORE_URL, which keeps a password out of `ps`).")
ARTIFACTS_HELP = ("Where the workspace's files go: a folder (snapshots, run files, logs, datastore and model files; "
                  "created when new), or s3://bucket/prefix in an S3-compatible store (source snapshots, run files, "
                  "logs, model files, the workspace's own datastores; credentials from the environment, as boto3 "
                  "finds them).")
STATE_HELP = ("With --artifacts s3://...: the server's own folder on this machine (agents' state, journals; "
              "default $RUNLAB_HOME/server-state/BUCKET/PREFIX). Every server process of the workspace "
              "on this machine uses the same one.")


@click.group(invoke_without_command=True)
@click.option("--store", "store_url", envvar="RUNLAB_STORE_URL", metavar="URL", help=STORE_HELP)
@click.option("--artifacts", metavar="PATH|s3://BUCKET/PREFIX", help=ARTIFACTS_HELP)
@click.option("--state", type=click.Path(file_okay=False), metavar="PATH", help=STATE_HELP)
@click.option("--s3-endpoint-url", metavar="URL", envvar="RUNLAB_S3_ENDPOINT_URL",
              help="With --artifacts s3://...: the S3 endpoint (MinIO, Ceph, a cloud other than AWS), "
                   "for example http://127.0.0.1:9000 (env RUNLAB_S3_ENDPOINT_URL; default: AWS).")
@click.option("--s3-region", metavar="REGION", help="With --artifacts s3://...: the bucket's region.")
@click.option("--name", help="Workspace name, when the artifacts folder is new (default: 'default').")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Another address than loopback needs authentication (the default).")
@click.option("--port", "-p", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes sharing the port; all serve the same store.")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="Another name clients reach this server by (its DNS name): requests whose Host header is not "
                   "a loopback name, --host, or one of these are refused (DNS rebinding). Repeatable.")
@click.option("--url", metavar="URL", help="The URL agents and runs use to reach this server "
              "(default: http://HOST:PORT, or https with --certfile).")
@click.option("--no-auth", is_flag=True, help="Serve without tokens (loopback only): anyone on this machine can "
              "read and write the workspace.")
@click.option("--agents/--no-agents", default=True, show_default=True,
              help="Start the agent of a compute target beside the server when runs are submitted to it. "
                   "--no-agents: runs wait for agents started on other machines (runlab agent --server URL).")
@click.option("--certfile", type=click.Path(dir_okay=False, exists=True), help="TLS certificate (PEM): serve HTTPS.")
@click.option("--keyfile", type=click.Path(dir_okay=False, exists=True), help="TLS private key (PEM) of --certfile.")
@click.pass_context
@friendly_errors
def server(ctx: click.Context, store_url: str | None, artifacts: str | None, state: str | None,
           s3_endpoint_url: str | None, s3_region: str | None, name: str | None, host: str, port: int,
           workers: int, allowed_hosts: tuple[str, ...], url: str | None, no_auth: bool, agents: bool,
           certfile: str | None, keyfile: str | None) -> None:
    """Serve a workspace to a team: the studio, the REST API, runlab's client protocol and MLflow's
    tracking API, over a SQL store and a files folder, with tokens.

    \b
    First start:  runlab server upgrade --store URL
                  runlab token create --store URL --name admin --role admin
                  runlab server --store URL --artifacts /srv/runlab
    In S3:        runlab server --store URL --artifacts s3://bucket/runlab [--s3-endpoint-url URL]
    Clients:      config.json {"server": "http://host:8765", "workspace_name": "NAME"}, token in RUNLAB_TOKEN.
    """
    ctx.ensure_object(dict)
    ctx.obj["store_url"] = store_url
    if ctx.invoked_subcommand is not None:
        return
    if not store_url or not artifacts:
        raise click.UsageError("runlab server needs --store URL and --artifacts PATH (see runlab server --help)")
    if bool(certfile) != bool(keyfile):
        raise click.UsageError("--certfile and --keyfile go together")
    in_s3 = artifacts.startswith("s3://")
    if not in_s3 and (state or s3_endpoint_url or s3_region):
        raise click.UsageError("--state, --s3-endpoint-url and --s3-region go with --artifacts s3://bucket/prefix")
    from runlab.cli.studio import _check_port_free
    from runlab.server.auth import check_bind
    from runlab.server.hosting import CONFIG_ENV, ServerConfig, open_hosted
    from runlab.store.hosted import STORE_URL_ENV, redacted

    check_bind(host, not no_auth)
    _check_schema(store_url, creating=True)
    config = ServerConfig(artifacts=str(artifacts), name=name, host=host, port=port, auth=not no_auth,
                          allowed_hosts=list(allowed_hosts), https=bool(certfile), url=url, agents=agents,
                          state=state, s3_endpoint_url=s3_endpoint_url, s3_region=s3_region)
    try:
        folder = open_hosted(store_url, config)  # made (and checked) once, before any worker starts
    except OSError as exc:  # --artifacts or --state that cannot be made or written
        raise click.ClickException(f"cannot use {exc.filename or artifacts}: {exc.strerror or exc} (give --artifacts "
                                   "and --state folders this user can create and write)") from None
    if config.auth and not _has_admin(folder):
        click.echo("runlab server: no token exists yet; create one with\n"
                   f"  runlab token create --store '{redacted(store_url)}' --name admin --role admin", err=True)
    _check_port_free(host, port)
    os.environ[STORE_URL_ENV] = store_url
    os.environ[CONFIG_ENV] = config.to_env()
    os.environ.setdefault("RUNLAB_STUDIO_URL", config.public_url)
    where = (f"files {folder.describe().get('artifacts')}, state {folder.path}" if in_s3 else f"files {folder.path}")
    click.echo(f"runlab server: workspace {folder.name} (store {redacted(store_url)}, {where})")
    click.echo(f"  serving {config.public_url}  ({workers} worker{'s' if workers > 1 else ''}, "
               f"{'tokens required' if config.auth else 'NO authentication'})   Ctrl+C to stop")
    import uvicorn

    from runlab.server.app import MAX_REQUEST_HEAD_BYTES

    ssl: dict[str, Any] = {"ssl_certfile": certfile, "ssl_keyfile": keyfile} if certfile else {}
    try:
        uvicorn.run("runlab.server.hosting:app_from_environment", factory=True, host=host, port=port,
                    workers=workers, log_level="warning", access_log=False, timeout_graceful_shutdown=5, **ssl,
                    h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES)
    except KeyboardInterrupt:
        pass
    click.echo("runlab server: stopped")


def _has_admin(folder: Any) -> bool:
    from runlab.store.sql.tokens import TokenStore

    return any(t.role == "admin" for t in TokenStore(folder.store.engine).list())


def _check_schema(store_url: str, *, creating: bool) -> None:
    """A store whose schema is older than this runlab's is not served: `runlab server upgrade` first."""
    from sqlalchemy.exc import SQLAlchemyError

    from runlab.store.hosted import redacted
    from runlab.store.sql.migrate import current_revision
    from runlab.store.sql.schema import SCHEMA_REVISION
    from runlab.store.sql.store import SqlStore

    store = SqlStore(store_url, migrate=False)
    try:
        revision = current_revision(store.engine)
    except SQLAlchemyError as exc:  # one line: what failed, and what to check
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        hint = ("does its folder exist, and may this user write there?" if store_url.startswith("sqlite")
                else "is the database server running, and are the host, port, user and database right?")
        raise click.ClickException(f"cannot open the store {redacted(store_url)}: {reason} ({hint})") from None
    finally:
        store.close()
    if revision is None and creating:
        return  # a new database: its schema is made at once
    if revision != SCHEMA_REVISION:
        raise click.ClickException(
            f"the store's schema is at revision {revision}, this runlab needs {SCHEMA_REVISION}: back it up "
            "(runlab server backup), then run `runlab server upgrade --store URL`")


@server.command("upgrade")
@click.option("--store", "store_url", envvar="RUNLAB_STORE_URL", metavar="URL", help=STORE_HELP)
@click.pass_context
@friendly_errors
def upgrade(ctx: click.Context, store_url: str | None) -> None:
    """Apply the store's schema migrations (Alembic) and say which ran."""
    store_url = store_url or ctx.obj.get("store_url")
    if not store_url:
        raise click.UsageError("runlab server upgrade needs --store URL")
    from runlab.store.hosted import check_store_url, redacted
    from runlab.store.sql.migrate import current_revision
    from runlab.store.sql.migrate import upgrade as apply
    from runlab.store.sql.store import SqlStore

    store = SqlStore(check_store_url(store_url), migrate=False)
    try:
        before = current_revision(store.engine)
        apply(store.engine)
        after = current_revision(store.engine)
    finally:
        store.close()
    ran = _revisions_between(before, after)
    if not ran:
        click.echo(f"runlab server upgrade: {redacted(store_url)} is up to date (revision {after})")
        return
    click.echo(f"runlab server upgrade: {redacted(store_url)} from revision {before or '(empty)'} to {after}; ran:")
    for revision, doc in ran:
        click.echo(f"  {revision}  {doc}")


def _revisions_between(before: str | None, after: str | None) -> list[tuple[str, str]]:
    from alembic.script import ScriptDirectory

    from runlab.store.sql.migrate import alembic_config

    scripts = ScriptDirectory.from_config(alembic_config())  # type: ignore[arg-type]
    out = []
    for script in scripts.iterate_revisions(after or "head", before or "base"):
        if script.revision == before:
            continue
        out.append((script.revision, (script.doc or "").strip().splitlines()[0] if script.doc else ""))
    return list(reversed(out))


def _register_ops() -> None:
    from runlab.cli.server_ops import backup_command, restore_command

    server.add_command(backup_command, "backup")
    server.add_command(restore_command, "restore")


_register_ops()
