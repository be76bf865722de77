"""Exact interventional Shapley interaction values of a tree ensemble (numba).

The pairwise Shapley interaction index (Grabisch & Roubens 1999; as SHAP interaction
values in Lundberg et al. 2020, Nature Machine Intelligence 2, 56-67) of the game
``v(S) = sum_b w_b f(x_S, z_b,~S)`` that interventional TreeSHAP explains:

    SII_ij = sum_{S ⊆ N\\{i,j}} |S|! (n-|S|-2)! / (n-1)! [v(S+ij) - v(S+i) - v(S+j) + v(S)]

in shap's convention: ``Phi_ij = SII_ij / 2`` off the diagonal, ``Phi_ii = phi_i - sum_{j≠i}
Phi_ij``, so that each row of the matrix sums to the Shapley value ``phi_i`` (and the
whole matrix to ``f(x) - base``). shap computes them for path-dependent TreeSHAP only.

For one leaf of value ``w`` and a pair (x, z), with P the leaf path's players only x
satisfies (p of them) and Q those only z satisfies (q), the game is
``w [P ⊆ S] [S ∩ Q = ∅]`` (0 when a player is satisfied by neither), and

    SII_ij = w (p-2)! q! / (p+q-1)!       i, j in P
             w p! (q-2)! / (p+q-1)!       i, j in Q
           - w (p-1)! (q-1)! / (p+q-1)!   i in P, j in Q
             0                            otherwise.

As in :mod:`xaicli.methods.shap_tree_tables`: with ``s`` the players x satisfies and
``t`` those z fails, the pair counts only when ``t ⊆ s``, with P = t and Q the complement
of s. From the background's histogram ``H[t]`` of failed sets and ``S_k[u] = sum_{t ⊆ u,
|t| = k} H[t]`` (subset sums), six tables per leaf give every pair of a row in O(1):

    E0[u] = sum_k S_k[u] c_QQ(k, d-|u|)                 (Q x Q: E0[s])
    F_m[u] = sum_k S_k[u] c_PQ(k, d-|u|-m),  m = 0, 1   (i in P: F0[s] - F1[s \\ i])
    G_m[u] = sum_k S_k[u] c_PP(k, d-|u|-m),  m = 0..2   (i, j in P: G0[s] - G1[s \\ i]
                                                         - G1[s \\ j] + G2[s \\ ij])

(inclusion-exclusion over the sets t that contain i, or i and j). A row then costs one
walk of each tree plus one lookup per (leaf, pair of its players). Leaves whose paths hold
many distinct players, and trees beyond the memory cap, are explained by a walk per
(row, background row) pair instead, as :func:`xaicli.methods.shap_tree._shap_kernel`
does for the Shapley values, which adds the pair terms at every leaf reached. The
diagonal comes from the Shapley values of :func:`interventional_tree_shap`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import factorial
from typing import Any

import numpy as np
from numba import njit

from xaicli.methods.base import Attributions, FloatArray, IntArray
from xaicli.methods.shap_tree import (
    _players,
    interventional_tree_shap,
    prepare_tables,
)
from xaicli.methods.shap_tree_tables import (
    ENGINE_PAIRS,
    ENGINE_TABLES,
    TreePaths,
    TreeTables,
    engine_counts,
    node_decisions,
    table_memory_cap,
    tree_paths,
)
from xaicli.methods.shap_tree_walk import histogram_walk
from xaicli.methods.tree_ensemble import TreeEnsemble, route

__all__ = [
    "InteractionTables",
    "interaction_values",
    "interventional_tree_interactions",
    "prepare_interactions",
    "top_players",
]

#: Beyond this many players on one path a leaf's tables (6·2^d float64) are never built.
MAX_TABLE_PLAYERS = 16
_N_TABLES = 6  # E0, F0, F1, G0, G1, G2
_E0, _F0, _F1, _G0, _G1, _G2 = range(_N_TABLES)
_ROWS = 256  # explained rows per block of decisions
# Costs in units of one node of a row's walk (see choose_engines in shap_tree_tables)
_HISTOGRAM_COST = 3.0
_PAIR_NODE_COST = 8.0
_FREE, _IN_SX, _IN_SZ = 0, 1, 2


@dataclass(frozen=True, eq=False)
class InteractionTables:
    """What explaining interactions against a background needs, built once per run.

    shap:        the Shapley values' tables (the diagonal), with the background's weights
                 and the base value.
    engine:      (n_trees,) ENGINE_TABLES or ENGINE_PAIRS, for the pair terms.
    start:       (n_nodes,) offset of a table leaf's six tables in ``tables`` (-1 elsewhere).
    tables:      flat float64: per table leaf, [table][set u].
    player_start: (n_nodes,) offset of a table leaf's path players in ``slot_player``.
    slot_player: flat players of the table leaves' slots.
    """

    shap: TreeTables
    engine: np.ndarray
    start: IntArray
    tables: FloatArray
    player_start: IntArray
    slot_player: IntArray

    def engine_counts(self) -> dict[str, int]:
        return engine_counts(self.engine)


def interventional_tree_interactions(
    ensemble: TreeEnsemble,
    X: Any,
    background: Any,
    *,
    groups: Any = None,
    weights: Any = None,
    tables: InteractionTables | None = None,
    engine: str = "auto",
    keep: Any = None,
) -> Attributions:
    """Exact interventional Shapley interaction values of a tree ensemble.

    Parameters
    ----------
    ensemble : TreeEnsemble
        From :func:`xaicli.models.trees.extract_tree_ensemble`.
    X : array of shape (n_rows, n_features)
        Rows to explain (``NaN`` = missing, routed as the model routes it).
    background : array of shape (n_background, n_features)
        Reference rows.
    groups : int array of shape (n_features,), optional
        Player of each feature column (default: identity).
    weights : array of shape (n_background,), optional
        The background rows' weights (>= 0, not all 0; default: equal).
    tables : InteractionTables, optional
        From :func:`prepare_interactions` for this ensemble, background, groups and
        weights; built here when not given.
    engine : {"auto", "tables", "pairs"}
        Which engine gives each tree's pair terms when ``tables`` is not given.
    keep : int array of shape (K,), optional
        The players whose pairs are returned, in this order (default: every player); only
        their K x K matrix is held in memory. A player no tree reads has zeros.

    Returns
    -------
    Attributions
        values (n_rows, n_outputs, K, K), symmetric; with every player kept, each row of a
        matrix sums to the row's Shapley value (the diagonal is always the Shapley value
        minus the pairs with every other player); base_values and predictions
        (n_rows, n_outputs) as :func:`interventional_tree_shap` gives them.
    """
    X = ensemble.prepare(X, name="X")
    if tables is None:
        tables = prepare_interactions(
            ensemble, background, groups=groups, weights=weights, n_rows=X.shape[0], engine=engine
        )
    background = ensemble.prepare(background, name="background")
    players, n_players = _players(groups, ensemble.n_features)
    keep = np.arange(n_players) if keep is None else np.asarray(keep, dtype=np.int64)
    shap = interventional_tree_shap(ensemble, X, background, groups=groups, tables=tables.shap)
    values, totals = interaction_values(ensemble, X, background, players, n_players, tables, keep)
    # the diagonal: what each player's Shapley value leaves after its pairs
    phi = np.zeros(shap.values.shape[:2] + (keep.shape[0],))
    read = keep < n_players
    phi[:, :, read] = shap.values[:, :, keep[read]]
    index = np.arange(keep.shape[0])
    values[:, :, index, index] = phi - totals
    return Attributions(values=values, base_values=shap.base_values, predictions=shap.predictions)


def prepare_interactions(
    ensemble: TreeEnsemble,
    background: Any,
    *,
    groups: Any = None,
    weights: Any = None,
    n_rows: int = 10_000,
    engine: str = "auto",
    max_table_mb: float | None = None,
    shap_tables: TreeTables | None = None,
) -> InteractionTables:
    """Each tree's engine for the pair terms (for about ``n_rows`` rows), the table engine's
    tables within ``max_table_mb`` (default ``XAI_TREE_TABLE_MB``), and the Shapley
    values' tables (``shap_tables`` when given). See
    :func:`interventional_tree_interactions` for the other parameters."""
    background = ensemble.prepare(background, name="background")
    if background.shape[0] == 0:
        raise ValueError("background must have at least one row, got 0")
    if shap_tables is None:
        shap_tables = prepare_tables(
            ensemble, background, groups=groups, weights=weights, n_rows=n_rows,
            max_table_mb=max_table_mb,
        )  # fmt: skip
    weights = shap_tables.weights  # normalised once, for both tables
    if weights.shape[0] != background.shape[0]:
        raise ValueError("shap_tables were built for another background")
    players, _ = _players(groups, ensemble.n_features)
    paths = tree_paths(ensemble, players)
    if engine == "auto":
        cap = table_memory_cap() if max_table_mb is None else max_table_mb
        engines = _choose_engines(ensemble, paths, background.shape[0], n_rows, cap)
    elif engine in ("tables", "pairs"):
        engines = np.full(
            ensemble.roots.shape[0], ENGINE_TABLES if engine == "tables" else ENGINE_PAIRS,
            dtype=np.int8,
        )  # fmt: skip
        if engine == "tables":  # a tree a table cannot hold still gets the pair walk
            engines[_too_wide(ensemble, paths)] = ENGINE_PAIRS
    else:
        raise ValueError(f"engine must be 'auto', 'tables' or 'pairs', got {engine!r}")
    return _build(ensemble, background, weights, players, paths, engines, shap_tables)


def top_players(
    ensemble: TreeEnsemble,
    background: FloatArray,
    tables: TreeTables,
    *,
    groups: Any = None,
    outputs: tuple[int, ...] = (0,),
    n_players: int | None = None,
    top: int | None = None,
) -> IntArray:
    """The ``top`` players of largest mean |Shapley value| over the background rows
    (weighted as the game weights them, averaged over the ``outputs`` columns), in player
    order; every player when ``top`` is None or covers them all. Ties go to the earlier
    player. ``n_players``: players beyond the trees' (columns no tree reads) count 0."""
    players, n_tree_players = _players(groups, ensemble.n_features)
    n_players = max(n_players or 0, n_tree_players)
    if top is None or top >= n_players:
        return np.arange(n_players, dtype=np.int64)
    phi = interventional_tree_shap(ensemble, background, background, groups=groups, tables=tables)
    magnitude = np.zeros(n_players)
    magnitude[:n_tree_players] = np.abs(phi.values[:, list(outputs), :]).mean(axis=1).T @ (
        tables.weights
    )
    order = np.argsort(-magnitude, kind="stable")[:top]
    return np.sort(order).astype(np.int64)


