"""Write a small result table (a summary, not an attribution table) to the file ``--out``
names: CSV, Parquet or JSON by its suffix, or CSV on stdout for ``-``; atomically, and an
existing file only with ``--overwrite``."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa

from xaicli.errors import UsageError
from xaicli.io.destinations import check_absent, check_writable_folder
from xaicli.io.writer import TableWriter, write_text_atomic

RESULT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".json": "json"}


def result_format(out: str) -> str:
    """The format ``out`` asks for; UsageError for a suffix we do not write."""
    if out == "-":
        return "csv"
    found = RESULT_FORMATS.get(Path(out).suffix.lower())
    if found is None:
        raise UsageError(
            f"cannot tell the format of --out {out}; use .csv, .parquet or .json, or - for CSV "
            "on stdout"
        )
    return found


def check_result_destination(out: str, *, overwrite: bool) -> None:
    """Before any work: ``out`` can be written (its folder exists, nothing is replaced
    without ``overwrite``)."""
    result_format(out)
    if out != "-":
        check_writable_folder(Path(out), "output")
        check_absent(Path(out), "output", may_replace=overwrite)


def write_result(frame: pd.DataFrame, out: str, *, overwrite: bool) -> None:
    """Write ``frame`` (CSV as pandas writes it, JSON as a list of records)."""
    fmt = result_format(out)
    if out == "-":
        sys.stdout.write(frame.to_csv(index=False))
        sys.stdout.flush()
        return
    path = Path(out)
    if fmt == "csv":
        write_text_atomic(path, frame.to_csv(index=False), replace=overwrite)
    elif fmt == "json":
        write_text_atomic(
            path,
            frame.to_json(orient="records", indent=2, double_precision=15) + "\n",
            replace=overwrite,
        )
    else:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        with TableWriter(out, "parquet", replace=overwrite) as writer:
            writer.write(table)
            writer.finish({}, table.schema)
            writer.publish()
