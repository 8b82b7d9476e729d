"""Tabular and file datasets over real files, read with pyarrow: on this machine, the default datastore,
a local-folder datastore and an S3 datastore (moto's server), each test on each."""

from __future__ import annotations

import datetime
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
import pytest

import runlab
from dataset_places import Place
from runlab import Dataset
from runlab.core.errors import DatasetPathError, DatasetReadError, UserError
from runlab.sdk.dataset import DataType, FileDataset, TabularDataset
from runlab.store.datasets import DatasetDefinition

CSV = "id,name,score,when\n1,ann,1.5,2024-01-02\n2,bob,2.25,2024-02-03\n3,cy,,2024-03-04\n007,dee,4.0,2024-04-05\n"


def frame_of(dataset: TabularDataset) -> pd.DataFrame:
    return dataset.to_pandas_dataframe()


# -- tabular: what pyarrow and pandas read ------------------------------------------------------------


def test_a_csv_reads_as_pyarrow_and_pandas_read_it(place: Place) -> None:
    local = place.write("tables/people.csv", CSV)
    frame = frame_of(Dataset.Tabular.from_delimited_files(place.path("tables/people.csv")))
    pd.testing.assert_frame_equal(frame, pacsv.read_csv(local).to_pandas(date_as_object=False))
    pd.testing.assert_frame_equal(frame, pd.read_csv(local, parse_dates=["when"]), check_dtype=False)
    assert frame["id"].tolist() == [1, 2, 3, 7] and str(frame["id"].dtype) == "int64"
    assert str(frame["score"].dtype) == "float64" and frame["score"].isna().tolist() == [False, False, True, False]
    # pyarrow infers ISO dates as date32; the frame has them as datetime64, as Azure ML's has
    assert frame["when"].dtype.kind == "M" and frame["when"][0] == pd.Timestamp(datetime.date(2024, 1, 2))


def test_column_types_not_inferred_or_set(place: Place) -> None:
    place.write("people.csv", CSV)
    text = frame_of(Dataset.Tabular.from_delimited_files(place.path("people.csv"), infer_column_types=False))
    assert text["id"].tolist() == ["1", "2", "3", "007"]  # kept as written
    assert all(str(t) in ("str", "string", "object") for t in text.dtypes)
    typed = frame_of(Dataset.Tabular.from_delimited_files(
        place.path("people.csv"), infer_column_types=False,
        set_column_types={"id": DataType.to_long(), "score": "float64", "when": DataType.to_datetime("%Y-%m-%d")}))
    assert typed["id"].tolist() == [1, 2, 3, 7] and str(typed["id"].dtype) == "int64"
    assert str(typed["score"].dtype) == "float64" and typed["when"].dtype.kind == "M"
    assert str(typed["name"].dtype) in ("str", "string", "object")
    as_text = frame_of(Dataset.Tabular.from_delimited_files(place.path("people.csv"),
                                                            set_column_types={"id": DataType.to_string()}))
    assert as_text["id"].tolist() == ["1", "2", "3", "007"] and str(as_text["score"].dtype) == "float64"
    with pytest.raises(UserError, match="unknown column type 'integer-ish' for column 'id'"):
        Dataset.Tabular.from_delimited_files(place.path("people.csv"), set_column_types={"id": "integer-ish"})


def test_no_header_and_other_separators(place: Place) -> None:
    place.write("semi.csv", "1;a\n2;b\n")
    frame = frame_of(Dataset.Tabular.from_delimited_files(place.path("semi.csv"), separator=";", header=False))
    assert list(frame.columns) == ["Column1", "Column2"] and frame["Column1"].tolist() == [1, 2]
    local = place.write("tabs.tsv", "a\tb\n1\tx y\n")
    frame = frame_of(Dataset.Tabular.from_delimited_files(place.path("tabs.tsv"), separator="\t"))
    pd.testing.assert_frame_equal(frame, pd.read_csv(local, sep="\t"))
    with pytest.raises(UserError, match="separator must be one character"):
        Dataset.Tabular.from_delimited_files(place.path("tabs.tsv"), separator="::")


