"""Turn a validated configuration into a run plan: open the data, pick the features,
load the model, draw the background, choose the algorithm. Every check that can fail
on the user's input runs here, before any work starts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xaicli.config import ExplainConfig
from xaicli.errors import DataError, ModelLoadError, UsageError, XaiError
from xaicli.io.layout import ROW, check_names
from xaicli.io.tables import TableSource, open_table
from xaicli.methods.base import evaluate_in_blocks
from xaicli.models.adapter import (
    ModelPredictor,
    columns_output_spec,
    model_feature_names,
    resolve_output,
)
from xaicli.models.codec import FeatureCodec
from xaicli.models.loader import ModelSource, load_model, model_exits_as, model_fingerprint
from xaicli.runner.choose import choose_shap_algorithm
from xaicli.runner.plan import RunPlan
from xaicli.runner.validate import InvalidPolicy, invalid_mask, probe_non_finite

BACKGROUND_STREAM = 0xBA5E  # the background sample's random stream, apart from the rows'
EXTRAS = {"lime": ("local_prediction", "score"), "ig": ("completeness_error",)}


@dataclass
class Prepared:
    plan: RunPlan
    source: TableSource
    codec: FeatureCodec
    model: Any
    n_rows: int
    key_columns: tuple[str, ...]  # id columns, or () for the row position
    notes: list[str]
    facts: dict[str, Any]  # for the manifest
    invalid: InvalidPolicy


def prepare(config: ExplainConfig) -> Prepared:
    with model_exits_as(ModelLoadError, config.model, "while checking it on the background rows"):
        return _prepare(config)


def _prepare(config: ExplainConfig) -> Prepared:
    source = open_table(config.data)
    missing_ids = [c for c in config.id_cols if c not in source.schema.names]
    if missing_ids:
        raise DataError(f"id column {missing_ids[0]!r} is not in {config.data}")
    model_source = ModelSource(config.model, trust=config.trust_model)
    model = load_model(model_source)
    features = _features(config, source, model)
    model_columns = model_feature_names(model)
    n_rows = source.count_rows()
    if n_rows == 0:
        raise DataError(f"{config.data} has no rows")
    codec = FeatureCodec.from_schema(source.schema, features)
    background_table = _background_table(config, source, features, n_rows)
    background = codec.encode(background_table)

    output = resolve_output(model, config.output, config.classes)
    probe = ModelPredictor(
        model, output, features, codec.categorical, codec.snapshot(), model_columns
    )
    notes: list[str] = []
    invalid, background = _drop_invalid_background(probe, background, codec, config, notes)
    try:
        raw = probe.raw(background[: min(len(background), 8)])
    except XaiError:
        raise
    except Exception as exc:
        raise DataError(
            f"the model cannot take the data's columns ({type(exc).__name__}: {_line(exc)}); "
            "check --features and the column types"
        ) from exc
    if not output.columns:  # a callable or a regressor: one output per column it returns
        output = columns_output_spec(output.kind, raw.shape[1], config.classes)
    background = _drop_non_finite_outputs(probe, output, background, config.max_eval_rows, notes)

    method = "shap" if config.method == "auto" else config.method
    params: dict[str, Any] = {"n_samples": config.n_samples}
    algorithm = ""
    if method == "shap":
        choice = choose_shap_algorithm(
            config.algorithm,
            model,
            output.kind,
            features,
            any(codec.categorical),
            probe.model_input(background),
        )
        algorithm = choice.algorithm
        if (
            algorithm == "kernel"
            and config.n_samples is not None
            and config.n_samples < 2 * len(features)
        ):
            raise UsageError(
                f"--n-samples must be at least 2 x {len(features)} features = {2 * len(features)} "
                f"for Kernel SHAP; got {config.n_samples}"
            )
        notes.append(f"SHAP algorithm: {algorithm} ({choice.reason})")
        if choice.hint:
            notes.append(choice.hint)
    elif config.algorithm != "auto":
        raise UsageError(f"--algorithm applies to --method shap, not {method}")
    if method == "lime":
        if config.num_features is not None and config.num_features > len(features):
            raise UsageError(
                f"--num-features must be at most the {len(features)} features explained; "
                f"got {config.num_features}"
            )
        params.update(
            kernel_width=config.kernel_width,
            discretize=config.discretize,
            num_features=config.num_features,
            lime_neighbourhood=config.lime_neighbourhood,
        )
    if method in ("ig", "saliency"):
        params["scale"] = _spread(background, codec.categorical_mask)
    if method == "ig":
        params["baselines"] = _baselines(config, codec, background, features)
        params["steps"] = config.steps
    check_names(features, config.id_cols, EXTRAS.get(method, ()), config.layout)

    fingerprint = model_fingerprint(model_source)
    plan = RunPlan(
        model_source=model_source,
        model_key=f"{config.model}:{fingerprint}",
        output=output,
        features=features,
        categorical=codec.categorical,
        model_columns=model_columns,
        method=method,
        algorithm=algorithm,
        background=background,
        seed=config.seed,
        params=params,
        max_eval_rows=config.max_eval_rows,
    )
    facts = {
        "method": method,
        "algorithm": algorithm or None,
        "outputs": list(output.names),
        "output_kind": output.kind,
        "features": list(features),
        "model_sha256": fingerprint,
        "data_rows": n_rows,
        "background_rows": int(background.shape[0]),
        "background_source": str(config.background) if config.background else "sample of the data",
    }
    return Prepared(
        plan, source, codec, model, n_rows, tuple(config.id_cols), notes, facts, invalid
    )


def _drop_invalid_background(probe, background, codec, config, notes):
    """Probe whether the model takes NaN/inf (on a complete row), and keep only the
    background rows it can take."""
    categorical = codec.categorical_mask
    complete = np.isfinite(background[:, ~categorical]).all(axis=1)
    if not complete.any():
        raise DataError(
            "every background row has NaN or infinite values; pass a clean --background"
        )
    takes_nan, takes_inf = probe_non_finite(probe, background[complete][0], categorical)
    invalid = InvalidPolicy(takes_nan, takes_inf, config.on_invalid)
    bad, _ = invalid_mask(background, categorical, invalid)
    if bad.any():
        notes.append(
            f"left out {int(bad.sum())} background row(s) with values the model cannot take"
        )
        background = background[~bad]
    return invalid, background


def _drop_non_finite_outputs(probe, output, background, max_eval_rows, notes):
    """Evaluate the model on the whole background once (it is small) and leave out the rows
    it answers with NaN or infinity: one such row would make every base value NaN."""
    try:
        raw = evaluate_in_blocks(probe.raw, background, max_rows=max_eval_rows)
    except XaiError:
        raise
    except Exception as exc:
        raise DataError(
            f"the model failed on the background rows ({type(exc).__name__}: {_line(exc)}); "
            "pass a --background it can take"
        ) from exc
    explained = raw[:, list(output.columns)]
    bad = ~np.isfinite(explained).all(axis=1)
    if bad.all():
        raise DataError(
            "the model returned NaN or infinite outputs on every background row; "
            "check the model, or pass a --background it answers finitely"
        )
    if bad.any():
        notes.append(
            f"left out {int(bad.sum())} background row(s) the model returns NaN or infinity on"
        )
    return background[~bad]


def _features(config: ExplainConfig, source: TableSource, model: Any) -> tuple[str, ...]:
    columns = source.schema.names
    fitted = model_feature_names(model)
    if config.features:
        features = tuple(config.features)
        if fitted is not None and set(features) != set(fitted):
            raise DataError(
                f"--features must name the model's fitted columns ({', '.join(fitted)})"
            )
    elif fitted is not None:
        features = fitted
    else:
        features = tuple(c for c in columns if c not in config.id_cols)
        expected = getattr(model, "n_features_in_", None)
        if expected is not None and len(features) != expected:
            raise DataError(
                f"the model expects {expected} features but the data has {len(features)} "
                "columns besides the id columns; name them with --features"
            )
    missing = [f for f in features if f not in columns]
    if missing:
        raise DataError(
            f"{config.data} lacks the model's column(s) {', '.join(missing)}; "
            f"it has {', '.join(columns)}"
        )
    if not features:
        raise DataError("no feature columns to explain")
    if ROW in features and not config.id_cols and config.layout == "wide":
        raise UsageError("a feature is named 'row'; pass --id-col to name the rows another way")
    return features


def _background_table(
    config: ExplainConfig, source: TableSource, features: tuple[str, ...], n_rows: int
):
    if config.background is not None:
        table_source = open_table(config.background, what="background")
        missing = [f for f in features if f not in table_source.schema.names]
        if missing:
            raise DataError(f"background {config.background} lacks column(s) {', '.join(missing)}")
        table = table_source.take(np.arange(table_source.count_rows()), features)
        if table.num_rows == 0:
            raise DataError(f"background {config.background} has no rows")
        return table
    if config.background_size < 1:
        raise UsageError(f"--background-size must be at least 1, got {config.background_size}")
    size = min(config.background_size, n_rows)
    rng = np.random.default_rng([config.seed, BACKGROUND_STREAM, 1])  # 3 words: never a row stream
    positions = np.sort(rng.choice(n_rows, size=size, replace=False))
    return source.take(positions, features)


def _spread(background: np.ndarray, categorical: np.ndarray) -> np.ndarray:
    """Each feature's standard deviation in the background (1 where it is 0 or categorical)."""
    scale = (
        np.nanstd(background, axis=0) if background.shape[0] > 1 else np.ones(background.shape[1])
    )
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    scale[categorical] = 1.0
    return scale


def _baselines(
    config: ExplainConfig, codec: FeatureCodec, background: np.ndarray, features
) -> np.ndarray:
    kind = config.baseline
    categorical = codec.categorical_mask
    if kind in ("mean", "median", "zero"):
        if kind == "zero":
            row = np.zeros(background.shape[1])
        else:
            row = (
                np.nanmean(background, axis=0)
                if kind == "mean"
                else np.nanmedian(background, axis=0)
            )
        for j in np.flatnonzero(
            categorical
        ):  # a category cannot be averaged: take the most frequent
            codes = background[:, j][~np.isnan(background[:, j])]
            row[j] = np.bincount(codes.astype(np.int64)).argmax() if codes.size else np.nan
        return row[None, :]
    path = Path(kind)
    table_source = open_table(path, what="baseline")
    missing = [f for f in features if f not in table_source.schema.names]
    if missing:
        raise DataError(f"baseline {path} lacks column(s) {', '.join(missing)}")
    table = table_source.take(np.arange(table_source.count_rows()), features)
    if table.num_rows == 0:
        raise DataError(f"baseline {path} has no rows")
    return codec.encode(table)


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
