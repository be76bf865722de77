"""Exact interventional TreeSHAP for tree ensembles (numba).

Lundberg et al. (2020), "From local explanations to global understanding with
explainable AI for trees", Nature Machine Intelligence 2, 56-67 (interventional
Tree SHAP). For a row ``x`` and background rows ``z_1..z_B`` the game is

    v(S) = 1/B sum_b f(x_S, z_b,~S)

and ``phi_i = sum_{S ⊆ N\\{i}} |S|! (M-|S|-1)! / M! [v(S ∪ {i}) - v(S)]``, with
``base_value = 1/B sum_b f(z_b)`` so that ``base_value + sum_i phi_i = f(x)``.

Per (x, z) pair and tree, the traversal keeps the players whose x-branch was
taken (Sx) and those whose z-branch was taken (Sz). Where x and z go the same
way it follows; where they part on a player already in Sx (Sz) it follows x (z);
otherwise it explores both, adding the player to Sx on x's side and to Sz on
z's side. A leaf of value ``v`` reached with ``a = |Sx|``, ``b = |Sz|`` gives
``+v (a-1)! b! / (a+b)!`` to each player of Sx and ``-v a! (b-1)! / (a+b)!`` to
each player of Sz. The membership test makes repeated splits on one feature
along a path exact. Weights are float64 (shap's kernel keeps them in float32,
~1e-7 off) and node indices int64 (shap's are 16-bit; it crashes on trees of
more than 32767 nodes, cf. shap issue #3267).

Instead of looping over Sx and Sz at each leaf, each branching node returns the
two weighted leaf sums of its sub-traversal, and the player that branched there
receives them once: the work per pair is proportional to the visited nodes.

This per-pair engine costs rows x background rows. The table engine
(:mod:`xaicli.methods.shap_tree_tables`) reads the background once, into per-leaf
tables, and costs per row the same whatever the background size; each tree is given to
one of them (:func:`prepare_tables`), with the same values to rounding. Background
weights ``w_b`` (summing to 1) make the game ``v(S) = sum_b w_b f(x_S, z_b,~S)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import comb
from typing import Any

import numpy as np
from numba import njit

from xaicli.methods.base import Attributions, FloatArray, IntArray, select_outputs
from xaicli.methods.registry import Block, MethodSpec, NoParams, register
from xaicli.methods.shap_tree_tables import (
    ENGINE_PAIRS,
    ENGINE_TABLES,
    TreeTables,
    build_tables,
    choose_engines,
    table_values_and_predictions,
    tree_paths,
)
from xaicli.methods.tree_ensemble import TreeEnsemble, route

__all__ = ["interventional_tree_shap", "prepare_tables"]

_FREE, _IN_SX, _IN_SZ = 0, 1, 2


def interventional_tree_shap(
    ensemble: TreeEnsemble,
    X: Any,
    background: Any,
    *,
    groups: Any = None,
    weights: Any = None,
    tables: TreeTables | None = None,
    engine: str = "auto",
) -> Attributions:
    """Exact interventional SHAP values of a tree ensemble.

    Parameters
    ----------
    ensemble : TreeEnsemble
        From :func:`xaicli.models.trees.extract_tree_ensemble`.
    X : array of shape (n_rows, n_features)
        Rows to explain (``NaN`` = missing, routed as the model routes it).
    background : array of shape (n_background, n_features)
        Reference rows.
    groups : int array of shape (n_features,), optional
        Player of each internal feature column (default: identity). Columns of
        one player are switched between x and z together.
    weights : array of shape (n_background,), optional
        The background rows' weights (>= 0, not all 0; default: equal).
    tables : TreeTables, optional
        Built by :func:`prepare_tables` for this ensemble, background, groups and
        weights (once per run); built here when not given.
    engine : {"auto", "tables", "pairs"}
        Which engine explains each tree when ``tables`` is not given: chosen per tree
        from a cost model, or one for all (the values are the same up to rounding).

    Returns
    -------
    Attributions
        values (n_rows, n_outputs, n_players); base_values (n_rows, n_outputs),
        the weighted mean prediction over the background; predictions (n_rows, n_outputs).
    """
    X = ensemble.prepare(X, name="X")
    if tables is None:
        tables = prepare_tables(
            ensemble, background, groups=groups, weights=weights, n_rows=X.shape[0], engine=engine
        )
    players, n_players = _players(groups, ensemble.n_features)
    values = np.zeros((X.shape[0], ensemble.value.shape[1], n_players))
    pair_trees = np.flatnonzero(tables.engine == ENGINE_PAIRS).astype(np.int64)
    if pair_trees.size:  # (the table trees never read the background again)
        background = ensemble.prepare(background, name="background")
        # a path adds each player at most once, and at most one per split
        max_players = min(ensemble.max_depth, n_players)
        w_pos, w_neg = _leaf_weights(max_players)
        equal = bool((tables.weights == tables.weights[0]).all())
        # equal weights: sums divided once at the end, as the unweighted game is defined
        pair_weights = np.ones_like(tables.weights) if equal else tables.weights
        pair_values = _shap_kernel(
            X,
            background,
            pair_trees,
            pair_weights,
            ensemble.roots,
            ensemble.left,
            ensemble.right,
            ensemble.feature,
            ensemble.threshold,
            ensemble.missing_left,
            ensemble.value,
            ensemble.tree_output,
            ensemble.split_rule,
            ensemble.category_bits,
            players,
            n_players,
            max_players + 1,
            w_pos,
            w_neg,
        )
        if equal:
            pair_values /= background.shape[0]
        values += pair_values
    predictions = table_values_and_predictions(ensemble, X, tables, values)
    return Attributions(
        values=values,
        base_values=np.repeat(tables.base[None, :], X.shape[0], axis=0),
        predictions=ensemble.predict(X) if predictions is None else predictions,
    )


def prepare_tables(
    ensemble: TreeEnsemble,
    background: Any,
    *,
    groups: Any = None,
    weights: Any = None,
    n_rows: int = 10_000,
    engine: str = "auto",
    max_table_mb: float | None = None,
) -> TreeTables:
    """What explaining rows against ``background`` needs, built once: each tree's engine
    (for about ``n_rows`` explained rows), the table engine's tables, the base value.
    See :func:`interventional_tree_shap` for the parameters."""
    background = ensemble.prepare(background, name="background")
    if background.shape[0] == 0:
        raise ValueError("background must have at least one row, got 0")
    weights = background_weights(weights, background.shape[0])
    players, _ = _players(groups, ensemble.n_features)
    paths = tree_paths(ensemble, players)
    if engine == "auto":
        engines = choose_engines(
            ensemble, paths, background.shape[0], n_rows, max_table_mb=max_table_mb
        )
    elif engine in ("tables", "pairs"):
        code = ENGINE_TABLES if engine == "tables" else ENGINE_PAIRS
        engines = np.full(ensemble.roots.shape[0], code, dtype=np.int8)
    else:
        raise ValueError(f"engine must be 'auto', 'tables' or 'pairs', got {engine!r}")
    return build_tables(ensemble, background, weights, players, paths, engines)


def background_weights(weights: Any, n_background: int) -> FloatArray:
    """The background rows' weights normalised to sum to 1 (equal when None)."""
    if weights is None:
        return np.full(n_background, 1.0 / n_background)
    arr = np.asarray(weights, dtype=np.float64)
    if arr.shape != (n_background,):
        raise ValueError(
            f"weights must have one value per background row ({n_background}), got shape "
            f"{arr.shape}"
        )
    if not np.isfinite(arr).all() or (arr < 0).any() or not arr.sum() > 0:
        raise ValueError("weights must be finite, >= 0 and not all 0")
    return arr / arr.sum()


