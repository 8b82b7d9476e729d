"""Dataset definitions (frozen, JSON), datastore paths, glob matching and resolution of local files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runlab.core.errors import DatasetPathError, UserError
from runlab.store.datasets import (
    DatasetDefinition,
    DataSource,
    KeepColumns,
    RandomSplit,
    ReaderOptions,
    Skip,
    Take,
    check_datastore_path,
    files_hash,
    glob_match,
    resolve_files,
)


@pytest.mark.parametrize("pattern, path, matches", [
    ("images/**/*.png", "images/a.png", True),
    ("images/**/*.png", "images/x/y/a.png", True),
    ("images/**/*.png", "images/a.jpg", False),
    ("images/*.png", "images/x/a.png", False),  # '*' stays within one part
    ("images/*.png", "images/.hidden.png", True),
    ("**", "a/b/c", True),
    ("a/**/b/**/c", "a/b/c", True),
    ("a/**/b/**/c", "a/x/c", False),
    ("data_batch_[1-3]", "data_batch_2", True),
    ("data_batch_[1-3]", "data_batch_4", False),
    ("?.csv", "ab.csv", False),
    ("A.CSV", "a.csv", False),  # case matters, as on the datastore
])
def test_glob_matching(pattern: str, path: str, matches: bool) -> None:
    assert glob_match(pattern.split("/"), path.split("/")) is matches


def test_deep_globs_stay_fast() -> None:
    assert not glob_match(["**"] * 12 + ["z"], ["a"] * 40)


@pytest.mark.parametrize("path, stored", [("a/b", "a/b"), ("/a/b/", "a/b"), ("./a//b", "a/b"), ("", ""), ("/", "")])
def test_datastore_paths_are_relative_to_its_root(path: str, stored: str) -> None:
    assert check_datastore_path(path) == stored


@pytest.mark.parametrize("path", ["..", "../a", "a/../../b", "a/..", "x\x00y", 5])
def test_datastore_paths_that_could_leave_it_are_refused(path: object) -> None:
    with pytest.raises(DatasetPathError):
        check_datastore_path(path)


def test_a_definition_is_frozen_json_with_a_stable_hash() -> None:
    definition = DatasetDefinition(
        "tabular", (DataSource.on_datastore("ws_store", "/weather/**/*.csv"), DataSource.local("/tmp/x.csv")),
        ReaderOptions("delimited", separator=";", column_types=(("temp", "double"),)),
        (Skip(2), Take(10), KeepColumns(("temp",)), RandomSplit(0.5, 3, 1)), timestamp_column="day")
    data = json.loads(definition.to_json())
    assert data["sources"] == [{"datastore": "ws_store", "path": "weather/**/*.csv"},
                               {"datastore": None, "path": "/tmp/x.csv"}]
    assert data["reader"]["separator"] == ";" and data["reader"]["column_types"] == {"temp": "double"}
    assert data["steps"][-1] == {"op": "random_split", "percentage": 0.5, "seed": 3, "part": 1}
    assert DatasetDefinition.from_dict(data) == definition
    assert DatasetDefinition.from_json(definition.to_json()).content_hash == definition.content_hash
    assert definition.with_step(Take(1)).content_hash != definition.content_hash
    with pytest.raises(AttributeError):
        definition.kind = "file"  # type: ignore[misc]


@pytest.mark.parametrize("data, message", [
    ({"kind": "tabular", "sources": []}, "a tabular dataset has reader options"),
    ({"kind": "folder", "sources": []}, "'file' or 'tabular'"),
    ({"kind": "file"}, "malformed dataset definition"),
    ({"kind": "file", "sources": [], "steps": [{"op": "shuffle"}]}, "unknown dataset step 'shuffle'"),
    ({"kind": "file", "sources": [], "steps": [{"op": "take", "count": -2}]}, "count of 0 or more"),
    ({"kind": "file", "sources": [], "format": 9}, "newer than this runlab"),
    ({"kind": "file", "sources": [{"datastore": "d", "path": "../x"}]}, "leads out of its datastore"),
])
def test_malformed_definitions_are_refused(data: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        DatasetDefinition.from_dict(data)


def test_local_files_resolve_in_order_with_names_and_checksums(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "b.csv").write_text("b")
    (tmp_path / "d" / "sub" / "a.csv").write_text("aa")
    (tmp_path / "d" / "c.txt").write_text("c")
    (tmp_path / "d" / "link.csv").symlink_to(tmp_path / "missing")  # a broken link is no file
    definition = DatasetDefinition("file", (DataSource.local(tmp_path / "d" / "**" / "*.csv"),
                                            DataSource.local(tmp_path / "d" / "b.csv")))
    files = resolve_files(definition, None, checksums=True)
    assert [(f.name, f.size) for f in files] == [("b.csv", 1), ("sub/a.csv", 2)]  # b.csv named twice: kept once
    assert files[0].sha256 == "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"
    assert files_hash(files) == files_hash(resolve_files(definition, None, checksums=True))
    with pytest.raises(DatasetPathError, match="two files would have the same name 'x.csv'"):
        (tmp_path / "one").mkdir()
        (tmp_path / "one" / "x.csv").write_text("1")
        (tmp_path / "two").mkdir()
        (tmp_path / "two" / "x.csv").write_text("2")
        resolve_files(DatasetDefinition("file", (DataSource.local(tmp_path / "one"),
                                                 DataSource.on_datastore("d", "x"))), lambda name: _Empty(tmp_path))


class _Empty:
    """A datastore whose every listing holds one file named x.csv."""

    description = "a test store"
    max_workers = 1

    def __init__(self, root: Path) -> None:
        self.root = root

    def stat(self, name: str) -> object:
        from runlab.core.errors import ObjectNotFoundError

        raise ObjectNotFoundError(name)

    def list(self, prefix: str = "") -> list[object]:
        from runlab.store.objects import ObjectInfo

        return [ObjectInfo(name="x/x.csv", size=1)]
