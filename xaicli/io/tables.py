"""Read input tables (a Parquet file, a folder of Parquet files, or a CSV file) in batches.

What is read is checked when a table is opened: a folder holds only Parquet files (names
starting with '.' or '_', which Spark writes beside its parts, are ignored), column names
are unique, and the files of a folder agree on the types of the columns used. CSV id
columns are read as text, exactly as written; other CSV columns have their types inferred.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from xaicli.config import FileFormat
from xaicli.errors import DataError

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
IGNORED_PREFIXES = (".", "_")  # Spark's _SUCCESS, .crc checksums, _temporary/
CSV_BLOCK_BYTES = 1 << 22


@dataclass(frozen=True)
class TableSource:
    """A readable table: its files, file format and schema. Rows are read in input order."""

    path: Path
    file_format: FileFormat
    files: tuple[Path, ...]
    schema: pa.Schema

    def iter_batches(self, columns: Sequence[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        """Record batches of at most ``batch_size`` rows with the given columns, in order,
        with the types of ``self.schema`` (files of a folder may store compatible types)."""
        target = self.schema_of(columns)
        offset = 0  # rows read so far: locates a CSV value that does not parse
        try:
            for batch in self._raw_batches(columns, batch_size):
                if batch.schema.names != target.names:
                    batch = batch.select(target.names)
                if batch.schema.types != target.types:
                    batch = batch.cast(target)
                for start in range(0, batch.num_rows, batch_size):
                    yield batch.slice(start, batch_size)
                offset += batch.num_rows
        except (pa.ArrowInvalid, OSError) as exc:
            if self.file_format == "csv" and isinstance(exc, pa.ArrowInvalid):
                raise _csv_value_error(self, columns, offset, exc) from exc
            raise DataError(f"cannot read {self.path}: {_first_line(exc)}") from exc

    def _raw_batches(self, columns: Sequence[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        if self.file_format == "csv":
            yield from _open_csv(self.path, self.schema_of(columns), include=columns)
            return
        for file in self.files:
            # no read-ahead threads: memory stays at about one row group
            yield from pq.ParquetFile(file, pre_buffer=False).iter_batches(
                batch_size=batch_size, columns=list(columns), use_threads=False
            )

    def count_rows(self) -> int:
        """Number of rows (Parquet: from metadata; CSV: one streaming pass)."""
        if self.file_format == "parquet":
            try:
                return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files)
            except (pa.ArrowInvalid, OSError) as exc:
                raise DataError(f"cannot read {self.path}: {_first_line(exc)}") from exc
        first = self.schema.names[0]
        return sum(b.num_rows for b in self.iter_batches([first], 1 << 16))

    def take(self, positions: np.ndarray, columns: Sequence[str]) -> pa.Table:
        """The rows at sorted 0-based ``positions``, read batch by batch."""
        parts, offset, cursor = [], 0, 0
        for batch in self.iter_batches(columns, 1 << 16):
            end = offset + batch.num_rows
            stop = np.searchsorted(positions, end, side="left")
            if stop > cursor:
                parts.append(batch.take(pa.array(positions[cursor:stop] - offset)))
                cursor = stop
            offset = end
            if cursor >= len(positions):
                break
        if not parts:
            return pa.Table.from_batches([], schema=self.schema_of(columns))
        return pa.Table.from_batches(parts)

    def schema_of(self, columns: Sequence[str]) -> pa.Schema:
        return pa.schema([self.schema.field(c) for c in columns])

    def check_columns(
        self, columns: Sequence[str], *, exact: Sequence[str] = (), what: str = "data"
    ) -> TableSource:
        """This source, checked to hold ``columns`` in every file of a folder, with types that
        agree: numbers of different types are read as float64 (the features are encoded as
        float64 anyway), text of different string types as string; the ``exact`` columns
        (ids, copied unchanged) must have one type everywhere. Raises DataError naming the
        file and the column otherwise."""
        if len(self.files) < 2:
            return self
        fields = {c: self.schema.field(c) for c in columns}
        first = self.files[0]
        for file in self.files[1:]:
            schema = _parquet_schema(file, what)
            _check_unique_names(schema, file, what)
            for name in columns:
                if name not in schema.names:
                    raise DataError(
                        f"{what} file {file} lacks column {name!r}, which {first.name} has; "
                        "every file of a folder must hold the same columns"
                    )
                unified = _unified_type(fields[name].type, schema.field(name).type)
                if unified is None or (name in exact and unified != fields[name].type):
                    raise DataError(
                        f"column {name!r} is {schema.field(name).type} in {what} file {file} "
                        f"but {fields[name].type} in {first.name}; "
                        "store it with one type in every file"
                    )
                fields[name] = fields[name].with_type(unified)
        schema = self.schema
        for name, unified_field in fields.items():
            schema = schema.set(schema.get_field_index(name), unified_field)
        return replace(self, schema=schema)


def open_table(path: Path, *, what: str = "data", text_columns: Sequence[str] = ()) -> TableSource:
    """Open ``path`` for reading; raise DataError with a clear message when impossible.

    ``text_columns`` of a CSV file are read as text, exactly as written (ids: ``00042``
    stays ``00042``, long account numbers are not rounded to floats)."""
    if not path.exists():
        raise DataError(f"{what} file not found: {path}")
    if path.is_dir():
        files = _folder_files(path, what)
        source = TableSource(path, "parquet", files, _parquet_schema(files[0], what))
    elif path.suffix.lower() in CSV_SUFFIXES:
        try:
            reader = _open_csv(path, None, text_columns=text_columns)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"cannot read {what} CSV {path}: {_first_line(exc)}") from exc
        source = TableSource(path, "csv", (path,), _csv_schema(reader.schema, text_columns))
    else:
        source = TableSource(path, "parquet", (path,), _parquet_schema(path, what))
    _check_unique_names(source.schema, source.files[0], what)
    return source


def _folder_files(path: Path, what: str) -> tuple[Path, ...]:
    """The Parquet files of a folder, in name order. Any other file is refused rather than
    skipped, so no part of the input is left out silently."""
    files = []
    for file in sorted(path.rglob("*")):
        parts = file.relative_to(path).parts
        if any(part.startswith(IGNORED_PREFIXES) for part in parts) or not file.is_file():
            continue
        if file.suffix.lower() != ".parquet":
            raise DataError(
                f"{what} folder {path} holds {file.relative_to(path)}, which is not a .parquet "
                "file; a folder is read only as Parquet files: move the other files out"
            )
        files.append(file)
    if not files:
        raise DataError(f"{what} folder {path} holds no .parquet files")
    return tuple(files)


def _check_unique_names(schema: pa.Schema, file: Path, what: str) -> None:
    seen: set[str] = set()
    for name in schema.names:
        if name in seen:
            raise DataError(
                f"column name {name!r} appears more than once in {what} file {file}; "
                "give every column its own name"
            )
        seen.add(name)


def _unified_type(a: pa.DataType, b: pa.DataType) -> pa.DataType | None:
    """The type to read a column stored as ``a`` in one file and ``b`` in another, or None."""
    if a == b:
        return a
    if _is_number(a) and _is_number(b):
        return pa.float64()
    if _is_text(a) and _is_text(b):
        return pa.string()
    return None


def _is_number(arrow_type: pa.DataType) -> bool:
    return (
        pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_decimal(arrow_type)
    )


def _is_text(arrow_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(arrow_type):
        return _is_text(arrow_type.value_type)
    return (
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_string_view(arrow_type)
    )


def _readable(schema: pa.Schema) -> pa.Schema:
    """string_view columns are read as string, which every compute kernel takes."""
    for index, field in enumerate(schema):
        if pa.types.is_string_view(field.type):
            schema = schema.set(index, field.with_type(pa.string()))
    return schema


def _csv_schema(inferred: pa.Schema, text_columns: Sequence[str]) -> pa.Schema:
    """Inferred from the first block: integers are read as float64 and empty columns as
    float64 (NaN), so a later block with a decimal or a value still parses."""
    for index, field in enumerate(inferred):
        if field.name in text_columns:
            continue
        if pa.types.is_integer(field.type) or pa.types.is_null(field.type):
            inferred = inferred.set(index, field.with_type(pa.float64()))
    return inferred


def _parquet_schema(path: Path, what: str) -> pa.Schema:
    try:
        return _readable(pq.ParquetFile(path).schema_arrow)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(
            f"{what} file {path} is not a readable Parquet file ({_first_line(exc)}); "
            "pass a .parquet file, a folder of them, or a .csv file"
        ) from exc


def _open_csv(
    path: Path,
    schema: pa.Schema | None,
    *,
    include: Sequence[str] | None = None,
    text_columns: Sequence[str] = (),
    strings_can_be_null: bool = False,
) -> pacsv.CSVStreamingReader:
    if schema is None:
        types = {name: pa.string() for name in text_columns}
    else:
        types = {field.name: field.type for field in schema}
    convert = pacsv.ConvertOptions(
        column_types=types,
        include_columns=list(include) if include is not None else None,
        strings_can_be_null=strings_can_be_null,
    )
    read = pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES)
    parse = pacsv.ParseOptions(delimiter="\t") if path.suffix.lower() == ".tsv" else None
    return pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)


def _csv_value_error(
    source: TableSource, columns: Sequence[str], offset: int, exc: pa.ArrowInvalid
) -> DataError:
    """The first value of ``columns`` that does not parse as its column's type (inferred
    from the first rows), with its column and row: found by reading the columns again as
    text from the start (only when reading failed)."""
    typed = [c for c in columns if not pa.types.is_string(source.schema.field(c).type)]
    as_text = pa.schema([(c, pa.string()) for c in typed])
    row = 0
    try:
        for batch in _open_csv(source.path, as_text, include=typed, strings_can_be_null=True):
            start = max(0, offset - row)  # the rows before ``offset`` were read fine
            found = []  # (position in the batch, column, value)
            for name in typed:
                column = batch.column(name).slice(start)
                bad = _first_unparsed(column, source.schema.field(name).type)
                if bad is not None:
                    found.append((start + bad[0], name, bad[1]))
            if found:
                position, name, value = min(found)
                return DataError(
                    f"column {name!r} of {source.path} holds {value!r} at row {row + position}, "
                    f"which is not {_type_words(source, name)} like the rows before it; "
                    "fix the value"
                )
            row += batch.num_rows
    except (pa.ArrowInvalid, OSError):
        pass
    return DataError(f"cannot read {source.path}: {_first_line(exc)}")


def _first_unparsed(column: pa.Array, arrow_type: pa.DataType) -> tuple[int, str] | None:
    """(position, value) of the first value of a text column that does not cast."""
    try:
        column.cast(arrow_type)
        return None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
    for position, value in enumerate(column.to_pylist()):
        if not valid[position]:
            continue
        try:
            pa.array([value]).cast(arrow_type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return position, value
    return None


def _type_words(source: TableSource, name: str) -> str:
    arrow_type = source.schema.field(name).type
    if _is_number(arrow_type):
        return "a number"
    return f"a value of type {arrow_type}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
