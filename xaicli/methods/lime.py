"""Tabular LIME, vectorised over the rows of a chunk (surrogates: :mod:`.lime_surrogate`).

Ribeiro, Singh & Guestrin (2016), "Why should I trust you?": Explaining the
predictions of any classifier. KDD. Reproduces ``lime.lime_tabular`` (0.2.0.1)
with ``discretizer="quartile"`` and ``sample_around_instance=False``, except:

* every model output gets its surrogate from the same neighbours (lime: one fit per label);
* random draws come from the seed (same distributions, not lime's numbers), and by
  default one pool of neighbours serves every row (below);
* a quartile bin holding a single value is sampled at that value (lime 0.2.0.1
  returns its standardised bound, 0, a value the data may never take);
* ``NaN`` is a category of its own, and an empty "lasso_path" support gives
  zero weights (lime fails on both);
* for a model that takes them, ``NaN`` and infinite values of a continuous
  feature are bins of their own (:mod:`.lime_sampling`); lime cannot take them.
  Without discretization a row's NaN has no z-score and is refused;
* by default all features are kept (lime's ``num_features`` default is 10).

Shared neighbourhood (``neighbourhood="shared"``, the default). With
``sample_around_instance=False`` lime's neighbours do not depend on the
explained row: bins are drawn with their background frequencies and values
within bins from the background bin statistics (continuous mode:
``N(mean, std)``), categories with their frequencies. The row enters only as
sample 0 and through the interpretable representation (same bin or category as
the row; in continuous mode sample 0's z-score), hence the kernel weights. So
one pool of ``n_samples - 1`` neighbours, drawn from
``default_rng([seed, LIME_POOL_STREAM])``, serves every row: the model is
evaluated on the pool once (cached per process under ``pool_key``) and once on
each row, instead of ``n_samples`` times per row; what remains per row is its
interpretable samples, kernel weights and the ridge fit. Each row's samples,
taken on their own, have exactly lime's distribution (sample 0 the row, then
independent draws that ignore it). The price: the rows share one set of draws,
so their sampling errors are correlated (as with a shared coalition design in
Kernel SHAP). Differences between rows are less noisy, but an unlucky pool
shifts the explanations of all similar rows alike, and averaging explanations
over rows does not average that error away. ``neighbourhood="per-row"`` draws
each row's own neighbours from ``row_rng(seed, row)``: independent errors, at
``n_samples`` model evaluations per row.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .base import (
    Attributions,
    BoolArray,
    FloatArray,
    IntArray,
    PredictFn,
    evaluate_in_blocks,
    predict_rows,
    row_blocks,
    row_rng,
)
from .lime_sampling import Neighbours, TabularSampler
from .lime_surrogate import fit_surrogates, kernel_weights
from .registry import Block, MethodInputError, MethodSpec, RunInputs, Setup, register

__all__ = ["LIME_POOL_STREAM", "clear_pool_cache", "explain_lime"]

FEATURE_SELECTIONS = ("auto", "none", "forward_selection", "highest_weights", "lasso_path")
NEIGHBOURHOODS = ("shared", "per-row")
#: The shared pool's random stream ``[seed, LIME_POOL_STREAM]``: an integer of two
#: 32-bit words, so its seed sequence differs from every row's ``[seed, row]``
#: (``row < 2**32``) and from ``[seed, row, 0]``, which numpy treats as ``[seed, row]``.
LIME_POOL_STREAM = 0x4C494D45_504F4F4C  # "LIMEPOOL"
#: Pools kept per process, the oldest dropped first: a run uses one.
_MAX_POOLS = 4
_POOLS: dict[tuple[object, ...], _Pool] = {}
_POOLS_LOCK = threading.Lock()  # for workers running chunks in threads
#: Bound on the interpretable samples of one batched fit (float64 entries, 8 MB).
_FIT_ENTRIES = 1 << 20


@dataclass(frozen=True)
class _Pool:
    """The shared neighbours (n_samples - 1 of them) and the model's outputs on them."""

    neighbours: Neighbours
    outputs: FloatArray  # (n_samples - 1, n_outputs)


def clear_pool_cache() -> None:
    """Forget the shared pools cached in this process."""
    with _POOLS_LOCK:
        _POOLS.clear()


