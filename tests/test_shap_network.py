"""SHAP on perceptrons through their layers: checked against the model's own predict on
the same hybrid rows, against brute-force enumeration, and against the generic path."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import exact_interventional_shap, run_cli
from sklearn.compose import ColumnTransformer
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from xaicli.methods.shap_exact import explain_exact
from xaicli.methods.shap_kernel import explain_kernel
from xaicli.methods.shap_network import DenseLayers, NetworkHybrids, subset_groups
from xaicli.methods.shap_permutation import explain_permutation
from xaicli.models.adapter import ModelPredictor, OutputSpec
from xaicli.models.codec import FeatureCodec
from xaicli.models.network import FirstLayer, network_parts

RNG = np.random.default_rng(0)


def _fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings: any fitted network will do
        return model.fit(X, y)


def _numeric_case(kind: str, n_features: int = 7):
    X = RNG.normal(size=(300, n_features))
    y = X[:, 0] * X[:, 1] + np.sin(X[:, 2]) + X[:, 3]
    if kind == "regressor relu":
        model = _fit(MLPRegressor(hidden_layer_sizes=(16,), max_iter=200, random_state=0), X, y)
    elif kind == "regressor tanh two layers, two outputs":
        Y = np.column_stack([y, X[:, 4] - X[:, 5] ** 2])
        model = MLPRegressor(hidden_layer_sizes=(12, 8), activation="tanh", max_iter=200)
        model = _fit(model, X, Y)
    elif kind == "binary logistic":
        model = MLPClassifier(hidden_layer_sizes=(10,), activation="logistic", max_iter=200)
        model = _fit(model, X, y > np.median(y))
    elif kind == "three classes":
        model = MLPClassifier(hidden_layer_sizes=(9, 5), max_iter=200, random_state=0)
        model = _fit(model, X, np.digitize(y, np.quantile(y, [0.33, 0.66])))
    else:
        raise ValueError(kind)
    output = "proba" if "regressor" not in kind else "predict"
    return model, X, output


def _predictor(model, output, features, categorical=None, categories=None, columns=None):
    n = len(features)
    raw_columns = getattr(model, "classes_", None)
    selected = tuple(range(len(raw_columns))) if raw_columns is not None else ()
    return ModelPredictor(
        model,
        OutputSpec(output, selected, tuple(str(c) for c in selected)),
        tuple(features),
        tuple(categorical or (False,) * n),
        tuple(categories or ((),) * n),
        columns,
    )


def _hybrids(model, predictor, background):
    parts = network_parts(model, predictor.output.kind)
    assert parts is not None
    first = FirstLayer(parts, predictor, background[0])
    layers = DenseLayers(
        parts.coefs[1:],
        parts.intercepts[1:],
        parts.activation,
        parts.out_activation,
        parts.two_class,
        predictor.output.columns,
    )
    return NetworkHybrids(layers, first.pre, first.terms, background)


def _model_on_hybrids(predictor, x, background, masks):
    """The reference: the model's own predict on the hybrid rows, built explicitly."""
    g, c, b = x.shape[0], masks.shape[1], background.shape[0]
    masks = np.broadcast_to(masks, (g, c, b, x.shape[1]))
    rows = np.where(masks, x[:, None, None, :], background[None, None, :, :])  # (g, C, B, M)
    out = predictor(rows.reshape(-1, x.shape[1]))
    return out.reshape(g, c, b, -1).transpose(0, 2, 1, 3)


@pytest.mark.parametrize(
    "kind",
    [
        "regressor relu",
        "regressor tanh two layers, two outputs",
        "binary logistic",
        "three classes",
    ],
)
def test_network_outputs_equal_the_models_predict_on_hybrid_rows(kind):
    model, X, output = _numeric_case(kind)
    predictor = _predictor(model, output, [f"f{j}" for j in range(X.shape[1])])
    background = X[:9]
    x = X[100:104]
    masks = RNG.random((4, 37, 9, X.shape[1])) < 0.5  # a coalition per (row, slot, background)
    got = _hybrids(model, predictor, background)(x, masks)
    expected = _model_on_hybrids(predictor, x, background, masks)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_network_in_a_pipeline_with_categorical_and_reordered_columns(penguin_frame):
    """One-hot encoding and scaling before the network: the first layer is still a sum of
    per-column terms, read off through the pipeline itself."""
    frame = penguin_frame.dropna().reset_index(drop=True)
    target = frame.pop("species")
    numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    categorical = ["island", "sex"]
    prep = ColumnTransformer(
        [("num", StandardScaler(), numeric), ("cat", OneHotEncoder(), categorical)]
    )
    model = make_pipeline(prep, MLPClassifier(hidden_layer_sizes=(8,), max_iter=300))
    columns = categorical + numeric  # the model was fitted on another column order
    model = _fit(model, frame[columns], target)
    features = numeric + categorical
    import pyarrow as pa

    table = pa.Table.from_pandas(frame[features], preserve_index=False)
    codec = FeatureCodec.from_schema(table.schema, tuple(features))
    encoded = codec.encode(table)
    predictor = _predictor(
        model, "proba", features, codec.categorical, codec.snapshot(), tuple(columns)
    )
    background = encoded[:12]
    x = encoded[40:43]
    masks = RNG.random((3, 20, 12, len(features))) < 0.5
    got = _hybrids(model, predictor, background)(x, masks)
    np.testing.assert_allclose(
        got, _model_on_hybrids(predictor, x, background, masks), rtol=1e-12, atol=1e-12
    )


