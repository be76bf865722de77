"""TreeSHAP's table engine (cost per row independent of the background) against brute-force
enumeration and against the per-pair engine; background weights; the choice of engine per
tree; the options and the manifest from the command line."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LinearRegression

from tests.test_shap_tree import (
    CASES,
    _enumerate_shap,
    _fit_case,
    _model_output,
    _repeats_feature_on_a_path,
)
from xaicli.methods.shap_tree import interventional_tree_shap, prepare_tables
from xaicli.methods.shap_tree_tables import ENGINE_PAIRS, ENGINE_TABLES, choose_engines, tree_paths
from xaicli.models.trees import extract_tree_ensemble

EXACT = 1e-9


def _close(actual, expected, rel=EXACT):
    """Equal up to ``rel`` times the largest magnitude (the values' scale)."""
    scale = max(float(np.abs(expected).max()), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rel * scale)


@pytest.mark.parametrize("name", list(CASES))
def test_tables_match_enumeration_and_the_pair_engine(name):
    model, output, X = _fit_case(name)
    ensemble = extract_tree_ensemble(model, output)
    rows, background = X[:5], X[100:110]

    tables = interventional_tree_shap(ensemble, rows, background, engine="tables")
    pairs = interventional_tree_shap(ensemble, rows, background, engine="pairs")

    expected, base = _enumerate_shap(lambda H: _model_output(model, output, H), rows, background)
    _close(tables.values, expected)
    _close(tables.values, pairs.values)
    np.testing.assert_allclose(tables.base_values, np.tile(base, (len(rows), 1)), atol=1e-12)
    additivity = tables.base_values + tables.values.sum(axis=-1) - tables.predictions
    np.testing.assert_allclose(additivity, 0.0, atol=1e-9)


@pytest.mark.parametrize("name", ["rf_nan", "rf_3class_proba", "gbc_3class", "hgbr_nan"])
def test_table_walk_predictions_are_the_models_own(name):
    # with every tree a table tree, predictions and the base value come from the table
    # walks: the same sums, in the same order, as the ensemble's predict
    model, output, X = _fit_case(name)
    ensemble = extract_tree_ensemble(model, output)
    rows, background = X[:40], X[100:160]
    result = interventional_tree_shap(ensemble, rows, background, engine="tables")
    assert np.array_equal(result.predictions, ensemble.predict(rows))
    assert np.array_equal(result.base_values[0], ensemble.predict(background).mean(axis=0))
    np.testing.assert_allclose(result.predictions, _model_output(model, output, rows), atol=1e-9)


def test_table_engine_with_single_leaf_trees_matches_enumeration():
    # a large gamma leaves some XGBoost trees a single leaf: no player, the same output
    from xgboost import XGBRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (X[:, 0] > 0) * 1.0 + np.nan_to_num(X[:, 1])
    model = XGBRegressor(n_estimators=6, max_depth=2, learning_rate=1.0, gamma=5.0, n_jobs=1)
    ensemble = extract_tree_ensemble(model.fit(X, y), "predict")
    assert (ensemble.left[ensemble.roots] < 0).any()
    rows, background = X[:6], X[100:130]
    result = interventional_tree_shap(ensemble, rows, background, engine="tables")
    # enumerated on the trees' own float64 sums (XGBoost's predict rounds to float32)
    expected, base = _enumerate_shap(ensemble.predict, rows, background)
    _close(result.values, expected)
    np.testing.assert_allclose(result.base_values[0], base, atol=1e-12)
    assert np.array_equal(result.predictions, ensemble.predict(rows))
    np.testing.assert_allclose(result.predictions[:, 0], model.predict(rows), atol=1e-5)


def test_the_enumeration_cases_repeat_features_and_route_missing_values():
    model, output, X = _fit_case("rf_nan")
    assert np.isnan(X[:5]).any() and np.isnan(X[100:110]).any()
    assert _repeats_feature_on_a_path(extract_tree_ensemble(model, output))


def test_tables_match_enumeration_over_players():
    model, output, X = _fit_case("hgbr_nan")
    ensemble = extract_tree_ensemble(model, output)
    groups = np.array([0, 0, 1, 2, 2, 3])[: X.shape[1]]
    rows, background = X[:4], X[50:60]
    result = interventional_tree_shap(ensemble, rows, background, groups=groups, engine="tables")
    expected, _ = _enumerate_shap(
        lambda H: _model_output(model, output, H), rows, background, groups
    )
    _close(result.values, expected)


@pytest.mark.parametrize("name", ["rf_3class_proba", "gbr", "hgbr_nan"])
def test_weights_match_enumeration_with_a_weighted_background(name):
    model, output, X = _fit_case(name)
    ensemble = extract_tree_ensemble(model, output)
    rows, background = X[:4], X[100:108]
    counts = np.array([0, 1, 2, 3, 1, 0, 4, 1])
    repeated = np.repeat(background, counts, axis=0)  # a weighted mean is a mean of repeats

    expected, base = _enumerate_shap(lambda H: _model_output(model, output, H), rows, repeated)
    for engine in ("tables", "pairs"):
        result = interventional_tree_shap(
            ensemble, rows, background, weights=counts * 0.25, engine=engine
        )
        _close(result.values, expected)
        np.testing.assert_allclose(result.base_values[0], base, atol=1e-12)


def test_engines_agree_on_a_large_weighted_background():
    model, output, X = _fit_case("gbc_3class")
    ensemble = extract_tree_ensemble(model, output)
    weights = np.random.default_rng(5).random(200)
    args = (ensemble, X[:20], X[100:300])
    tables = interventional_tree_shap(*args, weights=weights, engine="tables")
    pairs = interventional_tree_shap(*args, weights=weights, engine="pairs")
    _close(tables.values, pairs.values)
    _close(tables.base_values, pairs.base_values, rel=1e-12)


def test_engine_choice_per_tree_gives_the_same_values():
    # a deep forest: its deepest trees go to the per-pair engine under a small memory cap
    X = np.random.default_rng(0).normal(size=(400, 12))
    y = X[:, 0] * X[:, 1] + np.sin(3 * X[:, 2]) + X[:, 3:].sum(axis=1)
    model = RandomForestRegressor(n_estimators=8, max_depth=9, random_state=0).fit(X, y)
    ensemble = extract_tree_ensemble(model, "predict")
    paths = tree_paths(ensemble, np.arange(12))
    unlimited = choose_engines(ensemble, paths, 200, 10_000, max_table_mb=1e6)
    capped = choose_engines(ensemble, paths, 200, 10_000, max_table_mb=2.0)
    assert (unlimited == ENGINE_TABLES).all()
    assert (capped == ENGINE_TABLES).any() and (capped == ENGINE_PAIRS).any()
    # one background row: walking one path per pair is cheaper than any table
    assert (choose_engines(ensemble, paths, 1, 10_000, max_table_mb=1e6) == ENGINE_PAIRS).all()

    rows, background = X[:10], X[200:400]
    mixed = prepare_tables(ensemble, background, n_rows=10_000, max_table_mb=2.0)
    assert mixed.engine_counts()["pairs"] > 0 and mixed.engine_counts()["tables"] > 0
    result = interventional_tree_shap(ensemble, rows, background, tables=mixed)
    _close(
        result.values, interventional_tree_shap(ensemble, rows, background, engine="pairs").values
    )
    _close(
        result.values, interventional_tree_shap(ensemble, rows, background, engine="tables").values
    )


def test_rejects_bad_weights_and_engines():
    model, output, X = _fit_case("gbr")
    ensemble = extract_tree_ensemble(model, output)
    for weights, message in (
        (np.ones(3), "one value per background row"),
        (np.array([1.0, -1.0, 1.0, 1.0]), ">= 0"),
        (np.zeros(4), "not all 0"),
        (np.array([1.0, np.nan, 1.0, 1.0]), "finite"),
    ):
        with pytest.raises(ValueError, match=message):
            interventional_tree_shap(ensemble, X[:2], X[10:14], weights=weights)
    with pytest.raises(ValueError, match="engine must be"):
        interventional_tree_shap(ensemble, X[:2], X[10:14], engine="fast")


# -- from the command line ----------------------------------------------------------------

N_ROWS = 1_200


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tables")
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(N_ROWS, 4)), columns=["a", "b", "c", "d"])
    y = frame.a * frame.b + np.sin(frame.c) + frame.d
    model = GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0).fit(frame, y)
    joblib.dump(model, folder / "gbr.joblib")
    joblib.dump(LinearRegression().fit(frame, y), folder / "linear.joblib")
    frame.iloc[:60].to_parquet(folder / "data.parquet")
    frame.to_parquet(folder / "big.parquet")
    background = frame.iloc[600:650].copy()
    background["w"] = rng.integers(0, 4, size=len(background)).astype(float)
    background.to_parquet(folder / "background.parquet")
    return folder, model, frame, background


