"""The attribution methods xaicli runs: one entry per (method, algorithm).

Each method's module declares its own entry with :func:`register`: its name, its typed
parameters (a frozen dataclass whose defaults are the method's defaults), the extra
output columns it adds, what it prepares once per run, and the function that explains
a block of rows. The runner reads only this registry; it holds no code of any method.

A new method is one module (its entry at the bottom), one line in ``METHOD_MODULES`` and
one test file.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from xaicli.methods.base import Attributions, BoolArray, FloatArray, IntArray, PredictFn

#: The modules that declare the entries, imported on first use of the registry.
METHOD_MODULES = (
    "xaicli.methods.shap_tree",
    "xaicli.methods.shap_linear",
    "xaicli.methods.shap_exact",
    "xaicli.methods.shap_kernel",
    "xaicli.methods.shap_permutation",
    "xaicli.methods.lime",
    "xaicli.methods.ig",
    "xaicli.methods.saliency",
)


class MethodInputError(ValueError):
    """The user's options or data do not suit the method; the runner reports it as bad
    input (exit 2). ``about_data``: the data is at fault rather than an option."""

    def __init__(self, message: str, *, about_data: bool = False) -> None:
        super().__init__(message)
        self.about_data = about_data


@dataclass(frozen=True)
class RunInputs:
    """What a method's preparation sees, once per run, before any row is explained.

    background:    (n_background, n_features) encoded reference rows.
    categorical:   (n_features,) True for category-code columns.
    feature_names: the explained features, in column order.
    tables:        the entry's table parameters given as files, read and encoded by the
                   runner: name -> (n_table_rows, n_features).
    """

    background: FloatArray
    categorical: BoolArray
    feature_names: tuple[str, ...]
    tables: Mapping[str, FloatArray] = field(default_factory=dict)


@dataclass(frozen=True)
class Setup:
    """What a method prepared once per run.

    state:   shipped to every block with the plan (``Block.state``); picklable.
    refuser: set when the method itself cannot take NaN or infinity in numeric columns,
             even where the model can: it names the method in the messages about such
             rows, and ``advice`` says what else the user can do (ends with ", ").
    """

    state: Any = None
    refuser: str | None = None
    advice: str = ""


@dataclass(frozen=True)
class Block:
    """A block of rows to explain, as the runner hands it to an entry's ``compute``.

    predict:        encoded X (n, n_features) -> explained outputs (n, n_outputs).
    X:              (n_rows, n_features) encoded rows; row_index their 0-based positions.
    background:     (n_background, n_features) encoded; categorical (n_features,).
    output_columns: the explained outputs' positions among the model's outputs.
    params, state:  the entry's parameters and what its ``prepare`` returned.
    aid:            the model-specific input the entry asked for (``MethodSpec.aid``).
    predict_key:    names ``predict`` on rows whose category codes come from the
                    background: equal keys, equal outputs on such rows. A method that
                    caches model outputs across blocks keys its cache with it.
    """

    predict: PredictFn
    X: FloatArray
    row_index: IntArray
    background: FloatArray
    categorical: BoolArray
    feature_names: tuple[str, ...]
    output_columns: tuple[int, ...]
    seed: int
    max_eval_rows: int
    params: Any
    state: Any = None
    aid: Any = None
    predict_key: str = ""


@dataclass(frozen=True)
class TableParam:
    """A parameter that is either one of ``keywords`` or the path of a table with the
    features' columns, which the runner reads (files are I/O, not a method's business)."""

    name: str
    keywords: tuple[str, ...]


def _nothing_to_prepare(params: Any, inputs: RunInputs) -> Setup:
    return Setup()


@dataclass(frozen=True)
class MethodSpec:
    """One registry entry.

    method, algorithm: the ``--method`` and ``--algorithm`` values ("" for no algorithm).
    params:       frozen dataclass of the parameters, with the defaults; a field is set
                  from the option of the same name, or of its ``metadata["option"]``.
    compute:      Block -> Attributions (n_rows, n_outputs, n_features), extras included.
    prepare:      (params, RunInputs) -> Setup, once per run; it checks the options
                  against the data and raises MethodInputError.
    extras:       the output columns it adds after ``prediction``, in order.
    aid:          the model-specific input the runner builds for each block from the model
                  and the run's structure: "tree", "tree-path", "network", "hybrids" (a
                  perceptron's layers, or a boosted classifier's trees for permutation
                  walks) or None.
    table_params: parameters that may name a table file.
    sampling:     for a sampling algorithm, (params, n_features) -> (writes standard
                  errors, writes ``converged``); None: it takes neither --errors nor
                  --target-error.
    """

    method: str
    algorithm: str
    params: type
    compute: Callable[[Block], Attributions]
    prepare: Callable[[Any, RunInputs], Setup] = _nothing_to_prepare
    extras: tuple[str, ...] = ()
    aid: str | None = None
    table_params: tuple[TableParam, ...] = ()
    sampling: Callable[[Any, int], tuple[bool, bool]] | None = None


@dataclass(frozen=True)
class NoParams:
    """For methods without parameters."""


_SPECS: dict[tuple[str, str], MethodSpec] = {}
_LOADED = False


def register(spec: MethodSpec) -> MethodSpec:
    """Add (or replace) an entry."""
    _SPECS[(spec.method, spec.algorithm)] = spec
    return spec


def _load() -> dict[tuple[str, str], MethodSpec]:
    global _LOADED
    if not _LOADED:
        for module in METHOD_MODULES:
            importlib.import_module(module)
        _LOADED = True
    return _SPECS


def registered() -> dict[tuple[str, str], MethodSpec]:
    """Every entry, by (method, algorithm), in the order of METHOD_MODULES (modules import
    each other, so the order of registration is not it), entries added otherwise last."""
    rank = {module: i for i, module in enumerate(METHOD_MODULES)}
    return dict(
        sorted(_load().items(), key=lambda item: rank.get(item[1].compute.__module__, len(rank)))
    )


def method_spec(method: str, algorithm: str = "") -> MethodSpec:
    spec = _load().get((method, algorithm))
    if spec is None:
        raise ValueError(f"no method {method!r} with algorithm {algorithm!r}")
    return spec


def method_names() -> tuple[str, ...]:
    """The methods, in registration order."""
    return tuple(dict.fromkeys(method for method, _ in registered()))


def method_extras(method: str) -> tuple[str, ...]:
    """The extra output columns of a method (the same for all its algorithms)."""
    return next((s.extras for (m, _), s in registered().items() if m == method), ())


def all_extras() -> tuple[str, ...]:
    """Every extra output column any method adds."""
    return tuple(dict.fromkeys(name for spec in registered().values() for name in spec.extras))


def params_from(spec: MethodSpec, options: Mapping[str, Any]) -> Any:
    """The entry's parameters from option values (None = the parameter's default)."""
    values = {}
    for f in fields(spec.params):
        value = options.get(f.metadata.get("option", f.name))
        if value is not None:
            values[f.name] = value
    return spec.params(**values)


def param_default(params: type, name: str) -> Any:
    """A parameter's default, for option help and job files."""
    for f in fields(params):
        if f.name == name and f.default is not MISSING:
            return f.default
    raise KeyError(name)
