"""Tabular LIME against the lime package itself (``lime.lime_tabular``, ``lime.lime_base``)."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from lime.lime_base import LimeBase
from lime.lime_tabular import LimeTabularExplainer
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import pairwise_distances
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from xaicli.methods.base import ROW_GROUP, row_rng
from xaicli.methods.lime import LIME_POOL_STREAM, clear_pool_cache, explain_lime
from xaicli.methods.lime_sampling import TabularSampler

N_SAMPLES = 5000
N_ROWS = 10
TOP = 5
NEIGHBOURHOODS = ["shared", "per-row"]


def as_2d(predict):
    """Adapt a scikit-learn predict returning (n,) or (n, k) to (n, k)."""
    return lambda X: np.asarray(predict(X), dtype=np.float64).reshape(len(X), -1)


def lime_kernel(d, width):
    return np.sqrt(np.exp(-(d**2) / width**2))


def _breast_cancer(with_code: bool):
    X, y = load_breast_cancer(return_X_y=True)
    features = X[:, :8]
    if with_code:
        # A strongly predictive code column: quartile of "worst area" (column 23).
        code = np.digitize(X[:, 23], np.percentile(X[:, 23], [25, 50, 75])).astype(float)
        features = np.c_[features, code]
    return features, y


def _case(name):
    """(predict, background, rows, categorical, lime's mode, lime's label, our output column)."""
    if name == "diabetes_rf":
        X, y = load_diabetes(return_X_y=True)
        model = RandomForestRegressor(n_estimators=30, random_state=0).fit(X, y)
        predict, mode, label, output = as_2d(model.predict), "regression", 1, 0
    else:
        X, y = _breast_cancer(with_code=name == "breast_code_rf")
        if name == "breast_lr":
            model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
        else:
            model = RandomForestClassifier(n_estimators=30, random_state=0).fit(X, y)
        predict, mode, label, output = model.predict_proba, "classification", 1, 1
    categorical = np.zeros(X.shape[1], dtype=bool)
    if name == "breast_code_rf":
        categorical[-1] = True
    background, rows = X[:300], X[300 : 300 + 7 * N_ROWS : 7]
    return predict, background, rows, categorical, mode, label, output


CASES = ["breast_lr", "breast_rf", "diabetes_rf", "breast_code_rf"]


@cache
def _lime_reference(name):
    """lime's weights, intercepts and local predictions for the rows of case ``name``."""
    predict, background, rows, categorical, mode, label, _ = _case(name)
    explainer = LimeTabularExplainer(
        background,
        mode=mode,
        categorical_features=np.flatnonzero(categorical).tolist(),
        discretize_continuous=True,
        discretizer="quartile",
        sample_around_instance=False,
        random_state=0,
    )
    n_features = rows.shape[1]
    weights, intercepts, local = [], [], []
    for row in rows:
        exp = explainer.explain_instance(
            row, predict, labels=(label,), num_features=n_features, num_samples=N_SAMPLES
        )
        w = np.zeros(n_features)
        for j, value in exp.as_map()[label]:
            w[j] = value
        weights.append(w)
        intercepts.append(exp.intercept[label])
        local.append(exp.local_pred[0])
    return np.array(weights), np.array(intercepts), np.array(local)


@pytest.fixture(scope="module", params=[(c, n) for c in CASES for n in NEIGHBOURHOODS], ids=str)
def compared(request):
    """Our attributions and lime's, for the same rows, background and settings."""
    name, neighbourhood = request.param
    predict, background, rows, categorical, _, _, output = _case(name)
    ours = explain_lime(
        predict,
        rows,
        background=background,
        row_index=np.arange(len(rows)),
        seed=3,
        categorical=categorical,
        n_samples=N_SAMPLES,
        neighbourhood=neighbourhood,
    )
    return f"{name}/{neighbourhood}", ours, output, _lime_reference(name), predict(rows)


def test_top_features_agree_with_lime(compared):
    name, ours, output, (lime_w, _, _), _ = compared
    overlaps = []
    for w, ref in zip(ours.values[:, output], lime_w, strict=True):
        top_ours = set(np.argsort(-np.abs(w))[:TOP])
        top_lime = set(np.argsort(-np.abs(ref))[:TOP])
        shared = sorted(top_ours & top_lime)
        overlaps.append(len(shared))
        assert np.all(np.sign(w[shared]) == np.sign(ref[shared])), (name, w, ref)
    assert np.mean(overlaps) >= 4, (name, overlaps)


