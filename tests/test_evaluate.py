"""xai evaluate: completeness, deletion/insertion curves, stability, agreement and cost, on
a linear model of statsmodels' macrodata whose curves are analytic."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from sklearn.linear_model import LinearRegression

from tests.conftest import run_cli
from xaicli import explain
from xaicli.trust.curves import curve_area, feature_curves, normalised_curves

FEATURES = ["realgdp", "realcons", "realinv", "realgovt", "realdpi", "cpi"]


@pytest.fixture(scope="module")
def macro(tmp_path_factory):
    """A linear regression of unemployment, explained by linear SHAP against one background
    row z: phi_j = w_j (x_j - z_j), and deleting feature j moves the output by w_j (z_j - x_j)."""
    folder = tmp_path_factory.mktemp("macro")
    frame = sm.datasets.macrodata.load_pandas().data
    frame["quarter_id"] = [
        f"{int(y)}Q{int(q)}" for y, q in zip(frame.year, frame.quarter, strict=True)
    ]
    data = frame[["quarter_id", *FEATURES]].iloc[:60]
    model = LinearRegression().fit(frame[FEATURES], frame["unemp"])
    import joblib

    joblib.dump(model, folder / "model.joblib")
    data.to_parquet(folder / "data.parquet", index=False)
    background = frame[FEATURES].iloc[[150]]
    background.to_parquet(folder / "z.parquet", index=False)
    shap = folder / "shap.parquet"
    common = dict(id_cols=["quarter_id"], background=folder / "z.parquet", n_jobs=1)
    explain(
        folder / "model.joblib",
        folder / "data.parquet",
        out=shap,
        method="shap",
        algorithm="linear",
        **common,
    )
    return folder, model, data, background


def _evaluate(folder, *args):
    result = run_cli(
        "evaluate", folder / "shap.parquet", "--model", folder / "model.joblib", "--data",
        folder / "data.parquet", "--out", "-", *args,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _analytic_curves(model, X: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Deletion curves in the order of |w_j (x_j - z_j)|, and their normalised form."""
    contributions = model.coef_ * (X - z)  # (rows, features): linear SHAP, one background row
    order = np.argsort(-np.abs(contributions), axis=1, kind="stable")
    steps = -np.take_along_axis(contributions, order, axis=1)
    fx = model.predict(pd.DataFrame(X, columns=FEATURES))
    curves = np.concatenate([fx[:, None], fx[:, None] + np.cumsum(steps, axis=1)], axis=1)
    fz = float(model.predict(pd.DataFrame(z[None], columns=FEATURES))[0])
    return curves, (curves - fz) / (fx - fz)[:, None]


def test_deletion_curve_of_a_linear_model_is_analytic(macro):
    folder, model, data, background = macro
    X, z = data[FEATURES].to_numpy(), background.to_numpy()[0]
    expected, expected_normalised = _analytic_curves(model, X, z)
    contributions = model.coef_ * (X - z)
    order = np.argsort(-np.abs(contributions), axis=1, kind="stable")

    def predict(rows):
        return model.predict(pd.DataFrame(rows, columns=FEATURES))

    curves = feature_curves(predict, X, z[None], order, insertion=False, max_eval_rows=50)
    np.testing.assert_allclose(curves, expected, rtol=1e-10)
    scaled, kept = normalised_curves(curves, insertion=False)
    assert kept.all()
    n = len(FEATURES)
    trapezoids = (expected_normalised[:, :-1] + expected_normalised[:, 1:]).sum(axis=1) / (2 * n)
    np.testing.assert_allclose(curve_area(scaled), trapezoids, rtol=1e-9)

    # the same through the command: every row sampled (60 < --rows); rows averaged with
    # weights |f(x) - f(z)|, so the mean curve is sum_r sign(g_r) (c_r - f(z)) / sum_r |g_r|
    summary = _evaluate(folder, "--rows", "1000", "--seeds", "0")
    metrics = summary["metrics"]["prediction"]
    assert summary["rows"] == 60 and metrics["curve_rows"] == 60
    gap = expected[:, 0] - expected[:, -1]
    mean_curve = (np.sign(gap)[:, None] * (expected - expected[:, -1:])).sum(axis=0)
    mean_curve /= np.abs(gap).sum()
    np.testing.assert_allclose(
        summary["curves"]["prediction"]["deletion"], mean_curve, rtol=1e-9, atol=1e-12
    )
    weights = np.abs(gap) / np.abs(gap).sum()
    assert metrics["deletion_auc"] == pytest.approx((weights * trapezoids).sum(), rel=1e-9)
    assert metrics["deletion_auc"] == pytest.approx(
        (mean_curve[:-1] + mean_curve[1:]).sum() / (2 * n), rel=1e-9
    )
    # additive model, one background row: insertion is 1 - deletion at every step
    assert metrics["insertion_auc"] == pytest.approx(1 - metrics["deletion_auc"], rel=1e-9)
    # and in the random order too (the same order for both curves)
    assert metrics["insertion_random_auc"] == pytest.approx(
        1 - metrics["deletion_random_auc"], rel=1e-9
    )
    assert metrics["deletion_random_auc"] != pytest.approx(metrics["deletion_auc"])


