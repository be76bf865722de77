"""Permutation SHAP on a boosted classifier's probability through its trees: the walks are
checked against the model's own predict_proba on the same hybrid rows, and the whole
method against the generic path that calls the model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from xaicli.methods.shap_permutation import explain_permutation
from xaicli.methods.shap_tree_walks import TreeWalks
from xaicli.models.adapter import ModelPredictor, OutputSpec
from xaicli.models.codec import FeatureCodec
from xaicli.models.tree_inputs import tree_rows
from xaicli.models.tree_link import linked_trees

RNG = np.random.default_rng(0)
N_FEATURES = 14  # more than 12: auto samples permutations


def _numeric_data(n: int = 300, missing: bool = False) -> tuple[np.ndarray, np.ndarray]:
    X = RNG.normal(size=(n, N_FEATURES))
    y = X[:, 0] * X[:, 1] + np.sin(X[:, 2]) + X[:, 3] - X[:, 4] ** 2
    if missing:
        X[RNG.random(X.shape) < 0.1] = np.nan
    return X, y


def _model(kind: str):
    """(fitted model, encoded rows, predictor of its probabilities)."""
    X, y = _numeric_data(missing="missing" in kind)
    if kind == "gradient boosting, two classes":
        model = GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=0)
        model.fit(X, y > np.median(y))
    elif kind == "histogram boosting, three classes, missing values":
        model = HistGradientBoostingClassifier(max_iter=30, random_state=0)
        model.fit(X, np.digitize(y, np.nanquantile(y, [0.33, 0.66])))
    elif kind == "lightgbm, two classes":
        lightgbm = pytest.importorskip("lightgbm")
        model = lightgbm.LGBMClassifier(n_estimators=30, num_leaves=8, verbose=-1)
        model.fit(X, y > np.median(y))
    else:
        raise ValueError(kind)
    names = tuple(f"f{j}" for j in range(N_FEATURES))
    return model, X, _predictor(model, names)


def _predictor(model, names, categorical=None, categories=None, columns=None):
    n = len(names)
    classes = tuple(range(len(model.classes_)))
    return ModelPredictor(
        model,
        OutputSpec("proba", classes, tuple(str(c) for c in classes)),
        tuple(names),
        tuple(categorical or (False,) * n),
        tuple(categories or ((),) * n),
        columns,
    )


def _walks(model, predictor, background):
    trees = linked_trees(model, predictor.output, predictor, background)
    assert trees is not None
    return TreeWalks(trees, lambda rows: tree_rows(model, predictor.model_input(rows)))


def _hybrid_outputs(predictor, x, background, orders):
    """The model's own outputs after each prefix of each ordering: (g, O, M-1, B, K)."""
    g, n_orders, n_background, m = orders.shape
    out = np.empty((g, n_orders, m - 1, n_background, len(predictor.output.columns)))
    for i in range(g):
        for o in range(n_orders):
            ranks = np.argsort(orders[i, o], axis=-1)  # (B, M)
            for step in range(m - 1):
                hybrid = np.where(ranks <= step, x[i], background)
                out[i, o, step] = predictor(hybrid)
    return out


@pytest.mark.parametrize(
    "kind",
    [
        "gradient boosting, two classes",
        "histogram boosting, three classes, missing values",
        "lightgbm, two classes",
    ],
)
def test_walks_equal_the_models_predict_proba_on_the_hybrid_rows(kind):
    model, X, predictor = _model(kind)
    background, x = X[:20], X[200:203]
    orders = np.argsort(RNG.random((3, 2, 20, N_FEATURES)), axis=-1)
    got = _walks(model, predictor, background)(x, orders)
    expected = _hybrid_outputs(predictor, x, background, orders)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_walks_in_a_pipeline_with_one_hot_encoded_and_reordered_columns(penguin_frame):
    """Each one-hot encoded column's levels switch together, as one player."""
    import pyarrow as pa

    frame = penguin_frame.dropna().reset_index(drop=True)
    numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    categorical = ["island", "sex"]
    encode = ColumnTransformer(
        [("num", StandardScaler(), numeric), ("cat", OneHotEncoder(), categorical)]
    )
    model = make_pipeline(encode, GradientBoostingClassifier(n_estimators=30, random_state=0))
    columns = categorical + numeric  # the model was fitted on another column order
    model.fit(frame[columns], frame["species"])
    features = numeric + categorical
    table = pa.Table.from_pandas(frame[features], preserve_index=False)
    codec = FeatureCodec.from_schema(table.schema, tuple(features))
    X = codec.encode(table)
    predictor = _predictor(
        model, features, codec.categorical, codec.snapshot(), columns=tuple(columns)
    )
    background, x = X[::10], X[[5, 101]]  # every island and sex in the background
    orders = np.argsort(RNG.random((2, 3, len(background), len(features))), axis=-1)
    got = _walks(model, predictor, background)(x, orders)
    expected = _hybrid_outputs(predictor, x, background, orders)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("target", [None, "auto"])
