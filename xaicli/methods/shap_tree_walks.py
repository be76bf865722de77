"""A boosted classifier's probability on the hybrid rows of permutation walks, from its trees.

The probability of a boosted classifier is a link (sigmoid, or softmax over classes) of a
sum of trees, its margin, so it has no exact TreeSHAP and permutation SHAP samples it. A
permutation walk moves from a background row z_b to the row x one player at a time:
consecutive hybrids differ in one player's columns, and only the trees that split on those
columns, and whose splits on them send x's and z_b's values different ways, can change
leaf. So each step re-walks those trees alone (7 of 100 on the benchmark's boosted
classifier), updates the margin by the leaves that changed and applies the link; no hybrid row is written and the model is not called. The values equal
the model's own ``predict_proba`` on the hybrid rows up to the order of floating-point
additions; the runner uses this only for models whose trees and link it has checked
against the model's output on the background (:mod:`xaicli.models.tree_link`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit

from xaicli.methods.base import FloatArray, IntArray
from xaicli.methods.tree_ensemble import TreeEnsemble, route

#: ``link``: one margin column read as the probabilities (1 - p, p) of two classes, or one
#: margin per class and their softmax.
LINKS = {"sigmoid": 0, "softmax": 1}


@dataclass(frozen=True, eq=False)  # array fields: compare by identity
class LinkedTrees:
    """What every chunk's walks share, built once per run (:meth:`measure`).

    ensemble:     the margin's trees, over the trees' input columns ("internal" columns).
    link:         a key of LINKS.
    columns:      the explained output columns (of the probabilities).
    background:   (B, n_internal) the background in the trees' input, rounded as the
                  model rounds its inputs (TreeEnsemble.prepare).
    leaves:       (B, n_trees) the leaf each background row reaches in each tree.
    player_ptr, player_columns: the internal columns of player j are
                  ``player_columns[player_ptr[j]:player_ptr[j + 1]]``.
    tree_ptr, tree_ids: the trees splitting on any of them, likewise.
    node_ptr, node_ids: the nodes of tree ``tree_ids[p]`` splitting on player j's columns
                  are ``node_ids[node_ptr[p]:node_ptr[p + 1]]``.
    """

    ensemble: TreeEnsemble
    link: str
    columns: tuple[int, ...]
    background: FloatArray
    leaves: IntArray
    player_ptr: IntArray
    player_columns: IntArray
    tree_ptr: IntArray
    tree_ids: IntArray
    node_ptr: IntArray
    node_ids: IntArray

    @classmethod
    def measure(
        cls,
        ensemble: TreeEnsemble,
        link: str,
        columns: tuple[int, ...],
        background: FloatArray,
        groups: IntArray | None,
        n_players: int,
    ) -> LinkedTrees:
        """``background`` (B, n_internal) in the trees' input; ``groups`` the player of each
        internal column (None: column j is player j)."""
        if link not in LINKS:
            raise ValueError(f"link must be one of {sorted(LINKS)}, got {link!r}")
        background = ensemble.prepare(background, name="background")
        e = ensemble
        leaves = _leaves(background, e.roots, e.left, e.right, e.feature, e.threshold,
                         e.missing_left, e.split_rule, e.category_bits)  # fmt: skip
        owner = np.arange(e.n_features) if groups is None else np.asarray(groups, np.int64)
        player_ptr, player_columns = _csr([np.flatnonzero(owner == j) for j in range(n_players)])
        node_tree = np.searchsorted(e.roots, np.arange(len(e.feature)), side="right") - 1
        splits = np.flatnonzero(e.feature >= 0)
        # the splits sorted by player, then tree: one entry per (player, tree) pair
        by = np.lexsort((node_tree[splits], owner[e.feature[splits]]))
        node_ids = splits[by].astype(np.int64)
        players, trees = owner[e.feature[node_ids]], node_tree[node_ids]
        first = np.ones(len(node_ids), dtype=bool)
        first[1:] = (players[1:] != players[:-1]) | (trees[1:] != trees[:-1])
        entries = np.flatnonzero(first)
        node_ptr = np.append(entries, len(node_ids)).astype(np.int64)
        tree_ids = trees[entries].astype(np.int64)
        tree_ptr = np.searchsorted(players[entries], np.arange(n_players + 1)).astype(np.int64)
        return cls(ensemble, link, tuple(columns), background, leaves, player_ptr,
                   player_columns, tree_ptr, tree_ids, node_ptr, node_ids)  # fmt: skip


def _csr(lists: list[np.ndarray]) -> tuple[IntArray, IntArray]:
    ptr = np.concatenate([[0], np.cumsum([len(a) for a in lists])]).astype(np.int64)
    flat = np.concatenate(lists).astype(np.int64) if lists else np.zeros(0, np.int64)
    return ptr, flat


class TreeWalks:
    """``walks(x, orders) -> (g, O, M - 1, B, K)``: the explained probabilities after each
    prefix of 1..M-1 players of each ordering, for rows x (g, M) encoded as the numeric core
    sees them and orders (g, O, B, M), the players of each ordering of each background row
    in their order. ``internal(rows)`` maps encoded rows to the trees' input columns."""

    def __init__(self, trees: LinkedTrees, internal: Callable[[FloatArray], FloatArray]):
        self.trees = trees
        self.internal = internal

    def __call__(self, x: FloatArray, orders: IntArray) -> FloatArray:
        t, e = self.trees, self.trees.ensemble
        g, n_orders, n_background, m = orders.shape
        rows = e.prepare(self.internal(x), name="rows")
        out = np.empty((g, n_orders, m - 1, n_background, len(t.columns)))
        _walk_prefixes(
            rows, np.ascontiguousarray(orders, dtype=np.int64), t.background, t.leaves,
            t.player_ptr, t.player_columns, t.tree_ptr, t.tree_ids, t.node_ptr, t.node_ids,
            e.roots, e.left, e.right, e.feature, e.threshold, e.missing_left, e.value,
            e.tree_output, e.offset, e.split_rule, e.category_bits,
            LINKS[t.link], np.array(t.columns, dtype=np.int64), out,
        )  # fmt: skip
        return out


