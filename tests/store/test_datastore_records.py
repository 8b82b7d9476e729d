"""Registered datastores and their file index in the SQL store (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from runlab.core.assets import DatastoreFileRecord
from runlab.core.errors import DatastoreNotFoundError, UserError
from runlab.store.sql.store import SqlStore


def row(path: str, sha: str = "a" * 64, size: int = 1, etag: str | None = "e1") -> DatastoreFileRecord:
    return DatastoreFileRecord(path=path, size=size, sha256=sha, etag=etag, uploaded_at=1.0)


def test_register_get_and_list(store: SqlStore) -> None:
    s3 = {"bucket": "b", "prefix": None, "endpoint_url": "http://127.0.0.1:9000", "region": None}
    first = store.register_datastore("mine", "s3", s3)
    assert (first.name, first.kind, dict(first.config)) == ("mine", "s3", s3)
    assert store.register_datastore("mine", "s3", dict(s3)) == first  # the same again: the same record
    store.register_datastore("a_local", "local", {"path": "/data"})
    assert [d.name for d in store.list_datastores()] == ["a_local", "mine"]
    assert store.get_datastore("a_local").config == {"path": "/data"}


def test_an_unknown_datastore_names_those_there_are(store: SqlStore) -> None:
    store.register_datastore("alpha", "local", {"path": "/a"})
    store.register_datastore("beta", "local", {"path": "/b"})
    with pytest.raises(DatastoreNotFoundError) as caught:
        store.get_datastore("gamma")
    assert "'gamma'" in caught.value.message and "registered: alpha, beta" in caught.value.message
    assert caught.value.registered == ["alpha", "beta"]


def test_a_taken_name_is_not_changed_without_overwrite(store: SqlStore) -> None:
    store.register_datastore("mine", "local", {"path": "/a"})
    store.record_datastore_files("mine", [row("x.txt")])
    with pytest.raises(UserError, match="overwrite=True"):
        store.register_datastore("mine", "local", {"path": "/b"})
    assert store.get_datastore("mine").config == {"path": "/a"}
    assert list(store.get_datastore_files("mine")) == ["x.txt"]
    replaced = store.register_datastore("mine", "local", {"path": "/b"}, overwrite=True)
    assert replaced.config == {"path": "/b"}
    assert store.get_datastore_files("mine") == {}  # files recorded for another place are forgotten


def test_the_file_index_is_upserted_and_read_by_prefix(store: SqlStore) -> None:
    store.register_datastore("ds", "local", {"path": "/a"})
    store.register_datastore("other", "local", {"path": "/b"})
    paths = [f"data/{i:04d}.bin" for i in range(1200)] + ["data_other/x", "Data/x", "d%ta/x", "d_ta/x"]
    store.record_datastore_files("ds", [row(p) for p in paths])
    store.record_datastore_files("other", [row("data/0001.bin", sha="c" * 64)])
    store.record_datastore_files("ds", [row("data/0001.bin", sha="b" * 64, size=7, etag="e2")])

    under = store.get_datastore_files("ds", "data/")
    assert len(under) == 1200 and under["data/0001.bin"] == row("data/0001.bin", "b" * 64, 7, "e2")
    assert set(store.get_datastore_files("ds", "data")) == set(paths) - {"Data/x", "d%ta/x", "d_ta/x"}
    assert list(store.get_datastore_files("ds", "d%")) == ["d%ta/x"]  # LIKE characters are literal
    assert list(store.get_datastore_files("ds", "d_")) == ["d_ta/x"]
    assert store.get_datastore_files("other")["data/0001.bin"].sha256 == "c" * 64

    store.forget_datastore_files("ds", [f"data/{i:04d}.bin" for i in range(1000)])
    assert len(store.get_datastore_files("ds", "data/")) == 200
