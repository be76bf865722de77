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

from xaicli.models.boosters import (
    booster_family,
    booster_predict,
    is_bare_booster,
    margin,
    training_categories,
)
from xaicli.models.structure import final_estimator, is_pipeline, per_column_steps
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
    # --interactions: xaicli.methods.shap_tree_interactions.InteractionTables, and the
    # features (indices among the explained ones) whose pairs the table holds
    interactions: Any = None
    interaction_features: np.ndarray | None = None


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


def with_interactions(
    inputs: TreeInputs,
    weights: np.ndarray | None,
    n_rows: int,
    *,
    outputs: tuple[int, ...],
    n_features: int,
    top: int | None,
) -> TreeInputs:
    """``inputs`` (with its tables) with the interaction tables, built once per run, and
    the features of the interaction table: the ``top`` of largest mean |attribution| of
    the explained ``outputs`` over the background rows (all when None)."""
    from dataclasses import replace

    from xaicli.methods.shap_tree_interactions import prepare_interactions, top_players

    interactions = prepare_interactions(
        inputs.ensemble,
        inputs.background,
        groups=inputs.groups,
        weights=weights,
        n_rows=n_rows,
        shap_tables=inputs.tables,
    )
    kept = top_players(
        inputs.ensemble,
        inputs.background,
        inputs.tables,
        groups=inputs.groups,
        outputs=outputs,
        n_players=n_features,
        top=top,
    )
    return replace(inputs, interactions=interactions, interaction_features=kept)


def tree_rows(model: Any, frame: Any) -> np.ndarray:
    """The trees' input for model-facing rows (a DataFrame or array)."""
    if not is_pipeline(model):
        return _model_rows(model, frame)
    return _dense(model[:-1].transform(frame))


def reads_categories(model: Any) -> bool:
    """Whether the model itself takes categorical columns (scikit-learn's
    HistGradientBoosting with categorical features; XGBoost and LightGBM models fitted on
    pandas ``category`` columns), so that its trees split on category codes."""
    return getattr(model, "_preprocessor", None) is not None or bool(training_categories(model))


def _model_rows(model: Any, frame: Any) -> np.ndarray:
    """A bare model's trees' input: HistGradientBoosting's own preprocessing (categories as
    ordinal codes, those columns first), or ``category`` columns as their codes (the
    position in the model's training categories, which the model-facing frame carries;
    NaN for missing and unseen values), as XGBoost and LightGBM read them."""
    preprocessor = getattr(model, "_preprocessor", None)
    if preprocessor is not None:
        return _dense(preprocessor.transform(frame))
    if isinstance(frame, pd.DataFrame):
        return np.column_stack([_codes_or_values(frame[name]) for name in frame.columns])
    return np.asarray(frame, dtype=np.float64)


def _codes_or_values(column: pd.Series) -> np.ndarray:
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        return np.where(codes < 0, np.nan, codes.astype(np.float64))
    return column.to_numpy(dtype=np.float64)


def _internal_columns(model: Any, columns: list[Any]) -> list[Any]:
    """The input column each column of the trees' input comes from."""
    if getattr(model, "_preprocessor", None) is None:
        return columns
    categorical = np.asarray(model.is_categorical_, dtype=bool)
    order = np.concatenate([np.flatnonzero(categorical), np.flatnonzero(~categorical)])
    return [columns[i] for i in order]


#: Background rows on which the trees read from a booster are checked against its output.
REPRODUCE_ROWS = 1000


def _check_reproduces(model: Any, output_kind: str, ensemble: TreeEnsemble, frame: Any) -> None:
    """For XGBoost and LightGBM, whose trees are parsed from their own model formats:
    the parsed trees must give the model's own output on the background (to float32
    precision: XGBoost computes in float32), else refuse rather than explain other trees.
    The first ``REPRODUCE_ROWS`` background rows (a seeded sample) are enough to tell a
    misread tree, and keep the run's cost flat in the background's size."""
    final = final_estimator(model)
    if booster_family(final) is None:
        return
    frame = frame.iloc[:REPRODUCE_ROWS] if hasattr(frame, "iloc") else frame[:REPRODUCE_ROWS]
    data = model[:-1].transform(frame) if is_pipeline(model) else frame
    if output_kind == "decision":
        expected = margin(final, data)
    elif is_bare_booster(final):
        expected = booster_predict(final, data)
    else:
        expected = final.predict(data)
    expected = np.asarray(expected, dtype=np.float64).reshape(len(frame), -1)
    got = ensemble.predict(tree_rows(model, frame))
    if got.shape != expected.shape:
        raise TreeModelNotSupported(
            f"the trees read from the model give {got.shape[1]} output column(s), the model "
            f"{expected.shape[1]}; this model is not supported by the tree engine"
        )
    difference = np.abs(got - expected)
    # float32 sums of many leaves: relative to the outputs' scale, not each output
    if not (difference <= 1e-5 * (1.0 + np.abs(expected).max(axis=0))).all():
        raise TreeModelNotSupported(
            "the trees read from the model do not reproduce its output on the background "
            f"(difference up to {difference.max():.3g}); this model is not supported by "
            "the tree engine"
        )


def tree_inputs(
    model: Any, output_kind: str, background_frame: Any, features: tuple[str, ...]
) -> TreeInputs:
    """Raise TreeModelNotSupported with the reason when TreeSHAP cannot run exactly."""
    if not is_pipeline(model):
        ensemble = extract_tree_ensemble(model, output_kind)
        columns = _internal_columns(model, list(getattr(background_frame, "columns", features)))
        groups = (
            None if columns == list(features) else np.array([features.index(c) for c in columns])
        )
        _check_reproduces(model, output_kind, ensemble, background_frame)
        return TreeInputs(ensemble, groups, tree_rows(model, background_frame))
    if not per_column_steps(model):
        raise TreeModelNotSupported(
            "the Pipeline's preprocessing mixes columns, so its trees' inputs are not per input column"
        )
    if reads_categories(model.steps[-1][1]):
        raise TreeModelNotSupported(
            "a Pipeline whose final model reads categorical columns itself is not supported"
        )
    ensemble = extract_tree_ensemble(model.steps[-1][1], output_kind)
    background = tree_rows(model, background_frame)
    groups = _groups(model[:-1], pd.DataFrame(background_frame), features, background)
    _check_reproduces(model, output_kind, ensemble, background_frame)
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
