"""Permutation SHAP: Shapley values as the average marginal contribution over orderings.

Strumbelj & Kononenko 2014. The game is the mean of one game per background row
(v(S) = 1/B sum_b f(x_S, z_b[~S])), and so are its Shapley values; every background row
walks orderings of its own, drawn independently, so the sampling errors of the B games
average out instead of being repeated B times by one shared ordering. Each ordering is
walked forwards and backwards (antithetic pairs, which cancel much of the variance); the
contributions telescope, so base + sum(phi) = f(x) holds exactly for any number of
orderings. Orderings come from the row's own random stream (seed, row position).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xaicli.methods.base import (
    Attributions,
    BoolArray,
    FloatArray,
    IntArray,
    PredictFn,
    evaluate_in_blocks,
    predict_rows,
    row_rng,
)
from xaicli.methods.registry import MethodSpec, register
from xaicli.methods.shap_common import (
    HybridFn,
    check_background,
    default_n_samples,
    reduce_over_coalitions,
    sampled_block,
)


def explain_permutation(
    predict: PredictFn,
    X: FloatArray,
    *,
    background: FloatArray,
    row_index: IntArray,
    seed: int = 0,
    n_samples: int | None = None,
    max_eval_rows: int = 200_000,
    hybrids: HybridFn | None = None,
) -> Attributions:
    """Permutation SHAP values (n_rows, n_outputs, M).

    n_samples: coalitions evaluated per row; each antithetic pair of orderings costs
    2 (M - 1), so ``max(1, n_samples // (2 (M - 1)))`` pairs are drawn.
    """
    check_background(X, background)
    n_rows, m = X.shape
    if m < 2:
        raise ValueError(f"permutation SHAP needs at least 2 features, got {m}")
    n_background = background.shape[0]
    budget = default_n_samples(m) if n_samples is None else int(n_samples)
    n_pairs = max(1, budget // (2 * (m - 1)))
    n_orders = 2 * n_pairs
    f_background = evaluate_in_blocks(predict, background, max_rows=max_eval_rows)  # (B, K)
    base = f_background.mean(axis=0)
    fx = predict_rows(predict, X, row_index)  # (n, K)
    prefix = np.arange(1, m)  # prefixes of size 1..M-1; sizes 0 and M are f(z_b) and f(x)

    def ranks_of(r: int) -> IntArray:
        """(P, B, M): position of each feature in each ordering of each background row;
        the reverse ordering of an antithetic pair has ranks M - 1 - rank."""
        rng = row_rng(seed, int(row_index[r]))
        forward = np.argsort(np.argsort(rng.random((n_pairs, n_background, m)), axis=2), axis=2)
        ranks = np.empty((n_orders, n_background, m), dtype=np.int64)
        ranks[0::2] = forward
        ranks[1::2] = m - 1 - forward
        return ranks

    blocks: dict[int, IntArray] = {}

    def masks_of(block: slice) -> BoolArray:
        ranks = np.stack([ranks_of(r) for r in range(block.start, block.stop)])
        blocks[block.start] = ranks
        # (g, P, M-1, B, M) -> one coalition slot per (ordering, prefix size)
        masks = ranks[:, :, None, :, :] < prefix[None, None, :, None, None]
        return masks.reshape(len(ranks), n_orders * (m - 1), n_background, m)

    def contributions(block: slice, v: FloatArray) -> FloatArray:
        ranks = blocks.pop(block.start)  # (g, P, B, M)
        g, n_out = v.shape[0], v.shape[-1]
        v = v.reshape(g, n_orders, m - 1, n_background, n_out)
        chain = np.concatenate(
            [
                np.broadcast_to(
                    f_background[None, None, None], (g, n_orders, 1, n_background, n_out)
                ),
                v,
                np.broadcast_to(
                    fx[block][:, None, None, None, :], (g, n_orders, 1, n_background, n_out)
                ),
            ],
            axis=2,
        )  # (g, P, M+1, B, K): value of each prefix size
        steps = np.diff(chain, axis=2)  # (g, P, M, B, K): step at each rank
        # feature i receives the step at its rank
        contrib = np.take_along_axis(steps, ranks.transpose(0, 1, 3, 2)[..., None], axis=2)
        return contrib.mean(axis=(1, 3)).transpose(0, 2, 1)  # (g, K, M)

    values = reduce_over_coalitions(
        predict,
        X,
        background,
        masks_of,
        n_orders * (m - 1),
        contributions,
        row_index=row_index,
        max_eval_rows=max_eval_rows,
        hybrids=hybrids,
    )
    return Attributions(
        values=values, base_values=np.broadcast_to(base, fx.shape).copy(), predictions=fx
    )


@dataclass(frozen=True)
class PermutationParams:
    n_samples: int | None = None  # None: default_n_samples(M)


register(
    MethodSpec(
        "shap", "permutation", PermutationParams, sampled_block(explain_permutation), aid="network"
    )
)
