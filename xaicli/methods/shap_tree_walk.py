"""The table engine's walks of a block of rows through its trees, decisions included (numba).

:mod:`xaicli.methods.shap_tree_tables` describes the tables; here is how a block of rows
reads them (explained rows) or fills their histograms (background rows). Both walks visit
each tree's nodes parents first, keeping per depth of the current path the rows' failed
sets and their branch at that node: (depth, rows) buffers that stay in the first-level
cache, where a (nodes, rows) matrix of decisions and another of failed sets did not for
trees of hundreds of nodes. A node's branch comes from the same rule as ``route``,
inlined, and is computed once per node and row. Rows run innermost: the comparisons, the
failed sets and the gathers from the tables are loops the compiler vectorises, and the
attributions are added to a (outputs, players, rows) block so each (leaf, player) lookup
is a gather and a contiguous add.

The values are the same as the node-by-node walk's (only the order of the additions of
one row's attributions differs); predictions, when every tree is a table tree, are the
leaf values of the rows' own leaves (the only ones whose failed set is empty), summed in
the trees' order like ``TreeEnsemble.predict``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from xaicli.methods.base import FloatArray, IntArray
from xaicli.methods.tree_ensemble import TreeEnsemble, route

__all__ = ["WALK_ROWS", "histogram_walk", "node_depths", "values_walk"]

#: Rows per block: a block's (outputs, players, rows) attributions and (depth, rows) state
#: stay in cache.
WALK_ROWS = 512


def node_depths(ensemble: TreeEnsemble, order: IntArray) -> tuple[IntArray, IntArray]:
    """(depth, parent) of every node, (n_nodes,) each (-1: a root's parent); ``order``
    each tree's nodes parents first (``TreePaths.order``)."""
    return _depths(ensemble.roots, ensemble.left, ensemble.right, order)


@njit(cache=True)
def _depths(roots, left, right, order):  # type: ignore[no-untyped-def]
    n_nodes = left.shape[0]
    depth = np.zeros(n_nodes, dtype=np.int64)
    parent = np.full(n_nodes, -1, dtype=np.int64)
    for node in order:
        lo = left[node]
        if lo >= 0:
            depth[lo] = depth[node] + 1
            depth[right[node]] = depth[node] + 1
            parent[lo] = node
            parent[right[node]] = node
    return depth, parent


def values_walk(
    ensemble: TreeEnsemble,
    X: FloatArray,
    trees: IntArray,
    order: IntArray,
    slot: IntArray,
    n_slots: IntArray,
    start: IntArray,
    player_start: IntArray,
    slot_player: IntArray,
    tables: FloatArray,
    phi: FloatArray,
    predictions: FloatArray | None,
) -> None:
    """Add to ``phi`` (n_rows, n_outputs, n_players) the attributions of the prepared rows
    ``X`` by the table trees ``trees``; with ``predictions`` (n_rows, n_outputs), also write
    the model's output there (only when ``trees`` are all the trees)."""
    depth, parent = node_depths(ensemble, order)
    want = predictions is not None
    out = predictions if predictions is not None else np.zeros((0, ensemble.value.shape[1]))
    for lo in range(0, X.shape[0], WALK_ROWS):
        block = X[lo : lo + WALK_ROWS]
        _values_block(
            np.ascontiguousarray(block.T), trees, ensemble.roots, ensemble.left,
            ensemble.right, ensemble.feature, ensemble.threshold, ensemble.missing_left,
            ensemble.split_rule, ensemble.category_bits, ensemble.tree_output,
            ensemble.value, ensemble.offset, order, depth, parent, slot, n_slots, start,
            player_start, slot_player, tables, phi[lo : lo + WALK_ROWS], want,
            out[lo : lo + WALK_ROWS] if want else out,
        )  # fmt: skip


@njit(cache=True, inline="always")
def _branch(xs, node, left, right, feature, threshold, missing_left, split_rule,
            category_bits, go, n):  # type: ignore[no-untyped-def]  # fmt: skip
    """go[:n] = whether each row goes to ``node``'s left child (``route``'s rule)."""
    lo, hi = left[node], right[node]
    thr, miss, rule = threshold[node], missing_left[node], split_rule[node]
    if rule == -1:  # NUMERIC, the common case, in a loop the compiler vectorises
        if miss:
            for r in range(n):
                v = xs[r]
                go[r] = (v <= thr) | (v != v)
        else:
            for r in range(n):
                go[r] = xs[r] <= thr  # NaN compares False: right, as route sends it
    else:
        for r in range(n):
            go[r] = route(xs[r], thr, miss, lo, hi, rule, category_bits) == lo


@njit(cache=True, inline="always")
def _failed_here(node, k, parent, left, slot, failed, go, n):  # type: ignore[no-untyped-def]
    """failed[k, :n] = the rows' failed sets at ``node`` (depth k), from its parent's row
    of the buffers, which the walk has kept since visiting the parent."""
    if k == 0:
        for r in range(n):
            failed[0, r] = 0
        return
    p = parent[node]
    bit = np.int32(1 << slot[p])
    zero = np.int32(0)
    up, went = failed[k - 1], go[k - 1]
    if left[p] == node:  # the parent's player fails where the row went right
        for r in range(n):
            failed[k, r] = up[r] | (zero if went[r] else bit)
    else:
        for r in range(n):
            failed[k, r] = up[r] | (bit if went[r] else zero)


@njit(cache=True)
def _values_block(  # type: ignore[no-untyped-def]
    XT, trees, roots, left, right, feature, threshold, missing_left, split_rule,
    category_bits, tree_output, value, offset, order, depth, parent, slot, n_slots, start,
    player_start, slot_player, tables, phi, want, pred,
):  # fmt: skip
    # one flat function: numba increfs every array argument of a call
    n = XT.shape[1]
    n_outputs = value.shape[1]
    n_players = phi.shape[2]
    max_depth = 0
    for node in range(left.shape[0]):
        max_depth = max(max_depth, depth[node])
    # failed sets hold at most MAX_TABLE_PLAYERS (20) bits, a table offset fewer than 2^25:
    # int32 halves the buffers and their loops' work (5-10% of the walk, measured)
    failed = np.zeros((max_depth + 1, n), dtype=np.int32)
    go = np.zeros((max_depth + 1, n), dtype=np.bool_)
    index = np.empty(n, dtype=np.int32)
    acc = np.zeros((n_outputs, n_players, n))  # (outputs, players, rows)
    sums = np.empty((n_outputs, n))
    if want:
        for k in range(n_outputs):
            for r in range(n):
                sums[k, r] = offset[k]
    n_trees, n_nodes = roots.shape[0], left.shape[0]
    for t in trees:
        k_lo, k_hi = 0, n_outputs
        if tree_output[t] >= 0:
            k_lo, k_hi = tree_output[t], tree_output[t] + 1
        first = roots[t]
        last = roots[t + 1] if t + 1 < n_trees else n_nodes
        if left[first] < 0:  # a single leaf: no player, the same output for every row
            if want:
                for k in range(k_lo, k_hi):
                    for r in range(n):
                        sums[k, r] += value[first, k]
            continue
        for pos in range(first, last):
            node = order[pos]
            lo, unit = left[node], start[node]
            if lo < 0 and unit < 0:
                continue  # a leaf of a pair: read at its parent
            k = depth[node]
            _failed_here(node, k, parent, left, slot, failed, go, n)
            here = failed[k]
            if lo >= 0:
                _branch(XT[feature[node]], node, left, right, feature, threshold,
                        missing_left, split_rule, category_bits, go[k], n)  # fmt: skip
                if unit < 0:
                    continue
                # a pair of leaves: indexed by the left leaf's failed set
                d = n_slots[node] + 1
                right_bit = np.int32(1 << slot[node])
                zero = np.int32(0)
                d32 = np.int32(d)
                went = go[k]
                for r in range(n):
                    index[r] = (here[r] | (zero if went[r] else right_bit)) * d32
                if want:
                    hi = right[node]
                    for kk in range(k_lo, k_hi):
                        v_lo, v_hi = value[lo, kk], value[hi, kk]
                        for r in range(n):
                            if here[r] == 0:
                                sums[kk, r] += v_lo if went[r] else v_hi
            else:
                d = n_slots[node]
                d32 = np.int32(d)
                for r in range(n):
                    index[r] = here[r] * d32
                if want:
                    for kk in range(k_lo, k_hi):
                        v = value[node, kk]
                        for r in range(n):
                            if here[r] == 0:
                                sums[kk, r] += v
            size = np.int64(1) << d
            players = player_start[node]
            for kk in range(k_lo, k_hi):
                base = unit + (kk - k_lo) * size * d
                for j in range(d):
                    row = acc[kk, slot_player[players + j]]
                    at = base + j
                    for r in range(n):
                        row[r] += tables[at + index[r]]
    for r in range(n):
        for k in range(n_outputs):
            for p in range(n_players):
                phi[r, k, p] += acc[k, p, r]
    if want:
        for r in range(n):
            for k in range(n_outputs):
                pred[r, k] = sums[k, r]


def histogram_walk(
    ensemble: TreeEnsemble,
    background: FloatArray,
    weights: FloatArray,
    trees: IntArray,
    order: IntArray,
    slot: IntArray,
    hist_start: IntArray,
    hist: FloatArray,
    outputs: FloatArray | None = None,
) -> None:
    """Add each background row's weight at its failed set in the histogram of every leaf
    with one (``hist_start`` >= 0), for the trees ``trees``; with ``outputs``
    (n_background, n_outputs), also write the model's output there (only when ``trees``
    are all the trees)."""
    depth, parent = node_depths(ensemble, order)
    want = outputs is not None
    out = outputs if outputs is not None else np.zeros((0, ensemble.value.shape[1]))
    for lo in range(0, background.shape[0], WALK_ROWS):
        block = background[lo : lo + WALK_ROWS]
        _histogram_block(
            np.ascontiguousarray(block.T), weights[lo : lo + WALK_ROWS], trees,
            ensemble.roots, ensemble.left, ensemble.right, ensemble.feature,
            ensemble.threshold, ensemble.missing_left, ensemble.split_rule,
            ensemble.category_bits, ensemble.tree_output, ensemble.value, ensemble.offset,
            order, depth, parent, slot, hist_start, hist, want,
            out[lo : lo + WALK_ROWS] if want else out,
        )  # fmt: skip


@njit(cache=True)
def _histogram_block(  # type: ignore[no-untyped-def]
    XT, weights, trees, roots, left, right, feature, threshold, missing_left, split_rule,
    category_bits, tree_output, value, offset, order, depth, parent, slot, hist_start, hist,
    want, pred,
):  # fmt: skip
    n = XT.shape[1]
    n_outputs = value.shape[1]
    max_depth = 0
    for node in range(left.shape[0]):
        max_depth = max(max_depth, depth[node])
    failed = np.zeros((max_depth + 1, n), dtype=np.int32)
    go = np.zeros((max_depth + 1, n), dtype=np.bool_)
    sums = np.empty((n_outputs, n))
    if want:
        for k in range(n_outputs):
            for r in range(n):
                sums[k, r] = offset[k]
    n_trees, n_nodes = roots.shape[0], left.shape[0]
    for t in trees:
        k_lo, k_hi = 0, n_outputs
        if tree_output[t] >= 0:
            k_lo, k_hi = tree_output[t], tree_output[t] + 1
        first = roots[t]
        last = roots[t + 1] if t + 1 < n_trees else n_nodes
        for pos in range(first, last):
            node = order[pos]
            lo = left[node]
            if lo < 0 and hist_start[node] < 0 and not want:
                continue
            k = depth[node]
            _failed_here(node, k, parent, left, slot, failed, go, n)
            if lo >= 0:
                _branch(XT[feature[node]], node, left, right, feature, threshold,
                        missing_left, split_rule, category_bits, go[k], n)  # fmt: skip
                continue
            here = failed[k]
            if want:  # the row's own leaf: the one it fails no player of
                for kk in range(k_lo, k_hi):
                    v = value[node, kk]
                    for r in range(n):
                        if here[r] == 0:
                            sums[kk, r] += v
            s0 = hist_start[node]
            if s0 < 0:
                continue
            for r in range(n):
                hist[s0 + here[r]] += weights[r]
    if want:
        for r in range(n):
            for k in range(n_outputs):
                pred[r, k] = sums[k, r]
