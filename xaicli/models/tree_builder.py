"""Build a :class:`~xaicli.methods.tree_ensemble.TreeEnsemble` node by node, for parsers
of models whose trees come as nested records (LightGBM's dump, XGBoost's JSON)."""

from __future__ import annotations

from typing import Any

import numpy as np

from xaicli.methods.tree_ensemble import (
    CATEGORICAL_BITS,
    NUMERIC,
    TreeEnsemble,
    category_bitset,
)


class EnsembleBuilder:
    """Collects trees in model order; ``build`` returns the flat ensemble."""

    def __init__(self, n_outputs: int) -> None:
        self.n_outputs = n_outputs
        self.roots: list[int] = []
        self.tree_output: list[int] = []
        self.left: list[int] = []
        self.right: list[int] = []
        self.feature: list[int] = []
        self.threshold: list[float] = []
        self.missing_left: list[bool] = []
        self.split_rule: list[int] = []
        self.leaf_value: dict[int, float] = {}
        self.leaf_column: dict[int, int] = {}
        self.category_sets: list[np.ndarray] = []  # codes going left, per categorical split

    def start_tree(self, output: int) -> None:
        """The next node added is the root of a tree adding to output column ``output``
        (-1: every column, only for single-output ensembles)."""
        self.roots.append(len(self.left))
        self.tree_output.append(output)

    def split(
        self,
        feature: int,
        threshold: float,
        missing_left: bool,
        *,
        rule: int = NUMERIC,
        categories: Any = None,
    ) -> int:
        """A split node (children set by ``link``); ``categories``: the codes going left,
        for a categorical split (then ``rule`` is ignored)."""
        if categories is not None:
            rule = len(self.category_sets)
            self.category_sets.append(np.asarray(categories, dtype=np.int64))
        return self._add(feature, threshold, missing_left, rule)

    def leaf(self, value: float) -> int:
        node = self._add(-1, 0.0, False, NUMERIC)
        self.leaf_value[node] = value
        self.leaf_column[node] = self.tree_output[-1]
        return node

    def link(self, node: int, left: int, right: int) -> None:
        self.left[node], self.right[node] = left, right

    def _add(self, feature: int, threshold: float, missing_left: bool, rule: int) -> int:
        self.left.append(-1)
        self.right.append(-1)
        self.feature.append(feature)
        self.threshold.append(threshold)
        self.missing_left.append(missing_left)
        self.split_rule.append(rule)
        return len(self.left) - 1

    def build(self, offset: Any, n_features: int, *, float32_inputs: bool) -> TreeEnsemble:
        n_nodes = len(self.left)
        value = np.zeros((n_nodes, self.n_outputs))
        for node, leaf_value in self.leaf_value.items():
            column = self.leaf_column[node]
            if column >= 0:
                value[node, column] = leaf_value
            else:
                value[node, :] = leaf_value
        left = np.array(self.left, dtype=np.int64)
        right = np.array(self.right, dtype=np.int64)
        return TreeEnsemble(
            roots=np.array(self.roots, dtype=np.int64),
            left=left,
            right=right,
            feature=np.array(self.feature, dtype=np.int64),
            threshold=np.array(self.threshold, dtype=np.float64),
            missing_left=np.array(self.missing_left, dtype=bool),
            value=value,
            tree_output=np.array(self.tree_output, dtype=np.int64),
            offset=np.broadcast_to(np.asarray(offset, dtype=np.float64), (self.n_outputs,)).copy(),
            n_features=n_features,
            float32_inputs=float32_inputs,
            max_depth=_max_depth(np.array(self.roots, dtype=np.int64), left, right),
            split_rule=np.array(self.split_rule, dtype=np.int64),
            category_bits=category_table(self.category_sets),
        )


def category_table(category_sets: list[np.ndarray]) -> np.ndarray:
    """(n_sets, n_words) uint64 bitsets of the sets of category codes (at least (1, 1))."""
    largest = max((int(s.max()) for s in category_sets if s.size), default=0)
    n_words = largest // CATEGORICAL_BITS + 1
    table = np.zeros((max(len(category_sets), 1), n_words), dtype=np.uint64)
    for k, codes in enumerate(category_sets):
        table[k] = category_bitset(codes, n_words)
    return table


def _max_depth(roots: np.ndarray, left: np.ndarray, right: np.ndarray) -> int:
    deepest = 0
    for root in roots:
        stack = [(int(root), 0)]
        while stack:
            node, depth = stack.pop()
            if left[node] < 0:
                deepest = max(deepest, depth)
                continue
            stack.append((int(left[node]), depth + 1))
            stack.append((int(right[node]), depth + 1))
    return deepest