def _players(groups: Any, n_features: int) -> tuple[IntArray, int]:
    """Validated player index of each feature column, and the number of players."""
    if groups is None:
        return np.arange(n_features, dtype=np.int64), n_features
    arr = np.asarray(groups)
    if arr.shape != (n_features,) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"groups must be an integer array of shape ({n_features},) mapping each feature "
            f"column to a player, got dtype {arr.dtype} and shape {arr.shape}"
        )
    if n_features and arr.min() < 0:
        raise ValueError(f"groups must be >= 0, got minimum {arr.min()}")
    return arr.astype(np.int64), int(arr.max()) + 1 if n_features else 0


def _leaf_weights(max_players: int) -> tuple[FloatArray, FloatArray]:
    """w_pos[a, b] = (a-1)! b! / (a+b)!, w_neg[a, b] = a! (b-1)! / (a+b)!; (P+1, P+1).

    Exact integers, one rounding: 1 / (a * C(a+b, a)) is the same number.
    """
    size = max_players + 1
    w_pos = np.zeros((size, size))
    w_neg = np.zeros((size, size))
    for a in range(size):
        for b in range(size):
            if a > 0:
                w_pos[a, b] = 1 / (a * comb(a + b, a))
            if b > 0:
                w_neg[a, b] = 1 / (b * comb(a + b, b))
    return w_pos, w_neg


