"""Kill a real ``xai`` process with SIGKILL, resume, and get the uninterrupted table."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli


@pytest.fixture(scope="module")
def job(tmp_path_factory, regression_case):
    folder = tmp_path_factory.mktemp("resume")
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(64 * 16, 6)), columns=[f"x{i}" for i in range(6)])
    frame.insert(0, "key", [f"r{i}" for i in range(len(frame))])
    frame.to_parquet(folder / "data.parquet", index=False)
    joblib.dump(regression_case["model"], folder / "model.joblib")
    args = [
        "explain",
        "--model",
        folder / "model.joblib",
        "--data",
        folder / "data.parquet",
        "--id-col",
        "key",
        "--background-size",
        "40",
        "--chunk-size",
        "64",
        "--algorithm",
        "permutation",
        "--n-samples",
        "400",
        "--seed",
        "3",
    ]
    reference = folder / "reference.parquet"
    result = run_cli(*args, "--out", reference, "--n-jobs", "1")
    assert result.exit_code == 0, result.stderr
    return {
        "folder": folder,
        "args": [str(a) for a in args],
        "reference": pd.read_parquet(reference),
    }


def _start(args, out):
    return subprocess.Popen(
        [sys.executable, "-m", "xaicli", *args, "--out", str(out), "--n-jobs", "2", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # SIGKILL the whole group: workers die with the parent
    )


def _kill_after(proc, work, n_chunks, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if work.exists() and len(list(work.glob("chunk-*.parquet"))) >= n_chunks:
            break
        time.sleep(0.02)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("kill_points", [(1, 6), (3,), (11,)])
def test_sigkill_then_resume_gives_the_uninterrupted_table(job, tmp_path, kill_points):
    out = tmp_path / "out.parquet"
    work = tmp_path / ".out.parquet.xai-work"
    for point in kill_points:
        _kill_after(_start(job["args"] + ["--resume"], out), work, point)
        assert not out.exists() or not work.exists()
    result = run_cli(*job["args"], "--out", out, "--resume", "--n-jobs", "2")
    assert result.exit_code == 0, result.stderr
    assert not work.exists()
    pd.testing.assert_frame_equal(pd.read_parquet(out), job["reference"], check_exact=True)


def test_resume_refuses_a_changed_model(job, tmp_path):
    out = tmp_path / "out.parquet"
    work = tmp_path / ".out.parquet.xai-work"
    _kill_after(_start(job["args"], out), work, 2)
    assert work.exists()
    other = job["folder"] / "other.joblib"
    from sklearn.linear_model import LinearRegression

    frame = job["reference"]
    joblib.dump(LinearRegression().fit(np.eye(6), np.arange(6)), other)
    args = list(job["args"])
    args[args.index(str(job["folder"] / "model.joblib"))] = str(other)
    refused = run_cli(*args, "--out", out, "--resume")
    assert refused.exit_code == 2 and "the model file" in refused.stderr, refused.stderr
    fresh = run_cli(*job["args"], "--out", out)
    assert fresh.exit_code == 2 and "--resume" in fresh.stderr
    assert not out.exists() and len(frame) > 0


def test_sigterm_stops_promptly_and_says_how_to_resume(job, tmp_path):
    out = tmp_path / "out.parquet"
    work = tmp_path / ".out.parquet.xai-work"
    proc = _start(job["args"] + ["--n-samples", "4000"], out)  # slow chunks: still running
    deadline = time.monotonic() + 60
    while (
        not (work.exists() and list(work.glob("chunk-*.parquet"))) and time.monotonic() < deadline
    ):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 143, stderr
    assert "--resume" in stderr.decode() and "Traceback" not in stderr.decode()
    assert not out.exists() and work.exists()


JOB = """
[[explain]]
model = "model.joblib"
data = "data.parquet"
out = "{folder}/shap.parquet"
id_cols = ["key"]
background_size = 40
chunk_size = 64
algorithm = "permutation"
n_samples = 400
seed = 3

[[explain]]
model = "model.joblib"
data = "data.parquet"
out = "{folder}/lime.parquet"
id_cols = ["key"]
method = "lime"
chunk_size = 64
n_samples = 500
"""


def test_a_job_killed_ten_times_at_random_resumes_to_the_same_tables(job, tmp_path):
    (job["folder"] / "job.toml").write_text(JOB.replace("{folder}", str(tmp_path)))
    reference = tmp_path / "reference"
    reference.mkdir()
    (job["folder"] / "ref.toml").write_text(JOB.replace("{folder}", str(reference)))
    assert run_cli("run", job["folder"] / "ref.toml").exit_code == 0
    rng = np.random.default_rng(2026)
    command = [sys.executable, "-m", "xaicli", "run", str(job["folder"] / "job.toml"), "--quiet"]
    for delay in rng.uniform(0.2, 4.0, size=10):
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        time.sleep(delay)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    final = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300
    )
    assert final.returncode == 0, final.stderr
    for name in ("shap.parquet", "lime.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / name), pd.read_parquet(reference / name), check_exact=True
        )
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []
