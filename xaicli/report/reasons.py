"""Reason codes: per row and output, the K features (or named groups of features) that
moved the prediction most, with the row's input values, and a plain sentence.

The library API (pure pandas/numpy, no files but the groups file):

- :func:`load_reason_groups` reads a ``--reason-groups`` TOML file;
- :func:`reason_units` turns the table's features and the groups into the units a reason
  names (a group, or a feature no group holds);
- :func:`reason_frame` computes the reason columns of a batch of rows;
- :func:`reason_columns` / :func:`reason_schema` name and type those columns;
- :func:`format_value` writes an input value for people.

Ordering: ``both`` by |attribution|, largest first; ``up`` only positive attributions,
largest first; ``down`` only negative ones, most negative first (what pulled the
prediction down, as adverse-action reasons are). A unit whose attribution is 0 or missing
is never a reason; a row with fewer than K reasons leaves the rest empty. Ties keep the
order of the units (their first feature's position in the table). A group's attribution
is the sum of its features' attributions: exact, as attributions add up.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
import pyarrow as pa

from xaicli.errors import UsageError

__all__ = [
    "DIRECTIONS",
    "ReasonGroup",
    "ReasonSpec",
    "ReasonUnits",
    "format_value",
    "load_reason_groups",
    "reason_columns",
    "reason_frame",
    "reason_schema",
    "reason_units",
]

Direction = Literal["both", "up", "down"]
DIRECTIONS: tuple[str, ...] = get_args(Direction)
#: Name of the sentence column.
SUMMARY = "summary"
MISSING = "missing"


@dataclass(frozen=True)
class ReasonGroup:
    """Features whose attributions are summed into one reason, with an optional code (e.g.
    an adverse-action code) and text (the statement given to people)."""

    name: str
    features: tuple[str, ...]
    code: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class ReasonSpec:
    """What reasons to add: ``top`` per row, in ``direction``, over ``groups`` (none: each
    feature is its own reason), and with ``text`` a ``summary`` sentence."""

    top: int
    direction: Direction = "both"
    groups: tuple[ReasonGroup, ...] = ()
    text: bool = False


@dataclass(frozen=True)
class ReasonUnits:
    """What a reason can name: ``names[u]`` sums the attributions of the features at
    ``members[u]`` (positions in the table's features). ``codes``/``texts`` are None when
    no group has one."""

    names: tuple[str, ...]
    members: tuple[tuple[int, ...], ...]
    features: tuple[str, ...]
    codes: tuple[str | None, ...] | None = None
    texts: tuple[str | None, ...] | None = None

    def matrix(self) -> np.ndarray:
        """(n_features, n_units) 0/1: attributions @ matrix = the units' attributions."""
        out = np.zeros((len(self.features), len(self.names)))
        for unit, members in enumerate(self.members):
            out[list(members), unit] = 1.0
        return out


def load_reason_groups(path: str | Path) -> tuple[ReasonGroup, ...]:
    """Read a groups file::

        [[group]]
        name = "payment history"          # what reason_k says
        features = ["late_payments", "months_since_default"]
        code = "R07"                      # optional: reason_k_code
        text = "Delinquency on accounts"  # optional: reason_k_text

    Raises UsageError for a file that cannot be read or is not of this shape."""
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--reason-groups file not found: {path}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"--reason-groups {path} is not a readable TOML file: {exc}") from None
    unknown = sorted(set(document) - {"group"})
    tables = document.get("group")
    if unknown or not isinstance(tables, list) or not tables:
        raise UsageError(
            f"--reason-groups {path} must hold [[group]] tables (name, features, optional "
            f"code and text){f'; got {unknown[0]!r}' if unknown else ''}"
        )
    return tuple(_group(table, number, path) for number, table in enumerate(tables, start=1))


