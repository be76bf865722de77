"""Kernel SHAP: Shapley values as a constrained weighted least-squares fit over coalitions.

Lundberg & Lee 2017, "A unified approach to interpreting model predictions":
minimise sum_S w(S) (v(S) - v(0) - sum_{i in S} phi_i)^2 subject to
sum_i phi_i = f(x) - v(0), with w(S) = (M-1) / (C(M,|S|) |S| (M-|S|)).

The fit is linear in the game, and the game is the mean of one game per background row
(v = 1/B sum_b v_b, v_b(S) = f(x_S, z_b[~S])), so phi = 1/B sum_b phi(v_b). Each
background row's game is fitted on its own coalitions: one seeded design, relabelled by
a seeded permutation of the features for each background row. The sampling errors of
the B fits are then independent and average out, where a single design shared by all
background rows repeats the same error B times: at equal model calls the error is 3-5
times smaller (benchmarks/results). Every relabelling is a function of the seed alone, so
the fit is one linear operator for every row, and a row's values do not depend on which
chunk or worker computed it.

Sizes whose coalitions all fit in the budget are enumerated (smallest and largest first,
they carry most kernel weight); the rest are sampled in complementary pairs. When
2^M - 2 coalitions fit in the budget every relabelling is the full design and the fit is
exact Shapley values.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np

from xaicli.methods.base import (
    Attributions,
    BoolArray,
    FloatArray,
    IntArray,
    PredictFn,
    evaluate_in_blocks,
    predict_rows,
)
from xaicli.methods.registry import MethodInputError, MethodSpec, RunInputs, Setup, register
from xaicli.methods.shap_common import (
    HybridFn,
    check_background,
    default_n_samples,
    reduce_over_coalitions,
    sampled_block,
)

DESIGN_STREAM = 0x4B53  # separates the design's random stream from the rows' streams


def kernel_design(n_features: int, n_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Coalitions (C, M) bool and their regression weights (C,), empty and full excluded."""
    masks, weights, _ = sampled_kernel_design(n_features, n_samples, seed)
    return masks, weights