def test_several_files_and_globs_concatenate_in_order(place: Place) -> None:
    for month in ("01", "02", "03"):
        place.write(f"weather/2024/{month}.csv", f"month,temp\n{month},{int(month) * 1.5}\n")
    place.write("weather/notes.txt", "not a table")
    glob = frame_of(Dataset.Tabular.from_delimited_files(place.path("weather/**/*.csv")))
    assert glob["month"].tolist() == [1, 2, 3] and glob["temp"].tolist() == [1.5, 3.0, 4.5]
    listed = frame_of(Dataset.Tabular.from_delimited_files([place.path("weather/2024/03.csv"),
                                                            place.path("weather/2024/01.csv")]))
    assert listed["month"].tolist() == [3, 1]  # the order given
    expected = pd.concat([pd.read_csv(place.local(f"weather/2024/{m}.csv")) for m in ("01", "02", "03")],
                         ignore_index=True)
    pd.testing.assert_frame_equal(glob, expected)


def test_parquet_and_json_lines(place: Place) -> None:
    table = pa.table({"a": [1, 2, 3], "b": ["x", "y", None], "c": [0.5, None, 2.5]})
    local = place.root / "staging.parquet"
    pq.write_table(table, local)
    place.write("t/part-0.parquet", local.read_bytes())
    place.write("t/part-1.parquet", local.read_bytes())
    frame = frame_of(Dataset.Tabular.from_parquet_files(place.path("t/*.parquet")))
    pd.testing.assert_frame_equal(frame, pa.concat_tables([table, table]).to_pandas())
    place.write("j/rows.jsonl", '{"a": 1, "b": "x"}\n{"a": 2, "b": null, "c": [1, 2]}\n')
    frame = frame_of(Dataset.Tabular.from_json_lines_files(place.path("j/rows.jsonl")))
    pd.testing.assert_frame_equal(frame, pajson.read_json(place.local("j/rows.jsonl")).to_pandas())


# -- tabular: steps -----------------------------------------------------------------------------------


@pytest.fixture
def numbers(place: Place) -> TabularDataset:
    rows = "\n".join(f"{i},{i * i},n{i}" for i in range(100))
    place.write("numbers.csv", "i,square,label\n" + rows + "\n")
    return Dataset.Tabular.from_delimited_files(place.path("numbers.csv"))


def test_take_skip_head_and_columns(numbers: TabularDataset) -> None:
    assert numbers.take(3).to_pandas_dataframe()["i"].tolist() == [0, 1, 2]
    assert numbers.skip(97).to_pandas_dataframe()["i"].tolist() == [97, 98, 99]
    assert numbers.skip(10).take(2).to_pandas_dataframe()["i"].tolist() == [10, 11]
    assert numbers.take(5).skip(3).to_pandas_dataframe()["i"].tolist() == [3, 4]
    head = numbers.head(4)
    assert isinstance(head, pd.DataFrame) and head["square"].tolist() == [0, 1, 4, 9]
    assert list(numbers.keep_columns(["label", "i"]).head(1).columns) == ["i", "label"]  # the dataset's order
    assert list(numbers.drop_columns("square").head(1).columns) == ["i", "label"]
    with pytest.raises(UserError, match="no column 'nope'; its columns are 'i', 'square', 'label'"):
        numbers.keep_columns(["nope"]).to_pandas_dataframe()
    with pytest.raises(UserError, match="no column 'nope'"):
        numbers.keep_columns(["nope"], validate=True)
    with pytest.raises(UserError, match="count of 0 or more"):
        numbers.take(-1)


def test_steps_are_lazy_and_recorded_in_the_definition(numbers: TabularDataset) -> None:
    derived = numbers.skip(1).take(2).keep_columns(["i"]).with_timestamp_columns(timestamp="i")
    assert isinstance(derived, TabularDataset) and derived is not numbers
    steps = derived.definition.to_dict()["steps"]
    assert steps == [{"op": "skip", "count": 1}, {"op": "take", "count": 2},
                     {"op": "keep_columns", "columns": ["i"]}]
    assert derived.timestamp_columns == ("i", None) and numbers.definition.steps == ()
    text = json.dumps(derived.definition.to_dict())  # JSON, and back to the same definition
    assert DatasetDefinition.from_dict(json.loads(text)) == derived.definition
    with pytest.raises(UserError, match="no column 'when'"):
        numbers.with_timestamp_columns(timestamp="when", validate=True)


