"""The rows ``xai evaluate`` works on: a seeded sample of an attribution table's input rows,
their attributions as arrays, and the same rows found again in the data (or in a second
attribution table) by their id columns or row positions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from xaicli.errors import DataError
from xaicli.io.attributions import AttributionSource
from xaicli.io.layout import ROW
from xaicli.io.tables import TableSource

__all__ = ["SampledRows", "count_input_rows", "data_positions", "read_rows", "sample_positions"]

#: The sample's random stream, apart from every row stream of the runs.
SAMPLE_STREAM = 0xE7A1


@dataclass(frozen=True)
class SampledRows:
    """Input rows of an attribution table, in table order.

    keys:        (n_rows,) the id columns (or ``row``) of each input row.
    values:      (n_rows, n_outputs, n_features) attributions, outputs and features in the
                 source's order.
    base_values, predictions: (n_rows, n_outputs), or None for a long table.
    """

    keys: pd.DataFrame
    values: np.ndarray
    base_values: np.ndarray | None
    predictions: np.ndarray | None


def _rows_per_input(source: AttributionSource) -> int:
    per_output = 1 if source.layout == "wide" else len(source.features)
    return len(source.outputs) * per_output


def count_input_rows(source: AttributionSource) -> int:
    """Input rows in the table: one per output (and feature, in a long table) in the format."""
    total = sum(len(batch) for batch in source.batches(["output"]))
    return total // _rows_per_input(source)


def sample_positions(n_input: int, rows: int, seed: int) -> np.ndarray:
    """Sorted positions of ``min(rows, n_input)`` input rows, the same for the same seed."""
    rng = np.random.default_rng([seed, SAMPLE_STREAM, 2])  # 3 words: never a row stream
    return np.sort(rng.choice(n_input, size=min(rows, n_input), replace=False))


def read_rows(
    source: AttributionSource,
    *,
    positions: np.ndarray | None = None,
    keys: pd.DataFrame | None = None,
) -> SampledRows:
    """The input rows at ``positions`` (sorted), or those with the given ``keys`` (in the
    keys' order), read in one pass over the table's batches."""
    if keys is not None:
        wanted = dict.fromkeys(_key_tuples(keys))
        missing_key_columns = [c for c in keys.columns if c not in source.columns]
        if missing_key_columns:
            raise DataError(
                f"{source.path} has no column {missing_key_columns[0]!r}: it does not "
                "identify its rows as the evaluated table does"
            )

        def pick(batch: pd.DataFrame, inputs: np.ndarray) -> np.ndarray:
            return np.fromiter(
                (k in wanted for k in _key_tuples(batch[list(keys.columns)])), bool, len(batch)
            )
    else:
        chosen = np.asarray(positions)

        def pick(batch: pd.DataFrame, inputs: np.ndarray) -> np.ndarray:
            return np.isin(inputs, chosen)

    frame = _picked(source, pick)
    rows = _as_arrays(source, frame)
    if keys is not None:
        found = {k: i for i, k in enumerate(_key_tuples(rows.keys))}
        order = [found.get(k) for k in _key_tuples(keys)]
        if any(i is None for i in order):
            absent = sum(i is None for i in order)
            raise DataError(
                f"{source.path} lacks {absent} of the {len(order)} evaluated rows; "
                "--against takes an attribution table of the same rows"
            )
        rows = _reordered(rows, np.array(order, dtype=np.intp))
    return rows


def _picked(
    source: AttributionSource, pick: Callable[[pd.DataFrame, np.ndarray], np.ndarray]
) -> pd.DataFrame:
    per_input = _rows_per_input(source)
    parts, offset = [], 0
    for batch in source.batches():
        inputs = (offset + np.arange(len(batch))) // per_input
        offset += len(batch)
        mask = pick(batch, inputs)
        if mask.any():
            part = batch.loc[mask].copy()
            part["_input"] = inputs[mask]
            parts.append(part)
    if not parts:
        return pd.DataFrame(columns=[*source.columns, "_input"])
    return pd.concat(parts, ignore_index=True)


def _as_arrays(source: AttributionSource, frame: pd.DataFrame) -> SampledRows:
    inputs, row_of = np.unique(frame["_input"].to_numpy(dtype=np.int64), return_inverse=True)
    output_of = _positions(frame["output"].astype(str), source.outputs, source.path, "output")
    n_features = len(source.features)
    values = np.full((len(inputs), len(source.outputs), n_features), np.nan)
    keys = (
        frame.groupby("_input", sort=True).first()[list(source.id_columns)].reset_index(drop=True)
    )
    if source.layout == "wide":
        values[row_of, output_of] = frame[list(source.features)].to_numpy(dtype=np.float64)
        base_values = np.full(values.shape[:2], np.nan)
        predictions = np.full(values.shape[:2], np.nan)
        base_values[row_of, output_of] = frame["base_value"].to_numpy(dtype=np.float64)
        predictions[row_of, output_of] = frame["prediction"].to_numpy(dtype=np.float64)
        return SampledRows(keys, values, base_values, predictions)
    feature_of = _positions(frame["feature"].astype(str), source.features, source.path, "feature")
    values[row_of, output_of, feature_of] = frame["attribution"].to_numpy(dtype=np.float64)
    return SampledRows(keys, values, None, None)


def _positions(column: pd.Series, names: tuple[str, ...], path, what: str) -> np.ndarray:
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(column) - set(index))
    if unknown:
        raise DataError(
            f"{path} has rows of {what} {unknown[0]!r}, which its metadata does not list"
        )
    return column.map(index).to_numpy(dtype=np.intp)


def _reordered(rows: SampledRows, order: np.ndarray) -> SampledRows:
    def take(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[order]

    return SampledRows(
        rows.keys.iloc[order].reset_index(drop=True),
        rows.values[order],
        take(rows.base_values),
        take(rows.predictions),
    )


def _key_tuples(frame: pd.DataFrame) -> list[tuple[str, ...]]:
    # ids compared as text: a CSV table reads them as text, a Parquet table as typed values
    return list(zip(*(frame[c].astype(str) for c in frame.columns), strict=True))


def data_positions(
    table: TableSource, keys: pd.DataFrame, *, by_position: bool, data_name: str
) -> np.ndarray:
    """Where the rows with ``keys`` are in the data: their ``row`` values when the table
    identifies rows by position, else the first data row with the same id columns."""
    if by_position:
        positions = keys[ROW].to_numpy(dtype=np.int64)
        n_rows = table.count_rows()
        if positions.size and positions.max() >= n_rows:
            raise DataError(
                f"the attribution table has row {int(positions.max())}, beyond the "
                f"{n_rows} rows of {data_name}: pass the data the table was computed from"
            )
        return positions
    wanted = {k: None for k in _key_tuples(keys)}
    found: dict[tuple[str, ...], int] = {}
    offset = 0
    for batch in table.iter_batches(list(keys.columns), 1 << 16):
        frame = batch.to_pandas()
        for i, key in enumerate(_key_tuples(frame)):
            if key in wanted and key not in found:
                found[key] = offset + i
        offset += batch.num_rows
    absent = [k for k in wanted if k not in found]
    if absent:
        shown = ", ".join(absent[0])
        raise DataError(
            f"{len(absent)} evaluated row(s) are not in {data_name} (first: id {shown}); "
            "pass the data the attribution table was computed from"
        )
    return np.array([found[k] for k in _key_tuples(keys)], dtype=np.int64)
