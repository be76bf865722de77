"""XGBoost and LightGBM models (and scikit-learn's categorical HistGradientBoosting) through
`xai explain`: exact interventional TreeSHAP of the margin, checked against brute-force
enumeration with the model's own predict on hybrid rows, and against shap's TreeExplainer;
what is refused or falls back, and why.

Models are small (20-40 trees) and fitted on generated tables; the explained rows and the
background are drawn afresh, so the trees never saw them. Rows and background hold NaN,
zeros and categories (pandas ``category`` columns; the tool reads them as text)."""

from __future__ import annotations

import json
import warnings
from functools import cache
from pathlib import Path

import joblib
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from conftest import run_cli
from frame_shapley import enumerate_shap
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from xaicli.methods.shap_tree import interventional_tree_shap
from xaicli.models.tree_inputs import tree_inputs, tree_rows

COLOURS = ["red", "green", "blue", "grey", "pink", "teal", "gold", "plum"]
SHAPES = ["round", "square", "flat"]
NUMERIC = ["x0", "x1", "x2", "x3", "x4", "x5", "x6"]

warnings.filterwarnings("ignore", message=".*feature names.*")


def _table(seed: int, n: int) -> pd.DataFrame:
    """9 features: x0 and x2 with NaN, x1 with exact zeros, two category columns (NaN too)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 7)), columns=NUMERIC)
    frame.loc[rng.random(n) < 0.15, "x0"] = np.nan
    frame.loc[rng.random(n) < 0.2, "x1"] = 0.0
    frame.loc[rng.random(n) < 0.1, "x2"] = np.nan
    frame.insert(3, "colour", pd.Categorical(rng.choice(COLOURS, n), categories=COLOURS))
    frame["shape"] = pd.Categorical(rng.choice(SHAPES, n), categories=SHAPES)
    frame.loc[rng.random(n) < 0.1, "colour"] = np.nan
    return frame


def _target(frame: pd.DataFrame) -> np.ndarray:
    rng = np.random.default_rng(99)
    return (
        np.nan_to_num(frame["x0"].to_numpy(), nan=-1.0)
        + 2.0 * frame["colour"].isin(["red", "blue", "gold"]).to_numpy()
        + frame["x1"].to_numpy() * (frame["shape"] == "round").to_numpy()
        + np.where(np.isnan(frame["x2"]), 1.5, frame["x2"]) ** 2 / 2
        + 0.1 * rng.normal(size=len(frame))
    )


def _classes(frame: pd.DataFrame, n_classes: int) -> np.ndarray:
    y = _target(frame)
    return np.digitize(y, np.quantile(y, np.linspace(0, 1, n_classes + 1)[1:-1]))


def _fit(name: str):
    train = _table(0, 400)
    y = _target(train)
    lgb_args = dict(n_estimators=30, num_leaves=8, min_child_samples=5, verbose=-1, n_jobs=1)
    lgb_args |= dict(min_data_per_group=5, cat_smooth=1.0, max_cat_to_onehot=2)
    xgb_args = dict(n_estimators=30, max_depth=3, enable_categorical=True, max_cat_to_onehot=1)
    xgb_args |= dict(n_jobs=1)
    models = {
        "lgb_regressor": lambda: lgb.LGBMRegressor(**lgb_args).fit(train, y),
        "lgb_zero_as_missing": lambda: lgb.LGBMRegressor(zero_as_missing=True, **lgb_args).fit(
            train, y
        ),
        "lgb_binary": lambda: lgb.LGBMClassifier(**lgb_args).fit(train, _classes(train, 2)),
        "lgb_multiclass": lambda: lgb.LGBMClassifier(**lgb_args).fit(train, _classes(train, 3)),
        "xgb_regressor": lambda: xgb.XGBRegressor(**xgb_args).fit(train, y),
        "xgb_binary": lambda: xgb.XGBClassifier(**xgb_args).fit(train, _classes(train, 2)),
        "xgb_multiclass": lambda: xgb.XGBClassifier(**xgb_args).fit(train, _classes(train, 3)),
        "hgb_regressor": lambda: HistGradientBoostingRegressor(
            max_iter=30, categorical_features="from_dtype", random_state=0
        ).fit(train, y),
    }
    return models[name]()


_fitted = cache(_fit)


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """The table a user would pass: category columns as text, missing as null."""
    text = frame.copy()
    for name in {"colour", "shape"} & set(frame.columns):
        text[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return text


def _explain(tmp_path: Path, model, rows: pd.DataFrame, background: pd.DataFrame, *args: str):
    model_path, data, back, out = (
        tmp_path / n for n in ("m.joblib", "d.parquet", "b.parquet", "o.parquet")
    )
    joblib.dump(model, model_path)
    _as_text(rows).to_parquet(data)
    _as_text(background).to_parquet(back)
    result = run_cli(
        "explain", "--model", model_path, "--data", data, "--background", back, "--out", out,
        "--overwrite", *args,
    )  # fmt: skip
    if result.exit_code != 0:
        return result, None, None
    manifest = json.loads(out.with_name(out.name + ".manifest.json").read_text())
    return result, pd.read_parquet(out), manifest


def _margin(model, frame: pd.DataFrame) -> np.ndarray:
    if isinstance(model, lgb.LGBMModel):
        raw = model.predict(frame, raw_score=True)
    elif isinstance(model, xgb.XGBModel):
        raw = model.predict(frame, output_margin=True)
    else:
        raw = model.predict(frame)
    return np.asarray(raw, dtype=np.float64).reshape(len(frame), -1)


def _by_output(out: pd.DataFrame, column: str | list[str]) -> np.ndarray:
    """(n_rows, n_outputs[, ...]) from the output table's (row, output) rows."""
    out = out.sort_values(["row", "output"], kind="stable")
    n_outputs = out["output"].nunique()
    values = out[column].to_numpy()
    return values.reshape(-1, n_outputs, *values.shape[1:])