def interaction_values(
    ensemble: TreeEnsemble,
    X: FloatArray,
    background: FloatArray,
    players: IntArray,
    n_players: int,
    tables: InteractionTables,
    keep: IntArray,
) -> tuple[FloatArray, FloatArray]:
    """(n_rows, n_outputs, K, K) the off-diagonal ``SII_ij / 2`` of the prepared rows ``X``
    among the ``keep`` players (the diagonal left 0), and (n_rows, n_outputs, K) each kept
    player's sum of them over every other player."""
    n_outputs = ensemble.value.shape[1]
    values = np.zeros((X.shape[0], n_outputs, keep.shape[0], keep.shape[0]))
    totals = np.zeros((X.shape[0], n_outputs, keep.shape[0]))
    kept = np.full(n_players, -1, dtype=np.int64)  # player -> its place in keep, or -1
    read = keep < n_players
    kept[keep[read]] = np.flatnonzero(read)
    table_trees = np.flatnonzero(tables.engine == ENGINE_TABLES).astype(np.int64)
    if table_trees.size and tables.tables.size:
        for lo in range(0, X.shape[0], _ROWS):
            goes_left = node_decisions(ensemble, X[lo : lo + _ROWS])
            _table_rows(
                goes_left, table_trees, ensemble.roots, ensemble.left, ensemble.right,
                tables.shap.paths.order, tables.shap.paths.slot, tables.shap.paths.n_slots,
                ensemble.tree_output, ensemble.value, tables.start, tables.tables,
                tables.player_start, tables.slot_player, kept, values[lo : lo + _ROWS],
                totals[lo : lo + _ROWS],
            )  # fmt: skip
    pair_trees = np.flatnonzero(tables.engine == ENGINE_PAIRS).astype(np.int64)
    if pair_trees.size:
        max_players = min(ensemble.max_depth, n_players)
        c_pp, c_qq, c_pq = _pair_weights(max_players)
        _pair_kernel(
            X, background, pair_trees, tables.shap.weights, ensemble.roots, ensemble.left,
            ensemble.right, ensemble.feature, ensemble.threshold, ensemble.missing_left,
            ensemble.value, ensemble.tree_output, ensemble.split_rule, ensemble.category_bits,
            players, n_players, max(ensemble.max_depth, 1), c_pp, c_qq, c_pq, kept, values,
            totals,
        )  # fmt: skip
    return values, totals


