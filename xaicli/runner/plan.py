"""The picklable description of what each chunk task computes."""

from __future__ import annotations

import os
import pickle
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from xaicli.models.adapter import OutputSpec
from xaicli.models.loader import ModelSource

# Per worker process: the structures read from files, by run. A long-lived worker serves
# one run after another; the last few are enough.
_STRUCTURES: dict[str, Any] = {}
_KEEP_STRUCTURES = 2


@dataclass(frozen=True)
class RunPlan:
    """Sent with every chunk: small (the model travels as its source, loaded once per worker;
    the structure as a file name, read once per worker: see :func:`shipped_once`)."""

    model_source: ModelSource
    model_key: str  # identifies the loaded model in a worker's cache
    output: OutputSpec
    features: tuple[str, ...]
    categorical: tuple[bool, ...]
    model_columns: tuple[str, ...] | None
    method: str  # shap | lime | ig | saliency
    algorithm: str  # for shap: tree | tree-path | linear | exact | kernel | permutation
    background: np.ndarray  # (n_background, n_features), encoded
    seed: int
    params: Any = None  # the method's parameters: its registry entry's dataclass
    state: Any = None  # what the method prepared once per run (xaicli.methods.registry.Setup)
    max_eval_rows: int = 200_000
    standard_errors: bool = False  # the results carry standard errors (sampling algorithms)
    converged: bool = False  # ... and whether each row reached its target error
    model_object: Any = None  # only for remote workers (Dask): the model itself, sent once
    # What the method derives from the model and the background, built once while planning
    # (xaicli.runner.structure); read it with structure_of.
    structure: Any = None
    # --interactions: the features whose pairs the table holds; None: attributions
    interactions: tuple[str, ...] | None = None


@dataclass(frozen=True)
class StructureFile:
    """Stands for a run's structure in the tasks sent to local worker processes."""

    path: str
    key: str  # unique to the run: names the structure in a worker's cache


def structure_of(plan: RunPlan) -> Any:
    """The plan's structure; read from its file once per worker process."""
    ref = plan.structure
    if not isinstance(ref, StructureFile):
        return ref
    structure = _STRUCTURES.get(ref.key)
    if structure is None:
        with open(ref.path, "rb") as handle:
            structure = pickle.load(handle)
        while len(_STRUCTURES) >= _KEEP_STRUCTURES:
            del _STRUCTURES[next(iter(_STRUCTURES))]
        _STRUCTURES[ref.key] = structure
    return structure


@contextmanager
def shipped_once(plan: RunPlan) -> Iterator[RunPlan]:
    """The plan to send with every task to local worker processes: its structure written
    to a temporary file, which each worker reads once, in place of the structure itself,
    which joblib would pickle again for every task (a forest's arrays are megabytes)."""
    if plan.structure is None or isinstance(plan.structure, StructureFile):
        yield plan
        return
    with tempfile.TemporaryDirectory(prefix="xai-structure-") as folder:
        path = os.path.join(folder, "structure.pickle")
        with open(path, "wb") as handle:
            pickle.dump(plan.structure, handle, protocol=pickle.HIGHEST_PROTOCOL)
        yield replace(plan, structure=StructureFile(path, uuid.uuid4().hex))
