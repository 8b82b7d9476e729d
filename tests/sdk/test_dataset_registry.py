"""Registered dataset versions: what they record, immutability, versions, lookups; on every place."""

from __future__ import annotations

import hashlib
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

import runlab
from dataset_places import Place
from runlab import Dataset
from runlab.core.errors import (
    DatasetChangedError,
    DatasetConflictError,
    DatasetNotFoundError,
    DatasetPathError,
    InvalidNameError,
    UserError,
)
from runlab.sdk.dataset import FileDataset, TabularDataset


@pytest.fixture
def ws(place: Place, tmp_path: Path) -> runlab.Workspace:
    """The place's workspace (a new one for files on this machine)."""
    return place.workspace or runlab.Workspace.create("reg-ws", path=tmp_path / "reg-ws")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_version_records_its_definition_files_and_checksums(place: Place, ws: runlab.Workspace) -> None:
    local = place.write("people/a.csv", "id,name\n1,ann\n2,bob\n")
    place.write("people/b.csv", "id,name\n3,cy\n")
    before = time.time()
    dataset = Dataset.Tabular.from_delimited_files(place.path("people/*.csv")).keep_columns("name")
    assert (dataset.name, dataset.version, dataset.id, dataset.is_registered) == (None, None, None, False)
    registered = dataset.register(ws, "people", description="who", tags={"team": "a", "n": 2})  # type: ignore[dict-item]
    assert isinstance(registered, TabularDataset)
    assert (registered.name, registered.version, registered.description) == ("people", 1, "who")
    assert registered.tags == {"team": "a", "n": "2"} and uuid.UUID(registered.id or "")
    assert registered.definition == dataset.definition
    files = registered.get_files()
    assert [f.name for f in files] == ["a.csv", "b.csv"] and files[0].sha256 == sha256(local)
    assert files[0].size == local.stat().st_size
    changed = registered.data_changed_time
    assert changed is not None and changed.tzinfo is not None and changed.timestamp() <= time.time() + 1
    assert changed.timestamp() >= before - 120  # the files' time (S3 keeps seconds)
    again = Dataset.get_by_name(ws, "people")
    assert (again.id, again.version, type(again)) == (registered.id, 1, TabularDataset)
    assert Dataset.get_by_id(ws, registered.id or "").name == "people"
    assert list(ws.datasets) == ["people"] and ws.datasets["people"].id == registered.id
    frame = again.to_pandas_dataframe()  # type: ignore[attr-defined]
    pd.testing.assert_frame_equal(frame, pd.DataFrame({"name": ["ann", "bob", "cy"]}).astype(frame.dtypes))


def test_the_same_registration_returns_the_version(place: Place, ws: runlab.Workspace) -> None:
    place.write("f/x.bin", b"x" * 10)
    first = Dataset.File.from_files(place.path("f")).register(ws, "files")
    second = Dataset.File.from_files(place.path("f")).register(ws, "files", tags={"ignored": "yes"})
    assert (second.id, second.version, second.tags) == (first.id, 1, {})
    assert Dataset.File.from_files(place.path("f")).register(ws, "files", create_new_version=True).version == 1


def test_changed_data_needs_a_new_version_and_the_old_one_stays(place: Place, ws: runlab.Workspace) -> None:
    """After the file changes, version 1 still records the old bytes: get_by_name(ws, name, version=1)
    returns it with its old checksums, and reading it raises DatasetChangedError instead of reading
    other bytes under its name; version 2 records and reads the new file."""
    old = place.write("t/data.csv", "a\n1\n2\n")
    old_sha = sha256(old)
    v1 = Dataset.Tabular.from_delimited_files(place.path("t/data.csv")).register(ws, "table")
    new = place.write("t/data.csv", "a\n1\n2\n3\n")
    definition = Dataset.Tabular.from_delimited_files(place.path("t/data.csv"))
    with pytest.raises(DatasetConflictError, match=r"'table' version 1 is registered, and this registration would "
                                                   r"change its files: 1 changed \(.*data\.csv\).*"
                                                   r"create_new_version=True to register this as version 2"):
        definition.register(ws, "table")
    v2 = definition.register(ws, "table", create_new_version=True)
    assert (v2.version, v2.get_files()[0].sha256) == (2, sha256(new))
    assert v2.id != v1.id
    recorded = Dataset.get_by_name(ws, "table", version=1)
    assert (recorded.version, recorded.id, recorded.get_files()[0].sha256) == (1, v1.id, old_sha)
    assert Dataset.get_by_name(ws, "table", version="1").id == v1.id
    with pytest.raises(DatasetChangedError, match=r"of dataset 'table' version 1 changed since it was registered "
                                                  r"\(6 bytes recorded, it has 8 bytes now\)"):
        recorded.to_pandas_dataframe()  # type: ignore[attr-defined]
    assert Dataset.get_by_name(ws, "table").version == 2 == ws.datasets["table"].version
    assert Dataset.get_by_name(ws, "table").to_pandas_dataframe()["a"].tolist() == [1, 2, 3]  # type: ignore[attr-defined]
    # registering version 1's definition again records the data as it is now: that is version 2
    assert recorded.register(ws, "table").version == 2  # the same as the latest


