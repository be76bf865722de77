"""Interventional TreeSHAP whose cost per explained row does not depend on the background.

The idea of WOODELF (Nadel et al., arXiv 2511.09376) and PLTreeSHAP (AAAI 2023). For one
leaf of weight ``w`` and a pair (x, z), the interventional game depends only on which of
the leaf path's players x satisfies (takes the path's branch at every node split on one of
the player's columns) and which z satisfies. With P the players only x satisfies (p of
them) and Q those only z satisfies (q), the leaf gives ``+w (p-1)! q! / (p+q)!`` to each of
P, ``-w p! (q-1)! / (p+q)!`` to each of Q, and nothing at all when some player is satisfied
by neither. So, with ``d`` the leaf's players, ``s`` the set x satisfies and ``t`` the set
z fails: the pair counts only when ``t ⊆ s``; then Q is the complement of s (q = d - |s|)
and P is t (p = |t|). The background enters only through the (weighted) histogram
``H[t]`` of its rows' failed sets, and per leaf three tables indexed by a set give

    N[s] = sum_{t ⊆ s} H[t] p!(q-1)!/(p+q)!      (what each player x fails loses)
    A[s] = sum_{t ⊆ s} H[t] (p-1)!q!/(p+q)!
    C[u] = the same sum over t ⊆ u with q = d - |u| - 1

so that a player i that x satisfies gains ``A[s] - C[s \\ {i}]`` (the sum over the t that
contain i). They are built with subset-sum transforms, one per |t|, in O(d² 2^d) per leaf.
Per explained row: one walk of each tree (the failed set of every leaf at once) and one
lookup per (leaf, player), whatever the background size.

Tables hold 3·2^d float64 per leaf: a tree whose paths hold many distinct players (deep
unlimited forests) is left to the per-pair engine (:mod:`xaicli.methods.shap_tree`), tree
by tree, from a cost model and a memory cap (:func:`choose_engines`).

Every "which child does this row go to" comes from :func:`node_decisions` (one call of
``route`` per row and node), so the tables see exactly the model's branches, missing-value
routing included.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from numba import njit

from xaicli.methods.base import FloatArray, IntArray
from xaicli.methods.tree_ensemble import TreeEnsemble, route

__all__ = [
    "DEFAULT_TABLE_MB",
    "TABLE_MB_ENV",
    "TreePaths",
    "TreeTables",
    "build_tables",
    "choose_engines",
    "node_decisions",
    "table_values",
    "tree_paths",
]

#: Default cap on the tables' memory, in MiB; ``XAI_TREE_TABLE_MB`` overrides it.
DEFAULT_TABLE_MB = 1024
TABLE_MB_ENV = "XAI_TREE_TABLE_MB"
#: Beyond this many players on one path a leaf's tables (3·2^d float64) are never built.
MAX_TABLE_PLAYERS = 20
#: Rows per block of decisions: (rows, n_nodes) booleans, reused tree after tree.
_DECISION_ROWS = 256

# The engines' costs in units of one node of the table engine's walk, measured on
# 30-feature forests and boosted models (see choose_engines).
_TABLE_LEAF_COST = 1.0  # per (row, leaf, player): a lookup
_TABLE_BUILD_COST = 1.0  # per (leaf, d² 2^d) while building
_PAIR_NODE_COST = 1.0  # per (row, background row, node on a path)

ENGINE_PAIRS, ENGINE_TABLES = 0, 1


@dataclass(frozen=True, eq=False)
class TreePaths:
    """Which players lie on each leaf's path, in order of first appearance from the root.

    slot:         (n_nodes,) for an internal node, the position of its player among its
                  path's players (-1 at leaves).
    n_slots:      (n_nodes,) for a leaf, d = its path's number of distinct players.
    """

    slot: IntArray
    n_slots: IntArray


@dataclass(frozen=True, eq=False)
class TreeTables:
    """Everything the table engine needs, built once per run from the background.

    engine:     (n_trees,) ENGINE_TABLES or ENGINE_PAIRS.
    paths:      the trees' path players.
    start:      (n_nodes,) offset of a table leaf's tables in ``tables`` (-1 elsewhere):
                N, A, C, each of 2^d entries, one after the other.
    tables:     flat float64 tables.
    player_start: (n_nodes,) offset of a table leaf's slots' players in ``slot_player``.
    slot_player:  flat players of the table leaves' slots.
    weights:    (n_background,) the background rows' weights, summing to 1.
    base:       (n_outputs,) the weighted mean model output over the background.
    """

    engine: np.ndarray
    paths: TreePaths
    start: IntArray
    tables: FloatArray
    player_start: IntArray
    slot_player: IntArray
    weights: FloatArray
    base: FloatArray

    def engine_counts(self) -> dict[str, int]:
        """Trees per engine, for the manifest."""
        n_tables = int((self.engine == ENGINE_TABLES).sum())
        return {"tables": n_tables, "pairs": int(self.engine.shape[0]) - n_tables}


def node_decisions(ensemble: TreeEnsemble, X: FloatArray) -> np.ndarray:
    """(n_rows, n_nodes) True where the row goes to the node's left child (internal
    nodes only). ``X`` prepared (``ensemble.prepare``). The one place the table engine
    asks how a row branches."""
    return _decisions(
        X,
        ensemble.left,
        ensemble.right,
        ensemble.feature,
        ensemble.threshold,
        ensemble.missing_left,
    )


@njit(cache=True)
def _decisions(X, left, right, feature, threshold, missing_left):  # type: ignore[no-untyped-def]
    n_nodes = left.shape[0]
    out = np.zeros((X.shape[0], n_nodes), dtype=np.bool_)
    for node in range(n_nodes):
        lo = left[node]
        if lo < 0:
            continue
        f, thr, miss, hi = feature[node], threshold[node], missing_left[node], right[node]
        for i in range(X.shape[0]):
            out[i, node] = route(X[i, f], thr, miss, lo, hi) == lo
    return out


def tree_paths(ensemble: TreeEnsemble, players: IntArray) -> TreePaths:
    """The path players of every leaf (``players``: the player of each feature column)."""
    slot, n_slots = _paths(
        ensemble.roots, ensemble.left, ensemble.right, ensemble.feature, players,
        max(ensemble.max_depth, 1),
    )  # fmt: skip
    return TreePaths(slot, n_slots)


@njit(cache=True)
def _paths(roots, left, right, feature, players, max_depth):  # type: ignore[no-untyped-def]
    n_nodes = left.shape[0]
    slot = np.full(n_nodes, -1, dtype=np.int64)
    n_slots = np.zeros(n_nodes, dtype=np.int64)  # at internal nodes: the slots above
    path = np.empty(max_depth + 1, dtype=np.int64)
    stack = np.empty(2 * max_depth + 2, dtype=np.int64)
    for t in range(roots.shape[0]):
        top = 0
        stack[0] = roots[t]
        n_slots[roots[t]] = 0
        while top >= 0:
            node = stack[top]
            top -= 1
            d = n_slots[node]
            if left[node] < 0:
                continue
            # both children share this node's path; depth-first order keeps path[:d] valid
            p = players[feature[node]]
            j = 0
            while j < d and path[j] != p:
                j += 1
            slot[node] = j
            path[j] = p
            below = d + 1 if j == d else d
            n_slots[left[node]] = below
            n_slots[right[node]] = below
            stack[top + 1] = right[node]
            stack[top + 2] = left[node]
            top += 2
    return slot, n_slots


@njit(cache=True)
def _slot_players(trees, roots, left, right, feature, players, slot, n_slots, player_start, size, max_depth):  # type: ignore[no-untyped-def]
    """The player of each slot of each leaf of ``trees``, from ``player_start[leaf]`` on."""
    out = np.zeros(size, dtype=np.int64)
    path = np.empty(max_depth + 1, dtype=np.int64)
    stack = np.empty(2 * max_depth + 2, dtype=np.int64)
    for t in trees:
        top = 0
        stack[0] = roots[t]
        while top >= 0:
            node = stack[top]
            top -= 1
            if left[node] < 0:
                for j in range(n_slots[node]):
                    out[player_start[node] + j] = path[j]
                continue
            path[slot[node]] = players[feature[node]]
            stack[top + 1] = right[node]
            stack[top + 2] = left[node]
            top += 2
    return out


def choose_engines(
    ensemble: TreeEnsemble,
    paths: TreePaths,
    n_background: int,
    n_rows: int,
    *,
    max_table_mb: float | None = None,
) -> np.ndarray:
    """ENGINE_TABLES or ENGINE_PAIRS for each tree, from their estimated costs.

    Tables: build ``n_background`` walks of the tree plus d² 2^d per leaf, then per row one
    walk plus one lookup per (leaf, player). Pairs: per (row, background row) at least
    one root-to-leaf path. Tables are given to the trees they save the most time on
    first, until the memory cap (``XAI_TREE_TABLE_MB``, default DEFAULT_TABLE_MB).
    """
    cap = table_memory_cap() if max_table_mb is None else max_table_mb
    n_trees = ensemble.roots.shape[0]
    bounds = np.append(ensemble.roots, ensemble.left.shape[0])
    is_leaf = ensemble.left < 0
    d = paths.n_slots.astype(np.float64)
    engine = np.full(n_trees, ENGINE_PAIRS, dtype=np.int8)
    saving = np.zeros(n_trees)
    memory = np.zeros(n_trees)
    rows = max(n_rows, 1)
    for t in range(n_trees):
        lo, hi = bounds[t], bounds[t + 1]
        leaf_d = d[lo:hi][is_leaf[lo:hi]]
        if leaf_d.size == 0 or leaf_d.max() > MAX_TABLE_PLAYERS:
            continue
        n_nodes = hi - lo
        build = n_background * n_nodes + _TABLE_BUILD_COST * (leaf_d**2 * 2.0**leaf_d).sum()
        per_row = n_nodes + _TABLE_LEAF_COST * (leaf_d + 2).sum()
        tables = build + rows * per_row
        pairs = rows * n_background * _PAIR_NODE_COST * max(leaf_d.mean(), 1.0)
        saving[t] = pairs - tables
        memory[t] = 3 * 8 * (2.0**leaf_d).sum()
    budget = cap * 2**20
    for t in np.argsort(-saving, kind="stable"):
        if saving[t] <= 0 or memory[t] > budget:
            continue
        engine[t] = ENGINE_TABLES
        budget -= memory[t]
    return engine


def table_memory_cap() -> float:
    """The tables' memory cap in MiB: ``XAI_TREE_TABLE_MB`` or DEFAULT_TABLE_MB."""
    text = os.environ.get(TABLE_MB_ENV, "").strip()
    if not text:
        return float(DEFAULT_TABLE_MB)
    try:
        value = float(text)
    except ValueError:
        raise ValueError(
            f"{TABLE_MB_ENV} must be a number of MiB, got {text!r}; unset it for the "
            f"default {DEFAULT_TABLE_MB}"
        ) from None
    if not value >= 0:
        raise ValueError(f"{TABLE_MB_ENV} must be >= 0, got {text!r}")
    return value


