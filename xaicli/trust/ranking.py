"""Agreement between feature rankings: NDCG (as SageMaker Clarify scores attribution
drift), Spearman rank correlation and top-k overlap. Pure numpy; rankings are by
importance, the largest value first."""

from __future__ import annotations

import numpy as np

__all__ = ["ndcg", "spearman", "top_k", "top_k_overlap"]


def ndcg(relevance: np.ndarray, order: np.ndarray) -> float:
    """Normalised discounted cumulative gain of the ranking ``order`` under ``relevance``.

    relevance: (n_features,) the reference importance a(f) of each feature (BEFORE's mean
    |attribution|). order: (n_features,) feature positions, most important first (AFTER's
    ranking). DCG = sum_i a(order_i) / log2(i + 1), i from 1; NDCG = DCG / DCG of the
    reference's own order, so 1 when the ranking agrees with the reference. A reference
    whose relevance is all zero ranks nothing: NDCG 1.
    """
    relevance = np.asarray(relevance, dtype=np.float64)
    discount = 1.0 / np.log2(np.arange(2, relevance.size + 2))
    ideal = float(np.sort(relevance)[::-1] @ discount)
    if ideal <= 0.0:
        return 1.0
    return float(relevance[np.asarray(order)] @ discount) / ideal


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (1 = smallest) along the last axis; ties share their mean rank."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, axis=-1, kind="stable")
    ranks = np.empty_like(values)
    np.put_along_axis(ranks, order, np.arange(1, values.shape[-1] + 1, dtype=np.float64), -1)
    # ties: every member of a run of equal values gets the run's mean rank
    sorted_values = np.take_along_axis(values, order, -1)
    flat_sorted = sorted_values.reshape(-1, values.shape[-1])
    flat_order = order.reshape(-1, values.shape[-1])
    flat_ranks = ranks.reshape(-1, values.shape[-1])
    for row in np.flatnonzero((np.diff(flat_sorted, axis=-1) == 0).any(axis=-1)):
        _, start, counts = np.unique(flat_sorted[row], return_index=True, return_counts=True)
        for first, count in zip(start, counts, strict=True):
            if count > 1:
                members = flat_order[row, first : first + count]
                flat_ranks[row, members] = first + (count + 1) / 2.0
    return flat_ranks.reshape(values.shape)


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """Spearman rank correlation of ``a`` and ``b`` along the last axis (ties: average ranks).

    a, b: (..., n_features). Returns (...) or a float. When either side is constant the
    correlation is undefined: 1 if both rank the features alike (both constant), else 0.
    """
    ra, rb = _ranks(a), _ranks(b)
    ra = ra - ra.mean(axis=-1, keepdims=True)
    rb = rb - rb.mean(axis=-1, keepdims=True)
    norm = np.sqrt((ra * ra).sum(axis=-1) * (rb * rb).sum(axis=-1))
    same = np.all(ra == rb, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(norm > 0, (ra * rb).sum(axis=-1) / np.where(norm > 0, norm, 1.0), 0.0)
    rho = np.where(same, 1.0, np.clip(rho, -1.0, 1.0))
    return float(rho) if np.ndim(rho) == 0 else rho


def top_k(importance: np.ndarray, k: int) -> np.ndarray:
    """(..., k) positions of the k largest values along the last axis, largest first
    (ties: the earlier feature first)."""
    order = np.argsort(-np.asarray(importance, dtype=np.float64), axis=-1, kind="stable")
    return order[..., :k]


def top_k_overlap(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray | float:
    """Share of the k most important features (largest values) that ``a`` and ``b`` have in
    common, along the last axis: 1 = the same k features, in any order."""
    k = min(k, np.shape(a)[-1])
    in_a = np.zeros(np.shape(a), dtype=bool)
    in_b = np.zeros(np.shape(b), dtype=bool)
    np.put_along_axis(in_a, top_k(a, k), True, -1)
    np.put_along_axis(in_b, top_k(b, k), True, -1)
    overlap = (in_a & in_b).sum(axis=-1) / k
    return float(overlap) if np.ndim(overlap) == 0 else overlap
