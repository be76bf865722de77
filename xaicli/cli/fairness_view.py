"""How ``xai fairness`` shows its result: rich tables on a terminal, or CSV/JSON."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from xaicli.io.destinations import check_absent, check_not_input, check_writable_folder
from xaicli.io.writer import write_text_atomic
from xaicli.trust.fairness_output import json_document, long_table, out_format
from xaicli.trust.fairness_run import FairnessRequest, FairnessResult

MAX_FEATURES_SHOWN = 15


def write_result(
    out: str | None, request: FairnessRequest, overwrite: bool
) -> Callable[[FairnessResult], None] | None:
    """A function writing the result to ``out`` (None: no --out), after checking ``out``
    now, before any work: its format, its folder, that it is no input and may be written."""
    if out is None:
        return None
    fmt = out_format(out)
    if out == "-":
        return _to_stdout
    path = Path(out)
    check_writable_folder(path, "--out")
    inputs = [("data", request.data)]
    if Path(request.model).is_file():
        inputs.append(("model", Path(request.model)))
    if request.attributions is not None:
        inputs.append(("attributions", request.attributions))
    check_not_input(path, "--out", inputs)
    check_absent(path, "--out", may_replace=overwrite)

    def write(result: FairnessResult) -> None:
        text = json_document(result) if fmt == "json" else long_table(result).to_csv(index=False)
        write_text_atomic(path, text, replace=overwrite)

    return write


def _to_stdout(result: FairnessResult) -> None:
    sys.stdout.write(long_table(result).to_csv(index=False))
    sys.stdout.flush()


def print_tables(result: FairnessResult) -> None:
    """The result as tables on stdout (a terminal)."""
    console = Console(highlight=False)
    report = result.report
    with_target = report.equal_opportunity_difference is not None
    groups = Table(title=f"{result.group}: selected when {result.rule.describe()}")
    for name in ("group", "rows", "selected", "selection rate", "vs highest"):
        groups.add_column(name, justify="left" if name == "group" else "right")
    if with_target:
        groups.add_column("TPR", justify="right")
        groups.add_column("FPR", justify="right")
    for g in report.groups:
        cells = [g.group, f"{g.count:,}", f"{g.selected:,}", _num(g.selection_rate)]
        flag = " [red]< 4/5[/red]" if g.impact_ratio < 0.8 else ""
        cells.append(_num(g.impact_ratio) + flag)
        if with_target:
            cells += [_num(g.true_positive_rate), _num(g.false_positive_rate)]
        groups.add_row(*cells)
    console.print(groups)
    overall = Table(title="between groups")
    overall.add_column("metric")
    overall.add_column("value", justify="right")
    overall.add_row("demographic parity difference", _num(report.demographic_parity_difference))
    broken = " [red](four-fifths rule broken)[/red]" if report.four_fifths_rule_broken else ""
    overall.add_row("demographic parity ratio", _num(report.demographic_parity_ratio) + broken)
    if with_target:
        overall.add_row("equal opportunity difference", _num(report.equal_opportunity_difference))
        overall.add_row("equalized odds difference", _num(report.equalized_odds_difference))
    console.print(overall)
    if result.attribution_means is not None:
        means = result.attribution_means
        spread = (means.max() - means.min()).sort_values(ascending=False)
        table = Table(title=f"mean attribution ({result.attribution_output}) by group")
        table.add_column("feature")
        for group in means.index:
            table.add_column(str(group), justify="right")
        table.add_column("spread", justify="right")
        for feature in spread.index[:MAX_FEATURES_SHOWN]:
            table.add_row(str(feature), *(_num(v) for v in means[feature]), _num(spread[feature]))
        console.print(table)


def _num(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.3f}"
