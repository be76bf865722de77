"""The interventional SHAP game shared by the model-agnostic SHAP algorithms.

For a row x and background rows z_1..z_B the value of a coalition S of features is
``v(S) = 1/B * sum_b f(x_S, z_b[~S])``: features in S come from x, the others from the
background row (the interventional, or marginal, expectation of Janzing et al. 2020).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import njit

from xaicli.methods.base import (
    Attributions,
    BoolArray,
    FloatArray,
    IntArray,
    PredictFn,
    evaluate_in_blocks,
    row_blocks,
)
from xaicli.methods.registry import Block

#: ``hybrids(x, masks) -> (g, B, C, K)``: the model's outputs on the hybrid rows of x (g, M)
#: and the background for masks (g|1, C, B|1, M), computed without building the rows
#: (see ``xaicli.methods.shap_network``); None: build them and call ``predict``.
HybridFn = Callable[[FloatArray, BoolArray], FloatArray]


def sampled_block(explain: Callable[..., Attributions]) -> Callable[[Block], Attributions]:
    """The registry's block function of Kernel SHAP: its parameters, and the perceptron's
    layers (``block.aid``)."""

    def compute(block: Block) -> Attributions:
        return explain(
            block.predict,
            block.X,
            background=block.background,
            row_index=block.row_index,
            seed=block.seed,
            n_samples=block.params.n_samples,
            max_eval_rows=block.max_eval_rows,
            hybrids=block.aid,
            errors=block.params.errors,
        )

    return compute


def default_n_samples(n_features: int) -> int:
    """Coalitions per row of Kernel and permutation SHAP when not given: 2M + 2048
    (shap's default)."""
    return 2 * n_features + 2048


def coalition_values(
    predict: PredictFn,
    X: FloatArray,
    background: FloatArray,
    masks: BoolArray,
    *,
    row_index: IntArray,
    max_eval_rows: int = 200_000,
    hybrids: HybridFn | None = None,
) -> FloatArray:
    """Values v(S) of coalitions for each row.

    Parameters
    ----------
    X : (n_rows, n_features) rows to explain.
    background : (n_background, n_features) reference rows.
    masks : (n_coalitions, n_features) shared by all rows, or
        (n_rows, n_coalitions, n_features) one set per row; True = take x's value.
    row_index : (n_rows,) global row positions; they fix how rows are batched.

    Returns
    -------
    (n_rows, n_coalitions, n_outputs) the background mean of the model output.
    """
    shared = masks.ndim == 2

    def masks_of(block: slice) -> BoolArray:
        return (masks[None] if shared else masks[block])[:, :, None, :]

    return reduce_over_coalitions(
        predict,
        X,
        background,
        masks_of,
        masks.shape[-2],
        lambda block, values: values.mean(axis=2),
        row_index=row_index,
        max_eval_rows=max_eval_rows,
        hybrids=hybrids,
    )


def reduce_over_coalitions(
    predict: PredictFn,
    X: FloatArray,
    background: FloatArray,
    masks_of: Callable[[slice], BoolArray],
    n_coalitions: int,
    reduce: Callable[[slice, FloatArray], FloatArray],
    *,
    row_index: IntArray,
    max_eval_rows: int = 200_000,
    hybrids: HybridFn | None = None,
) -> FloatArray:
    """Model outputs on hybrid rows, reduced block by block so memory stays bounded.

    ``masks_of(block)`` gives the masks of a block of rows, shape (g|1, C, B|1, M),
    True = take x's value: one coalition per (row, slot, background row), so each
    background row may have coalitions of its own. ``reduce(block, values)`` maps the
    outputs (g, C, B, K) to the block's result (g, ...); results are concatenated.
    ``hybrids``, when given, computes the outputs in place of building rows for ``predict``.

    The model sees a row's hybrids background row by background row: neighbouring rows
    then differ in few features (consecutive steps of a permutation walk in one), which
    makes tree models faster, their branches repeating from one row to the next.
    """
    n_features = X.shape[1]
    n_background = background.shape[0]
    blocks = row_blocks(row_index, n_coalitions * n_background, max_eval_rows)
    if not blocks:
        raise ValueError("no rows to explain")
    # a row whose hybrids alone exceed max_eval_rows goes to the model in slices of its
    # coalitions, so the cap bounds memory for any budget and background size
    per_slice = max(1, min(n_coalitions, max_eval_rows // n_background))
    largest = max(b.stop - b.start for b in blocks)
    # one buffer for every block: writing into memory already mapped is several times
    # faster than a fresh array of this size (page faults dominate otherwise)
    buffer = np.empty(0 if hybrids is not None else largest * n_background * per_slice * n_features)
    x_all = np.ascontiguousarray(X, dtype=np.float64)
    z = np.ascontiguousarray(background, dtype=np.float64)
    results = []
    for block in blocks:
        g = block.stop - block.start
        masks = np.ascontiguousarray(masks_of(block), dtype=np.bool_)
        outputs = []
        for c0 in range(0, n_coalitions, per_slice):
            c1 = min(c0 + per_slice, n_coalitions)
            if hybrids is not None:
                outputs.append(hybrids(x_all[block], np.ascontiguousarray(masks[:, c0:c1])))
                continue
            hybrid = buffer[: g * n_background * (c1 - c0) * n_features].reshape(
                g, n_background, c1 - c0, n_features
            )
            _fill_hybrid(np.ascontiguousarray(masks[:, c0:c1]), x_all[block], z, hybrid)
            y = evaluate_in_blocks(predict, hybrid.reshape(-1, n_features), max_rows=max_eval_rows)
            outputs.append(y.reshape(g, n_background, c1 - c0, -1))
        y = np.concatenate(outputs, axis=2) if len(outputs) > 1 else outputs[0]
        results.append(reduce(block, y.transpose(0, 2, 1, 3)))
    return np.concatenate(results, axis=0)


@njit(cache=True)
def _fill_hybrid(masks, x, background, out):  # type: ignore[no-untyped-def]
    """out[i, b, c] = x[i] where masks[i, c, b] else background[b]; masks may have size 1
    along rows (shared by all rows) or background rows (shared by the background)."""
    mask_rows, n_coalitions, mask_background, n_features = masks.shape
    for i in range(out.shape[0]):
        mi = i if mask_rows > 1 else 0
        for b in range(out.shape[1]):
            mb = b if mask_background > 1 else 0
            for c in range(n_coalitions):
                for j in range(n_features):
                    out[i, b, c, j] = x[i, j] if masks[mi, c, mb, j] else background[b, j]


def check_background(X: FloatArray, background: FloatArray) -> None:
    if X.ndim != 2 or background.ndim != 2 or X.shape[1] != background.shape[1]:
        raise ValueError(
            f"X {X.shape} and background {background.shape} must be 2-D with the same columns"
        )
    if background.shape[0] == 0:
        raise ValueError("background must have at least one row")
