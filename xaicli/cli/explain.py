"""``xai explain``: options in, a frozen configuration to the runner, one summary line out."""

from __future__ import annotations

from xaicli.cli import options as o
from xaicli.cli.console import Reporter
from xaicli.cli.guard import guarded
from xaicli.config import ExplainConfig, build_config
from xaicli.errors import UsageError

EXAMPLES = """\
[bold]Examples[/bold]

  xai explain --model model.joblib --data customers.parquet --id-col customer_id

  xai explain --model model.joblib --data customers.parquet --out - --layout long | head

  xai explain --model pipe.skops --data day/ --out attributions.csv --method lime --seed 7

  xai explain --model mymodels.py:score --data rows.csv --features age,income --n-jobs 2
"""

# how each configuration key is written on the command line, for messages
OPTION_NAMES = {"out_format": "--format", "id_cols": "--id-col", "classes": "--class"}


def option_name(key: str) -> str:
    return OPTION_NAMES.get(key, "--" + key.replace("_", "-"))


def explain(
    model: o.Model = None,
    data: o.Data = None,
    out: o.Out = None,
    features: o.Features = None,
    id_col: o.IdCol = None,
    method: o.Method = "auto",
    algorithm: o.Algorithm = "auto",
    output: o.Output = "auto",
    class_: o.Class = None,
    background: o.Background = None,
    background_size: o.BackgroundSize = 100,
    n_samples: o.NSamples = None,
    kernel_width: o.KernelWidth = None,
    no_discretize: o.NoDiscretize = False,
    num_features: o.NumFeatures = None,
    lime_neighbourhood: o.LimeNeighbourhood = "shared",
    baseline: o.Baseline = "mean",
    steps: o.Steps = 64,
    n_jobs: o.NJobs = -1,
    chunk_size: o.ChunkSize = 1024,
    seed: o.Seed = 0,
    layout: o.Layout = "wide",
    out_format: o.Format = None,
    manifest: o.Manifest = None,
    overwrite: o.Overwrite = False,
    resume: o.Resume = False,
    trust_model: o.TrustModel = False,
    max_eval_rows: o.MaxEvalRows = 200_000,
    on_invalid: o.OnInvalid = "error",
    backend: o.Backend = "loky",
    scheduler: o.Scheduler = None,
    save_job: o.SaveJob = None,
    log_format: o.LogFormat = "text",
    quiet: o.Quiet = False,
    verbose: o.Verbose = False,
    debug: o.Debug = False,
) -> None:
    """Compute per-row feature attributions and write them as a table."""
    values = dict(locals())
    for key in ("save_job", "log_format", "verbose", "debug", "no_discretize", "id_col", "class_"):
        values.pop(key)
    values.update(id_cols=id_col, classes=class_, discretize=not no_discretize)
    reporter = Reporter(quiet=quiet, log_format=log_format, verbose=verbose)

    def run() -> None:
        from xaicli.jobfile import check_job_destination, write_job
        from xaicli.runner.explain import run_explain

        missing = [name for name, value in (("--model", model), ("--data", data)) if not value]
        if missing:
            raise UsageError(
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required; "
                "see 'xai explain --help'"
            )
        config = build_config(values, name=option_name)
        if save_job is not None:
            check_job_destination(save_job, config)  # before any work, not after the run
        resolved: list[ExplainConfig] = []  # the configuration with names as the data has them
        with reporter.progress() as progress:
            summary = run_explain(
                config, on_note=reporter.note, progress=progress, on_prepared=resolved.append
            )
        if save_job is not None and resolved:
            # once the run succeeded: a refused or failed run leaves no job file behind; a
            # list item in a job file is a name, commas included
            write_job(save_job, resolved, replace=config.overwrite)
        reporter.summary(summary)

    guarded(debug, run, reporter)
