"""Tabular dataset files, read and written with pyarrow, and the row and column steps applied to them.

Every file is read by pyarrow's own reader (``pyarrow.csv.read_csv``, ``pyarrow.parquet.read_table``,
``pyarrow.json.read_json``), several files are concatenated as tables (no copy), and the frame is
made once by ``Table.to_pandas``: reading costs what pyarrow costs. Nothing here parses text.

When a dataset's first steps bound the rows it needs (``take``, ``skip`` then ``take``: ``head(5)``),
files are streamed batch by batch and reading stops once enough rows are in.

pyarrow and pandas are imported by the functions that use them, never when runlab loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from runlab.core.errors import DatasetReadError, UserError
from runlab.core.names import shown
from runlab.store.datasets import (
    DELIMITED,
    JSON_LINES,
    PARQUET,
    DropColumns,
    KeepColumns,
    RandomSplit,
    ReaderOptions,
    Skip,
    Step,
    Take,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

# Azure ML's names for the columns of a file without a header row.
HEADERLESS_COLUMN = "Column{}"


def column_type(alias: object, column: str = "") -> "pa.DataType":
    """The pyarrow type for a type name (``"int64"``, ``"float64"``, ``"string"``, ``"bool"``,
    ``"timestamp[s]"``, ``"date32"``...: :func:`pyarrow.type_for_alias`) or a pyarrow type."""
    import pyarrow as pa

    if isinstance(alias, pa.DataType):
        return alias
    name: Any = str(alias)  # any pyarrow alias; the stubs list them as literals
    try:
        found: pa.DataType = pa.type_for_alias(name)
        return found
    except (ValueError, KeyError) as exc:
        where = f" for column {column!r}" if column else ""
        raise UserError(
            f"unknown column type {shown(alias)}{where}: use a pyarrow type name such as 'int64', 'float64', "
            "'string', 'bool', 'timestamp[s]' or 'date32' (or DataType.to_long(), DataType.to_string()...)",
            value=alias) from exc


def rows_needed(steps: Sequence[Step]) -> int | None:
    """How many leading rows the steps can use at most (None: all of them)."""
    offset = 0
    for step in steps:
        if isinstance(step, Skip):
            offset += step.count
        elif isinstance(step, Take):
            return offset + step.count  # later steps only pick among these
        elif isinstance(step, RandomSplit):
            return None
    return None


# -- reading -----------------------------------------------------------------------------------------


def read_table(files: Sequence[tuple[str, Path]], reader: ReaderOptions, *, row_limit: int | None = None) -> "pa.Table":
    """The rows of ``files`` (label for messages, local path), in order, as one table.

    A file of 0 bytes holds no rows; when every file is empty, :class:`DatasetReadError`.
    """
    import pyarrow as pa

    tables: list[pa.Table] = []
    labels: list[str] = []
    rows = 0
    for label, path in files:
        if path.stat().st_size == 0:
            continue
        want = None if row_limit is None else row_limit - rows
        if want is not None and want <= 0 and tables:
            break
        table = _read_one(label, path, reader, want)
        tables.append(table)
        labels.append(label)
        rows += table.num_rows
    if not tables:
        if files:
            names = ", ".join(label for label, _ in files[:5]) + (" ..." if len(files) > 5 else "")
            raise DatasetReadError(f"this dataset holds no data: every file is empty ({names})",
                                   path=[label for label, _ in files])
        raise DatasetReadError("this dataset matches no file, so there is no table to read: check its paths "
                               "(from_delimited_files(..., validate=True) says what was searched)", path=[])
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        first = tables[0].schema
        odd = next(i for i, t in enumerate(tables) if not t.schema.equals(first))
        raise DatasetReadError(
            f"the files of this dataset do not share one schema: {labels[0]} has "
            f"{_schema_text(first)} and {labels[odd]} has {_schema_text(tables[odd].schema)} ({exc}); "
            "give their column types with set_column_types or read them as separate datasets",
            path=labels[odd]) from exc


def _schema_text(schema: "pa.Schema") -> str:
    return "(" + ", ".join(f"{f.name}: {f.type}" for f in schema) + ")"


def _read_one(label: str, path: Path, reader: ReaderOptions, limit: int | None) -> "pa.Table":
    import pyarrow as pa

    try:
        if reader.format == DELIMITED:
            return _read_delimited(label, path, reader, limit)
        if reader.format == PARQUET:
            return _read_parquet(path, limit)
        if reader.format == JSON_LINES:
            return _read_json_lines(path, limit)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as exc:
        what = {DELIMITED: f"delimited text (separator {reader.separator!r})", PARQUET: "Parquet",
                JSON_LINES: "JSON lines"}[reader.format]
        detail = str(exc)
        if reader.format == DELIMITED and "parse error" in detail and "Row #" not in detail:
            detail = _locate_parse_error(path, reader) or detail
        raise DatasetReadError(f"cannot read {label} as {what}: {detail}", path=label) from exc
    raise UserError(f"unknown table format {reader.format!r}")


def _csv_options(path: Path, reader: ReaderOptions, *, use_threads: bool = True) -> tuple[Any, Any, Any]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    parse = pacsv.ParseOptions(delimiter=reader.separator, newlines_in_values=reader.multi_line)
    types = {name: column_type(alias, name) for name, alias in reader.column_types}
    read = pacsv.ReadOptions(encoding=reader.encoding, use_threads=use_threads)
    if not reader.header or not reader.infer_column_types:
        names = _csv_column_names(path, reader, parse)
        if not reader.header:
            read = pacsv.ReadOptions(encoding=reader.encoding, use_threads=use_threads, column_names=names)
        if not reader.infer_column_types:
            types = {**{name: pa.string() for name in names}, **types}
    convert = pacsv.ConvertOptions(column_types=types or None,
                                   timestamp_parsers=list(reader.timestamp_formats) or None)
    return read, parse, convert


def _csv_column_names(path: Path, reader: ReaderOptions, parse: Any) -> list[str]:
    """The file's column names (from the header row, or Column1... for the columns of its first row),
    from pyarrow's streaming reader, which reads one block."""
    import pyarrow.csv as pacsv

    read = pacsv.ReadOptions(encoding=reader.encoding, autogenerate_column_names=not reader.header)
    convert = pacsv.ConvertOptions(column_types={})
    with pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert) as stream:
        names: list[str] = stream.schema.names
    if reader.header:
        return names
    return [HEADERLESS_COLUMN.format(i + 1) for i in range(len(names))]