@njit(cache=True)
def _shap_kernel(  # type: ignore[no-untyped-def]
    X, background, trees, bg_weight, roots, left, right, feature, threshold, missing_left, value, tree_output,
    split_rule, category_bits, players, n_players, stack_size, w_pos, w_neg,
):  # fmt: skip
    # One flat function on purpose: numba increfs/decrefs every array argument of
    # a call (inlined or not); as a helper taking arrays the pair walk was 5x slower.
    n_outputs = value.shape[1]
    phi = np.zeros((X.shape[0], n_outputs, n_players))
    state = np.zeros(n_players, dtype=np.int8)
    # one frame per branching node on the current path
    stk_player = np.empty(stack_size, dtype=np.int64)
    stk_dz = np.empty(stack_size, dtype=np.int64)  # z's child, explored second
    stk_on_x = np.empty(stack_size, dtype=np.bool_)  # still exploring x's side
    stk_a = np.empty(stack_size, dtype=np.int64)  # |Sx|, |Sz| above the frame
    stk_b = np.empty(stack_size, dtype=np.int64)
    acc_pos = np.empty((stack_size, n_outputs))  # the frame's x side: sum of v * w_pos
    acc_neg = np.empty((stack_size, n_outputs))  # ... and of v * w_neg
    res_pos = np.empty(n_outputs)  # the sums of a finished leaf or frame, being passed up
    res_neg = np.empty(n_outputs)
    for t in trees:
        k_lo, k_hi = 0, n_outputs
        if tree_output[t] >= 0:
            k_lo, k_hi = tree_output[t], tree_output[t] + 1
        for i in range(X.shape[0]):
            for j in range(background.shape[0]):
                w_j = bg_weight[j]
                if w_j == 0.0:
                    continue
                top, start, a, b = -1, roots[t], 0, 0
                while True:
                    # walk down to a leaf or to a node where x and z part on a free player
                    node, dx, dz = start, -1, -1
                    while left[node] >= 0:
                        f = feature[node]
                        thr, miss = threshold[node], missing_left[node]
                        lo, hi, rule = left[node], right[node], split_rule[node]
                        dx = route(X[i, f], thr, miss, lo, hi, rule, category_bits)
                        s = state[players[f]]
                        if s == _IN_SX:
                            node = dx
                            continue
                        dz = route(background[j, f], thr, miss, lo, hi, rule, category_bits)
                        if dx == dz or s == _IN_SZ:
                            node = dz
                            continue
                        break
                    if left[node] >= 0:
                        # branching: open a frame, explore x's side first
                        top += 1
                        p = players[feature[node]]
                        stk_player[top], stk_dz[top], stk_on_x[top] = p, dz, True
                        stk_a[top], stk_b[top] = a, b
                        state[p] = _IN_SX
                        start, a = dx, a + 1
                        continue
                    if top < 0:
                        break  # x and z share the leaf: every coalition has the same value
                    wp, wn = w_pos[a, b] * w_j, w_neg[a, b] * w_j
                    for k in range(k_lo, k_hi):
                        res_pos[k] = value[node, k] * wp
                        res_neg[k] = value[node, k] * wn
                    # pass sums up until a frame still has its z side to explore
                    while top >= 0:
                        p = stk_player[top]
                        if stk_on_x[top]:
                            for k in range(k_lo, k_hi):
                                phi[i, k, p] += res_pos[k]
                                acc_pos[top, k] = res_pos[k]
                                acc_neg[top, k] = res_neg[k]
                            stk_on_x[top] = False
                            state[p] = _IN_SZ
                            start, a, b = stk_dz[top], stk_a[top], stk_b[top] + 1
                            break
                        for k in range(k_lo, k_hi):
                            phi[i, k, p] -= res_neg[k]
                            res_pos[k] += acc_pos[top, k]
                            res_neg[k] += acc_neg[top, k]
                        state[p] = _FREE
                        top -= 1
                    if top < 0:
                        break
    return phi


