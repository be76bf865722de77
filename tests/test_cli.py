"""End to end through the command line: tables, layouts, formats, determinism, provenance."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import run_cli, run_xai_process

FEATURES = [f"x{i}" for i in range(6)]


def _explain(case, tmp_path, *extra, name="out.parquet"):
    out = tmp_path / name
    result = run_cli(
        "explain",
        "--model",
        case["model_path"],
        "--data",
        case["data_path"],
        "--background",
        case["background_path"],
        "--id-col",
        "key",
        "--out",
        out,
        *extra,
    )
    assert result.exit_code == 0, result.stderr
    return out, result


@pytest.fixture()
def case(regression_case, workdir):
    return {
        **regression_case,
        "data_path": workdir / "reg.parquet",
        "background_path": workdir / "reg_bg.parquet",
    }


def test_wide_table_matches_shap_exact_explainer(case, tmp_path):
    import shap

    out, result = _explain(case, tmp_path, "--n-jobs", "1")
    assert "SHAP algorithm: exact" in result.stderr
    table = pd.read_parquet(out)
    assert list(table.columns) == ["key", "output", "base_value", "prediction", *FEATURES]
    assert table["key"].tolist() == case["data"]["key"].tolist()
    assert set(table["output"]) == {"prediction"}
    background = case["background"].to_numpy()
    masker = shap.maskers.Independent(background, max_samples=len(background))
    model = case["model"]
    theirs = shap.ExactExplainer(
        lambda a: model.predict(pd.DataFrame(a, columns=FEATURES)), masker
    )(case["data"][FEATURES].to_numpy())
    np.testing.assert_allclose(table[FEATURES].to_numpy(), theirs.values, atol=1e-6)
    np.testing.assert_allclose(table["base_value"], theirs.base_values, atol=1e-6)
    np.testing.assert_allclose(
        table["prediction"], model.predict(case["data"][FEATURES]), atol=1e-9
    )
    additivity = table["base_value"] + table[FEATURES].sum(axis=1) - table["prediction"]
    assert np.abs(additivity).max() < 1e-6


@pytest.mark.parametrize("method", ["shap", "lime", "ig"])
def test_same_table_for_any_n_jobs_and_chunk_size(case, tmp_path, method):
    rng = np.random.default_rng(4)
    rows = pd.DataFrame(rng.normal(size=(300, 6)), columns=FEATURES)
    rows.insert(0, "key", [f"q{i}" for i in range(300)])
    rows.to_parquet(tmp_path / "rows.parquet", index=False)
    case = {**case, "data_path": tmp_path / "rows.parquet"}
    args = ("--method", method, "--n-samples", "200")
    if method == "shap":
        args += ("--algorithm", "permutation")
    args += ("--seed", "11")
    one, _ = _explain(
        case, tmp_path, *args, "--n-jobs", "1", "--chunk-size", "1000", name="a.parquet"
    )
    two, _ = _explain(
        case, tmp_path, *args, "--n-jobs", "2", "--chunk-size", "10", name="b.parquet"
    )
    three, _ = _explain(
        case, tmp_path, *args, "--n-jobs", "2", "--chunk-size", "130", name="c.parquet"
    )
    reference = pd.read_parquet(one)
    pd.testing.assert_frame_equal(reference, pd.read_parquet(two), check_exact=True)
    pd.testing.assert_frame_equal(reference, pd.read_parquet(three), check_exact=True)
    if method != "ig":  # IG has no randomness
        other_seed, _ = _explain(case, tmp_path, *args[:-1], "12", name="d.parquet")
        assert not reference.equals(pd.read_parquet(other_seed))


def test_csv_on_stdout_equals_parquet(case, tmp_path):
    out, _ = _explain(case, tmp_path, "--n-jobs", "1")
    proc = run_xai_process(
        "explain",
        "--model",
        case["model_path"],
        "--data",
        case["data_path"],
        "--background",
        case["background_path"],
        "--id-col",
        "key",
        "--out",
        "-",
        "--n-jobs",
        "1",
    )
    assert proc.returncode == 0, proc.stderr
    from_stdout = pd.read_csv(io.StringIO(proc.stdout))
    pd.testing.assert_frame_equal(
        from_stdout, pd.read_parquet(out), check_exact=False, rtol=1e-15, atol=0
    )
    assert "explained 60 rows" in proc.stderr  # the summary goes to stderr, never stdout


def test_csv_input_and_csv_output(case, tmp_path, workdir):
    out, _ = _explain(case, tmp_path, "--n-jobs", "1")
    result = run_cli(
        "explain",
        "--model",
        case["model_path"],
        "--data",
        workdir / "reg.csv",
        "--background",
        case["background_path"],
        "--id-col",
        "key",
        "--out",
        tmp_path / "o.csv",
        "--n-jobs",
        "1",
    )
    assert result.exit_code == 0, result.stderr
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "o.csv"), pd.read_parquet(out), check_exact=False, rtol=1e-15, atol=0
    )


def test_long_layout_ranks_by_absolute_attribution(case, tmp_path):
    wide, _ = _explain(case, tmp_path, "--n-jobs", "1", name="w.parquet")
    long, _ = _explain(case, tmp_path, "--n-jobs", "1", "--layout", "long", name="l.parquet")
    table = pd.read_parquet(long)
    assert list(table.columns) == ["key", "output", "feature", "attribution", "rank"]
    assert len(table) == 60 * len(FEATURES)
    pivot = table.pivot(index="key", columns="feature", values="attribution")
    w = pd.read_parquet(wide).set_index("key")
    np.testing.assert_array_equal(pivot.loc[w.index, FEATURES].to_numpy(), w[FEATURES].to_numpy())
    for _, group in table.groupby("key"):
        ordered = group.sort_values("rank")["attribution"].abs().to_numpy()
        assert np.all(np.diff(ordered) <= 0) and sorted(group["rank"]) == list(range(1, 7))


def test_manifest_and_parquet_metadata(case, tmp_path):
    out, _ = _explain(case, tmp_path, "--n-jobs", "1", "--seed", "4")
    manifest = json.loads(out.with_name(out.name + ".manifest.json").read_text())
    embedded = json.loads(pq.read_schema(out).metadata[b"xaicli"])
    final = json.loads(pq.ParquetFile(out).metadata.metadata[b"xaicli.final"])
    assert final["output_rows"] == manifest["output_rows"] == 60
    embedded["wall_time_s"] = final["wall_time_s"]
    for facts in (manifest, embedded):
        assert facts["method"] == "shap" and facts["algorithm"] == "exact"
        assert facts["parameters"]["seed"] == 4
        assert facts["data_rows"] == 60 and facts["background_rows"] == 30
        assert len(facts["model_sha256"]) == 64
        assert facts["versions"]["shap"] and facts["versions"]["scikit-learn"]
        assert facts["wall_time_s"] >= 0


def test_row_column_without_id_and_default_output_path(case, tmp_path):
    data = tmp_path / "rows.parquet"
    case["data"].drop(columns="key").to_parquet(data, index=False)
    result = run_cli(
        "explain", "--model", case["model_path"], "--data", data, "--n-jobs", "1", "-q"
    )
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    table = pd.read_parquet(tmp_path / "rows.attributions.parquet")
    assert table["row"].tolist() == list(range(60))
    # background defaults to a seeded sample of the data: recorded, and the run repeats exactly
    again = run_cli(
        "explain",
        "--model",
        case["model_path"],
        "--data",
        data,
        "--n-jobs",
        "1",
        "--overwrite",
        "-q",
    )
    assert again.exit_code == 0
    pd.testing.assert_frame_equal(table, pd.read_parquet(tmp_path / "rows.attributions.parquet"))


def test_version():
    result = run_cli("--version")
    assert result.exit_code == 0 and result.stdout.startswith("xai ")


def test_closed_pipe_stops_quietly(case, tmp_path):
    import subprocess
    import sys

    # far more output than a pipe buffers, so writing must notice the reader is gone
    rng = np.random.default_rng(6)
    pd.DataFrame(rng.normal(size=(6000, 6)), columns=FEATURES).to_parquet(tmp_path / "many.parquet")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xaicli",
            "explain",
            "--model",
            str(case["model_path"]),
            "--data",
            str(tmp_path / "many.parquet"),
            "--out",
            "-",
            "--chunk-size",
            "64",
            "--n-jobs",
            "1",
            "--method",
            "saliency",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout.readline().startswith(b"row,")
    proc.stdout.close()  # like `| head -1`
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "error" not in stderr and "Traceback" not in stderr
