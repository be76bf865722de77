"""``xai fairness``: read the data's group and target columns, score every row with the
model batch by batch, decide which rows are selected, and report the group metrics (and,
given an attribution table, the mean attribution of each feature per group)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from xaicli.errors import DataError, UsageError
from xaicli.io.attributions import AttributionTable, read_attributions
from xaicli.io.layout import ROW
from xaicli.io.tables import TableSource, open_table
from xaicli.models.adapter import is_estimator_like
from xaicli.models.loader import ModelSource, load_model
from xaicli.trust.fairness import FairnessReport, attribution_means, fairness_report
from xaicli.trust.scoring import MISSING, RowScorer, class_labels, label_text, model_features

BATCH_ROWS = 8192
OUTPUT_KINDS = ("auto", "proba", "decision", "predict")
TRUE_LABELS = ("1", "True")
BINARY_LABELS = ("0", "1", "True", "False")


@dataclass(frozen=True)
class FairnessRequest:
    model: str
    data: Path
    group: str
    target: str | None = None
    threshold: float | None = None
    positive_class: str | None = None
    output: str = "auto"
    features: tuple[str, ...] = ()
    attributions: Path | None = None
    trust_model: bool = False


@dataclass(frozen=True)
class DecisionRule:
    """How a row is selected: ``score >= threshold`` on column ``column`` of the model's
    ``kind`` output, or (``column`` None) its predicted label equals ``positive``."""

    kind: str  # proba | decision | predict | call
    column: int | None
    threshold: float | None
    positive: str | None  # the positive class of a classifier

    def describe(self) -> str:
        if self.column is None:
            return f"predicted class == {self.positive}"
        score = {
            "proba": f"P({self.positive})",
            "decision": f"margin of {self.positive}",
        }.get(self.kind, "prediction")
        return f"{score} >= {self.threshold:g}"


@dataclass(frozen=True)
class FairnessResult:
    report: FairnessReport
    rule: DecisionRule
    group: str
    attribution_output: str | None = None
    attribution_means: pd.DataFrame | None = None  # groups x features
    notes: tuple[str, ...] = ()


def check_request(request: FairnessRequest) -> None:
    """Option values that are wrong whatever the files hold."""
    if request.output not in OUTPUT_KINDS:
        raise UsageError(
            f"--output must be one of {', '.join(OUTPUT_KINDS)}; got {request.output!r}"
        )
    if request.threshold is not None and not math.isfinite(request.threshold):
        raise UsageError(f"--threshold must be a finite number; got {request.threshold}")


def run_fairness(request: FairnessRequest) -> FairnessResult:
    """Every check on the input runs before the model scores a row."""
    check_request(request)
    attributions = (
        read_attributions(request.attributions, interactions=False)
        if request.attributions
        else None
    )
    id_columns = _join_columns(attributions)
    source = open_table(request.data, text_columns=id_columns)
    for option, column in (("--group", request.group), ("--target", request.target)):
        if column is not None and column not in source.schema.names:
            raise DataError(
                f"{option} column {column!r} is not in {request.data}; "
                f"it has {', '.join(source.schema.names)}"
            )
    missing_ids = [c for c in id_columns if c not in source.schema.names]
    if missing_ids:
        raise DataError(
            f"{request.data} lacks the id column(s) {', '.join(missing_ids)} of "
            f"{request.attributions}, needed to join the attributions to the groups"
        )
    model = load_model(ModelSource(request.model, trust=request.trust_model))
    rule = decision_rule(model, request.output, request.positive_class, request.threshold)
    output = _attribution_output(attributions, rule) if attributions is not None else None
    leave_out = [request.group, request.target or "", *id_columns]
    features = model_features(model, source, request.features, leave_out)
    groups, positive, ids = _read_labels(source, request, rule, class_labels(model), id_columns)
    group_labels = list(dict.fromkeys(groups))
    codes = pd.Categorical(groups, categories=group_labels).codes.astype(np.intp)
    selected = _selected(model, rule, source, features)
    report = fairness_report(codes, group_labels, selected, positive)
    notes: tuple[str, ...] = ()
    one_sided = report.one_sided_groups()
    if one_sided:
        notes += (
            f"group(s) {', '.join(one_sided)} have only positive or only negative target "
            "rows: their missing rate counts as 0 in the gaps, as in fairlearn",
        )
    if attributions is None or output is None:
        return FairnessResult(report, rule, request.group, notes=notes)
    means, joined = _attribution_means(attributions, output, groups, ids)
    return FairnessResult(report, rule, request.group, output, means, notes + joined)


def decision_rule(
    model, output: str, positive_class: str | None, threshold: float | None
) -> DecisionRule:
    """Which output is compared with which threshold; UsageError for impossible choices."""
    labels = class_labels(model)
    if not labels:
        if positive_class is not None:
            raise UsageError("--class applies to classifiers; this model is not one")
        if output not in ("auto", "predict"):
            raise UsageError(f"--output {output} needs a classifier; this model is not one")
        if threshold is None:
            raise UsageError(
                "pass --threshold: a row is selected when the model's prediction is at least "
                "the threshold, and a regressor's or callable's output has no default one"
            )
        kind = "predict" if is_estimator_like(model) else "call"
        return DecisionRule(kind, 0, threshold, None)
    if positive_class is not None:
        if positive_class not in labels:
            raise UsageError(
                f"unknown class {positive_class!r} for --class: the model's classes are "
                f"{', '.join(labels)}"
            )
        positive = positive_class
    elif len(labels) == 2:
        positive = labels[1]
    else:
        raise UsageError(
            f"the model has {len(labels)} classes ({', '.join(labels)}); name the one that "
            "counts as selected with --class"
        )
    kind = output if output != "auto" else _default_kind(model)
    method = {"proba": "predict_proba", "decision": "decision_function", "predict": "predict"}
    if not hasattr(model, method[kind]):
        raise UsageError(f"--output {kind} needs the model's {method[kind]}, which it lacks")
    if kind == "predict":
        if threshold is not None:
            raise UsageError(
                "--threshold applies to scores; with --output predict a row is selected when "
                "its predicted class is the positive class"
            )
        return DecisionRule(kind, None, None, positive)
    if kind == "proba":
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise UsageError(f"--threshold for probabilities must be in [0, 1]; got {threshold}")
        return DecisionRule(
            kind, labels.index(positive), 0.5 if threshold is None else threshold, positive
        )
    if len(labels) == 2 and positive != labels[1]:
        raise UsageError(
            f"a binary decision_function is the margin of class {labels[1]!r} only; "
            "use --output proba to select the other class"
        )
    column = 0 if len(labels) == 2 else labels.index(positive)
    return DecisionRule(kind, column, 0.0 if threshold is None else threshold, positive)


def _default_kind(model) -> str:
    if hasattr(model, "predict_proba"):
        return "proba"
    return "decision" if hasattr(model, "decision_function") else "predict"


def _join_columns(attributions: AttributionTable | None) -> list[str]:
    """The data's columns that join it to the attribution rows (none for ``row``)."""
    if attributions is None or attributions.id_columns == (ROW,):
        return []
    return list(attributions.id_columns)


