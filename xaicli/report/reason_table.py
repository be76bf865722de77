"""``xai reasons`` as a library call: the reason columns of an existing attribution table,
wide or long, streamed batch by batch.

Each output row: the id columns (or ``row``), ``output``, ``base_value`` and ``prediction``
(wide tables; a long table has no prediction, and its base value only when the run
recorded one per output), then the reason columns (see :mod:`xaicli.report.reasons`).
Values come from ``data`` (the explained rows, joined on the id columns); without it the
``reason_k_value`` columns are empty.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from xaicli.errors import UsageError
from xaicli.io.attributions import BATCH_ROWS, AttributionSource
from xaicli.report.reasons import ReasonSpec, reason_frame, reason_schema, reason_units

__all__ = ["reason_tables", "write_reasons"]


def reason_tables(
    source: AttributionSource,
    spec: ReasonSpec,
    *,
    data: Path | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[pa.Table]:
    """Tables of the reason columns of ``source``, ``batch_rows`` input rows at a time.
    Lazy: the groups and the data are checked when the first table is asked for."""
    units = reason_units(source.features, spec.groups)
    rows = _data_rows(source, data, batch_rows)
    schema = _schema(source, spec, units)
    kind = source.metadata.get("output_kind")
    for frame in _wide_batches(source, batch_rows):
        values = rows.match(frame) if rows is not None else None
        reasons = reason_frame(
            frame[list(source.features)].to_numpy(dtype=np.float64),
            spec,
            units,
            values=values,
            outputs=frame["output"].astype(str).tolist(),
            predictions=_column(frame, "prediction"),
            base_values=_column(frame, "base_value"),
            output_kind=kind,
        )
        keys = frame[[*source.id_columns, "output", *_fixed(source)]].reset_index(drop=True)
        yield pa.Table.from_pandas(pd.concat([keys, reasons], axis=1), schema=schema)


def _column(frame: pd.DataFrame, name: str) -> np.ndarray | None:
    if name not in frame or frame[name].isna().all():
        return None
    return frame[name].to_numpy(dtype=np.float64)


def _fixed(source: AttributionSource) -> list[str]:
    if source.layout == "wide":
        return ["base_value", "prediction"]
    return ["base_value"] if source.metadata.get("base_values") else []


def _schema(source: AttributionSource, spec: ReasonSpec, units) -> pa.Schema:
    first = source.files[0]
    if first.suffix.lower() == ".csv":
        # ids of a CSV table are read as text, exactly as written
        keys = [pa.field(c, pa.int64() if c == "row" else pa.string()) for c in source.id_columns]
    else:
        import pyarrow.parquet as pq

        stored = pq.ParquetFile(first).schema_arrow
        keys = [stored.field(c) for c in source.id_columns]
    fixed = [pa.field(c, pa.float64()) for c in _fixed(source)]
    return pa.schema([*keys, pa.field("output", pa.string()), *fixed, *reason_schema(spec, units)])


def _data_rows(source: AttributionSource, data: Path | None, batch_rows: int):
    if data is None:
        return None
    from xaicli.report.join import DataRows

    return DataRows(data, source.id_columns, source.features, batch_rows)


def _wide_batches(source: AttributionSource, batch_rows: int) -> Iterator[pd.DataFrame]:
    """Batches with a column per feature: a wide table as read, a long one pivoted (the
    rows of one input row and output sit together; the last of a batch may go on in the
    next, so it waits for it)."""
    ids = list(source.id_columns)
    if source.layout == "wide":
        yield from source.batches(
            [*ids, "output", "base_value", "prediction", *source.features], batch_rows
        )
        return
    base_values = source.metadata.get("base_values") or {}
    pending = pd.DataFrame()
    for batch in source.batches([*ids, "output", "feature", "attribution"], batch_rows):
        batch = pd.concat([pending, batch], ignore_index=True) if len(pending) else batch
        start = _last_run_start(batch, [*ids, "output"])
        pending, ready = batch.iloc[start:], batch.iloc[:start]
        if len(ready):
            yield _pivot(ready, ids, source.features, base_values)
    if len(pending):
        yield _pivot(pending, ids, source.features, base_values)


def _last_run_start(batch: pd.DataFrame, keys: list[str]) -> int:
    """Where the rows of the batch's last input row and output start."""
    same = np.ones(len(batch), dtype=bool)
    for key in keys:
        column = batch[key].astype(str).to_numpy()
        same &= column == column[-1]
    different = np.flatnonzero(~same)
    return int(different[-1]) + 1 if len(different) else 0


def _pivot(
    frame: pd.DataFrame, ids: list[str], features: tuple[str, ...], base_values: dict
) -> pd.DataFrame:
    """A row per input row and output (in order), a column per feature."""
    frame = frame.reset_index(drop=True)
    group = frame.groupby([*ids, "output"], sort=False, dropna=False).ngroup().to_numpy()
    first = ~pd.Series(group).duplicated().to_numpy()  # groups are numbered in this order
    out = frame.loc[first, [*ids, "output"]].reset_index(drop=True)
    column = pd.Index(features).get_indexer(frame["feature"].astype(str))
    known = column >= 0
    values = np.full((len(out), len(features)), np.nan)
    values[group[known], column[known]] = frame["attribution"].to_numpy(dtype=np.float64)[known]
    out = pd.concat([out, pd.DataFrame(values, columns=list(features))], axis=1)
    if base_values:
        out["base_value"] = out["output"].astype(str).map(base_values).astype(np.float64)
    return out


def write_reasons(
    source: AttributionSource,
    spec: ReasonSpec,
    out: str,
    *,
    data: Path | None = None,
    overwrite: bool = False,
    batch_rows: int = BATCH_ROWS,
) -> int:
    """Write :func:`reason_tables` to ``out`` (.parquet or .csv, atomically; ``-``: CSV on
    stdout); the number of rows written. Raises UsageError for an ``out`` that cannot or
    may not be written."""
    from xaicli.io.destinations import (
        check_absent,
        check_not_input,
        check_writable_folder,
    )
    from xaicli.io.writer import TableWriter

    formats = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
    out_format = "csv" if out == "-" else formats.get(Path(out).suffix.lower())
    if out_format is None:
        raise UsageError(f"cannot tell the format of --out {out}; use .parquet or .csv")
    if out != "-":
        path = Path(out)
        check_writable_folder(path, "output")
        inputs = [("attribution", f) for f in source.files]
        if data is not None:
            inputs.append(("data", data))
        check_not_input(path, "output", inputs)
        check_absent(path, "output", may_replace=overwrite)
    tables = reason_tables(source, spec, data=data, batch_rows=batch_rows)
    first = next(tables, None)  # errors in the groups or the data before a file is opened
    metadata = {
        "tool": "xaicli",
        "reasons_of": str(source.path),
        "parameters": {"top": spec.top, "direction": spec.direction, "text": spec.text},
    }
    with TableWriter(out, out_format, metadata=metadata, replace=overwrite) as writer:
        schema = _schema(source, spec, reason_units(source.features, spec.groups))
        for table in [first] if first is not None else []:
            writer.write(table)
        for table in tables:
            writer.write(table)
        writer.finish({"output_rows": writer.rows_written}, schema)
        writer.publish()
    return writer.rows_written
