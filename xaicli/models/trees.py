"""Flatten fitted scikit-learn tree ensembles into numba-friendly arrays.

``extract_tree_ensemble`` turns a supported model into a
:class:`~xaicli.methods.tree_ensemble.TreeEnsemble` whose ``predict`` reproduces the model's output (``predict``, ``predict_proba``
or ``decision_function``) exactly, split decisions and missing-value routing
included. Anything whose output is not a plain sum of trees is refused with
:class:`TreeModelNotSupported` rather than approximated.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.exceptions import NotFittedError
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils.validation import check_is_fitted

from xaicli.methods.base import FloatArray
from xaicli.methods.tree_ensemble import NUMERIC, TreeEnsemble
from xaicli.models.adapter import is_classifier as predicts_classes
from xaicli.models.boosters import booster_family
from xaicli.models.catboost_trees import extract_catboost_ensemble, is_catboost
from xaicli.models.tree_builder import category_table

__all__ = ["OUTPUTS", "TreeModelNotSupported", "extract_tree_ensemble", "may_run_tree_shap"]

#: The model outputs a tree ensemble can be asked to reproduce.
OUTPUTS = ("proba", "decision", "predict")

_FORESTS = (
    RandomForestRegressor,
    RandomForestClassifier,
    ExtraTreesRegressor,
    ExtraTreesClassifier,
)
_SINGLE_TREES = (DecisionTreeRegressor, DecisionTreeClassifier)
_BOOSTED_PROBA_MESSAGE = (
    "the probability of a boosted classifier is a nonlinear function (sigmoid/softmax) of a "
    "sum of trees, so it has no exact TreeSHAP; use `--output decision` to explain the "
    "raw decision function instead"
)


class TreeModelNotSupported(Exception):
    """The model (or the requested output) cannot be explained exactly by TreeSHAP."""


def extract_tree_ensemble(model: Any, output: str) -> TreeEnsemble:
    """Flatten a fitted scikit-learn tree model into a :class:`TreeEnsemble`.

    Parameters
    ----------
    model : fitted estimator
        DecisionTree{Regressor,Classifier}, RandomForest{Regressor,Classifier},
        ExtraTrees{Regressor,Classifier}, GradientBoosting{Regressor,Classifier},
        HistGradientBoosting{Regressor,Classifier} (categorical splits included);
        XGBoost and LightGBM boosters and their scikit-learn-API models.
    output : {"proba", "decision", "predict"}
        The output to reproduce: ``predict`` for regressors, ``predict_proba``
        for (non-boosted) classifiers, ``decision_function`` for boosted
        classifiers, the raw score (margin) for XGBoost and LightGBM models.
        Binary boosted classifiers give one column.

    Raises
    ------
    TreeModelNotSupported
        The model, or this output of it, is not exactly a sum of trees.
    ValueError
        ``output`` is not one of ``OUTPUTS``.
    """
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    name = type(model).__name__
    family = booster_family(model)
    if family is not None:
        return _from_booster(model, output, family)
    if is_catboost(model):
        return extract_catboost_ensemble(model, output, TreeModelNotSupported)
    try:
        check_is_fitted(model)
    except (NotFittedError, TypeError) as exc:
        raise TreeModelNotSupported(f"{name} is not a fitted scikit-learn estimator") from exc
    if isinstance(model, HistGradientBoostingRegressor | HistGradientBoostingClassifier):
        return _from_hist_boosting(model, output)
    if isinstance(model, GradientBoostingRegressor | GradientBoostingClassifier):
        return _from_boosting(model, output)
    if isinstance(model, _FORESTS):
        return _from_forest(model, list(model.estimators_), output)
    if isinstance(model, _SINGLE_TREES):
        return _from_forest(model, [model], output)
    raise TreeModelNotSupported(
        f"{name} is not a supported tree model; supported: DecisionTree, RandomForest, "
        "ExtraTrees, GradientBoosting and HistGradientBoosting regressors and classifiers"
    )


def may_run_tree_shap(model: Any, output: str) -> bool:
    """Whether ``--algorithm auto`` is likely to pick TreeSHAP for this model and
    ``--output`` (before the output is resolved): a supported tree ensemble, bare or at the
    end of a Pipeline, and not the probability of a boosted classifier."""
    final = model.steps[-1][1] if getattr(model, "steps", None) else model
    boosted = (GradientBoostingClassifier, HistGradientBoostingClassifier)
    if isinstance(final, boosted):
        return output == "decision"
    if booster_family(final) is not None or is_catboost(final):
        # the margin always; a regressor's prediction too, unless its objective has a link
        regressor = not predicts_classes(final)
        return output == "decision" or (regressor and output in ("auto", "predict"))
    supported = (
        *_FORESTS,
        *_SINGLE_TREES,
        GradientBoostingRegressor,
        HistGradientBoostingRegressor,
    )
    return isinstance(final, supported)


def _require_output(model: Any, output: str, expected: str) -> None:
    if output != expected:
        kind = "regressor" if expected == "predict" else "classifier"
        raise TreeModelNotSupported(
            f"{type(model).__name__} is a {kind}: explain output {expected!r}, not {output!r}"
        )


def _from_forest(model: Any, trees: list[Any], output: str) -> TreeEnsemble:
    """Single trees and forests: the mean over trees of each tree's prediction."""
    is_classifier = isinstance(model, DecisionTreeClassifier | RandomForestClassifier)
    is_classifier |= isinstance(model, ExtraTreesClassifier)
    _require_output(model, output, "proba" if is_classifier else "predict")
    if is_classifier and model.n_outputs_ != 1:
        raise TreeModelNotSupported(
            f"multi-output {type(model).__name__} is not supported (predict_proba is a list)"
        )
    scale = 1.0 / len(trees)
    parts = []
    for est in trees:
        tree = est.tree_
        if is_classifier:
            # scikit-learn >= 1.4 stores class fractions, older versions counts;
            # predict_proba renormalises either way, so do the same.
            value = tree.value[:, 0, : model.n_classes_].astype(np.float64)
            total = value.sum(axis=1, keepdims=True)
            value = value / np.where(total == 0.0, 1.0, total)
        else:
            value = tree.value[:, :, 0].astype(np.float64)
        parts.append(_sklearn_tree_arrays(tree, value * scale))
    n_outputs = parts[0][-1].shape[1]
    return _assemble(model, parts, np.full(len(parts), -1), np.zeros(n_outputs), True)