def test_exact_through_the_layers_matches_brute_force_enumeration():
    model, X, output = _numeric_case("three classes", n_features=6)
    predictor = _predictor(model, output, [f"f{j}" for j in range(6)])
    background = X[:15]
    x = X[200:203]
    result = explain_exact(
        predictor,
        x,
        background=background,
        row_index=np.arange(3),
        hybrids=_hybrids(model, predictor, background),
    )
    for r in range(3):
        expected = exact_interventional_shap(model.predict_proba, x[r], background)
        np.testing.assert_allclose(result.values[r], expected, atol=1e-12)


@pytest.mark.parametrize("explain", [explain_kernel, explain_permutation])
def test_sampling_through_the_layers_equals_the_generic_path(explain):
    """Same coalitions, same model outputs up to rounding: the same values."""
    model, X, output = _numeric_case("regressor tanh two layers, two outputs", n_features=20)
    predictor = _predictor(model, output, [f"f{j}" for j in range(20)])
    background = X[:10]
    x, rows = X[150:155], np.arange(150, 155)
    kwargs = dict(background=background, row_index=rows, seed=3, n_samples=300)
    generic = explain(predictor, x, **kwargs)
    layered = explain(predictor, x, hybrids=_hybrids(model, predictor, background), **kwargs)
    np.testing.assert_allclose(layered.values, generic.values, rtol=1e-9, atol=1e-11)


def test_subset_groups_tabulate_whole_groups_for_enumeration():
    starts, sizes, offsets = subset_groups(10, 2**10)
    assert sizes.tolist() == [10] and offsets.tolist() == [0, 1024]
    starts, sizes, offsets = subset_groups(30, 2108)
    assert sizes.sum() == 30 and sizes.max() <= 12 and starts[-1] + sizes[-1] == 30


def test_unsupported_networks_are_left_to_the_generic_path():
    X = RNG.normal(size=(100, 3)).astype(np.float32)
    model = _fit(MLPRegressor(hidden_layer_sizes=(4,), max_iter=50), X, X[:, 0])
    assert network_parts(model, "predict") is None  # float32 weights
    model = _fit(MLPClassifier(hidden_layer_sizes=(4,), max_iter=50), X.astype(float), X[:, 0] > 0)
    assert network_parts(model, "proba") is not None
    assert network_parts(make_pipeline(model), "decision") is None


def test_cli_exact_on_a_network_matches_enumeration(tmp_path, monkeypatch):
    calls = []
    through_layers = NetworkHybrids.__call__
    monkeypatch.setattr(
        NetworkHybrids, "__call__", lambda self, *a: calls.append(1) or through_layers(self, *a)
    )
    X = RNG.normal(size=(200, 5))
    model = _fit(
        MLPRegressor(hidden_layer_sizes=(8,), max_iter=200, random_state=0),
        pd.DataFrame(X, columns=list("abcde")),
        X[:, 0] * X[:, 1] + X[:, 2],
    )
    import joblib

    joblib.dump(model, tmp_path / "m.joblib")
    data = pd.DataFrame(X[:6], columns=list("abcde"))[list("edcba")]  # another order
    data.to_parquet(tmp_path / "d.parquet")
    background = pd.DataFrame(X[100:110], columns=list("abcde"))
    background.to_parquet(tmp_path / "bg.parquet")
    result = run_cli(
        "explain",
        "--model", tmp_path / "m.joblib",
        "--data", tmp_path / "d.parquet",
        "--background", tmp_path / "bg.parquet",
        "--method", "shap",
        "--algorithm", "exact",
        "--n-jobs", "1",
        "--out", tmp_path / "out.parquet",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert calls, "the run did not go through the network's layers"
    out = pd.read_parquet(tmp_path / "out.parquet")

    def f(rows):
        return model.predict(pd.DataFrame(rows, columns=list("abcde")))

    for r in range(6):
        expected = exact_interventional_shap(f, X[r], X[100:110])[0]
        got = out.loc[r, list("abcde")].to_numpy(dtype=float)
        np.testing.assert_allclose(got, expected, atol=1e-10)
