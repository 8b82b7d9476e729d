"""A real PostgreSQL server for the tests that need one: initdb in a temp folder, loopback only,
stopped by its own pid at the end of the session. Skipped (with the reason) where PostgreSQL is not
installed. A pytest plugin (tests/conftest.py), so that every test folder can use ``postgres_url``."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from typing import Iterator

import pytest
import sqlalchemy as sa


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    bin_dir = os.path.dirname(bins[-1])
    data = tempfile.mkdtemp(prefix="runlab-pg-", dir="/tmp")
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
        user: str | None = "postgres"
    else:
        user = None
    subprocess.run([f"{bin_dir}/initdb", "-D", data, "-A", "trust", "-U", "runlab", "--no-sync"],
                   user=user, check=True, capture_output=True)
    port = _free_port()
    server = subprocess.Popen(
        [f"{bin_dir}/postgres", "-D", data, "-h", "127.0.0.1", "-p", str(port), "-k", data,
         "-c", "fsync=off", "-c", "full_page_writes=off"],
        user=user, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            ready = subprocess.run([f"{bin_dir}/pg_isready", "-h", "127.0.0.1", "-p", str(port)], capture_output=True)
            if ready.returncode == 0:
                break
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start: {server.stderr.read().decode() if server.stderr else ''}")
            time.sleep(0.2)
        yield f"postgresql+psycopg://runlab@127.0.0.1:{port}/postgres"
    finally:
        server.send_signal(signal.SIGINT)  # fast shutdown
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stderr:
            server.stderr.close()
        shutil.rmtree(data, ignore_errors=True)


def fresh_database(base: str) -> str:
    """A new, empty database on the server at ``base`` (its URL); dropped by :func:`drop_database`."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return base.rsplit("/", 1)[0] + "/" + name


def drop_database(base: str, url: str) -> None:
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")
    admin.dispose()
