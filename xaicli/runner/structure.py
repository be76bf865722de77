"""What a run derives from the model and the background, built once while planning and
reused by every chunk: the trees' arrays and the background in their input space
(``tree``), a perceptron's later layers and its first layer on the background (``exact``,
``kernel``, ``permutation``). The plan carries it to the workers (see
:func:`xaicli.runner.plan.shipped_once`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from xaicli.models.adapter import ModelPredictor, OutputSpec
from xaicli.runner.choose import Choice

#: The SHAP algorithms that evaluate a perceptron's hybrid rows from its layers.
NETWORK_ALGORITHMS = ("exact", "kernel", "permutation")


def model_structure(
    choice: Choice,
    model: Any,
    predictor: ModelPredictor,
    output: OutputSpec,
    background: np.ndarray,
) -> Any:
    """The structure of the chosen SHAP algorithm, or None when it needs none.

    ``predictor`` decodes the background (B, M, encoded); ``output`` is the explained one.
    """
    if choice.algorithm == "tree":
        return choice.tree_inputs  # built to choose the algorithm: kept, not rebuilt
    if choice.algorithm not in NETWORK_ALGORITHMS:
        return None
    from xaicli.models.network import network_background
    from xaicli.runner.compute import one_blas_thread

    # as the workers compute, so that the bits match theirs
    with one_blas_thread():
        return network_background(model, output.kind, predictor, background, output.columns)
