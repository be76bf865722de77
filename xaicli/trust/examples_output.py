"""Write the examples table with the tool's writer: checked before any work, written under
a temporary name and renamed into place, never over an input or (without --overwrite) an
existing file."""

from __future__ import annotations

from pathlib import Path

from xaicli.errors import UsageError
from xaicli.io.destinations import check_absent, check_not_input, check_writable_folder
from xaicli.io.writer import TableWriter
from xaicli.trust.examples_run import ExamplesRequest, check_request, examples_table

SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


def destination(request: ExamplesRequest, out: str | None) -> tuple[str, str]:
    """(out, format): ``-`` is CSV on stdout; default ``<data stem>.examples.parquet``."""
    if out == "-":
        return "-", "csv"
    if out is None:
        data = request.data
        out = str(data.parent / f"{data.name if data.is_dir() else data.stem}.examples.parquet")
    fmt = SUFFIXES.get(Path(out).suffix.lower())
    if fmt is None:
        raise UsageError(f"cannot tell the format of --out {out}; use .parquet or .csv, or '-'")
    return out, fmt


def write_examples(
    request: ExamplesRequest, out: str | None, *, overwrite: bool
) -> tuple[int, str, list[str]]:
    """Compute and write the table; (rows written, where, notes)."""
    check_request(request)
    out, fmt = destination(request, out)
    if out != "-":
        path = Path(out)
        check_writable_folder(path, "output")
        inputs = [("data", request.data), ("reference", request.reference)]
        if request.model and Path(request.model).is_file():
            inputs.append(("model", Path(request.model)))
        check_not_input(path, "output", inputs)
        check_absent(path, "output", may_replace=overwrite)
    table, notes = examples_table(request)
    facts = {"command": "examples", "k": request.k, "space": request.space}
    with TableWriter(out, fmt, facts, replace=overwrite) as writer:
        writer.write(table)
        writer.finish({"output_rows": table.num_rows}, table.schema)
        writer.publish()
    return table.num_rows, "stdout" if out == "-" else out, notes