def _group(table: Any, number: int, path: Path) -> ReasonGroup:
    where = f"--reason-groups {path} [[group]] {number}"
    if not isinstance(table, dict):
        raise UsageError(f"{where} is not a table")
    unknown = sorted(set(table) - {"name", "features", "code", "text"})
    if unknown:
        raise UsageError(
            f"{where}: unknown key {unknown[0]!r}; keys are name, features, code, text"
        )
    name, features = table.get("name"), table.get("features")
    if not isinstance(name, str) or not name.strip():
        raise UsageError(f"{where}: name must be a non-empty string; got {name!r}")
    if (
        not isinstance(features, list)
        or not features
        or not all(isinstance(f, str) for f in features)
    ):
        raise UsageError(f"{where}: features must be a list of column names; got {features!r}")
    for key in ("code", "text"):
        if key in table and not isinstance(table[key], str):
            raise UsageError(f"{where}: {key} must be a string; got {table[key]!r}")
    return ReasonGroup(name, tuple(features), table.get("code"), table.get("text"))


def reason_units(features: Sequence[str], groups: Sequence[ReasonGroup] = ()) -> ReasonUnits:
    """The units of ``features`` (the table's, in order): each group, and each feature no
    group holds, ordered by their first feature's position. Raises UsageError for a group
    naming a feature the table lacks, a feature in two groups, or a name used twice."""
    features = tuple(features)
    position = {f: j for j, f in enumerate(features)}
    owner: dict[str, str] = {}
    for group in groups:
        for feature in group.features:
            if feature not in position:
                raise UsageError(
                    f"reason group {group.name!r} names {feature!r}, which is not a feature "
                    f"of the table ({', '.join(features)})"
                )
            if feature in owner:
                raise UsageError(
                    f"feature {feature!r} is in reason groups {owner[feature]!r} and "
                    f"{group.name!r}; put it in one"
                )
            owner[feature] = group.name
    units: list[tuple[int, str, tuple[int, ...], str | None, str | None]] = []
    for group in groups:
        members = tuple(sorted(position[f] for f in group.features))
        units.append((members[0], group.name, members, group.code, group.text))
    units += [(j, f, (j,), None, None) for j, f in enumerate(features) if f not in owner]
    units.sort(key=lambda unit: unit[0])
    names = tuple(u[1] for u in units)
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"reason name {twice[0]!r} is used twice (a group and a feature?)")
    has_code = any(u[3] is not None for u in units)
    has_text = any(u[4] is not None for u in units)
    return ReasonUnits(
        names=names,
        members=tuple(u[2] for u in units),
        features=features,
        codes=tuple(u[3] for u in units) if has_code else None,
        texts=tuple(u[4] for u in units) if has_text else None,
    )


def reason_columns(spec: ReasonSpec, units: ReasonUnits) -> list[str]:
    """The columns :func:`reason_frame` adds, in order: per k ``reason_k``, ``reason_k_code``
    and ``reason_k_text`` (when groups have them), ``reason_k_value``,
    ``reason_k_attribution``; then ``summary`` with ``text``."""
    columns = []
    for k in range(1, spec.top + 1):
        columns.append(f"reason_{k}")
        if units.codes is not None:
            columns.append(f"reason_{k}_code")
        if units.texts is not None:
            columns.append(f"reason_{k}_text")
        columns += [f"reason_{k}_value", f"reason_{k}_attribution"]
    if spec.text:
        columns.append(SUMMARY)
    return columns


def reason_schema(spec: ReasonSpec, units: ReasonUnits) -> pa.Schema:
    """Arrow types of the reason columns: attributions float64, the rest text."""
    return pa.schema(
        (name, pa.float64() if name.endswith("_attribution") else pa.string())
        for name in reason_columns(spec, units)
    )