def test_random_split_is_seeded_disjoint_and_complete(numbers: TabularDataset) -> None:
    train, test = numbers.random_split(0.8, seed=7)
    a, b = train.to_pandas_dataframe()["i"].tolist(), test.to_pandas_dataframe()["i"].tolist()
    assert len(a) == 80 and len(b) == 20 and sorted(a + b) == list(range(100)) and not set(a) & set(b)
    assert a == sorted(a)  # each part keeps the rows' order
    again, _ = numbers.random_split(0.8, seed=7)
    assert again.to_pandas_dataframe()["i"].tolist() == a
    other, _ = numbers.random_split(0.8, seed=8)
    assert other.to_pandas_dataframe()["i"].tolist() != a
    unseeded_a, unseeded_b = numbers.random_split(0.5)  # a drawn seed, recorded in both halves
    assert sorted(unseeded_a.to_pandas_dataframe()["i"].tolist() + unseeded_b.to_pandas_dataframe()["i"].tolist()) \
        == list(range(100))
    with pytest.raises(UserError, match="between 0 and 1"):
        numbers.random_split(80, seed=1)


def test_to_csv_and_parquet_files_round_trip(numbers: TabularDataset, tmp_path: Path) -> None:
    subset = numbers.skip(5).keep_columns(["i", "label"])
    expected = subset.to_pandas_dataframe()
    as_csv = subset.to_csv_files()
    assert isinstance(as_csv, FileDataset) and as_csv.to_path() == ["/part-00000.csv"]
    (path,) = as_csv.download(tmp_path / "csv")
    pd.testing.assert_frame_equal(pd.read_csv(path), expected)
    back = Dataset.Tabular.from_delimited_files(path).to_pandas_dataframe()
    pd.testing.assert_frame_equal(back, expected)
    as_parquet = subset.to_parquet_files(target=tmp_path / "pq")
    assert [Path(p).name for p in as_parquet.download(tmp_path / "pq-copy")] == ["part-00000.parquet"]
    pd.testing.assert_frame_equal(pq.read_table(tmp_path / "pq" / "part-00000.parquet").to_pandas(), expected)
    semicolons = subset.take(2).to_csv_files(separator=";")
    (path,) = semicolons.download(tmp_path / "semi")
    assert Path(path).read_text().splitlines()[0] == '"i";"label"'


def test_head_reads_only_the_rows_it_needs(place: Place) -> None:
    """The first rows come from pyarrow's streaming reader: a bad row 3 MB further is not reached."""
    good = "".join(f"{i},{i}\n" for i in range(300_000))
    place.write("big.csv", "a,b\n" + good + "1,2,3\n")
    dataset = Dataset.Tabular.from_delimited_files(place.path("big.csv"))
    assert dataset.head(3)["a"].tolist() == [0, 1, 2]
    with pytest.raises(DatasetReadError, match=r"Row #300002: Expected 2 columns, got 3"):
        dataset.to_pandas_dataframe()


# -- tabular: bad input -------------------------------------------------------------------------------


def test_a_malformed_row_names_the_file_and_row(place: Place) -> None:
    place.write("bad.csv", "a,b,c\n1,2,3\n4,5,6,7\n")
    with pytest.raises(DatasetReadError, match=r"cannot read .*bad\.csv.* as delimited text \(separator ','\): "
                                               r"CSV parse error: Row #3: Expected 3 columns, got 4: 4,5,6,7") as err:
        Dataset.Tabular.from_delimited_files(place.path("bad.csv")).to_pandas_dataframe()
    assert "bad.csv" in str(err.value.path)
    place.write("bad.parquet", b"PAR1 not really")
    with pytest.raises(DatasetReadError, match=r"cannot read .*bad\.parquet.* as Parquet"):
        Dataset.Tabular.from_parquet_files(place.path("bad.parquet")).to_pandas_dataframe()
    place.write("bad.jsonl", '{"a": 1}\n{"a": \n')
    with pytest.raises(DatasetReadError, match=r"cannot read .*bad\.jsonl.* as JSON lines: JSON parse error"):
        Dataset.Tabular.from_json_lines_files(place.path("bad.jsonl")).to_pandas_dataframe()


