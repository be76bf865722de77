"""Write the output table atomically: Parquet or CSV under a temporary name, renamed into
place only when complete; or CSV streamed to stdout."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from xaicli.errors import UsageError

METADATA_KEY = b"xaicli"
FINAL_KEY = b"xaicli.final"
ROW_GROUP_ROWS = 65_536


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_destination(out: str, *, overwrite: bool) -> None:
    """Fail before any work if ``out`` exists (without --overwrite) or its folder is missing."""
    if out == "-":
        return
    path = Path(out)
    if path.exists() and not overwrite:
        raise UsageError(f"output {path} already exists; pass --overwrite to replace it")
    if path.is_dir():
        raise UsageError(f"output {path} is a folder; give a file name")
    if not path.parent.exists():
        raise UsageError(f"output folder {path.parent} does not exist")


class TableWriter:
    """Streams chunk tables to one output. Use as a context manager: on error the
    temporary file is removed and nothing appears at the destination."""

    def __init__(self, out: str, out_format: str, metadata: dict[str, Any] | None = None) -> None:
        self.out = out
        # provenance known before the run: stored in the Parquet schema's metadata
        self._schema_metadata = {METADATA_KEY: json.dumps(metadata or {}, default=str).encode()}
        self.out_format = "csv" if out == "-" else out_format
        self._tmp: Path | None = None
        self._handle: BinaryIO | None = None
        self._parquet: pq.ParquetWriter | None = None
        self._csv: pacsv.CSVWriter | None = None
        self.rows_written = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def __enter__(self) -> TableWriter:
        if self.out != "-":
            target = Path(self.out)
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            os.close(fd)
            self._tmp = Path(name)
        return self

    def write(self, table: pa.Table) -> None:
        if self.out_format == "parquet":
            if self._parquet is None:
                schema = table.schema.with_metadata(self._schema_metadata)
                self._parquet = pq.ParquetWriter(self._tmp, schema, compression="snappy")
            self._pending.append(table.replace_schema_metadata(self._schema_metadata))
            self._pending_rows += table.num_rows
            if self._pending_rows >= ROW_GROUP_ROWS:
                self._flush()
        else:
            if self._csv is None:
                if self.out == "-":
                    self._handle = sys.stdout.buffer
                else:
                    self._handle = open(self._tmp, "wb")  # noqa: SIM115 - closed in finish/abort
                self._csv = pacsv.CSVWriter(self._handle, table.schema)
            self._csv.write_table(table)
            if self.out == "-":
                self._handle.flush()
        self.rows_written += table.num_rows

    def _flush(self) -> None:
        """Write the pending chunks as one row group: few, large row groups read fast and
        keep the file's footer (held in memory until close) small."""
        if self._pending:
            self._parquet.write_table(
                pa.concat_tables(self._pending), row_group_size=ROW_GROUP_ROWS * 2
            )
            self._pending, self._pending_rows = [], 0

    def finish(
        self,
        final_facts: dict[str, Any],
        empty_schema: pa.Schema,
        before_publish: Callable[[], None] | None = None,
    ) -> None:
        """Close, add the facts known only at the end (Parquet key-value metadata
        ``xaicli.final``) and move the file into place."""
        if self.out_format == "parquet":
            if self._parquet is None:
                self.write(empty_schema.empty_table())
            self._flush()
            self._parquet.add_key_value_metadata({FINAL_KEY: json.dumps(final_facts).encode()})
            self._parquet.close()
        else:
            if self._csv is None:
                self.write(empty_schema.empty_table())
            self._csv.close()
            if self.out != "-":
                self._handle.close()
            else:
                self._handle.flush()
        if before_publish is not None:
            before_publish()  # companions (manifest, rejects) exist before the output does
        if self._tmp is not None:
            os.chmod(self._tmp, 0o666 & ~_umask())  # mkstemp makes 0600; honour the umask
            os.replace(self._tmp, self.out)
            self._tmp = None

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._tmp is None:
            return
        try:
            if self._parquet is not None:
                self._parquet.close()
            if self._handle is not None and self.out != "-":
                self._handle.close()
        finally:
            self._tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2, default=str)
        handle.write("\n")
    os.replace(name, path)
