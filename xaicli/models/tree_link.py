"""Read a boosted classifier's probability as a link of its trees' margin, so permutation
SHAP can walk its trees instead of calling it (:mod:`xaicli.methods.shap_tree_walks`).

Recognised: any classifier whose margin the tree engine reads (``--output decision``:
scikit-learn's gradient boosting and histogram gradient boosting, LightGBM, XGBoost; bare
or after preprocessing that acts column by column), explained on ``predict_proba``, when
the sigmoid (two classes) or the softmax (more) of that margin gives the model's own
probabilities on the background rows to 1e-12. Anything else (XGBoost's float32
probabilities, a LightGBM ``sigmoid`` parameter, a calibrated wrapper) keeps calling the
model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xaicli.methods.shap_tree_walks import LinkedTrees
from xaicli.models.adapter import ModelPredictor, OutputSpec

#: Largest difference from the model's own probabilities on the background accepted.
TOLERANCE = 1e-12


def linked_trees(
    model: Any, output: OutputSpec, predictor: ModelPredictor, background: np.ndarray
) -> LinkedTrees | None:
    """The trees and link giving the explained probabilities of a boosted classifier, for
    the encoded background (B, M); None for any other model or output."""
    if output.kind != "proba":
        return None
    from xaicli.models.tree_inputs import reads_categories, tree_inputs
    from xaicli.models.trees import TreeModelNotSupported

    frame = predictor.model_input(background)
    if any(predictor.categorical) and not hasattr(model, "steps") and not reads_categories(model):
        return None
    try:
        inputs = tree_inputs(model, "decision", frame, predictor.feature_names)
    except (TreeModelNotSupported, AttributeError, ValueError):
        return None  # not a classifier whose margin the tree engine reads
    n_margin = inputs.ensemble.value.shape[1]
    link = "sigmoid" if n_margin == 1 else "softmax"
    trees = LinkedTrees.measure(
        inputs.ensemble,
        link,
        output.columns or tuple(range(max(n_margin, 2))),
        inputs.background,
        inputs.groups,
        len(predictor.feature_names),
    )
    expected = predictor(background)
    got = _probabilities(trees)
    if got.shape != expected.shape or not np.all(np.abs(got - expected) <= TOLERANCE):
        return None
    return trees


def _probabilities(trees: LinkedTrees) -> np.ndarray:
    """(B, K) the explained probabilities of the background rows from the trees."""
    margin = trees.ensemble.predict(trees.background)
    if trees.link == "sigmoid":
        p = 1.0 / (1.0 + np.exp(-margin[:, 0]))
        probabilities = np.column_stack([1.0 - p, p])
    else:
        shifted = np.exp(margin - margin.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    return probabilities[:, list(trees.columns)]
