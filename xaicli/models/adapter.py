"""Adapt a loaded model to the numeric core: ``predict(X_encoded) -> (n_rows, n_outputs)``.

Decides what is explained (``predict_proba`` for classifiers, else ``decision_function``,
``predict`` for regressors, or the call itself for a plain callable), which output columns
(classes), and how the model wants its input (a DataFrame with the fitted column names,
or a numpy array).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from xaicli.errors import DataError, ModelLoadError, UsageError
from xaicli.models.boosters import (
    booster_predict,
    has_margin,
    is_bare_booster,
    margin,
    training_categories,
)
from xaicli.models.codec import decode_frame, with_categories
from xaicli.models.native_files import booster_names

PREDICTION = "prediction"


@dataclass(frozen=True)
class OutputSpec:
    """What is explained: ``kind`` in proba|decision|predict|call, the selected columns of
    the model's output and their names in the output table."""

    kind: str
    columns: tuple[int, ...]
    names: tuple[str, ...]


def is_estimator_like(model: Any) -> bool:
    return any(hasattr(model, m) for m in ("predict", "predict_proba", "decision_function"))


def is_classifier(model: Any) -> bool:
    if getattr(model, "_estimator_type", None) == "classifier":
        return True
    try:
        from sklearn.base import is_classifier as sk_is_classifier

        if sk_is_classifier(model):
            return True
    except Exception:  # not a scikit-learn object
        pass
    return hasattr(model, "classes_") and hasattr(model, "predict_proba")


def model_feature_names(model: Any) -> tuple[str, ...] | None:
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        found = booster_names(model)  # boosters and CatBoost keep names their own way
        return found[0] if found is not None else None
    return tuple(str(n) for n in names)


def model_n_features(model: Any) -> int | None:
    """The number of input columns the model states, if it states one."""
    found = booster_names(model)  # an unpickled CatBoost model says n_features_in_ = 0
    return found[1] if found is not None else getattr(model, "n_features_in_", None)


def resolve_output(model: Any, requested: str, classes: tuple[str, ...]) -> OutputSpec:
    """Choose the explained output and classes; raise UsageError for impossible requests."""
    if not is_estimator_like(model):
        if not callable(model):
            raise ModelLoadError(
                f"the model is a {type(model).__name__}, which has no predict, predict_proba "
                "or decision_function and is not callable"
            )
        if requested not in ("auto", "predict"):
            raise UsageError(
                f"--output {requested} needs an estimator; a plain callable is explained as is"
            )
        return OutputSpec("call", (), ())  # columns resolved after the first call
    kind = requested
    if kind == "auto":
        if is_classifier(model) and hasattr(model, "predict_proba"):
            kind = "proba"
        elif is_classifier(model) and hasattr(model, "decision_function"):
            kind = "decision"
        else:
            kind = "predict"
    method = {"proba": "predict_proba", "decision": "decision_function", "predict": "predict"}[kind]
    if kind == "decision" and has_margin(model):
        if not is_classifier(model):
            if classes:
                raise UsageError("--class applies to classifiers only")
            return OutputSpec(kind, (), ())  # the raw score's columns, named after the first call
    elif not hasattr(model, method):
        raise ModelLoadError(
            f"--output {kind} needs the model's {method}, which {type(model).__name__} lacks"
        )
    if kind == "predict":
        if is_classifier(model):
            raise UsageError(
                "--output predict on a classifier explains class labels, which are not numbers; "
                "use --output proba or --output decision"
            )
        if classes:
            raise UsageError("--class applies to classifiers only")
        return OutputSpec(kind, (), ())  # columns named after the first call
    labels = [str(c) for c in getattr(model, "classes_", [])]
    if not labels:
        raise ModelLoadError(f"--output {kind} needs a classifier with classes_")
    binary_margin = kind == "decision" and len(labels) == 2
    if classes:
        unknown = [c for c in classes if c not in labels]
        if unknown:
            raise UsageError(
                f"unknown class {unknown[0]!r}: the model's classes are {', '.join(labels)}"
            )
        chosen = [labels.index(c) for c in classes]
    else:
        chosen = [1] if len(labels) == 2 else list(range(len(labels)))
    if binary_margin:
        if chosen != [1]:
            raise UsageError(
                f"a binary decision_function is the margin of class {labels[1]!r} only; "
                "use --output proba to explain the other class"
            )
        return OutputSpec(kind, (0,), (labels[1],))
    return OutputSpec(kind, tuple(chosen), tuple(labels[i] for i in chosen))


@dataclass
class ModelPredictor:
    """``predict(X_encoded)`` for the numeric core. Holds the model; build it in each worker."""

    model: Any
    output: OutputSpec
    feature_names: tuple[str, ...]
    categorical: tuple[bool, ...]
    categories: tuple[tuple[Any, ...], ...]
    model_columns: tuple[str, ...] | None  # fitted column order, or None: pass a numpy array

    def __post_init__(self) -> None:
        # pandas category columns the model was fitted on: it wants them back as such
        self._training_categories = training_categories(self.model)

    def model_input(self, X: np.ndarray) -> Any:
        if self.model_columns is None and not any(self.categorical):
            return X
        frame = decode_frame(X, self.feature_names, self.categorical, self.categories)
        if self._training_categories:
            frame = with_categories(frame, self._training_categories)
        if self.model_columns is not None:
            if self.model_columns == self.feature_names:
                return frame
            return frame[list(self.model_columns)]
        if any(self.categorical):
            return frame.to_numpy(dtype=object)
        return X

    def raw(self, X: np.ndarray) -> np.ndarray:
        """The model's raw output for the explained kind, as (n_rows, n_columns) float64."""
        data = self.model_input(X)
        kind = self.output.kind
        if kind == "call":
            result = self.model(data)
        elif kind == "decision" and has_margin(self.model):
            result = margin(self.model, data)
        elif is_bare_booster(self.model):
            result = booster_predict(self.model, data)
        else:
            method = {
                "proba": "predict_proba",
                "decision": "decision_function",
                "predict": "predict",
            }[kind]
            result = getattr(self.model, method)(data)
        result = np.asarray(result, dtype=np.float64)
        if result.ndim == 1:
            result = result[:, None]
        if result.ndim != 2 or result.shape[0] != X.shape[0]:
            raise DataError(
                f"the model returned an array of shape {result.shape} for {X.shape[0]} rows; "
                "expected one value or one row of values per input row"
            )
        return result

    def __call__(self, X: np.ndarray) -> np.ndarray:
        result = self.raw(X)
        if self.output.columns:
            return result[:, list(self.output.columns)]
        return result


def columns_output_spec(kind: str, n_columns: int, classes: tuple[str, ...]) -> OutputSpec:
    """Name the columns of a callable's or a regressor's output: ``prediction``, or
    ``output_k`` for each column of a multi-output model."""
    names = [PREDICTION] if n_columns == 1 else [f"output_{k}" for k in range(n_columns)]
    if classes:
        unknown = [c for c in classes if c not in names]
        if unknown:
            raise UsageError(
                f"unknown output {unknown[0]!r}: the callable's outputs are {', '.join(names)}"
            )
        chosen = [names.index(c) for c in classes]
    else:
        chosen = list(range(n_columns))
    return OutputSpec(kind, tuple(chosen), tuple(names[i] for i in chosen))
