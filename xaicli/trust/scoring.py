"""The model's output on rows of a table, read batch by batch: the loader, the column
encoding and the adapter of ``xai explain``, shared by the commands that score rows."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa

from xaicli.errors import DataError, UsageError
from xaicli.io.tables import TableSource
from xaicli.models.adapter import (
    ModelPredictor,
    OutputSpec,
    is_classifier,
    is_estimator_like,
    model_feature_names,
)
from xaicli.models.codec import FeatureCodec

MISSING = "(missing)"  # the label of a missing group or class value


def label_text(value: Any) -> str:
    """A value as a label: integral floats as integers (a CSV column of integers is read as
    floats, so ``1.0`` in the data is the class ``1`` of the model); missing as ``(missing)``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def class_labels(model: Any) -> tuple[str, ...]:
    """A classifier's classes as labels, or () for a regressor or a callable."""
    if not is_estimator_like(model) or not is_classifier(model):
        return ()
    return tuple(label_text(c) for c in getattr(model, "classes_", []))


def model_features(
    model: Any, source: TableSource, given: Sequence[str], leave_out: Sequence[str]
) -> tuple[str, ...]:
    """The model's input columns: ``given``, else the model's fitted names, else every column
    of the table but ``leave_out`` (group, target, id columns). Raises DataError when the
    table lacks one."""
    columns = source.schema.names
    features = tuple(given) or model_feature_names(model)
    if not features:
        features = tuple(c for c in columns if c not in set(leave_out))
    missing = [f for f in features if f not in columns]
    if missing:
        raise DataError(
            f"{source.path} lacks the model's column(s) {', '.join(missing)}; "
            f"it has {', '.join(columns)}"
        )
    if not features:
        raise DataError(f"{source.path} has no feature columns for the model")
    return features


class RowScorer:
    """``raw(batch)``: the model's output for ``kind`` (proba | decision | predict | call)
    on an Arrow batch, (n_rows, n_columns) float64; ``labels(batch)``: its predicted class
    labels. Categorical columns are encoded once per batch with one codec, as in a run."""

    def __init__(self, model: Any, kind: str, source: TableSource, features: tuple[str, ...]):
        self.model = model
        self.kind = kind
        self.features = features
        self.codec = FeatureCodec.from_schema(source.schema, features)
        self.model_columns = model_feature_names(model)

    def _predictor(self, batch: pa.RecordBatch) -> tuple[ModelPredictor, np.ndarray]:
        X = self.codec.encode(batch)
        predictor = ModelPredictor(
            self.model,
            OutputSpec(self.kind, (), ()),
            self.features,
            self.codec.categorical,
            self.codec.snapshot(),
            self.model_columns,
        )
        return predictor, X

    def raw(self, batch: pa.RecordBatch, first_row: int) -> np.ndarray:
        predictor, X = self._predictor(batch)
        with _model_errors(first_row, batch.num_rows):
            values = predictor.raw(X)
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            raise DataError(
                f"the model returned NaN or infinity on row {first_row + int(np.argmax(bad))}; "
                "fill the missing values the model cannot take"
            )
        return values

    def labels(self, batch: pa.RecordBatch, first_row: int) -> list[str]:
        predictor, X = self._predictor(batch)
        with _model_errors(first_row, batch.num_rows):
            predicted = self.model.predict(predictor.model_input(X))
        return [label_text(v) for v in np.asarray(predicted).tolist()]


@contextmanager
def _model_errors(first_row: int, n_rows: int) -> Iterator[None]:
    """A model that raises on the data is bad input (exit 2): nothing was written yet."""
    try:
        yield
    except (DataError, UsageError):
        raise
    except Exception as exc:
        text = str(exc).strip().splitlines()
        raise DataError(
            f"the model cannot take rows {first_row}-{first_row + n_rows - 1} of the data "
            f"({type(exc).__name__}: {text[0] if text else ''}); check the columns and their values"
        ) from exc
