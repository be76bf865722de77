"""Drift of global importance between two runs (``xai compare BEFORE AFTER``).

Per explained output: NDCG of AFTER's ranking of the features against BEFORE's importance
(as SageMaker Clarify scores attribution drift, alerting below 0.9 by default there),
Spearman correlation of the two rankings, each feature's change of share of the total
importance, and the features entering or leaving the top K. Both tables are read once,
in batches (:func:`xaicli.report.importance.global_importance`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from xaicli.errors import DataError
from xaicli.io.attributions import AttributionSource
from xaicli.report.importance import global_importance
from xaicli.trust.ranking import ndcg, spearman

__all__ = ["FEATURE_COLUMNS", "Comparison", "OutputDrift", "compare_runs"]

#: Columns of the per-feature table, in order (see the README's *xai compare*).
FEATURE_COLUMNS = (
    "output",
    "feature",
    "before_mean_abs",
    "after_mean_abs",
    "before_share",
    "after_share",
    "share_change",
    "before_rank",
    "after_rank",
)


@dataclass(frozen=True)
class OutputDrift:
    """The drift of one explained output.

    features: FEATURE_COLUMNS without ``output``, ordered by |share_change|, largest first.
    entering / leaving: features in AFTER's top K but not BEFORE's, and the reverse.
    """

    output: str
    ndcg: float
    spearman: float
    max_share_change: float
    entering: tuple[str, ...]
    leaving: tuple[str, ...]
    features: pd.DataFrame


@dataclass(frozen=True)
class Comparison:
    before: str
    after: str
    top_k: int
    outputs: tuple[OutputDrift, ...]

    def feature_table(self) -> pd.DataFrame:
        """Every output's features (FEATURE_COLUMNS), then the output's ndcg and spearman."""
        parts = []
        for drift in self.outputs:
            part = drift.features.copy()
            part.insert(0, "output", drift.output)
            part["ndcg"] = drift.ndcg
            part["spearman"] = drift.spearman
            parts.append(part)
        return pd.concat(parts, ignore_index=True)

    def crossed(self, min_ndcg: float | None, max_share_change: float | None) -> list[str]:
        """What passed a threshold, one phrase per output and threshold (empty: no drift)."""
        found = []
        for drift in self.outputs:
            if min_ndcg is not None and drift.ndcg < min_ndcg:
                found.append(f"output {drift.output!r}: NDCG {drift.ndcg:.4f} < {min_ndcg:g}")
            if max_share_change is not None and drift.max_share_change > max_share_change:
                feature = drift.features.iloc[0]
                found.append(
                    f"output {drift.output!r}: feature {feature['feature']!r} share changed "
                    f"by {feature['share_change']:+.4f} (more than {max_share_change:g})"
                )
        return found

    def to_json(self, min_ndcg: float | None, max_share_change: float | None) -> dict[str, Any]:
        """The summary schedulers read: stable keys, documented in the README."""
        crossed = self.crossed(min_ndcg, max_share_change)
        return {
            "before": self.before,
            "after": self.after,
            "top_k": self.top_k,
            "thresholds": {"min_ndcg": min_ndcg, "max_share_change": max_share_change},
            "drift": bool(crossed),
            "crossed": crossed,
            "outputs": [
                {
                    "output": d.output,
                    "ndcg": d.ndcg,
                    "spearman": d.spearman,
                    "max_share_change": d.max_share_change,
                    "entering_top_k": list(d.entering),
                    "leaving_top_k": list(d.leaving),
                    "features": d.features.to_dict(orient="records"),
                }
                for d in self.outputs
            ],
        }


def compare_runs(
    before: AttributionSource, after: AttributionSource, *, top_k: int = 5
) -> Comparison:
    """Global importance drift from ``before`` to ``after`` (each read once, in batches).

    Raises DataError when the two tables do not explain the same features and outputs.
    """
    _check_same_run_shape(before, after)
    importance_before = _importance(before)
    importance_after = _importance(after)
    drifts = tuple(
        _output_drift(
            output,
            importance_before[importance_before["output"] == output],
            importance_after[importance_after["output"] == output],
            top_k,
        )
        for output in before.outputs
    )
    return Comparison(str(before.path), str(after.path), top_k, drifts)


def _importance(source: AttributionSource) -> pd.DataFrame:
    table = global_importance(source)
    if table.empty:
        raise DataError(f"{source.path} has no rows")
    missing = sorted(set(source.outputs) - set(table["output"]))
    if missing:
        raise DataError(f"{source.path} has no rows for output {missing[0]!r}")
    return table


def _output_drift(output: str, before: pd.DataFrame, after: pd.DataFrame, k: int) -> OutputDrift:
    """before, after: the importance rows of one output, each in its own ranking (by rank,
    ties by name, as the importance table orders them)."""
    features = list(before["feature"])  # BEFORE's ranking
    position = {feature: i for i, feature in enumerate(features)}
    after_order = np.array([position[f] for f in after["feature"]], dtype=np.intp)
    after = after.set_index("feature").loc[features].reset_index()  # in BEFORE's order
    relevance = before["mean_abs"].to_numpy(dtype=np.float64)
    after_mean_abs = after["mean_abs"].to_numpy(dtype=np.float64)
    share_change = after["share"].to_numpy() - before["share"].to_numpy()
    table = pd.DataFrame(
        {
            "feature": features,
            "before_mean_abs": relevance,
            "after_mean_abs": after_mean_abs,
            "before_share": before["share"].to_numpy(),
            "after_share": after["share"].to_numpy(),
            "share_change": share_change,
            "before_rank": before["rank"].to_numpy(),
            "after_rank": after["rank"].to_numpy(),
        }
    )
    table = table.iloc[np.argsort(-np.abs(share_change), kind="stable")].reset_index(drop=True)
    k = min(k, len(features))
    top_before = features[:k]
    top_after = [features[i] for i in after_order[:k]]
    return OutputDrift(
        output=output,
        ndcg=ndcg(relevance, after_order),
        spearman=float(spearman(relevance, after_mean_abs)),
        max_share_change=float(np.abs(share_change).max()) if share_change.size else 0.0,
        entering=tuple(f for f in top_after if f not in top_before),
        leaving=tuple(f for f in top_before if f not in top_after),
        features=table,
    )


def _check_same_run_shape(before: AttributionSource, after: AttributionSource) -> None:
    """Tables of different models' inputs or outputs cannot be compared: say what differs."""
    for what, a, b in (
        ("features", before.features, after.features),
        ("outputs", before.outputs, after.outputs),
    ):
        only_before = [x for x in a if x not in b]
        only_after = [x for x in b if x not in a]
        if only_before or only_after:
            parts = []
            if only_before:
                parts.append(f"{_names(only_before)} only in BEFORE ({before.path})")
            if only_after:
                parts.append(f"{_names(only_after)} only in AFTER ({after.path})")
            raise DataError(
                f"BEFORE and AFTER do not explain the same {what}: {'; '.join(parts)}; "
                "compare tables of runs of the same model inputs"
            )


def _names(names: list[str], most: int = 3) -> str:
    shown = ", ".join(repr(n) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")