def test_intercept_and_local_prediction_close_to_lime(compared):
    name, ours, output, (_, lime_b, lime_local), model_out = compared
    # Both are random estimates: compare on the scale of the model output.
    tol = 0.1 * max(np.ptp(model_out[:, output]), 0.1)
    np.testing.assert_allclose(ours.base_values[:, output], lime_b, atol=tol, err_msg=name)
    np.testing.assert_allclose(ours.extras["local_prediction"][:, output], lime_local, atol=tol)
    np.testing.assert_allclose(ours.predictions, model_out)


@pytest.fixture(scope="module")
def lr_case():
    return _case("breast_lr")


def _neighbourhood(predict, background, rows, categorical, discretize, seed, neighbourhood):
    """Our samples for ``rows`` as explain_lime draws them, with lime's kernel distances."""
    sampler = TabularSampler.fit(background, categorical, discretize)
    n_rows, n_features = rows.shape
    if neighbourhood == "per-row":
        rngs = [row_rng(seed, i) for i in range(n_rows)]
        inputs, neighbours = sampler.draw_rows(rows, rngs, N_SAMPLES)
        Z = sampler.interpretable(rows, neighbours)
        Y = predict(inputs.reshape(-1, n_features)).reshape(n_rows, N_SAMPLES, -1)
    else:
        pool = sampler.draw(np.random.default_rng([seed, LIME_POOL_STREAM]), N_SAMPLES - 1)
        Z = sampler.interpretable(rows, pool)
        pool_y = predict(pool.inputs)
        Y = np.stack([np.concatenate([predict(row[None]), pool_y]) for row in rows])
    dist = [pairwise_distances(z, z[:1]).ravel() for z in Z]
    return Z, Y, dist


