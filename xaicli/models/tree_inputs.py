"""What TreeSHAP walks: the trees' own input matrix, and which input column (player)
each of its columns comes from.

A bare ensemble sees the table's columns in its fitted order. A Pipeline whose steps
before the trees act column by column (scaling, imputation, one-hot or ordinal encoding)
sees transformed columns; each belongs to exactly one input column, so interventional
TreeSHAP over players (groups of internal columns) gives the Shapley values of the input
columns exactly: transforming a hybrid row equals mixing the transformed rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from xaicli.models.structure import is_pipeline, per_column_steps
from xaicli.models.trees import TreeEnsemble, TreeModelNotSupported, extract_tree_ensemble


@dataclass(frozen=True)
class TreeInputs:
    """What TreeSHAP needs from the model and the background, built once per run."""

    ensemble: TreeEnsemble
    groups: np.ndarray | None  # internal column -> index in the explained features
    background: np.ndarray  # (n_background, n_internal): the background in the trees' input
    # xaicli.methods.shap_tree_tables.TreeTables: each tree's engine, the tables, the
    # background's weights and the base value (see with_tables)
    tables: Any = None


def with_tables(inputs: TreeInputs, weights: np.ndarray | None, n_rows: int) -> TreeInputs:
    """``inputs`` with TreeSHAP's tables for about ``n_rows`` explained rows, built once
    per run. A bad ``XAI_TREE_TABLE_MB`` is a usage error."""
    from dataclasses import replace

    from xaicli.errors import UsageError
    from xaicli.methods.shap_tree import prepare_tables
    from xaicli.methods.shap_tree_tables import table_memory_cap

    try:
        cap = table_memory_cap()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    tables = prepare_tables(
        inputs.ensemble,
        inputs.background,
        groups=inputs.groups,
        weights=weights,
        n_rows=n_rows,
        max_table_mb=cap,
    )
    return replace(inputs, tables=tables)


def tree_rows(model: Any, frame: Any) -> np.ndarray:
    """The trees' input for model-facing rows (a DataFrame or array)."""
    if not is_pipeline(model):
        return np.asarray(frame, dtype=np.float64)
    return _dense(model[:-1].transform(frame))


def tree_inputs(
    model: Any, output_kind: str, background_frame: Any, features: tuple[str, ...]
) -> TreeInputs:
    """Raise TreeModelNotSupported with the reason when TreeSHAP cannot run exactly."""
    if not is_pipeline(model):
        ensemble = extract_tree_ensemble(model, output_kind)
        columns = list(getattr(background_frame, "columns", features))
        groups = (
            None if columns == list(features) else np.array([features.index(c) for c in columns])
        )
        return TreeInputs(ensemble, groups, tree_rows(model, background_frame))
    if not per_column_steps(model):
        raise TreeModelNotSupported(
            "the Pipeline's preprocessing mixes columns, so its trees' inputs are not per input column"
        )
    ensemble = extract_tree_ensemble(model.steps[-1][1], output_kind)
    background = tree_rows(model, background_frame)
    groups = _groups(model[:-1], pd.DataFrame(background_frame), features, background)
    return TreeInputs(ensemble, groups, background)


def _groups(
    preprocess: Any, frame: pd.DataFrame, features: tuple[str, ...], base: np.ndarray
) -> np.ndarray:
    """Which input column each transformed column depends on, found by changing one input
    column at a time (rolling its values over the background rows) and comparing with the
    transformed background ``base``."""
    groups = np.full(base.shape[1], -1)
    for name in frame.columns:
        changed_frame = frame.copy()
        changed_frame[name] = np.roll(frame[name].to_numpy(), 1)
        changed = ~_same(_dense(preprocess.transform(changed_frame)), base).all(axis=0)
        if (groups[changed] >= 0).any():
            raise TreeModelNotSupported("a transformed column depends on several input columns")
        groups[changed] = features.index(name)
    if (groups < 0).any():
        raise TreeModelNotSupported(
            "some transformed columns do not vary over the background, so their input column is unknown"
        )
    return groups


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a == b) | (np.isnan(a) & np.isnan(b))


def _dense(matrix: Any) -> np.ndarray:
    if hasattr(matrix, "toarray"):
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=np.float64)
