"""One streaming pass over the data's feature columns before any work.

It counts the rows, parses every value (a CSV value that does not fit its column's type
is reported with its row), and records the first row with NaN or infinite numbers and,
for each text column, the first value that is not a number. What the model cannot take
is then refused before the first row is computed or written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from xaicli.io.tables import TableSource

SCAN_BATCH_ROWS = 1 << 16


@dataclass(frozen=True)
class BadRow:
    row: int  # 0-based input position
    columns: tuple[str, ...]  # its numeric columns holding NaN or infinity


@dataclass
class DataScan:
    n_rows: int = 0
    first_nan: BadRow | None = None
    first_inf: BadRow | None = None
    # per text column: (row, value) of its first value that does not read as a number
    first_text: dict[str, tuple[int, str]] = field(default_factory=dict)


def scan_data(
    source: TableSource, features: Sequence[str], categorical: Sequence[bool]
) -> DataScan:
    """Read the feature columns once, in batches (memory stays at one batch)."""
    numeric = [name for name, is_cat in zip(features, categorical, strict=True) if not is_cat]
    text = [
        name
        for name, is_cat in zip(features, categorical, strict=True)
        if is_cat and is_text_type(source.schema.field(name).type)
    ]
    scan = DataScan()
    for batch in source.iter_batches(features, SCAN_BATCH_ROWS):
        if numeric and (scan.first_nan is None or scan.first_inf is None):
            _find_non_finite(scan, batch, numeric)
        for name in text:
            if name not in scan.first_text:
                found = first_non_number(batch.column(name))
                if found is not None:
                    scan.first_text[name] = (scan.n_rows + found[0], found[1])
        scan.n_rows += batch.num_rows
    return scan


def _find_non_finite(scan: DataScan, batch: pa.RecordBatch, numeric: list[str]) -> None:
    # (n_rows, n_numeric)
    values = np.column_stack(
        [batch.column(n).cast(pa.float64()).to_numpy(zero_copy_only=False) for n in numeric]
    )
    for attribute, test in (("first_nan", np.isnan), ("first_inf", np.isinf)):
        if getattr(scan, attribute) is not None:
            continue
        rows = test(values).any(axis=1)
        if rows.any():
            first = int(np.argmax(rows))
            names = tuple(
                n for n, ok in zip(numeric, np.isfinite(values[first]), strict=True) if not ok
            )
            setattr(scan, attribute, BadRow(scan.n_rows + first, names))


def is_text_type(arrow_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(arrow_type):
        return is_text_type(arrow_type.value_type)
    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)


def first_non_number(column: pa.Array) -> tuple[int, str] | None:
    """(position, value) of the first non-null value that does not read as a number."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    try:
        column.cast(pa.float64())  # the common cases, all numbers or none, without a loop
        return None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    for position, value in enumerate(column.to_pylist()):
        if value is not None and not reads_as_number(value):
            return position, value
    return None


def reads_as_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
