"""Turn a validated configuration into a run plan: open the data, pick the features,
load the model, draw the background, choose the algorithm. Every check that can fail
on the user's input runs here, before any work starts."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from xaicli.config import ExplainConfig, resolve_names
from xaicli.errors import DataError, ModelLoadError, UsageError, XaiError
from xaicli.io.layout import INTERACTIONS, ROW, check_names
from xaicli.io.tables import TableSource, open_table
from xaicli.methods.base import evaluate_in_blocks
from xaicli.methods.registry import (
    MethodInputError,
    MethodSpec,
    RunInputs,
    method_spec,
    params_from,
    registered,
)
from xaicli.models.adapter import (
    ModelPredictor,
    columns_output_spec,
    model_feature_names,
    model_n_features,
    resolve_output,
)
from xaicli.models.codec import FeatureCodec
from xaicli.models.loader import ModelSource, load_model, model_exits_as, model_fingerprint
from xaicli.models.native_files import check_native_features
from xaicli.runner.background import background_size, background_table, read_table
from xaicli.runner.choose import INTERACTION_CHOICES, choose_shap_algorithm
from xaicli.runner.plan import RunPlan
from xaicli.runner.scan import (
    check_text_values,
    mixed_text_hint,
    numbers_as_text_notes,
    refuse_invalid_rows,
    scan_data,
)
from xaicli.runner.structure import model_structure
from xaicli.runner.validate import InvalidPolicy, invalid_mask, probe_non_finite


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
    config: ExplainConfig  # list options resolved to names (see resolve_names)


def prepare(config: ExplainConfig) -> Prepared:
    with model_exits_as(
        ModelLoadError, config.inputs.model, "while checking it on the background rows"
    ):
        return _prepare(config)


def _prepare(config: ExplainConfig) -> Prepared:
    _check_interactions(config)
    config, source = _open_data(config)
    config, model_source, model = _load(config)
    features = _features(config, source, model)
    source = source.check_columns([*features, *config.inputs.id_cols], exact=config.inputs.id_cols)
    codec = FeatureCodec.from_schema(source.schema, features)
    scan = scan_data(source, features, codec.categorical)  # every value, before any work
    if scan.n_rows == 0:
        raise DataError(f"{config.inputs.data} has no rows")
    size = background_size(config, model)
    table, weights = background_table(config, source, features, scan.n_rows, size)
    background = codec.encode(table)
    notes: list[str] = []
    model_columns = model_feature_names(model)
    output, probe, invalid, background, weights = _probe_model(
        config, model, model_columns, features, codec, scan, background, weights, notes
    )
    method = "shap" if config.compute.method == "auto" else config.compute.method
    algorithm, structure = _choose_algorithm(
        config, method, model, probe, output, background, notes, weights, scan.n_rows
    )
    spec = method_spec(method, algorithm)
    params = params_from(spec, config.flat_values())
    setup, invalid = _method_setup(spec, params, codec, invalid, background, features)
    standard_errors, converged = _sampling_columns(config, spec, params, len(features))
    check_names(
        features,
        config.inputs.id_cols,
        spec.extras,
        INTERACTIONS if config.compute.interactions else config.destination.layout,
        errors=standard_errors,
        converged=converged,
    )
    # after the method's own limits (LIME without discretization cannot take NaN either)
    refuse_invalid_rows(scan, invalid, source, config.inputs.id_cols)

    fingerprint = model_fingerprint(model_source)
    plan = RunPlan(
        model_source=model_source,
        model_key=f"{config.inputs.model}:{fingerprint}",
        output=output,
        features=features,
        categorical=codec.categorical,
        model_columns=model_columns,
        method=method,
        algorithm=algorithm,
        background=background,
        seed=config.compute.seed,
        params=params,
        state=setup.state,
        max_eval_rows=config.compute.max_eval_rows,
        standard_errors=standard_errors,
        converged=converged,
        structure=structure,
        interactions=_interaction_features(structure, features),
    )
    facts = {
        "method": method,
        "algorithm": algorithm or None,
        "outputs": list(output.names),
        "output_kind": output.kind,
        "features": list(features),
        "model_sha256": fingerprint,
        "data_rows": scan.n_rows,
        "background_rows": int(background.shape[0]),
        "background_source": str(config.inputs.background)
        if config.inputs.background
        else "sample of the data",
        "background_size": size,
        "background_weights": config.inputs.background_weights,
        **_tree_facts(structure),
        **_interaction_facts(plan.interactions, config),
    }
    return Prepared(
        plan,
        source,
        codec,
        model,
        scan.n_rows,
        tuple(config.inputs.id_cols),
        notes,
        facts,
        invalid,
        config,
    )


def _check_interactions(config: ExplainConfig) -> None:
    """The interaction table is its own shape, from exact TreeSHAP only: options that ask
    for another method, shape or columns are refused before anything is read (the
    algorithm ``auto`` resolves to is checked once the model is loaded)."""
    compute = config.compute
    if not compute.interactions:
        if compute.interactions_top is not None:
            raise UsageError("--interactions-top K needs --interactions")
        return
    chosen = {"--method": compute.method, "--algorithm": compute.algorithm}
    for option, allowed in INTERACTION_CHOICES.items():
        value = chosen[option]
        if value not in allowed:
            raise UsageError(
                f"--interactions needs exact TreeSHAP; this run uses {option} {value}: drop "
                f"it, or pass {option} {allowed[-1]}"
            )
    if config.destination.layout == "long":
        raise UsageError(
            "--interactions writes its own long table (a row per row, output and pair of "
            "features); drop --layout long"
        )
    for option, given in (
        ("--reasons", config.destination.reasons is not None),
        ("--errors", compute.errors),
        ("--target-error", compute.target_error is not None),
    ):
        if given:
            raise UsageError(
                f"{option} adds to the attribution table, which --interactions replaces by "
                "the interaction table; drop one of them"
            )


def _open_data(config: ExplainConfig) -> tuple[ExplainConfig, TableSource]:
    """The data, with --id-col and --features resolved to its column names."""
    source = open_table(config.inputs.data, text_columns=config.inputs.id_cols)
    resolved = _resolve_lists(config, source.schema.names)
    if resolved.inputs.id_cols != config.inputs.id_cols:
        # a comma shorthand: CSV ids are read as text
        source = open_table(config.inputs.data, text_columns=resolved.inputs.id_cols)
    missing_ids = [c for c in resolved.inputs.id_cols if c not in source.schema.names]
    if missing_ids:
        raise DataError(f"id column {missing_ids[0]!r} is not in {config.inputs.data}")
    return resolved, source


def _load(config: ExplainConfig) -> tuple[ExplainConfig, ModelSource, Any]:
    """The model, with --class resolved to its class labels."""
    model_source = ModelSource(config.inputs.model, trust=config.inputs.trust_model)
    model = load_model(model_source)
    labels = [str(c) for c in getattr(model, "classes_", [])]
    config = config.with_values(classes=resolve_names(config.inputs.classes, labels))
    return config, model_source, model


def _probe_model(config, model, model_columns, features, codec, scan, background, weights, notes):
    """What is explained, the model's adapter, whether it takes NaN/inf, and the
    background rows it can take and answers finitely (with their weights, or None)."""
    output = resolve_output(model, config.inputs.output, config.inputs.classes)
    probe = ModelPredictor(
        model, output, features, codec.categorical, codec.snapshot(), model_columns
    )
    invalid, kept = _drop_invalid_background(probe, background, codec, config, notes)
    background, weights = background[kept], _kept_weights(weights, kept)
    try:  # the whole background, once: its outputs also decide which rows stay in it
        raw = evaluate_in_blocks(probe.raw, background, max_rows=config.compute.max_eval_rows)
    except XaiError:
        raise
    except Exception as exc:
        raise DataError(
            f"the model cannot take the data's columns ({type(exc).__name__}: {_line(exc)}); "
            f"{mixed_text_hint(scan, codec, background)}check --features and the column types"
        ) from exc
    notes.extend(numbers_as_text_notes(codec, background))
    check_text_values(probe, scan, codec, background, config.inputs.data)
    if not output.columns:  # a callable or a regressor: one output per column it returns
        output = columns_output_spec(output.kind, raw.shape[1], config.inputs.classes)
    kept = _drop_non_finite_outputs(raw[:, list(output.columns)], background, notes)
    background, weights = background[kept], _kept_weights(weights, kept)
    if weights is not None and not weights.sum() > 0:
        raise DataError(
            f"--background-weights {config.inputs.background_weights}: every background row "
            "the model can take has weight 0; give some of them a positive weight"
        )
    return output, probe, invalid, background, weights


def _kept_weights(weights: np.ndarray | None, kept: np.ndarray) -> np.ndarray | None:
    return None if weights is None else weights[kept]


def _method_setup(spec, params, codec, invalid, background, features):
    """What the method prepares once per run (its own checks included), and the policy for
    values the run cannot take, now that the method's limits are known."""
    tables = _table_params(spec, params, codec, invalid, features)
    inputs = RunInputs(background, codec.categorical_mask, features, tables)
    try:
        setup = spec.prepare(params, inputs)
    except MethodInputError as exc:
        raise (DataError if exc.about_data else UsageError)(str(exc)) from exc
    if setup.refuser is not None and (invalid.takes_nan or invalid.takes_inf):
        # the method cannot take them, even where the model can (when the model refuses
        # them too, the message names the model)
        invalid = replace(
            invalid, takes_nan=False, takes_inf=False, refuser=setup.refuser, advice=setup.advice
        )
    return setup, invalid