def _pair_weights(max_players: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """c_PP[p, q] = (p-2)! q! / (p+q-1)!, c_QQ[p, q] = p! (q-2)! / (p+q-1)!,
    c_PQ[p, q] = (p-1)! (q-1)! / (p+q-1)!; (P+1, P+1), 0 where undefined. Exact
    fractions, one rounding each."""
    size = max_players + 1
    c_pp, c_qq, c_pq = np.zeros((size, size)), np.zeros((size, size)), np.zeros((size, size))
    f = [factorial(k) for k in range(2 * size + 1)]
    for p in range(size):
        for q in range(size):
            if p + q < 2:
                continue
            whole = f[p + q - 1]
            if p >= 2:
                c_pp[p, q] = float(Fraction(f[p - 2] * f[q], whole))
            if q >= 2:
                c_qq[p, q] = float(Fraction(f[p] * f[q - 2], whole))
            if p >= 1 and q >= 1:
                c_pq[p, q] = float(Fraction(f[p - 1] * f[q - 1], whole))
    return c_pp, c_qq, c_pq


def _leaf_d(ensemble: TreeEnsemble, paths: TreePaths) -> list[np.ndarray]:
    """Per tree, the number of players on each leaf's path."""
    bounds = np.append(ensemble.roots, ensemble.left.shape[0])
    is_leaf = ensemble.left < 0
    return [
        paths.n_slots[lo:hi][is_leaf[lo:hi]] for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def _too_wide(ensemble: TreeEnsemble, paths: TreePaths) -> np.ndarray:
    return np.array([d.max(initial=0) > MAX_TABLE_PLAYERS for d in _leaf_d(ensemble, paths)])


def _choose_engines(
    ensemble: TreeEnsemble, paths: TreePaths, n_background: int, n_rows: int, cap_mb: float
) -> np.ndarray:
    """Tables for the trees they save the most time on, within the memory cap; a leaf of
    d players costs 6·2^d float64 and its histogram 2^d."""
    n_trees = ensemble.roots.shape[0]
    engine = np.full(n_trees, ENGINE_PAIRS, dtype=np.int8)
    saving, memory = np.zeros(n_trees), np.zeros(n_trees)
    bounds = np.append(ensemble.roots, ensemble.left.shape[0])
    rows = max(n_rows, 1)
    for t, leaf_d in enumerate(_leaf_d(ensemble, paths)):
        d = leaf_d[leaf_d >= 2].astype(np.float64)
        if d.size == 0 or d.max() > MAX_TABLE_PLAYERS:
            continue
        n_nodes = bounds[t + 1] - bounds[t]
        n_outputs = 1 if ensemble.tree_output[t] >= 0 else ensemble.value.shape[1]
        build = _HISTOGRAM_COST * n_background * n_nodes + (d**2 * 2.0**d).sum()
        per_row = n_nodes + (d * (d - 1) / 2 * n_outputs).sum()
        pairs = n_background * (_PAIR_NODE_COST * n_nodes + (d**2 * n_outputs).mean())
        saving[t] = rows * pairs - (build + rows * per_row)
        memory[t] = 8 * ((_N_TABLES + 1) * 2.0**d).sum()
    budget = cap_mb * 2**20
    for t in np.argsort(-saving, kind="stable"):
        if saving[t] <= 0 or memory[t] > budget:
            continue
        engine[t] = ENGINE_TABLES
        budget -= memory[t]
    return engine


def _build(
    ensemble: TreeEnsemble,
    background: FloatArray,
    weights: FloatArray,
    players: IntArray,
    paths: TreePaths,
    engine: np.ndarray,
    shap_tables: TreeTables,
) -> InteractionTables:
    n_nodes = ensemble.left.shape[0]
    bounds = np.append(ensemble.roots, n_nodes)
    tree_of = np.repeat(np.arange(ensemble.roots.shape[0]), np.diff(bounds))
    # leaves of one player or none have no pairs: no table
    leaf = (ensemble.left < 0) & (engine[tree_of] == ENGINE_TABLES) & (paths.n_slots >= 2)
    d = np.where(leaf, paths.n_slots, 0)
    sizes = np.where(leaf, 2**d, 0)
    hist_start = np.where(leaf, np.cumsum(sizes) - sizes, -1).astype(np.int64)
    start = np.where(leaf, _N_TABLES * (np.cumsum(sizes) - sizes), -1).astype(np.int64)
    player_start = np.where(leaf, np.cumsum(d) - d, -1).astype(np.int64)
    trees = np.flatnonzero(engine == ENGINE_TABLES).astype(np.int64)
    tables = np.zeros(_N_TABLES * int(sizes.sum()))
    slot_player = np.zeros(int(d.sum()), dtype=np.int64)
    if trees.size and leaf.any():
        hist = np.zeros(int(sizes.sum()))
        histogram_walk(
            ensemble, background, weights, trees, paths.order, paths.slot, hist_start, hist
        )
        c_pp, c_qq, c_pq = _pair_weights(int(d.max()))
        _fill_tables(np.flatnonzero(leaf), d, hist_start, hist, start, c_pp, c_qq, c_pq, tables)
        _leaf_players(
            trees, ensemble.roots, ensemble.left, ensemble.right, ensemble.feature, players,
            paths.slot, player_start, max(ensemble.max_depth, 1), slot_player,
        )  # fmt: skip
    return InteractionTables(shap_tables, engine, start, tables, player_start, slot_player)


@njit(cache=True)
def _fill_tables(leaves, d_of, hist_start, hist, start, c_pp, c_qq, c_pq, tables):  # type: ignore[no-untyped-def]
    """Each table leaf's E0, F0, F1, G0, G1, G2 (see the module's docstring)."""
    max_d = 0
    for node in leaves:
        max_d = max(max_d, d_of[node])
    size_max = 1 << max_d
    sums = np.zeros((max_d + 1, size_max))
    popcount = np.zeros(size_max, dtype=np.int64)
    for u in range(1, size_max):
        popcount[u] = popcount[u >> 1] + (u & 1)
    for node in leaves:
        d = d_of[node]
        size = 1 << d
        h0 = hist_start[node]
        for k in range(d + 1):
            for u in range(size):
                sums[k, u] = 0.0
        for t in range(size):
            sums[popcount[t], t] = hist[h0 + t]
        for k in range(d + 1):
            for j in range(d):
                bit = 1 << j
                for u in range(size):
                    if u & bit:
                        sums[k, u] += sums[k, u ^ bit]
        base = start[node]
        for u in range(size):
            q = d - popcount[u]
            e0, f0, f1, g0, g1, g2 = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
            for k in range(popcount[u] + 1):
                s = sums[k, u]
                if s == 0.0:
                    continue
                e0 += s * c_qq[k, q]
                f0 += s * c_pq[k, q]
                g0 += s * c_pp[k, q]
                if q >= 1:
                    f1 += s * c_pq[k, q - 1]
                    g1 += s * c_pp[k, q - 1]
                if q >= 2:
                    g2 += s * c_pp[k, q - 2]
            tables[base + _E0 * size + u] = e0
            tables[base + _F0 * size + u] = f0
            tables[base + _F1 * size + u] = f1
            tables[base + _G0 * size + u] = g0
            tables[base + _G1 * size + u] = g1
            tables[base + _G2 * size + u] = g2


@njit(cache=True)
def _leaf_players(  # type: ignore[no-untyped-def]
    trees, roots, left, right, feature, players, slot, player_start, max_depth, out
):  # fmt: skip
    """The player of each slot of each table leaf, from ``player_start[leaf]`` on."""
    path = np.empty(max_depth + 1, dtype=np.int64)
    depth = np.empty(left.shape[0], dtype=np.int64)  # slots set above a node
    stack = np.empty(2 * max_depth + 2, dtype=np.int64)
    for t in trees:
        top = 0
        stack[0] = roots[t]
        depth[roots[t]] = 0
        while top >= 0:
            node = stack[top]
            top -= 1
            if left[node] < 0:
                if player_start[node] >= 0:
                    for j in range(depth[node]):
                        out[player_start[node] + j] = path[j]
                continue
            j = slot[node]
            path[j] = players[feature[node]]
            below = max(depth[node], j + 1)
            depth[left[node]] = below
            depth[right[node]] = below
            stack[top + 1] = right[node]
            stack[top + 2] = left[node]
            top += 2


@njit(cache=True)
def _table_rows(  # type: ignore[no-untyped-def]
    goes_left, trees, roots, left, right, order, slot, n_slots, tree_output, value, start,
    tables, player_start, slot_player, kept, phi, totals,
):  # fmt: skip
    """Add the table trees' ``SII_ij / 2`` of a block of rows to ``phi`` (rows, outputs,
    K, K) for the pairs of kept players, and to ``totals`` (rows, outputs, K) for every
    pair with a kept player (``kept``: player -> its place, or -1)."""
    n_rows = goes_left.shape[1]
    n_outputs = value.shape[1]
    most = 0
    for t in range(roots.shape[0]):
        last = roots[t + 1] if t + 1 < roots.shape[0] else left.shape[0]
        most = max(most, last - roots[t])
    failed = np.zeros((most, n_rows), dtype=np.int64)
    for t in trees:
        k_lo, k_hi = 0, n_outputs
        if tree_output[t] >= 0:
            k_lo, k_hi = tree_output[t], tree_output[t] + 1
        first = roots[t]
        last = roots[t + 1] if t + 1 < roots.shape[0] else left.shape[0]
        failed[order[first] - first, :] = 0
        for idx in range(first, last):
            node = order[idx]
            here = failed[node - first]
            if left[node] >= 0:
                bit = np.int64(1) << slot[node]
                go = goes_left[node]
                lo, hi = left[node] - first, right[node] - first
                for r in range(n_rows):
                    failed[lo, r] = here[r] if go[r] else here[r] | bit
                    failed[hi, r] = here[r] | bit if go[r] else here[r]
                continue
            base = start[node]
            if base < 0:
                continue
            d = n_slots[node]
            size = 1 << d
            full = size - 1
            p0 = player_start[node]
            for r in range(n_rows):
                s = full & ~here[r]  # the players x satisfies
                for a in range(d):
                    bit_a = 1 << a
                    pa = slot_player[p0 + a]
                    for b in range(a + 1, d):
                        bit_b = 1 << b
                        pb = slot_player[p0 + b]
                        a_in, b_in = (s & bit_a) != 0, (s & bit_b) != 0
                        if a_in and b_in:
                            share = (
                                tables[base + _G0 * size + s]
                                - tables[base + _G1 * size + (s ^ bit_a)]
                                - tables[base + _G1 * size + (s ^ bit_b)]
                                + tables[base + _G2 * size + (s ^ bit_a ^ bit_b)]
                            )
                        elif a_in:
                            share = -(
                                tables[base + _F0 * size + s]
                                - tables[base + _F1 * size + (s ^ bit_a)]
                            )
                        elif b_in:
                            share = -(
                                tables[base + _F0 * size + s]
                                - tables[base + _F1 * size + (s ^ bit_b)]
                            )
                        else:
                            share = tables[base + _E0 * size + s]
                        if share == 0.0:
                            continue
                        ka, kb = kept[pa], kept[pb]
                        for k in range(k_lo, k_hi):
                            half = 0.5 * value[node, k] * share
                            if ka >= 0:
                                totals[r, k, ka] += half
                                if kb >= 0:
                                    phi[r, k, ka, kb] += half
                                    phi[r, k, kb, ka] += half
                            if kb >= 0:
                                totals[r, k, kb] += half


@njit(cache=True)
def _pair_kernel(  # type: ignore[no-untyped-def]
    X, background, trees, bg_weight, roots, left, right, feature, threshold, missing_left,
    value, tree_output, split_rule, category_bits, players, n_players, max_depth, c_pp, c_qq,
    c_pq, kept, phi, totals,
):  # fmt: skip
    """Add the trees' ``SII_ij / 2`` to ``phi`` by a walk per (row, background row) pair:
    where x and z part on a player not yet decided, both sides are explored, the player
    joining Sx (P) on x's side and Sz (Q) on z's; each leaf reached adds its pair terms
    (to ``phi`` and ``totals`` as in :func:`_table_rows`)."""
    n_outputs = value.shape[1]
    state = np.zeros(n_players, dtype=np.int8)
    sx = np.empty(max_depth + 1, dtype=np.int64)
    sz = np.empty(max_depth + 1, dtype=np.int64)
    # frames: (kind, node or player, node): 0 visit node; 1 move player to Sz, visit node;
    # 2 free player (its subtree is done)
    size = 3 * max_depth + 3
    kind = np.empty(size, dtype=np.int64)
    arg = np.empty(size, dtype=np.int64)
    arg2 = np.empty(size, dtype=np.int64)
    for t in trees:
        k_lo, k_hi = 0, n_outputs
        if tree_output[t] >= 0:
            k_lo, k_hi = tree_output[t], tree_output[t] + 1
        for i in range(X.shape[0]):
            for j in range(background.shape[0]):
                w_j = bg_weight[j]
                if w_j == 0.0:
                    continue
                a, b, top = 0, 0, 0
                kind[0], arg[0] = 0, roots[t]
                while top >= 0:
                    what, node = kind[top], arg[top]
                    top -= 1
                    if what == 2:
                        state[node] = _FREE
                        b -= 1
                        continue
                    if what == 1:
                        state[node] = _IN_SZ
                        a -= 1
                        sz[b] = node
                        b += 1
                        node = arg2[top + 1]
                    while left[node] >= 0:
                        f = feature[node]
                        lo, hi, rule = left[node], right[node], split_rule[node]
                        thr, miss = threshold[node], missing_left[node]
                        dx = route(X[i, f], thr, miss, lo, hi, rule, category_bits)
                        p = players[f]
                        if state[p] == _IN_SX:
                            node = dx
                            continue
                        dz = route(background[j, f], thr, miss, lo, hi, rule, category_bits)
                        if dx == dz or state[p] == _IN_SZ:
                            node = dz
                            continue
                        # x and z part on a free player: x's side now, z's side after
                        state[p] = _IN_SX
                        sx[a] = p
                        a += 1
                        kind[top + 1], arg[top + 1] = 2, p
                        kind[top + 2], arg[top + 2], arg2[top + 2] = 1, p, dz
                        top += 2
                        node = dx
                    if a + b < 2:
                        continue
                    # the pairs in order: Sx x Sx, Sx x Sz, Sz x Sz (members = Sx then Sz)
                    for k in range(k_lo, k_hi):
                        half = 0.5 * w_j * value[node, k]
                        if half == 0.0:
                            continue
                        for u in range(a + b):
                            pu = sx[u] if u < a else sz[u - a]
                            for v in range(u + 1, a + b):
                                pv = sx[v] if v < a else sz[v - a]
                                if v < a:
                                    term = half * c_pp[a, b]
                                elif u < a:
                                    term = -half * c_pq[a, b]
                                else:
                                    term = half * c_qq[a, b]
                                ku, kv = kept[pu], kept[pv]
                                if ku >= 0:
                                    totals[i, k, ku] += term
                                    if kv >= 0:
                                        phi[i, k, ku, kv] += term
                                        phi[i, k, kv, ku] += term
                                if kv >= 0:
                                    totals[i, k, kv] += term
