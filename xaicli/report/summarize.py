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

import pandas as pd

from xaicli.errors import UsageError
from xaicli.io.attributions import BATCH_ROWS, AttributionSource
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
    """The numbers of the attributions and their standard errors: nothing to group by."""
    if source.layout == "wide":
        return set(source.features) | set(source.se_columns)
    return {"attribution", *source.se_columns}


def _joined_groups(
    source: AttributionSource, by: str, data: Path, batch_rows: int
) -> Iterator[pd.Series]:
    from xaicli.report.join import DataRows

    ids = list(source.id_columns)
    try:
        rows = DataRows(data, ids, [by], batch_rows)
    except UsageError as exc:
        if f"no column {by!r}" not in str(exc):
            raise
        raise UsageError(
            f"--by column {by!r} is in neither the attribution table nor --data {data}"
        ) from None
    for batch in source.batches(ids, batch_rows):
        group = rows.match(batch)[by]
        # an empty CSV field is read as empty text: missing, as in Parquet
        yield group.mask(group.astype(object).eq(""), None)