MODELS = [
    "lgb_regressor",
    "lgb_zero_as_missing",
    "lgb_binary",
    "lgb_multiclass",
    "xgb_regressor",
    "xgb_binary",
    "xgb_multiclass",
    "hgb_regressor",
]


@pytest.mark.parametrize("name", MODELS)
def test_decision_is_exact_interventional_tree_shap(tmp_path, name):
    """Against enumeration with the model's own predict on hybrid rows, to 1e-9 relative.

    XGBoost predicts in float32 (about 1e-7 relative), which no float64 computation can
    match to 1e-9: its enumeration uses the parsed trees' float64 prediction instead,
    after checking that it equals XGBoost's own margin to float32 precision."""
    model = _fitted(name)
    rows, background = _table(1, 3), _table(2, 12)
    rows.loc[0, "x0"], rows.loc[1, "colour"], rows.loc[2, "x1"] = np.nan, np.nan, 0.0
    background.loc[0, "x2"], background.loc[1, "colour"] = np.nan, np.nan
    # scikit-learn's regressor has no decision_function: its prediction is the sum of trees
    output = "predict" if name == "hgb_regressor" else "decision"
    result, out, manifest = _explain(tmp_path, model, rows, background, "--output", output)
    assert result.exit_code == 0, result.stderr
    assert manifest["algorithm"] == "tree"
    features = list(rows.columns)
    values = _by_output(out, features)  # (n_rows, n_outputs, M)
    base, prediction = _by_output(out, "base_value"), _by_output(out, "prediction")
    np.testing.assert_allclose(base + values.sum(axis=2), prediction, rtol=0, atol=1e-9)

    predict = lambda frame: _margin(model, frame)  # noqa: E731
    if name.startswith("xgb"):
        inputs = tree_inputs(model, "decision", background, tuple(features))
        hybrid = pd.concat([rows, background], ignore_index=True)
        np.testing.assert_allclose(
            inputs.ensemble.predict(tree_rows(model, hybrid)), _margin(model, hybrid), rtol=1e-6
        )
        predict = lambda frame: inputs.ensemble.predict(tree_rows(model, frame))  # noqa: E731
    np.testing.assert_allclose(prediction, predict(rows), rtol=1e-9 if name[0] != "x" else 1e-6)
    for i in range(len(rows)):
        expected = enumerate_shap(predict, rows.iloc[[i]], background)
        scale = np.abs(expected).max()
        np.testing.assert_allclose(values[i], expected, rtol=1e-9, atol=1e-9 * scale)
    assert (np.abs(values) > 0).sum() > 5  # the check is not vacuous


