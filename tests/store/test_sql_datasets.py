"""The dataset registry of the SQL store (SQLite and PostgreSQL): immutable versions and their files."""

from __future__ import annotations

import pytest

from runlab.core.assets import DatasetFile
from runlab.core.errors import DatasetConflictError, DatasetNotFoundError, InvalidNameError
from runlab.store.datasets import files_hash
from runlab.store.sql.store import SqlStore

DEFINITION = {"format": 1, "kind": "file", "sources": [{"datastore": "workspaceblobstore", "path": "images"}],
              "reader": None, "steps": [], "timestamp_column": None, "partition_timestamp_column": None}
BIG = 5 * 1024**3  # over PostgreSQL's INTEGER


def _files(*sha: str) -> list[DatasetFile]:
    return [DatasetFile("workspaceblobstore", f"images/{i}.png", BIG + i, f"{i}.png", s, 1.5)
            for i, s in enumerate(sha)]


def _register(store: SqlStore, name: str, files: list[DatasetFile], definition: dict = DEFINITION,
              **kwargs: object) -> object:
    return store.register_dataset(name, kind="file", definition=definition, files=files,
                                  files_hash=files_hash(files), **kwargs)  # type: ignore[arg-type]


def test_a_version_records_its_definition_and_files(store: SqlStore) -> None:
    files = _files("a" * 64, "b" * 64)
    record = store.register_dataset("images", kind="file", definition=DEFINITION, files=files,
                                    files_hash=files_hash(files), description="pngs", tags={"k": "v"},
                                    data_changed_at=12.5)
    assert (record.name, record.version, record.kind, record.file_count) == ("images", 1, "file", 2)
    assert record.total_size == 2 * BIG + 1 and record.definition == DEFINITION
    assert (record.description, dict(record.tags), record.data_changed_at) == ("pngs", {"k": "v"}, 12.5)
    assert store.get_dataset_files(record.dataset_id) == files
    assert store.get_dataset("images") == record == store.get_dataset_by_id(record.dataset_id)


def test_the_same_registration_returns_the_version_and_a_change_needs_a_new_version(store: SqlStore) -> None:
    first = _register(store, "images", _files("a" * 64))
    assert _register(store, "images", _files("a" * 64)) == first
    with pytest.raises(DatasetConflictError, match=r"version 1 is registered.*1 changed \(images/0.png\).*"
                                                   r"create_new_version=True to register this as version 2"):
        _register(store, "images", _files("c" * 64))
    with pytest.raises(DatasetConflictError, match="its definition"):
        _register(store, "images", _files("a" * 64), definition={**DEFINITION, "steps": [{"op": "take", "count": 1}]})
    second = _register(store, "images", _files("c" * 64, "d" * 64), create_new_version=True)
    assert second.version == 2 and second.dataset_id != first.dataset_id  # type: ignore[attr-defined]
    assert _register(store, "images", _files("c" * 64, "d" * 64), create_new_version=True) == second
    # version 1 is as it was
    assert store.get_dataset_files(first.dataset_id) == _files("a" * 64)  # type: ignore[attr-defined]
    assert [r.version for r in store.list_datasets()] == [2]
    assert [r.version for r in store.list_datasets(all_versions=True)] == [1, 2]
    assert store.get_dataset("images", 1) == first


def test_missing_datasets_say_what_there_is(store: SqlStore) -> None:
    _register(store, "images", _files("a" * 64))
    with pytest.raises(DatasetNotFoundError, match="no dataset named 'nope'.*registered: images"):
        store.get_dataset("nope")
    with pytest.raises(DatasetNotFoundError, match="'images' has no version 7: its versions are 1"):
        store.get_dataset("images", 7)
    with pytest.raises(DatasetNotFoundError, match="no registered dataset has id"):
        store.get_dataset_by_id("00000000-0000-0000-0000-000000000000")
    with pytest.raises(InvalidNameError):
        _register(store, "../x", _files("a" * 64))


def test_many_files_round_trip_in_order(store: SqlStore) -> None:
    files = [DatasetFile(None, f"/data/{i:05d}", i, f"{i:05d}", f"{i:064x}") for i in range(25_000)]
    record = _register(store, "many", files)
    assert store.get_dataset_files(record.dataset_id) == files  # type: ignore[attr-defined]