def sampled_kernel_design(
    n_features: int, n_samples: int, seed: int
) -> tuple[np.ndarray, np.ndarray, IntArray]:
    """kernel_design, and its random draws (n_draws, 2): the positions in the coalitions of
    each drawn coalition and of its complement (no rows when every size is enumerated)."""
    m = n_features
    if m < 2:
        raise ValueError(f"Kernel SHAP needs at least 2 features, got {m}")
    if n_samples < 2 * m:
        raise ValueError(f"n_samples must be at least 2 * n_features = {2 * m}, got {n_samples}")
    sizes = np.arange(1, m)
    size_weight = (m - 1) / (sizes * (m - sizes))  # kernel mass of each size, before normalising
    size_weight /= size_weight.sum()
    masks: list[np.ndarray] = []
    weights: list[float] = []
    remaining_budget = n_samples
    remaining_weight = 1.0
    low, high = 1, m - 1
    # enumerate size pairs (s, M-s) from the outside in while their share of the budget covers them
    while low <= high:
        pair = [low] if low == high else [low, high]
        n_subsets = sum(comb(m, s) for s in pair)
        pair_weight = sum(size_weight[s - 1] for s in pair)
        if n_subsets > remaining_budget * pair_weight / remaining_weight + 1e-9:
            break
        for s in pair:
            for subset in _subsets_of_size(m, s):
                masks.append(subset)
                weights.append(size_weight[s - 1] / comb(m, s))
        remaining_budget -= n_subsets
        remaining_weight -= pair_weight
        low, high = low + 1, high - 1
    if low <= high and remaining_budget >= 2:
        rng = np.random.default_rng([int(seed), DESIGN_STREAM, m])
        free = np.arange(low, high + 1)
        p = size_weight[free - 1] / size_weight[free - 1].sum()
        counts: dict[bytes, list] = {}
        drawn: list[tuple[bytes, bytes]] = []
        for _ in range(remaining_budget // 2):
            s = rng.choice(free, p=p)
            mask = np.zeros(m, dtype=bool)
            mask[rng.choice(m, size=s, replace=False)] = True
            for member in (mask, ~mask):  # paired sampling: a coalition and its complement
                key = member.tobytes()
                if key in counts:
                    counts[key][1] += 1
                else:
                    counts[key] = [member, 1]
            drawn.append((mask.tobytes(), (~mask).tobytes()))
        total = sum(c for _, c in counts.values())
        position = {}
        for key, (member, c) in counts.items():
            position[key] = len(masks)
            masks.append(member)
            weights.append(remaining_weight * c / total)
        draws = np.array([(position[a], position[b]) for a, b in drawn], dtype=np.int64)
    else:
        draws = np.zeros((0, 2), dtype=np.int64)
    return np.array(masks, dtype=bool), np.array(weights, dtype=np.float64), draws.reshape(-1, 2)


def _subsets_of_size(m: int, s: int):
    from itertools import combinations

    for members in combinations(range(m), s):
        mask = np.zeros(m, dtype=bool)
        mask[list(members)] = True
        yield mask


def kernel_operator(masks: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P (M, C) and q (M,) with phi = P @ (v_S - v0) + q * (f(x) - v0): the constrained
    weighted least-squares solution, linear in the coalition values."""
    Z = masks.astype(np.float64)
    gram_inv = np.linalg.pinv(Z.T @ (weights[:, None] * Z))
    ones = np.ones(Z.shape[1])
    a = gram_inv @ ones
    q = a / (ones @ a)
    P = (np.eye(Z.shape[1]) - np.outer(q, ones)) @ gram_inv @ (Z.T * weights[None, :])
    return P, q


def background_relabelling(n_features: int, n_background: int, seed: int) -> IntArray:
    """(B, M): row b maps each feature to the design column it plays for background row b."""
    rng = np.random.default_rng([int(seed), DESIGN_STREAM, n_features, n_background])
    return np.argsort(rng.random((n_background, n_features)), axis=1)


def explain_kernel(
    predict: PredictFn,
    X: FloatArray,
    *,
    background: FloatArray,
    row_index: IntArray,
    seed: int = 0,
    n_samples: int | None = None,
    max_eval_rows: int = 200_000,
    hybrids: HybridFn | None = None,
    errors: bool = False,
) -> Attributions:
    """Kernel SHAP values (n_rows, n_outputs, M) of ``predict`` for the rows X (n_rows, M).

    n_samples: coalitions per row (default 2M + 2048, shap's default); each is evaluated
    on every background row, B model calls.
    errors: also estimate each value's standard error (``Attributions.standard_errors``):
    see :func:`sandwich_variance`.
    """
    check_background(X, background)
    n_features = X.shape[1]
    budget = default_n_samples(n_features) if n_samples is None else int(n_samples)
    masks, weights, draws = sampled_kernel_design(n_features, budget, seed)
    # coalitions in lexicographic order: neighbouring hybrid rows then share most of their
    # values, which makes tree models markedly faster (their branches repeat)
    order = np.lexsort(masks.T[::-1])
    masks, weights = masks[order], weights[order]
    draws = np.argsort(order)[draws]  # the draws' coalitions in the new order
    P, q = kernel_operator(masks, weights)
    role = background_relabelling(n_features, background.shape[0], seed)  # (B, M)
    # feature j of background row b takes design column role[b, j]
    masks_by_background = np.ascontiguousarray(masks[:, role])  # (C, B, M)
    f_background = evaluate_in_blocks(predict, background, max_rows=max_eval_rows)  # (B, K)
    base = f_background.mean(axis=0)
    fx = predict_rows(predict, X, row_index)  # (n, K)

    def fit(block: slice, v: FloatArray) -> FloatArray:
        # v (g, C, B, K) -> phi (g, K, M): each background row's fit in design columns,
        # then mapped back to features and averaged
        g, n_coalitions, n_background, n_out = v.shape
        v = v - f_background
        # P @ v without moving the coalition axis: no copy of the (g, C, B, K) block
        cols = np.matmul(P, v.reshape(g, n_coalitions, n_background * n_out))
        cols = cols.reshape(g, -1, n_background, n_out)  # (g, M, B, K) design columns
        cols += q[None, :, None, None] * (fx[block][:, None, :] - f_background)[:, None]
        per_background = np.take_along_axis(cols, role.T[None, :, :, None], axis=1)
        values = per_background.mean(axis=2).transpose(0, 2, 1)
        if not errors:
            return values
        variance = sandwich_variance(P, masks, draws, v, cols)  # (g, M, B, K) design columns
        variance = np.take_along_axis(variance, role.T[None, :, :, None], axis=1)
        standard_errors = np.sqrt(variance.sum(axis=2) / n_background**2).transpose(0, 2, 1)
        return np.stack([values, standard_errors], axis=1)

    values = reduce_over_coalitions(
        predict,
        X,
        background,
        lambda block: masks_by_background[None],
        len(masks),
        fit,
        row_index=row_index,
        max_eval_rows=max_eval_rows,
        hybrids=hybrids,
    )
    standard_errors = None
    if errors:
        values, standard_errors = values[:, 0], values[:, 1]
    return Attributions(
        values=values,
        base_values=np.broadcast_to(base, fx.shape).copy(),
        predictions=fx,
        standard_errors=standard_errors,
    )


def sandwich_variance(
    P: FloatArray, masks: BoolArray, draws: IntArray, v: FloatArray, cols: FloatArray
) -> FloatArray:
    """The sampling variance (g, M, B, K) of each background row's fit, in design columns.

    The fit is linear in the game, and reproduces additive games, so its error is
    ``P @ r`` with r the residuals of the game around its Shapley values (Covert & Lee
    2021 study this estimator's variance). Only the drawn coalitions vary: the error is a
    sum of one independent term per draw (a coalition and its complement, each with its
    share of the merged coalition's column of P), and its variance n_draws times the
    variance of those terms, estimated from them with the fitted values' residuals.
    v: (g, C, B, K) the game's values minus v(empty); cols: (g, M, B, K) the fits.
    """
    g, n_coalitions, n_background, n_out = v.shape
    n_draws = len(draws)
    if n_draws < 2:  # every coalition enumerated: the fit is exact
        return np.zeros(cols.shape)
    Z = masks.astype(np.float64)
    fitted = np.matmul(Z, cols.reshape(g, Z.shape[1], -1))  # (g, C, B K)
    residuals = v.reshape(g, n_coalitions, -1) - fitted
    counts = np.bincount(draws.ravel(), minlength=n_coalitions).astype(np.float64)
    share = P / np.maximum(counts, 1.0)[None, :]  # (M, C): a draw's part of a column
    a, b = share[:, draws[:, 0]].T, share[:, draws[:, 1]].T  # (n_draws, M)
    ra, rb = residuals[:, draws[:, 0]], residuals[:, draws[:, 1]]  # (g, n_draws, B K)
    total = np.matmul(a.T, ra) + np.matmul(b.T, rb)  # (g, M, B K): sum of the terms
    squares = (
        np.matmul(np.square(a).T, np.square(ra))
        + 2 * np.matmul((a * b).T, ra * rb)
        + np.matmul(np.square(b).T, np.square(rb))
    )
    spread = np.maximum(squares - np.square(total) / n_draws, 0.0) / (n_draws - 1)
    return (n_draws * spread).reshape(cols.shape)


@dataclass(frozen=True)
class KernelParams:
    n_samples: int | None = None  # None: default_n_samples(M)
    errors: bool = False  # write each value's standard error


def _prepare(params: KernelParams, inputs: RunInputs) -> Setup:
    n_features = len(inputs.feature_names)
    if params.n_samples is not None and params.n_samples < 2 * n_features:
        raise MethodInputError(
            f"--n-samples must be at least 2 x {n_features} features = {2 * n_features} "
            f"for Kernel SHAP; got {params.n_samples}"
        )
    return Setup()


def _sampling(params: KernelParams, n_features: int) -> tuple[bool, bool]:
    """(standard errors written, ``converged`` written): no target, one shared design."""
    return params.errors, False


register(
    MethodSpec(
        "shap",
        "kernel",
        KernelParams,
        sampled_block(explain_kernel),
        _prepare,
        aid="network",
        sampling=_sampling,
    )
)
