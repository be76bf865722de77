"""The run's contract at the model boundary: non-finite model outputs, models that call
sys.exit, small tables on every core, and option values that would crash later."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli, run_xai_process

THRESHOLD = 1.0

NAN_MODEL = """
import numpy as np

def score(X):
    X = np.asarray(X, dtype=float)
    with np.errstate(all="ignore"):  # xai probes with NaN and infinity
        y = X[:, 0] + 2.0 * X[:, 1] - X[:, 2] * X[:, 3]
    y[X[:, 0] > {threshold}] = {bad}
    return y
"""


def _table(tmp_path, n_rows=200, seed=5):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n_rows, 4)), columns=["a", "b", "c", "d"])
    frame.insert(0, "key", [f"k{i}" for i in range(n_rows)])
    path = tmp_path / "data.parquet"
    frame.to_parquet(path, index=False)
    return frame, path


def _model(tmp_path, bad="np.nan", name="nan_model.py", threshold=THRESHOLD):
    module = tmp_path / name
    module.write_text(NAN_MODEL.format(threshold=threshold, bad=bad))
    return f"{module}:score"


METHODS = {
    "exact": ("--algorithm", "exact"),
    "kernel": ("--algorithm", "kernel", "--n-samples", "40"),
    "lime": ("--method", "lime", "--n-samples", "300"),
    "ig": ("--method", "ig", "--steps", "8"),
}


def _explain(model, data, out, *extra):
    return run_cli(
        "explain",
        "--model",
        model,
        "--data",
        data,
        "--out",
        out,
        "--id-col",
        "key",
        "--background-size",
        "40",
        *extra,
    )


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.startswith("xai: error: ")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("n_jobs", ["1", "2"])
def test_nan_model_outputs_are_a_runtime_failure(tmp_path, method, n_jobs):
    frame, data = _table(tmp_path)
    out = tmp_path / "out.parquet"
    result = _explain(_model(tmp_path), data, out, "--n-jobs", n_jobs, *METHODS[method])
    assert result.exit_code == 1, result.stderr
    first = int(np.flatnonzero(frame.a.to_numpy() > THRESHOLD)[0])
    line = _error_line(result.stderr)
    assert "NaN" in line and f"row {first} (id k{first})" in line, line
    assert "--on-invalid skip" in line
    assert not out.exists()
    # the background rows the model answers NaN on are left out, with a note
    assert "left out" in result.stderr and "background" in result.stderr


@pytest.mark.parametrize("method", sorted(METHODS))
def test_nan_model_outputs_skipped_go_to_the_rejects_file(tmp_path, method):
    frame, data = _table(tmp_path)
    out = tmp_path / "out.parquet"
    result = _explain(
        _model(tmp_path), data, out, "--n-jobs", "2", "--on-invalid", "skip", *METHODS[method]
    )
    assert result.exit_code == 0, result.stderr
    bad = frame.a.to_numpy() > THRESHOLD
    table = pd.read_parquet(out)
    numbers = table.select_dtypes("number")
    assert np.isfinite(numbers.to_numpy()).all()
    assert list(table.key) == list(frame.key[~bad])
    rejects = pd.read_parquet(tmp_path / "out.parquet.rejects.parquet")
    assert list(rejects.key) == list(frame.key[bad])
    assert set(rejects.reason) == {"model returned NaN"}
    manifest = json.loads((tmp_path / "out.parquet.manifest.json").read_text())
    assert manifest["rejected_rows"] == int(bad.sum())
    assert manifest["output_rows"] == int((~bad).sum())


def test_infinite_model_outputs_are_named_as_such(tmp_path):
    frame, data = _table(tmp_path)
    out = tmp_path / "out.parquet"
    result = _explain(_model(tmp_path, bad="np.inf"), data, out, "--on-invalid", "skip")
    assert result.exit_code == 0, result.stderr
    rejects = pd.read_parquet(tmp_path / "out.parquet.rejects.parquet")
    assert set(rejects.reason) == {"model returned an infinite value"}
    assert np.isfinite(pd.read_parquet(out).select_dtypes("number").to_numpy()).all()


def test_model_nan_on_every_background_row_is_refused(tmp_path):
    _, data = _table(tmp_path)
    out = tmp_path / "out.parquet"
    result = _explain(_model(tmp_path, threshold=-100.0), data, out)
    assert result.exit_code == 2, result.stderr
    assert "background" in _error_line(result.stderr)


# --- sys.exit at the model boundary -------------------------------------------------

EXITING_MODEL = """
import sys
import numpy as np

