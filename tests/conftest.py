"""Shared fixtures: small models and tables written to a temporary folder, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from xaicli.cli.app import app

os.environ.setdefault("OMP_NUM_THREADS", "1")


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> CliResult:
    """Run ``xai`` in-process (fast); stdout and stderr kept apart."""
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return CliResult(result.exit_code, result.stdout, result.stderr)


def run_xai_process(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``xai`` as a real process, as a shell or cron would."""
    return subprocess.run(
        [sys.executable, "-m", "xaicli", *[str(a) for a in args]],
        capture_output=True,
        text=True,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )


def exact_interventional_shap(f, x: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Brute-force Shapley values of v(S) = mean_b f(x_S, b_~S): the independent reference.

    f maps (n, M) -> (n,) or (n, K); returns (K, M).
    """
    from itertools import product
    from math import factorial

    m = x.shape[0]
    values = {}
    for bits in product([False, True], repeat=m):
        mask = np.array(bits)
        hybrid = np.where(mask[None, :], x[None, :], background)
        out = np.asarray(f(hybrid), dtype=float)
        values[bits] = (out if out.ndim == 2 else out[:, None]).mean(axis=0)
    k = next(iter(values.values())).shape[0]
    phi = np.zeros((k, m))
    for bits, v in values.items():
        s = sum(bits)
        for i in range(m):
            if bits[i]:
                continue
            with_i = list(bits)
            with_i[i] = True
            w = factorial(s) * factorial(m - s - 1) / factorial(m)
            phi[:, i] += w * (values[tuple(with_i)] - v)
    return phi


@pytest.fixture(scope="session")
def penguin_frame() -> pd.DataFrame:
    return pd.read_parquet(Path(__file__).parent.parent / "sample_data" / "penguins.parquet")


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("xai")


@pytest.fixture(scope="session")
def regression_case(workdir: Path):
    """A 6-feature MLP regressor fitted on a DataFrame, its data (Parquet and CSV) and a background."""
    from sklearn.neural_network import MLPRegressor

    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(400, 6)), columns=[f"x{i}" for i in range(6)])
    y = X.x0 * X.x1 + np.sin(X.x2) + X.x3 - 0.5 * X.x4
    model = MLPRegressor(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(X, y)
    path = workdir / "mlp.joblib"
    joblib.dump(model, path)
    data = X.iloc[:60].copy()
    data.insert(0, "key", [f"k{i}" for i in range(len(data))])
    data.to_parquet(workdir / "reg.parquet", index=False)
    data.to_csv(workdir / "reg.csv", index=False)
    X.iloc[200:230].to_parquet(workdir / "reg_bg.parquet", index=False)
    return {"model": model, "model_path": path, "data": data, "background": X.iloc[200:230]}
