"""``runlab token``: create, list and revoke the access tokens of a runlab server's store."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, TypeVar

import click

from runlab.cli.late import friendly_errors

F = TypeVar("F", bound=Callable[..., Any])
STORE_URL_ENV = "RUNLAB_STORE_URL"


def store_option(fn: F) -> F:
    return click.option(
        "--store", "store_url", metavar="URL", envvar=STORE_URL_ENV, show_envvar=True,
        help="The server's store, as given to `runlab server --store`: postgresql+psycopg://user@host/db or "
             f"sqlite:////abs/path/workspace.db (default: ${STORE_URL_ENV}).",
    )(fn)


def _tokens(store_url: str | None) -> Any:
    from runlab.core.errors import UserError
    from runlab.store.hosted import check_store_url
    from runlab.store.sql.store import SqlStore
    from runlab.store.sql.tokens import TokenStore

    if not store_url:
        raise UserError(f"which store? pass --store URL (the one `runlab server --store` serves) or set {STORE_URL_ENV}")
    return TokenStore(SqlStore(check_store_url(store_url)).engine)


def _when(ts: float | None, empty: str = "") -> str:
    return empty if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


@click.group()
def token() -> None:
    """Access tokens of a runlab server: create (shown once), list, revoke.

    Roles: admin (everything), writer (read and write the workspace), reader (read only). Submitted
    runs get tokens of their own (role run), which write their run only.
    """


@token.command("create")
@click.option("--name", required=True, help="Who or what the token is for (ada, ci-nightly): unique among active "
                                            "tokens; `revoke NAME` takes it.")
@click.option("--role", type=click.Choice(["admin", "writer", "reader"]), default="writer", show_default=True,
              help="What the token may do: admin (everything), writer (read and write), reader (read only).")
@click.option("--read-only", is_flag=True, help="The same as --role reader.")
@click.option("--expires", default="never", show_default=True, metavar="30d|12h|90m|never",
              help="How long the token works: a number and s, m, h, d or w, or never.")
@store_option
@friendly_errors
def token_create(name: str, role: str, read_only: bool, expires: str, store_url: str | None) -> None:
    """Create a token NAME and print it, once: it is stored hashed and cannot be shown again."""
    from runlab.core.errors import UserError
    from runlab.store.sql.tokens import parse_duration

    if read_only:
        explicit = click.get_current_context().get_parameter_source("role") != click.core.ParameterSource.DEFAULT
        if explicit and role != "reader":
            raise UserError(f"--read-only and --role {role} disagree: give one of them")
        role = "reader"
    ttl = parse_duration(expires)
    plaintext, record = _tokens(store_url).create(name, role, expires_in_s=ttl)
    until = "never expires" if record.expires_at is None else f"expires {_when(record.expires_at)}"
    click.echo(f"created token {record.name!r} (id {record.token_id}, role {record.role}, {until}):\n")
    click.echo(f"  {plaintext}\n")
    click.echo("This is the only time it is shown: keep it somewhere safe. Use it with:\n"
               f"  export RUNLAB_TOKEN={plaintext}\n"
               "or send it as `Authorization: Bearer <token>`; in the studio, paste it at /login.\n"
               f"Revoke it with: runlab token revoke {record.token_id}")


@token.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Show revoked tokens too.")
@store_option
@friendly_errors
def token_list(include_revoked: bool, store_url: str | None) -> None:
    """List the tokens (never their secrets): id, name, role, created, expires, last used, revoked."""
    import time

    from rich.table import Table

    from runlab.cli.main import _console

    records = _tokens(store_url).list(include_revoked=include_revoked)
    console = _console()
    if not records:
        console.print("no tokens" + ("" if include_revoked else " (--all shows revoked ones)")
                      + ": create one with runlab token create --name NAME")
        return
    now = time.time()
    table = Table("id", "name", "role", "created", "expires", "last used", "revoked")
    for rec in records:
        expires = _when(rec.expires_at, "never") + (" (expired)" if rec.is_expired(now) else "")
        table.add_row(rec.token_id, rec.name, rec.role + (f" {rec.run_id}" if rec.run_id else ""),
                      _when(rec.created_at), expires, _when(rec.last_used_at, "never"), _when(rec.revoked_at))
    console.print(table)


@token.command("revoke")
@click.argument("name_or_id")
@store_option
@friendly_errors
def token_revoke(name_or_id: str, store_url: str | None) -> None:
    """Revoke the token of id NAME_OR_ID, or the tokens named NAME_OR_ID. Servers refuse it within 5 seconds."""
    from runlab.core.errors import NotFoundError

    count = _tokens(store_url).revoke(name_or_id)
    if count == 0:
        raise NotFoundError(f"no active token has the name or id {name_or_id!r}: runlab token list shows them "
                            "(--all with the revoked ones)")
    click.echo(f"revoked {count} token{'s' if count != 1 else ''} ({name_or_id}); servers refuse "
               f"{'them' if count != 1 else 'it'} within 5 seconds")

