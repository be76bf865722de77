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

from xaicli.methods.base import Attributions, FloatArray, PredictFn, evaluate_in_blocks
from xaicli.methods.shap_common import check_background


def _column_effects(
    predict: PredictFn, rows: FloatArray, reference: FloatArray, f_reference: FloatArray, max_eval_rows: int
) -> FloatArray:
    """(n_rows, n_outputs, M): f(reference with column j from the row) - f(reference)."""
    n_rows, m = rows.shape
    hybrid = np.broadcast_to(reference, (n_rows, m, m)).copy()  # (n, j, M)
    idx = np.arange(m)
    hybrid[:, idx, idx] = rows  # row r, variant j: column j taken from the row
    y = evaluate_in_blocks(predict, hybrid.reshape(-1, m), max_rows=max_eval_rows)
    return (y.reshape(n_rows, m, -1) - f_reference).transpose(0, 2, 1)


def explain_linear(
    predict: PredictFn,
    X: FloatArray,
    *,
    background: FloatArray,
    max_eval_rows: int = 200_000,
) -> Attributions:
    """Exact SHAP values (n_rows, n_outputs, M) of an additive model."""
    check_background(X, background)
    reference = background[0]
    f_reference = np.asarray(predict(reference[None, :]), dtype=np.float64)[0]  # (K,)
    mean_effect = _column_effects(predict, background, reference, f_reference, max_eval_rows).mean(axis=0)
    f_background = evaluate_in_blocks(predict, background, max_rows=max_eval_rows)
    base = f_background.mean(axis=0)
    values = _column_effects(predict, X, reference, f_reference, max_eval_rows) - mean_effect[None]
    fx = np.asarray(predict(X), dtype=np.float64)
    return Attributions(
        values=values, base_values=np.broadcast_to(base, fx.shape).copy(), predictions=fx
    )
