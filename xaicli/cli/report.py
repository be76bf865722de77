"""``xai report``: an attribution table and its data in, one self-contained HTML page out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from xaicli.cli import options as o
from xaicli.cli.console import DEFAULT_LOG_FORMAT, Reporter
from xaicli.cli.guard import guarded

EXAMPLES = """\
[bold]Examples[/bold]

  xai report attributions.parquet --data customers.parquet --out report.html

  xai report attributions.parquet --data customers.parquet --out report.html --rows c-0042,c-0107

  xai report attributions.parquet --data customers.parquet --format svg --out charts/
"""


def report(
    attributions: Annotated[
        Path,
        typer.Argument(
            help="Attribution table written by xai explain (wide layout): .parquet, .csv or a folder.",
            show_default=False,
        ),
    ],
    data: Annotated[
        Path | None,
        typer.Option(
            help="The input rows the run explained, joined on the id columns (or by position "
            "without them). Default: the data path recorded by the run.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Required. The .html file to write, or with --format png|svg the folder for the charts.",
            show_default=False,
        ),
    ] = None,
    report_format: Annotated[
        str,
        typer.Option("--format", help="html (one self-contained page) | png | svg (chart files)."),
    ] = "html",
    rows: Annotated[
        str | None,
        typer.Option(
            help="Ids of rows to draw a waterfall for, comma separated (row positions when the "
            "run had no --id-col; several id columns' values joined by '/').",
            show_default=False,
        ),
    ] = None,
    top: Annotated[
        int,
        typer.Option(help="Features in the importance chart and beeswarm; the rest are summed."),
    ] = 10,
    max_points: Annotated[
        int,
        typer.Option(
            help="Rows drawn in the beeswarm and dependence plots (a deterministic sample)."
        ),
    ] = 2_000,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing report or chart files.")
    ] = False,
    log_format: o.LogFormat = DEFAULT_LOG_FORMAT,
    quiet: o.Quiet = False,
    verbose: o.Verbose = False,
    debug: o.Debug = False,
) -> None:
    """Write a report of an attribution table: global importance, beeswarm, dependence plots,
    waterfalls of single rows and reason-code counts, per class; it opens offline."""
    reporter = Reporter(quiet=quiet, log_format=log_format, verbose=verbose)

    def action() -> None:
        from xaicli.errors import UsageError
        from xaicli.report.build import ReportOptions, build_report

        if out is None:
            raise UsageError("--out is required: the .html file to write (see 'xai report --help')")
        options = ReportOptions(
            attributions=attributions,
            data=data,
            out=out,
            fmt=report_format,
            rows=tuple(r.strip() for r in rows.split(",") if r.strip()) if rows else (),
            top=top,
            max_points=max_points,
            overwrite=overwrite,
        )
        result = build_report(options, on_note=reporter.note)
        reporter.flush_notes()
        if not quiet:
            size = (
                f"{result.n_bytes / 1e6:.1f} MB"
                if result.n_bytes >= 1e5
                else f"{result.n_bytes / 1e3:.0f} kB"
            )
            reporter.note(
                f"wrote {result.out} ({result.n_charts} charts, {size}) in {result.seconds:.1f} s"
            )
            reporter.flush_notes()

    guarded(debug, action, reporter)
