"""Shape attributions into the output table: the stable interface documented in the README.

wide: id columns (or ``row``), ``output``, ``base_value``, ``prediction``, method extras
      (e.g. ``completeness_error``), ``converged`` (with a target error), the reason columns
      when asked for (``reason_1``, ..., ``summary``), then one column per feature named as
      the feature, then (``--errors``) one ``<feature>_se`` column per feature with its
      standard error.
long: id columns (or ``row``), ``output``, ``feature``, ``attribution``, ``rank``, then
      ``se`` (``--errors``) and ``converged`` (with a target error).
interactions (``--interactions``): id columns (or ``row``), ``output``, ``feature_i``,
      ``feature_j``, ``interaction``: every ordered pair of the table's features, the
      diagonal included (shap's matrix, whose rows sum to the attributions).
One row per input row and explained output (long: and feature; interactions: and pair of
features), in input order.

Version 3 added the interaction table (and the metadata keys ``table`` and
``interaction_features``); the attribution tables are as in version 2.
Version 2 added the reason columns, and the standard error and ``converged`` columns; they
are written only when the run asked for them (or, ``converged``, sampled to its default
target), so a version-1 reader still reads every other column as before.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from xaicli.errors import UsageError
from xaicli.methods.base import Attributions

ROW = "row"
#: Version of the table format (columns, their order and meaning, the metadata keys);
#: raised whenever any of them changes, and recorded in the metadata and the manifest.
#: 2: the optional reason columns of the wide layout, the standard error and ``converged``
#: columns (a table without them is as in 1). 3: the interaction table.
FORMAT_VERSION = 3
FIXED_WIDE = ("output", "base_value", "prediction")
FIXED_LONG = ("output", "feature", "attribution", "rank")
#: The layout name and columns of the interaction table (``--interactions``).
INTERACTIONS = "interactions"
FIXED_INTERACTIONS = ("output", "feature_i", "feature_j", "interaction")
SE_SUFFIX = "_se"  # wide: the standard error of feature f is in column f + SE_SUFFIX
SE_LONG = "se"
CONVERGED = "converged"
_REASON_COLUMN = re.compile(r"reason_[1-9][0-9]*(_code|_text|_value|_attribution)?")
#: The sentence column added with the reasons.
SUMMARY = "summary"


def se_column(feature: str) -> str:
    return feature + SE_SUFFIX


def is_reason_column(name: str) -> bool:
    """``reason_k``, ``reason_k_code``, ``reason_k_text``, ``reason_k_value``,
    ``reason_k_attribution`` or ``summary``: the columns reason codes add."""
    return name == SUMMARY or _REASON_COLUMN.fullmatch(name) is not None


def reason_columns_in(columns: Sequence[str], features: Sequence[str] = ()) -> tuple[str, ...]:
    """The reason columns of a wide table's ``columns``: none unless it has ``reason_1``;
    a column named as a feature is the feature."""
    if "reason_1" not in columns:
        return ()
    return tuple(c for c in columns if is_reason_column(c) and c not in features)


def with_reason_columns(table: pa.Table, reasons: pa.Table, n_after: int) -> pa.Table:
    """``table`` (wide) with the reason columns inserted before its last ``n_after`` columns
    (the features' attributions, and their standard errors when written)."""
    position = table.num_columns - n_after
    for offset, field in enumerate(reasons.schema):
        table = table.add_column(position + offset, field, reasons.column(field.name))
    return table


def known_extras() -> tuple[str, ...]:
    """The method extras a wide table may hold after ``prediction``: those the methods'
    registry entries declare."""
    from xaicli.methods.registry import all_extras  # imports every method: only when asked

    return all_extras()


def check_names(
    features: Sequence[str],
    id_cols: Sequence[str],
    extras: Sequence[str],
    layout: str,
    *,
    errors: bool = False,
    converged: bool = False,
) -> None:
    """Refuse tables whose column names would collide. errors, converged: the standard
    error columns and ``converged`` are written."""
    keys = list(id_cols) or [ROW]
    if layout == "wide":
        taken = keys + list(FIXED_WIDE) + list(extras) + ([CONVERGED] if converged else [])
        if errors:
            taken += [se_column(f) for f in features]
        clash = sorted(set(taken) & set(features)) or sorted(
            {c for c in taken if taken.count(c) > 1}
        )
        if clash:
            raise UsageError(
                f"column name {clash[0]!r} is both a feature and an output column; "
                "rename it or use --layout long"
            )
    elif layout == INTERACTIONS:
        clash = sorted(set(keys) & set(FIXED_INTERACTIONS))
        if clash:
            raise UsageError(
                f"id column {clash[0]!r} clashes with an output column of --interactions"
            )
    else:
        fixed = set(FIXED_LONG) | ({SE_LONG} if errors else set())
        fixed |= {CONVERGED} if converged else set()
        clash = sorted(set(keys) & fixed)
        if clash:
            raise UsageError(
                f"id column {clash[0]!r} clashes with an output column of --layout long"
            )


def attribution_table(
    result: Attributions,
    keys: pa.Table,
    output_names: Sequence[str],
    features: Sequence[str],
    layout: str,
) -> pa.Table:
    """Arrow table for one chunk. keys: the id columns (or ``row``) of the chunk's rows."""
    if layout == INTERACTIONS:
        return interaction_table(result, keys, output_names, features)
    n_rows, n_outputs, n_features = result.values.shape
    if layout == "wide":
        take = pa.array(np.repeat(np.arange(n_rows), n_outputs))
        columns = {name: keys.column(name).take(take) for name in keys.column_names}
        columns["output"] = pa.array(
            np.tile(np.asarray(output_names, dtype=object), n_rows), pa.string()
        )
        columns["base_value"] = pa.array(result.base_values.reshape(-1), pa.float64())
        columns["prediction"] = pa.array(result.predictions.reshape(-1), pa.float64())
        for name, extra in result.extras.items():
            columns[name] = pa.array(np.asarray(extra, dtype=np.float64).reshape(-1), pa.float64())
        if result.converged is not None:
            columns[CONVERGED] = pa.array(np.repeat(result.converged, n_outputs), pa.bool_())
        flat = result.values.reshape(n_rows * n_outputs, n_features)
        for j, feature in enumerate(features):
            columns[feature] = pa.array(flat[:, j], pa.float64())
        if result.standard_errors is not None:
            se = result.standard_errors.reshape(n_rows * n_outputs, n_features)
            for j, feature in enumerate(features):
                columns[se_column(feature)] = pa.array(se[:, j], pa.float64())
        return pa.table(columns)
    per_row = n_outputs * n_features
    take = pa.array(np.repeat(np.arange(n_rows), per_row))
    columns = {name: keys.column(name).take(take) for name in keys.column_names}
    columns["output"] = pa.array(
        np.tile(np.repeat(np.asarray(output_names, dtype=object), n_features), n_rows), pa.string()
    )
    columns["feature"] = pa.array(
        np.tile(np.asarray(features, dtype=object), n_rows * n_outputs), pa.string()
    )
    columns["attribution"] = pa.array(result.values.reshape(-1), pa.float64())
    columns["rank"] = pa.array(_ranks(result.values).reshape(-1), pa.int32())
    if result.standard_errors is not None:
        columns[SE_LONG] = pa.array(result.standard_errors.reshape(-1), pa.float64())
    if result.converged is not None:
        columns[CONVERGED] = pa.array(np.repeat(result.converged, per_row), pa.bool_())
    return pa.table(columns)


def interaction_table(
    result: Attributions, keys: pa.Table, output_names: Sequence[str], features: Sequence[str]
) -> pa.Table:
    """The interaction table of one chunk: ``result.values`` (n_rows, n_outputs, K, K) for
    the K ``features``, a row per (input row, output, feature_i, feature_j)."""
    n_rows, n_outputs, k, _ = result.values.shape
    take = pa.array(np.repeat(np.arange(n_rows), n_outputs * k * k))
    columns = {name: keys.column(name).take(take) for name in keys.column_names}
    names = np.asarray(features, dtype=object)
    columns["output"] = pa.array(
        np.tile(np.repeat(np.asarray(output_names, dtype=object), k * k), n_rows), pa.string()
    )
    columns["feature_i"] = pa.array(np.tile(np.repeat(names, k), n_rows * n_outputs), pa.string())
    columns["feature_j"] = pa.array(np.tile(names, n_rows * n_outputs * k), pa.string())
    columns["interaction"] = pa.array(result.values.reshape(-1), pa.float64())
    return pa.table(columns)


def _ranks(values: np.ndarray) -> np.ndarray:
    """1 = largest |attribution| per row and output; ties broken by feature order."""
    order = np.argsort(-np.abs(values), axis=-1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, values.shape[-1] + 1)[None, None, :], axis=-1)
    return ranks
