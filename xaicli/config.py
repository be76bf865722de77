"""The frozen run configuration handed from the command line (or a job file) to the runner,
and the one place where option values are checked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Literal, get_args, get_origin, get_type_hints

from xaicli.errors import UsageError

# The choices of every option that takes one: the field types below and the checks in
# build_config both read them, so a choice is added in one place.
Method = Literal["auto", "shap", "lime", "ig", "saliency"]
Algorithm = Literal["auto", "tree", "tree-path", "linear", "exact", "kernel", "permutation"]
OutputKind = Literal["auto", "proba", "decision", "predict"]
Layout = Literal["wide", "long"]
FileFormat = Literal["parquet", "csv"]
Backend = Literal["loky", "dask"]
OnInvalid = Literal["error", "skip"]
LimeNeighbourhood = Literal["shared", "per-row"]

METHODS: tuple[str, ...] = get_args(Method)
SHAP_ALGORITHMS: tuple[str, ...] = get_args(Algorithm)
OUTPUT_KINDS: tuple[str, ...] = get_args(OutputKind)
LAYOUTS: tuple[str, ...] = get_args(Layout)
FORMATS: tuple[str, ...] = get_args(FileFormat)
BACKENDS: tuple[str, ...] = get_args(Backend)
ON_INVALID: tuple[str, ...] = get_args(OnInvalid)
LIME_NEIGHBOURHOODS: tuple[str, ...] = get_args(LimeNeighbourhood)


@dataclass(frozen=True)
class ExplainConfig:
    """Everything one ``xai explain`` run needs; built once, validated, never mutated.

    The field defaults are the defaults of the command line, job files and the Python API.
    The field order is the order of the manifest's ``parameters`` and of job files."""

    # what to explain
    model: str
    data: Path
    out: str  # a path, or "-" for stdout
    out_format: FileFormat = "parquet"
    features: tuple[str, ...] | None = None
    id_cols: tuple[str, ...] = ()
    # how to compute
    method: Method = "auto"
    algorithm: Algorithm = "auto"
    output: OutputKind = "auto"
    classes: tuple[str, ...] = ()
    background: Path | None = None
    background_size: int = 100
    n_samples: int | None = None
    kernel_width: float | None = None
    discretize: bool = True
    num_features: int | None = None
    lime_neighbourhood: LimeNeighbourhood = "shared"
    baseline: str = "mean"  # mean | median | zero, or a path
    steps: int = 64
    n_jobs: int = -1
    chunk_size: int = 1024
    seed: int = 0
    # where and how to write
    layout: Layout = "wide"
    overwrite: bool = False
    resume: bool = False
    trust_model: bool = False
    manifest: Path | None = None
    quiet: bool = False
    max_eval_rows: int = 200_000
    on_invalid: OnInvalid = "error"
    # where to run
    backend: Backend = "loky"
    scheduler: str | None = None

    def parameters(self) -> dict[str, Any]:
        """The configuration as JSON-ready values, for manifests."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[key] = value
        return out


FIELD_NAMES = tuple(f.name for f in fields(ExplainConfig))
# field -> its default, for every field that has one
DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in fields(ExplainConfig) if f.default is not MISSING
}
PATH_KEYS = ("model", "data", "out", "background", "manifest", "baseline")

ValueKind = Literal["list", "bool", "int", "float", "str"]


def _value_kind(hint: Any) -> ValueKind:
    """What a field holds, read from its type: ``int | None`` is an int, ``Path`` and the
    Literal choices are strings."""
    if isinstance(hint, UnionType):  # X | None: what it holds when given
        hint = next(arg for arg in get_args(hint) if arg is not NoneType)
    if get_origin(hint) is tuple:
        return "list"
    if hint is bool:  # before int: a bool is also an int
        return "bool"
    if hint is int:
        return "int"
    if hint is float:
        return "float"
    return "str"


_HINTS = get_type_hints(ExplainConfig)
# field -> what kind of value it holds (job files check their values against it)
VALUE_KINDS: dict[str, ValueKind] = {name: _value_kind(_HINTS[name]) for name in FIELD_NAMES}
# field -> its allowed values, for the fields that take one of a few choices
CHOICES: dict[str, tuple[str, ...]] = {
    name: get_args(_HINTS[name]) for name in FIELD_NAMES if get_origin(_HINTS[name]) is Literal
}


def build_config(values: dict[str, Any], *, name: Callable[[str], str]) -> ExplainConfig:
    """Check option values and build the configuration.

    values: config field names -> values (None = default). ``name(key)`` says how the user
    wrote the key (``--chunk-size``, or ``job.toml [[explain]] 1: chunk_size``) for messages.
    """
    v = {k: val for k, val in values.items() if val is not None}
    for key in ("model", "data"):
        if not v.get(key):
            raise UsageError(f"{name(key)} is required")
    for key, allowed in CHOICES.items():
        if key in v and v[key] not in allowed:
            raise UsageError(f"{name(key)} must be one of {', '.join(allowed)}; got {v[key]!r}")
    for key, least in (
        ("chunk_size", 1),
        ("n_samples", 1),
        ("steps", 1),
        ("background_size", 1),
        ("max_eval_rows", 1),
        ("num_features", 1),
    ):
        if key in v and v[key] < least:
            raise UsageError(f"{name(key)} must be at least {least}; got {v[key]}")
    # numpy seeds its generators from non-negative integers only
    if "seed" in v and v["seed"] < 0:
        raise UsageError(f"{name('seed')} must be 0 or more; got {v['seed']}")
    # the LIME kernel squares the width: beyond 1e150 that overflows
    if "kernel_width" in v and not 0 < v["kernel_width"] <= 1e150:
        raise UsageError(
            f"{name('kernel_width')} must be positive and at most 1e150; got {v['kernel_width']}"
        )
    if v.get("backend") == "dask" and not v.get("scheduler"):
        raise UsageError(f"{name('backend')} dask needs {name('scheduler')} ADDRESS")
    data = Path(v["data"])
    out, out_format = _output(v.get("out"), data, v.get("out_format"), name)
    v.update(data=data, out=out, out_format=out_format, model=str(v["model"]))
    for key in ("background", "manifest"):
        if key in v:
            v[key] = Path(v[key])
    for key in ("features", "id_cols", "classes"):
        if key in v:
            v[key] = list_entries(v[key])
    if "features" in v and not v["features"]:
        del v["features"]
    return ExplainConfig(**v)


class ExactName(str):
    """A column or class name to take whole, never split on commas (a job file's list item)."""

    __slots__ = ()


def list_entries(value: Any) -> tuple[str, ...]:
    """A list option as given: one entry per repeated value (or a single string). Entries
    are names or comma-separated shorthands, told apart by ``resolve_names`` once the
    data's columns (or the model's classes) are known."""
    items = [value] if isinstance(value, str) else list(value or [])
    return tuple(item for item in items if str(item).strip())


def resolve_names(entries: tuple[str, ...], known: Any) -> tuple[str, ...]:
    """The names a list option means. An entry that names a known column (or class label)
    exactly, or is an ExactName, is taken whole; any other is split on commas, so
    ``--features "a,b"`` is the columns a and b unless a column is called "a,b"."""
    known = set(known)
    names: list[str] = []
    for entry in entries:
        if isinstance(entry, ExactName) or entry in known:
            names.append(str(entry))
        else:
            names.extend(part.strip() for part in entry.split(",") if part.strip())
    return tuple(names)


def _output(
    out: str | None, data: Path, fmt: str | None, name: Callable[[str], str]
) -> tuple[str, str]:
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
                f"cannot tell the format of {name('out')} {out}; use .parquet or .csv, "
                f"or {name('out_format')}"
            )
    return str(out), fmt
