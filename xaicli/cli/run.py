"""``xai run JOB.toml``: run the explanations a job file describes, resuming by default."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from xaicli.cli import options as o
from xaicli.cli.console import DEFAULT_LOG_FORMAT, Reporter
from xaicli.cli.guard import guarded

EXAMPLES = """\
[bold]Examples[/bold]

  xai run nightly.toml

  XAI_DATA=/srv/data xai run nightly.toml --log-format json 2>> /var/log/xai.jsonl
"""


def run(
    job: Annotated[
        Path,
        typer.Argument(
            help="The job file (TOML) with \\[\\[explain]] tables. It names models to load "
            "(pickles and .py files run code, trust_model lifts the .skops check): treat it like code.",
            show_default=False,
        ),
    ],
    log_format: o.LogFormat = DEFAULT_LOG_FORMAT,
    quiet: o.Quiet = False,
    verbose: o.Verbose = False,
    debug: o.Debug = False,
) -> None:
    """Run every \\[\\[explain]] of a job file, in order; stop at the first failure."""
    reporter = Reporter(quiet=quiet, log_format=log_format, verbose=verbose)

    def action() -> None:
        from xaicli.jobfile import load_job, make_output_folders
        from xaicli.runner.explain import run_explain

        configs = load_job(job)  # every table is checked before any work starts
        for number, config in enumerate(configs, start=1):
            reporter.note(
                f"[[explain]] {number} of {len(configs)}: {config.inputs.data} -> {config.destination.out}"
            )
            make_output_folders(config)
            with reporter.progress() as progress:
                summary = run_explain(config, on_note=reporter.note, progress=progress)
            reporter.summary(summary)

    guarded(debug, action, reporter)