def _sampling_columns(
    config: ExplainConfig, spec: MethodSpec, params: Any, n_features: int
) -> tuple[bool, bool]:
    """(standard errors written, ``converged`` written); UsageError for --errors or
    --target-error with an algorithm that does not take it."""
    takes = {f.name for f in fields(spec.params)} if spec.sampling is not None else set()
    name = f"{spec.method} {spec.algorithm}".strip()
    if config.compute.errors and "errors" not in takes:
        raise UsageError(
            "--errors applies to sampled SHAP (--algorithm kernel or permutation); "
            f"{name} has no sampling error to report: drop --errors or choose one of them"
        )
    if config.compute.target_error is not None and "target_error" not in takes:
        raise UsageError(
            f"--target-error applies to --algorithm permutation, not {name} (kernel SHAP "
            "fits one design shared by every row: give it --n-samples); drop --target-error "
            "or pass --algorithm permutation"
        )
    if spec.sampling is None:
        return False, False
    return spec.sampling(params, n_features)


def _resolve_lists(config: ExplainConfig, columns: list[str]) -> ExplainConfig:
    """--id-col and --features as column names of this data."""
    features = resolve_names(config.inputs.features, columns) if config.inputs.features else None
    return config.with_values(
        id_cols=resolve_names(config.inputs.id_cols, columns), features=features or None
    )


