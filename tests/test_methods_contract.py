"""LIME, Integrated Gradients and saliency from the command line: models that take NaN,
IG's accuracy at its defaults, and LIME's least budget."""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from scipy.special import expit, softmax
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

FEATURES = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def with_nan(tmp_path_factory):
    """Models that impute NaN themselves, data with NaN in some rows and columns."""
    folder = tmp_path_factory.mktemp("nan")
    rng = np.random.default_rng(5)
    X = pd.DataFrame(rng.normal(size=(300, 4)), columns=FEATURES)
    y = (X.a + X.b - X.c > 0).astype(int)
    X.loc[rng.random(300) < 0.2, "c"] = np.nan
    X.loc[rng.random(300) < 0.1, "a"] = np.nan
    models = {
        "imputed_lr": make_pipeline(SimpleImputer(), LogisticRegression()).fit(X, y),
        "hgb": HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y),
    }
    for name, model in models.items():
        joblib.dump(model, folder / f"{name}.joblib")
    rows = X.iloc[:120].reset_index(drop=True)
    rows.to_parquet(folder / "rows.parquet", index=False)
    rows.dropna().to_parquet(folder / "complete.parquet", index=False)
    X.iloc[150:].to_parquet(folder / "bg.parquet", index=False)
    return {"folder": folder, "models": models, "rows": rows}


def _explain(folder, model, data, out, *extra):
    return run_cli(
        "explain",
        "--model",
        folder / model,
        "--data",
        folder / data,
        "--background",
        folder / "bg.parquet",
        "--out",
        out,
        *extra,
    )


@pytest.mark.parametrize("model", ["imputed_lr", "hgb"])
@pytest.mark.parametrize("method", ["lime", "ig", "saliency"])
def test_methods_explain_a_model_that_takes_nan(with_nan, tmp_path, model, method):
    out = tmp_path / "o.parquet"
    result = _explain(
        with_nan["folder"], f"{model}.joblib", "rows.parquet", out, "--method", method
    )
    assert result.exit_code == 0, result.stderr
    table = pd.read_parquet(out)
    rows = with_nan["rows"]
    assert len(table) == len(rows)
    expected = with_nan["models"][model].predict_proba(rows)[:, 1]
    np.testing.assert_allclose(table.prediction, expected, rtol=1e-12)
    values = table[FEATURES].to_numpy()
    assert np.isfinite(values).all()
    missing = rows[FEATURES].isna().to_numpy()
    if method == "ig":
        # NaN switches from the baseline's value at mid-path: completeness stays exact.
        total = table.base_value + values.sum(axis=1)
        assert np.abs(total - table.prediction).max() < 1e-12
        assert np.abs(table.completeness_error).max() < 1e-12
    elif method == "saliency":
        assert (values[missing] == 0).all()  # no derivative at a missing value
        if model == "imputed_lr":  # smooth: every present value has a derivative
            assert (values[~missing] > 0).all()
    else:
        assert np.isfinite(table.local_prediction).all() and np.isfinite(table.score).all()
        assert (table.score >= 0).all() and (table.score <= 1).all()


@pytest.mark.parametrize("method", ["lime", "ig", "saliency"])
def test_rows_without_nan_do_not_depend_on_the_rows_with_nan(with_nan, tmp_path, method):
    """(LIME's shared neighbourhood: per-row streams follow row positions, which differ.)"""
    folder = with_nan["folder"]
    extra = ["--method", method, "--seed", "3"]
    if method == "lime":
        extra += ["--n-samples", "600"]
    mixed = _explain(folder, "imputed_lr.joblib", "rows.parquet", tmp_path / "m.parquet", *extra)
    alone = _explain(
        folder, "imputed_lr.joblib", "complete.parquet", tmp_path / "c.parquet", *extra
    )
    assert mixed.exit_code == 0 and alone.exit_code == 0, mixed.stderr + alone.stderr
    complete = with_nan["rows"].notna().all(axis=1).to_numpy()
    a = pd.read_parquet(tmp_path / "m.parquet")[FEATURES].to_numpy()[complete]
    b = pd.read_parquet(tmp_path / "c.parquet")[FEATURES].to_numpy()
    np.testing.assert_array_equal(a, b)


def test_lime_neighbours_sample_nan_with_its_background_frequency(with_nan):
    from xaicli.methods.lime_sampling import TabularSampler

    background = pd.read_parquet(with_nan["folder"] / "bg.parquet").to_numpy()
    sampler = TabularSampler.fit(background, np.zeros(4, dtype=bool), True)
    drawn = sampler.draw(np.random.default_rng(0), 40_000).inputs
    for j in range(4):
        share = np.isnan(background[:, j]).mean()
        assert abs(np.isnan(drawn[:, j]).mean() - share) < 0.01
        # the other values stay within the column's range
        present = drawn[~np.isnan(drawn[:, j]), j]
        assert present.min() >= np.nanmin(background[:, j])
        assert present.max() <= np.nanmax(background[:, j])


