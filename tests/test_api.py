"""The Python API: ``xaicli.explain`` gives the command line's numbers, and
``xaicli.read_attributions`` reads every table the command line writes, with its facts."""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import xaicli

PENGUIN_FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "sex"]


def _cli_table(tmp_path, model_path, data_path, *options):
    out = tmp_path / "cli.parquet"
    result = run_cli("explain", "--model", model_path, "--data", data_path, "--out", out, *options)
    assert result.exit_code == 0, result.stderr
    return pd.read_parquet(out)


@pytest.fixture(scope="module")
def tree_case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api-tree")
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(300, 5)), columns=[f"f{i}" for i in range(5)])
    y = X.f0 * X.f1 + X.f2 - X.f3
    model = GradientBoostingRegressor(n_estimators=30, max_depth=3, random_state=0).fit(X, y)
    joblib.dump(model, folder / "gbr.joblib")
    data = X.iloc[:70].copy()
    data.insert(0, "key", [f"k{i:03d}" for i in range(len(data))])
    data.to_parquet(folder / "rows.parquet", index=False)
    return {"model": model, "folder": folder, "data": data}


def test_explain_tree_model_object_equals_cli(tree_case, tmp_path):
    c = tree_case
    cli = _cli_table(
        tmp_path, c["folder"] / "gbr.joblib", c["folder"] / "rows.parquet", "--id-col", "key"
    )
    api = xaicli.explain(c["model"], c["data"], id_cols=["key"], n_jobs=1)
    pd.testing.assert_frame_equal(api, cli)
    # additivity: the values are SHAP values of the model, not merely the CLI's copy
    features = [f"f{i}" for i in range(5)]
    np.testing.assert_allclose(
        api["base_value"] + api[features].sum(axis=1),
        c["model"].predict(c["data"][features]),
        atol=1e-9,
    )


def test_explain_pipeline_with_string_columns_equals_cli(penguin_frame, tmp_path):
    prep = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["island", "sex"])],
        remainder="passthrough",
    )
    model = make_pipeline(
        prep, RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0)
    )
    model.fit(penguin_frame[PENGUIN_FEATURES], penguin_frame["species"])
    joblib.dump(model, tmp_path / "pipe.joblib")
    data = penguin_frame.iloc[::25][["customer_id", *PENGUIN_FEATURES]].reset_index(drop=True)
    data.to_parquet(tmp_path / "rows.parquet", index=False)
    options = ("--id-col", "customer_id", "--background-size", "30")
    cli = _cli_table(tmp_path, tmp_path / "pipe.joblib", tmp_path / "rows.parquet", *options)
    api = xaicli.explain(
        model, tmp_path / "rows.parquet", id_cols=["customer_id"], background_size=30
    )
    pd.testing.assert_frame_equal(api, cli)
    api_frame = xaicli.explain(model, data, id_cols=["customer_id"], background_size=30)
    pd.testing.assert_frame_equal(api_frame, cli)


def test_explain_lime_equals_cli(tree_case, tmp_path):
    c = tree_case
    options = ("--id-col", "key", "--method", "lime", "--n-samples", "600", "--seed", "5")
    cli = _cli_table(tmp_path, c["folder"] / "gbr.joblib", c["folder"] / "rows.parquet", *options)
    api = xaicli.explain(
        c["model"], c["data"], id_cols="key", method="lime", n_samples=600, seed=5, n_jobs=2
    )
    pd.testing.assert_frame_equal(api, cli)
    assert {"local_prediction", "score"} <= set(api.columns)


def test_explain_plain_function(tree_case):
    features = ["f0", "f1"]

    def linear(rows):
        return 2.0 * rows[:, 0] - rows[:, 1]

    table = xaicli.explain(linear, tree_case["data"][features], algorithm="exact", n_jobs=1)
    data = tree_case["data"][features].to_numpy()
    background = data  # the whole 70 rows: below the default background size
    expected = np.column_stack(
        [2.0 * (data[:, 0] - background[:, 0].mean()), -(data[:, 1] - background[:, 1].mean())]
    )
    np.testing.assert_allclose(table[features].to_numpy(), expected, atol=1e-12)


