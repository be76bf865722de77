"""Rows the model cannot take: NaN or infinite values in numeric columns, when a probe
shows the model refuses them. With ``--on-invalid skip`` they go to a rejects table."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xaicli.errors import DataError
from xaicli.methods.base import Attributions


@dataclass(frozen=True)
class InvalidPolicy:
    takes_nan: bool
    takes_inf: bool
    on_invalid: str  # error | skip
    # What cannot take the values and what else to do, when not the model itself
    refuser: str = "the model"
    advice: str = ""


def probe_non_finite(predictor, row: np.ndarray, categorical: np.ndarray) -> tuple[bool, bool]:
    """Does the model accept NaN / infinity in its numeric columns (and answer finitely)?"""
    numeric = ~categorical
    if not numeric.any():
        return True, True
    answers = []
    for value in (np.nan, np.inf):
        probe = row.copy()[None, :]
        probe[0, numeric] = value
        try:
            answers.append(bool(np.all(np.isfinite(predictor(probe)))))
        # the model refusing is the answer we are after, even by ending the process: rows
        # with such values then never reach it
        except (Exception, SystemExit):
            answers.append(False)
    return answers[0], answers[1]


def invalid_mask(
    X: np.ndarray, categorical: np.ndarray, policy: InvalidPolicy
) -> tuple[np.ndarray, list[str]]:
    """(n_rows,) True where the row cannot be explained, and the reason for each such row."""
    numeric = X[:, ~categorical]
    nan = np.isnan(numeric).any(axis=1) if not policy.takes_nan else np.zeros(len(X), bool)
    inf = np.isinf(numeric).any(axis=1) if not policy.takes_inf else np.zeros(len(X), bool)
    mask = nan | inf
    reasons = ["NaN" if n else "infinite value" for n in nan[mask]]
    return mask, reasons


def refuse(
    first_row: int, first_id: object, reason: str, names: list[str], policy: InvalidPolicy
) -> DataError:
    article = "an" if reason[0] in "aeiou" else "a"
    return DataError(
        f"row {first_row} (id {first_id}) has {article} {reason} in {', '.join(names)}, which "
        f"{policy.refuser} cannot take; {policy.advice}clean the data or pass --on-invalid skip"
    )


def non_finite_rows(result: Attributions) -> tuple[np.ndarray, list[str]]:
    """(n_rows,) True where the model's answers left NaN or infinity in a row's results
    (prediction, base value, attributions or extras), and the reason for each such row."""
    n = result.predictions.shape[0]
    parts = [result.values, result.base_values, result.predictions, *result.extras.values()]
    finite = np.ones(n, dtype=bool)
    for part in parts:
        # (n, -1) cannot reshape 0 rows: a chunk whose rows were all rejected has none
        finite &= np.isfinite(np.asarray(part).reshape(n, -1 if n else 0)).all(axis=1)
    bad = ~finite
    reasons = []
    for i in np.flatnonzero(bad):
        prediction, base = result.predictions[i], result.base_values[i]
        if np.isnan(prediction).any():
            reasons.append("model returned NaN")
        elif np.isinf(prediction).any():
            reasons.append("model returned an infinite value")
        elif not np.isfinite(base).all():
            reasons.append("model returned NaN or infinity on the reference rows")
        else:
            reasons.append("model returned NaN or infinity on the row's perturbations")
    return bad, reasons
