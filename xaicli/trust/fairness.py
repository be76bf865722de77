"""Group fairness of a model's decisions, as fairlearn defines the metrics.

Per group: count, selection rate ``P[h(X)=1 | A=a]``, and with a target the true-positive
rate ``P[h(X)=1 | A=a, Y=1]`` and false-positive rate ``P[h(X)=1 | A=a, Y=0]``. Overall,
between groups (fairlearn's ``method="between_groups"``):

- demographic parity difference: largest minus smallest selection rate;
- demographic parity ratio: smallest over largest selection rate; the four-fifths rule is
  broken when it is below 0.8;
- equal opportunity difference: largest minus smallest true-positive rate;
- equalized odds difference: the larger of the true-positive and the false-positive rate
  differences (fairlearn's ``agg="worst_case"``).

A group with no positive (negative) target rows gets a true-positive (false-positive) rate
of 0, as in fairlearn (whose rates come from scikit-learn's normalized confusion matrix,
which turns 0/0 into 0); that 0 counts in the differences, so such groups are reported.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from xaicli.trust.scoring import MISSING

FOUR_FIFTHS = 0.8
#: the gaps ``--fail-above`` can watch; the first is the default
GAPS = (
    "demographic_parity_difference",
    "equal_opportunity_difference",
    "equalized_odds_difference",
)
NEEDS_TARGET = ("equal_opportunity_difference", "equalized_odds_difference")


@dataclass(frozen=True)
class GroupRates:
    group: str
    count: int
    selected: int
    selection_rate: float
    impact_ratio: float  # selection rate over the largest group's (four-fifths rule per group)
    positives: int | None  # target rows that are positive; None without a target
    true_positive_rate: float | None  # None without a target; 0 with no positive rows
    false_positive_rate: float | None


@dataclass(frozen=True)
class FairnessReport:
    groups: tuple[GroupRates, ...]
    count: int
    selection_rate: float
    demographic_parity_difference: float
    demographic_parity_ratio: float
    four_fifths_rule_broken: bool
    equal_opportunity_difference: float | None
    equalized_odds_difference: float | None

    def one_sided_groups(self) -> list[str]:
        """Groups whose target rows are all positive or all negative: one of their rates is
        0 by convention, not by measurement."""
        return [
            g.group for g in self.groups if g.positives is not None and g.positives in (0, g.count)
        ]

    def overall(self) -> dict[str, float | int | bool | None]:
        return {k: v for k, v in asdict(self).items() if k != "groups"}


def fairness_report(
    group_codes: np.ndarray,
    group_labels: list[str],
    selected: np.ndarray,
    positive: np.ndarray | None = None,
) -> FairnessReport:
    """Metrics of decisions ``selected`` (n_rows,) bool for the groups ``group_codes``
    (n_rows,) int, indices into ``group_labels``; ``positive`` (n_rows,) bool is the target."""
    n_groups = len(group_labels)
    count = np.bincount(group_codes, minlength=n_groups)
    chosen = np.bincount(group_codes, weights=selected, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = chosen / count
        ratio_to_max = rate / rate.max()
        if positive is not None:
            tp = np.bincount(group_codes, weights=selected & positive, minlength=n_groups)
            fp = np.bincount(group_codes, weights=selected & ~positive, minlength=n_groups)
            n_pos = np.bincount(group_codes, weights=positive, minlength=n_groups)
            # 0/0 -> 0, as fairlearn (scikit-learn's confusion matrix) has it
            tpr = np.where(n_pos > 0, tp / n_pos, 0.0)
            fpr = np.where(count - n_pos > 0, fp / (count - n_pos), 0.0)
    order = sorted(range(n_groups), key=lambda g: _group_order(group_labels[g]))
    groups = tuple(
        GroupRates(
            group=group_labels[g],
            count=int(count[g]),
            selected=int(chosen[g]),
            selection_rate=float(rate[g]),
            impact_ratio=float(ratio_to_max[g]),
            positives=None if positive is None else int(n_pos[g]),
            true_positive_rate=None if positive is None else float(tpr[g]),
            false_positive_rate=None if positive is None else float(fpr[g]),
        )
        for g in order
        if count[g] > 0
    )
    rates = pd.Series([g.selection_rate for g in groups])
    dp_ratio = float(rates.min() / rates.max()) if rates.max() > 0 else float("nan")
    eo = eodds = None
    if positive is not None:
        tpr_gap = _spread([g.true_positive_rate for g in groups])
        fpr_gap = _spread([g.false_positive_rate for g in groups])
        eo = tpr_gap
        eodds = float(pd.Series([tpr_gap, fpr_gap]).max())  # the worst case
    return FairnessReport(
        groups=groups,
        count=int(count.sum()),
        selection_rate=float(chosen.sum() / count.sum()),
        demographic_parity_difference=_spread(list(rates)),
        demographic_parity_ratio=dp_ratio,
        four_fifths_rule_broken=bool(dp_ratio < FOUR_FIFTHS),
        equal_opportunity_difference=eo,
        equalized_odds_difference=eodds,
    )


def _spread(values: list) -> float:
    """Largest minus smallest, NaN left out (NaN if nothing is left)."""
    series = pd.Series(values, dtype=float)
    return float(series.max() - series.min())


def _group_order(label: str) -> tuple[bool, str]:
    return (label == MISSING, label)


def attribution_means(
    frame: pd.DataFrame, features: tuple[str, ...], groups: pd.Series
) -> pd.DataFrame:
    """Mean attribution of each feature per group: ``frame`` holds one wide row per input
    row (one output), ``groups`` the group label of each of its rows. Rows are groups, in
    the report's order; columns are ``features``."""
    means = frame[list(features)].groupby(groups.to_numpy(), sort=False).mean()
    return means.loc[sorted(means.index, key=_group_order)]
