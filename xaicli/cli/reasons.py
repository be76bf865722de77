"""``xai reasons``: reason codes (and sentences) of an existing attribution table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from xaicli.cli import options as o
from xaicli.cli.console import DEFAULT_LOG_FORMAT, Reporter
from xaicli.cli.guard import guarded
from xaicli.cli.summarize import Attributions, BatchRows, ReplaceOut
from xaicli.config import REASON_DIRECTIONS
from xaicli.errors import UsageError
from xaicli.io.attributions import BATCH_ROWS

EXAMPLES = """\
[bold]Examples[/bold]

  xai reasons penguins.attributions.parquet --data penguins.parquet --top 3 --out reasons.csv

  xai reasons loans.attributions.parquet --data loans.parquet --reason-direction down \\
      --reason-groups adverse_action.toml --text --out -
"""

ReasonsData = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="The explained rows (Parquet/CSV), joined on the id columns (or row position): "
        "the source of reason_k_value and of the values in sentences. Without it they are empty.",
        show_default=False,
    ),
]
Top = Annotated[int, typer.Option(help="Reasons per row and output.")]
Text = Annotated[
    bool, typer.Option("--text", help="Add a 'summary' column: one plain sentence per row.")
]
ReasonsOut = Annotated[
    str,
    typer.Option(help="Output .parquet or .csv, or - for CSV on stdout."),
]


def reasons(
    attributions: Attributions,
    data: ReasonsData = None,
    top: Top = 4,
    reason_direction: o.ReasonDirection = "both",
    reason_groups: o.ReasonGroups = None,
    reason_text: Text = False,
    out: ReasonsOut = "-",
    overwrite: ReplaceOut = False,
    batch_rows: BatchRows = BATCH_ROWS,
    log_format: o.LogFormat = DEFAULT_LOG_FORMAT,
    debug: o.Debug = False,
) -> None:
    """Per row and output: the top reasons (feature or group, input value, attribution)."""
    reporter = Reporter(log_format=log_format)

    def run() -> None:
        from xaicli.io.attributions import open_attributions
        from xaicli.report.reason_table import write_reasons
        from xaicli.report.reasons import ReasonSpec, load_reason_groups

        if top < 1:
            raise UsageError(f"--top must be at least 1; got {top}")
        if reason_direction not in REASON_DIRECTIONS:
            raise UsageError(
                f"--reason-direction must be one of {', '.join(REASON_DIRECTIONS)}; "
                f"got {reason_direction!r}"
            )
        if batch_rows < 1:
            raise UsageError(f"--batch-rows must be at least 1; got {batch_rows}")
        groups = load_reason_groups(reason_groups) if reason_groups is not None else ()
        spec = ReasonSpec(top, reason_direction, groups, reason_text)  # type: ignore[arg-type]
        source = open_attributions(attributions)
        write_reasons(source, spec, out, data=data, overwrite=overwrite, batch_rows=batch_rows)

    guarded(debug, run, reporter)