def _explain(folder, out, *args):
    return run_cli(
        "explain", "--model", folder / "gbr.joblib", "--data", folder / "data.parquet",
        "--out", out, "--n-jobs", "1", *args,
    )  # fmt: skip


def _manifest(out):
    return json.loads(out.with_name(out.name + ".manifest.json").read_text())


def test_cli_background_weights_match_the_weighted_game(case, tmp_path):
    folder, model, frame, background = case
    out = tmp_path / "out.parquet"
    result = _explain(
        folder, out, "--background", folder / "background.parquet", "--background-weights", "w"
    )
    assert result.exit_code == 0, result.stderr
    table = pd.read_parquet(out)
    features = ["a", "b", "c", "d"]
    repeated = np.repeat(background[features].to_numpy(), background["w"].astype(int), axis=0)
    rows = frame[features].to_numpy()[:3]
    frame_of = lambda H: pd.DataFrame(H, columns=features)  # noqa: E731
    expected, base = _enumerate_shap(lambda H: model.predict(frame_of(H))[:, None], rows, repeated)
    _close(table[features].to_numpy()[:3], expected[:, 0, :])
    np.testing.assert_allclose(table["base_value"].to_numpy()[:3], base[0], atol=1e-12)
    manifest = _manifest(out)
    assert manifest["background_weights"] == "w"
    assert manifest["tree_engines"] == {"tables": 20, "pairs": 0}