def reason_frame(
    attributions: np.ndarray,
    spec: ReasonSpec,
    units: ReasonUnits,
    *,
    values: pd.DataFrame | None = None,
    outputs: Sequence[str] | None = None,
    predictions: np.ndarray | None = None,
    base_values: np.ndarray | None = None,
    output_kind: str | None = None,
) -> pd.DataFrame:
    """The reason columns of ``n`` rows (a row per input row and output).

    attributions: (n, n_features), the features in ``units.features`` order.
    values:       (n rows) the rows' raw input values, a column per feature; None leaves
                  ``reason_k_value`` empty and the sentence without values.
    outputs, predictions, base_values: (n,) each, for the sentence.
    output_kind:  proba | decision name a class in the sentence; others do not.
    """
    attributions = np.asarray(attributions, dtype=np.float64)
    n = attributions.shape[0]
    unit_values = attributions @ units.matrix()  # (n, n_units)
    chosen = _choose(unit_values, spec.direction, spec.top)  # (n, top), -1 = none
    frame: dict[str, Any] = {}
    rows = np.arange(n)
    for k in range(spec.top):
        unit = chosen[:, k]
        has = unit >= 0
        safe = np.where(has, unit, 0)
        frame[f"reason_{k + 1}"] = _pick(units.names, unit)
        if units.codes is not None:
            frame[f"reason_{k + 1}_code"] = _pick(units.codes, unit)
        if units.texts is not None:
            frame[f"reason_{k + 1}_text"] = _pick(units.texts, unit)
        frame[f"reason_{k + 1}_value"] = _values(values, units, unit)
        frame[f"reason_{k + 1}_attribution"] = np.where(has, unit_values[rows, safe], np.nan)
    if spec.text:
        frame[SUMMARY] = _sentences(
            frame, spec.top, n, outputs, predictions, base_values, output_kind, values is not None
        )
    return pd.DataFrame(frame, index=pd.RangeIndex(n))


def _choose(unit_values: np.ndarray, direction: str, top: int) -> np.ndarray:
    """(n, top) unit indices ordered by contribution, -1 where a row has fewer reasons."""
    if direction == "up":
        key, eligible = -unit_values, unit_values > 0
    elif direction == "down":
        key, eligible = unit_values, unit_values < 0
    else:
        key, eligible = -np.abs(unit_values), unit_values != 0
    eligible &= ~np.isnan(unit_values)
    key = np.where(eligible, key, np.inf)
    # stable: ties keep the units' order
    order = np.argsort(key, axis=1, kind="stable")[:, :top]
    taken = np.take_along_axis(eligible, order, axis=1)
    chosen = np.where(taken, order, -1)
    if chosen.shape[1] < top:  # fewer units than K
        pad = np.full((chosen.shape[0], top - chosen.shape[1]), -1)
        chosen = np.concatenate([chosen, pad], axis=1)
    return chosen


def _pick(labels: Sequence[str | None], unit: np.ndarray) -> np.ndarray:
    table = np.array([*labels, None], dtype=object)
    return table[np.where(unit >= 0, unit, len(labels))]


def _values(values: pd.DataFrame | None, units: ReasonUnits, unit: np.ndarray) -> np.ndarray:
    """Each row's value of its chosen unit, formatted: a feature's value, or for a group
    its features' ``name = value`` joined with ', '."""
    out = np.full(len(unit), None, dtype=object)
    if values is None:
        return out
    for u in np.unique(unit[unit >= 0]):
        rows = np.flatnonzero(unit == u)
        members = [units.features[j] for j in units.members[u]]
        if len(members) == 1:
            out[rows] = [format_value(v) for v in values[members[0]].iloc[rows]]
            continue
        columns = [[format_value(v) for v in values[f].iloc[rows]] for f in members]
        out[rows] = [
            ", ".join(f"{f} = {v}" for f, v in zip(members, row, strict=True))
            for row in zip(*columns, strict=True)
        ]
    return out


def format_value(value: Any, digits: int = 4) -> str:
    """An input value for people: numbers to ``digits`` significant digits (never rounding
    away whole digits: 123456.7 -> 123457; very small or large ones in e-notation), text
    and categories as they are, NaN, None and empty text (a CSV's empty field) as
    "missing"."""
    if value is None or value is pd.NA or value is pd.NaT or value == "":
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return format_number(float(value), digits)
    return str(value)


