"""LightGBM's trees as a :class:`~xaicli.methods.tree_ensemble.TreeEnsemble`, read from
``Booster.dump_model()`` (LightGBM's own JSON: thresholds as 17-digit doubles, so exact).

LightGBM's routing, reproduced per node: numeric ``x <= threshold`` in double precision;
missing type ``None`` turns NaN into 0.0 (a fixed direction per node), ``Zero`` sends NaN
and ``|x| <= 1e-35`` the default way, ``NaN`` sends NaN the default way; categorical
splits send the categories of their set left, and other codes, negative ones and NaN
right.
"""

from __future__ import annotations

from typing import Any

from xaicli.methods.tree_ensemble import NUMERIC, ZERO_IS_MISSING, TreeEnsemble
from xaicli.models.boosters import lightgbm_booster
from xaicli.models.tree_builder import EnsembleBuilder

# objectives whose prediction is the raw score itself
IDENTITY_OBJECTIVES = {
    "regression",
    "regression_l1",
    "huber",
    "fair",
    "quantile",
    "mape",
    "lambdarank",
    "rank_xendcg",
    "custom",
}


def lightgbm_objective(dump: dict[str, Any]) -> str:
    return str(dump.get("objective", "custom")).split(" ")[0]


def from_lightgbm(model: Any, not_supported: type[Exception]) -> tuple[TreeEnsemble, str]:
    """The trees of the model's raw score, and its objective's name."""
    booster = lightgbm_booster(model)
    dump = booster.dump_model()  # best iteration if early stopping set one, like predict
    trees = dump["tree_info"]
    if any(tree.get("is_linear") or _has_linear_leaf(tree["tree_structure"]) for tree in trees):
        raise not_supported(
            "LightGBM linear trees (linear_tree=True) add a linear model per leaf, which is "
            "not a sum of constant leaves"
        )
    n_per_iteration = int(dump.get("num_tree_per_iteration", 1))
    n_outputs = max(n_per_iteration, 1)
    # random forest mode averages its trees
    scale = n_per_iteration / len(trees) if dump.get("average_output") and trees else 1.0
    builder = EnsembleBuilder(n_outputs)
    for index, tree in enumerate(trees):
        builder.start_tree(index % n_per_iteration if n_outputs > 1 else -1)
        _add_node(builder, tree["tree_structure"], scale)
    n_features = int(dump.get("max_feature_idx", -1)) + 1
    ensemble = builder.build(0.0, n_features, float32_inputs=False)
    return ensemble, lightgbm_objective(dump)


def _add_node(builder: EnsembleBuilder, node: dict[str, Any], scale: float) -> int:
    if "leaf_value" in node or "split_feature" not in node:
        value = float(node.get("leaf_value", 0.0))
        return builder.leaf(value * scale if scale != 1.0 else value)
    feature = int(node["split_feature"])
    missing_type = node.get("missing_type", "None")
    if node.get("decision_type") == "==":
        categories = [int(c) for c in str(node["threshold"]).split("||")]
        # NaN goes right whatever the missing type (measured against LightGBM's predict)
        split = builder.split(feature, 0.0, False, categories=categories)
    else:
        threshold = float(node["threshold"])
        if missing_type == "Zero":
            split = builder.split(
                feature, threshold, bool(node["default_left"]), rule=ZERO_IS_MISSING
            )
        elif missing_type == "NaN":
            split = builder.split(feature, threshold, bool(node["default_left"]), rule=NUMERIC)
        else:  # None: NaN is read as 0.0
            split = builder.split(feature, threshold, 0.0 <= threshold, rule=NUMERIC)
    left = _add_node(builder, node["left_child"], scale)
    right = _add_node(builder, node["right_child"], scale)
    builder.link(split, left, right)
    return split


def _has_linear_leaf(node: dict[str, Any]) -> bool:
    stack = [node]
    while stack:
        current = stack.pop()
        if "leaf_coeff" in current and current["leaf_coeff"]:
            return True
        stack.extend(current[k] for k in ("left_child", "right_child") if k in current)
    return False
