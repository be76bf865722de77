"""Bad input: one line on stderr, exit 2, no traceback, no output file. Runtime failure: exit 1."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli, run_xai_process


@pytest.fixture()
def setup(regression_case, workdir, tmp_path):
    return {
        "model": regression_case["model_path"],
        "data": workdir / "reg.parquet",
        "bg": workdir / "reg_bg.parquet",
        "out": tmp_path / "out.parquet",
        "tmp": tmp_path,
    }


def _fails_cleanly(result, out, code=2, mentions=""):
    assert result.exit_code == code, (result.exit_code, result.stderr)
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("xai: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert all(line.startswith("xai: ") for line in lines)  # notes before it, one line each
    assert "Traceback" not in result.stderr
    assert mentions.lower() in errors[0].lower()
    assert result.stdout == ""
    assert not out.exists()
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
    # no temporary output; a runtime failure keeps finished chunks for --resume
    assert leftovers == ([f".{out.name}.xai-work"] if code == 1 else []), leftovers


def _explain(s, *extra, model=None, data=None):
    return run_cli(
        "explain",
        "--model",
        model or s["model"],
        "--data",
        data or s["data"],
        "--out",
        s["out"],
        "--id-col",
        "key",
        "--n-jobs",
        "1",
        *extra,
    )


def test_missing_model_file(setup):
    _fails_cleanly(
        _explain(setup, model=setup["tmp"] / "nope.joblib"), setup["out"], mentions="not found"
    )


def test_model_file_that_does_not_load(setup):
    bad = setup["tmp"] / "bad.joblib"
    bad.write_bytes(b"this is not a pickle")
    _fails_cleanly(_explain(setup, model=bad), setup["out"], mentions="does not load")


def test_model_reference_without_predict(setup):
    module = setup["tmp"] / "things.py"
    module.write_text("NUMBER = 3\n")
    _fails_cleanly(_explain(setup, model=f"{module}:NUMBER"), setup["out"], mentions="not callable")


def test_missing_data_file(setup):
    _fails_cleanly(
        _explain(setup, data=setup["tmp"] / "none.parquet"), setup["out"], mentions="not found"
    )


def test_corrupt_parquet(setup):
    corrupt = setup["tmp"] / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 garbage garbage")
    _fails_cleanly(_explain(setup, data=corrupt), setup["out"], mentions="Parquet")


def test_empty_data(setup, regression_case):
    empty = setup["tmp"] / "empty.parquet"
    regression_case["data"].iloc[:0].to_parquet(empty, index=False)
    _fails_cleanly(_explain(setup, data=empty), setup["out"], mentions="no rows")


def test_data_without_the_models_columns(setup, regression_case):
    partial = setup["tmp"] / "partial.parquet"
    regression_case["data"].drop(columns=["x3"]).to_parquet(partial, index=False)
    _fails_cleanly(_explain(setup, data=partial), setup["out"], mentions="x3")


def test_unknown_id_column(setup):
    result = run_cli(
        "explain",
        "--model",
        setup["model"],
        "--data",
        setup["data"],
        "--out",
        setup["out"],
        "--id-col",
        "customer",
    )
    _fails_cleanly(result, setup["out"], mentions="customer")


def test_data_the_model_cannot_take(setup, regression_case):
    text = regression_case["data"].copy()
    text["x2"] = "high"
    path = setup["tmp"] / "text.parquet"
    text.to_parquet(path, index=False)
    _fails_cleanly(_explain(setup, data=path), setup["out"], mentions="cannot take")


def test_unknown_class_label(tmp_path):
    import joblib
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(100, 3)), columns=["a", "b", "c"])
    model = LogisticRegression().fit(X, np.where(X.a > 0, "yes", "no"))
    joblib.dump(model, tmp_path / "clf.joblib")
    X.to_parquet(tmp_path / "d.parquet", index=False)
    out = tmp_path / "o.parquet"
    result = run_cli(
        "explain",
        "--model",
        tmp_path / "clf.joblib",
        "--data",
        tmp_path / "d.parquet",
        "--out",
        out,
        "--class",
        "maybe",
    )
    _fails_cleanly(result, out, mentions="maybe")


def test_existing_output_needs_overwrite(setup):
    setup["out"].write_bytes(b"precious")
    result = _explain(setup)
    assert result.exit_code == 2 and "--overwrite" in result.stderr
    assert setup["out"].read_bytes() == b"precious"


def test_unknown_method_value(setup):
    _fails_cleanly(_explain(setup, "--method", "magic"), setup["out"], mentions="--method")


def test_tree_algorithm_on_a_non_tree_model(setup):
    _fails_cleanly(_explain(setup, "--algorithm", "tree"), setup["out"], mentions="tree")


def test_model_that_raises_midway_is_a_runtime_failure(setup, tmp_path):
    module = tmp_path / "fragile.py"
    module.write_text(
        "import numpy as np\n"
        "def score(X):\n"
        "    X = np.asarray(X, dtype=float)\n"
        "    if (X[:, 0] > 2.0).any():\n"
        "        raise ValueError('value out of range')\n"
        "    return X.sum(axis=1)\n"
    )
    data = tmp_path / "d.parquet"
    frame = pd.DataFrame({"a": np.linspace(-1, 3, 200), "b": np.ones(200)})
    frame.to_parquet(data, index=False)
    bg = tmp_path / "bg.parquet"
    frame.iloc[:10].to_parquet(bg, index=False)
    out = tmp_path / "o.parquet"
    result = run_cli(
        "explain",
        "--model",
        f"{module}:score",
        "--data",
        data,
        "--background",
        bg,
        "--out",
        out,
        "--n-jobs",
        "1",
        "--chunk-size",
        "64",
    )
    _fails_cleanly(result, out, code=1, mentions="value out of range")
    assert "chunk" in result.stderr


def test_no_traceback_from_a_real_process(setup):
    proc = run_xai_process("explain", "--model", setup["tmp"] / "x.joblib", "--data", setup["data"])
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_kernel_budget_below_two_per_feature(setup):
    result = _explain(setup, "--algorithm", "kernel", "--n-samples", "5")
    _fails_cleanly(result, setup["out"], mentions="--n-samples")
