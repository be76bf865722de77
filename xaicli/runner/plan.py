"""The picklable description of what each chunk task computes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xaicli.models.adapter import OutputSpec
from xaicli.models.loader import ModelSource


@dataclass(frozen=True)
class RunPlan:
    """Sent with every chunk: small (the model travels as its source, loaded once per worker)."""

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
    params: dict[str, Any] = field(default_factory=dict)
    max_eval_rows: int = 200_000
    model_object: Any = None  # only for remote workers (Dask): the model itself, sent once
