"""The two ways ``xaicli.methods.ig`` integrates along the straight path from a baseline
to a row (see that module's docstring for the maths): ``path_ig``, telescoping path
differences split among the features, exact in completeness for any model; and
``smooth_ig``, Gauss-Legendre quadrature of central-difference gradients."""

from __future__ import annotations

import numpy as np

from xaicli.methods.base import (
    BoolArray,
    FloatArray,
    PredictFn,
    evaluate_in_blocks,
)
from xaicli.methods.saliency import central_difference_gradient


def path_ig(
    predict: PredictFn,
    x: FloatArray,
    x_base: FloatArray,
    f_x: FloatArray,
    f_base: FloatArray,
    categorical: BoolArray,
    steps: int,
    max_eval_rows: int,
) -> FloatArray:
    """Path-form IG of G (row, baseline) pairs.

    x, x_base (G, M), NaN/inf allowed; f_x, f_base (G, O) their outputs.
    Returns (G, M, O).
    """
    n_pairs, n_features = x.shape
    node = np.arange(steps + 1)
    # x' + a (x - x') leaves a non-moving feature bit-exactly at x'; the last
    # node is set to x itself so the segments telescope to f(x) exactly.
    with np.errstate(invalid="ignore"):  # NaN/inf entries are replaced just below
        path = x_base[:, None, :] + (node / steps)[None, :, None] * (x - x_base)[:, None, :]
    path[:, -1] = x
    codes = np.where((2 * node >= steps)[None, :, None], x[:, None, :], x_base[:, None, :])
    # Codes, and NaN/inf that cannot be interpolated, jump at mid-path. A numeric
    # column's jump segment is among its moving pairs anyway, so the points
    # evaluated do not depend on where the NaN are.
    jumps = categorical | ~np.isfinite(x) | ~np.isfinite(x_base)  # (G, M)
    path = np.where(jumps[:, None, :], codes, path)  # (G, K+1, M)
    start, end = path[:, :-1], path[:, 1:]  # (G, K, M) each

    # Moving (segment, feature) pairs: numeric ones everywhere, codes only in
    # the segment holding the jump, which ends at the first node with a >= 0.5.
    jump = (steps + 1) // 2 - 1
    moving = ~categorical[None, :] | (np.arange(steps) == jump)[:, None]  # (K, M)
    seg, feat = np.nonzero(moving)  # (A,) each
    n_moving, pair = seg.size, np.arange(seg.size)
    # Evaluated points, written in place: interior nodes, then "forward"
    # (p_k with feature i from p_{k+1}), then "backward" (p_{k+1} with i from p_k).
    points = np.empty((n_pairs, steps - 1 + 2 * n_moving, n_features))
    points[:, : steps - 1] = path[:, 1:-1]
    forward = points[:, steps - 1 : steps - 1 + n_moving]  # (G, A, M) views
    backward = points[:, steps - 1 + n_moving :]
    forward[...] = start[:, seg]
    forward[:, pair, feat] = end[:, seg, feat]
    backward[...] = end[:, seg]
    backward[:, pair, feat] = start[:, seg, feat]

    out = evaluate_in_blocks(predict, points.reshape(-1, n_features), max_rows=max_eval_rows)
    out = out.reshape(n_pairs, points.shape[1], -1)
    f_path = np.concatenate([f_base[:, None], out[:, : steps - 1], f_x[:, None]], axis=1)
    f_forward = out[:, steps - 1 : steps - 1 + n_moving]  # (G, A, O)
    f_backward = out[:, steps - 1 + n_moving :]  # (G, A, O)

    n_outputs = f_path.shape[2]
    phi = np.zeros((n_pairs, steps, n_features, n_outputs))
    phi[:, seg, feat] = 0.5 * ((f_forward - f_path[:, seg]) + (f_path[:, seg + 1] - f_backward))
    moved = np.zeros((n_pairs, steps, n_features), dtype=bool)
    moved[:, seg, feat] = _differs(start[:, seg, feat], end[:, seg, feat])
    change = f_path[:, 1:] - f_path[:, :-1]  # (G, K, O)
    return _split_change(change, phi, moved).sum(axis=1)


