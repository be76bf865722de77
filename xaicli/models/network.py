"""Read a multilayer perceptron's layers, so SHAP can evaluate hybrid rows from them.

Recognised: scikit-learn's ``MLPRegressor`` (explaining ``predict``) and ``MLPClassifier``
(``predict_proba``), bare or as the last step of a Pipeline whose earlier steps act column
by column (scaling, imputation, one-hot encoding...). Their first layer is then a sum of
per-input-column terms, which ``xaicli.methods.shap_network`` exploits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from xaicli.methods.shap_network import (
    HIDDEN_ACTIVATIONS,
    OUTPUT_ACTIVATIONS,
    DenseLayers,
    NetworkBackground,
)
from xaicli.models.adapter import ModelPredictor
from xaicli.models.structure import final_estimator, is_pipeline, per_column_steps

EXPLAINED_OUTPUT = {"MLPRegressor": "predict", "MLPClassifier": "proba"}


@dataclass(frozen=True)
class NetworkParts:
    """coefs[l] (H_l, H_{l+1}) and intercepts[l] (H_{l+1},) of every layer, the activation
    names, whether the output is one probability p read as (1 - p, p), and the fitted
    steps before the network (None for a bare network)."""

    coefs: tuple[np.ndarray, ...]
    intercepts: tuple[np.ndarray, ...]
    activation: str
    out_activation: str
    two_class: bool
    preprocess: Any


def network_parts(model: Any, output_kind: str) -> NetworkParts | None:
    """The layers of a recognised perceptron explained on its usual output, else None."""
    last = final_estimator(model)
    if EXPLAINED_OUTPUT.get(type(last).__name__) != output_kind:
        return None
    if is_pipeline(model) and not per_column_steps(model):
        return None
    coefs = getattr(last, "coefs_", None)
    intercepts = getattr(last, "intercepts_", None)
    if not coefs or not intercepts or len(coefs) < 2:
        return None
    if any(np.asarray(c).dtype != np.float64 for c in (*coefs, *intercepts)):
        return None  # a float32 network: its own rounding is not ours to reproduce
    return NetworkParts(
        coefs=tuple(np.asarray(c) for c in coefs),
        intercepts=tuple(np.asarray(b) for b in intercepts),
        activation=str(last.activation),
        out_activation=str(last.out_activation_),
        two_class=output_kind == "proba" and coefs[-1].shape[1] == 1,
        preprocess=model[:-1] if is_pipeline(model) else None,
    )


def network_background(
    model: Any,
    output_kind: str,
    predictor: ModelPredictor,
    background: np.ndarray,
    columns: tuple[int, ...],
) -> NetworkBackground | None:
    """For a recognised perceptron, its later layers and its first layer measured on the
    background rows (encoded, B x M), explaining the output ``columns``; None for any other
    model. What every chunk shares: built once per run."""
    parts = network_parts(model, output_kind)
    if (
        parts is None
        or parts.activation not in HIDDEN_ACTIVATIONS
        or parts.out_activation not in OUTPUT_ACTIVATIONS
    ):
        return None
    first = FirstLayer(parts, predictor, background[0])
    layers = DenseLayers(
        weights=parts.coefs[1:],
        biases=parts.intercepts[1:],
        hidden_activation=parts.activation,
        output_activation=parts.out_activation,
        two_class=parts.two_class,
        columns=columns,
    )
    return NetworkBackground.measure(layers, first.pre, first.terms, background)


class FirstLayer:
    """The first layer's pre-activations for rows of explained features (encoded as the
    numeric core sees them), through the model's input adapter and preprocessing."""

    def __init__(self, parts: NetworkParts, predictor: ModelPredictor, reference: np.ndarray):
        self.weights, self.bias = parts.coefs[0], parts.intercepts[0]
        self.preprocess = parts.preprocess
        self.predictor = predictor
        self.direct_weights = None
        if self.preprocess is None and not any(predictor.categorical):
            # the network reads the explained columns, maybe reordered: fold the order in
            features = predictor.feature_names
            columns = predictor.model_columns or features
            self.direct_weights = np.zeros((len(features), self.weights.shape[1]))
            for k, name in enumerate(columns):
                self.direct_weights[features.index(name)] = self.weights[k]
        self.reference = np.asarray(reference, dtype=np.float64)
        self.reference_pre = self.pre(self.reference[None, :])[0]

    def pre(self, rows: np.ndarray) -> np.ndarray:
        """(n, H) pre-activations of the first hidden layer."""
        if self.direct_weights is not None:
            return rows @ self.direct_weights + self.bias
        data = self.predictor.model_input(rows)
        if self.preprocess is not None:
            data = self.preprocess.transform(data)
        if hasattr(data, "toarray"):
            data = data.toarray()
        return np.asarray(data, dtype=np.float64) @ self.weights + self.bias

    def terms(self, rows: np.ndarray) -> np.ndarray:
        """(n, M, H): the first layer's term of each column of each row, measured from a
        reference row by changing that one column (exact: the layer is additive in columns)."""
        n, m = rows.shape
        if self.direct_weights is not None:
            return rows[:, :, None] * self.direct_weights[None, :, :]
        variants = np.broadcast_to(self.reference, (n, m, m)).copy()
        variants[:, np.arange(m), np.arange(m)] = rows
        pre = self.pre(variants.reshape(n * m, m)) - self.reference_pre
        return pre.reshape(n, m, -1)