def _drop_invalid_background(probe, background, codec, config, notes):
    """Probe whether the model takes NaN/inf, and which background rows (a mask) it can take.
    The probe sets every numeric column to NaN (then infinity), so any row will do as its
    template: the one with the fewest missing categories."""
    categorical = codec.categorical_mask
    template = background[int(np.argmin(np.isnan(background[:, categorical]).sum(axis=1)))]
    takes_nan, takes_inf = probe_non_finite(probe, template, categorical)
    invalid = InvalidPolicy(takes_nan, takes_inf, config.compute.on_invalid)
    bad, _ = invalid_mask(background, categorical, invalid)
    if bad.all():
        numeric = [
            name for name, is_cat in zip(codec.names, categorical, strict=True) if not is_cat
        ]
        finite = np.isfinite(background[:, ~categorical])
        empty = [
            name
            for name, any_finite in zip(numeric, finite.any(axis=0), strict=True)
            if not any_finite
        ]
        partly = [
            name
            for name, all_finite in zip(numeric, finite.all(axis=0), strict=True)
            if not all_finite
        ]
        where = (
            f"column(s) {_quoted(empty)} have no finite value in any background row"
            if empty
            else f"the NaN or infinite values are in {_quoted(partly)}"
        )
        raise DataError(
            f"every background row has NaN or infinite values, which the model cannot take: "
            f"{where}; fill them, leave them out of the model, or pass a --background with values"
        )
    if bad.any():
        notes.append(
            f"left out {int(bad.sum())} background row(s) with values the model cannot take"
        )
    return invalid, ~bad


