"""Every method through the command line, against shap called directly where it applies."""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from sklearn.ensemble import GradientBoostingClassifier, RandomForestRegressor

M = 8
FEATURES = [f"f{i}" for i in range(M)]


@pytest.fixture(scope="module")
def tabular(tmp_path_factory):
    folder = tmp_path_factory.mktemp("methods")
    rng = np.random.default_rng(11)
    X = pd.DataFrame(rng.normal(size=(500, M)), columns=FEATURES)
    y_reg = X.f0 * 2 + X.f1 * X.f2 + np.abs(X.f3)
    y_clf = (X.f0 + X.f1 - X.f4 > 0).astype(int)
    forest = RandomForestRegressor(n_estimators=20, max_depth=7, random_state=0).fit(X, y_reg)
    boosted = GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0).fit(X, y_clf)
    joblib.dump(forest, folder / "forest.joblib")
    joblib.dump(boosted, folder / "boosted.joblib")
    X.iloc[:80].to_parquet(folder / "rows.parquet", index=False)
    X.iloc[300:350].to_parquet(folder / "bg.parquet", index=False)
    return {"folder": folder, "forest": forest, "boosted": boosted, "X": X}


def _run(t, model, tmp_path, *extra, name="o.parquet"):
    out = tmp_path / name
    result = run_cli(
        "explain",
        "--model",
        t["folder"] / model,
        "--data",
        t["folder"] / "rows.parquet",
        "--background",
        t["folder"] / "bg.parquet",
        "--out",
        out,
        *extra,
    )
    return result, out


def test_forest_auto_is_tree_shap_equal_to_shap(tabular, tmp_path):
    import shap

    result, out = _run(tabular, "forest.joblib", tmp_path, "--n-jobs", "2", "--chunk-size", "64")
    assert result.exit_code == 0, result.stderr
    assert "SHAP algorithm: tree" in result.stderr
    table = pd.read_parquet(out)
    background = tabular["X"].iloc[300:350]
    explainer = shap.TreeExplainer(
        tabular["forest"], background, feature_perturbation="interventional"
    )
    theirs = explainer.shap_values(tabular["X"].iloc[:80])
    np.testing.assert_allclose(table[FEATURES].to_numpy(), theirs, atol=1e-6)
    assert np.abs(table.base_value + table[FEATURES].sum(axis=1) - table.prediction).max() < 1e-9


def test_tree_equals_exact_enumeration_through_the_cli(tabular, tmp_path):
    tree, out_tree = _run(
        tabular, "forest.joblib", tmp_path, "--algorithm", "tree", name="t.parquet"
    )
    exact, out_exact = _run(
        tabular, "forest.joblib", tmp_path, "--algorithm", "exact", name="e.parquet"
    )
    assert tree.exit_code == 0 and exact.exit_code == 0
    a, b = pd.read_parquet(out_tree), pd.read_parquet(out_exact)
    np.testing.assert_allclose(a[FEATURES].to_numpy(), b[FEATURES].to_numpy(), atol=1e-9)


def test_boosted_margin_is_tree_shap_equal_to_shap(tabular, tmp_path):
    import shap

    result, out = _run(tabular, "boosted.joblib", tmp_path, "--output", "decision")
    assert result.exit_code == 0 and "SHAP algorithm: tree" in result.stderr
    table = pd.read_parquet(out)
    assert set(table["output"]) == {"1"}
    explainer = shap.TreeExplainer(
        tabular["boosted"], tabular["X"].iloc[300:350], feature_perturbation="interventional"
    )
    np.testing.assert_allclose(
        table[FEATURES].to_numpy(), explainer.shap_values(tabular["X"].iloc[:80]), atol=1e-6
    )


def test_boosted_probability_refuses_tree_and_auto_explains_why(tabular, tmp_path):
    refused, out = _run(tabular, "boosted.joblib", tmp_path, "--algorithm", "tree")
    assert refused.exit_code == 2 and "--output decision" in refused.stderr and not out.exists()
    auto, out = _run(tabular, "boosted.joblib", tmp_path)
    assert auto.exit_code == 0
    assert "SHAP algorithm: exact" in auto.stderr and "--output decision" in auto.stderr
    table = pd.read_parquet(out)
    np.testing.assert_allclose(
        table["prediction"],
        tabular["boosted"].predict_proba(tabular["X"].iloc[:80])[:, 1],
        atol=1e-12,
    )


def test_tree_path_dependent_on_request(tabular, tmp_path):
    import shap

    result, out = _run(tabular, "forest.joblib", tmp_path, "--algorithm", "tree-path")
    assert result.exit_code == 0, result.stderr
    table = pd.read_parquet(out)
    theirs = shap.TreeExplainer(tabular["forest"], feature_perturbation="tree_path_dependent")
    np.testing.assert_allclose(
        table[FEATURES].to_numpy(), theirs.shap_values(tabular["X"].iloc[:80]), atol=1e-6
    )


@pytest.mark.parametrize("layout", ["wide", "long"])
def test_lime_and_ig_tables(tabular, tmp_path, layout):
    lime, out_lime = _run(
        tabular,
        "boosted.joblib",
        tmp_path,
        "--method",
        "lime",
        "--layout",
        layout,
        "--n-samples",
        "1000",
        name="l.parquet",
    )
    ig, out_ig = _run(
        tabular, "forest.joblib", tmp_path, "--method", "ig", "--layout", layout, name="i.parquet"
    )
    assert lime.exit_code == 0, lime.stderr
    assert ig.exit_code == 0, ig.stderr
    lt, it = pd.read_parquet(out_lime), pd.read_parquet(out_ig)
    if layout == "wide":
        assert list(lt.columns[:6]) == [
            "row",
            "output",
            "base_value",
            "prediction",
            "local_prediction",
            "score",
        ]
        assert list(it.columns[:5]) == [
            "row",
            "output",
            "base_value",
            "prediction",
            "completeness_error",
        ]
        # the path form of IG is complete even on a piecewise-constant forest
        assert it["completeness_error"].abs().max() < 1e-9
        np.testing.assert_allclose(
            it.base_value + it[FEATURES].sum(axis=1), it.prediction, atol=1e-9
        )
    else:
        assert list(lt.columns) == ["row", "output", "feature", "attribution", "rank"]
        assert len(it) == 80 * M


@pytest.mark.parametrize("algorithm", ["tree", "tree-path", "exact"])
def test_feature_order_differs_from_the_fitted_order(tabular, tmp_path, algorithm):
    reordered = ",".join(reversed(FEATURES))
    a, out_a = _run(tabular, "forest.joblib", tmp_path, "--algorithm", algorithm, name="a.parquet")
    b, out_b = _run(
        tabular,
        "forest.joblib",
        tmp_path,
        "--algorithm",
        algorithm,
        "--features",
        reordered,
        name="b.parquet",
    )
    assert a.exit_code == 0 and b.exit_code == 0, b.stderr
    first, second = pd.read_parquet(out_a), pd.read_parquet(out_b)
    assert list(second.columns[4:]) == list(reversed(FEATURES))
    np.testing.assert_allclose(second[FEATURES].to_numpy(), first[FEATURES].to_numpy(), atol=1e-12)
