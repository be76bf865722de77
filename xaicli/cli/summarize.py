"""``xai summarize``: global importance of an attribution table, as a table."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from xaicli.cli import options as o
from xaicli.cli.console import DEFAULT_LOG_FORMAT, Reporter
from xaicli.cli.guard import guarded
from xaicli.errors import UsageError
from xaicli.io.attributions import BATCH_ROWS

EXAMPLES = """\
[bold]Examples[/bold]

  xai summarize penguins.attributions.parquet

  xai summarize attributions/ --by island --data penguins.parquet --out importance.csv

  xai summarize attributions.csv --top 5 --out - | column -s, -t
"""

Attributions = Annotated[
    Path,
    typer.Argument(
        help="An attribution table written by xai explain: .parquet or .csv, wide or long, "
        "or a folder of them.",
        show_default=False,
    ),
]
By = Annotated[
    str | None,
    typer.Option(
        help="One summary per value of this column: a column of the attribution table (an id "
        "column, reason_1, ...), else of --data, joined on the id columns (or row position).",
        show_default=False,
    ),
]
SummaryData = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="The explained rows (Parquet/CSV), for a --by column the attribution table lacks.",
        show_default=False,
    ),
]
SummaryOut = Annotated[
    str | None,
    typer.Option(
        help="Write the summary to .csv, .parquet or .json, or - for CSV on stdout. Default: "
        "a table on a terminal, CSV on stdout otherwise.",
        show_default=False,
    ),
]
Top = Annotated[
    int | None,
    typer.Option(
        help="Only the N most important features of each output (and group).", show_default=False
    ),
]
BatchRows = Annotated[int, typer.Option(hidden=True, help="Rows read at a time.")]
ReplaceOut = Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out file.")]


def summarize(
    attributions: Attributions,
    by: By = None,
    data: SummaryData = None,
    out: SummaryOut = None,
    top: Top = None,
    overwrite: ReplaceOut = False,
    batch_rows: BatchRows = BATCH_ROWS,
    log_format: o.LogFormat = DEFAULT_LOG_FORMAT,
    debug: o.Debug = False,
) -> None:
    """Global importance per output and feature: mean |attribution|, mean, std, share, rank."""
    reporter = Reporter(log_format=log_format)

    def run() -> None:
        from xaicli.io.attributions import open_attributions
        from xaicli.io.results import check_result_destination, write_result
        from xaicli.report.summarize import summarize as summarize_table

        if top is not None and top < 1:
            raise UsageError(f"--top must be at least 1; got {top}")
        if batch_rows < 1:
            raise UsageError(f"--batch-rows must be at least 1; got {batch_rows}")
        if out is not None:
            check_result_destination(out, overwrite=overwrite)
        source = open_attributions(attributions)
        table = summarize_table(source, by=by, data=data, top=top, batch_rows=batch_rows)
        if out is None and on_terminal():
            print_table(table, source.path)
        else:
            write_result(table, out or "-", overwrite=overwrite)

    guarded(debug, run, reporter)


def on_terminal() -> bool:
    """stdout is a terminal (a person reads it), not a pipe or a file (a program does)."""
    return sys.stdout.isatty()


def print_table(table: pd.DataFrame, path: Path) -> None:
    """The summary for people: one rich table per output (and group)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    keys = [c for c in table.columns if c not in ("feature", "count", "mean_abs", "mean", "std")]
    keys = keys[: keys.index("output") + 1]
    for key, rows in table.groupby(keys, sort=False, dropna=False):
        names = key if isinstance(key, tuple) else (key,)
        title = ", ".join(f"{k} {v}" for k, v in zip(keys, names, strict=True))
        view = Table(title=f"{path.name}: {title} ({int(rows['count'].iloc[0])} rows)")
        for column in ("rank", "feature", "mean_abs", "share", "mean", "std"):
            view.add_column(column, justify="left" if column == "feature" else "right")
        for row in rows.itertuples(index=False):
            view.add_row(
                str(row.rank),
                str(row.feature),
                f"{row.mean_abs:.4g}",
                f"{row.share:.1%}",
                f"{row.mean:+.4g}",
                f"{row.std:.4g}",
            )
        console.print(view)
