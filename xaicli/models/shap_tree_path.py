"""Path-dependent TreeSHAP (Lundberg et al. 2020, Algorithm 2), delegated to the shap
library's compiled implementation.

Unlike every other SHAP algorithm here it does not use the background: the expectation
over absent features follows the training data's cover at each split (an observational,
"tree path dependent" conditional expectation). Offered only on explicit request.
XGBoost and LightGBM models use their libraries' own compiled implementation of the same
quantity (``pred_contribs=True``, ``pred_contrib=True``), on the raw score.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xaicli.methods.base import Attributions, FloatArray


def path_dependent_tree_shap(model: Any, X: FloatArray, output_kind: str) -> Attributions:
    """values (n_rows, n_outputs, M) in the model's raw tree output (probability for
    forests, margin for boosted models), base_values shap's expected value."""
    import shap

    if output_kind == "proba" and hasattr(model, "learning_rate"):
        raise ValueError(
            "the probability of a boosted classifier has no exact TreeSHAP; use --output decision"
        )
    explainer = shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")
    raw = explainer.shap_values(X, check_additivity=False)
    values = np.asarray(raw, dtype=np.float64)
    if values.ndim == 2:
        values = values[:, None, :]  # single output
    elif values.shape[0] != X.shape[0]:
        values = values.transpose(1, 0, 2)  # older shap: (outputs, rows, features)
    else:
        values = values.transpose(0, 2, 1)  # (rows, features, outputs) -> (rows, outputs, features)
    base = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
    base_values = np.broadcast_to(base, (X.shape[0], base.shape[0])).copy()
    return Attributions(
        values=values, base_values=base_values, predictions=base_values + values.sum(-1)
    )


def booster_path_dependent(model: Any, data: Any) -> Attributions:
    """XGBoost's or LightGBM's own path-dependent contributions to the raw score for the
    model-facing rows ``data``: values (n_rows, n_outputs, M) in the model's column order
    (XGBoost's in float32, as XGBoost computes them)."""
    from xaicli.models.boosters import booster_family, is_bare_booster, xgboost_booster

    if booster_family(model) == "xgboost":
        import xgboost

        kwargs = {}
        best = None if is_bare_booster(model) else getattr(model, "best_iteration", None)
        if best is not None:  # the scikit-learn API predicts with the best iteration
            kwargs["iteration_range"] = (0, best + 1)
        matrix = xgboost.DMatrix(data, enable_categorical=True)
        raw = xgboost_booster(model).predict(matrix, pred_contribs=True, **kwargs)
        raw = np.asarray(raw, dtype=np.float64)
        if raw.ndim == 2:
            raw = raw[:, None, :]
    else:
        raw = np.asarray(model.predict(data, pred_contrib=True), dtype=np.float64)
        n_rows, width = raw.shape
        n_columns = np.shape(data)[1] + 1  # the features, then the expected value
        raw = raw.reshape(n_rows, width // n_columns, n_columns)
    base_values = raw[:, :, -1].copy()
    values = raw[:, :, :-1]
    return Attributions(
        values=values, base_values=base_values, predictions=base_values + values.sum(-1)
    )
