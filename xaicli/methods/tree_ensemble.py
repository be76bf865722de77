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

__all__ = ["TreeEnsemble", "route"]


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
        )


@njit(cache=True)
def route(v, threshold, missing_left, left, right):  # type: ignore[no-untyped-def]
    """The child (``left`` or ``right``) that value ``v`` of the split feature goes to.

    The models' own rule: ``NaN`` follows ``missing_left``, else ``v <= threshold``
    goes left. Scalars only: numba increfs array arguments on every call.
    Numba's cache does not notice edits here in callers' cached machine code
    (``shap_tree``): delete their ``__pycache__/*.nbi`` after changing this.
    """
    if np.isnan(v):
        return left if missing_left else right
    return left if v <= threshold else right


@njit(cache=True)
def _predict(X, roots, left, right, feature, threshold, missing_left, value, tree_output, offset):  # type: ignore[no-untyped-def]
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
                )
            k_only = tree_output[t]
            if k_only >= 0:
                out[i, k_only] += value[node, k_only]
            else:
                for k in range(n_outputs):
                    out[i, k] += value[node, k]
    return out
