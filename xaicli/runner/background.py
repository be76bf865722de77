"""The reference rows of a run: the background (a file, or a seeded sample of the data, with
optional weights) and its default size, and other whole tables of reference rows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from xaicli.config import ExplainConfig
from xaicli.errors import DataError, UsageError
from xaicli.io.tables import TableSource, open_table
from xaicli.runner.choose import may_choose_tree

BACKGROUND_STREAM = 0xBA5E  # the background sample's random stream, apart from the rows'
DEFAULT_BACKGROUND_SIZE = 100
# TreeSHAP's cost per row does not grow with the background (xaicli.methods.shap_tree_tables),
# so tree models get a larger sample: a closer estimate of the interventional expectation.
TREE_BACKGROUND_SIZE = 1000


def background_size(config: ExplainConfig, model: Any) -> int:
    """--background-size, or its default: larger for TreeSHAP on a tree model."""
    if config.inputs.background_size is not None:
        return config.inputs.background_size
    compute = config.compute
    if may_choose_tree(compute.method, compute.algorithm, model, config.inputs.output):
        return TREE_BACKGROUND_SIZE
    return DEFAULT_BACKGROUND_SIZE


def background_table(
    config: ExplainConfig, source: TableSource, features: tuple[str, ...], n_rows: int, size: int
):
    """The background rows' features, and their --background-weights (None without)."""
    column = config.inputs.background_weights
    if config.inputs.background is not None:
        path = config.inputs.background
        table_source = open_table(path, what="background")
        _require_columns(table_source, features, f"background {path}")
        columns = _with_weights(features, column, table_source, f"background {path}")
        table = _every_row(table_source, columns, "background", f"background {path}")
        return table, _background_weights(table, column)
    if size < 1:
        raise UsageError(f"--background-size must be at least 1, got {size}")
    columns = _with_weights(features, column, source, str(config.inputs.data))
    size = min(size, n_rows)
    rng = np.random.default_rng(
        [config.compute.seed, BACKGROUND_STREAM, 1]
    )  # 3 words: never a row stream
    positions = np.sort(rng.choice(n_rows, size=size, replace=False))
    table = source.take(positions, columns)
    return table, _background_weights(table, column)


def _with_weights(
    features: tuple[str, ...], column: str | None, source: TableSource, where: str
) -> list[str]:
    """The columns to read: the features and the weight column."""
    if column is None:
        return list(features)
    if column not in source.schema.names:
        raise DataError(
            f"--background-weights {column!r} is not a column of {where}; it has "
            f"{', '.join(source.schema.names)}"
        )
    return list(features) if column in features else [*features, column]


def _background_weights(table: Any, column: str | None) -> np.ndarray | None:
    """The weight column's values, checked: finite, >= 0, not all 0."""
    if column is None:
        return None
    values = table.column(column)
    try:
        weights = values.cast(pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise DataError(
            f"--background-weights {column!r} must hold numbers, got {values.type}"
        ) from None
    what = f"--background-weights {column!r}"
    bad = ~np.isfinite(weights)
    if bad.any():
        raise DataError(
            f"{what} has a missing or infinite weight (background row {int(np.argmax(bad))}); "
            "weights must be finite numbers >= 0"
        )
    if (weights < 0).any():
        first = int(np.argmax(weights < 0))
        raise DataError(
            f"{what} has a negative weight {weights[first]:g} (background row {first}); "
            "weights must be >= 0"
        )
    if not weights.sum() > 0:
        raise DataError(f"{what}: every weight is 0; give some background rows a positive weight")
    return weights


def read_table(path: Path, what: str, features: Sequence[str]) -> pa.Table:
    """The features' columns of every row of a Parquet or CSV table of reference rows (for
    example a method's baseline table)."""
    table_source = open_table(path, what=what)
    _require_columns(table_source, features, f"{what} {path}")
    return _every_row(table_source, features, what, f"{what} {path}")


def _require_columns(table_source: TableSource, columns: Sequence[str], where: str) -> None:
    missing = [c for c in columns if c not in table_source.schema.names]
    if missing:
        raise DataError(f"{where} lacks column(s) {', '.join(missing)}")


def _every_row(
    table_source: TableSource, columns: Sequence[str], what: str, where: str
) -> pa.Table:
    table_source = table_source.check_columns(list(columns), what=what)
    table = table_source.take(np.arange(table_source.count_rows()), list(columns))
    if table.num_rows == 0:
        raise DataError(f"{where} has no rows")
    return table
