"""A tree ensemble as flat arrays, and how a row walks it (numba).

The data type TreeSHAP works on: :mod:`xaicli.models.trees` fills it in from fitted
scikit-learn models, :mod:`xaicli.methods.shap_tree` walks it. ``predict`` reproduces the
model's output exactly, split decisions and missing-value routing included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from xaicli.methods.base import BoolArray, FloatArray, IntArray

__all__ = [
    "CATEGORICAL_BITS",
    "NUMERIC",
    "ZERO_IS_MISSING",
    "TreeEnsemble",
    "category_bitset",
    "route",
]

#: ``split_rule`` of a plain numeric split: ``NaN`` follows ``missing_left``, else
#: ``v <= threshold`` goes left.
NUMERIC = -1
#: ``split_rule`` of a numeric split where values with ``|v| <= 1e-35`` count as missing
#: too (LightGBM's missing type ``Zero``, and ``zero_as_missing``).
ZERO_IS_MISSING = -2
_ZERO = 1e-35  # LightGBM's kZeroThreshold
#: Categories one word of a node's category set holds.
CATEGORICAL_BITS = 64


@dataclass(frozen=True, eq=False)  # array fields: compare by identity
class TreeEnsemble:
    """All trees of an ensemble, nodes concatenated; output = offset + sum of leaf values.

    Node arrays have shape ``(n_nodes,)``; child indices are global (into the
    concatenated arrays) and ``-1`` marks a leaf.

    roots:          (n_trees,) index of each tree's root node.
    left, right:    (n_nodes,) children; ``x[feature] <= threshold`` goes left.
    feature:        (n_nodes,) internal feature column split on (-1 at leaves).
    threshold:      (n_nodes,) float64 split threshold.
    missing_left:   (n_nodes,) where ``NaN`` goes: True = left.
    value:          (n_nodes, n_outputs) leaf values, already scaled (1/n_trees,
                    learning rate), so the prediction is a plain sum.
    tree_output:    (n_trees,) the only output column a tree's leaves touch, or
                    -1 when they span all outputs (multiclass boosting has one
                    tree per class; kernels use this to skip the zero columns).
    offset:         (n_outputs,) constant added to the sum of trees.
    n_features:     number of input columns the trees index.
    float32_inputs: the model compares ``float32(x)`` with the threshold
                    (scikit-learn's ``tree_``-based models), so inputs are
                    rounded to float32 first to take the model's own branches.
    max_depth:      the deepest root-to-leaf path, in splits.
    split_rule:     (n_nodes,) how a node compares: ``NUMERIC`` (-1), ``ZERO_IS_MISSING``
                    (-2), or k >= 0 for a categorical split on category codes: code ``c``
                    goes left when bit ``c`` of ``category_bits[k]`` is set, other codes
                    go right (negative codes too), ``NaN`` follows ``missing_left``.
                    Default: every node ``NUMERIC``.
    category_bits:  (n_sets, n_words) uint64 category sets of the categorical splits
                    (bit ``c % 64`` of word ``c // 64``); default one empty set.
    """

    roots: IntArray
    left: IntArray
    right: IntArray
    feature: IntArray
    threshold: FloatArray
    missing_left: BoolArray
    value: FloatArray
    tree_output: IntArray
    offset: FloatArray
    n_features: int
    float32_inputs: bool
    max_depth: int
    split_rule: IntArray | None = None
    category_bits: np.ndarray | None = None

    def __post_init__(self) -> None:
        # numba wants arrays: all-numeric ensembles get the trivial ones
        if self.split_rule is None:
            object.__setattr__(self, "split_rule", np.full(self.left.shape[0], NUMERIC))
        if self.category_bits is None:
            object.__setattr__(self, "category_bits", np.zeros((1, 1), dtype=np.uint64))

    def prepare(self, X: Any, *, name: str = "X") -> FloatArray:
        """``X`` as a C-contiguous float64 (n, n_features) matrix, rounded the way the model
        rounds its inputs, so that comparisons with ``threshold`` branch like the model."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(
                f"{name} must be a 2-D array with {self.n_features} columns (the model's "
                f"n_features), got shape {X.shape}"
            )
        if self.float32_inputs:
            with np.errstate(over="ignore"):  # beyond float32 range -> inf, as in sklearn
                X = X.astype(np.float32).astype(np.float64)
        return np.ascontiguousarray(X)

    def predict(self, X: Any) -> FloatArray:
        """The model output for ``X`` (n, n_features): shape (n, n_outputs)."""
        return _predict(
            self.prepare(X),
            self.roots,
            self.left,
            self.right,
            self.feature,
            self.threshold,
            self.missing_left,
            self.value,
            self.tree_output,
            self.offset,
            self.split_rule,
            self.category_bits,
        )


def category_bitset(codes: Any, n_words: int) -> np.ndarray:
    """The (n_words,) uint64 set of the non-negative integer category ``codes``."""
    words = np.zeros(n_words, dtype=np.uint64)
    for code in np.asarray(codes, dtype=np.int64).reshape(-1):
        words[code // CATEGORICAL_BITS] |= np.uint64(1) << np.uint64(code % CATEGORICAL_BITS)
    return words


@njit(cache=True)
def route(v, threshold, missing_left, left, right, split_rule, category_bits):  # type: ignore[no-untyped-def]
    """The child (``left`` or ``right``) that value ``v`` of the split feature goes to.

    The models' own rule, per ``split_rule`` (see :class:`TreeEnsemble`): numeric
    splits send ``NaN`` along ``missing_left``, else ``v <= threshold`` left;
    categorical ones send the codes of their set left. ``category_bits`` is the
    ensemble's whole (n_sets, n_words) array, read only by categorical splits; the
    other arguments are the node's scalars (an array argument costs an incref per
    call unless numba prunes it, which it does for this one: measured). Numeric
    splits pay one integer comparison. Numba's cache does not notice edits here in
    callers' cached machine code (``shap_tree``): delete their ``__pycache__/*.nbi``
    after changing this.
    """
    if split_rule == -1:  # NUMERIC
        if np.isnan(v):
            return left if missing_left else right
        return left if v <= threshold else right
    if split_rule == -2:  # ZERO_IS_MISSING
        if np.isnan(v) or abs(v) <= _ZERO:
            return left if missing_left else right
        return left if v <= threshold else right
    if np.isnan(v):
        return left if missing_left else right
    if v < 0:
        return right
    code = np.int64(v)  # truncates, as the libraries cast codes to integers
    word = code // 64
    if word >= category_bits.shape[1]:
        return right
    bit = (category_bits[split_rule, word] >> np.uint64(code % 64)) & np.uint64(1)
    return left if bit else right


@njit(cache=True)
def _predict(
    X,
    roots,
    left,
    right,
    feature,
    threshold,
    missing_left,
    value,
    tree_output,
    offset,
    split_rule,
    category_bits,
):  # type: ignore[no-untyped-def]
    n_outputs = value.shape[1]
    out = np.empty((X.shape[0], n_outputs))
    for i in range(X.shape[0]):
        for k in range(n_outputs):
            out[i, k] = offset[k]
        # trees in model order, so sums round like the model's own accumulation
        for t in range(roots.shape[0]):
            node = roots[t]
            while left[node] >= 0:
                node = route(
                    X[i, feature[node]],
                    threshold[node],
                    missing_left[node],
                    left[node],
                    right[node],
                    split_rule[node],
                    category_bits,
                )
            k_only = tree_output[t]
            if k_only >= 0:
                out[i, k_only] += value[node, k_only]
            else:
                for k in range(n_outputs):
                    out[i, k] += value[node, k]
    return out