def _quoted(names: list[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _drop_non_finite_outputs(
    explained: np.ndarray, background: np.ndarray, notes: list[str]
) -> np.ndarray:
    """The mask of the background rows to keep: leave out those the model answers with NaN or infinity (explained:
    the model's explained outputs on them): one such row would make every base value NaN."""
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
    if not np.isfinite(explained[~bad].mean(axis=0)).all():
        # every base value would be infinite: refuse now rather than fail on every row
        raise DataError(
            "the model's outputs on the background rows overflow when averaged (values up to "
            f"{np.abs(explained[~bad]).max():.3g}); pass a --background with ordinary values"
        )
    return ~bad


def _features(config: ExplainConfig, source: TableSource, model: Any) -> tuple[str, ...]:
    columns = source.schema.names
    fitted = model_feature_names(model)
    check_native_features(config.inputs.model, model, config.inputs.features)
    if config.inputs.features:
        features = tuple(config.inputs.features)
        if fitted is not None and set(features) != set(fitted):
            raise DataError(
                f"--features must name the model's fitted columns ({', '.join(fitted)})"
            )
    elif fitted is not None:
        features = fitted
    else:
        features = tuple(c for c in columns if c not in config.inputs.id_cols)
        expected = model_n_features(model)
        if expected is not None and len(features) != expected:
            raise DataError(
                f"the model expects {expected} features but the data has {len(features)} "
                "columns besides the id columns; name them with --features"
            )
    missing = [f for f in features if f not in columns]
    if missing:
        raise DataError(
            f"{config.inputs.data} lacks the model's column(s) {', '.join(missing)}; "
            f"it has {', '.join(columns)}"
        )
    if not features:
        raise DataError("no feature columns to explain")
    if ROW in features and not config.inputs.id_cols and config.destination.layout == "wide":
        raise UsageError("a feature is named 'row'; pass --id-col to name the rows another way")
    return features


def _choose_algorithm(config, method, model, probe, output, background, notes, weights, n_rows):
    """The method's algorithm and what it derives from the model once per run; "" and
    None for a method without algorithms."""
    with_algorithms = sorted({m for m, algorithm in registered() if algorithm})
    if method not in with_algorithms:
        if config.compute.algorithm != "auto":
            raise UsageError(
                f"--algorithm applies to --method {', '.join(with_algorithms)}, not {method}"
            )
        _refuse_weights(config, f"--method {method}")
        return "", None
    choice = choose_shap_algorithm(
        config.compute.algorithm,
        model,
        output.kind,
        probe.feature_names,
        any(probe.categorical),
        probe.model_input(background),
    )
    if weights is not None and not choice.takes_weights:
        _refuse_weights(config, f"SHAP algorithm {choice.algorithm}")
    if config.compute.interactions and not choice.takes_interactions:
        hint = f"; {choice.hint}" if choice.hint else ""
        raise UsageError(
            "--interactions needs exact TreeSHAP (a tree model's margin or prediction); this "
            f"run uses {choice.algorithm}: {choice.reason}{hint}"
        )
    structure = model_structure(
        choice,
        model,
        probe,
        output,
        background,
        weights=weights,
        n_rows=n_rows,
        interactions=config.compute.interactions,
        interactions_top=config.compute.interactions_top,
    )
    notes.append(f"SHAP algorithm: {choice.algorithm} ({choice.reason})")
    if choice.hint:
        notes.append(choice.hint)
    return choice.algorithm, structure


def _refuse_weights(config: ExplainConfig, what: str) -> None:
    if config.inputs.background_weights is not None:
        raise UsageError(
            f"--background-weights applies to interventional TreeSHAP (--algorithm tree, or "
            f"auto on a tree model), not to {what}; leave it out"
        )


def _tree_facts(structure: Any) -> dict[str, Any]:
    """For the manifest: how many trees each TreeSHAP engine explained."""
    tables = getattr(structure, "tables", None)
    if tables is None:
        return {}
    facts = {
        "tree_engines": tables.engine_counts(),
        "tree_table_mb": round(tables.tables.nbytes / 2**20, 1),
    }
    interactions = getattr(structure, "interactions", None)
    if interactions is not None:
        facts["interaction_engines"] = interactions.engine_counts()
        facts["interaction_table_mb"] = round(interactions.tables.nbytes / 2**20, 1)
    return facts


def _interaction_features(structure: Any, features: tuple[str, ...]) -> tuple[str, ...] | None:
    """The features whose pairs the interaction table holds (None: no interactions)."""
    kept = getattr(structure, "interaction_features", None)
    return None if kept is None else tuple(features[int(j)] for j in kept)


def _interaction_facts(kept: tuple[str, ...] | None, config: ExplainConfig) -> dict[str, Any]:
    """For the manifest and the table's metadata: what the interaction table holds."""
    if kept is None:
        return {}
    return {
        "table": "interactions",
        "interaction_features": list(kept),
        "interactions_top": config.compute.interactions_top,
    }


def _table_params(
    spec: MethodSpec, params: Any, codec: FeatureCodec, invalid: InvalidPolicy, features
) -> dict[str, np.ndarray]:
    """The entry's parameters that name a table file, read and encoded: reading files is
    the runner's work, not the method's. They must hold only values the model takes."""
    tables = {}
    for param in spec.table_params:
        value = getattr(params, param.name)
        if value in param.keywords:
            continue
        table = codec.encode(read_table(Path(value), param.name, features))
        categorical = codec.categorical_mask
        bad, reasons = invalid_mask(table, categorical, invalid)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            column = features[int(np.flatnonzero(~np.isfinite(table[first]) & ~categorical)[0])]
            raise DataError(
                f"{param.name} {value} has a {reasons[0]} in column {column!r} (row {first}), "
                "which the model cannot take; fill it in"
            )
        tables[param.name] = table
    return tables


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
