"""Integrated Gradients against closed forms and exact identities."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from xaicli.methods.ig import explain_ig

FORMS = ["path", "smooth"]


def as_2d(predict):
    """Adapt a scikit-learn predict returning (n,) or (n, k) to (n, k)."""
    return lambda X: np.asarray(predict(X), dtype=np.float64).reshape(len(X), -1)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6)) * np.array([1.0, 2.0, 0.5, 3.0, 1.0, 10.0])
    y = np.sin(X[:, 0]) + 0.3 * X[:, 1] * X[:, 2] - 0.1 * X[:, 3] + 0.05 * X[:, 5]
    return X, y, X.std(axis=0)


@pytest.mark.parametrize("form", FORMS)
def test_linear_model_gives_weight_times_difference(data, form):
    X, y, scale = data
    targets = np.c_[y, X[:, 0] - 2 * X[:, 4]]  # two outputs
    model = LinearRegression().fit(X, targets)
    rows, baselines = X[:8], X[100:101]
    result = explain_ig(as_2d(model.predict), rows, baselines=baselines, scale=scale, form=form)
    expected = model.coef_[None, :, :] * (rows - baselines)[:, None, :]  # (n, K, M)
    np.testing.assert_allclose(result.values, expected, rtol=1e-6, atol=1e-9)
    assert np.abs(result.extras["completeness_error"]).max() < 1e-8
    np.testing.assert_allclose(result.predictions, model.predict(rows))
    np.testing.assert_allclose(result.base_values, np.repeat(model.predict(baselines), 8, axis=0))


@pytest.mark.parametrize("form", FORMS)
def test_scaled_ridge_pipeline_is_linear_in_raw_features(data, form):
    X, y, scale = data
    model = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(X, y)
    weight = model[-1].coef_ / model[0].scale_  # slope per raw unit
    rows, baselines = X[:8], X.mean(axis=0)
    result = explain_ig(as_2d(model.predict), rows, baselines=baselines, scale=scale, form=form)
    np.testing.assert_allclose(
        result.values[:, 0], weight * (rows - baselines), rtol=1e-6, atol=1e-9
    )
    assert np.abs(result.extras["completeness_error"]).max() < 1e-8


def logistic_ig(w, b, x, x_base):
    """Closed-form IG of p = sigmoid(w.x + b): (x - x') w (s(z) - s(z')) / (z - z')."""
    z, z_base = x @ w + b, x_base @ w + b
    dz = z - z_base
    same = np.abs(dz) < 1e-12
    s = sigmoid(z)
    mean_slope = np.where(same, s * (1 - s), (s - sigmoid(z_base)) / np.where(same, 1.0, dz))
    return (x - x_base) * w * mean_slope[:, None]


@pytest.fixture(scope="module")
def logistic(data):
    X, _, scale = data
    target = (X[:, 0] - 0.5 * X[:, 3] + 0.1 * X[:, 5] > 0).astype(int)
    model = LogisticRegression(C=0.05).fit(X, target)
    rows, x_base = X[:12], X[200]
    expected = logistic_ig(model.coef_[0], model.intercept_[0], rows, x_base)
    return as_2d(model.predict_proba), rows, x_base, scale, expected


def test_logistic_smooth_form_matches_closed_form(logistic):
    predict, rows, x_base, scale, expected = logistic
    values = explain_ig(predict, rows, baselines=x_base, scale=scale, form="smooth").values
    np.testing.assert_allclose(values[:, 1], expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(values[:, 0], -expected, rtol=1e-5, atol=1e-7)


def test_logistic_path_form_converges_to_closed_form(logistic):
    predict, rows, x_base, scale, expected = logistic
    # The per-segment error is O(h^3) in the logit change h = (z - z') / steps,
    # so O(steps^-2) in total. Here z - z' reaches 12 (the path crosses the
    # whole sigmoid), giving 1.3e-3 of the largest attribution at 32 steps.
    errors = {}
    for steps in (8, 32, 128):
        values = explain_ig(predict, rows, baselines=x_base, scale=scale, steps=steps).values
        errors[steps] = np.abs(values[:, 1] - expected).max() / np.abs(expected).max()
    assert errors[32] < 2e-3
    assert errors[32] < errors[8] / 8 and errors[128] < errors[32] / 8  # O(steps^-2)


@pytest.fixture(scope="module")
def mlp(data):
    X, y, scale = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MLPRegressor(
            hidden_layer_sizes=(16,), activation="tanh", max_iter=300, random_state=0
        ).fit(X / scale, y)
    return (lambda Z: model.predict(Z / scale)[:, None]), X, scale


def test_mlp_smooth_form_is_nearly_complete_and_path_form_exactly(mlp):
    predict, X, scale = mlp
    rows, x_base = X[:20], X[250]
    gap = np.abs(predict(rows) - predict(x_base[None]))[:, 0]
    assert gap.min() > 1e-3  # the relative check below is meaningful
    smooth = explain_ig(predict, rows, baselines=x_base, scale=scale, form="smooth")
    assert np.all(np.abs(smooth.extras["completeness_error"][:, 0]) < 0.01 * gap)
    path = explain_ig(predict, rows, baselines=x_base, scale=scale, form="path")
    assert np.abs(path.extras["completeness_error"]).max() < 1e-10
    # Two independent estimators of the same integral agree.
    assert np.abs(path.values - smooth.values).max() < 1e-2 * np.abs(smooth.values).max()


def test_forest_path_form_is_complete_where_gradients_vanish(data):
    X, y, scale = data
    model = RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0).fit(X, y)
    predict, rows, x_base = as_2d(model.predict), X[:15], X.mean(axis=0)
    gap = np.abs(model.predict(rows) - model.predict(x_base[None]))
    path = explain_ig(predict, rows, baselines=x_base, scale=scale, form="path")
    assert np.abs(path.extras["completeness_error"]).max() < 1e-9
    assert np.abs(path.values).sum() > 0.5 * gap.sum()
    # Finite differences of a piecewise-constant model are almost always 0: the
    # smooth form misses most of f(x) - f(x'), which is why "path" exists.
    # (32 nodes: the more nodes, the more of them land within h of a split)
    smooth = explain_ig(predict, rows, baselines=x_base, scale=scale, form="smooth", steps=32)
    assert np.mean(smooth.values == 0.0) > 0.9
    assert np.abs(smooth.extras["completeness_error"]).sum() > 0.5 * gap.sum()


@pytest.mark.parametrize("steps", [1, 5, 32])
def test_path_form_is_exact_ig_on_any_quadratic(steps):
    # Segment games of a quadratic have interactions of order <= 2 only, where
    # the symmetric rule is the Shapley split, which for a quadratic is the
    # gradient at the segment's midpoint times the step: exact IG.
    rng = np.random.default_rng(3)
    rows, x_base = rng.normal(size=(6, 4)), rng.normal(size=4)

    def predict(Z):
        return (Z[:, 0] * Z[:, 1] + 2 * Z[:, 1] * Z[:, 2] - Z[:, 3] ** 2 + Z[:, 0])[:, None]

    mid, step = (rows + x_base) / 2, rows - x_base  # IG_i = step_i * df/dx_i(mid)
    gradient_at_mid = np.c_[mid[:, 1] + 1, mid[:, 0] + 2 * mid[:, 2], 2 * mid[:, 1], -2 * mid[:, 3]]
    values = explain_ig(predict, rows, baselines=x_base, scale=np.ones(4), steps=steps).values
    np.testing.assert_allclose(values[:, 0], step * gradient_at_mid, rtol=1e-10, atol=1e-12)


def test_path_form_splits_a_three_way_interaction_equally():
    # f = x0 x1 x2 from 0 in one segment is a single 3-way interaction: its
    # Shapley split is f / 3 each, which the proportional residual restores.
    rows = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0]])

    def predict(Z):
        return Z.prod(axis=1, keepdims=True)

    values = explain_ig(predict, rows, baselines=np.zeros(3), scale=np.ones(3), steps=1).values
    np.testing.assert_allclose(values[:, 0], np.repeat(rows.prod(axis=1)[:, None] / 3, 3, axis=1))