def _from_boosting(model: Any, output: str) -> TreeEnsemble:
    """GradientBoosting: init estimator's constant + learning_rate * sum of trees."""
    is_classifier = isinstance(model, GradientBoostingClassifier)
    if is_classifier and output == "proba":
        raise TreeModelNotSupported(f"{type(model).__name__}: {_BOOSTED_PROBA_MESSAGE}")
    _require_output(model, output, "decision" if is_classifier else "predict")
    init = model.init_
    if not (isinstance(init, str) and init == "zero") and not isinstance(
        init, DummyRegressor | DummyClassifier
    ):
        # a user-supplied init estimator makes the offset depend on x
        raise TreeModelNotSupported(
            f"{type(model).__name__} with init={type(init).__name__} is not supported: only "
            "the default (constant) init or init='zero' is a sum of trees"
        )
    # the init prediction is constant, so one row gives it exactly (no re-summing)
    offset = model._raw_predict_init(np.zeros((1, model.n_features_in_)))[0]
    n_iter, n_per_iter = model.estimators_.shape
    parts, tree_output = [], []
    for i in range(n_iter):
        for k in range(n_per_iter):
            tree = model.estimators_[i, k].tree_
            value = np.zeros((tree.node_count, n_per_iter))
            # predict_stages adds learning_rate * value: same product, same rounding
            value[:, k] = model.learning_rate * tree.value[:, 0, 0]
            parts.append(_sklearn_tree_arrays(tree, value))
            tree_output.append(k)
    return _assemble(model, parts, np.array(tree_output), offset, True)


def _from_hist_boosting(model: Any, output: str) -> TreeEnsemble:
    """HistGradientBoosting: baseline + sum of predictor trees (shrinkage is in the leaves)."""
    name = type(model).__name__
    is_classifier = isinstance(model, HistGradientBoostingClassifier)
    if is_classifier and output == "proba":
        raise TreeModelNotSupported(f"{name}: {_BOOSTED_PROBA_MESSAGE}")
    _require_output(model, output, "decision" if is_classifier else "predict")
    if not is_classifier and type(model._loss.link).__name__ != "IdentityLink":
        raise TreeModelNotSupported(
            f"{name}(loss={model.loss!r}) predicts a nonlinear link of a sum of trees, so has "
            "no exact TreeSHAP; use a loss with identity link (e.g. 'squared_error')"
        )
    # With categorical features the trees read the model's preprocessed columns (codes of
    # the categorical columns first, then the numeric ones): xaicli.models.tree_inputs.
    known = _known_categories(model)
    parts, tree_output = [], []
    category_sets: list[np.ndarray] = []
    n_per_iter = model.n_trees_per_iteration_
    for predictors in model._predictors:
        for k, predictor in enumerate(predictors):
            parts.append(_hist_tree_arrays(predictor, k, n_per_iter, known, category_sets))
            tree_output.append(k if n_per_iter > 1 else -1)
    offset = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1)
    ensemble = _assemble(model, parts, np.array(tree_output), offset, False)
    if not category_sets:
        return ensemble
    return replace(
        ensemble,
        split_rule=np.concatenate([p[7] for p in parts]),
        category_bits=category_table(category_sets),
    )


def _from_booster(model: Any, output: str, family: str) -> TreeEnsemble:
    """XGBoost and LightGBM: the trees of the raw score (margin)."""
    name = type(model).__name__
    if output == "proba":
        raise TreeModelNotSupported(f"{name}: {_BOOSTED_PROBA_MESSAGE}")
    if family == "xgboost":
        from xaicli.models.trees_xgboost import IDENTITY_OBJECTIVES, from_xgboost

        ensemble, objective = from_xgboost(model, TreeModelNotSupported)
    else:
        from xaicli.models.trees_lightgbm import IDENTITY_OBJECTIVES, from_lightgbm

        ensemble, objective = from_lightgbm(model, TreeModelNotSupported)
    if output == "predict" and objective not in IDENTITY_OBJECTIVES:
        raise TreeModelNotSupported(
            f"{name} with objective {objective!r} predicts a nonlinear link of a sum of trees, "
            "so its prediction has no exact TreeSHAP; use `--output decision` to explain "
            "the raw score (margin) instead"
        )
    return ensemble


