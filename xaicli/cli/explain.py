"""``xai explain``: options in, a frozen configuration to the runner, one summary line out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from xaicli.cli.console import note, progress_bar
from xaicli.cli.guard import guarded
from xaicli.config import FORMATS, LAYOUTS, METHODS, OUTPUT_KINDS, SHAP_ALGORITHMS, ExplainConfig
from xaicli.errors import UsageError

EXAMPLES = """\
[bold]Examples[/bold]

  xai explain --model model.joblib --data customers.parquet --id-col customer_id

  xai explain --model model.joblib --data customers.parquet --out - --layout long | head

  xai explain --model pipe.skops --data day/ --out attributions.csv --method lime --seed 7

  xai explain --model mymodels.py:score --data rows.csv --features age,income --n-jobs 2
"""


def _choice(value: str, allowed: tuple[str, ...], option: str) -> str:
    if value not in allowed:
        raise UsageError(f"{option} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _split(values: list[str] | None) -> tuple[str, ...]:
    out: list[str] = []
    for value in values or []:
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return tuple(out)


def _output_path(out: str | None, data: Path, fmt: str | None) -> tuple[str, str]:
    if out == "-":
        return "-", "csv"
    if out is None:
        stem = data.name if data.is_dir() else data.stem
        out = str(data.parent / f"{stem}.attributions.{fmt or 'parquet'}")
    if fmt is None:
        suffix = Path(out).suffix.lower()
        fmt = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}.get(suffix)
        if fmt is None:
            raise UsageError(
                f"cannot tell the format of --out {out}; use .parquet or .csv, or --format"
            )
    return out, _choice(fmt, FORMATS, "--format")


def explain(
    model: Annotated[
        str,
        typer.Option(
            help="Model: .joblib/.pkl/.pickle/.skops file, or module.path:attr / file.py:attr.",
            show_default=False,
        ),
    ],
    data: Annotated[
        Path,
        typer.Option(
            help="Input rows: a Parquet file, a folder of Parquet files, or a CSV file.",
            show_default=False,
        ),
    ],
    out: Annotated[
        str | None,
        typer.Option(
            help="Output .parquet or .csv, or '-' for CSV on stdout. Default: <data>.attributions.parquet beside the data.",
            show_default=False,
        ),
    ] = None,
    features: Annotated[
        list[str] | None,
        typer.Option(
            help="Model input columns, comma-separated. Default: the model's fitted names, else every non-id column.",
            show_default=False,
        ),
    ] = None,
    id_col: Annotated[
        list[str] | None,
        typer.Option(
            "--id-col",
            help="Column copied into the output to join it back (repeatable). Default: a 'row' position column.",
            show_default=False,
        ),
    ] = None,
    method: Annotated[str, typer.Option(help="auto | shap | lime | ig | saliency.")] = "auto",
    algorithm: Annotated[
        str,
        typer.Option(
            help="SHAP algorithm: auto | tree | tree-path | linear | exact | kernel | permutation."
        ),
    ] = "auto",
    output: Annotated[
        str, typer.Option(help="What to explain: auto | proba | decision | predict.")
    ] = "auto",
    class_: Annotated[
        list[str] | None,
        typer.Option(
            "--class",
            help="Class label to explain (repeatable). Default: the positive class of a binary classifier, every class otherwise.",
            show_default=False,
        ),
    ] = None,
    background: Annotated[
        Path | None,
        typer.Option(
            help="Reference rows (Parquet/CSV). Default: a seeded sample of the data.",
            show_default=False,
        ),
    ] = None,
    background_size: Annotated[
        int, typer.Option(help="Rows sampled from the data as background when no --background.")
    ] = 100,
    n_samples: Annotated[
        int | None,
        typer.Option(
            help="Samples per row: coalitions for kernel/permutation SHAP (default 2M+2048), neighbours for LIME (default 5000).",
            show_default=False,
        ),
    ] = None,
    kernel_width: Annotated[
        float | None,
        typer.Option(help="LIME kernel width. Default 0.75*sqrt(n_features).", show_default=False),
    ] = None,
    no_discretize: Annotated[
        bool,
        typer.Option(
            "--no-discretize", help="LIME: do not discretize continuous features into quartiles."
        ),
    ] = False,
    num_features: Annotated[
        int | None,
        typer.Option(
            help="LIME: keep the K strongest features per row, the others 0.", show_default=False
        ),
    ] = None,
    baseline: Annotated[
        str,
        typer.Option(
            help="IG baseline: mean | median | zero | PATH to a table of baselines (averaged)."
        ),
    ] = "mean",
    steps: Annotated[int, typer.Option(help="IG path steps.")] = 32,
    n_jobs: Annotated[int, typer.Option(help="Worker processes; -1 = all cores.")] = -1,
    chunk_size: Annotated[
        int,
        typer.Option(
            help="Rows per task, rounded up to a multiple of 64 (results never depend on it)."
        ),
    ] = 1000,
    seed: Annotated[
        int, typer.Option(help="Seed of every random choice; same seed, same table.")
    ] = 0,
    layout: Annotated[
        str, typer.Option(help="wide (a column per feature) | long (a row per feature).")
    ] = "wide",
    out_format: Annotated[
        str | None,
        typer.Option(
            "--format", help="parquet | csv; overrides --out's extension.", show_default=False
        ),
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the manifest JSON. Default: OUT.manifest.json (none for stdout).",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output.")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue an interrupted run: only chunks not yet committed are computed.",
        ),
    ] = False,
    trust_model: Annotated[
        bool,
        typer.Option(
            "--trust-model", help="Load a .skops file even with types skops does not trust."
        ),
    ] = False,
    max_eval_rows: Annotated[
        int, typer.Option(help="Cap on rows sent to the model in one call (memory bound).")
    ] = 200_000,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Compute per-row feature attributions and write them as a table."""

    def build() -> ExplainConfig:
        if chunk_size < 1:
            raise UsageError(f"--chunk-size must be at least 1, got {chunk_size}")
        if n_samples is not None and n_samples < 1:
            raise UsageError(f"--n-samples must be at least 1, got {n_samples}")
        if steps < 1:
            raise UsageError(f"--steps must be at least 1, got {steps}")
        out_path, fmt = _output_path(out, data, out_format)
        return ExplainConfig(
            model=model,
            data=data,
            out=out_path,
            out_format=fmt,
            features=_split(features) or None,
            id_cols=_split(id_col),
            method=_choice(method, METHODS, "--method"),
            algorithm=_choice(algorithm, SHAP_ALGORITHMS, "--algorithm"),
            output=_choice(output, OUTPUT_KINDS, "--output"),
            classes=tuple(class_ or ()),
            background=background,
            background_size=background_size,
            n_samples=n_samples,
            kernel_width=kernel_width,
            discretize=not no_discretize,
            num_features=num_features,
            baseline=baseline,
            steps=steps,
            n_jobs=n_jobs,
            chunk_size=chunk_size,
            seed=seed,
            layout=_choice(layout, LAYOUTS, "--layout"),
            overwrite=overwrite,
            trust_model=trust_model,
            manifest=manifest,
            quiet=quiet,
            max_eval_rows=max_eval_rows,
            resume=resume,
        )

    def run() -> None:
        from xaicli.runner.explain import run_explain

        config = build()
        with progress_bar(quiet) as progress:
            summary = run_explain(config, on_note=lambda m: note(m, quiet=quiet), progress=progress)
        where = "stdout" if summary.out == "-" else summary.out
        rate = summary.rows / summary.seconds if summary.seconds > 0 else float("inf")
        note(
            f"explained {summary.rows:,} rows ({summary.output_rows:,} output rows) in "
            f"{summary.seconds:.1f}s, {rate:,.0f} rows/s -> {where}",
            quiet=quiet,
        )

    guarded(debug, run)
