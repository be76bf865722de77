"""Exact interventional Shapley values by enumerating all 2^M coalitions.

phi_i = sum_{S subset N minus i} |S|! (M-|S|-1)! / M! * (v(S + i) - v(S))   (Shapley, 1953)

Costs 2^M * n_background model evaluations per row; the reference every other SHAP
algorithm is tested against, and the fastest exact choice for small M.
"""

from __future__ import annotations

from functools import lru_cache
from math import factorial

import numpy as np

from xaicli.methods.base import Attributions, FloatArray, IntArray, PredictFn
from xaicli.methods.registry import Block, MethodSpec, NoParams, register
from xaicli.methods.shap_common import HybridFn, check_background, coalition_values

MAX_FEATURES = 16  # 65,536 coalitions per row: beyond this enumeration is never sensible


@lru_cache(maxsize=8)
def all_coalitions(n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """masks (2^M, M) of every coalition and the Shapley weight matrix (M, 2^M)
    such that ``phi = weights @ v``."""
    codes = np.arange(2**n_features)
    masks = ((codes[:, None] >> np.arange(n_features)) & 1).astype(bool)
    sizes = masks.sum(axis=1)
    w = np.array(
        [
            factorial(s) * factorial(n_features - s - 1) / factorial(n_features)
            for s in range(n_features)
        ]
        + [0.0]
    )
    # i in S: S = T + i with |T| = |S|-1 contributes +w(|S|-1); i not in S: -w(|S|)
    weights = np.where(masks.T, w[np.maximum(sizes - 1, 0)][None, :], -w[sizes][None, :])
    return masks, weights


def explain_exact(
    predict: PredictFn,
    X: FloatArray,
    *,
    background: FloatArray,
    row_index: IntArray,
    max_eval_rows: int = 200_000,
    hybrids: HybridFn | None = None,
) -> Attributions:
    """Exact interventional SHAP values of ``predict`` for the rows X (n_rows, M)."""
    check_background(X, background)
    n_features = X.shape[1]
    if n_features > MAX_FEATURES:
        raise ValueError(
            f"exact enumeration needs 2^{n_features} coalitions per row; "
            f"use it for at most {MAX_FEATURES} features"
        )
    masks, weights = all_coalitions(n_features)
    v = coalition_values(
        predict,
        X,
        background,
        masks,
        row_index=row_index,
        max_eval_rows=max_eval_rows,
        hybrids=hybrids,
    )  # (n, 2^M, K)
    values = np.einsum("mc,nck->nkm", weights, v)
    return Attributions(
        values=values, base_values=v[:, 0, :].copy(), predictions=v[:, -1, :].copy()
    )


def _compute(block: Block) -> Attributions:
    return explain_exact(
        block.predict,
        block.X,
        background=block.background,
        row_index=block.row_index,
        max_eval_rows=block.max_eval_rows,
        hybrids=block.aid,
    )


register(MethodSpec("shap", "exact", NoParams, _compute, aid="network"))
