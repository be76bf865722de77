"""Closed-form interventional SHAP for models additive in their input columns.

If f(x) = c + sum_j g_j(x_j) (linear and generalised-additive models, including
pipelines whose preprocessing acts column by column: scaling, one-hot encoding,
imputation, followed by a linear model's predict or decision function), then the
interventional Shapley value is phi_j = g_j(x_j) - E_b[g_j(b_j)] (for a linear model:
coef_j * (x_j - mean(background_j))). Each g_j is read off the model itself with one
reference row r: g_j(t) - g_j(r_j) = f(r with column j set to t) - f(r). This costs
M + 1 model calls per row, whatever the preprocessing, and is exact only when f is
additive; callers must establish that (see ``xaicli.models.structure``).
"""

from __future__ import annotations

import numpy as np

from xaicli.methods.base import (
    Attributions,
    FloatArray,
    IntArray,
    PredictFn,
    evaluate_in_blocks,
    predict_rows,
    row_blocks,
)
from xaicli.methods.registry import Block, MethodSpec, NoParams, register
from xaicli.methods.shap_common import check_background


def _column_effects(
    predict: PredictFn,
    rows: FloatArray,
    row_index: IntArray,
    reference: FloatArray,
    f_reference: FloatArray,
    max_eval_rows: int,
) -> FloatArray:
    """(n_rows, n_outputs, M): f(reference with column j from the row) - f(reference)."""
    m = rows.shape[1]
    idx = np.arange(m)
    parts = []
    for block in row_blocks(row_index, m, max_eval_rows):
        x = rows[block]
        hybrid = np.broadcast_to(reference, (x.shape[0], m, m)).copy()  # (g, j, M)
        hybrid[:, idx, idx] = x  # row r, variant j: column j taken from the row
        y = np.asarray(predict(hybrid.reshape(-1, m)), dtype=np.float64)
        parts.append((y.reshape(x.shape[0], m, -1) - f_reference).transpose(0, 2, 1))
    return np.concatenate(parts, axis=0)


def explain_linear(
    predict: PredictFn,
    X: FloatArray,
    *,
    background: FloatArray,
    row_index: IntArray,
    max_eval_rows: int = 200_000,
) -> Attributions:
    """Exact SHAP values (n_rows, n_outputs, M) of an additive model."""
    check_background(X, background)
    reference = background[0]
    f_reference = np.asarray(predict(reference[None, :]), dtype=np.float64)[0]  # (K,)
    background_index = np.arange(background.shape[0])
    mean_effect = _column_effects(
        predict, background, background_index, reference, f_reference, max_eval_rows
    ).mean(axis=0)
    f_background = evaluate_in_blocks(predict, background, max_rows=max_eval_rows)
    base = f_background.mean(axis=0)
    effects = _column_effects(predict, X, row_index, reference, f_reference, max_eval_rows)
    values = effects - mean_effect[None]
    fx = predict_rows(predict, X, row_index)
    return Attributions(
        values=values, base_values=np.broadcast_to(base, fx.shape).copy(), predictions=fx
    )


def _compute(block: Block) -> Attributions:
    return explain_linear(
        block.predict,
        block.X,
        background=block.background,
        row_index=block.row_index,
        max_eval_rows=block.max_eval_rows,
    )


register(MethodSpec("shap", "linear", NoParams, _compute))