def _numeric_data(seed: int, n: int) -> pd.DataFrame:
    frame = _table(seed, n)[NUMERIC]
    return frame


@pytest.mark.parametrize(
    ("model", "n_classes"),
    [
        (lgb.LGBMRegressor(n_estimators=30, num_leaves=16, verbose=-1, n_jobs=1), 0),
        (lgb.LGBMClassifier(n_estimators=30, num_leaves=16, verbose=-1, n_jobs=1), 2),
        (lgb.LGBMClassifier(n_estimators=20, num_leaves=8, verbose=-1, n_jobs=1), 3),
        (xgb.XGBRegressor(n_estimators=30, max_depth=4, n_jobs=1), 0),
        (xgb.XGBClassifier(n_estimators=30, max_depth=4, n_jobs=1), 2),
        (xgb.XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1), 3),
    ],
    ids=["lgb-reg", "lgb-binary", "lgb-multi", "xgb-reg", "xgb-binary", "xgb-multi"],
)
def test_agrees_with_shap_tree_explainer_interventional(model, n_classes):
    import shap

    train, background, rows = _numeric_data(0, 400), _numeric_data(3, 100), _numeric_data(4, 20)
    target = _table(0, 400)
    model.fit(train, _classes(target, n_classes) if n_classes else _target(target))
    inputs = tree_inputs(model, "decision", background, tuple(NUMERIC))
    ours = interventional_tree_shap(inputs.ensemble, tree_rows(model, rows), inputs.background)
    explainer = shap.TreeExplainer(model, background, feature_perturbation="interventional")
    theirs = np.asarray(explainer.shap_values(rows, check_additivity=False))
    theirs = theirs[:, None, :] if theirs.ndim == 2 else theirs.transpose(0, 2, 1)
    assert ours.values.shape == theirs.shape
    # shap keeps its weights in float32 (and XGBoost's thresholds): ~1e-6 relative
    np.testing.assert_allclose(ours.values, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["lgb_binary", "xgb_multiclass"])
def test_probability_falls_back_under_auto_and_is_refused_by_tree(tmp_path, name):
    model, rows, background = _fitted(name), _table(1, 4), _table(2, 8)
    result, _, manifest = _explain(tmp_path, model, rows, background)
    assert result.exit_code == 0, result.stderr
    assert manifest["algorithm"] == "exact"
    assert "--output decision" in result.stderr
    result, _, _ = _explain(tmp_path, model, rows, background, "--algorithm", "tree")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "--output decision" in result.stderr


@pytest.mark.parametrize(
    "model",
    [
        xgb.XGBRegressor(
            n_estimators=20, objective="count:poisson", enable_categorical=True, n_jobs=1
        ),
        lgb.LGBMRegressor(n_estimators=20, objective="poisson", verbose=-1, n_jobs=1),
    ],
    ids=["xgb-poisson", "lgb-poisson"],
)
def test_regressor_with_log_link_explains_its_margin_exactly_only_as_decision(tmp_path, model):
    train = _table(0, 300)
    model.fit(train, np.exp(_target(train) / 4))
    rows, background = _table(1, 4), _table(2, 8)
    result, _, manifest = _explain(tmp_path, model, rows, background)
    assert result.exit_code == 0, result.stderr
    assert manifest["algorithm"] == "exact" and "--output decision" in result.stderr
    result, _, _ = _explain(tmp_path, model, rows, background, "--algorithm", "tree")
    assert result.exit_code == 2 and "--output decision" in result.stderr
    result, out, manifest = _explain(tmp_path, model, rows, background, "--output", "decision")
    assert result.exit_code == 0 and manifest["algorithm"] == "tree"
    np.testing.assert_allclose(out["prediction"], _margin(model, rows)[:, 0], rtol=1e-6)


