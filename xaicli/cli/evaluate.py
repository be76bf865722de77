"""``xai evaluate ATTRIBUTIONS --model M --data D``: how far an attribution table can be
trusted, on a seeded sample of its rows."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from xaicli.cli import options as o
from xaicli.cli.console import DEFAULT_LOG_FORMAT, Reporter
from xaicli.cli.guard import guarded
from xaicli.errors import UsageError

if TYPE_CHECKING:
    from xaicli.trust.evaluate import Evaluation

EXAMPLES = """\
[bold]Examples[/bold]

  xai evaluate shap.parquet --model model.joblib --data customers.parquet

  xai evaluate lime.parquet --model model.joblib --data customers.parquet --seeds 5 --out quality.json

  xai evaluate shap.parquet --model model.joblib --data customers.parquet --against lime.parquet --seeds 0
"""

Opt = typer.Option


def evaluate(
    attributions: Annotated[
        Path,
        typer.Argument(
            help="Attribution table (or folder) written by xai explain.", show_default=False
        ),
    ],
    model: o.Model = None,
    data: o.Data = None,
    rows: Annotated[int, Opt(help="Input rows evaluated: a seeded sample of the table's.")] = 200,
    seeds: Annotated[
        int,
        Opt(
            help="Re-runs of the method with other seeds on those rows, for stability "
            "(0: none). The method and its parameters are the run's."
        ),
    ] = 3,
    top_k: Annotated[int, Opt("--top-k", help="K of the top-K overlaps.")] = 5,
    against: Annotated[
        Path | None,
        Opt(
            help="Another attribution table of the same rows (say LIME against SHAP): per-row "
            "rank agreement.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, Opt(help="Seed of the row sample and of the random orders.")] = 0,
    out: Annotated[
        str | None,
        Opt(
            help="Write the results: .csv (a row per metric and output), .json (metrics, cost "
            "and mean curves), or - (the JSON on stdout). Default: a table on stdout.",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[bool, Opt("--overwrite", help="Replace an existing --out file.")] = False,
    trust_model: o.TrustModel = False,
    log_format: o.LogFormat = DEFAULT_LOG_FORMAT,
    quiet: o.Quiet = False,
    verbose: o.Verbose = False,
    debug: o.Debug = False,
) -> None:
    """Completeness, faithfulness (deletion/insertion curves), stability, agreement and cost."""
    reporter = Reporter(quiet=quiet, log_format=log_format, verbose=verbose)

    def action() -> None:
        from xaicli.cli.metrics_out import check_destination, write_result
        from xaicli.io.destinations import input_files
        from xaicli.trust.evaluate import evaluate_attributions

        if not model or not data:
            missing = " and ".join(n for n, v in (("--model", model), ("--data", data)) if not v)
            raise UsageError(f"{missing} required; see 'xai evaluate --help'")
        inputs = [("attribution", attributions), *input_files(data, model, against)]
        check_destination(out, overwrite=overwrite, inputs=inputs)
        evaluation = evaluate_attributions(
            attributions,
            model=model,
            data=data,
            rows=rows,
            seeds=seeds,
            top_k=top_k,
            seed=seed,
            against=against,
            trust_model=trust_model,
            on_note=reporter.note,
        )
        for message in evaluation.notes:
            reporter.note(message)
        reporter.flush_notes()
        write_result(
            out, text=_text(evaluation), table=evaluation.table(), summary=evaluation.to_json()
        )

    guarded(debug, action, reporter)


def _text(evaluation: Evaluation) -> str:
    """Metrics as rows, outputs as columns; the cost below."""
    lines = [f"{evaluation.attributions}: {evaluation.rows} rows (seed {evaluation.seed})"]
    table = evaluation.table()
    metrics = table[table["output"] != ""]
    if not metrics.empty:
        wide = metrics.pivot(index="metric", columns="output", values="value")
        wide = wide.loc[list(dict.fromkeys(metrics["metric"]))]
        lines += ["", wide.to_string(float_format=lambda v: f"{v:.4g}")]
    cost = table[table["output"] == ""]
    if not cost.empty:
        lines += [
            "",
            *(f"{m}: {v:.4g}" for m, v in zip(cost["metric"], cost["value"], strict=True)),
        ]
    return "\n".join(lines)
