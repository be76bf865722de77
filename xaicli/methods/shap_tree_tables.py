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

Every "which child does this row go to" follows ``route``'s rule (in the walks of
:mod:`xaicli.methods.shap_tree_walk`, which read the tables and fill the histograms block
by block of rows), so the tables see exactly the model's branches, missing-value routing
included.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from numba import njit

from xaicli.methods.base import FloatArray, IntArray
from xaicli.methods.shap_tree_walk import histogram_walk, values_walk
from xaicli.methods.tree_ensemble import TreeEnsemble, route

__all__ = [
    "DEFAULT_TABLE_MB",
    "TABLE_MB_ENV",
    "TreePaths",
    "TreeTables",
    "build_tables",
    "choose_engines",
    "engine_counts",
    "node_decisions",
    "table_values",
    "tree_paths",
]

#: Default cap on the tables' memory, in MiB; ``XAI_TREE_TABLE_MB`` overrides it.
DEFAULT_TABLE_MB = 1024
TABLE_MB_ENV = "XAI_TREE_TABLE_MB"
#: Beyond this many players on one path a leaf's table (d·2^d float64) is never built.
MAX_TABLE_PLAYERS = 20

# The engines' costs in units of one node of the table engine's walk per row, measured on
# 30-feature forests and boosted models (one core; see choose_engines).
_TABLE_LEAF_COST = 1.0  # per (row, leaf, player): a lookup
_TABLE_HISTOGRAM_COST = 3.0  # per (background row, node): its decision and walk
_PAIR_NODE_COST = 8.0  # per (row, background row, split on a leaf's path)

ENGINE_PAIRS, ENGINE_TABLES = 0, 1


@dataclass(frozen=True, eq=False)
class TreePaths:
    """Which players lie on each leaf's path, in order of first appearance from the root.

    slot:         (n_nodes,) for an internal node, the position of its player among its
                  path's players (-1 at leaves).
    n_slots:      (n_nodes,) for a leaf, d = its path's number of distinct players.
    order:        (n_nodes,) each tree's nodes, parents before children (the tree's
                  own range of indices, reordered).
    """

    slot: IntArray
    n_slots: IntArray
    order: IntArray


