"""Permutation SHAP: Shapley values as the average marginal contribution over orderings.

Strumbelj & Kononenko 2014. Each sampled ordering is walked forwards and backwards
(antithetic pairs, which cancel much of the variance); the per-ordering contributions
telescope, so base + sum(phi) = f(x) holds exactly for any number of orderings. Orderings
come from the row's own random stream (seed, row position).
"""

from __future__ import annotations

import numpy as np

from xaicli.methods.base import Attributions, FloatArray, IntArray, PredictFn, predict_rows, row_rng
from xaicli.methods.shap_common import background_mean, check_background, coalition_values


def default_n_samples(n_features: int) -> int:
    return 2 * n_features + 2048


def explain_permutation(
    predict: PredictFn,
    X: FloatArray,
    *,
    background: FloatArray,
    row_index: IntArray,
    seed: int = 0,
    n_samples: int | None = None,
    max_eval_rows: int = 200_000,
) -> Attributions:
    """Permutation SHAP values (n_rows, n_outputs, M).

    n_samples: coalitions evaluated per row; each antithetic pair of orderings costs
    2 (M - 1), so ``max(1, n_samples // (2 (M - 1)))`` pairs are drawn.
    """
    check_background(X, background)
    n_rows, m = X.shape
    if m < 2:
        raise ValueError(f"permutation SHAP needs at least 2 features, got {m}")
    budget = default_n_samples(m) if n_samples is None else int(n_samples)
    n_pairs = max(1, budget // (2 * (m - 1)))
    # ranks[r, p, i] = position of feature i in ordering p of row r; the reverse ordering
    # of an antithetic pair has ranks m - 1 - rank.
    ranks = np.empty((n_rows, 2 * n_pairs, m), dtype=np.int64)
    for r in range(n_rows):
        rng = row_rng(seed, int(row_index[r]))
        orders = np.argsort(rng.random((n_pairs, m)), axis=1)
        forward = np.argsort(orders, axis=1)
        ranks[r, 0::2] = forward
        ranks[r, 1::2] = m - 1 - forward
    prefix = np.arange(1, m)  # prefixes of size 1..M-1; sizes 0 and M are v0 and f(x)
    masks = ranks[:, :, None, :] < prefix[None, None, :, None]  # (n, P, M-1, M)
    base = background_mean(predict, background, max_eval_rows=max_eval_rows)
    fx = predict_rows(predict, X, row_index)
    v = coalition_values(
        predict,
        X,
        background,
        masks.reshape(n_rows, -1, m),
        row_index=row_index,
        max_eval_rows=max_eval_rows,
    ).reshape(n_rows, 2 * n_pairs, m - 1, -1)  # (n, P, M-1, K)
    n_out = fx.shape[1]
    chain = np.concatenate(
        [
            np.broadcast_to(base, (n_rows, 2 * n_pairs, 1, n_out)),
            v,
            np.broadcast_to(fx[:, None, None, :], (n_rows, 2 * n_pairs, 1, n_out)),
        ],
        axis=2,
    )  # (n, P, M+1, K): value of each prefix size
    steps = np.diff(chain, axis=2)  # (n, P, M, K): contribution of the feature at each rank
    # the feature with rank k receives step k
    contrib = np.take_along_axis(steps, ranks[..., None], axis=2)  # (n, P, M, K)
    values = contrib.mean(axis=1).transpose(0, 2, 1)  # (n, K, M)
    return Attributions(
        values=values, base_values=np.broadcast_to(base, fx.shape).copy(), predictions=fx
    )