def test_permutation_through_the_trees_equals_the_generic_path(target):
    from xaicli.methods.sampling_error import parse_target_error

    model, X, predictor = _model("gradient boosting, two classes")
    background, x = X[:30], X[200:206]
    options = dict(background=background, row_index=np.arange(6) + 200, seed=3, n_samples=300)
    options |= dict(errors=True, target=parse_target_error(target) if target else None)
    called = explain_permutation(predictor, x, **options)
    walked = explain_permutation(
        predictor, x, hybrids=_walks(model, predictor, background), **options
    )
    np.testing.assert_allclose(walked.values, called.values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(walked.standard_errors, called.standard_errors, atol=1e-12)
    if target:
        assert (walked.converged == called.converged).all()


def test_probabilities_that_are_not_a_link_of_a_margin_call_the_model():
    X, y = _numeric_data()
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y > 0)
    assert linked_trees(forest, _predictor(forest, range(N_FEATURES)).output,
                        _predictor(forest, range(N_FEATURES)), X[:10]) is None  # fmt: skip
    boosted = GradientBoostingClassifier(n_estimators=5, random_state=0).fit(X, y > 0)
    decision = OutputSpec("decision", (), ("decision",))
    assert linked_trees(boosted, decision, _predictor(boosted, range(N_FEATURES)), X[:10]) is None
    xgboost = pytest.importorskip("xgboost")
    # XGBoost computes its probabilities in float32: not ours to reproduce
    model = xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(X, y > 0)
    predictor = _predictor(model, tuple(f"f{j}" for j in range(N_FEATURES)))
    assert linked_trees(model, predictor.output, predictor, X[:10]) is None


def test_cli_auto_on_a_boosted_classifier_walks_its_trees(tmp_path, monkeypatch):
    """The table equals permutation SHAP calling the model's own predict_proba, and is the
    same for any --n-jobs and --chunk-size; the trees are read once per run."""
    import joblib

    import xaicli.models.tree_link

    builds: list[object] = []
    build = xaicli.models.tree_link.linked_trees

    def counted(*args):
        builds.append(build(*args))
        return builds[-1]

    monkeypatch.setattr(xaicli.models.tree_link, "linked_trees", counted)

    X, y = _numeric_data(n=240)
    names = [f"f{j}" for j in range(N_FEATURES)]
    frame = pd.DataFrame(X, columns=names)
    model = GradientBoostingClassifier(n_estimators=30, random_state=0).fit(frame, y > 0)
    joblib.dump(model, tmp_path / "model.joblib")
    frame.iloc[:12].to_parquet(tmp_path / "data.parquet")
    frame.iloc[100:140].to_parquet(tmp_path / "background.parquet")
    tables = []
    for extra in (["--n-jobs", "1"], ["--n-jobs", "2", "--chunk-size", "5"]):
        out = tmp_path / f"out{len(tables)}.parquet"
        result = run_cli(
            "explain", "--model", tmp_path / "model.joblib", "--data", tmp_path / "data.parquet",
            "--background", tmp_path / "background.parquet", "--out", out, "--class", "True",
            *extra,
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        assert "SHAP algorithm: permutation" in result.stderr
        tables.append(pd.read_parquet(out).sort_values("row").reset_index(drop=True))
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert len(builds) == 2 and all(b is not None for b in builds)  # once for each run

    def proba(rows: np.ndarray) -> np.ndarray:
        return model.predict_proba(pd.DataFrame(rows, columns=names))[:, 1:]

    from xaicli.methods.sampling_error import parse_target_error

    expected = explain_permutation(
        proba, X[:12], background=X[100:140], row_index=np.arange(12), seed=0,
        target=parse_target_error("auto"),
    )  # fmt: skip
    np.testing.assert_allclose(tables[0][names].to_numpy(), expected.values[:, 0], atol=1e-12)