@dataclass(frozen=True, eq=False)
class TreeTables:
    """Everything the table engine needs, built once per run from the background.

    engine:     (n_trees,) ENGINE_TABLES or ENGINE_PAIRS.
    paths:      the trees' path players.
    start:      (n_nodes,) offset of a unit's table in ``tables`` (-1 elsewhere); a unit
                is a table leaf or a parent of two (see ``_Layout``).
    tables:     flat float64 tables: per unit, output, x's failed set and slot, the
                attribution of the slot's player.
    player_start: (n_nodes,) offset of a unit's slots' players in ``slot_player``.
    slot_player:  flat players of the units' slots.
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
        return engine_counts(self.engine)


def engine_counts(engine: np.ndarray) -> dict[str, int]:
    """Trees per engine (each tree's ``ENGINE_TABLES`` or ``ENGINE_PAIRS``), for the manifest."""
    n_tables = int((engine == ENGINE_TABLES).sum())
    return {"tables": n_tables, "pairs": int(engine.shape[0]) - n_tables}


def node_decisions(ensemble: TreeEnsemble, X: FloatArray) -> np.ndarray:
    """(n_nodes, n_rows) True where the row goes to the node's left child (internal
    nodes only). ``X`` prepared (``ensemble.prepare``). The table engine's own walks
    (:mod:`xaicli.methods.shap_tree_walk`) apply the same rule node by node instead of
    holding this matrix."""
    return _decisions(
        np.ascontiguousarray(X.T),
        ensemble.left,
        ensemble.right,
        ensemble.feature,
        ensemble.threshold,
        ensemble.missing_left,
        ensemble.split_rule,
        ensemble.category_bits,
    )


@njit(cache=True)
def _decisions(XT, left, right, feature, threshold, missing_left, split_rule, category_bits):  # type: ignore[no-untyped-def]
    n_nodes, n_rows = left.shape[0], XT.shape[1]
    out = np.zeros((n_nodes, n_rows), dtype=np.bool_)
    for node in range(n_nodes):
        lo = left[node]
        if lo < 0:
            continue
        f, thr, miss, hi = feature[node], threshold[node], missing_left[node], right[node]
        rule = split_rule[node]
        for i in range(n_rows):
            out[node, i] = route(XT[f, i], thr, miss, lo, hi, rule, category_bits) == lo
    return out


def tree_paths(ensemble: TreeEnsemble, players: IntArray) -> TreePaths:
    """The path players of every leaf (``players``: the player of each feature column)."""
    slot, n_slots, order = _paths(
        ensemble.roots, ensemble.left, ensemble.right, ensemble.feature, players,
        max(ensemble.max_depth, 1),
    )  # fmt: skip
    return TreePaths(slot, n_slots, order)


@njit(cache=True)
def _paths(roots, left, right, feature, players, max_depth):  # type: ignore[no-untyped-def]
    n_nodes = left.shape[0]
    slot = np.full(n_nodes, -1, dtype=np.int64)
    n_slots = np.zeros(n_nodes, dtype=np.int64)  # at internal nodes: the slots above
    order = np.empty(n_nodes, dtype=np.int64)
    visited = 0
    path = np.empty(max_depth + 1, dtype=np.int64)
    stack = np.empty(2 * max_depth + 2, dtype=np.int64)
    for t in range(roots.shape[0]):
        top = 0
        stack[0] = roots[t]
        n_slots[roots[t]] = 0
        while top >= 0:
            node = stack[top]
            top -= 1
            order[visited] = node
            visited += 1
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
    return slot, n_slots, order


@njit(cache=True)
def _slot_players(  # type: ignore[no-untyped-def]
    trees, roots, left, right, feature, players, slot, n_slots, unit_of, player_start, size,
    max_depth,
):  # fmt: skip
    """The player of each slot of each unit of ``trees``, from ``player_start[unit]`` on."""
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
                unit = unit_of[node]
                if unit >= 0:  # both leaves of a pair write the same players
                    for j in range(n_slots[node]):
                        out[player_start[unit] + j] = path[j]
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
        n_outputs = 1 if ensemble.tree_output[t] >= 0 else ensemble.value.shape[1]
        lo, hi = bounds[t], bounds[t + 1]
        leaf_d = d[lo:hi][is_leaf[lo:hi]]
        if leaf_d.size == 0 or leaf_d.max() > MAX_TABLE_PLAYERS:
            continue
        n_nodes = hi - lo
        build = _TABLE_HISTOGRAM_COST * n_background * n_nodes
        build += ((leaf_d**2 + leaf_d * n_outputs) * 2.0**leaf_d).sum()
        per_row = n_nodes + _TABLE_LEAF_COST * (leaf_d * n_outputs).sum()
        tables = build + rows * per_row
        pairs = rows * n_background * _PAIR_NODE_COST * max(leaf_d.mean(), 1.0)
        saving[t] = pairs - tables
        # tables (a pair of leaves shares one: this bounds it) and histograms
        memory[t] = 8 * ((leaf_d * n_outputs + 1) * 2.0**leaf_d).sum()
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
    layout = _layout(ensemble, paths, engine)
    equal = bool((weights == weights[0]).all())
    if layout.trees.size == 0:  # e.g. a run of a few rows: nothing to build (or to load)
        base = _mean_output(ensemble.predict(background), weights, equal)
        empty = np.zeros(0, dtype=np.int64)
        return TreeTables(engine, paths, layout.start, np.zeros(0), layout.player_start,
                          empty, weights, base)  # fmt: skip
    hist = np.zeros(int(layout.hist_size))
    # every tree a table tree: the walk that fills the histograms gives the outputs too
    every_tree = layout.trees.size == ensemble.roots.shape[0]
    outputs = np.empty((background.shape[0], ensemble.value.shape[1])) if every_tree else None
    histogram_walk(
        ensemble, background, weights, layout.trees, paths.order, paths.slot,
        layout.hist_start, hist, outputs,
    )  # fmt: skip
    base = _mean_output(ensemble.predict(background) if outputs is None else outputs,
                        weights, equal)  # fmt: skip
    max_d = int(layout.unit_d.max()) if layout.unit_d.size else 0
    w_pos, w_neg = _leaf_weights(max_d)
    tables = np.zeros(int(layout.table_size))
    _fill_tables(
        layout.units, layout.unit_d, layout.start, ensemble.left, ensemble.right, paths.slot,
        layout.hist_start, hist, ensemble.value, layout.unit_lo, layout.unit_hi, w_pos, w_neg,
        tables,
    )  # fmt: skip
    slot_player = _slot_players(
        layout.trees, ensemble.roots, ensemble.left, ensemble.right, ensemble.feature, players,
        paths.slot, paths.n_slots, layout.unit_of, layout.player_start,
        int(layout.player_size), max(ensemble.max_depth, 1),
    )  # fmt: skip
    return TreeTables(
        engine, paths, layout.start, tables, layout.player_start, slot_player, weights, base
    )


def _mean_output(outputs: FloatArray, weights: FloatArray, equal: bool) -> FloatArray:
    """The background's (weighted) mean output: the base value."""
    return outputs.mean(axis=0) if equal else weights @ outputs


@dataclass(frozen=True)
class _Layout:
    """Where each table lives. A unit is a leaf, or the parent of two leaves that split on
    a player new to their path (then the left leaf's failed set says where x went, and
    one table serves both leaves: half the lookups per row)."""

    trees: IntArray  # the table trees
    units: IntArray  # unit nodes
    unit_d: IntArray  # (n_units,) players on the unit's leaves' paths
    unit_lo: IntArray  # (n_units,) the outputs its table covers: [lo, hi)
    unit_hi: IntArray
    unit_of: IntArray  # (n_nodes,) a table leaf's unit (-1 elsewhere)
    start: IntArray  # (n_nodes,) offset of a unit's table (-1 elsewhere)
    table_size: int
    hist_start: IntArray  # (n_nodes,) offset of a table leaf's histogram (-1 elsewhere)
    hist_size: int
    player_start: IntArray  # (n_nodes,) offset of a unit's slots' players
    player_size: int


def _layout(ensemble: TreeEnsemble, paths: TreePaths, engine: np.ndarray) -> _Layout:
    left, right = ensemble.left, ensemble.right
    n_nodes = left.shape[0]
    bounds = np.append(ensemble.roots, n_nodes)
    tree_of = np.repeat(np.arange(ensemble.roots.shape[0]), np.diff(bounds))
    is_leaf = left < 0
    leaf = is_leaf & (engine[tree_of] == ENGINE_TABLES) & (paths.n_slots > 0)
    internal = np.flatnonzero(~is_leaf)
    parent = np.full(n_nodes, -1)
    parent[left[internal]] = internal
    parent[right[internal]] = internal
    # a parent of two table leaves, whose split's player is new on the path
    pairs = internal[leaf[left[internal]] & leaf[right[internal]]]
    pairs = pairs[paths.slot[pairs] == paths.n_slots[pairs]]
    unit_of = np.where(leaf, np.arange(n_nodes), -1)
    unit_of[left[pairs]] = pairs
    unit_of[right[pairs]] = pairs
    units = np.unique(unit_of[leaf]).astype(np.int64)
    unit_d = np.where(is_leaf[units], paths.n_slots[units], paths.n_slots[units] + 1)
    n_outputs = ensemble.value.shape[1]
    k_only = ensemble.tree_output[tree_of[units]]
    unit_lo = np.where(k_only >= 0, k_only, 0).astype(np.int64)
    unit_hi = np.where(k_only >= 0, k_only + 1, n_outputs).astype(np.int64)
    sizes = (unit_hi - unit_lo) * unit_d * 2**unit_d
    start = np.full(n_nodes, -1, dtype=np.int64)
    start[units] = np.cumsum(sizes) - sizes
    player_start = np.full(n_nodes, -1, dtype=np.int64)
    player_start[units] = np.cumsum(unit_d) - unit_d
    # the right leaf of a pair needs no histogram of its own: a background row fails the
    # pair's split on exactly one side, so its histogram is the left one's with that
    # slot's bit flipped
    counted = leaf.copy()
    counted[right[pairs]] = False
    hist_sizes = np.where(counted, 2**paths.n_slots, 0)
    hist_start = np.where(counted, np.cumsum(hist_sizes) - hist_sizes, -1).astype(np.int64)
    return _Layout(
        trees=np.flatnonzero(engine == ENGINE_TABLES).astype(np.int64),
        units=units,
        unit_d=unit_d.astype(np.int64),
        unit_lo=unit_lo,
        unit_hi=unit_hi,
        unit_of=unit_of.astype(np.int64),
        start=start,
        table_size=int(sizes.sum()),
        hist_start=hist_start,
        hist_size=int(hist_sizes.sum()),
        player_start=player_start,
        player_size=int(unit_d.sum()),
    )


def _leaf_weights(max_d: int) -> tuple[FloatArray, FloatArray]:
    from xaicli.methods.shap_tree import _leaf_weights as pair_weights

    return pair_weights(max_d)


@njit(cache=True)
def _leaf_shares(hist, h0, flip, d, sums, popcount, w_pos, w_neg, lose, gain, cut):  # type: ignore[no-untyped-def]
    """A leaf's N, A, C tables (``lose``, ``gain``, ``cut``) from its histogram (at ``h0``,
    indices xor ``flip``: see _layout)."""
    size = 1 << d
    # a histogram holds at most one set per background row: from each set to its supersets
    # costs sum 2^(d-|t|) over its sets, under the ranked transforms' d² 2^d when sparse
    # (always for d <= 8: at most 3^d)
    spread = 0
    for t in range(size):
        if hist[h0 + (t ^ flip)] != 0.0:
            spread += 1 << (d - popcount[t])
    if spread <= d * (d + 1) * size:
        _leaf_shares_sparse(hist, h0, flip, d, popcount, w_pos, w_neg, lose, gain, cut)
        return
    for k in range(d + 1):
        for u in range(size):
            sums[k, u] = 0.0
    for t in range(size):
        sums[popcount[t], t] = hist[h0 + (t ^ flip)]
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
            a_val += s * w_pos[k, q]
            if q > 0:
                n_val += s * w_neg[k, q]
                c_val += s * w_pos[k, q - 1]
        lose[u], gain[u], cut[u] = n_val, a_val, c_val


@njit(cache=True)
def _leaf_shares_sparse(hist, h0, flip, d, popcount, w_pos, w_neg, lose, gain, cut):  # type: ignore[no-untyped-def]
    """:func:`_leaf_shares` by adding each set's weight to every superset u of it."""
    size = 1 << d
    full = size - 1
    for u in range(size):
        lose[u], gain[u], cut[u] = 0.0, 0.0, 0.0
    for t in range(size):
        h = hist[h0 + (t ^ flip)]
        if h == 0.0:
            continue
        k = popcount[t]
        rest = full & ~t
        extra = rest
        while True:  # every subset of rest, rest first
            u = t | extra
            q = d - popcount[u]
            gain[u] += h * w_pos[k, q]
            if q > 0:
                lose[u] += h * w_neg[k, q]
                cut[u] += h * w_pos[k, q - 1]
            if extra == 0:
                break
            extra = (extra - 1) & rest


@njit(cache=True)
def _fill_tables(  # type: ignore[no-untyped-def]
    units, unit_d, start, left, right, slot, hist_start, hist, value, unit_lo, unit_hi,
    w_pos, w_neg, tables,
):  # fmt: skip
    """Each unit's table: for x's failed set f (the left leaf's, for a pair) and slot j,
    the attribution value * share, per output, laid out [output][f][j]."""
    max_d = 0
    for i in range(units.shape[0]):
        max_d = max(max_d, unit_d[i])
    size_max = 1 << max_d
    sums = np.zeros((max_d + 1, size_max))  # S_k[u] = sum of H[t], t ⊆ u, |t| = k
    popcount = np.zeros(size_max, dtype=np.int64)
    for u in range(1, size_max):
        popcount[u] = popcount[u >> 1] + (u & 1)
    lose = np.empty((2, size_max))
    gain = np.empty((2, size_max))
    cut = np.empty((2, size_max))
    for i in range(units.shape[0]):
        node, d = units[i], unit_d[i]
        size = 1 << d
        full = size - 1
        is_pair = left[node] >= 0
        leaves = (left[node], right[node]) if is_pair else (node, node)
        n_leaves = 2 if is_pair else 1
        flip = (1 << slot[node]) if is_pair else 0  # the right leaf's failed set: f ^ flip
        h0 = hist_start[leaves[0]]
        for m in range(n_leaves):
            _leaf_shares(
                hist, h0, flip if m == 1 else 0, d, sums, popcount, w_pos, w_neg,
                lose[m], gain[m], cut[m],
            )  # fmt: skip
        base = start[node]
        for k in range(unit_lo[i], unit_hi[i]):
            v0 = value[leaves[0], k]
            v1 = value[leaves[1], k] if is_pair else 0.0
            for f in range(size):
                row = base + ((k - unit_lo[i]) * size + f) * d
                s0 = full & ~f
                f1 = f ^ flip  # the right leaf's failed set
                s1 = full & ~f1
                for j in range(d):
                    bit = 1 << j
                    if f & bit:
                        share = -lose[0, s0]
                    else:
                        share = gain[0, s0] - cut[0, s0 ^ bit]
                    total = v0 * share
                    if is_pair:
                        if f1 & bit:
                            share = -lose[1, s1]
                        else:
                            share = gain[1, s1] - cut[1, s1 ^ bit]
                        total += v1 * share
                    tables[row + j] = total


def table_values(
    ensemble: TreeEnsemble, X: FloatArray, tables: TreeTables, phi: FloatArray
) -> None:
    """Add to ``phi`` (n_rows, n_outputs, n_players) the table trees' attributions of the
    prepared rows ``X``."""
    table_values_and_predictions(ensemble, X, tables, phi, with_predictions=False)


def table_values_and_predictions(
    ensemble: TreeEnsemble,
    X: FloatArray,
    tables: TreeTables,
    phi: FloatArray,
    *,
    with_predictions: bool = True,
) -> FloatArray | None:
    """:func:`table_values`, and when every tree is a table tree (and ``with_predictions``)
    the model's (n_rows, n_outputs) output on ``X`` from the same walk; else None."""
    trees = np.flatnonzero(tables.engine == ENGINE_TABLES).astype(np.int64)
    every_tree = trees.size == ensemble.roots.shape[0]
    predictions = (
        np.empty((X.shape[0], ensemble.value.shape[1])) if with_predictions and every_tree else None
    )
    if trees.size == 0:
        return predictions  # None: no table tree, or an ensemble without trees
    values_walk(
        ensemble, X, trees, tables.paths.order, tables.paths.slot, tables.paths.n_slots,
        tables.start, tables.player_start, tables.slot_player, tables.tables, phi, predictions,
    )  # fmt: skip
    return predictions