@pytest.mark.parametrize("name", ["lgb_multiclass", "xgb_binary"])
def test_bare_booster_pickle_explained_like_its_model(tmp_path, name):
    model = _fitted(name)
    booster = model.booster_ if isinstance(model, lgb.LGBMModel) else model.get_booster()
    rows, background = _table(1, 4), _table(2, 8)
    _, expected, _ = _explain(tmp_path, model, rows, background, "--output", "decision")
    result, out, manifest = _explain(tmp_path, booster, rows, background, "--output", "decision")
    assert result.exit_code == 0, result.stderr
    assert manifest["algorithm"] == "tree"
    features = list(rows.columns)
    got = out.sort_values(["row", "output"])[["prediction", *features]].to_numpy()
    want = expected.sort_values(["row", "output"])[["prediction", *features]].to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_bare_booster_without_feature_names_needs_features(tmp_path, library):
    train = _numeric_data(0, 300)
    y = _target(_table(0, 300))
    if library == "xgboost":
        booster = xgb.XGBRegressor(n_estimators=20, n_jobs=1).fit(train.to_numpy(), y).get_booster()
    else:
        model = lgb.LGBMRegressor(n_estimators=20, verbose=-1, n_jobs=1).fit(train.to_numpy(), y)
        booster = model.booster_
    rows, background = _numeric_data(1, 4), _numeric_data(2, 8)
    result, _, _ = _explain(tmp_path, booster, rows, background, "--output", "decision")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "--features" in result.stderr
    named = ["--features", ",".join(NUMERIC), "--output", "decision"]
    result, out, manifest = _explain(tmp_path, booster, rows, background, *named)
    assert result.exit_code == 0, result.stderr
    assert manifest["algorithm"] == "tree"
    values = out[NUMERIC].to_numpy()
    np.testing.assert_allclose(out["base_value"] + values.sum(axis=1), out["prediction"], atol=1e-9)


def test_pipeline_one_hot_string_column_before_xgboost(tmp_path):
    train = _table(0, 400)
    train["colour"] = train["colour"].astype(object).where(train["colour"].notna(), "none")
    train["shape"] = train["shape"].astype(str)
    encode = ColumnTransformer(
        [("text", OneHotEncoder(handle_unknown="ignore"), ["colour", "shape"])],
        remainder="passthrough",
    )
    model = Pipeline(
        [("encode", encode), ("trees", xgb.XGBRegressor(n_estimators=30, max_depth=3, n_jobs=1))]
    )
    model.fit(train, _target(_table(0, 400)))
    # every category in the background: the tool finds which input column each one-hot
    # column comes from by varying the background
    rows, background = _table(1, 3), _table(5, 40)
    for frame in (rows, background):
        frame["colour"] = frame["colour"].astype(object).where(frame["colour"].notna(), "none")
        frame["shape"] = frame["shape"].astype(str)
    assert set(background["colour"]) == {*COLOURS, "none"}
    result, out, manifest = _explain(tmp_path, model, rows, background)
    assert result.exit_code == 0, result.stderr
    assert manifest["algorithm"] == "tree", result.stderr
    features = list(rows.columns)
    values = out.sort_values("row")[features].to_numpy()
    np.testing.assert_allclose(
        out["base_value"] + out[features].sum(axis=1), out["prediction"], atol=1e-9
    )
    # the pipeline's predict is XGBoost's float32 margin: agreement to float32 precision
    for i in range(len(rows)):
        expected = enumerate_shap(model.predict, rows.iloc[[i]], background)[0]
        np.testing.assert_allclose(values[i], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["lgb_multiclass", "xgb_regressor"])
