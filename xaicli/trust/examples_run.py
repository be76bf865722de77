"""``xai examples``: for each row of a table, the K most similar rows of a reference table.

``features`` space: the rows' columns (numeric ones standardized with the reference's mean
and standard deviation, categorical ones compared for equality; see
``xaicli.trust.neighbours``); the reference is read twice in chunks (its moments, then the
distances), the rows once. ``attributions`` space: two attribution tables of the same model,
the distance between their attribution vectors (every output's features, unscaled: they are
in the units of the model's output).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from xaicli.errors import DataError, UsageError
from xaicli.io.attributions import AttributionTable, read_attributions
from xaicli.io.layout import ROW
from xaicli.io.tables import TableSource, open_table
from xaicli.models.adapter import columns_output_spec, resolve_output
from xaicli.models.codec import FeatureCodec
from xaicli.models.loader import ModelSource, load_model
from xaicli.trust.neighbours import ColumnStats, RunningTopK
from xaicli.trust.scoring import RowScorer, model_features

SPACES = ("features", "attributions")
REFERENCE = "reference_"


@dataclass(frozen=True)
class ExamplesRequest:
    data: Path
    reference: Path
    k: int
    space: str = "features"
    model: str | None = None
    target: str | None = None
    features: tuple[str, ...] = ()
    id_cols: tuple[str, ...] = ()
    chunk_size: int = 4096
    trust_model: bool = False


@dataclass(frozen=True)
class Neighbours:
    """positions (n_rows, k) of the reference rows, distances (n_rows, k), best first."""

    positions: np.ndarray
    distances: np.ndarray


def check_request(request: ExamplesRequest) -> None:
    if request.space not in SPACES:
        raise UsageError(f"--space must be one of {', '.join(SPACES)}; got {request.space!r}")
    if request.k < 1:
        raise UsageError(f"--k must be at least 1; got {request.k}")
    if request.chunk_size < 1:
        raise UsageError(f"--chunk-size must be at least 1; got {request.chunk_size}")
    if request.space == "attributions" and (request.model or request.features or request.id_cols):
        raise UsageError(
            "--model, --features and --id-col apply to --space features; attribution tables "
            "carry their predictions, features and id columns"
        )


def examples_table(request: ExamplesRequest) -> tuple[pa.Table, list[str]]:
    """The long table: the rows' id columns (or ``row``), ``rank``, the reference's id
    columns (``reference_<id>``), ``distance``, then the reference's predictions and target
    when asked for. Also notes for the user."""
    check_request(request)
    if request.space == "attributions":
        return _attribution_examples(request)
    return _feature_examples(request)


# --- features -------------------------------------------------------------------------


def _feature_examples(request: ExamplesRequest) -> tuple[pa.Table, list[str]]:
    data = open_table(request.data, text_columns=request.id_cols)
    reference = open_table(request.reference, what="reference", text_columns=request.id_cols)
    for column in request.id_cols:
        for source, what in ((data, "data"), (reference, "reference")):
            if column not in source.schema.names:
                raise DataError(f"id column {column!r} is not in the {what} {source.path}")
    if request.target is not None and request.target not in reference.schema.names:
        raise DataError(
            f"--target column {request.target!r} is not in the reference {reference.path}"
        )
    model = load_model(ModelSource(request.model, request.trust_model)) if request.model else None
    features = _features(request, data, reference, model)
    codec = _codec(data, reference, features)
    numeric = [j for j, cat in enumerate(codec.categorical) if not cat]
    categorical = [j for j, cat in enumerate(codec.categorical) if cat]

    stats = ColumnStats(len(numeric))
    n_reference = 0
    for batch in reference.iter_batches(features, request.chunk_size):
        encoded = codec.encode(batch)
        _refuse_missing(encoded[:, numeric], features, numeric, n_reference, "reference", reference)
        stats.add(encoded[:, numeric])
        n_reference += batch.num_rows
    stats.finish()
    if n_reference == 0:
        raise DataError(f"the reference {reference.path} has no rows")
    rows = data.take(np.arange(data.count_rows()), [*features, *request.id_cols])
    if rows.num_rows == 0:
        raise DataError(f"{data.path} has no rows")
    encoded = codec.encode(rows)
    _refuse_missing(encoded[:, numeric], features, numeric, 0, "data", data)
    mean, scale = stats.mean, stats.scale()
    k = min(request.k, n_reference)
    notes = [] if k == request.k else [f"the reference has {n_reference} rows: --k lowered to {k}"]
    top = RunningTopK(rows.num_rows, k)
    x_numeric = (encoded[:, numeric] - mean) / scale
    x_categorical = _codes(encoded[:, categorical])
    position = 0
    for batch in reference.iter_batches(features, request.chunk_size):
        ref = codec.encode(batch)
        top.update(
            x_numeric,
            x_categorical,
            (ref[:, numeric] - mean) / scale,
            _codes(ref[:, categorical]),
            position,
        )
        position += batch.num_rows
    found = Neighbours(top.positions, top.distances())
    keys = rows.select(list(request.id_cols)) if request.id_cols else None
    ids, extras = _reference_columns(request, reference, found, model, features)
    return _long_table(found, keys, ids, extras), notes


def _features(request, data: TableSource, reference: TableSource, model) -> tuple[str, ...]:
    leave_out = [*request.id_cols, *([request.target] if request.target else [])]
    if model is not None:
        features = model_features(model, data, request.features, leave_out)
    elif request.features:
        features = tuple(request.features)
    else:
        features = tuple(
            c for c in data.schema.names if c in reference.schema.names and c not in leave_out
        )
        if not features:
            raise DataError(
                f"{data.path} and {reference.path} share no column besides the id and target "
                "columns; name the columns to compare with --features"
            )
    for source, what in ((data, "data"), (reference, "reference")):
        missing = [f for f in features if f not in source.schema.names]
        if missing:
            raise DataError(f"the {what} {source.path} lacks column(s) {', '.join(missing)}")
    return features


def _codec(data: TableSource, reference: TableSource, features: tuple[str, ...]) -> FeatureCodec:
    """One codec for both tables, so equal categories get equal codes; a column must be
    numeric in both or categorical in both."""
    codec = FeatureCodec.from_schema(data.schema, features)
    other = FeatureCodec.from_schema(reference.schema, features)
    for name, a, b in zip(features, codec.categorical, other.categorical, strict=True):
        if a != b:
            kinds = ("categorical", "numeric")
            raise DataError(
                f"column {name!r} is {kinds[not a]} in the data but {kinds[not b]} in the "
                "reference; store it with one type in both"
            )
    return codec


def _refuse_missing(values, features, numeric, offset: int, what: str, source) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise DataError(
            f"the {what} {source.path} has a missing or infinite value in column "
            f"{features[numeric[column]]!r} (row {offset + row}); distances need every "
            "numeric value: fill it or leave the column out with --features"
        )


def _codes(values: np.ndarray) -> np.ndarray:
    """Category codes with a missing category as a code of its own (missing equals missing)."""
    return np.where(np.isnan(values), -1.0, values)


def _reference_columns(request, reference: TableSource, found: Neighbours, model, features):
    """The neighbours' id columns, and their target and predictions, read for the rows
    chosen only."""
    wanted = [*request.id_cols, *([request.target] if request.target else [])]
    unique, inverse = np.unique(found.positions.reshape(-1), return_inverse=True)
    ids: dict[str, pa.Array] = {}
    extras: dict[str, pa.Array] = {}
    taken = reference.take(unique, wanted) if wanted else pa.table({})

    def chosen(name: str) -> pa.Array:
        return taken.column(name).combine_chunks().take(pa.array(inverse))

    for name in request.id_cols:
        ids[REFERENCE + name] = chosen(name)
    if not request.id_cols:
        ids[REFERENCE + ROW] = pa.array(found.positions.reshape(-1), pa.int64())
    if request.target:
        extras[REFERENCE + request.target] = chosen(request.target)
    if model is not None:
        for name, values in _predictions(model, reference, unique, features).items():
            extras[name] = pa.array(values[inverse], pa.float64())
    return ids, extras


def _predictions(model, reference: TableSource, positions, features) -> dict[str, np.ndarray]:
    """The model's output (as ``xai explain`` explains it by default) on the chosen rows."""
    output = resolve_output(model, "auto", ())
    rows = reference.take(positions, features)
    scorer = RowScorer(model, output.kind, reference, features)
    raw = scorer.raw(rows, 0)
    if not output.columns:
        output = columns_output_spec(output.kind, raw.shape[1], ())
    return _prediction_columns(raw[:, list(output.columns)], output.names)


