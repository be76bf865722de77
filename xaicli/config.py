"""The frozen run configuration handed from the command line (or a job file) to the runner,
and the one place where option values are checked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Literal, get_args, get_origin, get_type_hints

from xaicli.errors import UsageError

# The choices of every option that takes one: the field types below and the checks in
# build_config both read them, so a choice is added in one place. Method lists the built-in
# methods (for types and help); build_config takes any method the registry holds.
Method = Literal["auto", "shap", "lime", "ig", "saliency"]
Algorithm = Literal["auto", "tree", "tree-path", "linear", "exact", "kernel", "permutation"]
OutputKind = Literal["auto", "proba", "decision", "predict"]
Layout = Literal["wide", "long"]
FileFormat = Literal["parquet", "csv"]
Backend = Literal["loky", "dask"]
OnInvalid = Literal["error", "skip"]
LimeNeighbourhood = Literal["shared", "per-row"]
ReasonDirection = Literal["both", "up", "down"]

METHODS: tuple[str, ...] = get_args(Method)
SHAP_ALGORITHMS: tuple[str, ...] = get_args(Algorithm)
OUTPUT_KINDS: tuple[str, ...] = get_args(OutputKind)
LAYOUTS: tuple[str, ...] = get_args(Layout)
FORMATS: tuple[str, ...] = get_args(FileFormat)
BACKENDS: tuple[str, ...] = get_args(Backend)
ON_INVALID: tuple[str, ...] = get_args(OnInvalid)
LIME_NEIGHBOURHOODS: tuple[str, ...] = get_args(LimeNeighbourhood)
REASON_DIRECTIONS: tuple[str, ...] = get_args(ReasonDirection)


@dataclass(frozen=True)
class Inputs:
    """What to explain: the model, the rows, and which of the model's outputs."""

    model: str
    data: Path
    features: tuple[str, ...] | None = None
    id_cols: tuple[str, ...] = ()
    output: OutputKind = "auto"
    classes: tuple[str, ...] = ()
    background: Path | None = None
    background_size: int | None = None  # None: DEFAULT_BACKGROUND_SIZE, or the tree default
    background_weights: str | None = None  # a column of the background's source
    trust_model: bool = False


@dataclass(frozen=True)
class Compute:
    """How to compute: the method, its parameters, the seed and the limits on model calls."""

    method: Method = "auto"
    algorithm: Algorithm = "auto"
    n_samples: int | None = None
    errors: bool = False
    target_error: str | None = None  # "0.01" (absolute), "5%" (of |prediction - base|), "auto"
    kernel_width: float | None = None
    discretize: bool = True
    num_features: int | None = None
    lime_neighbourhood: LimeNeighbourhood = "shared"
    baseline: str = "mean"  # mean | median | zero, or a path
    steps: int = 64
    seed: int = 0
    max_eval_rows: int = 200_000
    on_invalid: OnInvalid = "error"
    interactions: bool = False  # the table of pairwise interaction values (exact TreeSHAP)
    interactions_top: int | None = None  # only the pairs among the K most important features


@dataclass(frozen=True)
class Destination:
    """Where to write: the output table, its shape (and its reason columns), the manifest,
    and what may be replaced."""

    out: str  # a path, or "-" for stdout
    out_format: FileFormat = "parquet"
    layout: Layout = "wide"
    reasons: int | None = None  # K reason columns per row (wide layout), or none
    reason_direction: ReasonDirection = "both"
    reason_groups: Path | None = None  # a TOML file of named groups of features
    reason_text: bool = False  # a ``summary`` sentence per row
    manifest: Path | None = None
    overwrite: bool = False
    resume: bool = False


@dataclass(frozen=True)
class Execution:
    """How to run: the parallelism, the chunking and what to print. None of it changes the
    output's values."""

    n_jobs: int = -1
    chunk_size: int = 1024
    backend: Backend = "loky"
    scheduler: str | None = None
    quiet: bool = False


# The concerns ExplainConfig is made of: its attribute -> the dataclass holding them.
GROUPS: dict[str, type] = {
    "inputs": Inputs,
    "compute": Compute,
    "destination": Destination,
    "execution": Execution,
}
# The flat order of the fields: the manifest's ``parameters`` and job files keep it.
FIELD_NAMES = (
    "model",
    "data",
    "out",
    "out_format",
    "features",
    "id_cols",
    "method",
    "algorithm",
    "output",
    "classes",
    "background",
    "background_size",
    "background_weights",
    "n_samples",
    "kernel_width",
    "discretize",
    "num_features",
    "lime_neighbourhood",
    "baseline",
    "steps",
    "n_jobs",
    "chunk_size",
    "seed",
    "layout",
    "overwrite",
    "resume",
    "trust_model",
    "manifest",
    "quiet",
    "max_eval_rows",
    "on_invalid",
    "backend",
    "scheduler",
    "reasons",
    "reason_direction",
    "reason_groups",
    "reason_text",
    # added with format version 2: after the earlier keys, whose order manifests keep
    "errors",
    "target_error",
    # added with format version 3
    "interactions",
    "interactions_top",
)
# field -> the ExplainConfig attribute of its group
GROUP_OF: dict[str, str] = {f.name: group for group, cls in GROUPS.items() for f in fields(cls)}
if set(GROUP_OF) != set(FIELD_NAMES) or len(GROUP_OF) != len(FIELD_NAMES):
    raise RuntimeError("FIELD_NAMES must name every field of the configuration's groups once")