def test_tree_path_uses_the_library_contributions(tmp_path, name):
    model, rows, background = _fitted(name), _table(1, 5), _table(2, 8)
    args = ("--output", "decision", "--algorithm", "tree-path")
    result, out, manifest = _explain(tmp_path, model, rows, background, *args)
    assert result.exit_code == 0, result.stderr
    assert manifest["algorithm"] == "tree-path"
    features = list(rows.columns)
    if isinstance(model, lgb.LGBMModel):
        native = model.predict(rows, pred_contrib=True).reshape(len(rows), -1, len(features) + 1)
    else:
        matrix = xgb.DMatrix(rows, enable_categorical=True)
        native = model.get_booster().predict(matrix, pred_contribs=True)[:, None, :]
    np.testing.assert_allclose(_by_output(out, features), native[:, :, :-1], rtol=1e-12)
    np.testing.assert_allclose(_by_output(out, "base_value"), native[:, :, -1], rtol=1e-12)


def _plain(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 5))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = np.nan_to_num(X[:, 0]) + 0.1 * rng.normal(size=300)
    return X, y


def _variants():
    X, y = _plain()
    Y = np.c_[y, np.nan_to_num(X[:, 1]) ** 2]
    relevance, groups = np.clip(np.round(y + 1), 0, 3).astype(int), np.repeat(np.arange(30), 10)
    fit_args = dict(n_estimators=10, n_jobs=1)
    early_xgb = xgb.XGBRegressor(
        max_depth=3, early_stopping_rounds=3, **fit_args | {"n_estimators": 60}
    )
    early_lgb = lgb.LGBMRegressor(verbose=-1, n_estimators=200, n_jobs=1)
    return {
        "xgb-multi-output": lambda: xgb.XGBRegressor(max_depth=3, **fit_args).fit(X, Y),
        "xgb-ranker": lambda: xgb.XGBRanker(max_depth=3, **fit_args).fit(X, relevance, qid=groups),
        "lgb-ranker": lambda: lgb.LGBMRanker(verbose=-1, **fit_args).fit(
            X, relevance, group=[10] * 30
        ),
        "lgb-random-forest": lambda: lgb.LGBMRegressor(
            boosting_type="rf", bagging_freq=1, bagging_fraction=0.7, verbose=-1, **fit_args
        ).fit(X, y),
        "xgb-early-stopping": lambda: early_xgb.fit(
            X[:200], y[:200], eval_set=[(X[200:], y[200:])], verbose=False
        ),
        "lgb-early-stopping": lambda: early_lgb.fit(
            X[:200],
            y[:200],
            eval_set=[(X[200:], y[200:])],
            callbacks=[lgb.early_stopping(3, verbose=False)],
        ),  # fmt: skip
    }


@pytest.mark.parametrize("name", list(_variants()))
def test_other_booster_kinds_reproduce_their_prediction(name):
    """Rankers and multi-output regressors (raw output per column), LightGBM's random
    forest mode (averaged trees), early stopping (predict stops at the best iteration)."""
    from xaicli.models.trees import extract_tree_ensemble

    model = _variants()[name]()
    X, _ = _plain(1)
    expected = np.asarray(model.predict(X), dtype=np.float64).reshape(len(X), -1)
    got = extract_tree_ensemble(model, "predict").predict(X)
    # XGBoost predicts in float32: to its precision, on the scale of its outputs
    tolerance = 1e-6 if name.startswith("xgb") else 1e-12
    np.testing.assert_allclose(got, expected, rtol=0, atol=tolerance * np.abs(expected).max())


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        (lgb.LGBMRegressor(n_estimators=5, linear_tree=True, verbose=-1, n_jobs=1), "linear trees"),
        (
            xgb.XGBRegressor(n_estimators=5, multi_strategy="multi_output_tree", n_jobs=1),
            "vector leaves",
        ),
        (xgb.XGBRegressor(n_estimators=5, booster="dart", n_jobs=1), "dart"),
    ],
    ids=["lgb-linear-tree", "xgb-vector-leaves", "xgb-dart"],
)
def test_boosters_that_are_not_sums_of_constant_leaves_are_refused(model, reason):
    from xaicli.models.trees import TreeModelNotSupported, extract_tree_ensemble

    X, y = _plain()
    model.fit(np.nan_to_num(X), np.c_[y, y] if "vector" in reason else y)
    with pytest.raises(TreeModelNotSupported, match=reason):
        extract_tree_ensemble(model, "predict")


