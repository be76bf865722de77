"""Standard errors of sampled SHAP values (--errors) and sampling to a target error
(--target-error): calibrated against exact values, written in both layouts, deterministic."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import exact_interventional_shap, run_cli

import xaicli
from xaicli.methods.sampling_error import parse_target_error
from xaicli.methods.shap_kernel import explain_kernel
from xaicli.methods.shap_permutation import explain_permutation

M = 8


def _network(seed: int):
    """A small random network with interactions of every order (antithetic orderings are
    exact on games with pairwise interactions only, which would make errors vanish)."""
    rng = np.random.default_rng(seed)
    w1, w2, w3 = rng.normal(size=(M, 6)), rng.normal(size=6), rng.normal(size=M)

    def f(X):
        hidden = np.tanh(X @ w1)
        return np.column_stack([hidden @ w2 + X @ w3, np.maximum(X @ w1[:, :2], 0).prod(axis=1)])

    return f


@pytest.fixture(scope="module")
def exact_case():
    rng = np.random.default_rng(0)
    f = _network(1)
    X, background = rng.normal(size=(30, M)), rng.normal(size=(16, M))
    exact = np.stack([exact_interventional_shap(f, x, background) for x in X])  # (n, K, M)
    return f, X, background, exact


def _coverage(results, exact) -> float:
    inside = [np.abs(r.values - exact) <= 2 * r.standard_errors for r in results]
    return float(np.mean(inside))


def test_standard_errors_cover_the_exact_values_at_a_fixed_budget(exact_case):
    f, X, background, exact = exact_case
    rows = np.arange(len(X))
    results = [
        explain_permutation(
            f, X, background=background, row_index=rows, seed=seed, n_samples=140, errors=True
        )
        for seed in range(12)
    ]
    coverage = _coverage(results, exact)
    print(f"coverage of +-2 SE at 5 pairs: {coverage:.3f} of {12 * exact.size} attributions")
    assert 0.90 <= coverage <= 0.98
    errors = np.concatenate([np.abs(r.values - exact).ravel() for r in results])
    assert errors.max() > 1e-3  # the errors are real: the check could fail


def test_kernel_standard_errors_cover_the_exact_values(exact_case):
    f, X, background, exact = exact_case
    rows = np.arange(len(X))
    results = [
        explain_kernel(
            f, X, background=background, row_index=rows, seed=seed, n_samples=120, errors=True
        )
        for seed in range(12)
    ]
    coverage = _coverage(results, exact)
    print(f"Kernel SHAP coverage of +-2 SE at 120 coalitions: {coverage:.3f}")
    assert 0.90 <= coverage <= 0.98
    plain = explain_kernel(f, X, background=background, row_index=rows, seed=11, n_samples=120)
    np.testing.assert_array_equal(plain.values, results[-1].values)  # --errors changes no value


def test_kernel_standard_errors_are_zero_when_every_coalition_is_enumerated(exact_case):
    f, X, background, exact = exact_case
    result = explain_kernel(
        f, X, background=background, row_index=np.arange(len(X)), n_samples=300, errors=True
    )
    np.testing.assert_allclose(result.values, exact, atol=1e-10)
    assert (result.standard_errors == 0).all()


def test_standard_errors_cover_the_exact_values_with_a_target(exact_case):
    f, X, background, exact = exact_case
    rows = np.arange(len(X))
    target = parse_target_error("0.05")
    results = [
        explain_permutation(
            f, X, background=background, row_index=rows, seed=seed, n_samples=4000, target=target
        )
        for seed in range(12)
    ]
    coverage = _coverage(results, exact)
    print(f"coverage of +-2 SE at target 0.05: {coverage:.3f} of {12 * exact.size} attributions")
    assert 0.90 <= coverage <= 0.98
    converged = np.concatenate([r.converged for r in results])
    assert converged.mean() > 0.9
    for r in results:
        assert (r.standard_errors.max(axis=(1, 2))[r.converged] <= 0.05).all()


def test_a_linear_model_is_exact_and_its_standard_errors_say_so():
    """The game of a linear model is additive: every ordering gives its closed form
    coef * (x - mean(background)), and the pairs do not spread."""
    rng = np.random.default_rng(3)
    coef = rng.normal(size=M)
    X, background = rng.normal(size=(20, M)), rng.normal(size=(10, M))
    result = explain_permutation(
        lambda A: (A @ coef)[:, None],
        X,
        background=background,
        row_index=np.arange(20),
        n_samples=200,
        errors=True,
    )
    closed_form = coef * (X - background.mean(axis=0))
    np.testing.assert_allclose(result.values[:, 0], closed_form, atol=1e-12)
    assert result.standard_errors.max() < 1e-12


def test_rounds_are_a_prefix_of_the_rows_stream(exact_case):
    """A row that spends its whole budget in rounds drew the orderings a fixed budget
    draws: the same values, up to rounding."""
    f, X, background, _ = exact_case
    rows = np.arange(len(X))
    fixed = explain_permutation(f, X, background=background, row_index=rows, n_samples=280)
    tiny = parse_target_error("1e-12")
    rounds = explain_permutation(
        f, X, background=background, row_index=rows, n_samples=280, target=tiny
    )
    assert not rounds.converged.any()
    np.testing.assert_allclose(rounds.values, fixed.values, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------ command line


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    from sklearn.neural_network import MLPRegressor

    folder = tmp_path_factory.mktemp("errors")
    rng = np.random.default_rng(5)
    X = pd.DataFrame(rng.normal(size=(300, 6)), columns=[f"x{i}" for i in range(6)])
    y = X.x0 * X.x1 * X.x2 + np.sin(X.x3) + X.x4 - X.x5
    model = MLPRegressor(hidden_layer_sizes=(8,), max_iter=200, random_state=0).fit(X, y)
    joblib.dump(model, folder / "model.joblib")
    data = X.iloc[:150].copy()
    data.insert(0, "key", [f"k{i}" for i in range(len(data))])
    data.to_parquet(folder / "data.parquet", index=False)
    args = [
        "explain",
        "--model",
        folder / "model.joblib",
        "--data",
        folder / "data.parquet",
        "--id-col",
        "key",
        "--algorithm",
        "permutation",
        "--background-size",
        "20",
    ]
    return {"folder": folder, "args": args, "features": list(X.columns)}


def _explain(case, tmp_path, *more, name="out.parquet"):
    out = tmp_path / name
    result = run_cli(*case["args"], "--out", out, *more)
    assert result.exit_code == 0, result.stderr
    return out, result


def test_errors_add_se_columns_after_the_features_without_changing_the_values(case, tmp_path):
    plain, _ = _explain(case, tmp_path, "--n-samples", "200", name="plain.parquet")
    out, _ = _explain(case, tmp_path, "--n-samples", "200", "--errors")
    features = case["features"]
    table = pd.read_parquet(out)
    se = [f"{f}_se" for f in features]
    assert list(table.columns) == ["key", "output", "base_value", "prediction", *features, *se]
    pd.testing.assert_frame_equal(table.drop(columns=se), pd.read_parquet(plain), check_exact=True)
    assert (table[se].to_numpy() > 0).all()
    read = xaicli.read_attributions(out)
    assert read.features == tuple(features) and read.se_columns == tuple(se)
    assert read.format_version == 3
    manifest = json.loads((tmp_path / "out.parquet.manifest.json").read_text())
    stats = manifest["standard_errors"]["prediction"]
    assert stats["mean"] == pytest.approx(table[se].to_numpy().mean())
    assert stats["max"] == pytest.approx(table[se].to_numpy().max())
    assert stats["median"] == pytest.approx(np.median(table[se].to_numpy()), rel=0.03)
    assert "rows_at_budget" not in manifest  # a fixed budget has no target


def test_kernel_errors_from_the_command_line(case, tmp_path):
    plain, _ = _explain(
        case, tmp_path, "--algorithm", "kernel", "--n-samples", "40", name="plain.parquet"
    )
    out, _ = _explain(case, tmp_path, "--algorithm", "kernel", "--n-samples", "40", "--errors")
    table = pd.read_parquet(out)
    se = [f"{f}_se" for f in case["features"]]
    pd.testing.assert_frame_equal(table.drop(columns=se), pd.read_parquet(plain), check_exact=True)
    assert (table[se].to_numpy() > 0).all() and "converged" not in table.columns


def test_a_csv_without_metadata_reads_se_columns_as_errors(case, tmp_path):
    out, _ = _explain(case, tmp_path, "--n-samples", "200", "--errors", name="out.csv")
    (tmp_path / "out.csv.manifest.json").unlink()
    read = xaicli.read_attributions(out)
    assert read.features == tuple(case["features"])
    assert read.se_columns == tuple(f"{f}_se" for f in case["features"])


def test_target_error_flags_rows_at_the_budget_and_counts_them(case, tmp_path):
    out, result = _explain(
        case, tmp_path, "--target-error", "0.004", "--n-samples", "400", "--layout", "long"
    )
    table = pd.read_parquet(out)
    assert list(table.columns) == [
        "key", "output", "feature", "attribution", "rank", "se", "converged",
    ]  # fmt: skip
    per_row = table.groupby("key", sort=False).agg(se=("se", "max"), converged=("converged", "all"))
    assert (per_row.se[per_row.converged] <= 0.004).all()
    at_budget = int((~per_row.converged).sum())
    assert 0 < at_budget < len(per_row)  # both kinds of rows: the test can fail either way
    manifest = json.loads((tmp_path / "out.parquet.manifest.json").read_text())
    assert manifest["rows_at_budget"] == at_budget
    assert f"{at_budget} rows stopped at --n-samples above the target error" in result.stderr
    read = xaicli.read_attributions(out)
    assert read.se_columns == ("se",) and read.features == tuple(case["features"])


def test_relative_target_is_a_share_of_prediction_minus_base(case, tmp_path):
    out, _ = _explain(case, tmp_path, "--target-error", "5%")
    table = pd.read_parquet(out)
    se = table[[f"{f}_se" for f in case["features"]]].to_numpy().max(axis=1)
    allowed = 0.05 * (table.prediction - table.base_value).abs().to_numpy()
    assert (se[table.converged] <= allowed[table.converged]).all()
    assert "converged" in list(table.columns)


def test_target_error_is_deterministic_for_any_jobs_and_chunks(case, tmp_path):
    one, _ = _explain(case, tmp_path, "--target-error", "2%", "--n-jobs", "1", name="a.parquet")
    two, _ = _explain(
        case, tmp_path, "--target-error", "2%", "--n-jobs", "2", "--chunk-size", "10",
        name="b.parquet",
    )  # fmt: skip
    pd.testing.assert_frame_equal(pd.read_parquet(one), pd.read_parquet(two), check_exact=True)


def test_permutation_without_a_budget_samples_to_the_default_target(case, tmp_path):
    out, _ = _explain(case, tmp_path)
    table = pd.read_parquet(out)
    assert "converged" in table.columns and "x0_se" in table.columns
    manifest = json.loads((tmp_path / "out.parquet.manifest.json").read_text())
    assert manifest["parameters"]["target_error"] is None  # the default, as documented
    assert "rows_at_budget" in manifest


def test_target_error_in_a_job_file(case, tmp_path):
    folder = case["folder"]
    for i, value in enumerate(("0.02", '"0.02"')):
        job = tmp_path / f"job{i}.toml"
        job.write_text(
            "[[explain]]\n"
            f'model = "{folder / "model.joblib"}"\n'
            f'data = "{folder / "data.parquet"}"\n'
            f'out = "{tmp_path / f"job{i}.parquet"}"\n'
            'id_cols = ["key"]\nalgorithm = "permutation"\nbackground_size = 20\n'
            f"target_error = {value}\nerrors = true\n"
        )
        result = run_cli("run", job)
        assert result.exit_code == 0, result.stderr
    cli, _ = _explain(case, tmp_path, "--target-error", "0.02")
    for i in range(2):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / f"job{i}.parquet"), pd.read_parquet(cli), check_exact=True
        )


@pytest.mark.parametrize(
    ("more", "message"),
    [
        (["--target-error", "abc"], "--target-error must be a positive number"),
        (["--target-error", "-1"], "--target-error must be a positive number"),
        (["--target-error", "0%"], "--target-error must be a positive number"),
        (["--errors", "--algorithm", "exact"], "--errors applies to sampled SHAP"),
        (
            ["--target-error", "1%", "--algorithm", "kernel"],
            "--target-error applies to --algorithm permutation",
        ),
        (
            ["--target-error", "1%", "--algorithm", "exact"],
            "--target-error applies to --algorithm permutation",
        ),
        (["--errors", "--n-samples", "12"], "--n-samples of at least 20"),
    ],
)
def test_bad_sampling_options_are_refused_before_any_work(case, tmp_path, more, message):
    result = run_cli(*case["args"], "--out", tmp_path / "o.parquet", *more)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.parquet").exists()


def test_target_error_resumes_to_the_uninterrupted_table(regression_case, tmp_path):
    from test_resume import _kill_after, _start

    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(64 * 12, 6)), columns=[f"x{i}" for i in range(6)])
    frame.insert(0, "key", [f"r{i}" for i in range(len(frame))])
    frame.to_parquet(tmp_path / "data.parquet", index=False)
    joblib.dump(regression_case["model"], tmp_path / "model.joblib")
    args = [
        "explain", "--model", tmp_path / "model.joblib", "--data", tmp_path / "data.parquet",
        "--id-col", "key", "--background-size", "30", "--chunk-size", "64",
        "--algorithm", "permutation", "--n-samples", "400", "--target-error", "2%", "--errors",
    ]  # fmt: skip
    reference = tmp_path / "reference.parquet"
    assert run_cli(*args, "--out", reference, "--n-jobs", "1").exit_code == 0
    out, work = tmp_path / "out.parquet", tmp_path / ".out.parquet.xai-work"
    _kill_after(_start([str(a) for a in args] + ["--resume"], out), work, 4)
    result = run_cli(*args, "--out", out, "--resume", "--n-jobs", "2")
    assert result.exit_code == 0, result.stderr
    assert "resuming: " in result.stderr  # killed midway: some chunks come from the work folder
    pd.testing.assert_frame_equal(
        pd.read_parquet(out), pd.read_parquet(reference), check_exact=True
    )
    facts = [json.loads(p.read_text()) for p in (tmp_path.glob("*.parquet.manifest.json"))]
    assert facts[0]["standard_errors"] == facts[1]["standard_errors"]  # resumed chunks count
    assert facts[0]["rows_at_budget"] == facts[1]["rows_at_budget"]


def test_target_error_on_dask_gives_the_local_table(case, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    local, _ = _explain(case, tmp_path, "--target-error", "2%", "--n-jobs", "1", name="l.parquet")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=40,
    ) as cluster:  # fmt: skip
        remote, _ = _explain(
            case, tmp_path, "--target-error", "2%", "--chunk-size", "16", "--backend", "dask",
            "--scheduler", cluster.scheduler_address, name="d.parquet",
        )  # fmt: skip
    pd.testing.assert_frame_equal(pd.read_parquet(local), pd.read_parquet(remote), check_exact=True)
