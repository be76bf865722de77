"""``xai compare BEFORE AFTER``: drift of global importance between two runs, with exit
code 3 when it passes a threshold."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from xaicli.cli import options as o
from xaicli.cli.console import DEFAULT_LOG_FORMAT, Reporter
from xaicli.cli.guard import guarded
from xaicli.errors import ThresholdCrossed, UsageError

if TYPE_CHECKING:
    from xaicli.trust.compare import Comparison

EXAMPLES = """\
[bold]Examples[/bold]

  xai compare monday.parquet tuesday.parquet

  xai compare baseline.parquet tonight/ --fail-below-ndcg 0.9 --out drift.json

  xai compare before.csv after.csv --top 10 --fail-above 0.05 --out drift.csv
"""

Opt = typer.Option


def compare(
    before: Annotated[
        Path,
        typer.Argument(
            help="Attribution table (or folder) of the reference run.", show_default=False
        ),
    ],
    after: Annotated[
        Path,
        typer.Argument(
            help="Attribution table (or folder) of the run to check.", show_default=False
        ),
    ],
    top: Annotated[int, Opt("--top", help="K: report features entering or leaving the top K.")] = 5,
    fail_below_ndcg: Annotated[
        float | None,
        Opt(
            help="Exit 3 when an output's NDCG falls below X (SageMaker Clarify alerts below 0.9).",
            metavar="X",
            show_default=False,
        ),
    ] = None,
    fail_above: Annotated[
        float | None,
        Opt(
            help="Exit 3 when a feature's share of the total importance moves by more than this (0-1).",
            metavar="SHARE_CHANGE",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        str | None,
        Opt(
            help="Write the results: .csv (a row per output and feature), .json (the summary), "
            "or - (the JSON on stdout). Default: a table on stdout.",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[bool, Opt("--overwrite", help="Replace an existing --out file.")] = False,
    log_format: o.LogFormat = DEFAULT_LOG_FORMAT,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Drift of global feature importance from BEFORE to AFTER: NDCG, Spearman, share changes."""
    reporter = Reporter(quiet=quiet, log_format=log_format)

    def action() -> None:
        from xaicli.cli.metrics_out import check_destination, write_result
        from xaicli.io.attributions import open_attributions
        from xaicli.trust.compare import compare_runs

        _check_options(top, fail_below_ndcg, fail_above)
        check_destination(out, overwrite=overwrite, inputs=[("BEFORE", before), ("AFTER", after)])
        comparison = compare_runs(open_attributions(before), open_attributions(after), top_k=top)
        write_result(
            out,
            text=_text(comparison),
            table=comparison.feature_table(),
            summary=comparison.to_json(fail_below_ndcg, fail_above),
        )
        crossed = comparison.crossed(fail_below_ndcg, fail_above)
        if crossed:
            raise ThresholdCrossed(f"attribution drift: {'; '.join(crossed)}")

    guarded(debug, action, reporter)


def _check_options(top: int, fail_below_ndcg: float | None, fail_above: float | None) -> None:
    if top < 1:
        raise UsageError(f"--top must be at least 1; got {top}")
    if fail_below_ndcg is not None and not 0.0 <= fail_below_ndcg <= 1.0:
        raise UsageError(f"--fail-below-ndcg must be between 0 and 1; got {fail_below_ndcg}")
    if fail_above is not None and not 0.0 <= fail_above <= 1.0:
        raise UsageError(
            f"--fail-above is a change of share of the total importance, between 0 and 1; "
            f"got {fail_above}"
        )


#: Features listed per output in the terminal table (the files hold them all).
SHOWN_FEATURES = 10


def _text(comparison: Comparison) -> str:
    """The comparison for people: per output, the scores and the features that moved most."""
    lines = [f"BEFORE {comparison.before}", f"AFTER  {comparison.after}"]
    for drift in comparison.outputs:
        lines += [
            "",
            f"output {drift.output}: NDCG {drift.ndcg:.4f}, Spearman {drift.spearman:.4f}, "
            f"largest share change {drift.max_share_change:.4f}",
            f"top {comparison.top_k}: entering {_listed(drift.entering)}, "
            f"leaving {_listed(drift.leaving)}",
        ]
        shown = drift.features.head(max(SHOWN_FEATURES, comparison.top_k))
        table = shown[
            ["feature", "before_share", "after_share", "share_change", "before_rank", "after_rank"]
        ].to_string(
            index=False,
            formatters={
                "before_share": "{:.4f}".format,
                "after_share": "{:.4f}".format,
                "share_change": "{:+.4f}".format,
            },
        )
        lines += ["  " + line for line in table.splitlines()]
        hidden = len(drift.features) - len(shown)
        if hidden:
            lines.append(f"  ... {hidden} more feature(s) moved less (--out writes them all)")
    return "\n".join(lines)


def _listed(names: tuple[str, ...]) -> str:
    return ", ".join(names) if names else "none"