def test_forest_path_form_is_complete_with_one_segment(data):
    # One segment moves every feature at once: higher-order interactions give a
    # residual, and completeness still holds.
    X, y, scale = data
    model = RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0).fit(X, y)
    result = explain_ig(as_2d(model.predict), X[:30], baselines=X[-1], scale=scale, steps=1)
    assert np.abs(result.extras["completeness_error"]).max() < 1e-9


@pytest.mark.parametrize("form", FORMS)
def test_several_baselines_average_the_single_baseline_results(mlp, form):
    predict, X, scale = mlp
    rows, baselines = X[:5], X[[10, 50, 90]]
    joint = explain_ig(predict, rows, baselines=baselines, scale=scale, form=form, steps=8)
    singles = [
        explain_ig(predict, rows, baselines=b, scale=scale, form=form, steps=8) for b in baselines
    ]
    np.testing.assert_allclose(joint.values, np.mean([s.values for s in singles], axis=0))
    np.testing.assert_allclose(joint.base_values, np.mean([s.base_values for s in singles], axis=0))
    if form == "path":
        assert np.abs(joint.extras["completeness_error"]).max() < 1e-10


@pytest.mark.parametrize("form", FORMS)
def test_result_does_not_depend_on_evaluation_block_size(mlp, form):
    predict, X, scale = mlp
    rows, baselines = X[:6], X[[10, 50]]
    big = explain_ig(predict, rows, baselines=baselines, scale=scale, form=form, steps=6)
    small = explain_ig(
        predict, rows, baselines=baselines, scale=scale, form=form, steps=6, max_eval_rows=7
    )
    # BLAS may round a row differently in a batch of another size; the smooth
    # form's difference quotients amplify that ~1e-16 by 1 / h = 1e4.
    rtol = 1e-12 if form == "path" else 1e-9
    np.testing.assert_allclose(small.values, big.values, rtol=rtol, atol=1e-14)