def build_tables(
    ensemble: TreeEnsemble,
    background: FloatArray,
    weights: FloatArray,
    players: IntArray,
    paths: TreePaths,
    engine: np.ndarray,
) -> TreeTables:
    """The tables of the trees ``engine`` gives to tables. ``background`` prepared,
    ``weights`` (n_background,) summing to 1, ``players`` the player of each column."""
    is_leaf = ensemble.left < 0
    tree_of = np.repeat(
        np.arange(ensemble.roots.shape[0]),
        np.diff(np.append(ensemble.roots, ensemble.left.shape[0])),
    )
    in_table = is_leaf & (engine[tree_of] == ENGINE_TABLES)
    size = np.where(in_table, 2 ** paths.n_slots, 0)
    start = np.where(in_table, 3 * (np.cumsum(size) - size), -1).astype(np.int64)
    tables = np.zeros(3 * int(size.sum()))  # histograms first, then tables in place
    table_trees = np.flatnonzero(engine == ENGINE_TABLES).astype(np.int64)
    for lo in range(0, background.shape[0], _DECISION_ROWS):
        block = background[lo : lo + _DECISION_ROWS]
        goes_left = node_decisions(ensemble, block)
        _histograms(
            goes_left, weights[lo : lo + _DECISION_ROWS], table_trees, ensemble.roots,
            ensemble.left, ensemble.right, paths.slot, start, tables,
        )  # fmt: skip
    max_d = int(paths.n_slots[in_table].max()) if in_table.any() else 0
    w_pos, w_neg = _leaf_weights(max_d)
    _transform(np.flatnonzero(in_table).astype(np.int64), paths.n_slots, start, tables, w_pos, w_neg)
    n_player_slots = np.where(in_table, paths.n_slots, 0)
    player_start = np.where(in_table, np.cumsum(n_player_slots) - n_player_slots, -1)
    slot_player = _slot_players(
        table_trees, ensemble.roots, ensemble.left, ensemble.right, ensemble.feature, players,
        paths.slot, paths.n_slots, player_start, int(n_player_slots.sum()),
        max(ensemble.max_depth, 1),
    )  # fmt: skip
    outputs = ensemble.predict(background)
    equal = bool((weights == weights[0]).all())
    base = outputs.mean(axis=0) if equal else weights @ outputs
    return TreeTables(engine, paths, start, tables, player_start, slot_player, weights, base)


