"""Model sources and kinds: Pipelines with string columns, skops files, callables, folders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import exact_interventional_shap, run_cli
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "sex"]


@pytest.fixture(scope="module")
def penguin_pipeline(penguin_frame, tmp_path_factory):
    """A forest after one-hot encoding of two string columns: no shortcut applies."""
    import joblib

    folder = tmp_path_factory.mktemp("penguins")
    prep = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["island", "sex"])],
        remainder="passthrough",
    )
    model = make_pipeline(
        prep, RandomForestClassifier(n_estimators=15, max_depth=5, random_state=0)
    )
    model.fit(penguin_frame[FEATURES], penguin_frame["species"])
    joblib.dump(model, folder / "pipe.joblib")
    data = penguin_frame.iloc[::40][["customer_id", *FEATURES]]
    data.to_parquet(folder / "rows.parquet", index=False)
    background = penguin_frame.iloc[1::23][FEATURES]
    background.to_parquet(folder / "bg.parquet", index=False)
    return {"model": model, "folder": folder, "data": data, "background": background}


def test_pipeline_with_string_columns_matches_enumeration(penguin_pipeline, tmp_path):
    p = penguin_pipeline
    out = tmp_path / "o.parquet"
    result = run_cli(
        "explain",
        "--model",
        p["folder"] / "pipe.joblib",
        "--data",
        p["folder"] / "rows.parquet",
        "--background",
        p["folder"] / "bg.parquet",
        "--id-col",
        "customer_id",
        "--out",
        out,
        "--n-jobs",
        "1",
    )
    assert result.exit_code == 0, result.stderr
    assert "SHAP algorithm: tree" in result.stderr  # TreeSHAP over one-hot groups
    table = pd.read_parquet(out)
    model = p["model"]
    assert list(table["output"][:3]) == list(model.classes_)
    assert list(table.columns[4:]) == FEATURES  # one attribution per input column

    def f(rows):
        return model.predict_proba(
            pd.DataFrame(rows, columns=FEATURES).astype(p["background"].dtypes)
        )

    background = p["background"].to_numpy(dtype=object)
    for r, x in enumerate(p["data"][FEATURES].to_numpy(dtype=object)[:4]):
        reference = exact_interventional_shap(f, x, background)  # (classes, features)
        ours = table.iloc[3 * r : 3 * r + 3][FEATURES].to_numpy()
        np.testing.assert_allclose(ours, reference, atol=1e-9)


def test_pipeline_exact_and_kernel_agree_with_tree(penguin_pipeline, tmp_path):
    p = penguin_pipeline
    tables = {}
    for algorithm in ("tree", "exact", "kernel"):
        out = tmp_path / f"{algorithm}.parquet"
        result = run_cli(
            "explain",
            "--model",
            p["folder"] / "pipe.joblib",
            "--data",
            p["folder"] / "rows.parquet",
            "--background",
            p["folder"] / "bg.parquet",
            "--out",
            out,
            "--algorithm",
            algorithm,
            "--n-jobs",
            "1",
            "--n-samples",
            "40",
        )
        assert result.exit_code == 0, result.stderr
        tables[algorithm] = pd.read_parquet(out)[FEATURES].to_numpy()
    np.testing.assert_allclose(tables["tree"], tables["exact"], atol=1e-9)
    # 5 features: a budget of 40 >= 2^5 - 2 coalitions makes Kernel SHAP exact too
    np.testing.assert_allclose(tables["kernel"], tables["exact"], atol=1e-9)


def test_class_selection_and_binary_default(tmp_path):
    import joblib

    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(150, 3)), columns=["a", "b", "c"])
    y = np.where(X.a + X.b > 0, "churn", "stay")
    model = LogisticRegression().fit(X, y)
    joblib.dump(model, tmp_path / "m.joblib")
    X.to_parquet(tmp_path / "d.parquet", index=False)
    base = [
        "explain",
        "--model",
        tmp_path / "m.joblib",
        "--data",
        tmp_path / "d.parquet",
        "--n-jobs",
        "1",
    ]
    assert run_cli(*base, "--out", tmp_path / "a.parquet").exit_code == 0
    assert set(pd.read_parquet(tmp_path / "a.parquet")["output"]) == {"stay"}  # classes_[1]
    assert run_cli(*base, "--out", tmp_path / "b.parquet", "--class", "churn").exit_code == 0
    churn = pd.read_parquet(tmp_path / "b.parquet")
    np.testing.assert_allclose(churn["prediction"], model.predict_proba(X)[:, 0], atol=1e-12)
    # the margin of a linear model: closed form coef * (x - mean(background))
    result = run_cli(
        *base, "--out", tmp_path / "c.parquet", "--output", "decision", "--background-size", "150"
    )
    assert result.exit_code == 0 and "linear" in result.stderr
    margin = pd.read_parquet(tmp_path / "c.parquet")
    expected = model.coef_[0] * (X.to_numpy() - X.to_numpy().mean(axis=0))
    np.testing.assert_allclose(margin[["a", "b", "c"]].to_numpy(), expected, atol=1e-10)


def test_skops_file_trusted_and_untrusted(tmp_path, regression_case, workdir):
    import skops.io as sio
    from sklearn.linear_model import Ridge

    X = regression_case["data"][[f"x{i}" for i in range(6)]]
    model = Ridge().fit(X, X.x0 * 2)
    sio.dump(model, tmp_path / "ridge.skops")
    out = tmp_path / "o.parquet"
    result = run_cli(
        "explain",
        "--model",
        tmp_path / "ridge.skops",
        "--data",
        workdir / "reg.parquet",
        "--id-col",
        "key",
        "--out",
        out,
        "--n-jobs",
        "1",
    )
    assert result.exit_code == 0, result.stderr
    np.testing.assert_allclose(pd.read_parquet(out)["prediction"], model.predict(X), atol=1e-12)

    import operator

    from sklearn.preprocessing import FunctionTransformer

    odd = make_pipeline(FunctionTransformer(operator.neg), Ridge()).fit(X, X.x0)
    sio.dump(odd, tmp_path / "odd.skops")
    refused = run_cli(
        "explain",
        "--model",
        tmp_path / "odd.skops",
        "--data",
        workdir / "reg.parquet",
        "--id-col",
        "key",
        "--out",
        tmp_path / "p.parquet",
        "--n-jobs",
        "1",
    )
    assert refused.exit_code == 2 and "trust" in refused.stderr and "operator.neg" in refused.stderr
    trusted = run_cli(
        "explain",
        "--model",
        tmp_path / "odd.skops",
        "--data",
        workdir / "reg.parquet",
        "--id-col",
        "key",
        "--out",
        tmp_path / "p.parquet",
        "--n-jobs",
        "1",
        "--trust-model",
    )
    assert trusted.exit_code == 0, trusted.stderr


def test_plain_callable_from_a_file_and_a_folder_of_parquet(tmp_path):
    module = tmp_path / "scoring.py"
    module.write_text(
        "import numpy as np\n"
        "WEIGHTS = np.array([1.5, -2.0, 0.5])\n"
        "def score(X):\n"
        "    return np.asarray(X, dtype=float) @ WEIGHTS\n"
    )
    folder = tmp_path / "day"
    folder.mkdir()
    rng = np.random.default_rng(5)
    frames = [pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"]) for n in (70, 30, 50)]
    for k, frame in enumerate(frames):
        frame.to_parquet(folder / f"part-{k}.parquet", index=False)
    out = tmp_path / "o.csv"
    result = run_cli(
        "explain",
        "--model",
        f"{module}:score",
        "--data",
        folder,
        "--out",
        out,
        "--chunk-size",
        "64",
        "--n-jobs",
        "1",
        "--algorithm",
        "exact",
        "--background-size",
        "150",
    )
    assert result.exit_code == 0, result.stderr
    table = pd.read_csv(out)
    X = pd.concat(frames, ignore_index=True).to_numpy()
    assert table["row"].tolist() == list(range(150))
    assert set(table["output"]) == {"prediction"}
    expected = np.array([1.5, -2.0, 0.5]) * (X - X.mean(axis=0))  # background = all rows
    np.testing.assert_allclose(table[["a", "b", "c"]].to_numpy(), expected, atol=1e-10)


def test_multi_output_regressor_explains_every_output(tmp_path):
    import joblib
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(8)
    X = pd.DataFrame(rng.normal(size=(120, 4)), columns=["a", "b", "c", "d"])
    Y = np.column_stack([X.a + X.b, X.c * 2])
    model = RandomForestRegressor(n_estimators=10, max_depth=4, random_state=0).fit(X, Y)
    joblib.dump(model, tmp_path / "m.joblib")
    X.to_parquet(tmp_path / "d.parquet", index=False)
    out = tmp_path / "o.parquet"
    result = run_cli(
        "explain",
        "--model",
        tmp_path / "m.joblib",
        "--data",
        tmp_path / "d.parquet",
        "--out",
        out,
        "--n-jobs",
        "1",
    )
    assert result.exit_code == 0, result.stderr
    table = pd.read_parquet(out)
    assert table["output"].tolist()[:2] == ["output_0", "output_1"]
    np.testing.assert_allclose(
        table["prediction"].to_numpy().reshape(-1, 2), model.predict(X), atol=1e-12
    )
    additivity = table.base_value + table[["a", "b", "c", "d"]].sum(axis=1) - table.prediction
    assert np.abs(additivity).max() < 1e-9


def test_each_worker_loads_the_model_once(tmp_path):
    log = tmp_path / "loads.txt"
    module = tmp_path / "counted.py"
    module.write_text(
        "import os\n"
        "import numpy as np\n"
        f"with open({str(log)!r}, 'a') as handle:\n"
        "    handle.write(f'{os.getpid()}\\n')\n"
        "def score(X):\n"
        "    return np.asarray(X, dtype=float) @ np.array([1.0, -1.0, 2.0])\n"
    )
    rng = np.random.default_rng(2)
    pd.DataFrame(rng.normal(size=(64 * 12, 3)), columns=["a", "b", "c"]).to_parquet(
        tmp_path / "d.parquet"
    )
    result = run_cli(
        "explain",
        "--model",
        f"{module}:score",
        "--data",
        tmp_path / "d.parquet",
        "--out",
        tmp_path / "o.parquet",
        "--chunk-size",
        "64",
        "--n-jobs",
        "2",
        "--background-size",
        "10",
    )
    assert result.exit_code == 0, result.stderr
    pids = log.read_text().split()
    assert len(pids) == len(set(pids)) <= 3  # this process and at most two workers, 12 chunks
