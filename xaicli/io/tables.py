"""Read input tables (a Parquet file, a folder of Parquet files, or a CSV file) in batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from xaicli.errors import DataError

CSV_SUFFIXES = (".csv", ".tsv", ".txt")


@dataclass(frozen=True)
class TableSource:
    """A readable table: its files, kind and schema. Rows are read in input order."""

    path: Path
    kind: str  # "parquet" or "csv"
    files: tuple[Path, ...]
    schema: pa.Schema

    def iter_batches(self, columns: Sequence[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        """Record batches of at most ``batch_size`` rows with the given columns, in order."""
        try:
            if self.kind == "parquet":
                for file in self.files:
                    # no read-ahead threads: memory stays at about one row group
                    yield from pq.ParquetFile(file, pre_buffer=False).iter_batches(
                        batch_size=batch_size, columns=list(columns), use_threads=False
                    )
            else:
                reader = _open_csv(self.path, self.schema)
                for batch in reader:
                    batch = batch.select(list(columns))
                    for start in range(0, batch.num_rows, batch_size):
                        yield batch.slice(start, batch_size)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"cannot read {self.path}: {_first_line(exc)}") from exc

    def count_rows(self) -> int:
        """Number of rows (Parquet: from metadata; CSV: one streaming pass)."""
        if self.kind == "parquet":
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


def open_table(path: Path, *, what: str = "data") -> TableSource:
    """Open ``path`` for reading; raise DataError with a clear message when impossible."""
    if not path.exists():
        raise DataError(f"{what} file not found: {path}")
    if path.is_dir():
        files = tuple(sorted(p for p in path.rglob("*.parquet") if p.is_file()))
        if not files:
            raise DataError(f"{what} folder {path} holds no .parquet files")
        return TableSource(path, "parquet", files, _parquet_schema(files[0], what))
    if path.suffix.lower() in CSV_SUFFIXES:
        try:
            reader = _open_csv(path, None)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"cannot read {what} CSV {path}: {_first_line(exc)}") from exc
        return TableSource(path, "csv", (path,), reader.schema)
    return TableSource(path, "parquet", (path,), _parquet_schema(path, what))


def _parquet_schema(path: Path, what: str) -> pa.Schema:
    try:
        return pq.ParquetFile(path).schema_arrow
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(
            f"{what} file {path} is not a readable Parquet file ({_first_line(exc)}); "
            "pass a .parquet file, a folder of them, or a .csv file"
        ) from exc


def _open_csv(path: Path, schema: pa.Schema | None) -> pacsv.CSVStreamingReader:
    convert = pacsv.ConvertOptions(column_types=schema) if schema is not None else None
    read = pacsv.ReadOptions(block_size=1 << 22)
    parse = pacsv.ParseOptions(delimiter="\t") if path.suffix.lower() == ".tsv" else None
    return pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
