"""Saliency: the local sensitivity of each output to each feature.

For a row ``x`` the saliency of feature ``i`` for output ``o`` is the absolute
partial derivative (Simonyan, Vedaldi & Zisserman 2014, "Deep Inside
Convolutional Networks"), scaled by the feature's spread so that features in
different units compare -- to first order, the output change of a one-spread
move::

    s_oi(x) = |df_o/dx_i (x)| * scale_i

The derivative comes from model outputs only, by central differences::

    df/dx_i ~ (f(x + h_i e_i) - f(x - h_i e_i)) / (2 h_i),   h_i = eps * scale_i

so any callable works, at 2 evaluations per numeric feature and row. With the
default ``eps=1e-3`` the truncation error is ~eps**2 / 6 ~ 2e-7 relative on
models that vary on the scale of a feature's spread, and float64 rounding
(~1e-16 / eps) is negligible.

Saliency is *not* additive: the values sum to nothing meaningful, so
``base_values`` are 0.0 and there is no completeness column. Categorical codes
have no derivative (moving a code by ``h`` is not a valid input), so their
saliency is 0; use IG or SHAP to attribute them. Likewise a missing or infinite
value (for a model that takes it, e.g. a Pipeline that imputes) has no
derivative: its saliency is 0, the row's other features as usual. On piecewise-constant models
(trees) the derivative is 0 almost everywhere and saliency says nothing.

``central_difference_gradient`` is shared with :mod:`xaicli.methods.ig`; the input
checks live in :mod:`xaicli.methods.checks`.
"""

from __future__ import annotations

import numpy as np

from xaicli.methods.base import (
    Attributions,
    BoolArray,
    FloatArray,
    IntArray,
    PredictFn,
    concat_attributions,
    evaluate_in_blocks,
    row_blocks,
)
from xaicli.methods.checks import (
    check_feature_arrays,
    check_max_eval_rows,
    evaluate_checked,
    feature_spread,
)
from xaicli.methods.registry import Block, MethodSpec, NoParams, RunInputs, Setup, register

__all__ = ["explain_saliency"]


def explain_saliency(
    predict: PredictFn,
    X: FloatArray,
    *,
    scale: FloatArray,
    categorical: BoolArray | None = None,
    eps: float = 1e-3,
    max_eval_rows: int = 200_000,
) -> Attributions:
    """Finite-difference saliency ``|df/dx_i| * scale_i`` of every row.

    Parameters
    ----------
    predict : callable
        ``predict(X) -> Y``, X (n, n_features), Y (n, n_outputs).
    X : ndarray of shape (n_rows, n_features)
        Rows to explain (categorical columns as float codes); a NaN or infinite
        entry gets saliency 0.
    scale : ndarray of shape (n_features,)
        Each feature's spread (e.g. the background std with zeros replaced by
        1); finite and > 0. Sizes the steps and the result.
    categorical : ndarray of bool, shape (n_features,), default None
        Categorical columns; their saliency is 0. None means all numeric.
    eps : float, default 1e-3
        Relative step: feature ``i`` moves by ``eps * scale[i]`` each way.
    max_eval_rows : int, default 200_000
        Most rows passed to ``predict`` (and held in memory) at once.

    Returns
    -------
    Attributions
        values (n_rows, n_outputs, n_features) >= 0; base_values 0.0 (not
        additive); predictions f(X); no extras.
    """
    X, scale, categorical = check_feature_arrays(X, scale, categorical)
    if not np.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps must be a finite number > 0; got {eps!r}.")
    check_max_eval_rows(max_eval_rows)

    predictions = evaluate_checked(predict, X, max_rows=max_eval_rows)
    n_rows, n_features = X.shape
    values = np.zeros((n_rows, predictions.shape[1], n_features))
    numeric = np.flatnonzero(~categorical)
    if n_rows and numeric.size:
        grad = central_difference_gradient(  # (n_rows, n_numeric, n_outputs)
            predict, X, step=eps * scale, features=numeric, max_eval_rows=max_eval_rows
        )
        # NaN +- h is NaN again: no derivative, and the quotient is NaN; report 0.
        grad[~np.isfinite(X[:, numeric])] = 0.0
        values[:, :, numeric] = np.abs(grad).transpose(0, 2, 1) * scale[numeric]
    return Attributions(
        values=values, base_values=np.zeros_like(predictions), predictions=predictions
    )


def central_difference_gradient(
    predict: PredictFn,
    points: FloatArray,
    *,
    step: FloatArray,
    features: IntArray,
    max_eval_rows: int,
) -> FloatArray:
    """Central-difference partial derivatives of ``predict`` at ``points``.

    Parameters
    ----------
    points : ndarray of shape (n_points, n_features)
    step : ndarray of shape (n_features,)
        Half-width ``h_i`` of the difference for each feature.
    features : ndarray of int, shape (n_selected,)
        Columns to differentiate (never categorical ones).
    max_eval_rows : int
        Most rows evaluated at once; points are processed in blocks.

    Returns
    -------
    ndarray of shape (n_points, n_selected, n_outputs)
    """
    n_points, n_features = points.shape
    n_selected = features.size
    pairs = np.arange(n_selected)
    rows_per_block = max(1, max_eval_rows // (2 * n_selected))
    blocks = []
    for start in range(0, n_points, rows_per_block):
        centre = points[start : start + rows_per_block]  # (b, M)
        plus = np.repeat(centre[:, None, :], n_selected, axis=1)  # (b, S, M)
        minus = plus.copy()
        plus[:, pairs, features] += step[features]
        minus[:, pairs, features] -= step[features]
        # Divide by the step actually taken after float rounding, not 2h: this
        # keeps the quotient exact (to rounding of f) on linear models.
        # A NaN or infinite coordinate gives a NaN quotient, for the caller to handle.
        with np.errstate(invalid="ignore"):
            taken = plus[:, pairs, features] - minus[:, pairs, features]  # (b, S)
        out = evaluate_in_blocks(
            predict, np.concatenate([plus, minus]).reshape(-1, n_features), max_rows=max_eval_rows
        ).reshape(2, centre.shape[0], n_selected, -1)
        with np.errstate(invalid="ignore"):
            blocks.append((out[0] - out[1]) / taken[:, :, None])
    return np.concatenate(blocks)


def _prepare(params: NoParams, inputs: RunInputs) -> Setup:
    return Setup(state=feature_spread(inputs.background, inputs.categorical))


def _compute(block: Block) -> Attributions:
    # blocks aligned to row positions: the model sees the same batches whatever the chunking
    blocks = row_blocks(block.row_index, 2 * block.X.shape[1], block.max_eval_rows)
    return concat_attributions(
        [
            explain_saliency(
                block.predict,
                block.X[b],
                scale=block.state,
                categorical=block.categorical,
                max_eval_rows=block.max_eval_rows,
            )
            for b in blocks
        ]
    )


register(MethodSpec("saliency", "", NoParams, _compute, _prepare))
