"""Path-dependent TreeSHAP (Lundberg et al. 2020, Algorithm 2), delegated to the shap
library's compiled implementation.

Unlike every other SHAP algorithm here it does not use the background: the expectation
over absent features follows the training data's cover at each split (an observational,
"tree path dependent" conditional expectation). Offered only on explicit request.
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
