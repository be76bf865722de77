"""Compute one chunk's attributions: the code that runs inside a worker."""

from __future__ import annotations

import builtins
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from xaicli.errors import RunFailure, XaiError
from xaicli.methods.base import Attributions
from xaicli.models.adapter import ModelPredictor
from xaicli.models.loader import load_model, model_exits_as
from xaicli.runner.dispatch import run_method
from xaicli.runner.plan import RunPlan

# One entry per worker process: the model is loaded once, not once per chunk.
_MODELS: dict[str, Any] = {}
_THREADPOOLS: Any = None


def remember_model(key: str, model: Any) -> None:
    """Seed this process's cache (the main process already has the model)."""
    _MODELS[key] = model


def cached_model(plan: RunPlan) -> Any:
    model = _MODELS.get(plan.model_key)
    if model is None:
        model = (
            plan.model_object if plan.model_object is not None else load_model(plan.model_source)
        )
        _MODELS[plan.model_key] = model
    return model


def one_blas_thread():
    """One BLAS/OpenMP thread per worker: cores are shared out by processes. The controller
    is built once per process (building it scans the loaded libraries)."""
    global _THREADPOOLS
    if _THREADPOOLS is None:
        from threadpoolctl import ThreadpoolController

        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1)


def compute_chunk(
    plan: RunPlan,
    X: np.ndarray,
    row_index: np.ndarray,
    categories: tuple[tuple[Any, ...], ...],
    label: str,
) -> Attributions:
    """Attributions for the encoded rows X (n_rows, n_features) at positions row_index."""
    model = cached_model(plan)  # first: loading may bring in BLAS/OpenMP libraries
    # extreme values (e.g. 1e308) overflow in the model's and the methods' arithmetic; the
    # resulting inf/NaN are checked in the results, a numpy warning adds nothing
    with (
        one_blas_thread(),
        np.errstate(all="ignore"),
        model_exits_as(RunFailure, plan.model_source.spec, f"on {label}"),
    ):
        try:
            predictor = ModelPredictor(
                model, plan.output, plan.features, plan.categorical, categories, plan.model_columns
            )
            return run_method(plan, model, predictor, X, row_index)
        except XaiError:
            raise
        except Exception as exc:
            raise RunFailure(f"{label} failed: {type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class WorkerResult:
    """A chunk computed in a worker process, with the warnings raised there."""

    attributions: Attributions
    warnings: tuple[tuple[str, str, str, int], ...]  # (category, message, file, line)


def compute_chunk_in_worker(
    plan: RunPlan,
    X: np.ndarray,
    row_index: np.ndarray,
    categories: tuple[tuple[Any, ...], ...],
    label: str,
) -> WorkerResult:
    """compute_chunk in a worker, whose stderr is not the command's: warnings are recorded
    and travel back with the result, for the main process to report (see reissue)."""
    with warnings.catch_warnings(record=True) as caught:
        attributions = compute_chunk(plan, X, row_index, categories, label)
    recorded = tuple(
        (w.category.__name__, str(w.message), str(w.filename), int(w.lineno)) for w in caught
    )
    return WorkerResult(attributions, recorded)


def reissue(result: Any, registry: dict) -> Any:
    """A worker's result without its warnings, which are raised again in this process
    (once per place in the code, through ``registry``)."""
    if not isinstance(result, WorkerResult):
        return result
    for name, message, filename, lineno in result.warnings:
        category = getattr(builtins, name, None)
        if not (isinstance(category, type) and issubclass(category, Warning)):
            category, message = UserWarning, f"{name}: {message}"
        warnings.warn_explicit(message, category, filename, lineno, registry=registry)
    return result.attributions