def _leaf_weights(max_d: int) -> tuple[FloatArray, FloatArray]:
    from xaicli.methods.shap_tree import _leaf_weights as pair_weights

    return pair_weights(max_d)


@njit(cache=True)
def _histograms(goes_left, weights, trees, roots, left, right, slot, start, tables):  # type: ignore[no-untyped-def]
    """Add each background row's weight at its failed set, in every leaf's N table."""
    n_nodes = left.shape[0]
    stack = np.empty(n_nodes + 1, dtype=np.int64)
    failed = np.zeros(n_nodes, dtype=np.int64)  # per node: the path's failed slots
    for r in range(goes_left.shape[0]):
        w = weights[r]
        for t in trees:
            top = 0
            stack[0] = roots[t]
            failed[roots[t]] = 0
            while top >= 0:
                node = stack[top]
                top -= 1
                lo = left[node]
                if lo < 0:
                    tables[start[node] + failed[node]] += w
                    continue
                bit = np.int64(1) << slot[node]
                hi = right[node]
                if goes_left[r, node]:
                    failed[lo], failed[hi] = failed[node], failed[node] | bit
                else:
                    failed[lo], failed[hi] = failed[node] | bit, failed[node]
                stack[top + 1] = hi
                stack[top + 2] = lo
                top += 2