# inlined: the array arguments of a call cost reference counts, at every step
@njit(cache=True, inline="always")
def _leaf(  # type: ignore[no-untyped-def]
    h, node, left, right, feature, threshold, missing_left, split_rule, category_bits
):
    """The leaf row h reaches from ``node``."""
    while left[node] >= 0:
        if split_rule[node] == -1:  # NUMERIC, without a branch on the value: random hybrids
            v = h[feature[node]]  # take either way as often, which branch prediction cannot
            go_left = np.int64((v <= threshold[node]) | ((v != v) & missing_left[node]))
            node = go_left * left[node] + (1 - go_left) * right[node]
            continue
        node = route(h[feature[node]], threshold[node], missing_left[node], left[node],
                     right[node], split_rule[node], category_bits)  # fmt: skip
    return node


@njit(cache=True)
def _leaves(  # type: ignore[no-untyped-def]
    X, roots, left, right, feature, threshold, missing_left, split_rule, category_bits
):
    """(n, n_trees) the leaf each row of X reaches in each tree."""
    out = np.empty((X.shape[0], roots.shape[0]), dtype=np.int64)
    for i in range(X.shape[0]):
        for t in range(roots.shape[0]):
            out[i, t] = _leaf(X[i], roots[t], left, right, feature, threshold, missing_left,
                              split_rule, category_bits)  # fmt: skip
    return out


@njit(cache=True, inline="always")
def _add_leaf(margin, value, tree_output, t, leaf, sign):  # type: ignore[no-untyped-def]
    k_only = tree_output[t]
    if k_only >= 0:
        margin[k_only] += sign * value[leaf, k_only]
    else:
        for k in range(margin.shape[0]):
            margin[k] += sign * value[leaf, k]


@njit(cache=True)
def _walk_prefixes(  # type: ignore[no-untyped-def]
    rows, orders, background, background_leaves, player_ptr, player_columns, tree_ptr,
    tree_ids, node_ptr, node_ids, roots, left, right, feature, threshold, missing_left,
    value, tree_output, offset, split_rule, category_bits, link, columns, out,
):  # fmt: skip
    g, n_orders, n_background, m = orders.shape
    n_trees, n_margin = roots.shape[0], value.shape[1]
    h = np.empty(background.shape[1])
    leaves = np.empty(n_trees, dtype=np.int64)
    start = np.empty(n_margin)  # the background row's margin
    margin = np.empty(n_margin)
    prob = np.empty(max(n_margin, 2))
    # the trees that can change leaf when player j switches from the background row to x
    # (some split on j's columns sends the two different ways), for the pair (i, b):
    # moving[moving_ptr[j]:moving_ptr[j + 1]]; the others keep their leaf
    moving = np.empty(tree_ids.shape[0], dtype=np.int64)
    moving_ptr = np.empty(m + 1, dtype=np.int64)
    for i in range(g):
        for b in range(n_background):
            n_moving = 0
            for j in range(m):
                moving_ptr[j] = n_moving
                for p in range(tree_ptr[j], tree_ptr[j + 1]):
                    for q in range(node_ptr[p], node_ptr[p + 1]):
                        n = node_ids[q]
                        args = (threshold[n], missing_left[n], left[n], right[n], split_rule[n])
                        to_x = route(rows[i, feature[n]], *args, category_bits)
                        if to_x != route(background[b, feature[n]], *args, category_bits):
                            moving[n_moving] = tree_ids[p]
                            n_moving += 1
                            break
            moving_ptr[m] = n_moving
            for k in range(n_margin):
                start[k] = offset[k]
            for t in range(n_trees):  # in model order, as the model sums
                _add_leaf(start, value, tree_output, t, background_leaves[b, t], 1.0)
            for o in range(n_orders):
                h[:] = background[b]
                leaves[:] = background_leaves[b]
                margin[:] = start
                for step in range(m - 1):
                    j = orders[i, o, b, step]
                    for p in range(player_ptr[j], player_ptr[j + 1]):
                        h[player_columns[p]] = rows[i, player_columns[p]]
                    for p in range(moving_ptr[j], moving_ptr[j + 1]):
                        t = moving[p]
                        leaf = _leaf(h, roots[t], left, right, feature, threshold,
                                     missing_left, split_rule, category_bits)  # fmt: skip
                        if leaf != leaves[t]:
                            _add_leaf(margin, value, tree_output, t, leaves[t], -1.0)
                            _add_leaf(margin, value, tree_output, t, leaf, 1.0)
                            leaves[t] = leaf
                    _apply_link(margin, link, prob)
                    for c in range(columns.shape[0]):
                        out[i, o, step, b, c] = prob[columns[c]]


@njit(cache=True, inline="always")
def _apply_link(margin, link, prob):  # type: ignore[no-untyped-def]
    """prob[:K] the class probabilities of the margin (sklearn's expit and softmax)."""
    if link == 0:
        p = 1.0 / (1.0 + np.exp(-margin[0]))
        prob[0] = 1.0 - p
        prob[1] = p
        return
    top = margin[0]
    for k in range(1, margin.shape[0]):
        top = max(top, margin[k])
    total = 0.0
    for k in range(margin.shape[0]):
        prob[k] = np.exp(margin[k] - top)
        total += prob[k]
    for k in range(margin.shape[0]):
        prob[k] /= total
