"""The interventional SHAP game shared by the model-agnostic SHAP algorithms.

For a row x and background rows z_1..z_B the value of a coalition S of features is
``v(S) = 1/B * sum_b f(x_S, z_b[~S])``: features in S come from x, the others from the
background row (the interventional, or marginal, expectation of Janzing et al. 2020).
"""

from __future__ import annotations

import numpy as np

from xaicli.methods.base import (
    BoolArray,
    FloatArray,
    IntArray,
    PredictFn,
    evaluate_in_blocks,
    row_blocks,
)


def coalition_values(
    predict: PredictFn,
    X: FloatArray,
    background: FloatArray,
    masks: BoolArray,
    *,
    row_index: IntArray,
    max_eval_rows: int = 200_000,
) -> FloatArray:
    """Values v(S) of coalitions for each row.

    Parameters
    ----------
    X : (n_rows, n_features) rows to explain.
    background : (n_background, n_features) reference rows.
    masks : (n_coalitions, n_features) shared by all rows, or
        (n_rows, n_coalitions, n_features) one set per row; True = take x's value.
    row_index : (n_rows,) global row positions; they fix how rows are batched.

    Returns
    -------
    (n_rows, n_coalitions, n_outputs) the background mean of the model output.
    """
    n_features = X.shape[1]
    n_background = background.shape[0]
    shared = masks.ndim == 2
    n_coalitions = masks.shape[-2]
    blocks = []
    for block in row_blocks(row_index, n_coalitions * n_background, max_eval_rows):
        x = X[block]  # (g, M)
        m = masks[None] if shared else masks[block]  # (g|1, C, M)
        hybrid = np.where(
            m[:, :, None, :], x[:, None, None, :], background[None, None, :, :]
        )  # (g, C, B, M)
        y = evaluate_in_blocks(predict, hybrid.reshape(-1, n_features), max_rows=max_eval_rows)
        blocks.append(y.reshape(x.shape[0], n_coalitions, n_background, -1).mean(axis=2))
    return np.concatenate(blocks, axis=0)


def background_mean(
    predict: PredictFn, background: FloatArray, *, max_eval_rows: int = 200_000
) -> FloatArray:
    """E[f(background)], shape (n_outputs,): the base value of every SHAP algorithm."""
    return evaluate_in_blocks(predict, background, max_rows=max_eval_rows).mean(axis=0)


def check_background(X: FloatArray, background: FloatArray) -> None:
    if X.ndim != 2 or background.ndim != 2 or X.shape[1] != background.shape[1]:
        raise ValueError(
            f"X {X.shape} and background {background.shape} must be 2-D with the same columns"
        )
    if background.shape[0] == 0:
        raise ValueError("background must have at least one row")