@njit(cache=True)
def _transform(leaves, n_slots, start, tables, w_pos, w_neg):  # type: ignore[no-untyped-def]
    """Turn each leaf's histogram H (in the N slot) into its N, A, C tables."""
    max_d = 0
    for node in leaves:
        max_d = max(max_d, n_slots[node])
    size_max = 1 << max_d
    sums = np.zeros((max_d + 1, size_max))  # S_k[u] = sum of H[t], t ⊆ u, |t| = k
    popcount = np.zeros(size_max, dtype=np.int64)
    for u in range(1, size_max):
        popcount[u] = popcount[u >> 1] + (u & 1)
    for node in leaves:
        d = n_slots[node]
        size = 1 << d
        s0 = start[node]
        for k in range(d + 1):
            for u in range(size):
                sums[k, u] = 0.0
        for t in range(size):
            sums[popcount[t], t] = tables[s0 + t]
        for k in range(d + 1):
            for j in range(d):
                bit = 1 << j
                for u in range(size):
                    if u & bit:
                        sums[k, u] += sums[k, u ^ bit]
        for u in range(size):
            q = d - popcount[u]
            n_val, a_val, c_val = 0.0, 0.0, 0.0
            for k in range(popcount[u] + 1):
                s = sums[k, u]
                if s == 0.0:
                    continue
                if q > 0:
                    n_val += s * w_neg[k, q]
                a_val += s * w_pos[k, q]
                if q > 0:
                    c_val += s * w_pos[k, q - 1]
            tables[s0 + u] = n_val
            tables[s0 + size + u] = a_val
            tables[s0 + 2 * size + u] = c_val


