"""Write the output table atomically: Parquet or CSV under a temporary name, renamed into
place only when complete; or CSV streamed to stdout.

CSV is written as pandas writes it (``DataFrame.to_csv(index=False)``): fields quoted only
where needed, floats in their shortest round-trip form, booleans as True/False, missing
values as empty fields; integers stay integers when some are missing."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from xaicli.errors import UsageError

METADATA_KEY = b"xaicli"
FINAL_KEY = b"xaicli.final"
PARQUET_ROW_GROUP_ROWS = 65_536


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class TableWriter:
    """Streams chunk tables to one output: ``write`` each table, ``finish`` (the temporary
    file is complete and closed), then ``publish`` (renamed into place). Use as a context
    manager: a file not published by the end is removed, and nothing appears at the
    destination. With ``replace=False`` the output is published only if nothing exists
    there yet."""

    def __init__(
        self,
        out: str,
        out_format: str,
        metadata: dict[str, Any] | None = None,
        *,
        replace: bool = True,
    ) -> None:
        self.out = out
        self.replace = replace
        # provenance known before the run: stored in the Parquet schema's metadata
        self._schema_metadata = {METADATA_KEY: json.dumps(metadata or {}, default=str).encode()}
        self.out_format = "csv" if out == "-" else out_format
        self._tmp: Path | None = None
        self._handle: IO[bytes] | None = None
        self._parquet: pq.ParquetWriter | None = None
        self._csv_header = True  # still to be written
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
            self._parquet_file(table.schema)  # opened by the first table
            self._pending.append(table.replace_schema_metadata(self._schema_metadata))
            self._pending_rows += table.num_rows
            if self._pending_rows >= PARQUET_ROW_GROUP_ROWS:
                self._flush()
        else:
            handle = self._handle
            if handle is None:
                # closed in finish, or on leaving the with block
                handle = sys.stdout.buffer if self.out == "-" else open(self._temp(), "wb")  # noqa: SIM115
                self._handle = handle
            handle.write(csv_bytes(table, header=self._csv_header))
            self._csv_header = False
            if self.out == "-":
                handle.flush()
        self.rows_written += table.num_rows

    def _flush(self) -> None:
        """Write the pending chunks as one row group: few, large row groups read fast and
        keep the file's footer (held in memory until close) small."""
        if self._pending and self._parquet is not None:
            self._parquet.write_table(
                pa.concat_tables(self._pending), row_group_size=PARQUET_ROW_GROUP_ROWS * 2
            )
            self._pending, self._pending_rows = [], 0

    def _parquet_file(self, schema: pa.Schema) -> pq.ParquetWriter:
        if self._parquet is None:
            schema = schema.with_metadata(self._schema_metadata)
            self._parquet = pq.ParquetWriter(self._temp(), schema, compression="snappy")
        return self._parquet

    def _temp(self) -> Path:
        if self._tmp is None:
            raise RuntimeError("TableWriter writes to a file only inside its with block")
        return self._tmp

    def finish(self, final_facts: dict[str, Any], empty_schema: pa.Schema) -> None:
        """Complete and close the file, with the facts known only at the end (Parquet
        key-value metadata ``xaicli.final``); a table with no rows gets ``empty_schema``.
        Without ``replace``, refuse if the output appeared meanwhile: before the caller
        writes its companions (manifest, rejects), which would then be wrong."""
        if self.out_format == "parquet":
            if self._parquet is None:
                self.write(empty_schema.empty_table())
            self._flush()
            parquet = self._parquet_file(empty_schema)
            parquet.add_key_value_metadata({FINAL_KEY: json.dumps(final_facts).encode()})
            parquet.close()
        else:
            if self._csv_header:
                self.write(empty_schema.empty_table())
            if self._handle is not None:
                if self.out != "-":
                    self._handle.close()
                else:
                    self._handle.flush()
        if self._tmp is not None and not self.replace:
            _refuse_if_exists(Path(self.out))

    def publish(self) -> None:
        """Move the finished file into place (stdout: nothing to move)."""
        if self._tmp is not None:
            os.chmod(self._tmp, file_mode())  # mkstemp makes 0600; honour the umask
            _publish(self._tmp, Path(self.out), replace=self.replace)
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


def csv_bytes(table: pa.Table, *, header: bool) -> bytes:
    """``table`` as pandas' ``to_csv(index=False)`` writes it. Integer columns go through
    pandas' nullable integers, so a missing id does not turn a chunk's integers into floats
    (every chunk is written alike)."""
    frame = table.to_pandas(types_mapper=_nullable_integer)
    return frame.to_csv(index=False, header=header).encode()


def _nullable_integer(dtype: pa.DataType) -> Any:
    if not pa.types.is_integer(dtype):
        return None
    import pandas as pd

    name = str(dtype)  # int64 -> Int64, uint8 -> UInt8
    return pd.api.types.pandas_dtype("UInt" + name[4:] if name[0] == "u" else "Int" + name[3:])


def file_mode() -> int:
    """The mode ``open()`` gives a new file: 0666 less the umask."""
    return 0o666 & ~_umask()


def _refuse_if_exists(out: Path) -> None:
    if out.exists() or out.is_symlink():
        raise UsageError(
            f"{out} appeared while this run was computing and was left alone; "
            "pass --overwrite to replace it"
        )


def _publish(tmp: Path, out: Path, *, replace: bool) -> None:
    """Move the finished file into place. Without ``replace``, a hard link publishes it
    only if nothing exists at ``out`` (atomic), where rename would replace it."""
    if replace:
        os.replace(tmp, out)
        return
    try:
        os.link(tmp, out)
    except FileExistsError:
        _refuse_if_exists(out)
        raise
    except OSError:  # a file system without hard links: check, then rename
        _refuse_if_exists(out)
        os.replace(tmp, out)
        return
    tmp.unlink()


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, default=str) + "\n")


def write_text_atomic(path: Path, text: str, *, replace: bool = True) -> None:
    """Write under a temporary name and rename, with the umask's mode like any new file;
    without ``replace``, only if nothing exists at ``path``."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(name, file_mode())
        _publish(Path(name), path, replace=replace)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