def _sklearn_tree_arrays(tree: Any, value: FloatArray) -> tuple[np.ndarray, ...]:
    """(left, right, feature, threshold, missing_left, depth, value) of a ``tree_``."""
    left = tree.children_left.astype(np.int64)
    is_leaf = left < 0
    # scikit-learn >= 1.3 routes NaN per node; before, trees never saw NaN
    missing = getattr(tree, "missing_go_to_left", np.zeros(tree.node_count, dtype=np.uint8))
    return (
        left,
        tree.children_right.astype(np.int64),
        np.where(is_leaf, -1, tree.feature.astype(np.int64)),
        tree.threshold.astype(np.float64),
        missing.astype(bool),
        np.array(tree.max_depth),
        value,
    )


def _hist_tree_arrays(
    predictor: Any,
    k: int,
    n_outputs: int,
    known: dict[int, np.ndarray],
    category_sets: list[np.ndarray],
) -> tuple[np.ndarray, ...]:
    """The same arrays from a HistGradientBoosting predictor's structured ``nodes``, and
    each node's split rule; appends the categorical splits' sets to ``category_sets``."""
    nodes = predictor.nodes
    is_leaf = nodes["is_leaf"].astype(bool)
    value = np.zeros((len(nodes), n_outputs))
    value[:, k] = nodes["value"]
    missing_left = nodes["missing_go_to_left"].astype(bool)
    rule = np.full(len(nodes), NUMERIC, dtype=np.int64)
    for node in np.flatnonzero(nodes["is_categorical"].astype(bool) & ~is_leaf):
        codes = _bitset_codes(predictor.raw_left_cat_bitsets[nodes["bitset_idx"][node]])
        if missing_left[node]:
            # scikit-learn sends categories unseen in fit the missing values' way
            unseen = np.setdiff1d(
                np.arange(_HIST_CATEGORIES), known[int(nodes["feature_idx"][node])]
            )
            codes = np.union1d(codes, unseen)
        rule[node] = len(category_sets)
        category_sets.append(codes)
    return (
        np.where(is_leaf, -1, nodes["left"].astype(np.int64)),
        np.where(is_leaf, -1, nodes["right"].astype(np.int64)),
        np.where(is_leaf, -1, nodes["feature_idx"].astype(np.int64)),
        nodes["num_threshold"].astype(np.float64),
        missing_left,
        np.array(nodes["depth"].max()),
        value,
        rule,
    )


_HIST_CATEGORIES = 256  # scikit-learn's category bitsets: 8 x 32 bits


def _bitset_codes(bitset: np.ndarray) -> np.ndarray:
    """The codes whose bits are set in a scikit-learn (8,) uint32 bitset."""
    bits = np.unpackbits(
        np.ascontiguousarray(bitset, dtype="<u4").view(np.uint8), bitorder="little"
    )
    return np.flatnonzero(bits)


def _known_categories(model: Any) -> dict[int, np.ndarray]:
    """Preprocessed column -> the category codes seen in fit, for categorical columns."""
    if getattr(model, "_preprocessor", None) is None:
        return {}
    bitsets, f_idx_map = model._bin_mapper.make_known_categories_bitsets()
    categorical = np.flatnonzero(model._is_categorical_remapped)
    return {int(f): _bitset_codes(bitsets[f_idx_map[f]]) for f in categorical}


def _assemble(
    model: Any,
    parts: list[tuple[np.ndarray, ...]],
    tree_output: np.ndarray,
    offset: np.ndarray,
    float32_inputs: bool,
) -> TreeEnsemble:
    """Concatenate per-tree arrays, shifting child indices to global node indices."""
    sizes = np.array([len(p[0]) for p in parts], dtype=np.int64)
    roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    left = np.concatenate(
        [np.where(p[0] < 0, -1, p[0] + r) for p, r in zip(parts, roots, strict=True)]
    )
    right = np.concatenate(
        [np.where(p[1] < 0, -1, p[1] + r) for p, r in zip(parts, roots, strict=True)]
    )
    return TreeEnsemble(
        roots=roots,
        left=left.astype(np.int64),
        right=right.astype(np.int64),
        feature=np.concatenate([p[2] for p in parts]),
        threshold=np.concatenate([p[3] for p in parts]),
        missing_left=np.concatenate([p[4] for p in parts]),
        value=np.ascontiguousarray(np.concatenate([p[6] for p in parts], axis=0)),
        tree_output=np.asarray(tree_output, dtype=np.int64),
        offset=np.asarray(offset, dtype=np.float64).copy(),
        n_features=int(model.n_features_in_),
        float32_inputs=float32_inputs,
        max_depth=int(max(int(p[5]) for p in parts)),
    )
