"""XGBoost's trees as a :class:`~xaicli.methods.tree_ensemble.TreeEnsemble`, read from the
booster's JSON model (``save_raw("json")``: the documented schema XGBoost loads back
itself, with node arrays per tree and the intercept).

XGBoost's routing, reproduced per node: inputs are float32, ``x < threshold`` goes left
with a float32 threshold, which for float32 ``x`` is ``x <= nextafter(threshold, -inf)``,
so the engine's ``<=`` takes the same branch; NaN goes the node's default way.
Categorical splits send the categories of their set RIGHT (and categories outside it
left): stored with children swapped. Leaf values are summed in float64.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from xaicli.methods.tree_ensemble import TreeEnsemble
from xaicli.models.boosters import is_bare_booster, xgboost_booster
from xaicli.models.tree_builder import EnsembleBuilder

# objectives whose prediction is the margin itself
IDENTITY_OBJECTIVES = {
    "reg:squarederror",
    "reg:squaredlogerror",
    "reg:pseudohubererror",
    "reg:absoluteerror",
    "reg:quantileerror",
    "reg:linear",
    "binary:logitraw",
    "rank:pairwise",
    "rank:ndcg",
    "rank:map",
}
# base_score is given on the prediction's scale: the intercept is its link
_LOGIT_OBJECTIVES = {"binary:logistic", "reg:logistic"}
_LOG_OBJECTIVES = {"count:poisson", "reg:gamma", "reg:tweedie", "survival:cox"}


def from_xgboost(model: Any, not_supported: type[Exception]) -> tuple[TreeEnsemble, str]:
    """The trees of the model's margin (``output_margin=True``), and its objective."""
    booster = xgboost_booster(model)
    learner = json.loads(booster.save_raw("json"))["learner"]
    objective = str(learner["objective"]["name"])
    gbm = learner["gradient_booster"]
    if gbm["name"] != "gbtree":
        raise not_supported(
            f"XGBoost booster {gbm['name']!r} is not supported; only 'gbtree' models are a "
            "plain sum of trees"
        )
    params = learner["learner_model_param"]
    n_groups = max(int(params.get("num_class", "0")), int(params.get("num_target", "1")), 1)
    trees_model = gbm["model"]
    trees = trees_model["trees"][: _n_trees_predicted(model, trees_model)]
    builder = EnsembleBuilder(n_groups)
    for tree, group in zip(trees, trees_model["tree_info"], strict=False):
        if int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
            raise not_supported(
                "XGBoost multi_strategy='multi_output_tree' (vector leaves) is not supported"
            )
        builder.start_tree(int(group) if n_groups > 1 else -1)
        _add_tree(builder, tree)
    offset = _intercept(params["base_score"], objective, n_groups)
    n_features = int(params["num_feature"])
    return builder.build(offset, n_features, float32_inputs=True), objective


def _n_trees_predicted(model: Any, trees_model: dict[str, Any]) -> int:
    """The trees the model's predict uses: the scikit-learn API stops at the best
    iteration when early stopping found one; a bare booster uses all."""
    n_trees = len(trees_model["trees"])
    if is_bare_booster(model):
        return n_trees
    try:
        best = model.best_iteration
    except AttributeError:
        return n_trees
    if best is None:
        return n_trees
    indptr = trees_model.get("iteration_indptr")
    return int(indptr[best + 1]) if indptr else n_trees


def _add_tree(builder: EnsembleBuilder, tree: dict[str, Any]) -> None:
    left, right = tree["left_children"], tree["right_children"]
    feature, condition = tree["split_indices"], tree["split_conditions"]
    default_left, split_type = tree["default_left"], tree.get("split_type")
    categories = _categories_by_node(tree)
    first = len(builder.left)
    nodes = []
    for node in range(len(left)):
        if left[node] == -1:
            nodes.append(builder.leaf(float(np.float32(condition[node]))))
        elif split_type is not None and split_type[node] == 1:
            # XGBoost's set goes right: our left is its right child
            nodes.append(
                builder.split(
                    int(feature[node]),
                    0.0,
                    not default_left[node],
                    categories=categories.get(node, []),
                )
            )
        else:
            threshold = np.nextafter(np.float32(condition[node]), np.float32(-np.inf))
            nodes.append(
                builder.split(int(feature[node]), float(threshold), bool(default_left[node]))
            )
    for node in range(len(left)):
        if left[node] == -1:
            continue
        lo, hi = first + int(left[node]), first + int(right[node])
        if split_type is not None and split_type[node] == 1:
            lo, hi = hi, lo
        builder.link(nodes[node], lo, hi)


def _categories_by_node(tree: dict[str, Any]) -> dict[int, list[int]]:
    values = tree.get("categories", [])
    segments, sizes = tree.get("categories_segments", []), tree.get("categories_sizes", [])
    return {
        int(node): [int(c) for c in values[int(start) : int(start) + int(size)]]
        for node, start, size in zip(tree.get("categories_nodes", []), segments, sizes, strict=True)
    }


def _intercept(base_score: str, objective: str, n_groups: int) -> np.ndarray:
    """The margin's constant, computed in float32 as XGBoost does."""
    text = base_score.strip("[]")
    score = np.array([float(v) for v in text.split(",")], dtype=np.float32)
    with np.errstate(divide="ignore"):
        if objective in _LOGIT_OBJECTIVES:
            score = -np.log(np.float32(1.0) / score - np.float32(1.0))
        elif objective in _LOG_OBJECTIVES:
            score = np.log(score)
    return np.broadcast_to(score.astype(np.float64), (n_groups,)).copy()
