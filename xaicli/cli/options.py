"""Options shared by the commands, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from xaicli.cli.console import LOG_FORMATS
from xaicli.config import FORMATS, METHODS, OUTPUT_KINDS

Opt = typer.Option


def _choices(allowed: tuple[str, ...]) -> str:
    return " | ".join(allowed)


Model = Annotated[
    str | None,
    Opt(
        help="Required. Model: .joblib/.pkl/.pickle/.skops file, an XGBoost (.json/.ubj), LightGBM "
        "(.txt/.lgb/.model) or CatBoost (.cbm) model file, or module.path:attr / file.py:attr. "
        "Loading a pickle/joblib file or a .py file runs its code: only load files you trust "
        "(.skops files are checked; the libraries' own model files run no code).",
        show_default=False,
    ),
]
Data = Annotated[
    Path | None,
    Opt(
        help="Required. Input rows: a Parquet file, a folder of Parquet files, or a CSV file.",
        show_default=False,
    ),
]
Out = Annotated[
    str | None,
    Opt(
        help="Output .parquet or .csv, or '-' for CSV on stdout. Default: <data>.attributions.parquet beside the data.",
        show_default=False,
    ),
]
Features = Annotated[
    list[str] | None,
    Opt(
        help="Model input column (repeatable; 'a,b' is a shorthand for a and b, unless a column "
        "is named exactly 'a,b'). Default: the model's fitted names, else every non-id column.",
        show_default=False,
    ),
]
IdCol = Annotated[
    list[str] | None,
    Opt(
        "--id-col",
        help="Column copied unchanged into the output to join it back (repeatable; commas as in "
        "--features; read from CSV as text, exactly as written). Default: a 'row' position column.",
        show_default=False,
    ),
]
Method = Annotated[str, Opt(help=f"{_choices(METHODS)}.")]
Algorithm = Annotated[
    str,
    Opt(
        help="SHAP algorithm: auto (tree, else linear, else exact up to 12 features, else "
        "permutation) | tree | tree-path | linear | exact | kernel | permutation. tree-path is "
        "path-dependent TreeSHAP (the training data's cover, not the background; XGBoost and "
        "LightGBM models: their own contributions), a different quantity from tree."
    ),
]
Output = Annotated[str, Opt(help=f"What to explain: {_choices(OUTPUT_KINDS)}.")]
Class = Annotated[
    list[str] | None,
    Opt(
        "--class",
        help="Class label to explain (repeatable; commas as in --features, against the model's "
        "labels). Default: the positive class of a binary classifier, every class otherwise.",
        show_default=False,
    ),
]
Background = Annotated[
    Path | None,
    Opt(
        help="Reference rows (Parquet/CSV). Default: a seeded sample of the data.",
        show_default=False,
    ),
]
BackgroundSize = Annotated[
    int | None,
    Opt(
        help="Rows sampled from the data as background when no --background. Default: 1000 "
        "for TreeSHAP on a tree model, 100 otherwise.",
        show_default=False,
    ),
]
BackgroundWeights = Annotated[
    str | None,
    Opt(
        help="TreeSHAP: a column of the background (or of the data, when the background is "
        "sampled from it) weighting each background row (finite, >= 0, not all 0).",
        show_default=False,
    ),
]
NSamples = Annotated[
    int | None,
    Opt(
        help="Samples per row: coalitions for kernel/permutation SHAP (default 2M+2048; with a target error, the most a row may take), neighbours for LIME (default 5000). Given without --target-error: a fixed budget.",
        show_default=False,
    ),
]
Errors = Annotated[
    bool,
    Opt(
        "--errors",
        help="Kernel/permutation SHAP: also write each attribution's standard error, estimated "
        "from the sampling (wide: a <feature>_se column per feature; long: an se column).",
    ),
]
TargetError = Annotated[
    str | None,
    Opt(
        help="Permutation SHAP: sample each row in rounds until every attribution's "
        "standard error is at most E (in the explained output's units), E% of the row's "
        "|prediction - base value|, or auto (2% of the output's mean |f(z) - base value| "
        "over the background rows); --n-samples is then the most a row may take, and rows "
        "that reach it are flagged (converged = false). Default without --n-samples: auto.",
        show_default=False,
    ),
]
Interactions = Annotated[
    bool,
    Opt(
        "--interactions",
        help="Exact TreeSHAP only (a tree model's margin or prediction): write the pairwise "
        "Shapley interaction values instead of the attributions, a row per row, output and "
        "pair of features (feature_i, feature_j, interaction); each row's matrix sums over "
        "feature_j to the attribution of feature_i.",
    ),
]
InteractionsTop = Annotated[
    int | None,
    Opt(
        help="With --interactions: only the pairs among the K features of largest mean "
        "|attribution| over the background rows.",
        show_default=False,
    ),
]
KernelWidth = Annotated[
    float | None, Opt(help="LIME kernel width. Default 0.75*sqrt(n_features).", show_default=False)
]
NoDiscretize = Annotated[
    bool, Opt("--no-discretize", help="LIME: do not discretize continuous features into quartiles.")
]
NumFeatures = Annotated[
    int | None,
    Opt(help="LIME: keep the K strongest features per row, the others 0.", show_default=False),
]
LimeNeighbourhood = Annotated[
    str,
    Opt(
        help="LIME neighbours: shared (one seeded pool for all rows, the model is evaluated on it once) | per-row (each row draws its own)."
    ),
]
Baseline = Annotated[
    str, Opt(help="IG baseline: mean | median | zero | PATH to a table of baselines (averaged).")
]
Steps = Annotated[int, Opt(help="IG path steps.")]
NJobs = Annotated[int, Opt(help="Worker processes; -1 = all cores.")]
ChunkSize = Annotated[
    int,
    Opt(
        help="Rows per task, rounded up to a multiple of 64; smaller on tables of under 16 "
        "such chunks, so every core works (results never depend on it)."
    ),
]
Seed = Annotated[int, Opt(help="Seed of every random choice; same seed, same table.")]
Layout = Annotated[str, Opt(help="wide (a column per feature) | long (a row per feature).")]
Reasons = Annotated[
    int | None,
    Opt(
        help="Add the K top reasons per row: reason_k (feature or group), reason_k_value (the "
        "row's input value), reason_k_attribution (wide layout).",
        show_default=False,
    ),
]
ReasonDirection = Annotated[
    str,
    Opt(
        help="Which reasons: both (by |attribution|) | up (what raised the prediction) | down "
        "(what lowered it, most negative first, as adverse-action reasons)."
    ),
]
ReasonGroups = Annotated[
    Path | None,
    Opt(
        help="TOML file of \\[\\[group]] tables (name, features, optional code and text): "
        "a group's attributions are summed into one reason.",
        show_default=False,
    ),
]
Text = Annotated[
    bool, Opt("--text", help="With --reasons: add a 'summary' column, one plain sentence per row.")
]
Format = Annotated[
    str | None,
    Opt("--format", help=f"{_choices(FORMATS)}; overrides --out's extension.", show_default=False),
]
Manifest = Annotated[
    Path | None,
    Opt(
        help="Where to write the manifest JSON. Default: OUT.manifest.json (none for stdout).",
        show_default=False,
    ),
]
Overwrite = Annotated[
    bool,
    Opt(
        "--overwrite",
        help="Replace an existing output, manifest or job file (and any interrupted run's work).",
    ),
]
Resume = Annotated[
    bool,
    Opt(
        "--resume", help="Continue an interrupted run: only chunks not yet committed are computed."
    ),
]
TrustModel = Annotated[
    bool, Opt("--trust-model", help="Load a .skops file even with types skops does not trust.")
]
MaxEvalRows = Annotated[int, Opt(help="Cap on rows sent to the model in one call (memory bound).")]
OnInvalid = Annotated[
    str, Opt(help="Rows with NaN/inf the model cannot take: error | skip (to OUT.rejects.parquet).")
]
Backend = Annotated[
    str,
    Opt(help="Where chunks run: loky (local processes) | dask (a Dask cluster, with --scheduler)."),
]
Scheduler = Annotated[
    str | None, Opt(help="Dask scheduler address, e.g. tcp://10.0.0.5:8786.", show_default=False)
]
SaveJob = Annotated[
    Path | None,
    Opt(
        help="Also write this run as a job file for `xai run`, once it succeeded.",
        show_default=False,
    ),
]
LogFormat = Annotated[
    str,
    Opt(
        help=f"stderr messages: {_choices(LOG_FORMATS)} (one JSON object per line, for log collectors)."
    ),
]
Quiet = Annotated[bool, Opt("--quiet", "-q", help="Only errors on stderr.")]
Verbose = Annotated[
    bool,
    Opt(
        "--verbose",
        "-v",
        help="Print notes as they come, also when the run then stops on an error "
        "(otherwise they wait until the work starts).",
    ),
]
Debug = Annotated[bool, Opt("--debug", help="Show tracebacks.")]