def test_explain_refuses_unknown_type_and_command_line_only_options(tree_case):
    with pytest.raises(xaicli.XaiError, match="DataFrame or a path"):
        xaicli.explain(tree_case["model"], [[1, 2, 3]])
    with pytest.raises(xaicli.XaiError, match="resume"):
        xaicli.explain(tree_case["model"], tree_case["data"], resume=True)
    with pytest.raises(xaicli.XaiError, match="no option 'n_sample'"):
        xaicli.explain(tree_case["model"], tree_case["data"], n_sample=10)


@pytest.mark.parametrize("layout", ["wide", "long"])
@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_read_attributions_round_trip(tree_case, tmp_path, layout, suffix):
    c = tree_case
    out = tmp_path / f"a.{suffix}"
    result = run_cli(
        "explain",
        "--model",
        c["folder"] / "gbr.joblib",
        "--data",
        c["folder"] / "rows.parquet",
        "--id-col",
        "key",
        "--layout",
        layout,
        "--out",
        out,
    )
    assert result.exit_code == 0, result.stderr
    table = xaicli.read_attributions(out)
    assert table.layout == layout
    assert table.method == "shap" and table.algorithm == "tree"
    assert table.outputs == ("prediction",)
    assert table.features == tuple(f"f{i}" for i in range(5))
    assert table.id_columns == ("key",)
    assert table.extra_columns == ()
    assert table.se_columns == ()
    assert table.format_version == 3  # 2: reason and standard error columns; 3: interactions
    assert table.frame["key"].tolist()[:2] == ["k000", "k000" if layout == "long" else "k001"]
    written = pd.read_parquet(out) if suffix == "parquet" else pd.read_csv(out)
    assert len(table.frame) == len(written)
    # the base value of a regression's SHAP run: the model's mean over the background
    manifest = table.metadata
    assert manifest["background_rows"] == 70
    expected_base = c["model"].predict(c["data"][list(table.features)]).mean()
    assert table.base_values["prediction"] == pytest.approx(expected_base, abs=1e-9)


def test_read_attributions_without_metadata_infers_the_layout(tmp_path):
    frame = pd.DataFrame(
        {
            "id": ["007", "010"],
            "output": ["yes", "yes"],
            "base_value": [0.5, 0.5],
            "prediction": [0.7, 0.2],
            "score": [0.9, 0.8],
            "a": [0.1, -0.2],
            "b": [0.1, -0.1],
        }
    )
    frame.to_csv(tmp_path / "plain.csv", index=False)
    table = xaicli.read_attributions(tmp_path / "plain.csv")
    assert table.layout == "wide" and table.method is None
    assert table.id_columns == ("id",)
    assert table.frame["id"].tolist() == ["007", "010"]  # ids as written
    assert table.extra_columns == ("score",) and table.features == ("a", "b")
    assert table.base_values == {"yes": 0.5}
    (tmp_path / "other.csv").write_text("x,y\n1,2\n")
    with pytest.raises(xaicli.XaiError, match="not an attribution table"):
        xaicli.read_attributions(tmp_path / "other.csv")


def test_base_values_of_methods_whose_rows_differ_are_not_recorded(tree_case, tmp_path):
    c = tree_case
    out = tmp_path / "lime.parquet"
    options = ("--method", "lime", "--n-samples", "300", "--layout", "long", "--out", out)
    result = run_cli(
        "explain",
        "--model",
        c["folder"] / "gbr.joblib",
        "--data",
        c["folder"] / "rows.parquet",
        *options,
    )
    assert result.exit_code == 0, result.stderr
    table = xaicli.read_attributions(out)
    assert table.method == "lime" and table.base_values == {}  # LIME's intercepts vary by row
