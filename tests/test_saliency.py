"""Saliency against closed-form derivatives."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from xaicli.methods.saliency import explain_saliency


def test_linear_model_gives_absolute_weight_times_scale():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)) * np.array([1.0, 5.0, 0.1, 2.0, 1.0])
    targets = np.c_[X @ np.array([1.0, -2.0, 30.0, 0.0, 0.5]), X[:, 0] - X[:, 3]]
    model = LinearRegression().fit(X, targets)
    scale = X.std(axis=0)
    result = explain_saliency(model.predict, X[:10], scale=scale)
    expected = np.abs(model.coef_) * scale  # (n_outputs, M), the same for every row
    np.testing.assert_allclose(
        result.values, np.broadcast_to(expected, (10, 2, 5)), rtol=1e-6, atol=1e-9
    )
    np.testing.assert_allclose(result.predictions, model.predict(X[:10]))
    assert np.all(result.base_values == 0.0)


def test_quadratic_gives_twice_coefficient_times_x_times_scale():
    rng = np.random.default_rng(1)
    coef = np.array([0.5, -3.0, 2.0, 1.0])
    X = rng.normal(size=(25, 4)) * 3
    scale = np.array([1.0, 0.5, 2.0, 10.0])

    def predict(Z):
        return (Z**2 @ coef)[:, None]

    values = explain_saliency(predict, X, scale=scale).values[:, 0]
    np.testing.assert_allclose(values, np.abs(2 * coef * X) * scale, rtol=1e-5, atol=1e-9)


def test_categorical_features_get_zero_and_keep_their_codes():
    seen: list[np.ndarray] = []
    effect = np.array([1.0, -4.0, 2.5])

    def predict(Z):
        seen.append(Z[:, 1].copy())
        return (np.sin(Z[:, 0]) + effect[Z[:, 1].astype(int)] * Z[:, 2])[:, None]

    X = np.array([[0.3, 0.0, 1.0], [-1.0, 2.0, 2.0], [2.0, 1.0, -0.5]])
    result = explain_saliency(
        predict, X, scale=np.ones(3), categorical=np.array([False, True, False])
    )
    assert np.all(result.values[:, 0, 1] == 0.0)
    assert np.all(np.isin(np.concatenate(seen), [0.0, 1.0, 2.0]))
    np.testing.assert_allclose(result.values[:, 0, 0], np.abs(np.cos(X[:, 0])), rtol=1e-6)
    np.testing.assert_allclose(result.values[:, 0, 2], np.abs(effect[[0, 2, 1]]), rtol=1e-6)


def test_result_does_not_depend_on_evaluation_block_size():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 4))

    def predict(Z):
        return np.c_[np.tanh(Z @ np.array([1.0, -1.0, 0.5, 2.0])), Z[:, 0] * Z[:, 1]]

    big = explain_saliency(predict, X, scale=np.ones(4))
    small = explain_saliency(predict, X, scale=np.ones(4), max_eval_rows=5)
    np.testing.assert_allclose(small.values, big.values, rtol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eps": 0.0}, "eps must be"),
        ({"scale": np.array([1.0, -1.0])}, "scale must be finite and > 0"),
        ({"scale": np.ones(3)}, "scale must have shape"),
        ({"categorical": np.array([0, 1])}, "categorical must be a bool array"),
    ],
)
def test_invalid_arguments_raise_value_error(kwargs, message):
    arguments = {"scale": np.ones(2)} | kwargs
    with pytest.raises(ValueError, match=message):
        explain_saliency(lambda X: X[:, :1], np.ones((3, 2)), **arguments)


def test_predict_with_wrong_output_shape_is_rejected():
    with pytest.raises(ValueError, match=r"predict must return shape \(n_rows, n_outputs\)"):
        explain_saliency(lambda X: X.sum(axis=1), np.ones((3, 2)), scale=np.ones(2))