def smooth_ig(
    predict: PredictFn,
    x: FloatArray,
    x_base: FloatArray,
    n_outputs: int,
    categorical: BoolArray,
    steps: int,
    step_sizes: FloatArray,
    max_eval_rows: int,
) -> FloatArray:
    """Quadrature-form IG of G (row, baseline) pairs; x, x_base (G, M) -> (G, M, O)."""
    n_pairs, n_features = x.shape
    numeric = np.flatnonzero(~categorical)
    cats = np.flatnonzero(categorical)
    delta = x - x_base  # (G, M); NaN-free on numeric columns
    attr = np.zeros((n_pairs, n_features, n_outputs))

    if numeric.size:
        t, w = _quadrature(steps, split=cats.size > 0)
        points = x_base[:, None, :] + t[None, :, None] * delta[:, None, :]  # (G, K, M)
        codes = np.where((t >= 0.5)[None, :, None], x[:, None, :], x_base[:, None, :])
        points = np.where(categorical, codes, points)
        grad = central_difference_gradient(
            predict,
            points.reshape(-1, n_features),
            step=step_sizes,
            features=numeric,
            max_eval_rows=max_eval_rows,
        ).reshape(n_pairs, t.size, numeric.size, n_outputs)
        attr[:, numeric] = np.einsum("k,gkfo->gfo", w, grad) * delta[:, numeric, None]

    if cats.size:
        # The jump at a = 0.5, split among the codes by the path-form rule.
        middle = x_base + 0.5 * delta
        before = np.where(categorical, x_base, middle)  # (G, M)
        after = np.where(categorical, x, middle)
        pair = np.arange(cats.size)
        forward = np.repeat(before[:, None, :], cats.size, axis=1)  # (G, C, M)
        forward[:, pair, cats] = x[:, cats]
        backward = np.repeat(after[:, None, :], cats.size, axis=1)
        backward[:, pair, cats] = x_base[:, cats]
        points = np.concatenate([before[:, None], after[:, None], forward, backward], axis=1)
        out = evaluate_in_blocks(predict, points.reshape(-1, n_features), max_rows=max_eval_rows)
        out = out.reshape(n_pairs, 2 + 2 * cats.size, n_outputs)
        f_before, f_after = out[:, 0], out[:, 1]  # (G, O)
        f_forward, f_backward = out[:, 2 : 2 + cats.size], out[:, 2 + cats.size :]
        phi = 0.5 * ((f_forward - f_before[:, None]) + (f_after[:, None] - f_backward))
        moved = _differs(x_base[:, cats], x[:, cats])
        attr[:, cats] = _split_change(f_after - f_before, phi, moved)
    return attr


def _quadrature(steps: int, *, split: bool) -> tuple[FloatArray, FloatArray]:
    """Gauss-Legendre nodes and weights on [0, 1], each (n_nodes,).

    With ``split`` the integrand jumps at a = 0.5 (the codes switch), where a
    single rule would converge slowly; then ceil(steps / 2) nodes go on each
    half, none at 0.5 itself.
    """
    if not split:
        t, w = np.polynomial.legendre.leggauss(steps)
        return (t + 1) / 2, w / 2
    t, w = np.polynomial.legendre.leggauss((steps + 1) // 2)
    t, w = (t + 1) / 4, w / 4  # on [0, 0.5]
    return np.concatenate([t, t + 0.5]), np.concatenate([w, w])


def _split_change(change: FloatArray, phi: FloatArray, moved: BoolArray) -> FloatArray:
    """Correct ``phi`` so that it sums over features to ``change`` exactly.

    change (..., O) total output change; phi (..., M, O) symmetric one-at-a-time
    estimates; moved (..., M) which features moved. Returns (..., M, O).
    The residual goes in proportion to |phi| (see the module docstring), or
    equally among the moving features when every phi is 0.
    """
    residual = change - phi.sum(axis=-2)  # (..., O)
    weight = np.abs(phi)
    total = weight.sum(axis=-2, keepdims=True)  # (..., 1, O)
    movers = moved[..., None].astype(np.float64)  # (..., M, 1)
    n_movers = movers.sum(axis=-2, keepdims=True)
    # Nothing moved at all only if the model is not deterministic; spreading
    # over every feature still keeps the sum exact.
    equal = np.where(n_movers > 0, movers / np.maximum(n_movers, 1.0), 1.0 / phi.shape[-2])
    weight = np.where(total > 0, weight / np.where(total > 0, total, 1.0), equal)
    return phi + weight * residual[..., None, :]


def _differs(a: FloatArray, b: FloatArray) -> BoolArray:
    """Elementwise a != b, treating two NaN (missing codes) as equal."""
    return (a != b) & ~(np.isnan(a) & np.isnan(b))


#: ``--baseline`` keywords; any other value is the path of a table of baselines.
