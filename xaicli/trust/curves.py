"""Faithfulness by deletion and insertion curves (Petsiuk et al. 2018, "RISE"; Samek et al.
2017, "Evaluating the visualization of what a deep neural network has learned").

Features are switched between the row and the background in a given order (most important
first). A switched-off feature takes the background's values: with background rows
z_1..z_B, the value of the coalition S of features taken from the row is
v(S) = 1/B sum_b f(x_S, z_b,~S), the interventional game SHAP explains.

- deletion: c_k = v(all features but the first k of the order), from f(x) to v({});
- insertion: c_k = v(the first k features of the order), from v({}) to f(x).

Normalised, (c_k - v({})) / (f(x) - v({})), deletion falls from 1 to 0 and insertion
rises from 0 to 1; their areas over k/M in [0, 1] (trapezoids) are the scores, averaged over
rows with weights |f(x) - v({})| (:func:`mean_normalised_curve`). A faithful ranking gives a
small deletion area and a large insertion area, compared with a random order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["curve_area", "feature_curves", "mean_normalised_curve", "normalised_curves"]

#: (n, n_features) -> (n,): the explained output of the model on encoded rows.
OutputFn = Callable[[np.ndarray], np.ndarray]


def feature_curves(
    predict: OutputFn,
    X: np.ndarray,
    background: np.ndarray,
    orders: np.ndarray,
    *,
    insertion: bool,
    max_eval_rows: int = 200_000,
) -> np.ndarray:
    """Deletion (or insertion) curves of the rows X in the given orders.

    X: (n_rows, n_features); background: (n_background, n_features); orders: (n_rows,
    n_features), each row's features from most to least important. Returns
    (n_rows, n_features + 1): c_0 .. c_M. Costs (M + 1) * n_background model rows per row,
    sent to the model at most ``max_eval_rows`` at a time (whole rows per call).
    """
    n_rows, n_features = X.shape
    n_background = background.shape[0]
    per_row = (n_features + 1) * n_background
    rows_per_call = max(1, max_eval_rows // per_row)
    curves = np.empty((n_rows, n_features + 1))
    # steps[k, j]: feature j is among the first k of the order
    steps = np.arange(n_features + 1)[:, None] > np.arange(n_features)[None, :]
    for start in range(0, n_rows, rows_per_call):
        stop = min(start + rows_per_call, n_rows)
        # switched[r, k, f]: feature f of row r is switched at step k
        switched = np.zeros((stop - start, n_features + 1, n_features), dtype=bool)
        np.put_along_axis(
            switched,
            np.broadcast_to(orders[start:stop, None, :], switched.shape),
            np.broadcast_to(steps[None], switched.shape),
            axis=2,
        )
        from_row = switched if insertion else ~switched
        # (rows, steps, background, features)
        hybrids = np.where(
            from_row[:, :, None, :], X[start:stop, None, None, :], background[None, None, :, :]
        )
        outputs = np.asarray(predict(hybrids.reshape(-1, n_features)), dtype=np.float64)
        curves[start:stop] = outputs.reshape(stop - start, n_features + 1, n_background).mean(
            axis=2
        )
    return curves


def normalised_curves(
    curves: np.ndarray, *, insertion: bool, tolerance: float = 1e-9
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's curve scaled to run between 1 (the row's output) and 0 (the background's).

    curves: (n_rows, M + 1) from :func:`feature_curves`. Returns the scaled curves and a
    (n_rows,) mask of the rows kept: a row whose output is within ``tolerance`` (relative
    to the output's scale) of the background's has nothing to delete and is left out.
    """
    full, empty, gap = _ends(curves, insertion)
    scale = np.maximum(np.abs(full), np.abs(empty))
    kept = np.abs(gap) > tolerance * np.maximum(scale, 1.0)
    scaled = (curves - empty[:, None]) / np.where(kept, gap, 1.0)[:, None]
    return scaled[kept], kept


def mean_normalised_curve(curves: np.ndarray, *, insertion: bool) -> np.ndarray:
    """The rows' normalised curves averaged with weights |f(x) - v({})|: sum_r sign(g_r)
    (c_r - v_r({})) / sum_r |g_r|, with g_r = f(x_r) - v_r({}). (M + 1,), from 1 to 0
    (deletion) or 0 to 1 (insertion). Unweighted, a row whose output is close to the
    background's would divide by almost nothing and outweigh every other row; weighted, it
    counts as little as it moves.
    """
    _, empty, gap = _ends(curves, insertion)
    total = np.abs(gap).sum()
    if total == 0.0:
        return np.full(curves.shape[1], np.nan)
    return (np.sign(gap)[:, None] * (curves - empty[:, None])).sum(axis=0) / total


def _ends(curves: np.ndarray, insertion: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    full = curves[:, -1] if insertion else curves[:, 0]
    empty = curves[:, 0] if insertion else curves[:, -1]
    return full, empty, full - empty


def curve_area(curves: np.ndarray) -> np.ndarray:
    """Area under each curve over k/M in [0, 1] by trapezoids. curves: (..., M + 1)."""
    n_steps = curves.shape[-1] - 1
    if n_steps == 0:
        return np.zeros(curves.shape[:-1])
    return (curves[..., :-1] + curves[..., 1:]).sum(axis=-1) / (2.0 * n_steps)
