"""``xai explain``: options in, a frozen configuration to the runner, one summary line out."""

from __future__ import annotations

from xaicli.cli import options as o
from xaicli.cli.console import DEFAULT_LOG_FORMAT, Reporter
from xaicli.cli.guard import guarded
from xaicli.config import DEFAULTS, ExplainConfig, build_config
from xaicli.errors import UsageError

EXAMPLES = """\
[bold]Examples[/bold]

  xai explain --model model.joblib --data customers.parquet --id-col customer_id

  xai explain --model model.joblib --data customers.parquet --out - --layout long | head

  xai explain --model pipe.skops --data day/ --out attributions.csv --method lime --seed 7

  xai explain --model model.joblib --data loans.parquet --reasons 4 --reason-direction down --text

  xai explain --model gbm.joblib --data loans.parquet --output decision --interactions --interactions-top 8

  xai explain --model mymodels.py:score --data rows.csv --features age,income --n-jobs 2
"""

# how each configuration key is written on the command line, for messages
OPTION_NAMES = {
    "out_format": "--format",
    "id_cols": "--id-col",
    "classes": "--class",
    "reason_text": "--text",
}


def option_name(key: str) -> str:
    return OPTION_NAMES.get(key, "--" + key.replace("_", "-"))


# Defaults are read from the configuration's fields, so the command line, job files and the
# Python API share them.
D = DEFAULTS


def explain(
    model: o.Model = None,
    data: o.Data = None,
    out: o.Out = None,
    features: o.Features = None,
    id_col: o.IdCol = None,
    method: o.Method = D["method"],
    algorithm: o.Algorithm = D["algorithm"],
    output: o.Output = D["output"],
    class_: o.Class = None,
    background: o.Background = None,
    background_size: o.BackgroundSize = None,
    background_weights: o.BackgroundWeights = None,
    n_samples: o.NSamples = None,
    errors: o.Errors = D["errors"],
    target_error: o.TargetError = None,
    interactions: o.Interactions = D["interactions"],
    interactions_top: o.InteractionsTop = None,
    kernel_width: o.KernelWidth = None,
    no_discretize: o.NoDiscretize = not D["discretize"],
    num_features: o.NumFeatures = None,
    lime_neighbourhood: o.LimeNeighbourhood = D["lime_neighbourhood"],
    baseline: o.Baseline = D["baseline"],
    steps: o.Steps = D["steps"],
    n_jobs: o.NJobs = D["n_jobs"],
    chunk_size: o.ChunkSize = D["chunk_size"],
    seed: o.Seed = D["seed"],
    layout: o.Layout = D["layout"],
    reasons: o.Reasons = None,
    reason_direction: o.ReasonDirection = D["reason_direction"],
    reason_groups: o.ReasonGroups = None,
    reason_text: o.Text = D["reason_text"],
    out_format: o.Format = None,
    manifest: o.Manifest = None,
    overwrite: o.Overwrite = D["overwrite"],
    resume: o.Resume = D["resume"],
    trust_model: o.TrustModel = D["trust_model"],
    max_eval_rows: o.MaxEvalRows = D["max_eval_rows"],
    on_invalid: o.OnInvalid = D["on_invalid"],
    backend: o.Backend = D["backend"],
    scheduler: o.Scheduler = None,
    save_job: o.SaveJob = None,
    log_format: o.LogFormat = DEFAULT_LOG_FORMAT,
    quiet: o.Quiet = D["quiet"],
    verbose: o.Verbose = False,
    debug: o.Debug = False,
) -> None:
    """Compute per-row feature attributions and write them as a table."""
    # option -> configuration field (None: not given, the field's default applies)
    values = {
        "model": model,
        "data": data,
        "out": out,
        "out_format": out_format,
        "features": features,
        "id_cols": id_col,
        "method": method,
        "algorithm": algorithm,
        "output": output,
        "classes": class_,
        "background": background,
        "background_size": background_size,
        "background_weights": background_weights,
        "n_samples": n_samples,
        "errors": errors,
        "target_error": target_error,
        "interactions": interactions,
        "interactions_top": interactions_top,
        "kernel_width": kernel_width,
        "discretize": not no_discretize,
        "num_features": num_features,
        "lime_neighbourhood": lime_neighbourhood,
        "baseline": baseline,
        "steps": steps,
        "n_jobs": n_jobs,
        "chunk_size": chunk_size,
        "seed": seed,
        "layout": layout,
        "reasons": reasons,
        "reason_direction": reason_direction,
        "reason_groups": reason_groups,
        "reason_text": reason_text,
        "overwrite": overwrite,
        "resume": resume,
        "trust_model": trust_model,
        "manifest": manifest,
        "quiet": quiet,
        "max_eval_rows": max_eval_rows,
        "on_invalid": on_invalid,
        "backend": backend,
        "scheduler": scheduler,
    }
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
            write_job(save_job, resolved, replace=config.destination.overwrite)
        reporter.summary(summary)

    guarded(debug, run, reporter)