@pytest.mark.parametrize("neighbourhood", NEIGHBOURHOODS)
@pytest.mark.parametrize("discretize", [True, False])
@pytest.mark.parametrize(
    ("selection", "k"),
    [("none", None), ("forward_selection", 3), ("highest_weights", 4), ("lasso_path", 3)],
)
def test_surrogate_fit_equals_lime_base_on_the_same_samples(
    lr_case, discretize, selection, k, neighbourhood
):
    """Same neighbours -> same ridge, feature selection, R^2 and local prediction as lime_base."""
    predict, background, rows, categorical, *_ = lr_case
    rows = rows[:4]
    n_features = rows.shape[1]
    width = 0.75 * np.sqrt(n_features)
    ours = explain_lime(
        predict,
        rows,
        background=background,
        row_index=np.arange(len(rows)),
        seed=5,
        discretize=discretize,
        num_features=k,
        feature_selection=selection,
        neighbourhood=neighbourhood,
    )
    Z, Y, dist = _neighbourhood(
        predict, background, rows, categorical, discretize, seed=5, neighbourhood=neighbourhood
    )
    base = LimeBase(lambda d: lime_kernel(d, width), random_state=0)
    for i in range(len(rows)):
        for label in range(Y.shape[2]):
            b, exp, score, local = base.explain_instance_with_data(
                Z[i], Y[i], dist[i], label, k or n_features, feature_selection=selection
            )
            w = np.zeros(n_features)
            for j, value in exp:
                w[j] = value
            np.testing.assert_allclose(ours.values[i, label], w, rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(ours.base_values[i, label], b, rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(ours.extras["score"][i, label], score, rtol=1e-6)
            np.testing.assert_allclose(
                ours.extras["local_prediction"][i, label], local[0], rtol=1e-6
            )


@pytest.mark.parametrize("neighbourhood", NEIGHBOURHOODS)
def test_sampler_matches_lime_neighbourhood_distribution(neighbourhood):
    """Our neighbours vs lime's private sampler: same bin frequencies, same values per feature."""
    X, _ = _breast_cancer(with_code=True)
    background, row = X[:300], X[400]
    categorical = np.zeros(X.shape[1], dtype=bool)
    categorical[-1] = True
    explainer = LimeTabularExplainer(
        background, categorical_features=[X.shape[1] - 1], random_state=0
    )
    n = 20_000
    lime_z, lime_x = explainer._LimeTabularExplainer__data_inverse(row, n)
    sampler = TabularSampler.fit(background, categorical, discretize=True)
    if neighbourhood == "per-row":
        inputs, neighbours = sampler.draw_rows(row[None], [row_rng(0, 0)], n)
        Z = sampler.interpretable(row[None], neighbours)
        inputs = inputs[0]
    else:
        pool = sampler.draw(np.random.default_rng(0), n - 1)
        inputs, Z = np.concatenate([row[None], pool.inputs]), sampler.interpretable(row[None], pool)
    np.testing.assert_array_equal(Z[0, 0], lime_z[0])
    np.testing.assert_array_equal(inputs[0], lime_x[0])
    np.testing.assert_allclose(Z[0].mean(axis=0), lime_z.mean(axis=0), atol=0.015)
    # Moments in units of each feature's background std (20000 draws: ~0.01 sampling error).
    spread = background.std(axis=0)
    np.testing.assert_allclose(
        inputs.mean(axis=0) / spread, lime_x.mean(axis=0) / spread, atol=0.04
    )
    np.testing.assert_allclose(inputs.std(axis=0) / spread, lime_x.std(axis=0) / spread, atol=0.04)
    # Every value stays inside the background range, as lime's truncated normals do.
    assert np.all(inputs >= background.min(axis=0)) and np.all(inputs <= background.max(axis=0))


@pytest.mark.parametrize("neighbourhood", NEIGHBOURHOODS)
def test_continuous_mode_agrees_with_lime(lr_case, neighbourhood):
    predict, background, rows, categorical, *_ = lr_case
    n_features = rows.shape[1]
    ours = explain_lime(
        predict,
        rows,
        background=background,
        row_index=np.arange(len(rows)),
        seed=1,
        discretize=False,
        neighbourhood=neighbourhood,
    )
    explainer = LimeTabularExplainer(background, discretize_continuous=False, random_state=0)
    overlaps = []
    for i, row in enumerate(rows):
        exp = explainer.explain_instance(row, predict, labels=(1,), num_features=n_features)
        ref = np.zeros(n_features)
        for j, value in exp.as_map()[1]:
            ref[j] = value
        w = ours.values[i, 1]
        shared = sorted(set(np.argsort(-np.abs(w))[:TOP]) & set(np.argsort(-np.abs(ref))[:TOP]))
        overlaps.append(len(shared))
        assert np.all(np.sign(w[shared]) == np.sign(ref[shared]))
    assert np.mean(overlaps) >= 4, overlaps


@pytest.mark.parametrize(
    ("neighbourhood", "pool_key"), [("per-row", None), ("shared", None), ("shared", "lr")]
)
def test_same_seed_is_identical_whatever_the_chunking(lr_case, neighbourhood, pool_key):
    predict, background, *_ = lr_case
    clear_pool_cache()
    rows, index = background[:80], np.arange(80)
    kwargs = dict(
        background=background,
        seed=11,
        n_samples=300,
        max_eval_rows=3000,
        neighbourhood=neighbourhood,
        pool_key=pool_key,
    )
    whole = explain_lime(predict, rows, row_index=index, **kwargs)
    again = explain_lime(predict, rows, row_index=index, **kwargs)
    other_seed = explain_lime(predict, rows, row_index=index, **{**kwargs, "seed": 12})
    assert not np.array_equal(whole.values, other_seed.values)
    # Chunks cut at a multiple of ROW_GROUP (as the runner does): bit-identical. Cut
    # anywhere: the same draws; only the model's batch composition may change last bits.
    for cut, exact in ((ROW_GROUP, True), (27, False)):
        first = explain_lime(predict, rows[:cut], row_index=index[:cut], **kwargs)
        rest = explain_lime(predict, rows[cut:], row_index=index[cut:], **kwargs)
        for field in ("values", "base_values", "predictions"):
            np.testing.assert_array_equal(getattr(whole, field), getattr(again, field))
            joined = np.concatenate([getattr(first, field), getattr(rest, field)])
            if exact:
                np.testing.assert_array_equal(getattr(whole, field), joined)
            else:
                np.testing.assert_allclose(getattr(whole, field), joined, rtol=1e-10, atol=1e-12)
        for key in ("score", "local_prediction"):
            joined = np.concatenate([first.extras[key], rest.extras[key]])
            np.testing.assert_allclose(whole.extras[key], joined, rtol=0 if exact else 1e-10)


class CountingPredict:
    """A predict function that counts the rows it is asked to evaluate."""

    def __init__(self, predict):
        self.predict, self.rows = predict, 0

    def __call__(self, X):
        self.rows += len(X)
        return self.predict(X)


@pytest.mark.parametrize(("neighbourhood", "expected"), [("shared", 299 + 6), ("per-row", 300 * 6)])
def test_model_evaluations_per_neighbourhood(lr_case, neighbourhood, expected):
    """Shared: the pool once plus each row; per-row: n_samples per row."""
    predict, background, rows, *_ = lr_case
    counting = CountingPredict(predict)
    explain_lime(
        counting,
        rows[:6],
        background=background,
        row_index=np.arange(6),
        seed=0,
        n_samples=300,
        neighbourhood=neighbourhood,
    )
    assert counting.rows == expected


def test_pool_is_cached_under_its_key_and_settings(lr_case):
    predict, background, rows, *_ = lr_case
    clear_pool_cache()
    counting = CountingPredict(predict)
    kwargs = dict(background=background, seed=4, n_samples=300, neighbourhood="shared")

    def run(index, **changes):
        before = counting.rows
        result = explain_lime(counting, rows[index], row_index=index, **{**kwargs, **changes})
        return result, counting.rows - before

    uncached, _ = run(np.arange(4))
    first, evaluated = run(np.arange(4), pool_key="m")
    assert evaluated == 299 + 4
    np.testing.assert_array_equal(first.values, uncached.values)
    # A later chunk under the same key: only its own rows are evaluated.
    second, evaluated = run(np.arange(4, 10), pool_key="m")
    assert evaluated == 6
    whole = explain_lime(predict, rows[:10], row_index=np.arange(10), **kwargs)
    np.testing.assert_array_equal(np.concatenate([first.values, second.values]), whole.values)
    # Anything that changes the pool makes a new one, even under the same key.
    for changes in (
        {"seed": 5},
        {"n_samples": 200},
        {"background": background[:200]},
        {"discretize": False},
    ):
        n_pool = changes.get("n_samples", 300) - 1
        assert run(np.arange(2), pool_key="m", **changes)[1] == n_pool + 2, changes
    assert run(np.arange(2), pool_key="other")[1] == 299 + 2
    clear_pool_cache()


@pytest.mark.parametrize(
    ("selection", "k"),
    [("auto", 3), ("auto", 7), ("forward_selection", 2), ("highest_weights", 5)],
)
def test_num_features_keeps_exactly_k(lr_case, selection, k):
    predict, background, rows, *_ = lr_case
    result = explain_lime(
        predict,
        rows[:5],
        background=background,
        row_index=np.arange(5),
        seed=0,
        n_samples=1000,
        num_features=k,
        feature_selection=selection,
    )
    assert result.values.shape == (5, 2, rows.shape[1])
    np.testing.assert_array_equal((result.values != 0).sum(axis=-1), k)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_samples": 1}, "n_samples must be an integer >= 2, got 1"),
        ({"kernel_width": 0.0}, "kernel_width must be a finite number > 0 or None, got 0.0"),
        ({"num_features": 0}, r"num_features must be an integer in 1\.\.8, got 0"),
        ({"num_features": 9}, r"num_features must be an integer in 1\.\.8, got 9"),
        ({"feature_selection": "best"}, "feature_selection must be one of .*, got 'best'"),
        ({"row_index": np.arange(3)}, r"row_index must be an integer array of shape \(4,\)"),
        ({"background": np.zeros((5, 7))}, r"background must .* 8 columns .* got shape \(5, 7\)"),
        ({"categorical": np.zeros(8)}, r"categorical must be a boolean array of shape \(8,\)"),
        ({"neighbourhood": "both"}, r"neighbourhood must be one of .*, got 'both'"),
    ],
)
def test_invalid_arguments_raise_value_error(lr_case, kwargs, message):
    predict, background, rows, *_ = lr_case
    args = {"background": background, "row_index": np.arange(4), "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        explain_lime(predict, rows[:4], **args)


def test_nan_in_continuous_column_is_rejected_without_discretization(lr_case):
    predict, background, rows, *_ = lr_case
    bad = rows[:2].copy()
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match=r"X has NaN in column 3 \(row 1\)"):
        explain_lime(
            predict, bad, background=background, row_index=np.arange(2), seed=0, discretize=False
        )
