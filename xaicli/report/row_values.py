"""The input values of chosen rows, read from the data in batches and joined to attribution
rows on the id columns, or on ``row`` (the 0-based input position) when the run had none."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from xaicli.errors import DataError
from xaicli.io.layout import ROW
from xaicli.io.tables import open_table
from xaicli.report.scan import row_key

__all__ = ["feature_values"]

BATCH_ROWS = 1 << 16


def feature_values(
    data: Path, rows: pd.DataFrame, id_columns: Sequence[str], features: Sequence[str]
) -> pd.DataFrame:
    """The ``features`` of the input rows behind attribution ``rows``, one row per distinct
    input row, indexed by its key (see :func:`xaicli.report.scan.row_key`). Raises DataError
    when the data lacks a column or a row."""
    ids = list(id_columns)
    by_position = ids == [ROW]
    source = open_table(data, what="data", text_columns=[] if by_position else ids)
    needed = list(features) if by_position else list(dict.fromkeys([*ids, *features]))
    absent = [c for c in needed if c not in source.schema.names]
    if absent:
        raise DataError(
            f"--data {data} lacks column {absent[0]!r} of the attribution table; "
            "give the data the run explained"
        )
    keys = pd.Index(row_key(rows, ids).unique())
    if keys.empty:
        return pd.DataFrame(columns=list(features))
    if by_position:
        values = _by_position(source, keys, list(features), data)
    else:
        values = _by_id(source, keys, ids, needed)
    missing = keys.difference(values.index)
    if len(missing):
        raise DataError(
            f"row {missing[0]!r} of the attribution table is not in --data {data}; "
            "give the data the run explained"
        )
    return values.loc[keys, list(features)]


def _by_position(source, keys: pd.Index, features: list[str], data: Path) -> pd.DataFrame:
    positions = np.sort(keys.astype(np.int64).to_numpy())
    table = source.take(positions, features).to_pandas()
    if len(table) != len(positions):
        beyond = positions[len(table)] if len(table) < len(positions) else positions[-1]
        raise DataError(
            f"row {beyond} of the attribution table is beyond the end of --data {data}; "
            "give the data the run explained"
        )
    table.index = pd.Index(positions.astype(str), name="_key")
    return table


def _by_id(source, keys: pd.Index, ids: list[str], needed: list[str]) -> pd.DataFrame:
    wanted = set(keys)
    parts = []
    for batch in source.iter_batches(needed, BATCH_ROWS):
        frame = batch.to_pandas()
        key = row_key(frame, ids)
        hit = key.isin(wanted).to_numpy()
        if hit.any():
            parts.append(frame[hit].set_index(key[hit]))
    if not parts:
        return pd.DataFrame(columns=needed)
    values = pd.concat(parts)
    return values[~values.index.duplicated()]  # a repeated id: its first row, as a join would