def table_values(
    ensemble: TreeEnsemble, X: FloatArray, tables: TreeTables, phi: FloatArray
) -> None:
    """Add to ``phi`` (n_rows, n_outputs, n_players) the table trees' attributions of the
    prepared rows ``X``."""
    trees = np.flatnonzero(tables.engine == ENGINE_TABLES).astype(np.int64)
    if trees.size == 0:
        return
    for lo in range(0, X.shape[0], _DECISION_ROWS):
        goes_left = node_decisions(ensemble, X[lo : lo + _DECISION_ROWS])
        _row_values(
            goes_left, trees, ensemble.roots, ensemble.left, ensemble.right, ensemble.value,
            ensemble.tree_output, tables.paths.slot, tables.paths.n_slots,
            tables.player_start, tables.slot_player, tables.start, tables.tables,
            phi[lo : lo + _DECISION_ROWS],
        )  # fmt: skip


@njit(cache=True)
def _row_values(  # type: ignore[no-untyped-def]
    goes_left, trees, roots, left, right, value, tree_output, slot, n_slots, player_start,
    slot_player, start, tables, phi,
):  # fmt: skip
    n_outputs = value.shape[1]
    n_nodes = left.shape[0]
    stack = np.empty(n_nodes + 1, dtype=np.int64)
    failed = np.zeros(n_nodes, dtype=np.int64)
    for t in trees:
        k_lo, k_hi = 0, n_outputs
        if tree_output[t] >= 0:
            k_lo, k_hi = tree_output[t], tree_output[t] + 1
        for r in range(goes_left.shape[0]):
            top = 0
            stack[0] = roots[t]
            failed[roots[t]] = 0
            while top >= 0:
                node = stack[top]
                top -= 1
                lo = left[node]
                if lo >= 0:
                    bit = np.int64(1) << slot[node]
                    hi = right[node]
                    if goes_left[r, node]:
                        failed[lo], failed[hi] = failed[node], failed[node] | bit
                    else:
                        failed[lo], failed[hi] = failed[node] | bit, failed[node]
                    stack[top + 1] = hi
                    stack[top + 2] = lo
                    top += 2
                    continue
                d = n_slots[node]
                if d == 0:
                    continue  # a lone leaf: the same value with and without any player
                size = 1 << d
                fail = failed[node]
                s = (size - 1) & ~fail
                base = start[node]
                first_player = player_start[node]
                lose = tables[base + s]
                gain = tables[base + size + s]
                for j in range(d):
                    bit = np.int64(1) << j
                    if fail & bit:
                        share = -lose
                    else:
                        share = gain - tables[base + 2 * size + (s ^ bit)]
                    p = slot_player[first_player + j]
                    for k in range(k_lo, k_hi):
                        phi[r, k, p] += value[node, k] * share