def _prediction_columns(values: np.ndarray, names) -> dict[str, np.ndarray]:
    if len(names) == 1:
        return {REFERENCE + "prediction": values[:, 0]}
    return {f"{REFERENCE}prediction_{name}": values[:, j] for j, name in enumerate(names)}


def _long_table(
    found: Neighbours,
    keys: pa.Table | None,
    reference_ids: dict[str, Any],
    extras: dict[str, Any],
) -> pa.Table:
    n_rows, k = found.positions.shape
    repeat = pa.array(np.repeat(np.arange(n_rows), k))
    columns: dict[str, Any] = {}
    if keys is None:
        columns[ROW] = pa.array(np.repeat(np.arange(n_rows), k), pa.int64())
    else:
        for name in keys.column_names:
            columns[name] = keys.column(name).combine_chunks().take(repeat)
    columns["rank"] = pa.array(np.tile(np.arange(1, k + 1), n_rows), pa.int32())
    columns.update(reference_ids)
    columns["distance"] = pa.array(found.distances.reshape(-1), pa.float64())
    columns.update(extras)  # the reference's target, then its predictions
    return pa.table(columns)


# --- attributions ---------------------------------------------------------------------


def _attribution_examples(request: ExamplesRequest) -> tuple[pa.Table, list[str]]:
    data = read_attributions(request.data, interactions=False)
    reference = read_attributions(request.reference, interactions=False)
    _same_run_kind(data, reference, request)
    if request.target is not None and request.target not in reference.frame.columns:
        raise DataError(
            f"--target column {request.target!r} is not in the reference {request.reference}"
        )
    x, x_keys, _ = _vectors(data)
    r, r_keys, r_first = _vectors(reference)
    k = min(request.k, len(r))
    notes = [] if k == request.k else [f"the reference has {len(r)} rows: --k lowered to {k}"]
    top = RunningTopK(len(x), k)
    none = np.zeros((len(x), 0))
    for start in range(0, len(r), request.chunk_size):
        chunk = r[start : start + request.chunk_size]
        top.update(x, none, chunk, np.zeros((len(chunk), 0)), start)
    found = Neighbours(top.positions, top.distances())
    flat = found.positions.reshape(-1)
    ids = {REFERENCE + n: pa.array(r_keys[n].to_numpy()[flat]) for n in reference.id_columns}
    columns: dict[str, Any] = {}
    if request.target:
        target = r_first[reference.outputs[0]][request.target].to_numpy()
        columns[REFERENCE + request.target] = pa.array(target[flat])
    if reference.layout == "wide":
        predictions = np.stack(
            [r_first[output]["prediction"].to_numpy() for output in reference.outputs], axis=1
        )
        columns.update(_prediction_columns(predictions[flat], reference.outputs))
    keys = pa.Table.from_pandas(x_keys, preserve_index=False)
    return _long_table(found, keys, ids, columns), notes


