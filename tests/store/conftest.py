"""The store fixture: every store test on SQLite and on a real PostgreSQL (tests/pg_support.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from pg_support import drop_database, fresh_database
from runlab.store.sql.store import SqlStore


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    if request.param == "sqlite":
        s = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
        yield s
        s.close()
        return
    base = request.getfixturevalue("postgres_url")
    url = fresh_database(base)
    s = SqlStore(url)
    yield s
    s.close()
    drop_database(base, url)
