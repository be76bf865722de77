"""One streaming pass over the data's feature columns before any work.

It counts the rows, parses every value (a CSV value that does not fit its column's type
is reported with its row), and records the first row with NaN or infinite numbers and,
for each text column, the first value that is not a number. What the model cannot take
is then refused before the first row is computed or written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa

from xaicli.errors import DataError, XaiError
from xaicli.io.tables import TableSource
from xaicli.models.codec import FeatureCodec
from xaicli.runner.validate import InvalidPolicy, refuse

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


def _text_numbers(codec: FeatureCodec, background: np.ndarray) -> dict[int, bool]:
    """Text feature columns whose background holds numbers: column index -> True when every
    non-null background value reads as a number (numbers stored as text), False when
    numbers and other text mix."""
    found = {}
    for j in np.flatnonzero(codec.categorical_mask):
        codes = np.unique(background[:, j][~np.isnan(background[:, j])]).astype(np.intp)
        values = [codec.categories[j][k] for k in codes]
        if not values or not all(isinstance(v, str) for v in values):
            continue
        numbers = [reads_as_number(v) for v in values]
        if any(numbers):
            found[int(j)] = all(numbers)
    return found


def numbers_as_text_notes(codec: FeatureCodec, background: np.ndarray) -> list[str]:
    return [
        f"column {codec.names[j]!r} holds numbers stored as text; it is explained as "
        "categorical (each distinct value a category), which is slower and rules out "
        "TreeSHAP: store it as numbers if the model takes numbers"
        for j, all_numbers in _text_numbers(codec, background).items()
        if all_numbers
    ]


def check_text_values(probe, scan: DataScan, codec, background, data) -> None:
    """A text column holding numbers in the background may hold other text further on
    ('abc' among numbers): give the model its first such value now, not mid-run."""
    for j in _text_numbers(codec, background):
        name = codec.names[j]
        if name not in scan.first_text:
            continue
        row, value = scan.first_text[name]
        categories = list(codec.snapshot())
        categories[j] = (*categories[j], value)
        X = background[:1].copy()
        X[0, j] = len(categories[j]) - 1
        try:
            replace(probe, categories=tuple(categories)).raw(X)
        except XaiError:
            raise
        except Exception as exc:
            raise DataError(
                f"column {name!r} of {data} holds numbers, but {value!r} at row {row}, which "
                f"the model cannot take ({type(exc).__name__}: {_first_line(exc)}); "
                "fix the value, or leave the row out"
            ) from exc


def mixed_text_hint(scan: DataScan, codec: FeatureCodec, background: np.ndarray) -> str:
    mixed = [codec.names[j] for j, numbers in _text_numbers(codec, background).items()]
    mixed = [name for name in mixed if name in scan.first_text]
    if not mixed:
        return ""
    row, value = scan.first_text[mixed[0]]
    return f"column {mixed[0]!r} holds numbers but also {value!r} (row {row}); "


def refuse_invalid_rows(
    scan: DataScan, invalid: InvalidPolicy, source: TableSource, id_cols
) -> None:
    """With --on-invalid error, the first row the model cannot take stops the run now,
    before anything is computed or written."""
    if invalid.on_invalid != "error":
        return
    found = []
    if scan.first_nan is not None and not invalid.takes_nan:
        found.append((scan.first_nan.row, "NaN", scan.first_nan))
    if scan.first_inf is not None and not invalid.takes_inf:
        found.append((scan.first_inf.row, "infinite value", scan.first_inf))
    if not found:
        return
    row, reason, bad = min(found, key=lambda item: item[0])  # NaN first on a tie, as per row
    key = row
    if id_cols:
        key = source.take(np.array([row]), id_cols[:1]).column(0)[0].as_py()
    raise refuse(row, key, reason, list(bad.columns), invalid)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