def _read_delimited(label: str, path: Path, reader: ReaderOptions, limit: int | None) -> "pa.Table":
    import pyarrow as pa
    import pyarrow.csv as pacsv

    read, parse, convert = _csv_options(path, reader)
    if limit is not None:
        try:
            with pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert) as stream:
                return _first_rows(stream, limit)
        except pa.ArrowInvalid:
            pass  # types guessed from the first block do not fit a later one: read the whole file
    table = pacsv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    missing = [name for name, _ in reader.column_types if name not in table.column_names]
    if missing:
        raise DatasetReadError(f"set_column_types names {', '.join(map(repr, missing))}, which {label} does not "
                               f"have: its columns are {', '.join(table.column_names)}", path=label)
    return table if limit is None else table.slice(0, limit)


def _locate_parse_error(path: Path, reader: ReaderOptions) -> str | None:
    """pyarrow's message with the row number, which it knows only when it parses on one thread."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    read, parse, convert = _csv_options(path, reader, use_threads=False)
    try:
        pacsv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as exc:
        return str(exc)
    return None


def _first_rows(stream: Any, limit: int) -> "pa.Table":
    import pyarrow as pa

    batches = []
    rows = 0
    for batch in stream:
        batches.append(batch)
        rows += batch.num_rows
        if rows >= limit:
            break
    return pa.Table.from_batches(batches, schema=stream.schema).slice(0, limit)


def _read_parquet(path: Path, limit: int | None) -> "pa.Table":
    import pyarrow as pa
    import pyarrow.parquet as pq

    if limit is None:
        return pq.read_table(path)
    parquet = pq.ParquetFile(path)
    batches = []
    rows = 0
    for batch in parquet.iter_batches(batch_size=max(1, min(limit, 65_536))):
        batches.append(batch)
        rows += batch.num_rows
        if rows >= limit:
            break
    return pa.Table.from_batches(batches, schema=parquet.schema_arrow).slice(0, limit)


def _read_json_lines(path: Path, limit: int | None) -> "pa.Table":
    import pyarrow as pa
    import pyarrow.json as pajson

    if limit is not None and hasattr(pajson, "open_json"):
        try:
            with pajson.open_json(path) as stream:
                return _first_rows(stream, limit)
        except pa.ArrowInvalid:
            pass  # types guessed from the first block do not fit a later one: read the whole file
    table = pajson.read_json(path)
    return table if limit is None else table.slice(0, limit)


# -- steps on rows and columns -----------------------------------------------------------------------


def apply_steps(table: "pa.Table", steps: Sequence[Step]) -> "pa.Table":
    for step in steps:
        if isinstance(step, Take):
            table = table.slice(0, step.count)
        elif isinstance(step, Skip):
            table = table.slice(min(step.count, table.num_rows))
        elif isinstance(step, KeepColumns):
            _check_columns(table, step.columns, "keep_columns")
            wanted = set(step.columns)
            table = table.select([c for c in table.column_names if c in wanted])
        elif isinstance(step, DropColumns):
            _check_columns(table, step.columns, "drop_columns")
            table = table.drop_columns(list(step.columns))
        elif isinstance(step, RandomSplit):
            table = table.take(step.indices(table.num_rows))
    return table


def _check_columns(table: "pa.Table", columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise UserError(f"{what}: this dataset has no column {', '.join(map(repr, missing))}; its columns are "
                        f"{', '.join(map(repr, table.column_names))}", columns=missing)


def to_pandas(table: "pa.Table") -> "pd.DataFrame":
    """The frame of ``table`` (``Table.to_pandas``); the table is consumed (its buffers are freed as
    columns convert, so a 1 GB table does not need twice its memory).

    Dates become ``datetime64`` columns, as Azure ML's ``to_pandas_dataframe()`` gives them (pyarrow's
    default, a column of ``datetime.date`` objects, costs a Python object per row); every other
    type converts as ``Table.to_pandas()`` converts it.
    """
    frame: pd.DataFrame = table.to_pandas(split_blocks=True, self_destruct=True, date_as_object=False)
    return frame


# -- writing -----------------------------------------------------------------------------------------


def write_csv(table: "pa.Table", path: Path, separator: str = ",") -> None:
    import pyarrow.csv as pacsv

    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(delimiter=separator))


def write_parquet(table: "pa.Table", path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, path)
