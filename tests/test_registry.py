"""The method registry: each method declares itself in its own module, and the runner
runs any registered entry without knowing it."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline

import xaicli.config
from xaicli.io.layout import known_extras
from xaicli.methods import registry
from xaicli.methods.base import Attributions, predict_rows
from xaicli.methods.registry import Block, MethodSpec, RunInputs, Setup

PACKAGE = Path(registry.__file__).parents[1]
COEF = np.array([1.5, -2.0, 0.5])


@pytest.fixture(scope="module")
def linear_case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("linear")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(150, 3)), columns=["a", "b", "c"])
    model = LinearRegression().fit(frame, frame.to_numpy() @ COEF + 1.0)
    joblib.dump(model, folder / "linear.joblib")
    frame.to_parquet(folder / "data.parquet")
    return folder, frame


# -- a throwaway method: one module's worth of code, one registry line ---------------------


@dataclass(frozen=True)
class OcclusionParams:
    n_samples: int | None = None  # unused; shows options reaching the parameters


def _occlusion_prepare(params: OcclusionParams, inputs: RunInputs) -> Setup:
    return Setup(state=np.nanmean(inputs.background, axis=0))  # (M,) the occluding values


def _occlusion(block: Block) -> Attributions:
    """f(x) - f(x with feature j set to the background mean), for each feature j."""
    fx = predict_rows(block.predict, block.X, block.row_index)  # (n, K)
    values = np.empty((len(block.X), fx.shape[1], block.X.shape[1]))
    for j in range(block.X.shape[1]):
        occluded = block.X.copy()
        occluded[:, j] = block.state[j]
        values[:, :, j] = fx - predict_rows(block.predict, occluded, block.row_index)
    return Attributions(
        values=values,
        base_values=np.zeros_like(fx),
        predictions=fx,
        extras={"occluded_total": values.sum(axis=2)},
    )


OCCLUSION = MethodSpec(
    "occlusion",
    "",
    OcclusionParams,
    _occlusion,
    _occlusion_prepare,
    extras=("occluded_total",),
)


@pytest.mark.parametrize("n_jobs", ["1"])
def test_a_method_registered_in_process_runs_through_the_command_line(
    linear_case, tmp_path, monkeypatch, n_jobs
):
    """Adding a method is its module and one registry line: nothing in the runner changes.
    (In-process only: worker processes would not see a monkeypatched registry.)"""
    folder, frame = linear_case
    registry.registered()  # the real entries first, as on any run
    monkeypatch.setitem(registry._SPECS, ("occlusion", ""), OCCLUSION)
    out = tmp_path / "out.parquet"
    result = run_cli(
        "explain", "--model", folder / "linear.joblib", "--data", folder / "data.parquet",
        "--out", out, "--method", "occlusion", "--n-jobs", n_jobs, "--chunk-size", "64",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    table = pd.read_parquet(out)
    assert list(table.columns) == [
        "row", "output", "base_value", "prediction", "occluded_total", "a", "b", "c"
    ]  # fmt: skip
    # a linear model's occlusion is w_j (x_j - mean_j), the mean over the background sample
    background = frame.iloc[np.sort(_background_positions(len(frame)))].to_numpy()
    expected = COEF * (frame.to_numpy() - background.mean(axis=0))
    np.testing.assert_allclose(table[["a", "b", "c"]].to_numpy(), expected, atol=1e-9)
    np.testing.assert_allclose(table["occluded_total"], expected.sum(axis=1), atol=1e-9)


def _background_positions(n_rows: int) -> np.ndarray:
    """The default background: 100 rows drawn with the seed (as the runner draws them)."""
    from xaicli.runner.background import BACKGROUND_STREAM

    rng = np.random.default_rng([0, BACKGROUND_STREAM, 1])
    return rng.choice(n_rows, size=min(100, n_rows), replace=False)


# -- the registry is the one source ---------------------------------------------------------


def test_option_choices_are_the_registry_entries():
    assert xaicli.config.METHODS == ("auto", *registry.method_names())
    algorithms = tuple(a for m, a in registry.registered() if m == "shap")
    assert set(xaicli.config.SHAP_ALGORITHMS) == {"auto", *algorithms}


def test_extra_columns_come_from_the_entries():
    assert known_extras() == ("local_prediction", "score", "completeness_error")
    assert registry.method_extras("lime") == ("local_prediction", "score")
    assert registry.method_extras("saliency") == ()


def test_the_runner_names_no_method():
    """prepare, dispatch, execute and compute read the registry: no method's name in them
    ("shap" only as what --method auto means)."""
    names = {m for m, _ in registry.registered()} | {a for _, a in registry.registered() if a}
    names.discard("shap")
    found = set()
    for module in ("prepare", "dispatch", "execute", "compute"):
        tree = ast.parse((PACKAGE / "runner" / f"{module}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in names:
                found.add((module, node.value))
    assert not found


def test_options_reach_the_typed_parameters():
    spec = registry.method_spec("lime")
    params = registry.params_from(spec, {"n_samples": None, "lime_neighbourhood": "per-row"})
    assert (params.n_samples, params.neighbourhood, params.discretize) == (5000, "per-row", True)
    assert registry.param_default(registry.method_spec("ig").params, "steps") == 64


# -- each method's up-front checks, from the command line ----------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--method", "lime", "--n-samples", "1"],
            "--n-samples must be at least 2 for LIME: the first sample is the row itself",
        ),
        (
            ["--method", "lime", "--num-features", "4"],
            "--num-features must be at most the 3 features explained; got 4",
        ),
        (
            ["--algorithm", "kernel", "--n-samples", "5"],
            "--n-samples must be at least 2 x 3 features = 6 for Kernel SHAP; got 5",
        ),
        (
            ["--method", "ig", "--algorithm", "exact"],
            "--algorithm applies to --method shap, not ig",
        ),
    ],
)
def test_method_checks_refuse_bad_options_before_any_work(linear_case, tmp_path, options, message):
    folder, _ = linear_case
    out = tmp_path / "out.parquet"
    result = run_cli(
        "explain", "--model", folder / "linear.joblib", "--data", folder / "data.parquet",
        "--out", out, "--n-jobs", "1", *options,
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.startswith("xai: error: ") and message in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_ig_baseline_file_with_nan_is_refused_for_a_model_without_nan(linear_case, tmp_path):
    folder, frame = linear_case
    baseline = frame.iloc[:2].copy()
    baseline.loc[1, "b"] = np.nan
    baseline.to_parquet(tmp_path / "baseline.parquet")
    result = run_cli(
        "explain", "--model", folder / "linear.joblib", "--data", folder / "data.parquet",
        "--out", tmp_path / "out.parquet", "--method", "ig",
        "--baseline", tmp_path / "baseline.parquet",
    )  # fmt: skip
    assert result.exit_code == 2
    assert f"baseline {tmp_path / 'baseline.parquet'} has a NaN in column 'b' (row 1)" in (
        result.stderr
    )


def test_lime_without_discretization_refuses_nan_the_model_takes(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(80, 3)), columns=["a", "b", "c"])
    model = make_pipeline(SimpleImputer(), LinearRegression()).fit(frame, frame.a - frame.c)
    joblib.dump(model, tmp_path / "imputing.joblib")
    frame.loc[5, "c"] = np.nan
    frame.to_parquet(tmp_path / "data.parquet")
    common = ["--model", tmp_path / "imputing.joblib", "--data", tmp_path / "data.parquet"]
    common += ["--method", "lime", "--n-jobs", "1", "--n-samples", "50"]
    refused = run_cli("explain", *common, "--out", tmp_path / "a.parquet", "--no-discretize")
    assert refused.exit_code == 2
    assert "which LIME with --no-discretize cannot take; drop --no-discretize" in refused.stderr
    taken = run_cli("explain", *common, "--out", tmp_path / "b.parquet")
    assert taken.exit_code == 0, taken.stderr