def explain_lime(
    predict: PredictFn,
    X: FloatArray,
    *,
    background: FloatArray,
    row_index: IntArray,
    seed: int,
    categorical: BoolArray | None = None,
    n_samples: int = 5000,
    kernel_width: float | None = None,
    discretize: bool = True,
    num_features: int | None = None,
    feature_selection: str = "auto",
    neighbourhood: str = "shared",
    pool_key: str | None = None,
    max_eval_rows: int = 200_000,
    feature_names: Sequence[str] | None = None,
) -> Attributions:
    """LIME attributions: the weights of a locally weighted linear surrogate per row and output.

    For each row ``x``, ``n_samples`` neighbours are used (the first is ``x``
    itself), drawn from the background distribution (see :mod:`.lime_sampling`):
    with ``discretize`` each continuous feature is resampled by quartile bin and the
    interpretable feature ``z_j`` is 1 when the neighbour shares ``x``'s bin;
    without it, features are ``N(mean, std)`` draws and ``z_j`` their z-score.
    Categorical features are resampled by frequency, ``z_j = [code == x_j]``.
    Each neighbour is weighted by ``pi = sqrt(exp(-d^2 / width^2))`` with ``d``
    the Euclidean distance between its ``z`` and ``x``'s, and for every output
    ``f_k`` a ridge surrogate ``g(z) = b + w . z`` minimises
    ``sum_s pi_s (f_k(s) - g(z_s))^2 + ||w||^2`` (intercept not penalised).

    Parameters
    ----------
    predict : PredictFn
        ``(n, M) -> (n, n_outputs)``.
    X : (n_rows, M) float64
        Rows to explain.
    background : (B, M) float64
        Reference data giving quartiles, bin and category frequencies, means and stds.
    row_index : (n_rows,) int
        Global 0-based position of each row; a row's result depends only on its
        position, never on the chunking.
    seed : int
        Random seed.
    categorical : (M,) bool, optional
        Columns holding category codes (default: none).
    n_samples : int, default 5000
        Neighbours per row, including the row itself.
    kernel_width : float, optional
        Kernel width; default ``0.75 * sqrt(M)``.
    discretize : bool, default True
        Quartile-discretize continuous features (lime's ``discretize_continuous``).
    num_features : int, optional
        Keep ``K`` features per row and output, chosen by ``feature_selection``,
        and refit the surrogate on them; other weights are 0. Default: all.
    feature_selection : str, default "auto"
        As lime: "forward_selection" (greedy, by weighted R^2 of an unpenalised
        fit), "highest_weights" (largest ``|w_j z_j(x)|`` of a ridge fit with
        alpha 0.01), "lasso_path" (largest LARS-lasso support of at most ``K``
        features, so possibly fewer), "none" (all features, ignoring
        ``num_features``), "auto" (forward selection if ``K <= 6``, else highest weights).
    neighbourhood : str, default "shared"
        "shared": every row's neighbours are one pool of ``n_samples - 1`` draws
        from ``default_rng([seed, LIME_POOL_STREAM])``, evaluated once (see the
        module docstring); "per-row": row ``i`` draws its own from
        ``row_rng(seed, row_index[i])``.
    pool_key : str, optional
        Shared mode: cache the pool and the model's outputs on it in this process
        under this key, for later calls with the same ``predict``. The key must
        identify ``predict``; the seed, ``n_samples``, ``background``,
        ``categorical``, ``discretize`` and ``max_eval_rows`` are added to it.
        Default: no caching.
    max_eval_rows : int, default 200000
        Model evaluations per call. Per-row mode: rows are processed in blocks of
        at most ``max(1, max_eval_rows // n_samples)`` rows aligned to
        ``row_index`` (:func:`.base.row_blocks`); shared mode: the pool is
        evaluated in blocks of ``max_eval_rows``, the rows in aligned blocks.
    feature_names : sequence of str, optional
        Column names, for error messages.

    Returns
    -------
    Attributions
        values (n_rows, n_outputs, M) surrogate weights; base_values
        (n_rows, n_outputs) intercepts; predictions (n_rows, n_outputs) the
        model at ``x``; extras ``local_prediction`` (surrogate at ``x``) and
        ``score`` (surrogate's weighted R^2 on the neighbours), both (n_rows, n_outputs).
    """
    X, background, row_index, categorical = _check_data(X, background, row_index, categorical)
    if not discretize:
        _check_gaussian_columns(X, background, categorical, feature_names)
    n_features = X.shape[1]
    _check_int("n_samples", n_samples, 2)
    _check_int("max_eval_rows", max_eval_rows, 1)
    if kernel_width is None:
        kernel_width = 0.75 * np.sqrt(n_features)
    elif isinstance(kernel_width, bool) or not (
        isinstance(kernel_width, int | float | np.number) and 0 < kernel_width < np.inf
    ):
        raise ValueError(f"kernel_width must be a finite number > 0 or None, got {kernel_width!r}")
    if num_features is not None:
        _check_int("num_features", num_features, 1, n_features)
    if feature_selection not in FEATURE_SELECTIONS:
        raise ValueError(
            f"feature_selection must be one of {FEATURE_SELECTIONS}, got {feature_selection!r}"
        )
    if neighbourhood not in NEIGHBOURHOODS:
        raise ValueError(f"neighbourhood must be one of {NEIGHBOURHOODS}, got {neighbourhood!r}")
    if pool_key is not None and not isinstance(pool_key, str):
        raise ValueError(f"pool_key must be a string or None, got {pool_key!r}")
    if feature_selection == "auto" and num_features is not None:
        feature_selection = "forward_selection" if num_features <= 6 else "highest_weights"
    if feature_selection == "none" or num_features is None:
        num_features = None

    z_memory, work_memory = _Reused(), _Reused()

    def fit(X: FloatArray, neighbours: Neighbours, Y: FloatArray) -> tuple[FloatArray, ...]:
        """Surrogates of rows ``X`` (R, M) with model outputs ``Y`` (R, S, O)."""
        n_rows, _, n_outputs = Y.shape
        Z = sampler.interpretable(X, neighbours, out=z_memory.get((n_rows, n_samples, n_features)))
        coef, intercept, local, score = fit_surrogates(
            Z,
            Y,
            kernel_weights(Z, float(kernel_width)),
            num_features=num_features,
            feature_selection=feature_selection,
            work=work_memory.get((n_rows, n_samples, n_features + 1 + n_outputs)),
        )
        return coef, intercept, Y[:, 0], local, score

    sampler = TabularSampler.fit(background, categorical, bool(discretize))
    # Every block below holds rows by their global positions (row_blocks), so each
    # model call and each batched fit is the same whatever the chunking, down to the
    # last bit. Fits go by smaller blocks than model calls: their arrays then stay
    # in reused memory.
    fit_entries = min(_FIT_ENTRIES, max_eval_rows * n_features)
    parts = []
    if neighbourhood == "per-row":
        for block in row_blocks(row_index, n_samples, max_eval_rows):
            rngs = [row_rng(seed, r) for r in row_index[block]]
            inputs, neighbours = sampler.draw_rows(X[block], rngs, n_samples)  # (R, S, M)
            Y = _outputs(predict, inputs.reshape(-1, n_features), max_eval_rows=max_eval_rows)
            Y = Y.reshape(len(rngs), n_samples, -1)
            for sub in row_blocks(row_index[block], n_samples * n_features, fit_entries):
                parts.append(fit(X[block][sub], neighbours.rows(sub), Y[sub]))
    else:
        pool = _shared_pool(
            predict, sampler, seed, n_samples, max_eval_rows, pool_key, background, categorical
        )
        own = _outputs(predict, X, row_index=row_index)  # (n_rows, O)
        if own.shape[1] != pool.outputs.shape[1]:
            raise ValueError(
                f"predict must return the same number of outputs for every input; got "
                f"{pool.outputs.shape[1]} for the neighbours and {own.shape[1]} for the rows"
            )
        for sub in row_blocks(row_index, n_samples * n_features, fit_entries):
            Y = np.empty((own[sub].shape[0], n_samples, own.shape[1]))
            Y[:, 0] = own[sub]
            Y[:, 1:] = pool.outputs
            parts.append(fit(X[sub], pool.neighbours, Y))

    coef, intercept, prediction, local, score = (
        np.concatenate(p) for p in zip(*parts, strict=True)
    )
    return Attributions(
        values=coef,
        base_values=intercept,
        predictions=prediction,
        extras={"local_prediction": local, "score": score},
    )


