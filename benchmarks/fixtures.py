"""Deterministic data and fitted models shared by the cases (fitted once per run)."""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np
import pandas as pd


def columns(n_features: int) -> list[str]:
    return [f"x{j:02d}" for j in range(n_features)]


class OpaqueModel:
    """A fitted model behind a plain callable: xai sees a black box (no layers, no trees)."""

    def __init__(self, model) -> None:
        self.model = model

    def __call__(self, X):
        return self.model.predict(X)


def friedman_rows(n: int, seed: int) -> pd.DataFrame:
    """make_friedman1 inputs: 10 uniform features on [0, 1] (5 of them informative)."""
    return pd.DataFrame(np.random.default_rng(seed).random((n, 10)), columns=columns(10))


@cache
def friedman_mlp():
    """MLPRegressor(hidden (32,)) on make_friedman1; fitted on numpy (no column names)."""
    from sklearn.datasets import make_friedman1
    from sklearn.neural_network import MLPRegressor

    X, y = make_friedman1(n_samples=2000, n_features=10, noise=0.0, random_state=0)
    model = MLPRegressor(hidden_layer_sizes=(32,), max_iter=500, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y)


@cache
def tab30_mlp():
    """MLPRegressor(hidden (32,)) on tab30 data; fitted on numpy (no column names)."""
    from sklearn.neural_network import MLPRegressor

    X = tab30_rows(5000, seed=1).to_numpy()
    model = MLPRegressor(hidden_layer_sizes=(32,), max_iter=300, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, tab30_target(X))


def tab30_rows(n: int, seed: int) -> pd.DataFrame:
    """30 standard-normal features; the first 8 drive the target of :func:`tab30_target`."""
    return pd.DataFrame(np.random.default_rng(seed).normal(size=(n, 30)), columns=columns(30))


def tab30_target(X: np.ndarray) -> np.ndarray:
    """Interactions and nonlinearity, so trees split the same features repeatedly."""
    return (
        X[:, 0] * X[:, 1]
        + np.sin(2 * X[:, 2])
        + np.where(X[:, 3] > 0, X[:, 4], -X[:, 5])
        + 0.5 * X[:, 6:8].sum(axis=1)
    )


@cache
def tab30_model(kind: str, n_features: int = 30):
    """A tree ensemble fitted on numpy tab30 data (optionally only its first n_features)."""
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        HistGradientBoostingRegressor,
        RandomForestRegressor,
    )

    X = tab30_rows(5000, seed=1).to_numpy()[:, :n_features]
    y = tab30_target(tab30_rows(5000, seed=1).to_numpy())
    models = {
        "rf": lambda: RandomForestRegressor(100, max_depth=8, random_state=0),
        "rf-small": lambda: RandomForestRegressor(20, max_depth=6, random_state=0),
        "rf-tiny": lambda: RandomForestRegressor(10, max_depth=4, random_state=0),
        "gbr": lambda: GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=0),
        "gbc": lambda: GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0),
        "hgbr": lambda: HistGradientBoostingRegressor(max_iter=100, random_state=0),
    }
    target = (y > np.median(y)).astype(int) if kind == "gbc" else y
    return models[kind]().fit(X, target)


@cache
def breast_cancer() -> tuple[pd.DataFrame, np.ndarray]:
    """sklearn's breast cancer table (569 rows, 30 named features) and its target."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    return data.data, data.target.to_numpy()


@cache
def breast_cancer_model(kind: str):
    """Fitted on the DataFrame, so the model wants named columns (as xai then passes)."""
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = breast_cancer()
    models = {
        "gbc": lambda: GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0),
        # scaled so that the solver converges; the explained model is still a logistic one
        "logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "forest": lambda: RandomForestClassifier(n_estimators=100, random_state=0),
    }
    return models[kind]().fit(X, y)


def breast_cancer_split(n_rows: int, n_background: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows to explain and a background, disjoint seeded samples of the table."""
    X, _ = breast_cancer()
    order = np.random.default_rng(0).permutation(len(X))
    background = X.iloc[order[:n_background]]
    rows = X.iloc[order[n_background : n_background + n_rows]]
    return rows, background


@cache
def tab30_booster(kind: str):
    """XGBoost (100 trees, depth 6) or LightGBM (100 trees, 31 leaves) regressor on tab30
    data, fitted on numpy like :func:`tab30_model`, one thread."""
    X = tab30_rows(5000, seed=1).to_numpy()
    y = tab30_target(X)
    if kind == "xgbr":
        from xgboost import XGBRegressor

        return XGBRegressor(n_estimators=100, max_depth=6, n_jobs=1, random_state=0).fit(X, y)
    from lightgbm import LGBMRegressor

    model = LGBMRegressor(n_estimators=100, num_leaves=31, n_jobs=1, random_state=0, verbose=-1)
    return model.fit(X, y)