def _attribution_output(attributions: AttributionTable, rule: DecisionRule) -> str:
    outputs = attributions.outputs
    if rule.positive is not None and rule.positive in outputs:
        return rule.positive
    if len(outputs) == 1:
        return outputs[0]
    raise DataError(
        f"the attribution file explains the outputs {', '.join(outputs)}, none of them the "
        f"positive class {rule.positive!r}; explain that class (xai explain --class)"
    )


def _read_labels(
    source: TableSource,
    request: FairnessRequest,
    rule: DecisionRule,
    classes: tuple[str, ...],
    id_columns: list[str],
) -> tuple[list[str], np.ndarray | None, pd.DataFrame | None]:
    """Each row's group label, target (True = positive) and join ids, read (and checked)
    before the model scores any row."""
    columns = list(
        dict.fromkeys([request.group, *([request.target] if request.target else []), *id_columns])
    )
    groups: list[str] = []
    targets: list[str] = []
    id_parts: list[pa.RecordBatch] = []
    for batch in source.iter_batches(columns, BATCH_ROWS):
        groups.extend(_labels(batch.column(request.group)))
        if request.target:
            targets.extend(_labels(batch.column(request.target)))
        if id_columns:
            id_parts.append(batch.select(id_columns))
    if not groups:
        raise DataError(f"{request.data} has no rows")
    positive = _positive(targets, request, rule, classes) if request.target else None
    ids = None
    if id_columns:
        ids = pa.Table.from_batches(id_parts).to_pandas()
    return groups, positive, ids


