"""Standard errors of sampled attributions, and the target error that sets a row's budget.

A sampled SHAP value is a mean of independent draws (permutation SHAP: antithetic pairs of
orderings, drawn for each background row). Its standard error comes from the spread of
those draws *within* each background row's game: the spread between background rows'
games is no sampling error (their Shapley values really differ) and would overstate it.

With a target error, each row is sampled in rounds from its own random stream until every
attribution's standard error is at most the target, or the budget is spent.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from xaicli.methods.base import FloatArray

#: The default target of permutation SHAP when neither --n-samples nor --target-error is
#: given: ``auto``, this share of the output's mean |f(z) - base value| over the
#: background rows (README, Performance: measured on the benchmark's 30-feature cases).
DEFAULT_TARGET_ERROR = "auto"
AUTO_TARGET_SHARE = 0.02
#: Antithetic pairs of orderings needed for a spread, hence a standard error.
MIN_PAIRS = 2
#: Antithetic pairs of orderings in a row's first round (at most the budget's): with 2,
#: the MLP's mean error is shap's at its default budget, with 3 it is 20% below and the
#: boosted classifier's half; 4 costs 15-25% more for little (target-error-study.md).
FIRST_ROUND_PAIRS = 3
#: A round asks for this many times the pairs its predecessor's errors call for: the
#: errors are estimates, and an extra round costs more than a few pairs.
ROUND_MARGIN = 1.2
#: A round at most multiplies the pairs drawn so far by this: a noisy first estimate
#: cannot send a row to its whole budget at once.
MAX_ROUND_GROWTH = 4

_TARGET = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(%?)\s*$")


@dataclass(frozen=True)
class TargetError:
    """An accepted standard error: absolute (in the explained output's units), a fraction
    of each row's |prediction - base value| (``relative``), or a fraction of the output's
    mean |f(z) - base value| over the background rows (``of_background``: ``auto``, one
    absolute error for every row, on the scale of what the model's outputs vary by)."""

    value: float
    relative: bool
    of_background: bool = False

    def thresholds(
        self, predictions: FloatArray, base_values: FloatArray, f_background: FloatArray
    ) -> FloatArray:
        """(n_rows, n_outputs) the largest standard error accepted for each row and output.
        f_background: (B, n_outputs) the outputs on the background rows."""
        if self.relative:
            return self.value * np.abs(predictions - base_values)
        if self.of_background:
            spread = np.abs(f_background - f_background.mean(axis=0)).mean(axis=0)
            return np.broadcast_to(self.value * spread, predictions.shape).copy()
        return np.full(predictions.shape, self.value)


def parse_target_error(text: str) -> TargetError:
    """``0.01`` (absolute), ``5%`` (relative) or ``auto``; ValueError for anything else."""
    if str(text).strip().lower() == "auto":
        return TargetError(AUTO_TARGET_SHARE, relative=False, of_background=True)
    match = _TARGET.match(str(text))
    if not match:
        raise ValueError(f"not a positive number or percentage: {text!r}")
    value = float(match.group(1))
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"not a positive number or percentage: {text!r}")
    if match.group(2):
        return TargetError(value / 100.0, relative=True)
    return TargetError(value, relative=False)


def effective_target(n_samples: int | None, target_error: str | None) -> TargetError | None:
    """The target a run samples to: the one given; the default when no budget is given
    either; none (a fixed budget) when only --n-samples is given."""
    if target_error is not None:
        return parse_target_error(target_error)
    if n_samples is None:
        return parse_target_error(DEFAULT_TARGET_ERROR)
    return None


def pooled_standard_error(sum_sq_dev: FloatArray, n_draws: int) -> FloatArray:
    """Standard error of the mean over background rows of per-background means.

    sum_sq_dev: (..., B) each background row's sum of squared deviations of its draws
    from their mean; n_draws: the draws per background row (at least 2). The B means are
    independent, so the variance of their mean is sum_b var_b / (n_draws B^2)."""
    n_background = sum_sq_dev.shape[-1]
    variance = sum_sq_dev.sum(axis=-1) / (n_draws - 1) / n_draws / n_background**2
    return np.sqrt(np.maximum(variance, 0.0))


def next_round(drawn: np.ndarray, worst_ratio: FloatArray, budget: int) -> np.ndarray:
    """Draws each row takes next (0: done). drawn (n,): draws so far; worst_ratio (n,):
    the largest standard error over the row's attributions divided by its target (<= 1:
    converged; inf when the target is 0); budget: most draws a row may take."""
    # the standard error falls as 1/sqrt(draws): the draws that bring the worst to target
    with np.errstate(over="ignore", invalid="ignore"):
        wanted = np.ceil(drawn * np.square(worst_ratio) * ROUND_MARGIN)
    wanted = np.where(np.isfinite(wanted), wanted, budget)
    wanted = np.minimum(np.minimum(wanted, MAX_ROUND_GROWTH * drawn), budget)
    more = np.maximum(wanted - drawn, 1).astype(np.int64)
    more = np.minimum(more, budget - drawn)
    return np.where(worst_ratio <= 1.0, 0, np.maximum(more, 0))