def test_cli_engines_are_recorded_and_give_the_same_values(case, tmp_path, monkeypatch):
    folder, *_ = case
    default, capped = tmp_path / "default.parquet", tmp_path / "capped.parquet"
    assert _explain(folder, default).exit_code == 0
    monkeypatch.setenv("XAI_TREE_TABLE_MB", "0")
    result = _explain(folder, capped)
    assert result.exit_code == 0, result.stderr
    assert _manifest(default)["tree_engines"] == {"tables": 20, "pairs": 0}
    assert _manifest(capped)["tree_engines"] == {"tables": 0, "pairs": 20}
    values = [pd.read_parquet(p)[["a", "b", "c", "d"]].to_numpy() for p in (default, capped)]
    _close(values[0], values[1])


def test_cli_default_background_is_larger_for_tree_models(case, tmp_path):
    folder, *_ = case
    for model, algorithm, size in (("gbr", "tree", 1000), ("linear", "linear", 100)):
        out = tmp_path / f"{model}.parquet"
        result = run_cli(
            "explain", "--model", folder / f"{model}.joblib", "--data", folder / "big.parquet",
            "--out", out, "--n-jobs", "1", "--chunk-size", "600",
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        manifest = _manifest(out)
        assert manifest["algorithm"] == algorithm
        assert manifest["background_size"] == manifest["background_rows"] == size


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--background-weights", "nope"), None, "'nope' is not a column of"),
        (("--background-weights", "a"), None, "negative weight"),
        (("--background-weights", "w", "--algorithm", "exact"), None, "applies to interventional"),
        (("--background-weights", "w", "--method", "lime"), None, "applies to interventional"),
        ((), "lots", "XAI_TREE_TABLE_MB must be a number"),
    ],
)
def test_cli_refuses_bad_weights_and_settings(case, tmp_path, monkeypatch, args, env, message):
    folder, *_ = case
    if env is not None:
        monkeypatch.setenv("XAI_TREE_TABLE_MB", env)
    background = ("--background", folder / "background.parquet")
    result = _explain(folder, tmp_path / "out.parquet", *background, *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xai: error:") and message in lines[0]


def test_cli_refuses_weights_that_are_all_zero_or_missing(case, tmp_path):
    folder, _, _, background = case
    for name, values in (("zero", 0.0), ("missing", np.nan)):
        path = tmp_path / f"{name}.parquet"
        background.assign(w=values).to_parquet(path)
        result = _explain(
            folder, tmp_path / "out.parquet", "--background", path, "--background-weights", "w"
        )
        assert result.exit_code == 2, result.stderr
        assert "every weight is 0" in result.stderr or "missing or infinite" in result.stderr


def test_cli_weights_from_the_data_when_the_background_is_sampled(case, tmp_path):
    folder, model, frame, _ = case
    data = tmp_path / "weighted.parquet"
    frame.iloc[:200].assign(w=np.arange(200) % 3).to_parquet(data)
    out = tmp_path / "out.parquet"
    result = run_cli(
        "explain", "--model", folder / "gbr.joblib", "--data", data, "--out", out,
        "--n-jobs", "1", "--background-weights", "w",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    table = pd.read_parquet(out)
    features = ["a", "b", "c", "d"]
    weights = (np.arange(200) % 3).astype(float)  # every row is in the 200-row background
    expected_base = weights @ model.predict(frame.iloc[:200][features]) / weights.sum()
    np.testing.assert_allclose(table["base_value"].to_numpy(), expected_base, rtol=1e-12)
    manifest = _manifest(out)
    assert manifest["background_rows"] == 200 and manifest["background_weights"] == "w"