def test_empty_files(place: Place) -> None:
    place.write("empty/a.csv", "")
    with pytest.raises(DatasetReadError, match=r"holds no data: every file is empty \(.*a\.csv"):
        Dataset.Tabular.from_delimited_files(place.path("empty/a.csv")).to_pandas_dataframe()
    place.write("empty/b.csv", "x\n1\n")
    frame = Dataset.Tabular.from_delimited_files(place.path("empty/*.csv")).to_pandas_dataframe()
    assert frame["x"].tolist() == [1]  # an empty file holds no rows
    place.write("empty/header-only.csv", "x,y\n")
    assert Dataset.Tabular.from_delimited_files(place.path("empty/header-only.csv")).to_pandas_dataframe().shape == (0, 2)


def test_a_path_that_matches_nothing_says_what_was_searched(place: Place) -> None:
    place.write("images/a.png", b"png")
    with pytest.raises(DatasetPathError, match=r"no file matches this dataset path: .*images/\*\*/\*\.jpg.*"
                                               r"searched the files under .*images"):
        Dataset.File.from_files(place.path("images/**/*.jpg"))
    with pytest.raises(DatasetPathError, match=r"no file matches these dataset paths: .*nope.*nada"):
        Dataset.Tabular.from_delimited_files([place.path("nope.csv"), place.path("images/a.png"),
                                              place.path("nada/")])
    lazy = Dataset.File.from_files(place.path("images/**/*.jpg"), validate=False)
    assert lazy.to_path() == []


# -- file datasets ------------------------------------------------------------------------------------


@pytest.fixture
def images(place: Place) -> Place:
    for rel in ("images/cats/1.png", "images/cats/2.png", "images/dogs/3.png", "images/dogs/4.jpg",
                "images/top.png", "other/5.png"):
        place.write(rel, f"bytes of {rel}")
    return place


def test_folders_globs_and_lists(images: Place) -> None:
    folder = Dataset.File.from_files(images.path("images"))
    assert folder.to_path() == ["/cats/1.png", "/cats/2.png", "/dogs/3.png", "/dogs/4.jpg", "/top.png"]
    assert Dataset.File.from_files(images.path("images/**/*.png")).to_path() == \
        ["/cats/1.png", "/cats/2.png", "/dogs/3.png", "/top.png"]
    assert Dataset.File.from_files(images.path("images/*.png")).to_path() == ["/top.png"]
    assert Dataset.File.from_files(images.path("images/*/[12].png")).to_path() == ["/cats/1.png", "/cats/2.png"]
    assert Dataset.File.from_files(images.path("images/cats/2.png")).to_path() == ["/2.png"]
    both = Dataset.File.from_files([images.path("images/dogs"), images.path("other/5.png")])
    assert both.to_path() == ["/images/dogs/3.png", "/images/dogs/4.jpg", "/other/5.png"]  # their common folder


def test_data_paths_and_upload_directory(images: Place, tmp_path: Path) -> None:
    if images.datastore is None:
        pytest.skip("DataPath and upload_directory name a datastore")
    assert Dataset.File.from_files(images.datastore.path("images/dogs")).to_path() == ["/3.png", "/4.jpg"]
    source = tmp_path / "to-upload"
    for rel in ("a/1.png", "a/2.txt", "b/c/3.png", "4.png"):
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_text(rel)
    everything = Dataset.File.upload_directory(source, (images.datastore, "uploaded/all"), show_progress=False)
    assert everything.to_path() == ["/4.png", "/a/1.png", "/a/2.txt", "/b/c/3.png"]
    pngs = Dataset.File.upload_directory(str(source), images.datastore.path("uploaded/png"), pattern="**/*.png",
                                         show_progress=False)
    assert pngs.to_path() == ["/4.png", "/a/1.png", "/b/c/3.png"]
    assert pngs.definition.sources[0].path == "uploaded/png/**/*.png"
    with pytest.raises(DatasetPathError, match=r"no file under .* matches '\*\.csv'"):
        Dataset.File.upload_directory(source, (images.datastore, "x"), pattern="*.csv", show_progress=False)
    with pytest.raises(DatasetPathError, match="leads out"):
        Dataset.File.upload_directory(source, (images.datastore, "../x"), show_progress=False)


def test_tables_written_to_a_datastore(numbers: TabularDataset, place: Place) -> None:
    if place.datastore is None:
        pytest.skip("a datastore target")
    written = numbers.take(3).to_parquet_files(target=(place.datastore, "converted/numbers"))
    assert written.definition.sources[0].path == "converted/numbers/part-00000.parquet"
    back = Dataset.Tabular.from_parquet_files((place.datastore, "converted/numbers/*.parquet"))
    pd.testing.assert_frame_equal(back.to_pandas_dataframe(), numbers.take(3).to_pandas_dataframe())