@dataclass(frozen=True)
class TreeRows:
    """A block's rows as the trees see them, built by the runner from the model
    (``xaicli.models.tree_inputs``): the trees, the rows and background in the trees'
    input space (n_rows, n_inputs), (n_background, n_inputs), the player of each
    input column (None: one per column), and the run's tables (None: built here). With
    ``interactions`` (``xaicli.methods.shap_tree_interactions.InteractionTables``), the
    block's result is the interaction values of the ``interaction_features`` (indices of
    explained features) instead."""

    ensemble: TreeEnsemble
    rows: FloatArray
    background: FloatArray
    groups: Any = None
    tables: TreeTables | None = None
    interactions: Any = None
    interaction_features: Any = None


def _compute_interventional(block: Block) -> Attributions:
    trees: TreeRows = block.aid
    if trees.interactions is not None:
        return _compute_interactions(block, trees)
    result = interventional_tree_shap(
        trees.ensemble, trees.rows, trees.background, groups=trees.groups, tables=trees.tables
    )
    return select_outputs(_pad_players(result, block.X.shape[1]), block.output_columns)


def _compute_interactions(block: Block, trees: TreeRows) -> Attributions:
    """(n_rows, n_outputs, K, K): the interactions of the kept features, in their order."""
    from xaicli.methods.shap_tree_interactions import interventional_tree_interactions

    # a kept feature beyond the trees' players (a column a Pipeline drops) gets zeros
    result = interventional_tree_interactions(
        trees.ensemble, trees.rows, trees.background, groups=trees.groups,
        tables=trees.interactions, keep=trees.interaction_features,
    )  # fmt: skip
    return select_outputs(result, block.output_columns)


def _compute_path_dependent(block: Block) -> Attributions:
    # The algorithm is shap's own, run on the model: the runner's aid is
    # X (n_rows, M) -> Attributions for every model output.
    return select_outputs(block.aid(block.X), block.output_columns)


def _pad_players(result: Attributions, n_features: int) -> Attributions:
    """Columns a Pipeline drops reach no tree: their attribution is 0."""
    missing = n_features - result.values.shape[2]
    if missing <= 0:
        return result
    pad = np.zeros(result.values.shape[:2] + (missing,))
    return replace(result, values=np.concatenate([result.values, pad], axis=2))


register(MethodSpec("shap", "tree", NoParams, _compute_interventional, aid="tree"))
register(MethodSpec("shap", "tree-path", NoParams, _compute_path_dependent, aid="tree-path"))
