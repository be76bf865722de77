"""One entry per (method, algorithm): adapt a run plan to the method's numpy function.

A new method is one module in ``xaicli.methods``, one function here and one test file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from xaicli.methods.base import Attributions, row_blocks
from xaicli.models.adapter import ModelPredictor
from xaicli.runner.plan import RunPlan, structure_of

#: (plan, model, predictor, X (n_rows, n_features) encoded, row positions) -> Attributions
MethodRunner = Callable[[RunPlan, Any, ModelPredictor, np.ndarray, np.ndarray], Attributions]
REGISTRY: dict[tuple[str, str], MethodRunner] = {}


def register(method: str, algorithm: str = "") -> Callable[[MethodRunner], MethodRunner]:
    def add(runner: MethodRunner) -> MethodRunner:
        REGISTRY[(method, algorithm)] = runner
        return runner

    return add


def run_method(
    plan: RunPlan, model: Any, predictor: ModelPredictor, X: np.ndarray, rows: np.ndarray
) -> Attributions:
    runner = REGISTRY.get((plan.method, plan.algorithm))
    if runner is None:
        raise ValueError(f"no method {plan.method!r} with algorithm {plan.algorithm!r}")
    return runner(plan, model, predictor, X, rows)


def _common(plan: RunPlan, rows: np.ndarray) -> dict[str, Any]:
    return {"background": plan.background, "row_index": rows, "max_eval_rows": plan.max_eval_rows}


@register("shap", "tree")
def _tree(plan, model, predictor, X, rows):
    from xaicli.methods.shap_tree import interventional_tree_shap
    from xaicli.models.tree_inputs import tree_rows

    inputs = structure_of(plan)  # xaicli.models.tree_inputs.TreeInputs, built while planning
    result = interventional_tree_shap(
        inputs.ensemble,
        tree_rows(model, predictor.model_input(X)),
        inputs.background,
        groups=inputs.groups,
    )
    return select_outputs(_pad_players(result, len(plan.features)), plan.output.columns)


@register("shap", "tree-path")
def _tree_path(plan, model, predictor, X, rows):
    from xaicli.models.shap_tree_path import path_dependent_tree_shap

    order = _model_order(plan)
    result = path_dependent_tree_shap(model, X[:, order], plan.output.kind)
    back = np.argsort(order)  # model column order -> the explained features' order
    return select_outputs(replace(result, values=result.values[:, :, back]), plan.output.columns)


@register("shap", "linear")
def _linear(plan, model, predictor, X, rows):
    from xaicli.methods.shap_linear import explain_linear

    return explain_linear(predictor, X, **_common(plan, rows))


@register("shap", "exact")
def _exact(plan, model, predictor, X, rows):
    from xaicli.methods.shap_exact import explain_exact

    hybrids = network_hybrids(plan, model, predictor)
    return explain_exact(predictor, X, hybrids=hybrids, **_common(plan, rows))


@register("shap", "kernel")
def _kernel(plan, model, predictor, X, rows):
    from xaicli.methods.shap_kernel import explain_kernel

    return explain_kernel(
        predictor,
        X,
        seed=plan.seed,
        n_samples=plan.params.get("n_samples"),
        hybrids=network_hybrids(plan, model, predictor),
        **_common(plan, rows),
    )


@register("shap", "permutation")
def _permutation(plan, model, predictor, X, rows):
    from xaicli.methods.shap_permutation import explain_permutation

    return explain_permutation(
        predictor,
        X,
        seed=plan.seed,
        n_samples=plan.params.get("n_samples"),
        hybrids=network_hybrids(plan, model, predictor),
        **_common(plan, rows),
    )


@register("lime")
def _lime(plan, model, predictor, X, rows):
    from xaicli.methods.lime import explain_lime

    p = plan.params
    categorical = np.array(plan.categorical, dtype=bool)
    # The shared pool's model outputs are cached in this worker under a key naming the
    # predictor: model, explained outputs, columns, and the categories of the background's
    # codes (the pool holds no others). explain_lime adds the seed, n_samples, background
    # and sampler settings.
    decoded = []
    for j in np.flatnonzero(categorical):
        codes = plan.background[:, j][~np.isnan(plan.background[:, j])]
        decoded.append(predictor.categories[j][: int(codes.max()) + 1 if codes.size else 0])
    pool_key = repr((plan.model_key, plan.output, plan.features, plan.model_columns, decoded))
    return explain_lime(
        predictor,
        X,
        seed=plan.seed,
        categorical=categorical,
        n_samples=p.get("n_samples") or 5000,
        kernel_width=p.get("kernel_width"),
        discretize=p.get("discretize", True),
        num_features=p.get("num_features"),
        neighbourhood=p.get("lime_neighbourhood", "shared"),
        pool_key=pool_key,
        feature_names=plan.features,
        **_common(plan, rows),
    )


@register("ig")
def _ig(plan, model, predictor, X, rows):
    from xaicli.methods.ig import explain_ig

    p = plan.params
    return explain_ig(
        predictor,
        X,
        baselines=p["baselines"],
        scale=p["scale"],
        categorical=np.array(plan.categorical, dtype=bool),
        steps=p.get("steps", 64),
        feature_names=plan.features,
        row_index=rows,
        max_eval_rows=plan.max_eval_rows,
    )


@register("saliency")
def _saliency(plan, model, predictor, X, rows):
    from xaicli.methods.saliency import explain_saliency

    categorical = np.array(plan.categorical, dtype=bool)
    blocks = row_blocks(rows, 2 * X.shape[1], plan.max_eval_rows)
    return concat_attributions(
        [
            explain_saliency(
                predictor,
                X[b],
                scale=plan.params["scale"],
                categorical=categorical,
                max_eval_rows=plan.max_eval_rows,
            )
            for b in blocks
        ]
    )


def concat_attributions(parts: list[Attributions]) -> Attributions:
    return Attributions(
        values=np.concatenate([p.values for p in parts]),
        base_values=np.concatenate([p.base_values for p in parts]),
        predictions=np.concatenate([p.predictions for p in parts]),
        extras={k: np.concatenate([p.extras[k] for p in parts]) for k in parts[0].extras},
    )


def select_outputs(result: Attributions, columns: tuple[int, ...]) -> Attributions:
    """Keep the explained output columns of a result computed for all of them."""
    if result.values.shape[1] == len(columns) and tuple(columns) == tuple(range(len(columns))):
        return result
    cols = list(columns)
    return Attributions(
        values=result.values[:, cols, :],
        base_values=result.base_values[:, cols],
        predictions=result.predictions[:, cols],
        extras={k: v[:, cols] for k, v in result.extras.items()},
    )


def network_hybrids(plan: RunPlan, model: Any, predictor: ModelPredictor) -> Any:
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


def _pad_players(result: Attributions, n_features: int) -> Attributions:
    """Columns a Pipeline drops reach no tree: their attribution is 0."""
    missing = n_features - result.values.shape[2]
    if missing <= 0:
        return result
    pad = np.zeros(result.values.shape[:2] + (missing,))
    return replace(result, values=np.concatenate([result.values, pad], axis=2))


def _model_order(plan: RunPlan) -> np.ndarray:
    """Index of each fitted column (the trees' feature order) among the explained features."""
    if plan.model_columns is None:
        return np.arange(len(plan.features))
    return np.array([plan.features.index(c) for c in plan.model_columns])