def format_number(value: float, digits: int = 4, *, sign: bool = False) -> str:
    """``value`` to ``digits`` significant digits, trailing zeros dropped."""
    if math.isnan(value):
        return MISSING
    if math.isinf(value):
        return ("+" if sign and value > 0 else "") + ("inf" if value > 0 else "-inf")
    plus = "+" if sign and value >= 0 else ""
    if value == 0:
        return plus + "0"
    exponent = math.floor(math.log10(abs(value)))
    if exponent < -4 or exponent >= 15:
        mantissa, _, power = f"{value:.{digits - 1}e}".partition("e")
        return plus + mantissa.rstrip("0").rstrip(".") + "e" + power
    text = f"{value:.{max(0, digits - 1 - exponent)}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return plus + ("0" if text == "-0" else text)


def _sentences(
    table: dict[str, np.ndarray],
    top: int,
    n: int,
    outputs: Sequence[str] | None,
    predictions: np.ndarray | None,
    base_values: np.ndarray | None,
    output_kind: str | None,
    with_values: bool,
) -> list[str]:
    names = [table[f"reason_{k}"] for k in range(1, top + 1)]
    shown = [table[f"reason_{k}_value"] for k in range(1, top + 1)]
    amounts = [table[f"reason_{k}_attribution"] for k in range(1, top + 1)]
    out = []
    for i in range(n):
        prediction = None if predictions is None else float(predictions[i])
        base = None if base_values is None else float(base_values[i])
        output = None if outputs is None else str(outputs[i])
        reasons = [
            (names[k][i], shown[k][i] if with_values else None, float(amounts[k][i]))
            for k in range(top)
            if names[k][i] is not None
        ]
        out.append(sentence(reasons, prediction, base, output, output_kind))
    return out


def sentence(
    reasons: Sequence[tuple[str, str | None, float]],
    prediction: float | None,
    base_value: float | None,
    output: str | None,
    output_kind: str | None = None,
) -> str:
    """One plain sentence: "Predicted 0.82 for class 'malignant' (baseline 0.37), mostly
    because worst radius = 23.1 (+0.21) and mean concavity = 0.19 (+0.12); worst texture =
    14.2 (-0.05) pulled it down."

    reasons: (name, formatted value or None, attribution), in order. The reasons that moved
    the prediction the way it went from the baseline come after "mostly because"; the
    others are said to have pulled it down (or pushed it up). Without a prediction and a
    baseline: "For class 'malignant': the main reasons are ..."."""
    subject = _subject(prediction, base_value, output, output_kind)
    if prediction is None or base_value is None:  # a long table: no prediction to explain
        listed = _and([_reason(r) for r in reasons]) if reasons else "none"
        return f"{subject}{': t' if subject else 'T'}he main reasons are {listed}."
    rising = prediction >= base_value
    main = [r for r in reasons if (r[2] > 0) == rising]
    other = [r for r in reasons if (r[2] > 0) != rising]
    text = subject
    if main:
        text += ", mostly because " + _and([_reason(r) for r in main])
    if other:
        verb = "pushed it up" if rising is False else "pulled it down"
        text += "; " + _and([_reason(r) for r in other]) + " " + verb
    if not reasons:
        text += "; no feature moved it"
    return text + "."


def _subject(
    prediction: float | None, base_value: float | None, output: str | None, kind: str | None
) -> str:
    if output is None:
        target = ""
    elif kind in ("proba", "decision"):
        target = f" for class '{output}'"
    elif output == "prediction":
        target = ""
    else:
        target = f" for {output}"
    baseline = "" if base_value is None else f" (baseline {format_number(base_value, 4)})"
    if prediction is None:
        return f"For {target.removeprefix(' for ')}{baseline}" if target else ""
    return f"Predicted {format_number(prediction, 4)}{target}{baseline}"


def _reason(reason: tuple[str, str | None, float]) -> str:
    name, value, amount = reason
    shown = (
        name if value is None else (f"{name} ({value})" if " = " in value else f"{name} = {value}")
    )
    return f"{shown} ({format_number(amount, 2, sign=True)})"


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