def test_a_same_size_change_is_caught_when_downloaded(place: Place, ws: runlab.Workspace, tmp_path: Path) -> None:
    place.write("imgs/a.png", b"aaaa")
    v1 = Dataset.File.from_files(place.path("imgs")).register(ws, "imgs")
    place.write("imgs/a.png", b"bbbb")
    registered = Dataset.get_by_name(ws, "imgs", version=1)
    assert isinstance(registered, FileDataset) and registered.to_path() == ["/a.png"]
    with pytest.raises(DatasetChangedError, match=r"a\.png.* changed since its dataset version was registered "
                                                  r"\(its sha256 differs\)"):
        registered.download(tmp_path / "out")
    assert not (tmp_path / "out" / "a.png").exists()  # nothing left under the file's name
    with pytest.raises(DatasetConflictError, match="1 changed"):
        Dataset.File.from_files(place.path("imgs")).register(ws, "imgs")
    assert v1.version == 1
    place.delete("imgs/a.png")
    with pytest.raises(DatasetChangedError, match=r"a\.png.* is gone since its dataset version was registered"):
        registered.download(tmp_path / "gone")


def test_a_version_keeps_its_file_list(place: Place, ws: runlab.Workspace, tmp_path: Path) -> None:
    for n in range(3):
        place.write(f"shots/{n}.png", f"png {n}")
    v1 = Dataset.File.from_files(place.path("shots/*.png")).register(ws, "shots")
    place.write("shots/9.png", "png 9")
    registered = Dataset.get_by_name(ws, "shots", version=1)
    assert registered.to_path() == ["/0.png", "/1.png", "/2.png"]  # type: ignore[attr-defined]
    assert registered.skip(1).to_path() == ["/1.png", "/2.png"]  # type: ignore[attr-defined]
    assert len(registered.download(tmp_path / "v1")) == 3  # type: ignore[attr-defined]
    assert Dataset.File.from_files(place.path("shots/*.png")).to_path()[-1] == "/9.png"
    with pytest.raises(DatasetConflictError, match=r"1 added \(.*9\.png\)"):
        Dataset.File.from_files(place.path("shots/*.png")).register(ws, "shots")
    with pytest.raises(DatasetConflictError, match="its definition"):
        v1.take(1).register(ws, "shots")
    assert v1.take(1).register(ws, "first-shot").get_files()[0].name == "0.png"


def test_checksums_of_uploaded_files_are_not_read_again(place: Place, ws: runlab.Workspace, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    if place.datastore is None:
        pytest.skip("files on this machine have no datastore file index")
    source = tmp_path / "upload"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "x.csv").write_text("a\n1\n")
    place.datastore.upload(str(source), target_path="up", show_progress=False)
    import runlab.store.datasets as resolution

    def no_reading(*_args: object) -> str:
        raise AssertionError("the file was read again")

    monkeypatch.setattr(resolution, "sha256_of", no_reading)
    registered = Dataset.Tabular.from_delimited_files((place.datastore, "up/**/*.csv")).register(ws, "up")
    assert registered.get_files()[0].sha256 == sha256(source / "sub" / "x.csv")


def test_names_ids_and_versions_that_do_not_exist(place: Place, ws: runlab.Workspace) -> None:
    place.write("n/x.txt", "x")
    dataset = Dataset.File.from_files(place.path("n"))
    for bad in ("a/b", "..", "../up", "", ".hidden", "x" * 256, "a b"):
        with pytest.raises(InvalidNameError, match="invalid dataset name"):
            dataset.register(ws, bad)
    dataset.register(ws, "known")
    with pytest.raises(DatasetNotFoundError, match=r"no dataset named 'nope' is registered.*registered: known"):
        Dataset.get_by_name(ws, "nope")
    with pytest.raises(DatasetNotFoundError, match="'known' has no version 4: its versions are 1"):
        Dataset.get_by_name(ws, "known", version=4)
    with pytest.raises(UserError, match="a number or 'latest'"):
        Dataset.get_by_name(ws, "known", version="newest")
    with pytest.raises(DatasetNotFoundError, match="no registered dataset has id"):
        Dataset.get_by_id(ws, str(uuid.uuid4()))
    with pytest.raises(InvalidNameError):
        Dataset.get_by_name(ws, "../known")


def test_a_dataset_with_no_file_is_not_registered(place: Place, ws: runlab.Workspace) -> None:
    dataset = Dataset.File.from_files(place.path("missing/**/*.png"), validate=False)
    with pytest.raises(DatasetPathError, match="no file matches"):
        dataset.register(ws, "nothing")
    place.write("one/x.png", "x")
    with pytest.raises(DatasetPathError, match="holds no file after its steps"):
        Dataset.File.from_files(place.path("one")).skip(5).register(ws, "nothing")
    assert ws.datasets == {}


def test_a_dataset_belongs_to_its_datastores_workspace(place: Place, tmp_path: Path) -> None:
    if place.datastore is None:
        pytest.skip("local files belong to no workspace")
    place.write("w/x.txt", "x")
    other = runlab.Workspace.create("other-ws", path=tmp_path / "other")
    with pytest.raises(UserError, match="register it there"):
        Dataset.File.from_files(place.path("w")).register(other, "x")