def test_trees_that_do_not_reproduce_the_model_are_refused(monkeypatch):
    """A model format read wrongly (here: a shifted intercept) is refused, not explained."""
    from dataclasses import replace

    import xaicli.models.tree_inputs as module
    from xaicli.models.trees import TreeModelNotSupported, extract_tree_ensemble

    def misread(model, output):
        ensemble = extract_tree_ensemble(model, output)
        return replace(ensemble, offset=ensemble.offset + 1e-3)

    monkeypatch.setattr(module, "extract_tree_ensemble", misread)
    model, background = _fitted("xgb_regressor"), _table(2, 8)
    with pytest.raises(TreeModelNotSupported, match="do not reproduce"):
        tree_inputs(model, "decision", background, tuple(background.columns))


@pytest.mark.parametrize("name", MODELS)
def test_table_and_pair_engines_agree_on_booster_trees(name):
    """The table engine routes categorical, zero-as-missing and NaN splits as the pair
    engine does (which the enumeration test above checks against the model): same values
    to 1e-9 on rows and a background with NaN, zeros and unseen category codes."""
    model = _fitted(name)
    rows, background = _table(3, 20), _table(4, 40)
    rows.loc[0, "x0"], rows.loc[1, "colour"], rows.loc[2, "x1"] = np.nan, np.nan, 0.0
    background.loc[0, "x2"], background.loc[1, "colour"] = np.nan, np.nan
    output = "predict" if name == "hgb_regressor" else "decision"
    features = tuple(rows.columns)
    inputs = tree_inputs(model, output, background, features)
    X = tree_rows(model, rows)
    results = [
        interventional_tree_shap(
            inputs.ensemble, X, inputs.background, groups=inputs.groups, engine=engine
        )
        for engine in ("tables", "pairs")
    ]
    scale = np.abs(results[1].values).max()
    assert scale > 0
    np.testing.assert_allclose(results[0].values, results[1].values, rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(results[0].base_values, results[1].base_values, rtol=1e-12)


@pytest.mark.parametrize(
    ("name", "output"), [("lgb_regressor", "auto"), ("xgb_binary", "decision")]
)
def test_tree_shap_on_boosters_defaults_to_a_1000_row_background(tmp_path, name, output):
    """Its cost does not grow with the background, so the larger default applies."""
    model_path, data, out = tmp_path / "m.joblib", tmp_path / "d.parquet", tmp_path / "o.parquet"
    joblib.dump(_fitted(name), model_path)
    _as_text(_table(5, 1200)).to_parquet(data)
    result = run_cli(
        "explain", "--model", model_path, "--data", data, "--out", out, "--output", output
    )
    assert result.exit_code == 0, result.stderr
    manifest = json.loads(out.with_name(out.name + ".manifest.json").read_text())
    assert (manifest["algorithm"], manifest["background_rows"]) == ("tree", 1000)


def test_a_boosted_probability_keeps_the_100_row_background(tmp_path):
    """Sampled or enumerated: each background row costs model calls."""
    from xaicli.config import ExplainConfig
    from xaicli.runner.background import DEFAULT_BACKGROUND_SIZE, background_size

    config = ExplainConfig.from_values(
        model="m.joblib", data=tmp_path / "d.parquet", out=str(tmp_path / "o.parquet")
    )
    for output, expected in (("proba", DEFAULT_BACKGROUND_SIZE), ("decision", 1000)):
        config = config.with_values(output=output)
        assert background_size(config, _fitted("xgb_binary")) == expected
