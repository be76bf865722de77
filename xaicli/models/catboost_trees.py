"""CatBoost models: their margin (``RawFormulaVal``), their column names, and their
oblivious trees as a :class:`~xaicli.methods.tree_ensemble.TreeEnsemble`.

A CatBoost symmetric ("oblivious") tree of depth d applies the same split at every node of
a level: level ``l`` sets bit ``l`` of the leaf index when ``float32(x) > border``. That is
the engine's ``x <= threshold`` goes left, with the inputs rounded to float32 and the
float32 border as threshold. A missing value takes the bit its feature's ``nan_mode``
gives: ``Min`` (and ``Forbidden``, where CatBoost compares NaN like any value, so
``NaN > border`` is false) left, ``Max`` right. The margin is
``scale * sum(leaf values) + bias`` (``get_scale_and_bias``); the scale goes into the
leaves and the bias into the offset, in float64 as CatBoost computes them.

The trees are read from the model's own JSON export (``save_model(format="json")``), a
documented format. Features built from categorical columns (CTR target statistics, which
may combine several columns, and one-hot splits on hashed categories) are refused.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from xaicli.methods.tree_ensemble import TreeEnsemble

__all__ = [
    "catboost_margin",
    "catboost_names",
    "extract_catboost_ensemble",
    "is_catboost",
]

# CatBoost's predict transforms the margin for these losses (exp of it, or of its variance
# column): not a sum of trees
_TRANSFORMED_LOSSES = ("Poisson", "Tweedie", "RMSEWithUncertainty")
_BOOSTED_PROBA_MESSAGE = (
    "the probability of a boosted classifier is a nonlinear function (sigmoid/softmax) of a "
    "sum of trees, so it has no exact TreeSHAP; use `--output decision` to explain the "
    "raw decision function instead"
)


def is_catboost(model: Any) -> bool:
    """True for a CatBoost model object (without importing catboost)."""
    return any(
        cls.__module__.startswith("catboost") and cls.__name__ == "CatBoost"
        for cls in type(model).__mro__
    )


def catboost_names(model: Any) -> tuple[tuple[str, ...] | None, int]:
    """(the model's column names, or None when it was fitted without names; its number
    of input columns). A CatBoost model unpickled with joblib reports ``n_features_in_ = 0``
    but keeps ``feature_names_``; unnamed columns are called "0", "1", ..."""
    names = tuple(str(n) for n in (model.feature_names_ or ()))
    if names == tuple(str(i) for i in range(len(names))):
        return None, len(names)
    return names, len(names)


def catboost_margin(model: Any, data: Any) -> np.ndarray:
    """``RawFormulaVal`` of a CatBoost model, or of a Pipeline ending in one."""
    steps = getattr(model, "steps", None)
    if steps:
        data = model[:-1].transform(data)
        model = steps[-1][1]
    return np.asarray(model.predict(data, prediction_type="RawFormulaVal"), dtype=np.float64)


def loss_name(model: Any) -> str:
    loss = model.get_all_params().get("loss_function", "")
    return str(loss).split(":")[0]


def extract_catboost_ensemble(
    model: Any, output: str, unsupported: type[Exception]
) -> TreeEnsemble:
    """The trees of a CatBoost model reproducing ``output`` ("decision": the margin;
    "predict": a regressor's prediction where it equals the margin). Raises
    ``unsupported`` with the reason when they cannot be reproduced exactly."""
    name = type(model).__name__
    is_classifier = getattr(model, "_estimator_type", None) == "classifier"
    if output == "proba":
        raise unsupported(f"{name}: {_BOOSTED_PROBA_MESSAGE}")
    if output == "predict" and loss_name(model).startswith(_TRANSFORMED_LOSSES):
        raise unsupported(
            f"{name}(loss_function={loss_name(model)!r}) predicts a nonlinear transform of the "
            "margin (exp(margin) for Poisson and Tweedie), which is not a sum of trees; use "
            "`--output decision` to explain the margin"
        )
    if output == "predict" and is_classifier:
        raise unsupported(f"{name} is a classifier: explain `--output decision`")
    document = _json_export(model)
    reason = _unsupported_reason(model, document)
    if reason:
        raise unsupported(f"{name} {reason}")
    return _ensemble(document, catboost_names(model)[1])


def _json_export(model: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="xai-catboost-") as folder:
        path = Path(folder) / "model.json"
        model.save_model(str(path), format="json")
        return json.loads(path.read_text(encoding="utf-8"))


def _unsupported_reason(model: Any, document: dict[str, Any]) -> str | None:
    info = document.get("features_info", {})
    if model.get_cat_feature_indices() or info.get("categorical_features") or info.get("ctrs"):
        return (
            "uses categorical features (CTR target statistics, which can combine several "
            "columns, or one-hot splits on hashed categories), which TreeSHAP here cannot "
            "reproduce exactly per input column"
        )
    if info.get("text_features") or info.get("embedding_features"):
        return "uses text or embedding features, which are not splits on one input column"
    if "oblivious_trees" not in document:
        return (
            "has non-symmetric trees (grow_policy Depthwise or Lossguide); exact TreeSHAP "
            "supports CatBoost's default symmetric trees"
        )
    kinds = {s["split_type"] for tree in document["oblivious_trees"] for s in tree["splits"]}
    if kinds - {"FloatFeature"}:
        return f"has splits of type {', '.join(sorted(kinds - {'FloatFeature'}))}, not on numbers"
    return None


def _ensemble(document: dict[str, Any], n_features: int) -> TreeEnsemble:
    floats = document["features_info"]["float_features"]
    scale, bias = document["scale_and_bias"]
    bias = np.atleast_1d(np.asarray(bias, dtype=np.float64))
    n_outputs = bias.shape[0]
    parts = [
        _tree_arrays(tree, floats, float(scale), n_outputs) for tree in document["oblivious_trees"]
    ]
    sizes = np.array([len(p[0]) for p in parts], dtype=np.int64)
    roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

    def shifted(k: int) -> np.ndarray:
        return np.concatenate(
            [np.where(p[k] < 0, -1, p[k] + r) for p, r in zip(parts, roots, strict=True)]
        ).astype(np.int64)

    return TreeEnsemble(
        roots=roots,
        left=shifted(0),
        right=shifted(1),
        feature=np.concatenate([p[2] for p in parts]),
        threshold=np.concatenate([p[3] for p in parts]),
        missing_left=np.concatenate([p[4] for p in parts]),
        value=np.ascontiguousarray(np.concatenate([p[5] for p in parts], axis=0)),
        tree_output=np.full(len(parts), -1, dtype=np.int64),
        offset=bias.copy(),
        n_features=n_features,
        float32_inputs=True,
        max_depth=max(len(tree["splits"]) for tree in document["oblivious_trees"]),
    )


def _tree_arrays(
    tree: dict[str, Any], floats: list[dict[str, Any]], scale: float, n_outputs: int
) -> tuple[np.ndarray, ...]:
    """(left, right, feature, threshold, missing_left, value) of one oblivious tree as a
    full binary tree: level l splits on ``splits[l]``; the leaf reached is the CatBoost
    leaf index whose bit l is 1 where the row went right at level l."""
    splits = tree["splits"]
    depth = len(splits)
    n_internal = (1 << depth) - 1
    n_nodes = n_internal + (1 << depth)
    left = np.full(n_nodes, -1, dtype=np.int64)
    right = np.full(n_nodes, -1, dtype=np.int64)
    feature = np.full(n_nodes, -1, dtype=np.int64)
    threshold = np.zeros(n_nodes)
    missing_left = np.zeros(n_nodes, dtype=bool)
    value = np.zeros((n_nodes, n_outputs))
    leaves = np.asarray(tree["leaf_values"], dtype=np.float64).reshape(-1, n_outputs)
    # heap order: node i has children 2i+1 (bit 0, left) and 2i+2 (bit 1, right)
    for level, split in enumerate(splits):
        column = floats[split["float_feature_index"]]
        for node in range((1 << level) - 1, (1 << (level + 1)) - 1):
            left[node], right[node] = 2 * node + 1, 2 * node + 2
            feature[node] = column["flat_feature_index"]
            threshold[node] = float(np.float32(split["border"]))
            missing_left[node] = column.get("nan_value_treatment") != "AsTrue"
    for position in range(1 << depth):
        # position's binary digits are the path from the root, most significant first;
        # CatBoost's leaf index has the root's bit least significant
        leaf_index = int(format(position, f"0{depth}b")[::-1], 2) if depth else 0
        value[n_internal + position] = scale * leaves[leaf_index]
    return left, right, feature, threshold, missing_left, value
