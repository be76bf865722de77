"""What a run derives from the model and the background, built once while planning and
reused by every chunk: the trees' arrays and the background in their input space
(``tree``), a perceptron's later layers and its first layer on the background (the
entries whose aid is ``network`` or ``hybrids``), a boosted classifier's trees behind their
link (``hybrids``: permutation SHAP's walks). The plan carries it to the workers (see
:func:`xaicli.runner.plan.shipped_once`). And, per chunk, the model-specific input a
registry entry asks for (its ``aid``), built from that structure and the model."""

from __future__ import annotations

from typing import Any

import numpy as np

from xaicli.methods.registry import method_spec
from xaicli.models.adapter import ModelPredictor, OutputSpec
from xaicli.runner.choose import Choice
from xaicli.runner.plan import RunPlan, structure_of


def model_structure(
    choice: Choice,
    model: Any,
    predictor: ModelPredictor,
    output: OutputSpec,
    background: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    n_rows: int = 10_000,
    interactions: bool = False,
    interactions_top: int | None = None,
) -> Any:
    """The structure of the chosen SHAP algorithm, or None when it needs none.

    ``predictor`` decodes the background (B, M, encoded); ``output`` is the explained one.
    ``weights``: the background rows' weights (TreeSHAP only); ``n_rows``: the rows the
    run explains, for TreeSHAP's choice of engine per tree. ``interactions``: also the
    interaction tables, and the ``interactions_top`` features whose pairs are written.
    """
    if choice.algorithm == "tree":
        from xaicli.models.tree_inputs import with_interactions, with_tables

        # built to choose the algorithm: kept, not rebuilt; the tables once, for every chunk
        inputs = with_tables(choice.tree_inputs, weights, n_rows)
        if not interactions:
            return inputs
        return with_interactions(
            inputs,
            weights,
            n_rows,
            outputs=output.columns,
            n_features=len(predictor.feature_names),
            top=interactions_top,
        )
    aid = method_spec("shap", choice.algorithm).aid
    if aid not in ("network", "hybrids"):
        return None
    from xaicli.models.network import network_background
    from xaicli.runner.compute import one_blas_thread

    # as the workers compute, so that the bits match theirs
    with one_blas_thread():
        network = network_background(model, output.kind, predictor, background, output.columns)
    if network is not None or aid != "hybrids":
        return network
    from xaicli.models.tree_link import linked_trees

    return linked_trees(model, output, predictor, background)


def block_aid(
    aid: str | None, plan: RunPlan, model: Any, predictor: ModelPredictor, X: np.ndarray
) -> Any:
    """The model-specific input ``aid`` of a registry entry for the encoded rows X."""
    if aid is None:
        return None
    return _AIDS[aid](plan, model, predictor, X)


def _tree_rows(plan: RunPlan, model: Any, predictor: ModelPredictor, X: np.ndarray) -> Any:
    from xaicli.methods.shap_tree import TreeRows
    from xaicli.models.tree_inputs import tree_rows

    inputs = structure_of(plan)  # xaicli.models.tree_inputs.TreeInputs, built while planning
    rows = tree_rows(model, predictor.model_input(X))
    return TreeRows(
        inputs.ensemble,
        rows,
        inputs.background,
        inputs.groups,
        inputs.tables,
        inputs.interactions,
        inputs.interaction_features,
    )


def _path_dependent(plan: RunPlan, model: Any, predictor: ModelPredictor, X: np.ndarray) -> Any:
    """X (n_rows, M) -> shap's path-dependent TreeSHAP of every model output."""
    from dataclasses import replace

    from xaicli.models.boosters import has_margin
    from xaicli.models.shap_tree_path import booster_path_dependent, path_dependent_tree_shap

    order = _model_order(plan)
    back = np.argsort(order)  # model column order -> the explained features' order

    def explain(rows: np.ndarray) -> Any:
        if has_margin(model):  # XGBoost, LightGBM: their own code, on model-facing rows
            result = booster_path_dependent(model, predictor.model_input(rows))
        else:
            result = path_dependent_tree_shap(model, rows[:, order], plan.output.kind)
        return replace(result, values=result.values[:, :, back])

    return explain


def _network_hybrids(plan: RunPlan, model: Any, predictor: ModelPredictor, X: np.ndarray) -> Any:
    """For a recognised perceptron, its outputs on hybrid rows computed from its layers
    (``xaicli.methods.shap_network``); None for any other model. The background's part was
    measured while planning; the chunk's rows are measured through this chunk's predictor,
    which decodes every category code the chunk holds."""
    from xaicli.methods.shap_network import NetworkBackground, NetworkHybrids
    from xaicli.models.network import FirstLayer, network_parts

    network = structure_of(plan)
    if not isinstance(network, NetworkBackground):
        return None
    parts = network_parts(model, plan.output.kind)  # the model's own arrays: nothing built
    if parts is None:
        raise ValueError("the plan's network structure does not match the model")
    first = FirstLayer(parts, predictor, plan.background[0])
    return NetworkHybrids.from_background(network, first.terms)


def _hybrids(plan: RunPlan, model: Any, predictor: ModelPredictor, X: np.ndarray) -> Any:
    """A perceptron's outputs on hybrid rows (as ``network``), or a boosted classifier's
    probabilities along permutation walks from its trees; None for any other model."""
    from xaicli.methods.shap_tree_walks import LinkedTrees, TreeWalks
    from xaicli.models.tree_inputs import tree_rows

    trees = structure_of(plan)
    if not isinstance(trees, LinkedTrees):
        return _network_hybrids(plan, model, predictor, X)
    return TreeWalks(trees, lambda rows: tree_rows(model, predictor.model_input(rows)))


def _model_order(plan: RunPlan) -> np.ndarray:
    """Index of each fitted column (the trees' feature order) among the explained features."""
    if plan.model_columns is None:
        return np.arange(len(plan.features))
    return np.array([plan.features.index(c) for c in plan.model_columns])


_AIDS = {
    "tree": _tree_rows,
    "tree-path": _path_dependent,
    "network": _network_hybrids,
    "hybrids": _hybrids,
}
