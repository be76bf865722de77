"""``xai examples``: the most similar rows of a reference table, as a long table."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from xaicli.cli import options as o
from xaicli.cli.console import DEFAULT_LOG_FORMAT, Reporter
from xaicli.cli.guard import guarded
from xaicli.errors import UsageError

EXAMPLES = """\
[bold]Examples[/bold]

  xai examples --data new.parquet --reference train.parquet --k 5 --id-col customer_id --out -

  xai examples --data new.parquet --reference train.parquet --k 3 --id-col customer_id --model model.joblib --target churned --out similar.parquet

  xai examples --data new.attributions.parquet --reference train.attributions.parquet --k 5 --space attributions --out -
"""

Opt = typer.Option
Overwrite = Annotated[bool, Opt("--overwrite", help="Replace an existing --out file.")]
Reference = Annotated[
    Path | None,
    Opt(
        help="Required. The rows to find examples in (Parquet/CSV; in --space attributions an "
        "attribution table of the same model as --data).",
        show_default=False,
    ),
]
K = Annotated[int, Opt("--k", help="Most similar reference rows per row.")]
Space = Annotated[
    str,
    Opt(
        help="features (standardized numeric columns, a categorical mismatch counts 1) | "
        "attributions (--data and --reference are attribution tables)."
    ),
]
ExamplesModel = Annotated[
    str | None,
    Opt(
        "--model",
        help="Adds the reference rows' predictions (and takes the model's columns as "
        "--features). Loading a pickle or .py file runs its code.",
        show_default=False,
    ),
]
Features = Annotated[
    list[str] | None,
    Opt(
        help="Column compared (repeatable; commas as in xai explain). Default: the model's "
        "columns with --model, else the columns both tables share but the id and target ones.",
        show_default=False,
    ),
]
Target = Annotated[
    str | None,
    Opt(help="Reference column of known outcomes, copied beside each example.", show_default=False),
]
IdCol = Annotated[
    list[str] | None,
    Opt(
        "--id-col",
        help="Id column of both tables (repeatable; commas as in --features). Default: the "
        "row positions, 'row' and 'reference_row'.",
        show_default=False,
    ),
]
ExamplesOut = Annotated[
    str | None,
    Opt(
        help="Output .parquet or .csv, or '-' for CSV on stdout. Default: "
        "<data>.examples.parquet beside the data.",
        show_default=False,
    ),
]
ChunkSize = Annotated[int, Opt(help="Reference rows compared at a time (bounds memory).")]


def examples(
    data: o.Data = None,
    reference: Reference = None,
    k: K = 5,
    space: Space = "features",
    model: ExamplesModel = None,
    target: Target = None,
    features: Features = None,
    id_col: IdCol = None,
    out: ExamplesOut = None,
    chunk_size: ChunkSize = 4096,
    overwrite: Overwrite = False,
    trust_model: o.TrustModel = False,
    log_format: o.LogFormat = DEFAULT_LOG_FORMAT,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """For each row, the K most similar rows of a reference table (ids, rank, distance, and
    the reference's predictions and outcomes)."""
    reporter = Reporter(quiet=quiet, log_format=log_format)

    def run() -> None:
        from xaicli.config import resolve_names
        from xaicli.trust.examples_output import write_examples
        from xaicli.trust.examples_run import ExamplesRequest

        missing = [
            name for name, value in (("--data", data), ("--reference", reference)) if not value
        ]
        if missing:
            raise UsageError(f"{' and '.join(missing)} required; see 'xai examples --help'")
        request = ExamplesRequest(
            data=Path(str(data)),
            reference=Path(str(reference)),
            k=k,
            space=space,
            model=model,
            target=target,
            features=resolve_names(tuple(features or ()), ()),
            id_cols=resolve_names(tuple(id_col or ()), ()),
            chunk_size=chunk_size,
            trust_model=trust_model,
        )
        rows, where, notes = write_examples(request, out, overwrite=overwrite)
        for note in notes:
            reporter.note(note)
        reporter.flush_notes()
        if not quiet and not reporter.json:
            print(f"xai: {rows:,} example rows -> {where}", file=sys.stderr)

    guarded(debug, run, reporter)