class _Reused:
    """Memory reused by successive blocks: fresh multi-megabyte arrays cost page
    faults on every block, a sizeable part of the work."""

    def __init__(self) -> None:
        self.memory = np.empty(0)

    def get(self, shape: tuple[int, ...]) -> FloatArray:
        """An uninitialised float64 array of ``shape``."""
        size = int(np.prod(shape))
        if self.memory.size < size:
            self.memory = np.empty(size)
        return self.memory[:size].reshape(shape)


def _shared_pool(
    predict: PredictFn,
    sampler: TabularSampler,
    seed: int,
    n_samples: int,
    max_eval_rows: int,
    pool_key: str | None,
    background: FloatArray,
    categorical: BoolArray,
) -> _Pool:
    """The pool of ``n_samples - 1`` neighbours and the model's outputs on them,
    from the process cache when ``pool_key`` names one built with the same settings."""
    key: tuple[object, ...] | None = None
    if pool_key is not None:
        digest = hashlib.blake2b(np.ascontiguousarray(background).tobytes(), digest_size=16)
        digest.update(np.asarray(background.shape, dtype=np.int64).tobytes())
        digest.update(categorical.tobytes())
        # The sampler's kind (binned or Gaussian) is what ``discretize`` changes.
        digest.update(sampler.binned.tobytes() + b"|" + sampler.gaussian.tobytes())
        key = (pool_key, int(seed), n_samples, max_eval_rows, digest.hexdigest())
        with _POOLS_LOCK:
            cached = _POOLS.get(key)
        if cached is not None:
            return cached
    # Threads missing the cache together each build the pool: the same numbers.
    neighbours = sampler.draw(np.random.default_rng([int(seed), LIME_POOL_STREAM]), n_samples - 1)
    pool = _Pool(neighbours, _outputs(predict, neighbours.inputs, max_eval_rows=max_eval_rows))
    if key is not None:
        with _POOLS_LOCK:
            while len(_POOLS) >= _MAX_POOLS:
                del _POOLS[next(iter(_POOLS))]
            _POOLS[key] = pool
    return pool


