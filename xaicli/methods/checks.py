"""Input checks, checked model evaluation and the feature spread shared by the
gradient-style methods."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from xaicli.methods.base import BoolArray, FloatArray, PredictFn, evaluate_in_blocks


def check_feature_arrays(
    X: FloatArray, scale: FloatArray, categorical: BoolArray | None
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Validate and normalise ``X`` (n_rows, M), ``scale`` (M,), ``categorical`` (M,).

    ``X`` may hold NaN or infinity (a model that imputes takes them); each
    method decides what such an entry means.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_rows, n_features); got shape {X.shape}.")
    n_features = X.shape[1]
    scale = np.asarray(scale, dtype=np.float64)
    if scale.shape != (n_features,):
        raise ValueError(f"scale must have shape ({n_features},); got {scale.shape}.")
    if not np.all(np.isfinite(scale) & (scale > 0)):
        raise ValueError(
            "scale must be finite and > 0 for every feature (replace a zero spread "
            f"by 1); got {scale.tolist()}."
        )
    if categorical is None:
        categorical = np.zeros(n_features, dtype=bool)
    categorical = np.asarray(categorical)
    if categorical.shape != (n_features,) or categorical.dtype != np.bool_:
        raise ValueError(
            f"categorical must be a bool array of shape ({n_features},); "
            f"got dtype {categorical.dtype}, shape {categorical.shape}."
        )
    return X, scale, categorical


def check_numeric_finite(
    A: FloatArray,
    categorical: BoolArray,
    name: str,
    *,
    names: Sequence[str] | None = None,
    advice: str,
) -> None:
    """Raise ValueError naming the first numeric (non-categorical) column of ``A``
    holding NaN or infinity, by its name in ``names`` when given; ``advice`` says
    what to do."""
    bad = ~np.isfinite(A[:, ~categorical])
    if bad.any():
        row, col = np.argwhere(bad)[0]
        feature = int(np.flatnonzero(~categorical)[col])
        column = repr(names[feature]) if names is not None else str(feature)
        value = "NaN" if np.isnan(A[row, feature]) else "an infinite value"
        raise ValueError(f"{name} has {value} in column {column} (row {row}); {advice}.")


def evaluate_checked(predict: PredictFn, X: FloatArray, *, max_rows: int) -> FloatArray:
    """``evaluate_in_blocks``, raising ValueError unless the result is (n_rows, n_outputs)."""
    out = evaluate_in_blocks(predict, X, max_rows=max_rows)
    if out.ndim != 2 or out.shape[0] != X.shape[0]:
        raise ValueError(
            f"predict must return shape (n_rows, n_outputs) with n_rows={X.shape[0]}; "
            f"got {out.shape}."
        )
    return out


def check_max_eval_rows(max_eval_rows: int) -> None:
    """Raise ValueError unless ``max_eval_rows`` is an int >= 1."""
    if isinstance(max_eval_rows, bool) or not isinstance(max_eval_rows, int | np.integer):
        raise ValueError(f"max_eval_rows must be an int >= 1; got {max_eval_rows!r}.")
    if max_eval_rows < 1:
        raise ValueError(f"max_eval_rows must be an int >= 1; got {max_eval_rows}.")


def finite_or_nan(A: FloatArray) -> FloatArray:
    """``A`` with its NaN and infinite values as NaN, for nan-statistics."""
    return np.where(np.isfinite(A), A, np.nan)


def feature_spread(background: FloatArray, categorical: BoolArray) -> FloatArray:
    """(n_features,) each feature's standard deviation over the background's finite
    values (1 where it is 0, undefined or categorical)."""
    with warnings.catch_warnings():  # a column without numbers: NaN, replaced by 1 below
        warnings.simplefilter("ignore", RuntimeWarning)
        scale = (
            np.nanstd(finite_or_nan(background), axis=0)
            if background.shape[0] > 1
            else np.ones(background.shape[1])
        )
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    scale[categorical] = 1.0
    return scale
