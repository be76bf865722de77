"""Recognise model structures that admit exact, fast SHAP algorithms."""

from __future__ import annotations

from typing import Any

import numpy as np

# Transformers that act on each input column separately: a linear model after them is
# still additive in the input columns.
PER_COLUMN_TRANSFORMERS = {
    "StandardScaler",
    "MinMaxScaler",
    "MaxAbsScaler",
    "RobustScaler",
    "OneHotEncoder",
    "OrdinalEncoder",
    "SimpleImputer",
    "MissingIndicator",
    "QuantileTransformer",
    "PowerTransformer",
    "KBinsDiscretizer",
    "SplineTransformer",
    "TargetEncoder",
}
# Linear models whose predict (regressors) or decision_function (classifiers) is affine.
AFFINE_LINEAR_MODELS = {
    "LinearRegression",
    "Ridge",
    "RidgeCV",
    "Lasso",
    "LassoCV",
    "ElasticNet",
    "ElasticNetCV",
    "Lars",
    "LarsCV",
    "LassoLars",
    "LassoLarsCV",
    "LassoLarsIC",
    "OrthogonalMatchingPursuit",
    "BayesianRidge",
    "ARDRegression",
    "HuberRegressor",
    "QuantileRegressor",
    "TheilSenRegressor",
    "SGDRegressor",
    "PassiveAggressiveRegressor",
    "LinearSVR",
    "LogisticRegression",
    "LogisticRegressionCV",
    "RidgeClassifier",
    "RidgeClassifierCV",
    "SGDClassifier",
    "Perceptron",
    "PassiveAggressiveClassifier",
    "LinearSVC",
}


def final_estimator(model: Any) -> Any:
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


def is_pipeline(model: Any) -> bool:
    return getattr(model, "steps", None) is not None


def is_additive(model: Any, output_kind: str) -> bool:
    """True when the explained output is affine in the model's internal features and the
    preprocessing acts column by column, so the output is a sum of per-column terms."""
    if output_kind not in ("predict", "decision"):
        return False  # a probability is a nonlinear link of the margin
    last = final_estimator(model)
    if type(last).__name__ not in AFFINE_LINEAR_MODELS:
        return False
    return per_column_steps(model)


def per_column_steps(model: Any) -> bool:
    """True when every step before the last acts on each input column separately."""
    steps = getattr(model, "steps", None) or []
    return all(_per_column(step) for _, step in steps[:-1])


def _per_column(transformer: Any) -> bool:
    if transformer is None or transformer in ("passthrough", "drop"):
        return True
    name = type(transformer).__name__
    if name in PER_COLUMN_TRANSFORMERS:
        return True
    if name == "FunctionTransformer":
        # identity (ColumnTransformer's passthrough remainder) or an elementwise ufunc
        func = getattr(transformer, "func", None)
        return func is None or isinstance(func, np.ufunc)
    if name == "Pipeline":
        return all(_per_column(step) for _, step in transformer.steps)
    if name == "ColumnTransformer":
        parts = list(getattr(transformer, "transformers_", transformer.transformers))
        return all(_per_column(t) for _, t, _ in parts)
    return False