def test_download_and_overwrite(images: Place, tmp_path: Path) -> None:
    dataset = Dataset.File.from_files(images.path("images/**/*.png"))
    paths = dataset.download(tmp_path / "out")
    assert paths == [str(tmp_path / "out" / n) for n in ("cats/1.png", "cats/2.png", "dogs/3.png", "top.png")]
    assert Path(paths[0]).read_text() == "bytes of images/cats/1.png"
    with pytest.raises(UserError, match=r"already exist.*overwrite=True"):
        dataset.download(tmp_path / "out")
    Path(paths[0]).write_text("changed here")
    assert dataset.download(tmp_path / "out", overwrite=True) == paths
    assert Path(paths[0]).read_text() == "bytes of images/cats/1.png"
    default = dataset.take(1).download()
    assert len(default) == 1 and Path(default[0]).read_text() == "bytes of images/cats/1.png"
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.startswith(".")]  # no temporary files left


def test_mount_is_read_only_and_removed_on_exit(images: Place, tmp_path: Path) -> None:
    dataset = Dataset.File.from_files(images.path("images/cats"))
    with dataset.mount() as mount:
        root = Path(mount.mount_point)
        assert sorted(p.name for p in root.iterdir()) == ["1.png", "2.png"]
        assert (root / "1.png").read_text() == "bytes of images/cats/1.png"
        assert not (root / "1.png").stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert not root.exists()
    chosen = tmp_path / "mnt"
    context = dataset.mount(chosen)
    context.start()
    assert sorted(os.listdir(chosen)) == ["1.png", "2.png"]
    context.stop()
    assert not chosen.exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("mine")
    with pytest.raises(UserError, match="not an empty folder"):
        dataset.mount(tmp_path / "busy").start()
    assert (tmp_path / "busy" / "x").read_text() == "mine"


def test_take_skip_and_random_split_of_files(images: Place) -> None:
    dataset = Dataset.File.from_files(images.path("images"))
    assert dataset.take(2).to_path() == ["/cats/1.png", "/cats/2.png"]
    assert dataset.skip(3).to_path() == ["/dogs/4.jpg", "/top.png"]
    a, b = dataset.random_split(0.6, seed=3)
    assert len(a.to_path()) == 3 and len(b.to_path()) == 2
    assert sorted(a.to_path() + b.to_path()) == dataset.to_path()
    assert a.to_path() == dataset.random_split(0.6, seed=3)[0].to_path()
    with pytest.raises(UserError, match="file dataset has no columns"):
        DatasetDefinition.from_dict({**dataset.definition.to_dict(), "steps": [{"op": "keep_columns", "columns": ["a"]}]})


# -- hostile paths ------------------------------------------------------------------------------------


def test_paths_that_would_leave_the_datastore_are_refused(place: Place) -> None:
    if place.datastore is None:
        pytest.skip("a local path is the caller's own: '..' is resolved as on the command line")
    for bad in ("../secret.csv", "a/../../x", "../*.csv", "images/../../**/*.png"):
        with pytest.raises(DatasetPathError, match=r"leads out of its datastore \('\.\.'\)"):
            Dataset.File.from_files((place.datastore, bad))
    # a leading "/" is the datastore's root (as in Azure ML), never the machine's
    with pytest.raises(DatasetPathError, match=r"searched etc/passwd"):
        Dataset.File.from_files((place.datastore, "/etc/passwd"))
    place.write("root.txt", "r")
    assert Dataset.File.from_files((place.datastore, "/root.txt")).to_path() == ["/root.txt"]


def test_sources_that_are_not_paths() -> None:
    with pytest.raises(DatasetPathError, match="cannot make a dataset path of int"):
        Dataset.File.from_files(3)
    with pytest.raises(DatasetPathError, match="is a URL"):
        Dataset.File.from_files("https://example.com/data.csv")
    with pytest.raises(DatasetPathError, match="at least one path"):
        Dataset.File.from_files([])


def test_importing_the_dataset_module_reads_no_table_library() -> None:
    code = ("import sys, runlab; runlab.Dataset; import runlab.sdk.dataset; "
            "print(sorted(m for m in ('pyarrow', 'pandas', 'boto3') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert "Dataset" in runlab.__all__
