"""A fairness result as data: the long table of ``--out x.csv`` (and of stdout when it is
not a terminal), or the JSON document of ``--out x.json``."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from xaicli.errors import UsageError
from xaicli.trust.fairness_run import FairnessResult

FORMATS = {".csv": "csv", ".json": "json"}
COLUMNS = ("section", "group", "name", "value")


def out_format(out: str) -> str:
    """csv or json from ``--out``'s extension (``-``: CSV on stdout)."""
    if out == "-":
        return "csv"
    found = FORMATS.get(Path(out).suffix.lower())
    if found is None:
        raise UsageError(f"cannot tell the format of --out {out}; use .csv or .json, or '-'")
    return found


def long_table(result: FairnessResult) -> pd.DataFrame:
    """One row per number: ``section`` (group | overall | attribution), ``group`` (empty
    for overall), ``name`` (the metric, or the feature of a mean attribution), ``value``."""
    rows: list[tuple[str, str, str, Any]] = []
    for group in result.report.groups:
        for name, value in asdict(group).items():
            if name != "group" and value is not None:
                rows.append(("group", group.group, name, value))
    rows.append(("overall", "", "selected_when", result.rule.describe()))
    for name, value in result.report.overall().items():
        if value is not None:
            rows.append(("overall", "", name, value))
    if result.attribution_means is not None:
        for group, means in result.attribution_means.iterrows():
            for feature, value in means.items():
                rows.append(("attribution", str(group), str(feature), float(value)))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def json_document(result: FairnessResult) -> str:
    document: dict[str, Any] = {
        "group_column": result.group,
        "selected_when": result.rule.describe(),
        "groups": [asdict(g) for g in result.report.groups],
        "overall": result.report.overall(),
    }
    if result.attribution_means is not None:
        document["attributions"] = {
            "output": result.attribution_output,
            "mean_by_group": {
                str(group): {str(f): float(v) for f, v in means.items()}
                for group, means in result.attribution_means.iterrows()
            },
        }
    return json.dumps(_no_nan(document), indent=2) + "\n"


def _no_nan(value: Any) -> Any:
    """NaN (a rate with no rows to count) as null: JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value
