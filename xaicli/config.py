"""The frozen run configuration the command line hands to the runner."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

METHODS = ("auto", "shap", "lime", "ig", "saliency")
SHAP_ALGORITHMS = ("auto", "tree", "tree-path", "linear", "exact", "kernel", "permutation")
OUTPUT_KINDS = ("auto", "proba", "decision", "predict")
LAYOUTS = ("wide", "long")
FORMATS = ("parquet", "csv")


@dataclass(frozen=True)
class ExplainConfig:
    """Everything one ``xai explain`` run needs; built once, validated, never mutated."""

    model: str
    data: Path
    out: str  # a path, or "-" for stdout
    out_format: str = "parquet"
    features: tuple[str, ...] | None = None
    id_cols: tuple[str, ...] = ()
    method: str = "auto"
    algorithm: str = "auto"
    output: str = "auto"
    classes: tuple[str, ...] = ()
    background: Path | None = None
    background_size: int = 100
    n_samples: int | None = None
    # LIME / IG / saliency options
    kernel_width: float | None = None
    discretize: bool = True
    num_features: int | None = None
    baseline: str = "mean"
    steps: int = 32
    n_jobs: int = -1
    chunk_size: int = 1000
    seed: int = 0
    layout: str = "wide"
    overwrite: bool = False
    trust_model: bool = False
    manifest: Path | None = None
    quiet: bool = False
    max_eval_rows: int = 200_000
    resume: bool = False
    backend: str = "loky"
    scheduler: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

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