def test_lime_without_discretization_refuses_nan_naming_the_column(with_nan, tmp_path):
    out = tmp_path / "o.parquet"
    result = _explain(
        with_nan["folder"], "imputed_lr.joblib", "rows.parquet", out, "--method", "lime",
        "--no-discretize",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    first = int(with_nan["rows"].isna().any(axis=1).to_numpy().argmax())
    column = with_nan["rows"].columns[with_nan["rows"].iloc[first].isna().to_numpy()][0]
    assert line.startswith(f"xai: error: row {first} ") and f"NaN in {column}" in line
    assert "--no-discretize" in line and "--on-invalid skip" in line
    assert not out.exists()


def test_lime_without_discretization_skips_rows_with_nan_on_request(with_nan, tmp_path):
    out = tmp_path / "o.parquet"
    result = _explain(
        with_nan["folder"], "imputed_lr.joblib", "rows.parquet", out, "--method", "lime",
        "--no-discretize", "--on-invalid", "skip",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    complete = with_nan["rows"].notna().all(axis=1)
    assert len(pd.read_parquet(out)) == complete.sum()


@pytest.mark.parametrize("n_samples", ["1", "0"])
def test_lime_refuses_fewer_than_two_samples_before_any_work(with_nan, tmp_path, n_samples):
    out = tmp_path / "o.parquet"
    result = _explain(
        with_nan["folder"], "hgb.joblib", "complete.parquet", out, "--method", "lime",
        "--n-samples", n_samples,
    )  # fmt: skip
    assert result.exit_code == 2
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("xai: error: --n-samples must be at least")
    assert "Traceback" not in result.stderr and not out.exists()


def test_lime_runs_with_two_samples(with_nan, tmp_path):
    out = tmp_path / "o.parquet"
    result = _explain(
        with_nan["folder"], "hgb.joblib", "rows.parquet", out, "--method", "lime",
        "--n-samples", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert np.isfinite(pd.read_parquet(out)[FEATURES].to_numpy()).all()


def test_ig_baseline_with_nan_is_refused_for_a_model_that_cannot_take_it(tmp_path):
    rng = np.random.default_rng(2)
    X = pd.DataFrame(rng.normal(size=(60, 4)), columns=FEATURES)
    model = LogisticRegression().fit(X, (X.a > 0).astype(int))  # no imputation
    joblib.dump(model, tmp_path / "m.joblib")
    X.to_parquet(tmp_path / "d.parquet", index=False)
    X.iloc[:1].assign(b=np.nan).to_parquet(tmp_path / "base.parquet", index=False)
    out = tmp_path / "o.parquet"
    result = run_cli(
        "explain", "--model", tmp_path / "m.joblib", "--data", tmp_path / "d.parquet",
        "--out", out, "--method", "ig", "--baseline", tmp_path / "base.parquet",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "column 'b'" in result.stderr and "cannot take" in result.stderr
    assert not out.exists()


def _analytic_ig(model, rows, baseline):
    """IG of StandardScaler + LogisticRegression's probabilities along the straight path
    (n_rows, n_classes, n_features): the closed form for two classes, else a 200-node
    Gauss-Legendre quadrature of the softmax's exact gradient."""
    scaler, lr = model[0], model[1]
    W = lr.coef_ / scaler.scale_  # in the data's units
    b = lr.intercept_ - W @ scaler.mean_
    delta = rows - baseline
    if W.shape[0] == 1:
        z, z0 = rows @ W[0] + b[0], baseline @ W[0] + b[0]
        ig = delta * W[0] * ((expit(z) - expit(z0)) / (z - z0))[:, None]
        return np.stack([-ig, ig], axis=1)
    t, w = np.polynomial.legendre.leggauss(200)
    total = 0.0
    for a, weight in zip((t + 1) / 2, w / 2, strict=True):
        P = softmax((baseline + a * delta) @ W.T + b, axis=1)  # (n, K)
        jacobian = P[:, :, None] * (np.eye(len(b))[None] - P[:, None, :])  # dP_k / dz_j
        total = total + weight * (jacobian @ W)  # (n, K, M)
    return total * delta[:, None, :]


def _datasets():
    X, y = load_wine(return_X_y=True)
    yield "wine", X, y
    yield "wine_0v1", X[y < 2], y[y < 2]
    yield "breast_cancer", *load_breast_cancer(return_X_y=True)


@pytest.mark.parametrize("name", ["wine", "wine_0v1", "breast_cancer"])
def test_ig_at_its_defaults_is_within_1e3_of_analytic_ig(tmp_path, name):
    """Error measure: over rows and classes, max of sum_i |ig_i - exact_i| / sum_i |exact_i|."""
    X, y = next((X, y) for n, X, y in _datasets() if n == name)
    features = [f"x{i}" for i in range(X.shape[1])]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    model.fit(pd.DataFrame(X, columns=features), y)
    joblib.dump(model, tmp_path / "m.joblib")
    pd.DataFrame(X, columns=features).to_parquet(tmp_path / "d.parquet", index=False)
    baseline = X.mean(axis=0)
    pd.DataFrame(baseline[None], columns=features).to_parquet(tmp_path / "b.parquet")
    out = tmp_path / "o.parquet"
    result = run_cli(
        "explain", "--model", tmp_path / "m.joblib", "--data", tmp_path / "d.parquet",
        "--out", out, "--method", "ig", "--baseline", tmp_path / "b.parquet",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    table = pd.read_parquet(out)
    # Every class of a multiclass model, the positive class of a binary one
    explained = [list(model.classes_).index(int(c)) for c in table.output]
    ours = table[features].to_numpy()
    exact = _analytic_ig(model, X, baseline)[table.row.to_numpy(), explained]
    error = np.abs(ours - exact).sum(axis=1) / np.abs(exact).sum(axis=1)
    assert error.max() < 1e-3
    assert np.abs(table.completeness_error).max() < 1e-12
