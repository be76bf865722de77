"""Job files, --save-job, JSON logs and invalid rows, run as a scheduler would."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli


@pytest.fixture()
def job_folder(tmp_path, regression_case, workdir):
    import shutil

    for name in ("reg.parquet", "reg_bg.parquet", "mlp.joblib"):
        shutil.copy(workdir / name, tmp_path / name)
    (tmp_path / "out").mkdir()
    return tmp_path


JOB = """
[[explain]]
model = "mlp.joblib"
data = "reg.parquet"
out = "out/shap-{date}.parquet"
id_cols = ["key"]
background = "${XAI_TEST_BG}"
n_jobs = 1

[[explain]]
model = "mlp.joblib"
data = "reg.parquet"
out = "out/ig-{date}.csv"
method = "ig"
id_cols = "key"
layout = "long"
"""


def _cron_env(**extra):
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **extra}
    env.update({k: v for k, v in os.environ.items() if k.startswith(("PYTHON", "VIRTUAL_ENV"))})
    # from cwd "/" the interpreter would import whichever xaicli is installed: this checkout's
    checkout = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (checkout, env.get("PYTHONPATH")) if p)
    return env


def test_job_with_two_explanations_runs_like_cron(job_folder):
    (job_folder / "nightly.toml").write_text(JOB)
    proc = subprocess.run(
        [sys.executable, "-m", "xaicli", "run", str(job_folder / "nightly.toml")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd="/",
        env=_cron_env(XAI_TEST_BG=str(job_folder / "reg_bg.parquet")),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    today = dt.date.today().isoformat()
    shap_table = pd.read_parquet(job_folder / "out" / f"shap-{today}.parquet")
    ig_table = pd.read_csv(job_folder / "out" / f"ig-{today}.csv")
    assert len(shap_table) == 60 and list(ig_table.columns) == [
        "key",
        "output",
        "feature",
        "attribution",
        "rank",
    ]
    manifest = json.loads((job_folder / "out" / f"shap-{today}.parquet.manifest.json").read_text())
    assert manifest["background_source"].endswith("reg_bg.parquet")
    # a second run finds the outputs complete and leaves them alone
    again = subprocess.run(
        [sys.executable, "-m", "xaicli", "run", str(job_folder / "nightly.toml")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_cron_env(XAI_TEST_BG=str(job_folder / "reg_bg.parquet")),
        timeout=300,
    )
    assert again.returncode == 0 and "already complete" in again.stderr
    # the same outputs from a changed job are not ours to skip, nor to replace silently
    (job_folder / "nightly.toml").write_text(JOB.replace("n_jobs = 1", "n_jobs = 1\nseed = 9"))
    changed = subprocess.run(
        [sys.executable, "-m", "xaicli", "run", str(job_folder / "nightly.toml")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_cron_env(XAI_TEST_BG=str(job_folder / "reg_bg.parquet")),
        timeout=300,
    )
    assert changed.returncode == 2 and "--overwrite" in changed.stderr
    pd.testing.assert_frame_equal(
        pd.read_parquet(job_folder / "out" / f"shap-{today}.parquet"), shap_table
    )


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        (
            '[[explain]]\nmodel = "mlp.joblib"\ndata = "reg.parquet"\nmethods = "shap"\n',
            "unknown key 'methods'",
        ),
        (
            '[[explain]]\nmodel = "mlp.joblib"\ndata = "reg.parquet"\nseed = "zero"\n',
            "seed must be an integer",
        ),
        (
            '[[explain]]\nmodel = "mlp.joblib"\ndata = "reg.parquet"\nlayout = "tall"\n',
            "layout must be one of",
        ),
        ('[[explain]]\ndata = "reg.parquet"\n', "model is required"),
        (
            '[[explain]]\nmodel = "mlp.joblib"\ndata = "${XAI_UNSET_VARIABLE}.parquet"\n',
            "XAI_UNSET_VARIABLE",
        ),
        ("[[explain]\n", "not valid TOML"),
    ],
)
def test_bad_job_files_are_rejected_before_any_work(job_folder, text, mentions):
    good = '[[explain]]\nmodel = "mlp.joblib"\ndata = "reg.parquet"\nout = "out/first.parquet"\n\n'
    (job_folder / "bad.toml").write_text(good + text)
    result = run_cli("run", job_folder / "bad.toml")
    assert result.exit_code == 2, result.stderr
    assert mentions in result.stderr and "bad.toml" in result.stderr
    assert not (job_folder / "out" / "first.parquet").exists()  # the good table did not run


def test_save_job_reproduces_the_run(job_folder):
    out = job_folder / "out" / "a.parquet"
    first = run_cli(
        "explain",
        "--model",
        job_folder / "mlp.joblib",
        "--data",
        job_folder / "reg.parquet",
        "--id-col",
        "key",
        "--out",
        out,
        "--algorithm",
        "kernel",
        "--n-samples",
        "40",
        "--seed",
        "9",
        "--save-job",
        job_folder / "saved.toml",
        "--n-jobs",
        "1",
    )
    assert first.exit_code == 0, first.stderr
    saved = (job_folder / "saved.toml").read_text()
    (job_folder / "saved.toml").write_text(
        saved.replace(str(out), str(job_folder / "out" / "b.parquet"))
    )
    again = run_cli("run", job_folder / "saved.toml")
    assert again.exit_code == 0, again.stderr
    pd.testing.assert_frame_equal(
        pd.read_parquet(out), pd.read_parquet(job_folder / "out" / "b.parquet")
    )


def test_json_logs_are_one_object_per_line(job_folder):
    result = run_cli(
        "explain",
        "--model",
        job_folder / "mlp.joblib",
        "--data",
        job_folder / "reg.parquet",
        "--id-col",
        "key",
        "--out",
        job_folder / "out" / "j.parquet",
        "--log-format",
        "json",
        "--n-jobs",
        "1",
    )
    assert result.exit_code == 0
    events = [json.loads(line) for line in result.stderr.strip().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "note" and "start" in kinds and kinds[-1] == "summary"
    assert events[-1]["rows"] == 60
    bad = run_cli(
        "explain",
        "--model",
        job_folder / "nope.joblib",
        "--data",
        job_folder / "reg.parquet",
        "--log-format",
        "json",
    )
    record = json.loads(bad.stderr.strip().splitlines()[-1])
    assert bad.exit_code == 2 and record["event"] == "error" and record["exit_code"] == 2


def test_invalid_rows_error_or_go_to_rejects(job_folder, regression_case):
    data = regression_case["data"].copy()
    data.loc[[5, 40], "x1"] = np.nan
    data.loc[50, "x4"] = np.inf
    data.to_parquet(job_folder / "dirty.parquet", index=False)
    args = [
        "explain",
        "--model",
        job_folder / "mlp.joblib",
        "--data",
        job_folder / "dirty.parquet",
        "--id-col",
        "key",
        "--background",
        job_folder / "reg_bg.parquet",
        "--n-jobs",
        "1",
    ]
    refused = run_cli(*args, "--out", job_folder / "out" / "r.parquet")
    assert refused.exit_code == 2
    assert (
        "row 5 (id k5)" in refused.stderr
        and "x1" in refused.stderr
        and "--on-invalid skip" in refused.stderr
    )
    ok = run_cli(*args, "--out", job_folder / "out" / "s.parquet", "--on-invalid", "skip")
    assert ok.exit_code == 0, ok.stderr
    assert "3 invalid rows rejected" in ok.stderr
    table = pd.read_parquet(job_folder / "out" / "s.parquet")
    assert len(table) == 57 and "k5" not in set(table["key"])
    rejects = pd.read_parquet(job_folder / "out" / "s.parquet.rejects.parquet")
    assert rejects["key"].tolist() == ["k5", "k40", "k50"]
    assert rejects["reason"].tolist() == ["NaN", "NaN", "infinite value"]
    # the surviving rows are explained exactly as in a clean run
    clean = run_cli(
        *args[:4], job_folder / "reg.parquet", *args[5:], "--out", job_folder / "out" / "c.parquet"
    )
    assert clean.exit_code == 0
    full = pd.read_parquet(job_folder / "out" / "c.parquet").set_index("key")
    pd.testing.assert_frame_equal(table.set_index("key"), full.loc[table["key"]])


def test_background_rows_the_model_cannot_take_are_left_out(job_folder, regression_case):
    data = regression_case["data"].copy()
    data.loc[[3, 9], "x2"] = np.nan
    data.to_parquet(job_folder / "gappy.parquet", index=False)
    result = run_cli(
        "explain",
        "--model",
        job_folder / "mlp.joblib",
        "--data",
        job_folder / "gappy.parquet",
        "--id-col",
        "key",
        "--out",
        job_folder / "out" / "g.parquet",
        "--background-size",
        "60",
        "--on-invalid",
        "skip",
        "--n-jobs",
        "1",
    )
    assert result.exit_code == 0, result.stderr
    assert "left out 2 background row(s)" in result.stderr
    manifest = json.loads((job_folder / "out" / "g.parquet.manifest.json").read_text())
    assert manifest["background_rows"] == 58 and manifest["rejected_rows"] == 2


def test_a_relative_python_model_is_found_beside_the_job_file(tmp_path):
    from conftest import run_xai_process

    folder = tmp_path / "jobs"
    folder.mkdir()
    (folder / "scoring.py").write_text(
        "import numpy as np\ndef score(X):\n    return np.asarray(X, dtype=float) @ [2.0, -1.0]\n"
    )
    frame = pd.DataFrame({"a": np.arange(6.0), "b": np.arange(6.0) ** 2})
    frame.to_parquet(folder / "rows.parquet", index=False)
    (folder / "job.toml").write_text(
        '[[explain]]\nmodel = "scoring.py:score"\ndata = "rows.parquet"\n'
        'out = "out/rows-shap.parquet"\nalgorithm = "exact"\n'
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_xai_process("run", folder / "job.toml", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    table = pd.read_parquet(folder / "out" / "rows-shap.parquet")
    # a linear callable: the SHAP values are its terms minus their background means
    expected = 2.0 * (frame.a - frame.a.mean())
    np.testing.assert_allclose(table["a"], expected, atol=1e-12)


def test_save_job_writes_a_python_model_that_runs_from_any_folder(tmp_path, monkeypatch):
    from conftest import run_xai_process

    work = tmp_path / "work"
    work.mkdir()
    (work / "scoring.py").write_text(
        "import numpy as np\ndef score(X):\n    return np.asarray(X, dtype=float) @ [1.0, 3.0]\n"
    )
    pd.DataFrame({"a": [1.0, 2.0, 4.0], "b": [0.0, 1.0, 1.0]}).to_parquet(
        work / "rows.parquet", index=False
    )
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    monkeypatch.chdir(work)  # the model is named relative to where the command runs
    result = run_cli(
        "explain",
        "--model",
        "scoring.py:score",
        "--data",
        "rows.parquet",
        "--out",
        "first.parquet",
        "--save-job",
        jobs / "job.toml",
    )
    assert result.exit_code == 0, result.stderr
    assert str(work / "scoring.py") in (jobs / "job.toml").read_text()
    (work / "first.parquet").unlink()
    (work / "first.parquet.manifest.json").unlink()
    rerun = run_xai_process("run", jobs / "job.toml", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert (work / "first.parquet").exists()