def _outputs(
    predict: PredictFn,
    inputs: FloatArray,
    *,
    max_eval_rows: int = 0,
    row_index: IntArray | None = None,
) -> FloatArray:
    """``predict(inputs)`` (n, n_outputs), in position-aligned blocks when ``row_index``
    is given, else in blocks of ``max_eval_rows``; its shape checked."""
    if row_index is not None:
        Y = predict_rows(predict, inputs, row_index)
    else:
        Y = evaluate_in_blocks(predict, inputs, max_rows=max_eval_rows)
    if Y.ndim != 2 or Y.shape[0] != inputs.shape[0]:
        raise ValueError(
            f"predict must return an array of shape (n, n_outputs) for n input rows; "
            f"got shape {Y.shape} for {inputs.shape[0]} rows"
        )
    return Y


def _check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    bounds = f">= {low}" if high is None else f"in {low}..{high}"
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer {bounds}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer {bounds}, got {value}")


def _check_data(
    X: FloatArray, background: FloatArray, row_index: IntArray, categorical: BoolArray | None
) -> tuple[FloatArray, FloatArray, IntArray, BoolArray]:
    X = np.asarray(X, dtype=np.float64)
    background = np.asarray(background, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(
            f"X must be a 2-D array (n_rows >= 1, n_features >= 1), got shape {X.shape}"
        )
    n_rows, n_features = X.shape
    if background.ndim != 2 or background.shape[0] == 0 or background.shape[1] != n_features:
        raise ValueError(
            f"background must be a 2-D array with >= 1 row and {n_features} columns like X, "
            f"got shape {background.shape}"
        )
    row_index = np.asarray(row_index)
    if row_index.shape != (n_rows,) or not np.issubdtype(row_index.dtype, np.integer):
        raise ValueError(
            f"row_index must be an integer array of shape ({n_rows},) (one per row of X), "
            f"got {row_index.dtype} array of shape {row_index.shape}"
        )
    if (row_index < 0).any():
        raise ValueError(f"row_index must be >= 0, got minimum {row_index.min()}")
    if categorical is None:
        categorical = np.zeros(n_features, dtype=bool)
    categorical = np.asarray(categorical)
    if categorical.shape != (n_features,) or categorical.dtype != np.bool_:
        raise ValueError(
            f"categorical must be a boolean array of shape ({n_features},), "
            f"got {categorical.dtype} array of shape {categorical.shape}"
        )
    return X, background, row_index.astype(np.int64), categorical


def _check_gaussian_columns(
    X: FloatArray,
    background: FloatArray,
    categorical: BoolArray,
    feature_names: Sequence[str] | None,
) -> None:
    """Without discretization a continuous feature is a z-score: the rows' values must
    be finite, and the background must hold numbers to fit the Gaussian to."""

    def name(j: int) -> str:
        return repr(feature_names[j]) if feature_names is not None else str(j)

    continuous = np.flatnonzero(~categorical)
    bad = ~np.isfinite(X[:, continuous])
    if bad.any():
        row, col = np.argwhere(bad)[0]
        value = "NaN" if np.isnan(X[row, continuous[col]]) else "an infinite value"
        raise ValueError(
            f"LIME without discretization cannot take NaN or infinity: X has "
            f"{value} in column {name(continuous[col])} (row {row}); "
            "discretize (a missing value is then a bin of its own) or impute the column"
        )
    empty = ~np.isfinite(background[:, continuous]).any(axis=0)
    if empty.any():
        raise ValueError(
            f"LIME without discretization needs numbers in the background: column "
            f"{name(continuous[np.argmax(empty)])} has none; discretize or use "
            "another background"
        )


@dataclass(frozen=True)
class LimeParams:
    n_samples: int = 5000  # neighbours per row, the row itself included
    kernel_width: float | None = None  # None: 0.75 * sqrt(M)
    discretize: bool = True
    num_features: int | None = None  # None: every feature
    neighbourhood: str = field(default="shared", metadata={"option": "lime_neighbourhood"})


def _prepare(params: LimeParams, inputs: RunInputs) -> Setup:
    """LIME's own limits on the options and the background."""
    if params.n_samples < 2:
        raise MethodInputError(
            f"--n-samples must be at least 2 for LIME: the first sample is the row itself, "
            f"and the surrogate needs at least one neighbour; got {params.n_samples}"
        )
    n_features = len(inputs.feature_names)
    if not params.discretize:
        # Without discretization a feature is a z-score, which NaN and infinity do not have.
        numeric = np.flatnonzero(~inputs.categorical)
        empty = numeric[~np.isfinite(inputs.background[:, numeric]).any(axis=0)]
        if empty.size:
            raise MethodInputError(
                f"LIME with --no-discretize fits a Gaussian to each column's background "
                f"values, and column {inputs.feature_names[empty[0]]!r} has none; drop "
                "--no-discretize or pass a --background with values in it",
                about_data=True,
            )
    if params.num_features is not None and params.num_features > n_features:
        raise MethodInputError(
            f"--num-features must be at most the {n_features} features explained; "
            f"got {params.num_features}"
        )
    if params.discretize:
        return Setup()
    return Setup(
        refuser="LIME with --no-discretize",
        advice="drop --no-discretize (a missing value is then a bin of its own), ",
    )


def _compute(block: Block) -> Attributions:
    p: LimeParams = block.params
    return explain_lime(
        block.predict,
        block.X,
        background=block.background,
        row_index=block.row_index,
        seed=block.seed,
        categorical=block.categorical,
        n_samples=p.n_samples,
        kernel_width=p.kernel_width,
        discretize=p.discretize,
        num_features=p.num_features,
        neighbourhood=p.neighbourhood,
        pool_key=block.predict_key,
        max_eval_rows=block.max_eval_rows,
        feature_names=block.feature_names,
    )


register(
    MethodSpec("lime", "", LimeParams, _compute, _prepare, extras=("local_prediction", "score"))
)
