"""Compute one chunk's attributions: the code that runs inside a worker."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from xaicli.errors import RunFailure, XaiError
from xaicli.methods.base import Attributions, row_blocks
from xaicli.models.adapter import ModelPredictor
from xaicli.models.loader import load_model
from xaicli.runner.plan import RunPlan

# One entry per worker process: the model is loaded once, not once per chunk.
_MODELS: dict[str, Any] = {}
_PREPARED: dict[tuple[str, str], Any] = {}


def remember_model(key: str, model: Any) -> None:
    """Seed this process's cache (the main process already has the model)."""
    _MODELS[key] = model


def cached_model(plan: RunPlan) -> Any:
    model = _MODELS.get(plan.model_key)
    if model is None:
        model = (
            plan.model_object if plan.model_object is not None else load_model(plan.model_source)
        )
        _MODELS[plan.model_key] = model
    return model


def compute_chunk(
    plan: RunPlan,
    X: np.ndarray,
    row_index: np.ndarray,
    categories: tuple[tuple[Any, ...], ...],
    label: str,
) -> Attributions:
    """Attributions for the encoded rows X (n_rows, n_features) at positions row_index."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        try:
            model = cached_model(plan)
            predictor = ModelPredictor(
                model, plan.output, plan.features, plan.categorical, categories, plan.model_columns
            )
            return _dispatch(plan, model, predictor, X, row_index)
        except XaiError:
            raise
        except Exception as exc:
            raise RunFailure(f"{label} failed: {type(exc).__name__}: {exc}") from exc


def _dispatch(
    plan: RunPlan, model: Any, predictor: ModelPredictor, X: np.ndarray, row_index: np.ndarray
) -> Attributions:
    p = plan.params
    common = {
        "background": plan.background,
        "row_index": row_index,
        "max_eval_rows": plan.max_eval_rows,
    }
    if plan.method == "shap":
        algorithm = plan.algorithm
        if algorithm == "tree":
            from xaicli.methods.shap_tree import interventional_tree_shap

            inputs, background = _tree_inputs(plan, model, predictor)
            result = interventional_tree_shap(
                inputs.ensemble,
                inputs.internal(predictor.model_input(X)),
                background,
                groups=inputs.groups,
            )
            result = _pad_players(result, len(plan.features))
            return select_outputs(result, plan.output.columns)
        if algorithm == "tree-path":
            from xaicli.methods.shap_tree_path import path_dependent_tree_shap

            result = path_dependent_tree_shap(model, _model_order(plan, X), plan.output.kind)
            return select_outputs(result, plan.output.columns)
        if algorithm == "linear":
            from xaicli.methods.shap_linear import explain_linear

            return explain_linear(predictor, X, **common)
        if algorithm == "exact":
            from xaicli.methods.shap_exact import explain_exact

            return explain_exact(predictor, X, **common)
        if algorithm == "kernel":
            from xaicli.methods.shap_kernel import explain_kernel

            return explain_kernel(
                predictor, X, seed=plan.seed, n_samples=p.get("n_samples"), **common
            )
        if algorithm == "permutation":
            from xaicli.methods.shap_permutation import explain_permutation

            return explain_permutation(
                predictor, X, seed=plan.seed, n_samples=p.get("n_samples"), **common
            )
        raise ValueError(f"unknown SHAP algorithm {algorithm!r}")
    categorical = np.array(plan.categorical, dtype=bool)
    if plan.method == "lime":
        from xaicli.methods.lime import explain_lime

        # The shared pool's model outputs are cached in this worker under a key naming
        # the predictor: model, explained outputs, columns, and the categories of the
        # background's codes (the pool holds no others). explain_lime adds the seed,
        # n_samples, background and sampler settings.
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
            **common,
        )
    if plan.method == "ig":
        from xaicli.methods.ig import explain_ig

        return explain_ig(
            predictor,
            X,
            baselines=p["baselines"],
            scale=p["scale"],
            categorical=categorical,
            steps=p.get("steps", 32),
            row_index=row_index,
            max_eval_rows=plan.max_eval_rows,
        )
    if plan.method == "saliency":
        from xaicli.methods.saliency import explain_saliency

        blocks = row_blocks(row_index, 2 * X.shape[1], plan.max_eval_rows)
        return concat_attributions(
            [
                explain_saliency(
                    predictor,
                    X[block],
                    scale=p["scale"],
                    categorical=categorical,
                    max_eval_rows=plan.max_eval_rows,
                )
                for block in blocks
            ]
        )
    raise ValueError(f"unknown method {plan.method!r}")


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


def _tree_inputs(plan: RunPlan, model: Any, predictor: ModelPredictor) -> Any:
    """The trees, their input mapping and the background in their input space; once per worker."""
    key = (plan.model_key, "tree:" + plan.output.kind)
    if key not in _PREPARED:
        from xaicli.models.tree_inputs import tree_inputs

        frame = predictor.model_input(plan.background)
        inputs = tree_inputs(model, plan.output.kind, frame, plan.features)
        _PREPARED[key] = (inputs, inputs.internal(frame))
    return _PREPARED[key]


def _pad_players(result: Attributions, n_features: int) -> Attributions:
    """Columns a Pipeline drops reach no tree: their attribution is 0."""
    missing = n_features - result.values.shape[2]
    if missing <= 0:
        return result
    pad = np.zeros(result.values.shape[:2] + (missing,))
    return replace(result, values=np.concatenate([result.values, pad], axis=2))


def _model_order(plan: RunPlan, X: np.ndarray) -> np.ndarray:
    """Columns in the order the model was fitted on (the tree's feature indices)."""
    if plan.model_columns is None or tuple(plan.model_columns) == tuple(plan.features):
        return X
    order = [plan.features.index(c) for c in plan.model_columns]
    return X[:, order]
