"""CatBoost models (exact interventional TreeSHAP of the margin) and the boosting libraries'
own model files (XGBoost .json/.ubj, LightGBM .txt, CatBoost .cbm), from the command line.

The reference for "exact" is brute-force enumeration of the interventional Shapley values
with CatBoost's own ``predict(prediction_type="RawFormulaVal")`` on hybrid rows. CatBoost
computes that margin in float64 (its leaf values are doubles, the input is compared as
float32 with float32 borders, as the tree engine does), so the two agree to rounding and
1e-9 relative is a real test.
"""

from __future__ import annotations

import json
import sys

import joblib
import numpy as np
import pandas as pd
import pytest
from catboost import CatBoostClassifier, CatBoostRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tests.conftest import exact_interventional_shap, run_cli

N_FEATURES = 8
COLUMNS = [f"f{i}" for i in range(N_FEATURES)]
NAN_COLUMNS = ["f1", "f4"]
TOLERANCE = 1e-9
# one thread; no catboost_info/ folder written into the working directory
QUIET = {"verbose": 0, "thread_count": 1, "allow_writing_files": False}


def _frame(seed: int, n: int, *, with_nan: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, N_FEATURES)), columns=COLUMNS)
    if with_nan:
        for column in NAN_COLUMNS:
            frame.loc[rng.random(n) < 0.2, column] = np.nan
    return frame


def _score(frame: pd.DataFrame) -> np.ndarray:
    f1 = frame["f1"].fillna(-2.0)
    return 2 * frame["f0"] + np.sin(3 * f1) + frame["f2"] * frame["f3"] - frame["f4"].isna()


def _fit(kind: str) -> object:
    """Small models fitted on their own rows; the tests explain other rows."""
    train = _frame(1, 400, with_nan=kind != "regressor")  # Forbidden: no NaN when fitting
    score = _score(train.fillna(0.0) if kind == "regressor" else train).to_numpy()
    common = {"iterations": 25, "depth": 4, "random_seed": 0, **QUIET}
    if kind == "binary":
        return CatBoostClassifier(nan_mode="Min", **common).fit(train, (score > 0).astype(int))
    if kind == "multiclass":
        labels = np.array(["low", "mid", "high"])[np.digitize(score, [-1.0, 1.0])]
        return CatBoostClassifier(nan_mode="Max", **common).fit(train, labels)
    return CatBoostRegressor(nan_mode="Forbidden", **common).fit(train, score)


@pytest.fixture(scope="module")
def catboost_models() -> dict[str, object]:
    return {kind: _fit(kind) for kind in ("binary", "multiclass", "regressor")}


def _explain(tmp_path, model_path, rows: pd.DataFrame, background: pd.DataFrame, *options):
    data, back, out = tmp_path / "d.parquet", tmp_path / "b.parquet", tmp_path / "o.parquet"
    rows.to_parquet(data)
    background.to_parquet(back)
    result = run_cli(
        "explain", "--model", model_path, "--data", data, "--background", back, "--out", out,
        "--overwrite", *options,
    )  # fmt: skip
    return result, (pd.read_parquet(out) if result.exit_code == 0 else None)


