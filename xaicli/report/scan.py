"""One streaming pass over a wide attribution table gathering what the report shows: global
importance, a deterministic sample of rows for the plots, the rows of largest and smallest
prediction per output, the rows asked for by id, and reason-code counts.

Memory is constant in the number of rows: each batch is reduced and dropped. The sample keeps
the ``n_sample`` input rows of smallest priority, where a row's priority is a fixed bijective
hash of its position in the table and of the seed: the same rows are drawn whatever the batch
size, and every output of a drawn row is kept (a row explained for three classes stays whole).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from xaicli.errors import DataError
from xaicli.io.attributions import BATCH_ROWS, AttributionSource
from xaicli.io.layout import ROW
from xaicli.report.importance import ImportanceAccumulator

__all__ = ["ScanResult", "reason_columns", "row_key", "scan_attributions"]

#: Values (rows x columns) read a batch.
BATCH_VALUES = 1 << 22
REASON_COLUMN = re.compile(r"^reason_(\d+)$")
_PRIORITY = "_priority"


@dataclass
class ScanResult:
    """What one pass over the table found.

    importance:   the global importance table (output, feature, mean_abs, ..., rank).
    sample:       wide rows of the sampled input rows (every output), in table order.
    extremes:     output -> {"largest": row, "smallest": row} (one-row frames).
    requested:    the rows asked for by id, every output, in the order asked.
    reasons:      output -> DataFrame(feature, first, any) of reason-code counts, when the
                  table has ``reason_1..`` columns.
    n_rows:       input rows in the table (table rows / outputs).
    """

    importance: pd.DataFrame
    sample: pd.DataFrame
    extremes: dict[str, dict[str, pd.DataFrame]]
    requested: pd.DataFrame
    reasons: dict[str, pd.DataFrame] = field(default_factory=dict)
    n_rows: int = 0


def reason_columns(columns: Sequence[str]) -> list[str]:
    """``reason_1``, ``reason_2``, ... in order of their number."""
    found = [(int(m.group(1)), c) for c in columns if (m := REASON_COLUMN.match(c))]
    return [c for _, c in sorted(found)]


def row_key(frame: pd.DataFrame, id_columns: Sequence[str]) -> pd.Series:
    """Each row's id as text: the id column's value, or the values joined by '/'."""
    parts = [frame[c].astype(str) for c in id_columns]
    key = parts[0]
    for part in parts[1:]:
        key = key + "/" + part
    return key.rename("_key")


def _priority(units: np.ndarray, seed: int) -> np.ndarray:
    """splitmix64 of (unit + seed's offset): a bijection of uint64, so no two rows tie."""
    with np.errstate(over="ignore"):
        z = units.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15) * np.uint64(seed + 1)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class _Sampler:
    """Keeps the rows of the ``size`` units (input rows) of smallest priority."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.kept: pd.DataFrame | None = None
        self.threshold: np.uint64 | None = None  # the largest priority kept, once full

    def add(self, batch: pd.DataFrame, units: np.ndarray) -> None:
        priority = _priority(units, self.seed)
        if self.threshold is not None:
            chosen = priority <= self.threshold
            batch, priority = batch[chosen], priority[chosen]
            if batch.empty:
                return
        batch = batch.assign(**{_PRIORITY: priority})
        kept = batch if self.kept is None else pd.concat([self.kept, batch])
        distinct = np.unique(kept[_PRIORITY].to_numpy())
        if len(distinct) > self.size:
            self.threshold = distinct[self.size - 1]
            kept = kept[kept[_PRIORITY].to_numpy() <= self.threshold]
        elif len(distinct) == self.size:
            self.threshold = distinct[-1]
        self.kept = kept

    def result(self, columns: Sequence[str]) -> pd.DataFrame:
        if self.kept is None:
            return pd.DataFrame(columns=list(columns))
        return self.kept.drop(columns=_PRIORITY).reset_index(drop=True)


class _Extremes:
    """Per output, the first row of largest and of smallest prediction."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, pd.DataFrame]] = {}

    def add(self, batch: pd.DataFrame) -> None:
        prediction = batch["prediction"]
        for output, index in batch.groupby("output", sort=False).groups.items():
            values = prediction.loc[index]
            if values.isna().all():
                continue
            best = self.rows.setdefault(str(output), {})
            for name, label, better in (
                ("largest", values.idxmax(), np.greater),
                ("smallest", values.idxmin(), np.less),
            ):
                row = batch.loc[[label]]
                held = best.get(name)
                if held is None or better(row["prediction"].iloc[0], held["prediction"].iloc[0]):
                    best[name] = row


