"""Global importance of the features, computed in one streaming pass over an attribution table.

Per output (and group) and feature: the mean of |attribution|, the mean attribution, its
standard deviation, the feature's share of the total mean |attribution|, and its rank by mean
|attribution| (1 = most important). Memory is constant in the number of rows: each batch is
reduced to sums, and the sums of batches are merged exactly (Chan et al.'s pairwise update
for the variance, so a million rows lose no precision to cancellation).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from xaicli.io.attributions import BATCH_ROWS, AttributionSource

__all__ = ["IMPORTANCE_COLUMNS", "ImportanceAccumulator", "global_importance"]

#: Columns of the importance table, after the group column (if any), ``output`` and ``feature``.
IMPORTANCE_COLUMNS = ("count", "mean_abs", "mean", "std", "share", "rank")


@dataclass
class _Moments:
    """Running count, sum of |a|, mean and sum of squared deviations of one attribution column."""

    count: float = 0.0
    sum_abs: float = 0.0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, values: np.ndarray) -> None:
        values = values[~np.isnan(values)]
        n = float(values.size)
        if n == 0:
            return
        mean = float(values.mean())
        m2 = float(((values - mean) ** 2).sum())
        total = self.count + n
        delta = mean - self.mean
        self.m2 += m2 + delta * delta * self.count * n / total
        self.mean += delta * n / total
        self.count = total
        self.sum_abs += float(np.abs(values).sum())


@dataclass
class ImportanceAccumulator:
    """Streaming global importance: feed batches with :meth:`add_wide` or :meth:`add_long`,
    then read the table with :meth:`result`. Keys are ``(group, output, feature)``; the
    group is None unless batches come with a group per row."""

    features: tuple[str, ...]
    moments: dict[tuple[object, str, str], _Moments] = field(default_factory=dict)

    def _moments(self, key: tuple[object, str, str]) -> _Moments:
        if key not in self.moments:
            self.moments[key] = _Moments()
        return self.moments[key]

    def add_wide(self, batch: pd.DataFrame, groups: pd.Series | None = None) -> None:
        """A batch of a wide table: an ``output`` column and one column per feature."""
        keys = _keys(batch, groups)
        for (group, output), index in keys.groupby(
            list(keys.columns), sort=False, dropna=False
        ).groups.items():
            rows = batch.loc[index]
            for feature in self.features:
                values = rows[feature].to_numpy(dtype=np.float64)
                self._moments((_missing_as_none(group), str(output), feature)).add(values)

    def add_long(self, batch: pd.DataFrame, groups: pd.Series | None = None) -> None:
        """A batch of a long table: ``output``, ``feature`` and ``attribution`` columns."""
        keys = _keys(batch, groups)
        keys["feature"] = batch["feature"].astype(str).to_numpy()
        grouped = keys.groupby(list(keys.columns), sort=False, dropna=False)
        for (group, output, feature), index in grouped.groups.items():
            values = batch.loc[index, "attribution"].to_numpy(dtype=np.float64)
            self._moments((_missing_as_none(group), str(output), str(feature))).add(values)

    def result(self, group_column: str | None = None) -> pd.DataFrame:
        """The importance table: [group_column,] output, feature, count, mean_abs, mean, std,
        share, rank; ordered by group, output (first seen) and rank."""
        records = []
        order: dict[tuple[object, str], int] = {}
        for (group, output, feature), m in self.moments.items():
            std = np.sqrt(m.m2 / (m.count - 1)) if m.count > 1 else np.nan
            mean_abs = m.sum_abs / m.count if m.count else np.nan
            position = order.setdefault((group, output), len(order))
            records.append((position, group, output, feature, int(m.count), mean_abs, m.mean, std))
        columns = ["_order", "group", "output", "feature", "count", "mean_abs", "mean", "std"]
        table = pd.DataFrame.from_records(records, columns=columns)
        per = table.groupby("_order", sort=False)["mean_abs"]
        total = per.transform("sum")
        table["share"] = np.where(total > 0, table["mean_abs"] / total.where(total > 0, 1.0), 0.0)
        # ties share the better rank, deterministic whatever the order of the batches
        table["rank"] = per.rank(method="min", ascending=False).astype("int64")
        table = table.sort_values(["_order", "rank", "feature"], kind="stable")
        table = table.drop(columns="_order").reset_index(drop=True)
        if group_column is None:
            return table.drop(columns="group")
        return table.rename(columns={"group": group_column})


def _missing_as_none(group: object) -> object:
    # groupby hands back a fresh NaN per batch, and NaN != NaN: one key for all missing groups
    return None if pd.isna(group) else group  # type: ignore[call-overload]


def _keys(batch: pd.DataFrame, groups: pd.Series | None) -> pd.DataFrame:
    group = groups.to_numpy(dtype=object) if groups is not None else None
    return pd.DataFrame(
        {"group": group, "output": batch["output"].astype(str).to_numpy()}, index=batch.index
    )


def global_importance(
    source: AttributionSource,
    *,
    groups: Iterable[pd.Series] | None = None,
    batch_rows: int = BATCH_ROWS,
) -> pd.DataFrame:
    """The importance table of an opened attribution table, in one pass over its batches
    of ``batch_rows`` rows.

    groups: optionally one Series per batch (aligned with it) giving each row's group; the
            table then has a ``group`` column first.
    """
    accumulator = ImportanceAccumulator(source.features)
    group_iter = iter(groups) if groups is not None else None
    if source.layout == "wide":
        columns = ["output", *source.features]
        add = accumulator.add_wide
    else:
        columns = ["output", "feature", "attribution"]
        add = accumulator.add_long
    for batch in source.batches(columns, batch_rows):
        add(batch, next(group_iter) if group_iter is not None else None)
    return accumulator.result("group" if groups is not None else None)