def test_exact_shap_is_complete_and_stable(macro):
    folder, *_ = macro
    summary = _evaluate(folder, "--rows", "25", "--seeds", "2")
    metrics = summary["metrics"]["prediction"]
    assert summary["rows"] == 25
    assert metrics["completeness_max_abs_error"] < 1e-9
    assert metrics["stability_spearman"] == 1.0 and metrics["stability_top_k_overlap"] == 1.0
    cost = summary["cost"]
    assert cost["model_evaluations_per_row"] > 0 and cost["seconds_per_row"] > 0
    assert cost["recorded_seconds_per_row"] > 0
    # the same seed samples the same rows: the same numbers
    again = _evaluate(folder, "--rows", "25", "--seeds", "0")
    assert again["metrics"]["prediction"]["deletion_auc"] == metrics["deletion_auc"]


def test_a_sampled_method_is_less_stable_and_agrees_less(macro, tmp_path):
    folder, *_ = macro
    lime = tmp_path / "lime.csv"
    # neighbours drawn from 30 background rows of the data, few of them: seeds matter
    explain(
        folder / "model.joblib", folder / "data.parquet", out=lime, method="lime", n_samples=30,
        lime_neighbourhood="per-row", id_cols=["quarter_id"], background_size=30, n_jobs=1,
    )  # fmt: skip
    result = run_cli(
        "evaluate", lime, "--model", folder / "model.joblib", "--data", folder / "data.parquet",
        "--rows", "20", "--seeds", "1", "--against", folder / "shap.parquet", "--out", "-",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    metrics = json.loads(result.stdout)["metrics"]["prediction"]
    assert metrics["stability_spearman"] < 1.0
    assert 0.0 <= metrics["stability_top_k_overlap"] <= 1.0
    assert metrics["agreement_spearman"] < 1.0
    # a table against itself agrees fully
    same = _evaluate(folder, "--rows", "20", "--seeds", "0", "--against", folder / "shap.parquet")
    metrics = same["metrics"]["prediction"]
    assert metrics["agreement_spearman"] == 1.0 and metrics["agreement_top_k_overlap"] == 1.0


def test_terminal_table_and_csv(macro, tmp_path):
    folder, *_ = macro
    args = ("--model", folder / "model.joblib", "--data", folder / "data.parquet", "--seeds", "0")
    result = run_cli("evaluate", folder / "shap.parquet", *args, "--rows", "10")
    assert result.exit_code == 0, result.stderr
    assert "deletion_auc" in result.stdout and "completeness_max_abs_error" in result.stdout
    out = tmp_path / "quality.csv"
    assert (
        run_cli("evaluate", folder / "shap.parquet", *args, "--rows", "10", "--out", out).exit_code
        == 0
    )
    table = pd.read_csv(out)
    assert list(table.columns) == ["metric", "output", "value"]
    assert "insertion_random_auc" in set(table["metric"])


def test_bad_input_is_one_line_and_exit_2(macro, tmp_path):
    folder, model, data, _ = macro
    shap = folder / "shap.parquet"
    other_rows = tmp_path / "other.parquet"
    data.assign(quarter_id=[f"x{i}" for i in range(len(data))]).to_parquet(other_rows, index=False)
    fewer = tmp_path / "fewer.csv"
    pd.read_parquet(shap).drop(columns=["cpi"]).to_csv(fewer, index=False)
    import joblib

    shifted = LinearRegression().fit(data[FEATURES], model.predict(data[FEATURES]) + 1.0)
    joblib.dump(shifted, tmp_path / "other_model.joblib")
    base = ("--model", folder / "model.joblib", "--data", folder / "data.parquet")
    cases = [
        ((tmp_path / "missing.parquet", *base), "not found"),
        ((folder / "data.parquet", *base), "is not an attribution table"),
        ((shap, "--model", folder / "model.joblib", "--data", other_rows), "are not in"),
        ((shap, *base, "--rows", "0"), "--rows must be at least 1"),
        ((shap, *base, "--against", fewer), "do not explain the same features"),
        ((shap, *base, "--out", tmp_path / "q.txt"), "cannot tell the format"),
        ((shap, "--data", folder / "data.parquet"), "--model required"),
        # another model's outputs: the metrics would describe nothing
        (
            (shap, "--model", tmp_path / "other_model.joblib", "--data", folder / "data.parquet"),
            "differ from the table's predictions",
        ),
    ]
    for args, expected in cases:
        result = run_cli("evaluate", *args)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2, (args, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("xai: error:"), lines
        assert expected in lines[0], lines[0]