def _labels(column: pa.Array) -> list[str]:
    """Labels of a column's values, one Python step per distinct value."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    encoded = column.dictionary_encode()
    names = [label_text(v) for v in encoded.dictionary.to_pylist()] + [label_text(None)]
    indices = encoded.indices.fill_null(len(names) - 1).to_numpy(zero_copy_only=False)
    return list(np.asarray(names, dtype=object)[indices])


def _positive(
    targets: list[str], request: FairnessRequest, rule: DecisionRule, classes: tuple[str, ...]
) -> np.ndarray:
    """The target as True (positive) / False: with a classifier, the positive class against
    the others (every value must be a class); otherwise 0/1 or True/False."""
    values = np.asarray(targets, dtype=object)
    seen = list(dict.fromkeys(targets))
    if MISSING in seen:
        row = targets.index(MISSING)
        raise DataError(
            f"--target column {request.target!r} has a missing value (row {row}); "
            "fill it or leave the row out"
        )
    if rule.positive is not None:
        unknown = [v for v in seen if v not in classes]
        if unknown:
            raise DataError(
                f"--target column {request.target!r} holds {unknown[0]!r}, which is not a class "
                f"of the model ({', '.join(classes)})"
            )
        return values == rule.positive  # one class against the others
    unknown = [v for v in seen if v not in BINARY_LABELS]
    if unknown or len(seen) > 2:
        raise DataError(
            f"--target column {request.target!r} is not binary: it holds {', '.join(seen[:5])}"
            "; use 0/1 or True/False (with a classifier, its class labels)"
        )
    return np.isin(values, TRUE_LABELS)


def _selected(
    model, rule: DecisionRule, source: TableSource, features: tuple[str, ...]
) -> np.ndarray:
    """(n_rows,) bool: the rows the model selects, scored batch by batch."""
    scorer = RowScorer(model, rule.kind, source, features)
    parts: list[np.ndarray] = []
    offset = 0
    for batch in source.iter_batches(features, BATCH_ROWS):
        if rule.column is None:
            parts.append(np.asarray(scorer.labels(batch, offset), dtype=object) == rule.positive)
        else:
            values = scorer.raw(batch, offset)
            if rule.positive is None and values.shape[1] != 1:
                raise DataError(
                    f"the model returns {values.shape[1]} values per row; fairness needs one "
                    "score per row"
                )
            parts.append(values[:, rule.column] >= rule.threshold)
        offset += batch.num_rows
    return np.concatenate(parts).astype(bool)


def _attribution_means(
    attributions: AttributionTable, output: str, groups: list[str], ids: pd.DataFrame | None
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Mean attribution per group and feature, joined on the id columns (or the position)."""
    rows = _wide_rows(attributions, output)
    keys = list(attributions.id_columns)
    data = ids.copy() if ids is not None else pd.DataFrame({ROW: np.arange(len(groups))})
    data["__group"] = groups
    if data.duplicated(keys).any():
        first = data.loc[data.duplicated(keys), keys].iloc[0].tolist()
        raise DataError(
            f"the id {first} appears more than once in the data; the attribution rows "
            "cannot be joined to one group each"
        )
    for key in keys:  # ids stored as text on one side and numbers on the other
        if data[key].dtype != rows[key].dtype:
            data[key] = data[key].map(label_text)
            rows[key] = rows[key].map(label_text)
    joined = rows.merge(data, on=keys, how="inner", validate="one_to_one")
    notes = []
    if len(joined) < len(rows):
        notes.append(f"{len(rows) - len(joined)} attribution row(s) match no data row: left out")
    if len(joined) < len(data):
        notes.append(
            f"{len(data) - len(joined)} data row(s) have no attribution row: left out of "
            "the mean attributions"
        )
    if joined.empty:
        raise DataError("no attribution row matches a data row on " + ", ".join(keys))
    features = attributions.features
    return attribution_means(joined, features, joined["__group"]), tuple(notes)


def _wide_rows(attributions: AttributionTable, output: str) -> pd.DataFrame:
    """One row per input row of ``output``: the id columns and one column per feature."""
    frame = attributions.frame
    frame = frame[frame["output"].astype(str) == output]
    keys = list(attributions.id_columns)
    if attributions.layout == "wide":
        return frame[[*keys, *attributions.features]].reset_index(drop=True)
    wide = frame.pivot(index=keys, columns="feature", values="attribution")
    return wide.reset_index()[[*keys, *attributions.features]]
