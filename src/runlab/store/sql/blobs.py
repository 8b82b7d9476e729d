"""Selects of series chunks (blobs), in PostgreSQL's binary result format where the driver has one.

psycopg receives results as text unless asked otherwise, and text is how PostgreSQL sends ``bytea``
as hex: twice the bytes, parsed back on the client. Reading a 1,000,000-point series' chunks (24 MB)
took 134 ms as text and 37 ms in binary format (``benchmarks/bench_server_scale.py`` reads such a
series through the server). SQLite, and other drivers, go through SQLAlchemy as usual.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def fetch_blob_rows(conn: Connection, statement: sa.Select[Any]) -> list[Any]:
    """The rows of ``statement`` (attribute and index access, as SQLAlchemy's rows), its ``bytea``
    columns received in binary on PostgreSQL with psycopg, in the connection's transaction."""
    raw = conn.connection.driver_connection
    if conn.dialect.name != "postgresql" or conn.dialect.driver != "psycopg" or raw is None:
        return list(conn.execute(statement).all())
    from psycopg.rows import namedtuple_row

    # render_postcompile: IN lists become their parameters (SQLAlchemy expands them at execution)
    compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    with raw.cursor(binary=True, row_factory=namedtuple_row) as cursor:
        cursor.execute(str(compiled), compiled.params)
        return list(cursor.fetchall())
