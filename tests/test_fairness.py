"""`xai fairness`: group metrics equal fairlearn's on data and a model built here."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import pandas as pd
import pytest
from conftest import run_cli, run_xai_process
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.datasets import load_wine
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


@pytest.fixture(scope="module")
def wine(tmp_path_factory):
    """Wine cultivar 0 against the others, a group derived from the magnesium content (some
    rows missing), a logistic regression trained here without that column."""
    folder = tmp_path_factory.mktemp("fairness")
    bunch = load_wine(as_frame=True)
    X = bunch.data.drop(columns=["magnesium"])
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=1000))
    model.fit(X, (bunch.target == 0).astype(int))
    joblib.dump(model, folder / "wine.joblib")
    mg_level = pd.qcut(bunch.data.magnesium, 3, labels=["pale", "mid", "deep"])
    group = mg_level.astype(object)
    group[::17] = None  # missing: its own group
    frame = X.copy()
    frame.insert(0, "wine_id", [f"w{i:03d}" for i in range(len(X))])
    frame["mg_level"] = group
    frame["is_first"] = (bunch.target == 0).astype(int)
    frame["cultivar"] = bunch.target
    frame["proline_level"] = pd.qcut(bunch.data.proline, 3, labels=["low", "mid", "high"])
    frame["alcohol_band"] = (bunch.data.alcohol > 13).astype(int)  # an integer group
    frame.to_parquet(folder / "wine.parquet", index=False)
    frame.to_csv(folder / "wine.csv", index=False)
    return {"folder": folder, "model": model, "X": X, "frame": frame}


def _fairness_json(case, *args) -> dict:
    out = case["folder"] / "f.json"
    result = run_cli(
        "fairness", "--model", case["folder"] / "wine.joblib", "--data",
        case["folder"] / "wine.parquet", "--out", out, "--overwrite", *args,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return json.loads(out.read_text())


@pytest.mark.parametrize("threshold", [None, 0.3])
def test_group_metrics_equal_fairlearns(wine, threshold):
    args = ["--group", "mg_level", "--target", "is_first"]
    report = _fairness_json(wine, *args, *(["--threshold", threshold] if threshold else []))
    proba = wine["model"].predict_proba(wine["X"])[:, 1]
    y_pred = (proba >= (threshold or 0.5)).astype(int)
    y_true = wine["frame"].is_first.to_numpy()
    groups = wine["frame"].mg_level.fillna("(missing)").to_numpy()
    frame = MetricFrame(
        metrics={"sr": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate},
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=groups,
    )
    by_group = {g["group"]: g for g in report["groups"]}
    assert set(by_group) == {"pale", "mid", "deep", "(missing)"}
    for name, row in frame.by_group.iterrows():
        assert by_group[name]["count"] == (groups == name).sum()
        assert by_group[name]["selection_rate"] == pytest.approx(row.sr, abs=1e-12)
        assert by_group[name]["true_positive_rate"] == pytest.approx(row.tpr, abs=1e-12)
        assert by_group[name]["false_positive_rate"] == pytest.approx(row.fpr, abs=1e-12)
    kw = {"y_true": y_true, "y_pred": y_pred, "sensitive_features": groups}
    overall = report["overall"]
    expected = {
        "demographic_parity_difference": demographic_parity_difference(**kw),
        "demographic_parity_ratio": demographic_parity_ratio(**kw),
        "equal_opportunity_difference": equal_opportunity_difference(**kw),
        "equalized_odds_difference": equalized_odds_difference(**kw),
    }
    for name, value in expected.items():
        assert overall[name] == pytest.approx(value, abs=1e-12), name
    assert overall["four_fifths_rule_broken"] == (expected["demographic_parity_ratio"] < 0.8)
    assert 0 < expected["demographic_parity_difference"]  # a case with a gap


def test_csv_integer_groups_and_predicted_labels_equal_fairlearns(wine):
    """Integer groups read from CSV (as floats) keep integer labels; --output predict
    selects the rows whose predicted class is the positive one."""
    out = wine["folder"] / "f.csv"
    result = run_cli(
        "fairness", "--model", wine["folder"] / "wine.joblib", "--data", wine["folder"] / "wine.csv",
        "--group", "alcohol_band", "--target", "is_first", "--output", "predict",
        "--features", ",".join(wine["X"].columns), "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    table = pd.read_csv(out, dtype={"group": str})
    groups = table[table.section == "group"]
    assert set(groups.group) == {"0", "1"}
    y_pred = wine["model"].predict(wine["X"])
    kw = {
        "y_true": wine["frame"].is_first,
        "y_pred": y_pred,
        "sensitive_features": wine["frame"].alcohol_band,
    }
    overall = table[table.section == "overall"].set_index("name").value
    assert float(overall["equalized_odds_difference"]) == pytest.approx(
        equalized_odds_difference(**kw), abs=1e-12
    )
    assert float(overall["demographic_parity_ratio"]) == pytest.approx(
        demographic_parity_ratio(**kw), abs=1e-12
    )


def test_stdout_that_is_not_a_terminal_gets_csv(wine):
    result = run_cli(
        "fairness", "--model", wine["folder"] / "wine.joblib", "--data",
        wine["folder"] / "wine.parquet", "--group", "mg_level",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "section,group,name,value"
    assert "overall,,demographic_parity_difference," in result.stdout


def test_fail_above_exits_3_when_the_gap_is_crossed_and_0_otherwise(wine):
    args = [
        "fairness", "--model", wine["folder"] / "wine.joblib", "--data",
        wine["folder"] / "wine.parquet", "--group", "mg_level", "--target", "is_first",
    ]  # fmt: skip
    report = _fairness_json(wine, *args[5:])
    gap = report["overall"]["equalized_odds_difference"]
    crossed = run_xai_process(
        *args, "--fail-above", gap / 2, "--fail-metric", "equalized_odds_difference", "--out", "-"
    )
    assert crossed.returncode == 3
    assert crossed.stdout.startswith("section,group,name,value")  # the results came first
    assert crossed.stderr.count("\n") == 1, crossed.stderr
    assert crossed.stderr.startswith("xai: error: equalized_odds_difference is ")
    kept = run_cli(*args, "--fail-above", gap + 0.01, "--fail-metric", "equalized_odds_difference")
    assert kept.exit_code == 0, kept.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--group", "nope"], "--group column 'nope' is not in"),
        (["--group", "mg_level", "--target", "cultivar"], "not a class of the model"),
        (["--group", "mg_level", "--class", "7"], "unknown class '7'"),
        (["--group", "mg_level", "--threshold", "1.5"], "must be in [0, 1]"),
        (
            [
                "--group",
                "mg_level",
                "--fail-above",
                "0.1",
                "--fail-metric",
                "equal_opportunity_difference",
            ],
            "needs --target",
        ),
        (["--group", "mg_level", "--out", "report.txt"], "cannot tell the format"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(wine, extra, message):
    result = run_cli(
        "fairness", "--model", wine["folder"] / "wine.joblib", "--data",
        wine["folder"] / "wine.parquet", *extra,
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("xai: error: ")
    assert message in result.stderr
    assert result.stdout == ""


def test_a_regressor_needs_a_threshold_and_a_binary_target(wine, tmp_path):
    model = LinearRegression().fit(wine["X"], wine["frame"].is_first)
    joblib.dump(model, tmp_path / "reg.joblib")
    base = ["fairness", "--model", tmp_path / "reg.joblib", "--data", wine["folder"] / "wine.parquet", "--group", "mg_level"]  # fmt: skip
    no_threshold = run_cli(*base)
    assert no_threshold.exit_code == 2 and "pass --threshold" in no_threshold.stderr
    not_binary = run_cli(*base, "--threshold", "0.5", "--target", "cultivar")
    assert not_binary.exit_code == 2 and "is not binary" in not_binary.stderr
    out = tmp_path / "r.json"
    ok = run_cli(*base, "--threshold", "0.5", "--target", "is_first", "--out", out)
    assert ok.exit_code == 0, ok.stderr
    y_pred = model.predict(wine["X"]) >= 0.5
    groups = wine["frame"].mg_level.fillna("(missing)")
    expected = demographic_parity_difference(
        wine["frame"].is_first, y_pred, sensitive_features=groups
    )
    got = json.loads(out.read_text())["overall"]["demographic_parity_difference"]
    assert got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("layout", ["wide", "long"])
def test_mean_attribution_per_group_joined_on_ids(wine, layout):
    folder: Path = wine["folder"]
    shuffled = wine["frame"].sample(frac=1.0, random_state=3)  # joined on ids, not positions
    shuffled.iloc[:60].to_parquet(folder / f"part-{layout}.parquet", index=False)
    attributions = folder / f"shap-{layout}.csv"
    explained = run_cli(
        "explain", "--model", folder / "wine.joblib", "--data", folder / f"part-{layout}.parquet",
        "--id-col", "wine_id", "--out", attributions, "--layout", layout, "--n-jobs", "1",
        "--overwrite", "--quiet",
    )  # fmt: skip
    assert explained.exit_code == 0, explained.stderr
    report = _fairness_json(wine, "--group", "mg_level", "--attributions", attributions)
    table = pd.read_csv(attributions, dtype={"wine_id": str})
    if layout == "long":
        table = table.pivot(index="wine_id", columns="feature", values="attribution").reset_index()
    joined = table.merge(wine["frame"][["wine_id", "mg_level"]], on="wine_id")
    expected = joined.groupby(joined.mg_level.fillna("(missing)"))[list(wine["X"].columns)].mean()
    got = report["attributions"]["mean_by_group"]
    assert set(got) == set(expected.index)
    for group, means in expected.iterrows():
        for feature, value in means.items():
            assert got[group][feature] == pytest.approx(value, abs=1e-12)
    assert report["attributions"]["output"] == "1"


def test_a_group_without_positives_counts_as_fairlearn_counts_it(wine):
    """No first-cultivar wine has low proline: fairlearn's true-positive rate of that group
    is 0 (0/0 in scikit-learn's normalized confusion matrix), and so is ours, with a note."""
    out = wine["folder"] / "p.json"
    result = run_cli(
        "fairness", "--model", wine["folder"] / "wine.joblib", "--data",
        wine["folder"] / "wine.parquet", "--group", "proline_level", "--target", "is_first",
        "--out", out, "--overwrite",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "low have only positive or only negative target rows" in result.stderr
    report = json.loads(out.read_text())
    y_pred = wine["model"].predict_proba(wine["X"])[:, 1] >= 0.5
    kw = {
        "y_true": wine["frame"].is_first,
        "y_pred": y_pred,
        "sensitive_features": wine["frame"].proline_level.astype(str),
    }
    assert report["overall"]["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(**kw), abs=1e-12
    )
    low = next(g for g in report["groups"] if g["group"] == "low")
    assert low["positives"] == 0 and low["true_positive_rate"] == 0.0