def score(X):
    X = np.asarray(X, dtype=float)
    if (X[:, 0] > {threshold}).any():
        sys.exit(3)
    return X.sum(axis=1)
"""


def _exiting_case(tmp_path, threshold):
    frame, data = _table(tmp_path)
    background = tmp_path / "bg.parquet"
    frame[frame.a < 0].iloc[:20].drop(columns="key").to_parquet(background, index=False)
    module = tmp_path / "exiting.py"
    module.write_text(EXITING_MODEL.format(threshold=threshold))
    return f"{module}:score", data, background


@pytest.mark.parametrize("n_jobs", ["1", "2"])
def test_model_calling_sys_exit_in_a_chunk_is_a_runtime_failure(tmp_path, n_jobs):
    model, data, background = _exiting_case(tmp_path, threshold=1.5)
    out = tmp_path / "out.parquet"
    proc = run_xai_process(
        "explain",
        "--model",
        model,
        "--data",
        data,
        "--background",
        background,
        "--out",
        out,
        "--id-col",
        "key",
        "--n-jobs",
        n_jobs,
    )
    assert proc.returncode == 1, proc.stderr
    line = _error_line(proc.stderr)
    assert "sys.exit(3)" in line and "exiting.py" in line and "chunk" in line, line
    assert not out.exists()


@pytest.mark.parametrize("n_jobs", ["1", "2"])
def test_model_calling_sys_exit_on_the_background_is_refused(tmp_path, n_jobs):
    model, data, background = _exiting_case(tmp_path, threshold=-100.0)
    out = tmp_path / "out.parquet"
    proc = run_xai_process(
        "explain",
        "--model",
        model,
        "--data",
        data,
        "--out",
        out,
        "--id-col",
        "key",
        "--n-jobs",
        n_jobs,
    )
    assert proc.returncode == 2, proc.stderr
    line = _error_line(proc.stderr)
    assert "sys.exit(3)" in line and "exiting.py" in line, line


def test_model_module_calling_sys_exit_at_import_is_refused(tmp_path):
    _, data = _table(tmp_path)
    module = tmp_path / "quits.py"
    module.write_text("import sys\nsys.exit(4)\n")
    proc = run_xai_process("explain", "--model", f"{module}:score", "--data", data)
    assert proc.returncode == 2, proc.stderr
    assert "sys.exit(4)" in _error_line(proc.stderr)


class _ExitsWhenLoaded:
    def __reduce__(self):
        import sys

        return (sys.exit, (5,))


def test_model_file_calling_sys_exit_when_loaded_is_refused(tmp_path):
    _, data = _table(tmp_path)
    path = tmp_path / "quits.joblib"
    joblib.dump(_ExitsWhenLoaded(), path)
    proc = run_xai_process("explain", "--model", path, "--data", data)
    assert proc.returncode == 2, proc.stderr
    assert "sys.exit(5)" in _error_line(proc.stderr)


# --- small tables on every core ---------------------------------------------------


def _linear_model(tmp_path):
    module = tmp_path / "linear.py"
    module.write_text(
        "import numpy as np\n"
        "def score(X):\n"
        "    X = np.asarray(X, dtype=float)\n"
        "    return X @ np.array([1.0, -2.0, 0.5, 3.0]) + X[:, 0] * X[:, 1]\n"
    )
    return f"{module}:score"


def test_small_tables_are_split_for_every_core(tmp_path):
    _, data = _table(tmp_path, n_rows=150)
    model = _linear_model(tmp_path)
    tables, manifests = [], []
    for n_jobs in ("1", "3"):
        out = tmp_path / f"out{n_jobs}.parquet"
        result = _explain(model, data, out, "--n-jobs", n_jobs, "--algorithm", "exact")
        assert result.exit_code == 0, result.stderr
        tables.append(pd.read_parquet(out))
        manifests.append(json.loads((tmp_path / f"out{n_jobs}.parquet.manifest.json").read_text()))
    pd.testing.assert_frame_equal(tables[0], tables[1])
    # 150 rows: three chunks of at most 64 rows, whatever --n-jobs (so resume chunks the same)
    assert [m["fingerprint"]["parameters"]["chunk_size"] for m in manifests] == [64, 64]
    assert [m["parameters"]["n_jobs_effective"] for m in manifests] == [1, 3]


def test_the_manifest_records_the_workers_actually_used(tmp_path):
    _, data = _table(tmp_path, n_rows=100)
    out = tmp_path / "out.parquet"
    result = _explain(_linear_model(tmp_path), data, out, "--n-jobs", "4")
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((tmp_path / "out.parquet.manifest.json").read_text())
    assert manifest["parameters"]["n_jobs_effective"] == 2  # two chunks of 64 rows at most


def test_chunk_size_still_caps_large_tables(tmp_path):
    _, data = _table(tmp_path, n_rows=2000)
    out = tmp_path / "out.parquet"
    result = _explain(_linear_model(tmp_path), data, out, "--n-jobs", "1", "--chunk-size", "100")
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((tmp_path / "out.parquet.manifest.json").read_text())
    assert manifest["fingerprint"]["parameters"]["chunk_size"] == 128


# --- messages and option values ---------------------------------------------------


def test_model_path_that_is_a_folder(tmp_path):
    _, data = _table(tmp_path)
    folder = tmp_path / "model.joblib"
    folder.mkdir()
    result = run_cli("explain", "--model", folder, "--data", data)
    assert result.exit_code == 2
    line = _error_line(result.stderr)
    assert "folder" in line and "not found" not in line, line


def test_infinite_value_in_the_data_reads_well(tmp_path, regression_case, workdir):
    frame = regression_case["data"].copy()
    frame.loc[3, "x2"] = np.inf
    data = tmp_path / "inf.parquet"
    frame.to_parquet(data, index=False)
    result = run_cli(
        "explain", "--model", regression_case["model_path"], "--data", data, "--id-col", "key"
    )
    assert result.exit_code == 2
    line = _error_line(result.stderr)
    assert "has an infinite value in x2" in line, line


def test_negative_seed_is_bad_usage(tmp_path):
    _, data = _table(tmp_path)
    model = _linear_model(tmp_path)
    result = run_cli("explain", "--model", model, "--data", data, "--id-col", "key", "--seed", "-1")
    assert result.exit_code == 2, result.stderr
    assert "--seed" in _error_line(result.stderr)


def test_nan_failure_from_a_real_process_says_one_thing(tmp_path):
    _, data = _table(tmp_path)
    out = tmp_path / "out.parquet"
    proc = run_xai_process(
        "explain", "--model", _model(tmp_path), "--data", data, "--out", out, "--id-col", "key",
        "--n-jobs", "2", "--algorithm", "exact",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert all(line.startswith("xai: ") for line in proc.stderr.strip().splitlines()), proc.stderr
    assert "NaN" in _error_line(proc.stderr)


@pytest.mark.parametrize(
    ("option", "value"),
    [("--kernel-width", "inf"), ("--kernel-width", "1e308"), ("--num-features", "5")],
)
def test_lime_options_that_would_fail_later_are_bad_usage(tmp_path, option, value):
    _, data = _table(tmp_path)
    model = _linear_model(tmp_path)
    result = run_cli(
        "explain", "--model", model, "--data", data, "--id-col", "key", "--method", "lime", option, value
    )  # fmt: skip
    assert result.exit_code == 2, result.stderr
    assert option in _error_line(result.stderr)


def test_background_outputs_that_overflow_when_averaged_are_refused(tmp_path):
    frame = pd.DataFrame({"a": [1e308, 1e308, 1.0, 2.0], "b": [1.0, 2.0, 3.0, 4.0]})
    frame.to_parquet(tmp_path / "huge.parquet", index=False)
    module = tmp_path / "summing.py"
    module.write_text("import numpy as np\ndef score(X):\n    return np.asarray(X).sum(axis=1)\n")
    out = tmp_path / "out.parquet"
    result = run_cli(
        "explain", "--model", f"{module}:score", "--data", tmp_path / "huge.parquet", "--out", out
    )
    assert result.exit_code == 2, result.stderr
    assert "overflow when averaged" in _error_line(result.stderr)
    assert not out.exists()