class _ReasonCounts:
    """Per output and feature: how often it is the first reason, and among the reasons."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        self.first: dict[str, Counter[str]] = {}
        self.any: dict[str, Counter[str]] = {}

    def add(self, batch: pd.DataFrame) -> None:
        for output, rows in batch.groupby("output", sort=False):
            key = str(output)
            first = self.first.setdefault(key, Counter())
            first.update(rows[self.columns[0]].dropna().astype(str).value_counts().to_dict())
            anywhere = self.any.setdefault(key, Counter())
            for column in self.columns:
                anywhere.update(rows[column].dropna().astype(str).value_counts().to_dict())

    def result(self) -> dict[str, pd.DataFrame]:
        tables = {}
        for output, anywhere in self.any.items():
            first = self.first.get(output, Counter())
            table = pd.DataFrame(
                {
                    "reason": list(anywhere),
                    "first": [first.get(r, 0) for r in anywhere],
                    "any": list(anywhere.values()),
                }
            )
            tables[output] = table.sort_values(
                ["first", "any", "reason"], ascending=[False, False, True], kind="stable"
            ).reset_index(drop=True)
        return tables


def scan_attributions(
    source: AttributionSource,
    *,
    n_sample: int,
    requested: Sequence[str] = (),
    seed: int = 0,
    batch_rows: int | None = None,
) -> ScanResult:
    """Read an attribution table once; see the module's docstring. A long table is read as
    the wide one it reshapes (its prediction being base value + sum of attributions).

    requested: ids of rows to keep whole (the id column's value as text, or several id
    columns' values joined by '/'; ``row`` positions when the run had no id column).
    The result does not depend on ``batch_rows`` (default: about 4 million values a batch).
    Raises DataError for a requested id that is not in the table.
    """
    long = source.layout == "long"
    if batch_rows is None:
        # a wide table of hundreds of features: fewer rows a batch, the same memory
        batch_rows = min(BATCH_ROWS, max(1024, BATCH_VALUES // len(source.columns)))
    ids = list(source.id_columns)
    reasons = [] if long else reason_columns(source.columns)
    columns = list(dict.fromkeys([*ids, "output", "base_value", "prediction", *source.features]))
    read = columns + [c for c in reasons if c not in columns]
    n_outputs = max(len(source.outputs), 1)
    importance = ImportanceAccumulator(source.features)
    sampler = _Sampler(n_sample, seed)
    extremes = _Extremes()
    counts = _ReasonCounts(reasons) if reasons else None
    wanted = set(requested)
    found: list[pd.DataFrame] = []
    offset = 0
    batches = _long_as_wide(source, batch_rows) if long else source.batches(read, batch_rows)
    for batch in batches:
        batch.index = pd.RangeIndex(offset, offset + len(batch))
        importance.add_wide(batch)
        units = np.arange(offset, offset + len(batch), dtype=np.int64) // n_outputs
        sampler.add(batch[columns], units)
        extremes.add(batch[columns])
        if counts is not None:
            counts.add(batch)
        if wanted:
            keys = row_key(batch, ids)
            hit = keys.isin(wanted).to_numpy()
            if hit.any():
                found.append(batch.loc[hit, columns].assign(_key=keys[hit]))
        offset += len(batch)
    requested_rows = _requested(found, requested, columns, source)
    return ScanResult(
        importance=importance.result(),
        sample=sampler.result(columns),
        extremes=extremes.rows,
        requested=requested_rows,
        reasons=counts.result() if counts is not None else {},
        n_rows=offset // n_outputs,
    )


def _long_as_wide(source: AttributionSource, batch_rows: int) -> Iterator[pd.DataFrame]:
    """The wide rows of a long table: its rows come as blocks of one row and output holding
    every feature in order, so a batch is cut at a whole number of blocks and reshaped."""
    features = list(source.features)
    n_features = len(features)
    base_values = source.metadata.get("base_values") or {}
    absent = [o for o in source.outputs if o not in base_values]
    if absent:
        raise DataError(
            f"{source.path} is a long table without the base value of output {absent[0]!r} "
            "(rows of the run do not share one); the report needs the wide layout: "
            "run xai explain with --layout wide"
        )
    ids = list(source.id_columns)
    carry: pd.DataFrame | None = None
    for batch in source.batches([*ids, "output", "feature", "attribution"], batch_rows):
        if carry is not None and len(carry):
            batch = pd.concat([carry, batch], ignore_index=True)
        whole = len(batch) // n_features * n_features
        carry = batch.iloc[whole:]
        if whole:
            yield _reshape(batch.iloc[:whole], ids, features, base_values, source.path)
    if carry is not None and len(carry):
        raise DataError(f"{source.path} ends inside a row: the long table is cut short")


def _reshape(
    block: pd.DataFrame,
    ids: list[str],
    features: list[str],
    base_values: dict[str, float],
    path: object,
) -> pd.DataFrame:
    n_features = len(features)
    names = block["feature"].astype(str).to_numpy().reshape(-1, n_features)
    if not (names == np.asarray(features, dtype=object)).all():
        raise DataError(f"{path}: the long table's features are not in the order of its metadata")
    values = block["attribution"].to_numpy(dtype=np.float64).reshape(-1, n_features)
    wide = block.iloc[::n_features][[*ids, "output"]].reset_index(drop=True)
    wide["output"] = wide["output"].astype(str)
    wide["base_value"] = wide["output"].map(base_values).astype(np.float64)
    wide["prediction"] = wide["base_value"].to_numpy() + values.sum(axis=1)
    attributions = pd.DataFrame(values, columns=features)
    return pd.concat([wide, attributions], axis=1)


def _requested(
    found: list[pd.DataFrame],
    requested: Sequence[str],
    columns: list[str],
    source: AttributionSource,
) -> pd.DataFrame:
    if not requested:
        return pd.DataFrame(columns=columns)
    rows = pd.concat(found) if found else pd.DataFrame(columns=[*columns, "_key"])
    missing = [r for r in requested if r not in set(rows["_key"])]
    if missing:
        what = "row position" if list(source.id_columns) == [ROW] else "id"
        raise DataError(
            f"--rows: {what} {missing[0]!r} is not in {source.path}; "
            f"give values of {'/'.join(source.id_columns)} as written in the table"
        )
    order = {key: position for position, key in enumerate(dict.fromkeys(requested))}
    rows = rows.assign(_order=rows["_key"].map(order))
    rows = rows.sort_values("_order", kind="stable").drop_duplicates(["_key", "output"])
    return rows.drop(columns=["_order", "_key"]).reset_index(drop=True)