def _one_error_line(result, *words: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xai: error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _margin(model, rows: np.ndarray) -> np.ndarray:
    raw = model.predict(pd.DataFrame(rows, columns=COLUMNS), prediction_type="RawFormulaVal")
    return np.asarray(raw, dtype=np.float64).reshape(rows.shape[0], -1)


def _values(output: pd.DataFrame, row: int) -> np.ndarray:
    """(n_outputs, n_features) of one explained row, outputs in the model's order."""
    return output.loc[output["row"] == row, COLUMNS].to_numpy()


def _save(model, tmp_path, source: str):
    path = tmp_path / f"model.{source}"
    if source == "cbm":
        model.save_model(str(path))
    else:
        joblib.dump(model, path)
    return path


@pytest.mark.parametrize("source", ["joblib", "cbm"])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "regressor"])
def test_catboost_margin_matches_enumeration(tmp_path, catboost_models, kind, source):
    """--output decision --algorithm tree equals brute-force Shapley values of CatBoost's own
    RawFormulaVal, NaN in rows and background (nan_mode Min, Max, Forbidden), from a pickle
    (which reports n_features_in_ = 0) and from a .cbm file."""
    model = catboost_models[kind]
    rows, background = _frame(7, 4), _frame(8, 16)
    rows.loc[0, NAN_COLUMNS] = np.nan
    background.loc[0, NAN_COLUMNS] = np.nan
    result, output = _explain(
        tmp_path, _save(model, tmp_path, source), rows, background,
        "--output", "decision", "--algorithm", "tree",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    margins = _margin(model, rows.to_numpy())
    n_outputs = margins.shape[1]
    for row in range(len(rows)):
        x = rows.to_numpy()[row]
        reference = exact_interventional_shap(
            lambda hybrid: _margin(model, hybrid), x, background.to_numpy()
        )
        ours = _values(output, row)
        assert ours.shape == (n_outputs, N_FEATURES)
        assert np.abs(ours - reference).max() <= TOLERANCE * np.abs(reference).max()
    predictions = output["prediction"].to_numpy().reshape(len(rows), n_outputs)
    np.testing.assert_allclose(predictions, margins, rtol=1e-12, atol=1e-12)
    base = output["base_value"].to_numpy()
    assert np.abs(base + output[COLUMNS].sum(axis=1) - output["prediction"]).max() <= 1e-9
    if kind == "multiclass":
        assert list(output["output"].unique()) == [str(c) for c in model.classes_]


@pytest.mark.parametrize("kind", ["binary", "regressor"])
def test_catboost_agrees_with_shap_interventional(tmp_path, catboost_models, kind):
    """Where shap supports it: shap 0.51's interventional TreeExplainer gives a multiclass
    CatBoost model one output, not one per class, and can crash the process on it."""
    import shap

    model = catboost_models[kind]
    rows, background = _frame(9, 5, with_nan=False), _frame(10, 100, with_nan=False)
    result, output = _explain(
        tmp_path, _save(model, tmp_path, "joblib"), rows, background, "--output", "decision"
    )
    assert result.exit_code == 0, result.stderr
    assert "SHAP algorithm: tree" in result.stderr
    # arrays: shap 0.51 aborts the process on CatBoost given DataFrames here
    explainer = shap.TreeExplainer(
        model, background.to_numpy(), feature_perturbation="interventional"
    )
    theirs = np.asarray(explainer.shap_values(rows.to_numpy()), dtype=np.float64)
    theirs = theirs.reshape(len(rows), N_FEATURES, -1).transpose(0, 2, 1)  # (rows, outputs, M)
    ours = np.stack([_values(output, row) for row in range(len(rows))])
    # shap keeps thresholds and leaf values in float32
    np.testing.assert_allclose(ours, theirs, atol=1e-5 * np.abs(theirs).max())


def test_catboost_pipeline_and_unnamed_pickle(tmp_path):
    """A Pipeline ending in CatBoost, and a CatBoost model fitted on a bare array (no
    names: the data's columns, counted against the model's), both go to TreeSHAP."""
    train = _frame(11, 300)
    score = _score(train)
    common = {"iterations": 15, "depth": 3, **QUIET}
    pipeline = make_pipeline(StandardScaler(), CatBoostRegressor(**common)).fit(train, score)
    rows, background = _frame(12, 3), _frame(13, 12)
    result, output = _explain(tmp_path, _save(pipeline, tmp_path, "joblib"), rows, background)
    assert result.exit_code == 0, result.stderr
    assert "SHAP algorithm: tree" in result.stderr
    x = rows.to_numpy()[0]

    def predict(hybrid):
        return pipeline.predict(pd.DataFrame(hybrid, columns=COLUMNS))

    reference = exact_interventional_shap(predict, x, background.to_numpy())
    assert np.abs(_values(output, 0) - reference).max() <= TOLERANCE * np.abs(reference).max()

    bare = CatBoostRegressor(**common).fit(train.to_numpy(), score)
    result, output = _explain(tmp_path, _save(bare, tmp_path, "joblib"), rows, background)
    assert result.exit_code == 0, result.stderr
    assert "SHAP algorithm: tree" in result.stderr
    result, _ = _explain(tmp_path, _save(bare, tmp_path, "joblib"), rows.iloc[:, :5], background)
    _one_error_line(result, "expects 8 features", "--features")


def test_catboost_what_tree_shap_refuses(tmp_path, catboost_models):
    """The probability, a Poisson regressor's prediction and CTR features are refused by
    --algorithm tree with the reason; auto falls back with a note saying why."""
    rows, background = _frame(14, 3), _frame(15, 8)
    path = _save(catboost_models["binary"], tmp_path, "joblib")
    result, _ = _explain(tmp_path, path, rows, background, "--algorithm", "tree")
    _one_error_line(result, "--output decision")
    result, _ = _explain(tmp_path, path, rows, background)
    assert result.exit_code == 0, result.stderr
    assert "SHAP algorithm: exact" in result.stderr and "--output decision" in result.stderr

    train = _frame(16, 300, with_nan=False)
    counts = np.random.default_rng(0).poisson(np.exp(0.3 * train["f0"]))
    poisson = CatBoostRegressor(loss_function="Poisson", iterations=10, depth=3, **QUIET).fit(
        train, counts
    )
    path = _save(poisson, tmp_path, "joblib")
    result, _ = _explain(tmp_path, path, rows, background, "--algorithm", "tree")
    _one_error_line(result, "exp(margin)", "--output decision")
    result, _ = _explain(tmp_path, path, rows, background, "--output", "decision")
    assert result.exit_code == 0 and "SHAP algorithm: tree" in result.stderr, result.stderr

    with_text = rows.assign(f7=["a", "b", "c"])
    train_text = train.assign(f7=np.random.default_rng(1).choice(["a", "b", "c"], len(train)))
    ctr = CatBoostClassifier(iterations=10, depth=3, **QUIET).fit(
        train_text, (train["f0"] > 0).astype(int) ^ (train_text["f7"] == "a"), cat_features=["f7"]
    )
    path = _save(ctr, tmp_path, "joblib")
    back_text = background.assign(f7=list("abcabcab"))
    result, _ = _explain(
        tmp_path, path, with_text, back_text, "--output", "decision", "--algorithm", "tree"
    )
    _one_error_line(result, "categorical features")
    result, output = _explain(tmp_path, path, with_text, back_text, "--output", "decision")
    assert result.exit_code == 0, result.stderr
    assert "SHAP algorithm: exact" in result.stderr and "no exact TreeSHAP" in result.stderr


def _xgboost_regressor(named: bool):
    from xgboost import XGBRegressor

    train = _frame(17, 300)
    features = train if named else train.to_numpy()
    return XGBRegressor(n_estimators=15, max_depth=3, n_jobs=1).fit(features, _score(train))


@pytest.mark.parametrize("suffix", ["json", "ubj"])
def test_xgboost_model_files(tmp_path, suffix):
    booster = _xgboost_regressor(named=True).get_booster()
    path = tmp_path / f"model.{suffix}"
    booster.save_model(str(path))
    rows, background = _frame(18, 4), _frame(19, 10)
    result, output = _explain(tmp_path, path, rows, background)
    assert result.exit_code == 0, result.stderr
    additive = output["base_value"] + output[COLUMNS].sum(axis=1)
    np.testing.assert_allclose(additive, output["prediction"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(output["prediction"], booster.inplace_predict(rows), rtol=1e-6)


def test_lightgbm_model_file(tmp_path):
    from lightgbm import LGBMRegressor

    train = _frame(20, 300)
    model = LGBMRegressor(n_estimators=15, num_leaves=7, verbose=-1, n_jobs=1)
    model.fit(train, _score(train))
    path = tmp_path / "model.txt"
    model.booster_.save_model(str(path))
    rows, background = _frame(21, 4), _frame(22, 10)
    result, output = _explain(tmp_path, path, rows, background)
    assert result.exit_code == 0, result.stderr
    additive = output["base_value"] + output[COLUMNS].sum(axis=1)
    np.testing.assert_allclose(additive, output["prediction"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(output["prediction"], model.predict(rows), rtol=1e-12)


def test_model_files_without_names_need_features(tmp_path):
    from lightgbm import LGBMRegressor

    rows, background = _frame(23, 3), _frame(24, 8)
    xgb_path = tmp_path / "unnamed.json"
    _xgboost_regressor(named=False).get_booster().save_model(str(xgb_path))
    train = _frame(25, 200)
    lgb_path = tmp_path / "unnamed.txt"
    LGBMRegressor(n_estimators=5, verbose=-1).fit(
        train.to_numpy(), _score(train)
    ).booster_.save_model(str(lgb_path))
    cbm_path = tmp_path / "unnamed.cbm"
    CatBoostRegressor(iterations=5, **QUIET).fit(train.to_numpy(), _score(train)).save_model(
        str(cbm_path)
    )
    for path in (xgb_path, lgb_path, cbm_path):
        result, _ = _explain(tmp_path, path, rows, background)
        _one_error_line(result, "stores no column names", "--features")
    result, output = _explain(tmp_path, cbm_path, rows, background, "--features", ",".join(COLUMNS))
    assert result.exit_code == 0, result.stderr
    assert "SHAP algorithm: tree" in result.stderr
    result, _ = _explain(tmp_path, xgb_path, rows, background, "--features", "f0,f1")
    _one_error_line(result, "--features names 2 columns", "8 inputs")


def test_files_that_are_not_models(tmp_path):
    rows, background = _frame(26, 2), _frame(27, 4)
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"explain": [{"model": "m.joblib", "data": "d.parquet"}]}))
    result, _ = _explain(tmp_path, job, rows, background)
    _one_error_line(result, "not an XGBoost model")
    notes = tmp_path / "notes.txt"
    notes.write_text("columns: f0..f7\n")
    result, _ = _explain(tmp_path, notes, rows, background)
    _one_error_line(result, "not a LightGBM text model")
    broken = tmp_path / "broken.cbm"
    broken.write_bytes(b"not a model")
    result, _ = _explain(tmp_path, broken, rows, background)
    _one_error_line(result, "not a CatBoost model")


@pytest.mark.parametrize(
    ("library", "save"),
    [
        ("xgboost", lambda path: joblib.dump(_xgboost_regressor(named=True), path / "m.joblib")),
        ("xgboost", lambda path: _xgboost_regressor(True).get_booster().save_model(path / "m.ubj")),
        ("catboost", lambda path: _fit("regressor").save_model(str(path / "m.cbm"))),
        ("catboost", lambda path: joblib.dump(_fit("regressor"), path / "m.pkl")),
    ],
)
def test_missing_library_names_the_extra(tmp_path, monkeypatch, library, save):
    """As where the library is not installed: its modules cannot be imported."""
    save(tmp_path)
    path = next(p for p in tmp_path.iterdir() if p.name.startswith("m."))
    for name in [n for n in sys.modules if n == library or n.startswith(f"{library}.")]:
        monkeypatch.setitem(sys.modules, name, None)
    result, _ = _explain(tmp_path, path, _frame(28, 2), _frame(29, 4))
    _one_error_line(result, f"needs the {library} library", f"pip install 'xaicli[{library}]'")


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regressor"])
def test_table_and_pair_engines_agree_on_oblivious_trees(catboost_models, kind):
    """CatBoost's float32 borders and nan_mode routing give the same values in both TreeSHAP
    engines (the enumeration test above checks the engine `auto` picks)."""
    from xaicli.methods.shap_tree import interventional_tree_shap
    from xaicli.models.trees import extract_tree_ensemble

    model = catboost_models[kind]
    ensemble = extract_tree_ensemble(model, "decision")
    rows, background = _frame(11, 20), _frame(12, 40)
    rows.loc[0, NAN_COLUMNS] = np.nan
    background.loc[:3, NAN_COLUMNS] = np.nan
    tables, pairs = (
        interventional_tree_shap(ensemble, rows.to_numpy(), background.to_numpy(), engine=engine)
        for engine in ("tables", "pairs")
    )
    scale = np.abs(pairs.values).max()
    assert scale > 0
    np.testing.assert_allclose(tables.values, pairs.values, rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(tables.predictions, _margin(model, rows.to_numpy()), rtol=1e-9)
