"""``xai fairness``: group metrics of a model's decisions, with an exit code for a gap."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated

import typer

from xaicli.cli import options as o
from xaicli.cli.console import DEFAULT_LOG_FORMAT, Reporter
from xaicli.cli.guard import guarded
from xaicli.errors import ThresholdCrossed, UsageError

EXAMPLES = """\
[bold]Examples[/bold]

  xai fairness --model penguins.joblib --data penguins.parquet --group sex --target species --class Gentoo

  xai fairness --model churn.joblib --data customers.parquet --group region --threshold 0.3 --out fairness.json

  xai fairness --model churn.joblib --data day.parquet --group region --target churned --fail-above 0.1 --fail-metric equalized_odds_difference

  xai fairness --model churn.joblib --data day.parquet --group region --attributions shap.parquet
"""

Opt = typer.Option
Overwrite = Annotated[bool, Opt("--overwrite", help="Replace an existing --out file.")]
Group = Annotated[
    str | None,
    Opt(
        help="Required. Column of the groups (text, integers or categories; a missing value is "
        "the group '(missing)').",
        show_default=False,
    ),
]
Target = Annotated[
    str | None,
    Opt(
        help="True outcome column, for true/false positive rates: a classifier's class labels "
        "(--class against the others), else 0/1 or True/False.",
        show_default=False,
    ),
]
Threshold = Annotated[
    float | None,
    Opt(
        help="A row is selected when its score is at least this: default 0.5 for probabilities, "
        "0 for margins; required for a regressor or callable.",
        show_default=False,
    ),
]
PositiveClass = Annotated[
    str | None,
    Opt(
        "--class",
        help="The class that counts as selected. Default: the positive class of a binary "
        "classifier (required for a multiclass one).",
        show_default=False,
    ),
]
ScoreOutput = Annotated[
    str,
    Opt(
        "--output",
        help="What is thresholded: auto (proba, else decision) | proba | decision | predict "
        "(predicted class == --class, no threshold).",
    ),
]
Attributions = Annotated[
    Path | None,
    Opt(
        help="An attribution table of these rows (xai explain): adds the mean attribution of "
        "each feature per group, joined on its id columns.",
        show_default=False,
    ),
]
FailAbove = Annotated[
    float | None,
    Opt(help="Exit with code 3 when --fail-metric is above this gap.", show_default=False),
]
FailMetric = Annotated[
    str,
    Opt(
        help="The gap --fail-above watches: demographic_parity_difference | "
        "equal_opportunity_difference | equalized_odds_difference (these two need --target)."
    ),
]
FairnessOut = Annotated[
    str | None,
    Opt(
        help="Write the results to a .csv (long table) or .json file, or '-' for CSV on stdout. "
        "Default: tables on a terminal, CSV on a pipe.",
        show_default=False,
    ),
]


def fairness(
    model: o.Model = None,
    data: o.Data = None,
    group: Group = None,
    target: Target = None,
    threshold: Threshold = None,
    class_: PositiveClass = None,
    output: ScoreOutput = "auto",
    features: o.Features = None,
    attributions: Attributions = None,
    fail_above: FailAbove = None,
    fail_metric: FailMetric = "demographic_parity_difference",
    out: FairnessOut = None,
    overwrite: Overwrite = False,
    trust_model: o.TrustModel = False,
    log_format: o.LogFormat = DEFAULT_LOG_FORMAT,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Selection rates, true/false positive rates and fairness gaps of a model's decisions
    per group, as fairlearn defines them."""
    reporter = Reporter(quiet=quiet, log_format=log_format)

    def run() -> None:
        from xaicli.cli.fairness_view import print_tables, write_result
        from xaicli.config import resolve_names
        from xaicli.trust.fairness import GAPS, NEEDS_TARGET
        from xaicli.trust.fairness_run import FairnessRequest, run_fairness

        required = (("--model", model), ("--data", data), ("--group", group))
        missing = [name for name, value in required if not value]
        if missing:
            raise UsageError(f"{' and '.join(missing)} required; see 'xai fairness --help'")
        if fail_metric not in GAPS:
            raise UsageError(f"--fail-metric must be one of {', '.join(GAPS)}; got {fail_metric!r}")
        if fail_metric in NEEDS_TARGET and fail_above is not None and target is None:
            raise UsageError(f"--fail-metric {fail_metric} needs --target")
        if fail_above is not None and not (math.isfinite(fail_above) and fail_above >= 0):
            raise UsageError(f"--fail-above must be a gap of 0 or more; got {fail_above}")
        request = FairnessRequest(
            model=str(model),
            data=Path(str(data)),
            group=str(group),
            target=target,
            threshold=threshold,
            positive_class=class_,
            output=output,
            features=resolve_names(tuple(features or ()), ()),
            attributions=attributions,
            trust_model=trust_model,
        )
        write = write_result(out, request, overwrite)  # its checks come before any work
        result = run_fairness(request)
        for note in result.notes:
            reporter.note(note)
        reporter.flush_notes()
        if write is not None:
            write(result)
        elif sys.stdout.isatty():
            print_tables(result)
        else:
            write_result("-", request, overwrite)(result)  # type: ignore[misc]
        gap = getattr(result.report, fail_metric)
        if fail_above is not None and gap is not None and gap > fail_above:
            raise ThresholdCrossed(f"{fail_metric} is {gap:.4g}, above --fail-above {fail_above:g}")

    guarded(debug, run, reporter)