def _same_run_kind(data: AttributionTable, reference: AttributionTable, request) -> None:
    """Attribution vectors are comparable only for the same features, outputs and model."""
    if data.features != reference.features or data.outputs != reference.outputs:
        raise DataError(
            f"{request.data} and {request.reference} are attributions of different features "
            f"or outputs ({', '.join(data.features)} / {', '.join(reference.features)}); "
            "compare tables of the same model"
        )
    a, b = data.metadata.get("model_sha256"), reference.metadata.get("model_sha256")
    if a and b and a != b:
        raise DataError(
            f"{request.data} and {request.reference} explain different model files "
            "(their model_sha256 differ); compare tables of the same model"
        )


def _vectors(table: AttributionTable):
    """(n_rows, n_outputs * n_features) attribution vectors, one per input row, the id
    columns of those rows, and per output its wide rows (for predictions)."""
    frame = table.frame
    keys = list(table.id_columns)
    per_output = {}
    for output in table.outputs:
        rows = frame[frame["output"].astype(str) == output]
        if table.layout == "long":
            rows = rows.pivot(index=keys, columns="feature", values="attribution").reset_index()
            # pivot sorts by the ids: restore the table's order
            order = frame[frame["output"].astype(str) == output][keys].drop_duplicates()
            rows = order.merge(rows, on=keys, how="left")
        per_output[output] = rows.reset_index(drop=True)
    first = per_output[table.outputs[0]]
    for output, rows in per_output.items():
        if len(rows) != len(first) or not rows[keys].reset_index(drop=True).equals(first[keys]):
            raise DataError(f"the rows of output {output!r} do not match those of the others")
    vectors = np.concatenate(
        [per_output[o][list(table.features)].to_numpy(dtype=np.float64) for o in table.outputs],
        axis=1,
    )
    if not np.isfinite(vectors).all():
        raise DataError("the attribution table has missing values; compare complete tables")
    return vectors, first[keys], per_output
