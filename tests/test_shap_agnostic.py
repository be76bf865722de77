"""Model-agnostic SHAP algorithms against brute-force enumeration, shap, and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import exact_interventional_shap
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from xaicli.methods.shap_exact import explain_exact
from xaicli.methods.shap_kernel import explain_kernel, kernel_design
from xaicli.methods.shap_linear import explain_linear
from xaicli.methods.shap_permutation import explain_permutation


@pytest.fixture(scope="module")
def mlp():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    y = X[:, 0] * X[:, 1] + np.sin(2 * X[:, 2]) + X[:, 3] ** 2
    model = MLPRegressor(hidden_layer_sizes=(24,), max_iter=400, random_state=0).fit(X, y)
    return model, X[:15], X[100:108]


def _predict(model):
    return lambda A: model.predict(A)[:, None]


def _additivity(result):
    return np.abs(result.base_values + result.values.sum(-1) - result.predictions).max()


def test_exact_matches_brute_force_enumeration(mlp):
    model, background, rows = mlp
    result = explain_exact(
        _predict(model), rows, background=background, row_index=np.arange(len(rows))
    )
    for r, x in enumerate(rows):
        reference = exact_interventional_shap(model.predict, x, background)
        np.testing.assert_allclose(result.values[r], reference, atol=1e-10)
    assert _additivity(result) < 1e-10


def test_exact_matches_shap_exact_explainer(mlp):
    import shap

    model, background, rows = mlp
    ours = explain_exact(
        _predict(model), rows, background=background, row_index=np.arange(len(rows))
    )
    masker = shap.maskers.Independent(background, max_samples=len(background))
    theirs = shap.ExactExplainer(model.predict, masker)(rows)
    np.testing.assert_allclose(ours.values[:, 0, :], theirs.values, atol=1e-8)
    np.testing.assert_allclose(ours.base_values[:, 0], theirs.base_values, atol=1e-8)


def test_kernel_with_full_budget_is_exact(mlp):
    model, background, rows = mlp
    exact = explain_exact(
        _predict(model), rows, background=background, row_index=np.arange(len(rows))
    )
    kernel = explain_kernel(
        _predict(model),
        rows,
        background=background,
        row_index=np.arange(len(rows)),
        n_samples=2**5 - 2,
    )
    np.testing.assert_allclose(kernel.values, exact.values, atol=1e-9)


def test_kernel_sampled_is_additive_and_close(mlp):
    model, background, rows = mlp
    exact = explain_exact(
        _predict(model), rows, background=background, row_index=np.arange(len(rows))
    )
    kernel = explain_kernel(
        _predict(model),
        rows,
        background=background,
        row_index=np.arange(len(rows)),
        n_samples=20,
        seed=3,
    )
    assert _additivity(kernel) < 1e-10
    scale = np.abs(exact.values).max()
    assert np.abs(kernel.values - exact.values).max() < 0.25 * scale


def test_kernel_design_enumerates_small_sizes_and_pairs_the_rest():
    masks, weights = kernel_design(12, 200, seed=0)
    sizes = masks.sum(axis=1)
    # sizes 1 and 11 (24 coalitions) fit the budget and are enumerated completely
    assert (sizes == 1).sum() == 12 and (sizes == 11).sum() == 12
    assert len(masks) <= 200 and np.all(weights > 0)
    assert abs(weights.sum() - 1.0) < 1e-9
    keys = {m.tobytes() for m in masks}
    assert all((~m).tobytes() in keys for m in masks)  # complement present


def test_permutation_is_additive_and_converges(mlp):
    model, background, rows = mlp
    exact = explain_exact(
        _predict(model), rows, background=background, row_index=np.arange(len(rows))
    )
    index = np.arange(len(rows))
    coarse = explain_permutation(
        _predict(model), rows, background=background, row_index=index, n_samples=16
    )
    fine = explain_permutation(
        _predict(model), rows, background=background, row_index=index, n_samples=4000
    )
    assert _additivity(coarse) < 1e-10 and _additivity(fine) < 1e-10
    err_fine = np.abs(fine.values - exact.values).max()
    assert err_fine < 0.05 * np.abs(exact.values).max()
    assert err_fine < np.abs(coarse.values - exact.values).max()


def test_permutation_rows_do_not_depend_on_chunking(mlp):
    model, background, rows = mlp
    index = np.arange(62, 62 + len(rows))  # the runner cuts chunks at multiples of ROW_GROUP
    whole = explain_permutation(
        _predict(model), rows, background=background, row_index=index, seed=5
    )
    parts = [
        explain_permutation(
            _predict(model), rows[s], background=background, row_index=index[s], seed=5
        )
        for s in (slice(0, 2), slice(2, None))
    ]
    np.testing.assert_array_equal(whole.values, np.concatenate([p.values for p in parts]))


def test_linear_closed_form_on_linear_regression():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 7))
    model = LinearRegression().fit(X, X @ rng.normal(size=7) + rng.normal(size=200))
    background, rows = X[:50], X[150:170]
    result = explain_linear(
        _predict(model), rows, background=background, row_index=np.arange(len(rows))
    )
    expected = model.coef_ * (rows - background.mean(axis=0))
    np.testing.assert_allclose(result.values[:, 0, :], expected, atol=1e-10)
    assert _additivity(result) < 1e-10


def test_linear_on_one_hot_pipeline_matches_enumeration(penguin_frame):
    """Attributions are per input column (one-hot levels summed), equal to exact Shapley values."""
    import pyarrow as pa

    from xaicli.models.adapter import ModelPredictor, OutputSpec
    from xaicli.models.codec import FeatureCodec

    features = ("island", "bill_length_mm", "flipper_length_mm", "sex")
    prep = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["island", "sex"])],
        remainder=StandardScaler(),
    )
    frame = penguin_frame[list(features)]
    model = make_pipeline(prep, LogisticRegression(max_iter=1000)).fit(
        frame, penguin_frame["species"]
    )
    table = pa.Table.from_pandas(frame, preserve_index=False)
    codec = FeatureCodec.from_schema(table.schema, features)
    X = codec.encode(table)
    output = OutputSpec("decision", (0, 1, 2), tuple(model.classes_))
    predict = ModelPredictor(model, output, features, codec.categorical, codec.snapshot(), features)
    background, rows = X[::17], X[[3, 150, 300]]
    result = explain_linear(predict, rows, background=background, row_index=np.arange(len(rows)))
    for r, x in enumerate(rows):
        reference = exact_interventional_shap(predict, x, background)
        np.testing.assert_allclose(result.values[r], reference, atol=1e-9)


@pytest.fixture(scope="module")
def saturated_classifier():
    """A boosted classifier's probability: saturated, so coalitions interact strongly,
    the case where sampling errors are largest."""
    from sklearn.ensemble import GradientBoostingClassifier

    rng = np.random.default_rng(4)
    X = rng.normal(size=(600, 9))
    y = (X[:, 0] + X[:, 1] * X[:, 2] - X[:, 3] + 0.5 * X[:, 4] > 0).astype(int)
    model = GradientBoostingClassifier(
        n_estimators=200, learning_rate=0.3, max_depth=3, random_state=0
    ).fit(X, y)
    return model, X[:40], X[300:306]


@pytest.mark.parametrize("explain", [explain_kernel, explain_permutation])
def test_sampling_per_background_row_beats_shap_kernel_at_equal_budget(
    saturated_classifier, explain
):
    """Each background row samples its own coalitions, so the errors of the background
    rows average out: at shap's own budget the error is well below shap KernelExplainer's;
    both against brute-force enumeration."""
    import shap

    model, background, rows = saturated_classifier

    def f(A):
        return model.predict_proba(A)[:, 1]

    exact = np.stack([exact_interventional_shap(f, x, background)[0] for x in rows])
    budget = 64  # of 2^9 - 2 = 510: sampled; 4 antithetic pairs of orderings (2 x 8 each)
    err_ours = err_shap = 0.0
    for seed in range(3):  # errors at such a small budget vary from seed to seed
        ours = explain(
            lambda A: f(A)[:, None],
            rows,
            background=background,
            row_index=np.arange(len(rows)),
            n_samples=budget,
            seed=seed,
        )
        assert _additivity(ours) < 1e-10
        np.random.seed(seed)
        theirs = shap.KernelExplainer(f, background).shap_values(
            rows, nsamples=budget, l1_reg=False, silent=True
        )
        err_ours += np.abs(ours.values[:, 0, :] - exact).mean()
        err_shap += np.abs(np.asarray(theirs) - exact).mean()
    # one design shared by all background rows measured 0.95x shap's error here; 0.45-0.55x
    # with a design of its own per background row
    assert err_ours < 0.7 * err_shap, (err_ours, err_shap)


def test_kernel_gives_each_background_row_its_own_relabelling():
    from xaicli.methods.shap_kernel import background_relabelling

    role = background_relabelling(6, 50, seed=1)
    assert role.shape == (50, 6)
    assert all(sorted(r) == list(range(6)) for r in role)  # each a permutation
    assert len({r.tobytes() for r in role}) > 40  # nearly all distinct
    np.testing.assert_array_equal(role, background_relabelling(6, 50, seed=1))


@pytest.mark.parametrize("explain", [explain_kernel, explain_permutation, explain_exact])
def test_max_eval_rows_caps_one_rows_hybrids_without_changing_values(mlp, explain):
    """A row whose coalitions x background exceed the cap is evaluated in slices: the
    model never sees more rows per call than the cap, and the values are the same."""
    model, background, rows = mlp
    calls = []

    def predict(A):
        calls.append(len(A))
        return model.predict(A)[:, None]

    options = {} if explain is explain_exact else {"n_samples": 24, "seed": 2}
    index = np.arange(len(rows))
    whole = explain(predict, rows, background=background, row_index=index, **options)
    calls.clear()
    sliced = explain(
        predict, rows, background=background, row_index=index, max_eval_rows=40, **options
    )
    assert max(calls) <= 40
    np.testing.assert_allclose(sliced.values, whole.values, rtol=0, atol=1e-12)


@pytest.mark.parametrize("explain", [explain_kernel, explain_permutation])
def test_max_eval_rows_bounds_the_memory_of_one_row(explain):
    """With a large background a single row's hybrids exceed the cap; they are then built
    a slice of coalitions at a time instead of all at once."""
    import tracemalloc

    rng = np.random.default_rng(5)
    rows, background = rng.normal(size=(1, 20)), rng.normal(size=(400, 20))
    weights = rng.normal(size=20) / 4

    def peak(max_eval_rows):
        tracemalloc.start()
        explain(
            lambda A: np.tanh(A @ weights)[:, None],
            rows,
            background=background,
            row_index=np.arange(1),
            n_samples=400,
            max_eval_rows=max_eval_rows,
        )
        used = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return used

    # whole: about 400 coalitions x 400 background rows x 20 features x 8 bytes = 25 MB
    assert peak(2_000) < 0.5 * peak(10**9)
