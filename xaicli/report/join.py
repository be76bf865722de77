"""The explained data's rows beside an attribution table's, read together in one pass.

``xai explain`` writes rows in input order (a row per output, or per output and feature),
without the rows ``--on-invalid skip`` set aside; so each attribution row finds its data
row at or after the last one found, by its id columns, or by its ``row`` position when the
run had no id column. Memory stays constant in the number of rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from xaicli.errors import DataError, UsageError
from xaicli.io.layout import ROW


class DataRows:
    """The rows of ``data`` with the given ``columns``, matched to attribution batches in
    order by the table's ``id_columns``."""

    def __init__(
        self, data: Path, id_columns: Sequence[str], columns: Sequence[str], batch_rows: int
    ) -> None:
        from xaicli.io.tables import open_table

        self.ids = list(id_columns)
        self.by_position = self.ids == [ROW]
        table = open_table(data, what="data", text_columns=[] if self.by_position else self.ids)
        names = table.schema.names
        lacking = [c for c in ([] if self.by_position else self.ids) if c not in names]
        if lacking:
            raise UsageError(
                f"--data {data} lacks the id column {lacking[0]!r} of the attribution table; "
                "pass the data that was explained"
            )
        lacking = [c for c in columns if c not in names]
        if lacking:
            raise UsageError(f"--data {data} has no column {lacking[0]!r}")
        self.columns = list(columns)
        read = self.columns if self.by_position else list(dict.fromkeys([*self.ids, *columns]))
        self._batches: Iterator = iter(table.iter_batches(read, batch_rows))
        self._keys = np.empty(0, dtype=object)
        self._frame = pd.DataFrame(columns=self.columns)
        self._offset = 0  # data position of the first row held

    def match(self, batch: pd.DataFrame) -> pd.DataFrame:
        """The data rows of ``batch``'s rows (which hold the id columns), aligned with it.
        Raises DataError for a row whose id is not found in order."""
        keys = row_keys(batch, self.ids, self.by_position)
        positions = np.empty(len(keys), dtype=np.int64)
        # runs of equal keys: a row's outputs (and features) sit next to each other
        starts = (
            np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.empty(0, int)
        )
        cursor = 0
        for run, start in enumerate(starts):
            stop = starts[run + 1] if run + 1 < len(starts) else len(keys)
            cursor = self._find(keys[start], cursor)
            positions[start:stop] = cursor
        found = self._frame.iloc[positions].set_axis(batch.index)
        self._keys, self._frame = self._keys[cursor:], self._frame.iloc[cursor:]
        self._offset += cursor
        return found

    def _find(self, key: object, cursor: int) -> int:
        position = cursor
        while True:
            while position >= len(self._keys):
                if not self._more():
                    raise DataError(
                        f"row {key!r} of the attribution table is not in --data (in input "
                        "order); pass the data that was explained"
                    )
            if self._keys[position] == key:
                return position
            position += 1

    def _more(self) -> bool:
        batch = next(self._batches, None)
        if batch is None:
            return False
        frame = batch.to_pandas()
        start = self._offset + len(self._keys)
        if self.by_position:
            keys = np.arange(start, start + len(frame)).astype(object)
        else:
            keys = row_keys(frame, self.ids, False)
        self._keys = np.concatenate([self._keys, keys])
        held = frame[self.columns]
        self._frame = held if self._frame.empty else pd.concat([self._frame, held])
        return True


def row_keys(frame: pd.DataFrame, ids: list[str], by_position: bool) -> np.ndarray:
    """One key per row: the position, or the id values as text (CSV reads ids as text)."""
    if by_position:
        return frame[ROW].to_numpy(dtype=np.int64).astype(object)
    if len(ids) == 1:
        return frame[ids[0]].astype(str).to_numpy(dtype=object)
    return frame[ids].astype(str).agg("\x1f".join, axis=1).to_numpy(dtype=object)
