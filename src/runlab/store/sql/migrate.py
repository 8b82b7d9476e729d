"""Create or upgrade the schema with Alembic, only when it is not already current.

The check is one query, so that opening a workspace stays cheap; Alembic is imported only when a
migration has to run. Concurrent openers of a new SQLite workspace serialize on a file lock.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from runlab.store.sql.schema import SCHEMA_REVISION

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def ensure_schema(engine: Engine) -> None:
    if current_revision(engine) == SCHEMA_REVISION:
        return
    database = engine.url.database
    if engine.url.get_backend_name() == "sqlite" and database and database != ":memory:":
        from filelock import FileLock

        with FileLock(str(database) + ".migrate.lock"):
            if current_revision(engine) != SCHEMA_REVISION:
                upgrade(engine)
    else:
        upgrade(engine)


def alembic_config() -> "object":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn  # type: ignore[attr-defined]
        command.upgrade(config, revision)  # type: ignore[arg-type]
