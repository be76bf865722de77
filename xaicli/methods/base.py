"""The contract shared by every attribution method.

A method sees only numpy: ``predict`` maps an encoded feature matrix of shape
``(n, n_features)`` to model outputs of shape ``(n, n_outputs)``. Categorical
input columns arrive as float category codes (``NaN`` = missing); the model
adapter decodes them before calling the real model, so methods may mix rows of
``x`` and ``background`` freely but must never interpolate a categorical code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: ``predict(X) -> Y``: X (n, n_features) float64, Y (n, n_outputs) float64.
PredictFn = Callable[[FloatArray], FloatArray]


@dataclass(frozen=True)
class Attributions:
    """Per-row attributions for a block of rows.

    values:      (n_rows, n_outputs, n_features) attribution of each feature (interaction
                 values: (n_rows, n_outputs, K, K), see ``shap_tree_interactions``).
    base_values: (n_rows, n_outputs) the reference value (SHAP: E[f(background)],
                 LIME: surrogate intercept, IG: f(baseline)).
    predictions: (n_rows, n_outputs) the model output that was explained.
    extras:      name -> (n_rows, n_outputs) extra per-row columns written after
                 ``prediction`` (e.g. ``completeness_error``, ``score``).
    standard_errors: (n_rows, n_outputs, n_features) the sampling error of each value
                 (``--errors``), or None.
    converged:   (n_rows,) whether each row reached its target error before its budget
                 ran out (``--target-error``), or None.
    """

    values: FloatArray
    base_values: FloatArray
    predictions: FloatArray
    extras: dict[str, FloatArray] = field(default_factory=dict)
    standard_errors: FloatArray | None = None
    converged: BoolArray | None = None

    def take_rows(self, keep: np.ndarray) -> Attributions:
        """The result for some of the rows (a boolean mask or positions)."""
        return Attributions(
            values=self.values[keep],
            base_values=self.base_values[keep],
            predictions=self.predictions[keep],
            extras={name: extra[keep] for name, extra in self.extras.items()},
            standard_errors=None if self.standard_errors is None else self.standard_errors[keep],
            converged=None if self.converged is None else self.converged[keep],
        )


def row_rng(seed: int, row: int) -> np.random.Generator:
    """The random stream of one input row: a function of the seed and the row's
    0-based position only, so results never depend on chunking or workers."""
    return np.random.default_rng([int(seed), int(row)])


def evaluate_in_blocks(predict: PredictFn, X: FloatArray, *, max_rows: int = 200_000) -> FloatArray:
    """``predict`` over ``X`` in blocks of at most ``max_rows`` rows, bounding memory."""
    if X.shape[0] <= max_rows:
        return np.asarray(predict(X), dtype=np.float64)
    parts = [predict(X[i : i + max_rows]) for i in range(0, X.shape[0], max_rows)]
    return np.concatenate([np.asarray(p, dtype=np.float64) for p in parts], axis=0)


#: Rows are evaluated in groups aligned to multiples of this global row position. The
#: runner's chunks are multiples of it too, so every model call holds the same rows
#: whatever the chunk size or worker: some models (BLAS-backed MLPs, linear models)
#: return results that differ in the last bit with the composition of the batch.
ROW_GROUP = 64


def row_blocks(row_index: IntArray, evals_per_row: int, max_eval_rows: int) -> list[slice]:
    """Split consecutive rows into blocks whose composition depends only on the rows'
    global positions: never across a ``ROW_GROUP`` boundary, and at most
    ``max(1, max_eval_rows // evals_per_row)`` rows each."""
    n = len(row_index)
    if n == 0:
        return []
    per_block = max(1, min(ROW_GROUP, max_eval_rows // max(1, evals_per_row)))
    index = np.asarray(row_index, dtype=np.int64)
    key = (index // ROW_GROUP) * ROW_GROUP + (index % ROW_GROUP) // per_block
    cuts = np.flatnonzero(np.diff(key)) + 1
    edges = [0, *cuts.tolist(), n]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def predict_rows(predict: PredictFn, X: FloatArray, row_index: IntArray) -> FloatArray:
    """``predict(X)`` (n_rows, n_outputs) evaluated in position-aligned blocks."""
    parts = [
        np.asarray(predict(X[s]), dtype=np.float64) for s in row_blocks(row_index, 1, ROW_GROUP)
    ]
    return np.concatenate(parts, axis=0)


def concat_attributions(parts: list[Attributions]) -> Attributions:
    """The results of consecutive blocks of rows as one."""
    return Attributions(
        values=np.concatenate([p.values for p in parts]),
        base_values=np.concatenate([p.base_values for p in parts]),
        predictions=np.concatenate([p.predictions for p in parts]),
        extras={k: np.concatenate([p.extras[k] for p in parts]) for k in parts[0].extras},
        standard_errors=None
        if parts[0].standard_errors is None
        else np.concatenate([p.standard_errors for p in parts]),
        converged=None
        if parts[0].converged is None
        else np.concatenate([p.converged for p in parts]),
    )


def select_outputs(result: Attributions, columns: tuple[int, ...]) -> Attributions:
    """Keep the explained output columns of a result computed for all of them."""
    if result.values.shape[1] == len(columns) and tuple(columns) == tuple(range(len(columns))):
        return result
    cols = list(columns)
    return Attributions(
        values=result.values[:, cols, :],
        base_values=result.base_values[:, cols],
        predictions=result.predictions[:, cols],
        extras={k: v[:, cols] for k, v in result.extras.items()},
        standard_errors=None
        if result.standard_errors is None
        else result.standard_errors[:, cols, :],
        converged=result.converged,
    )