@dataclass(frozen=True)
class ExplainConfig:
    """Everything one ``xai explain`` run needs; built once, validated, never mutated.

    The groups' field defaults are the defaults of the command line, job files and the
    Python API. FIELD_NAMES is the order of the manifest's ``parameters`` and of job files."""

    inputs: Inputs
    compute: Compute
    destination: Destination
    execution: Execution

    @classmethod
    def from_values(cls, **values: Any) -> ExplainConfig:
        """The configuration from flat field values (a field left out takes its default)."""
        grouped: dict[str, dict[str, Any]] = {group: {} for group in GROUPS}
        for key, value in values.items():
            grouped[GROUP_OF[key]][key] = value
        return cls(**{group: GROUPS[group](**grouped[group]) for group in GROUPS})

    def value(self, key: str) -> Any:
        """One field's value by its flat name."""
        return getattr(getattr(self, GROUP_OF[key]), key)

    def flat_values(self) -> dict[str, Any]:
        """Every field by its flat name, in FIELD_NAMES order."""
        return {key: self.value(key) for key in FIELD_NAMES}

    def with_values(self, **values: Any) -> ExplainConfig:
        """A copy with some fields, named flat, changed."""
        changes: dict[str, dict[str, Any]] = {}
        for key, value in values.items():
            changes.setdefault(GROUP_OF[key], {})[key] = value
        return replace(
            self, **{group: replace(getattr(self, group), **c) for group, c in changes.items()}
        )

    def parameters(self) -> dict[str, Any]:
        """The configuration as flat JSON-ready values, in FIELD_NAMES order, for manifests."""
        out: dict[str, Any] = {}
        for key, value in self.flat_values().items():
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[key] = value
        return out


_FIELDS = {f.name: f for cls in GROUPS.values() for f in fields(cls)}
# field -> its default, for every field that has one
DEFAULTS: dict[str, Any] = {
    name: _FIELDS[name].default for name in FIELD_NAMES if _FIELDS[name].default is not MISSING
}
PATH_KEYS = ("model", "data", "out", "background", "manifest", "baseline", "reason_groups")

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


# field -> its type hint
HINTS: dict[str, Any] = {
    name: hint for cls in GROUPS.values() for name, hint in get_type_hints(cls).items()
}
# field -> what kind of value it holds (job files check their values against it)
VALUE_KINDS: dict[str, ValueKind] = {name: _value_kind(HINTS[name]) for name in FIELD_NAMES}
# field -> its allowed values, for the fields that take one of a few choices
CHOICES: dict[str, tuple[str, ...]] = {
    name: get_args(HINTS[name]) for name in FIELD_NAMES if get_origin(HINTS[name]) is Literal
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
        if key == "method" and key in v and v[key] not in allowed:
            allowed = method_choices()  # a method registered beyond the built-in ones
        if key in v and v[key] not in allowed:
            raise UsageError(f"{name(key)} must be one of {', '.join(allowed)}; got {v[key]!r}")
    for key, least in (
        ("chunk_size", 1),
        ("n_samples", 1),
        ("steps", 1),
        ("background_size", 1),
        ("max_eval_rows", 1),
        ("num_features", 1),
        ("reasons", 1),
        ("interactions_top", 1),
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
    if "target_error" in v:
        v["target_error"] = _target_error(v["target_error"], name)
    if v.get("backend") == "dask" and not v.get("scheduler"):
        raise UsageError(f"{name('backend')} dask needs {name('scheduler')} ADDRESS")
    _check_reasons(v, name)
    data = Path(v["data"])
    out, out_format = _output(v.get("out"), data, v.get("out_format"), name)
    v.update(data=data, out=out, out_format=out_format, model=str(v["model"]))
    for key in ("background", "manifest", "reason_groups"):
        if key in v:
            v[key] = Path(v[key])
    for key in ("features", "id_cols", "classes"):
        if key in v:
            v[key] = list_entries(v[key])
    if "features" in v and not v["features"]:
        del v["features"]
    return ExplainConfig.from_values(**v)


def _check_reasons(v: dict[str, Any], name: Callable[[str], str]) -> None:
    """Reason columns belong to the wide layout; their options need ``--reasons K``."""
    if "reasons" not in v:
        for key in ("reason_groups", "reason_text"):
            if v.get(key):
                raise UsageError(f"{name(key)} needs {name('reasons')} K")
        return
    if v.get("layout") == "long":
        raise UsageError(
            f"{name('reasons')} adds columns to the wide layout; drop {name('layout')} long, or "
            "run 'xai reasons' on the long table afterwards"
        )


def _target_error(value: Any, name: Callable[[str], str]) -> str:
    """--target-error as written: a positive number, or a positive percentage."""
    from xaicli.methods.sampling_error import parse_target_error

    text = str(value).strip()
    try:
        parse_target_error(text)
    except ValueError:
        raise UsageError(
            f"{name('target_error')} must be a positive number (in the explained output's "
            "units), a percentage of |prediction - base value|, or auto, e.g. 0.01 or 5%; "
            f"got {value!r}"
        ) from None
    return text


def method_choices() -> tuple[str, ...]:
    """``--method``'s values: "auto" and every method in the registry. The registry is read
    here, not at import, because reading it imports every method (numba among them)."""
    from xaicli.methods.registry import method_names

    return ("auto", *method_names())


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