LEVEL_EFFECT = np.array([0.0, 2.0, -1.0, 0.5])


def mixed_model(evaluated):
    """f = level effect * (1 + x0^2) + sin(x1) + x2 with column 3 a code in 0..3."""

    def predict(X):
        evaluated.append(X[:, 3].copy())
        codes = X[:, 3].astype(int)  # fails loudly on NaN, never silently
        return (LEVEL_EFFECT[codes] * (1 + X[:, 0] ** 2) + np.sin(X[:, 1]) + X[:, 2])[:, None]

    return predict


@pytest.mark.parametrize("form", FORMS)
def test_categorical_codes_jump_and_are_never_interpolated(form):
    rng = np.random.default_rng(1)
    rows = np.c_[rng.normal(size=(10, 3)), rng.integers(0, 4, 10)]
    baselines = np.c_[rng.normal(size=(2, 3)), [0, 3]]
    categorical = np.array([False, False, False, True])
    evaluated: list[np.ndarray] = []
    result = explain_ig(
        mixed_model(evaluated),
        rows,
        baselines=baselines,
        scale=np.ones(4),
        categorical=categorical,
        form=form,
    )
    codes = np.concatenate(evaluated)
    assert np.all(np.isin(codes, [0.0, 1.0, 2.0, 3.0]))
    # The additive numeric parts sin(x1) + x2 have exact IG sin(x1) - sin(x1')
    # and x2 - x2' (the interaction of x0 with the code is split by the method).
    expected_1 = (np.sin(rows[:, None, 1]) - np.sin(baselines[None, :, 1])).mean(axis=1)
    expected_2 = (rows[:, None, 2] - baselines[None, :, 2]).mean(axis=1)
    np.testing.assert_allclose(result.values[:, 0, 1], expected_1, atol=1e-7)
    np.testing.assert_allclose(result.values[:, 0, 2], expected_2, atol=1e-7)
    completeness = np.abs(result.extras["completeness_error"]).max()
    assert completeness < (1e-10 if form == "path" else 1e-6)


def test_unchanged_feature_gets_nothing_on_a_forest(data):
    X, y, scale = data
    model = RandomForestRegressor(n_estimators=10, max_depth=5, random_state=0).fit(X, y)
    rows = X[:10].copy()
    x_base = X.mean(axis=0)
    rows[:, 2] = x_base[2]
    values = explain_ig(as_2d(model.predict), rows, baselines=x_base, scale=scale).values
    assert np.all(values[:, :, 2] == 0.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"form": "exact"}, "form must be one of"),
        ({"steps": 0}, "steps must be"),
        ({"scale": np.array([1.0, 0.0])}, "scale must be finite and > 0"),
        ({"baselines": np.zeros((1, 3))}, "baselines must have shape"),
        (
            {"baselines": np.array([[np.nan, 0.0]]), "form": "smooth"},
            r"baselines has NaN in column 0 \(row 0\); form='smooth'",
        ),
        ({"max_eval_rows": 0}, "max_eval_rows"),
    ],
)
def test_invalid_arguments_raise_value_error(kwargs, message):
    arguments = {"baselines": np.zeros((1, 2)), "scale": np.ones(2)} | kwargs
    with pytest.raises(ValueError, match=message):
        explain_ig(lambda X: X[:, :1], np.ones((3, 2)), **arguments)
