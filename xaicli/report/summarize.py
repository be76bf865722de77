"""``xai summarize`` as a library call: global importance of an attribution table, overall or
per group, in one streaming pass.

A group column comes from the attribution table itself (an id column, ``reason_1``, ...) or
from the explained data (``--data``), joined on the id columns, or on the ``row`` position
when the run had no id column. The join walks both tables in input order, as ``xai
explain`` writes them (rows skipped with ``--on-invalid skip`` are passed over), so memory
stays constant in the number of rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from xaicli.errors import DataError, UsageError
from xaicli.io.attributions import BATCH_ROWS, AttributionSource
from xaicli.io.layout import ROW
from xaicli.report.importance import global_importance

__all__ = ["summarize"]


def summarize(
    source: AttributionSource,
    *,
    by: str | None = None,
    data: Path | None = None,
    top: int | None = None,
    batch_rows: int = BATCH_ROWS,
) -> pd.DataFrame:
    """The importance table of ``source`` (see :mod:`xaicli.report.importance`): [by,]
    output, feature, count, mean_abs, mean, std, share, rank.

    by:   a column of the attribution table other than a feature's attributions, else a
          column of ``data``; one summary per value (missing values form one group).
    top:  keep the features ranked ``top`` or better in each summary (default all).
    Raises UsageError for a ``by`` column found nowhere, DataError when ``data`` does not
    join the table."""
    groups = None
    if by in ("output", "feature"):
        raise UsageError(f"--by {by}: every summary is already per output and feature")
    if by is not None:
        groups = _group_batches(source, by, data, batch_rows)
    table = global_importance(source, groups=groups, batch_rows=batch_rows)
    if by is not None:
        table = table.rename(columns={"group": by})
    if top is not None:
        table = table[table["rank"] <= top].reset_index(drop=True)
    return table


def _group_batches(
    source: AttributionSource, by: str, data: Path | None, batch_rows: int
) -> Iterator[pd.Series]:
    """One Series of group values per batch of ``source`` (as global_importance reads it)."""
    own = [c for c in source.columns if c not in _attribution_columns(source)]
    if by in own:
        # read beside the batches global_importance reads: same files, same batch cuts
        return (b[by] for b in source.batches([by], batch_rows))
    if data is None:
        raise UsageError(
            f"--by column {by!r} is not in the attribution table (it has {', '.join(own)}); "
            "name one of those, or pass --data with the explained rows"
        )
    return _joined_groups(source, by, data, batch_rows)


def _attribution_columns(source: AttributionSource) -> set[str]:
    if source.layout == "wide":
        return set(source.features)
    return {"attribution"}


def _joined_groups(
    source: AttributionSource, by: str, data: Path, batch_rows: int
) -> Iterator[pd.Series]:
    from xaicli.io.tables import open_table

    ids = list(source.id_columns)
    by_position = ids == [ROW]
    table = open_table(data, what="data", text_columns=[] if by_position else ids)
    missing = [c for c in ([by] if by_position else [*ids, by]) if c not in table.schema.names]
    if missing:
        raise UsageError(
            f"--by column {by!r} is in neither the attribution table nor --data {data}"
            if missing == [by]
            else f"--data {data} lacks the id column {missing[0]!r} of the attribution table; "
            "pass the data that was explained"
        )
    columns = [by] if by_position else list(dict.fromkeys([*ids, by]))
    rows = _DataRows(table.iter_batches(columns, batch_rows), ids, by, by_position)
    for batch in source.batches(ids, batch_rows):
        yield rows.match(_keys(batch, ids, by_position), batch.index)


def _keys(frame: pd.DataFrame, ids: list[str], by_position: bool) -> np.ndarray:
    """One key per row: the position, or the id values as text (CSV reads ids as text)."""
    if by_position:
        return frame[ROW].to_numpy(dtype=np.int64)
    if len(ids) == 1:
        return frame[ids[0]].astype(str).to_numpy(dtype=object)
    return frame[ids].astype(str).agg("\x1f".join, axis=1).to_numpy(dtype=object)


class _DataRows:
    """The data's rows in order, with a cursor: each attribution row finds its data row at
    or after the cursor (several outputs, or features in the long layout, share one)."""

    def __init__(self, batches, ids: list[str], by: str, by_position: bool) -> None:
        self._batches = iter(batches)
        self._ids, self._by, self._by_position = ids, by, by_position
        self._keys = np.empty(0, dtype=object)
        self._values = np.empty(0, dtype=object)
        self._offset = 0  # data position of self._keys[0]

    def _more(self) -> bool:
        batch = next(self._batches, None)
        if batch is None:
            return False
        frame = batch.to_pandas()
        if self._by_position:
            keys = np.arange(
                self._offset + len(self._keys), self._offset + len(self._keys) + len(frame)
            )
        else:
            keys = _keys(frame, self._ids, False)
        self._keys = np.concatenate([self._keys, keys.astype(object)])
        self._values = np.concatenate([self._values, frame[self._by].to_numpy(dtype=object)])
        return True

    def match(self, keys: np.ndarray, index: pd.Index) -> pd.Series:
        values = np.empty(len(keys), dtype=object)
        # runs of equal keys: a row's outputs (and features) sit next to each other
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else []
        cursor = 0
        for run, start in enumerate(starts):
            stop = starts[run + 1] if run + 1 < len(starts) else len(keys)
            key = keys[start]
            found = self._find(key, cursor)
            values[start:stop] = self._values[found]
            cursor = found
        self._drop(cursor)
        return pd.Series(values, index=index)

    def _find(self, key: object, cursor: int) -> int:
        position = cursor
        while True:
            while position >= len(self._keys):
                if not self._more():
                    raise DataError(
                        f"row id {key!r} of the attribution table is not in --data (in input "
                        "order); pass the data that was explained"
                    )
            if self._keys[position] == key:
                return position
            position += 1

    def _drop(self, cursor: int) -> None:
        """Forget the data rows before ``cursor``: the attribution rows to come are later."""
        self._keys, self._values = self._keys[cursor:], self._values[cursor:]
        self._offset += cursor
