"""Quality of an attribution table (``xai evaluate``), on a seeded sample of its rows:
completeness, faithfulness (deletion and insertion curves against a random order),
stability under other seeds, agreement with a second table of the same rows, and cost.

The model, the data's encoding and the background are those of the run: its recorded
parameters are prepared again by :mod:`xaicli.runner.prepare` (the same loader, adapter
and background sample), and re-runs go through :func:`xaicli.api.explain`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xaicli.errors import DataError, UsageError
from xaicli.io.attributions import AttributionSource, open_attributions
from xaicli.io.layout import ROW
from xaicli.methods.base import evaluate_in_blocks
from xaicli.models.adapter import ModelPredictor
from xaicli.models.codec import decode_frame
from xaicli.trust.curves import curve_area, feature_curves, mean_normalised_curve
from xaicli.trust.ranking import spearman, top_k_overlap
from xaicli.trust.sample import count_input_rows, data_positions, read_rows, sample_positions

__all__ = ["Evaluation", "evaluate_attributions"]

#: The random orders' stream, apart from the sample's and every run's row streams.
RANDOM_ORDER_STREAM = 0x0DE7
#: Background rows used for the curves (the run's first ones): each costs (M + 1) model
#: rows per evaluated row and curve.
CURVE_BACKGROUND_ROWS = 100
#: Recorded parameters a re-run takes over (the rest is the evaluation's: rows, seed, jobs).
RERUN_PARAMETERS = (
    "method",
    "algorithm",
    "output",
    "classes",
    "n_samples",
    "kernel_width",
    "discretize",
    "num_features",
    "lime_neighbourhood",
    "baseline",
    "steps",
    "max_eval_rows",
    "trust_model",
)


@dataclass
class Evaluation:
    """metrics: output -> metric -> value (NaN where undefined); cost: per row, all outputs;
    curves: output -> curve name -> mean normalised curve (M + 1 values)."""

    attributions: str
    rows: int
    seed: int
    top_k: int
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)
    curves: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """A row per metric and output (``output`` empty for the cost), columns metric,
        output, value."""
        records = [
            (metric, output, value)
            for output, values in self.metrics.items()
            for metric, value in values.items()
        ]
        records += [(metric, "", value) for metric, value in self.cost.items()]
        return pd.DataFrame.from_records(records, columns=["metric", "output", "value"])

    def to_json(self) -> dict[str, Any]:
        return {
            "attributions": self.attributions,
            "rows": self.rows,
            "seed": self.seed,
            "top_k": self.top_k,
            "metrics": self.metrics,
            "cost": self.cost,
            "curves": self.curves,
            "notes": self.notes,
        }


def evaluate_attributions(
    attributions: str | Path,
    *,
    model: str,
    data: str | Path,
    rows: int = 200,
    seeds: int = 3,
    top_k: int = 5,
    seed: int = 0,
    against: str | Path | None = None,
    trust_model: bool = False,
    on_note: Callable[[str], None] | None = None,
) -> Evaluation:
    """Evaluate the attribution table at ``attributions`` of ``model`` on ``data``.

    rows: input rows sampled (seeded by ``seed``; default 200). seeds: re-runs with other
    seeds for stability (0: none). top_k: size of the top-k overlaps. against: a second
    attribution table of the same rows, for per-row rank agreement.
    """
    _check_options(rows, seeds, top_k, seed)
    source = open_attributions(attributions)
    other = open_attributions(against) if against is not None else None
    if other is not None:
        _check_same_features(source, other)
    prepared = _prepare(source, model, Path(data), trust_model)
    plan, codec = prepared.plan, prepared.codec
    missing = [o for o in source.outputs if o not in plan.output.names]
    if missing:
        raise DataError(
            f"the model's outputs are {', '.join(plan.output.names)}; {attributions} explains "
            f"{missing[0]!r}: pass the model the table was computed with"
        )
    columns = [plan.output.names.index(o) for o in source.outputs]

    positions = sample_positions(count_input_rows(source), rows, seed)
    sampled = read_rows(source, positions=positions)
    recorded_ids = (source.metadata.get("parameters") or {}).get("id_cols")
    by_position = source.id_columns == (ROW,) and not recorded_ids
    located = data_positions(
        prepared.source, sampled.keys, by_position=by_position, data_name=str(data)
    )
    order = np.argsort(located, kind="stable")
    raw = prepared.source.take(located[order], plan.features)
    raw = raw.take(np.argsort(order, kind="stable"))  # back in the sample's order
    X = codec.encode(raw)
    predictor = ModelPredictor(
        prepared.model, plan.output, plan.features, plan.categorical, codec.snapshot(),
        plan.model_columns,
    )  # fmt: skip
    model_outputs = evaluate_in_blocks(predictor, X, max_rows=plan.max_eval_rows)[:, columns]

    result = Evaluation(str(attributions), len(positions), seed, top_k)
    result.notes.extend(prepared.notes)
    note = on_note or (lambda message: None)
    for output in source.outputs:
        result.metrics[output] = {}
    _completeness(result, source, sampled, model_outputs)
    background = plan.background[:CURVE_BACKGROUND_ROWS]
    if len(plan.background) > CURVE_BACKGROUND_ROWS:
        result.notes.append(
            f"curves use the first {CURVE_BACKGROUND_ROWS} of the run's {len(plan.background)} "
            "background rows"
        )
    _faithfulness(
        result, source, sampled, X, predictor, columns, background, plan.max_eval_rows, positions
    )
    if seeds:
        note(
            f"re-running {source.method or 'the method'} with {seeds} other seed(s) on {len(positions)} rows"
        )
        _stability(result, source, sampled, raw.to_pandas(), prepared, model, seeds, trust_model)
    _recorded_cost(result, source)
    if other is not None:
        _agreement(result, source, sampled, other)
    return result


def _check_options(rows: int, seeds: int, top_k: int, seed: int) -> None:
    for name, value, least in (
        ("--rows", rows, 1),
        ("--seeds", seeds, 0),
        ("--top-k", top_k, 1),
        ("--seed", seed, 0),
    ):
        if value < least:
            raise UsageError(f"{name} must be at least {least}; got {value}")


def _check_same_features(source: AttributionSource, other: AttributionSource) -> None:
    if set(source.features) != set(other.features):
        only = sorted(set(source.features) ^ set(other.features))
        raise DataError(
            f"{source.path} and {other.path} do not explain the same features ({only[0]!r} is "
            "in one only): --against takes a table of the same model inputs and rows"
        )
    if not set(source.outputs) & set(other.outputs):
        raise DataError(
            f"{source.path} and {other.path} share no output (they explain "
            f"{', '.join(source.outputs)} and {', '.join(other.outputs)})"
        )


def _prepare(source: AttributionSource, model: str, data: Path, trust_model: bool):
    """The run's model, encoding and background, prepared again from its recorded
    parameters (with this model and data). Only the model and its inputs are needed here:
    the method is prepared by the re-runs, so planning takes the cheapest one."""
    from xaicli.config import build_config
    from xaicli.runner.prepare import prepare

    recorded = source.metadata.get("parameters") or {}
    values = {
        key: recorded.get(key)
        for key in (
            "id_cols",
            "output",
            "classes",
            "background",
            "background_size",
            "seed",
            "on_invalid",
            "max_eval_rows",
        )
    }
    values.update(
        model=model,
        data=data,
        out="-",
        features=list(source.features),
        method="saliency",
        algorithm="auto",
        trust_model=trust_model or bool(recorded.get("trust_model")),
        n_jobs=1,
    )
    return prepare(build_config(values, name=lambda key: f"the run's {key}"))


def _completeness(result: Evaluation, source: AttributionSource, sampled, model_outputs) -> None:
    """|prediction - base_value - sum of attributions| from the table (a long table holds
    neither: the model's prediction and the recorded base value stand in)."""
    if sampled.predictions is not None:
        predictions, base_values = sampled.predictions, sampled.base_values
        gap = np.abs(predictions - model_outputs)
        worst = float(np.nanmax(gap)) if gap.size else 0.0
        scale = float(np.nanmax(np.abs(model_outputs))) if gap.size else 1.0
        if worst > 1e-6 * max(scale, 1.0):
            # metrics of another model's (or other rows') outputs would describe nothing
            raise DataError(
                f"the model's outputs differ from the table's predictions by up to {worst:.3g}; "
                "pass the model and data the table was computed with"
            )
    else:
        predictions = model_outputs
        recorded = source.metadata.get("base_values") or {}
        base_values = np.array(
            [[recorded.get(o, np.nan) for o in source.outputs]], dtype=np.float64
        )
    residual = np.abs(predictions - base_values - sampled.values.sum(axis=2))
    for k, output in enumerate(source.outputs):
        column = residual[:, k]
        result.metrics[output]["completeness_mean_abs_error"] = _mean(column)
        result.metrics[output]["completeness_max_abs_error"] = (
            float(np.max(column)) if column.size and not np.isnan(column).all() else np.nan
        )


def _faithfulness(
    result, source, sampled, X, predictor, columns, background, max_eval_rows, positions
):
    """Deletion and insertion areas in the order of |attribution|, and in a random order."""
    n_features = X.shape[1]
    random_orders = np.stack(
        [
            np.random.default_rng([result.seed, RANDOM_ORDER_STREAM, int(p)]).permutation(
                n_features
            )
            for p in positions
        ]
    )
    for k, output in enumerate(source.outputs):
        column = columns[k]

        def explained(rows: np.ndarray, column: int = column) -> np.ndarray:
            return predictor(rows)[:, column]

        by_importance = np.argsort(-np.abs(sampled.values[:, k]), axis=1, kind="stable")
        curves = {}
        for name, orders, insertion in (
            ("deletion", by_importance, False),
            ("insertion", by_importance, True),
            ("deletion_random", random_orders, False),
            ("insertion_random", random_orders, True),
        ):
            raw = feature_curves(
                explained, X, background, orders, insertion=insertion, max_eval_rows=max_eval_rows
            )
            mean_curve = mean_normalised_curve(raw, insertion=insertion)
            result.metrics[output][f"{name}_auc"] = float(curve_area(mean_curve))
            curves[name] = mean_curve.tolist()
            moved = raw[:, 0] != raw[:, -1]
        result.metrics[output]["curve_rows"] = float(moved.sum())
        result.curves[output] = curves


@contextmanager
def _counting_model_rows() -> Iterator[list[int]]:
    """Count the rows a re-run sends to the model while it computes (planning left out).
    The re-run runs its chunks in this process (one job), through
    ``xaicli.runner.compute.run_method``: its predictor is swapped for a counting one."""
    import xaicli.runner.compute as compute

    counter = [0]

    class Counting(ModelPredictor):
        def raw(self, X: np.ndarray) -> np.ndarray:
            counter[0] += len(X)
            return super().raw(X)

    original = compute.run_method

    def counted(plan, model, predictor, X, rows):
        counting = Counting(**{f.name: getattr(predictor, f.name) for f in fields(predictor)})
        return original(plan, model, counting, X, rows)

    compute.run_method = counted
    try:
        yield counter
    finally:
        compute.run_method = original


def _stability(result, source, sampled, frame, prepared, model, seeds, trust_model) -> None:
    """Mean Spearman correlation and top-k overlap of |attribution| between the table and
    re-runs with other seeds, on the same rows with the run's own background."""
    from xaicli.api import explain

    recorded = source.metadata.get("parameters") or {}
    if not source.method:
        result.notes.append("the table records no method: stability and re-run cost skipped")
        return
    plan, codec = prepared.plan, prepared.codec
    options = {key: recorded[key] for key in RERUN_PARAMETERS if recorded.get(key) is not None}
    options.update(method=source.method, features=list(plan.features), n_jobs=1, layout="wide")
    if source.algorithm:
        options["algorithm"] = source.algorithm
    options["trust_model"] = trust_model or bool(recorded.get("trust_model"))
    # the run's background, fixed: only the method's own randomness varies with the seed
    options["background"] = decode_frame(
        plan.background, plan.features, plan.categorical, codec.snapshot()
    )
    first = int(recorded.get("seed") or 0) + 1
    spearmans: list[np.ndarray] = []  # each (rows, outputs)
    overlaps: list[np.ndarray] = []
    seconds, evaluations = 0.0, 0
    for run_seed in range(first, first + seeds):
        started = time.perf_counter()
        with _counting_model_rows() as counter:
            table = explain(model, frame, seed=run_seed, **options)
        seconds += time.perf_counter() - started
        evaluations += counter[0]
        rerun = _wide_values(table, source, len(frame))
        spearmans.append(np.asarray(spearman(np.abs(sampled.values), np.abs(rerun))))
        overlaps.append(
            np.asarray(top_k_overlap(np.abs(sampled.values), np.abs(rerun), result.top_k))
        )
    for k, output in enumerate(source.outputs):
        result.metrics[output]["stability_spearman"] = _mean(
            np.concatenate([s[:, k] for s in spearmans])
        )
        result.metrics[output]["stability_top_k_overlap"] = _mean(
            np.concatenate([o[:, k] for o in overlaps])
        )
    n_rows = len(frame) * seeds
    result.cost["model_evaluations_per_row"] = evaluations / n_rows
    result.cost["seconds_per_row"] = seconds / n_rows


def _wide_values(table: pd.DataFrame, source: AttributionSource, n_rows: int) -> np.ndarray:
    """(n_rows, n_outputs, n_features) from a wide table with a ``row`` column."""
    values = np.full((n_rows, len(source.outputs), len(source.features)), np.nan)
    index = {o: i for i, o in enumerate(source.outputs)}
    chosen = table[table["output"].astype(str).isin(index)]
    outputs = chosen["output"].astype(str).map(index).to_numpy(dtype=np.intp)
    values[chosen[ROW].to_numpy(dtype=np.intp), outputs] = chosen[list(source.features)].to_numpy(
        dtype=np.float64
    )
    return values


def _recorded_cost(result: Evaluation, source: AttributionSource) -> None:
    """Seconds per row of the whole run as its manifest recorded them (all its workers)."""
    wall, n_rows = source.metadata.get("wall_time_s"), source.metadata.get("data_rows")
    if wall is not None and n_rows:
        result.cost["recorded_seconds_per_row"] = float(wall) / float(n_rows)
        workers = (source.metadata.get("parameters") or {}).get("n_jobs_effective")
        if workers:
            result.cost["recorded_workers"] = float(workers)


def _agreement(result, source, sampled, other: AttributionSource) -> None:
    """Per-row rank agreement with another table of the same rows (say SHAP and LIME)."""
    theirs = read_rows(other, keys=sampled.keys)
    position = {name: j for j, name in enumerate(other.features)}
    in_our_order = theirs.values[:, :, [position[f] for f in source.features]]
    for k, output in enumerate(source.outputs):
        if output not in other.outputs:
            continue
        mine = np.abs(sampled.values[:, k])
        them = np.abs(in_our_order[:, other.outputs.index(output)])
        result.metrics[output]["agreement_spearman"] = _mean(spearman(mine, them))
        result.metrics[output]["agreement_top_k_overlap"] = _mean(
            top_k_overlap(mine, them, result.top_k)
        )


def _mean(values: Any) -> float:
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")
