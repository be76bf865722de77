"""Explain a chunk with the plan's registry entry (``xaicli.methods.registry``).

Nothing here knows a method: the entry's ``compute`` gets the chunk as a ``Block``, and
the model-specific input it asks for (its ``aid``) is built by
:func:`xaicli.runner.structure.block_aid`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xaicli.methods.base import Attributions
from xaicli.methods.registry import Block, method_spec
from xaicli.models.adapter import ModelPredictor
from xaicli.runner.plan import RunPlan
from xaicli.runner.structure import block_aid


def run_method(
    plan: RunPlan, model: Any, predictor: ModelPredictor, X: np.ndarray, rows: np.ndarray
) -> Attributions:
    """Attributions of the encoded rows X (n_rows, n_features) at positions ``rows``."""
    spec = method_spec(plan.method, plan.algorithm)
    block = Block(
        predict=predictor,
        X=X,
        row_index=rows,
        background=plan.background,
        categorical=np.array(plan.categorical, dtype=bool),
        feature_names=plan.features,
        output_columns=plan.output.columns,
        seed=plan.seed,
        max_eval_rows=plan.max_eval_rows,
        params=plan.params,
        state=plan.state,
        aid=block_aid(spec.aid, plan, model, predictor, X),
        predict_key=predict_key(plan, predictor),
    )
    return spec.compute(block)


def predict_key(plan: RunPlan, predictor: ModelPredictor) -> str:
    """Names the predictor on rows made of the background's codes: the model, the explained
    outputs, the columns, and the categories of the background's codes (such rows hold no
    others; a later chunk's predictor may know more categories, but decodes these alike)."""
    decoded = []
    for j in np.flatnonzero(np.array(plan.categorical, dtype=bool)):
        codes = plan.background[:, j][~np.isnan(plan.background[:, j])]
        decoded.append(predictor.categories[j][: int(codes.max()) + 1 if codes.size else 0])
    return repr((plan.model_key, plan.output, plan.features, plan.model_columns, decoded))
