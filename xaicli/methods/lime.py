"""Tabular LIME, vectorised over the rows of a chunk.

Ribeiro, Singh & Guestrin (2016), "Why should I trust you?": Explaining the
predictions of any classifier. KDD. Reproduces ``lime.lime_tabular`` (0.2.0.1)
with ``discretizer="quartile"`` and ``sample_around_instance=False``, except:

* every model output gets its surrogate from the same neighbours (lime: one fit per label);
* random draws come from ``row_rng(seed, row)`` (same distributions, not lime's numbers);
* a quartile bin holding a single value is sampled at that value (lime 0.2.0.1
  returns its standardised bound, 0, a value the data may never take);
* ``NaN`` is a category of its own, and an empty "lasso_path" support gives
  zero weights (lime fails on both);
* by default all features are kept (lime's ``num_features`` default is 10).
"""

from __future__ import annotations

import numpy as np

from .base import (
    Attributions,
    BoolArray,
    FloatArray,
    IntArray,
    PredictFn,
    evaluate_in_blocks,
    row_blocks,
    row_rng,
)
from .lime_sampling import TabularSampler

__all__ = ["explain_lime"]

FEATURE_SELECTIONS = ("auto", "none", "forward_selection", "highest_weights", "lasso_path")
#: lime's ridge penalties: the surrogate, and the ranking fit of "highest_weights".
_ALPHA = 1.0
_ALPHA_RANKING = 0.01
#: Bound on the stacked candidate systems of forward selection (float64 entries).
_MAX_SYSTEM_ENTRIES = 1 << 22


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
    max_eval_rows: int = 200_000,
) -> Attributions:
    """LIME attributions: the weights of a locally weighted linear surrogate per row and output.

    For each row ``x``, ``n_samples`` neighbours are drawn (the first is ``x``
    itself) from the background distribution (see :mod:`.lime_sampling`): with
    ``discretize`` each continuous feature is resampled by quartile bin and the
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
        Global 0-based position of each row; row ``i`` draws from
        ``row_rng(seed, row_index[i])`` only, so results do not depend on chunking.
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
    max_eval_rows : int, default 200000
        Model evaluations per call; rows are processed in blocks of at most
        ``max(1, max_eval_rows // n_samples)`` rows aligned to ``row_index``
        (:func:`.base.row_blocks`).

    Returns
    -------
    Attributions
        values (n_rows, n_outputs, M) surrogate weights; base_values
        (n_rows, n_outputs) intercepts; predictions (n_rows, n_outputs) the
        model at ``x``; extras ``local_prediction`` (surrogate at ``x``) and
        ``score`` (surrogate's weighted R^2 on the neighbours), both (n_rows, n_outputs).
    """
    X, background, row_index, categorical = _check_data(X, background, row_index, categorical)
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
    if feature_selection == "auto" and num_features is not None:
        feature_selection = "forward_selection" if num_features <= 6 else "highest_weights"
    if feature_selection == "none" or num_features is None:
        num_features = None

    sampler = TabularSampler.fit(background, categorical, bool(discretize))
    parts = [
        _explain_group(
            predict,
            sampler,
            X[block],
            [row_rng(seed, r) for r in row_index[block]],
            n_samples=n_samples,
            width=float(kernel_width),
            num_features=num_features,
            feature_selection=feature_selection,
            max_eval_rows=max_eval_rows,
        )
        # Blocks aligned to global row positions: each model call then holds the same
        # rows whatever the chunking, so even last-bit batch effects cannot differ.
        for block in row_blocks(row_index, n_samples, max_eval_rows)
    ]
    coef, intercept, prediction, local, score = (
        np.concatenate(p) for p in zip(*parts, strict=True)
    )
    return Attributions(
        values=coef,
        base_values=intercept,
        predictions=prediction,
        extras={"local_prediction": local, "score": score},
    )


def _explain_group(
    predict: PredictFn,
    sampler: TabularSampler,
    X: FloatArray,
    rngs: list[np.random.Generator],
    *,
    n_samples: int,
    width: float,
    num_features: int | None,
    feature_selection: str,
    max_eval_rows: int,
) -> tuple[FloatArray, ...]:
    """Surrogates for a group of R rows: coef (R, O, M) and (R, O) intercept, model
    prediction, local prediction and score."""
    inputs, Z = sampler.sample(X, rngs, n_samples)  # (R, S, M) each
    n_rows, _, n_features = Z.shape
    Y = evaluate_in_blocks(predict, inputs.reshape(-1, n_features), max_rows=max_eval_rows)
    if Y.ndim != 2 or Y.shape[0] != n_rows * n_samples:
        raise ValueError(
            f"predict must return an array of shape (n, n_outputs) for n input rows; "
            f"got shape {Y.shape} for {n_rows * n_samples} rows"
        )
    Y = Y.reshape(n_rows, n_samples, -1)  # (R, S, O)
    offset = Z - Z[:, :1]
    dist2 = np.einsum("rsm,rsm->rs", offset, offset)  # (R, S) squared distance to the row
    weight = np.exp(-dist2 / (2.0 * width**2))  # == sqrt(exp(-d^2 / width^2))

    # Weighted centring removes the unpenalised intercept from the normal equations,
    # as sklearn's Ridge does; every fit below then only needs these moments.
    total = weight.sum(axis=1)  # (R,)
    z_mean = np.einsum("rs,rsm->rm", weight, Z) / total[:, None]  # (R, M)
    y_mean = np.einsum("rs,rso->ro", weight, Y) / total[:, None]  # (R, O)
    Zc, Yc = Z - z_mean[:, None], Y - y_mean[:, None]
    Zw = Zc * weight[..., None]
    gram = Zw.transpose(0, 2, 1) @ Zc  # (R, M, M)
    cross = (Zw.transpose(0, 2, 1) @ Yc).transpose(0, 2, 1)  # (R, O, M)
    y_ss = np.einsum("rs,rso->ro", weight, Yc**2)  # (R, O)

    mask = None
    if num_features is not None:
        if feature_selection == "forward_selection":
            mask = _forward_selection(gram, cross, y_ss, num_features)
        elif feature_selection == "highest_weights":
            # lime ranks by weight times the row's own interpretable value.
            ranking = np.abs(_ridge(gram, cross, _ALPHA_RANKING) * Z[:, None, 0])
            top = np.argsort(-ranking, axis=-1, kind="stable")[..., :num_features]
            mask = np.zeros(cross.shape, dtype=bool)
            np.put_along_axis(mask, top, True, axis=-1)
        else:
            mask = _lasso_path_selection(Zc, Yc, weight, num_features)

    coef = _ridge(gram, cross, _ALPHA, mask)  # (R, O, M)
    intercept = y_mean - np.einsum("rm,rom->ro", z_mean, coef)
    fitted = Z @ coef.transpose(0, 2, 1) + intercept[:, None]  # (R, S, O)
    sse = np.einsum("rs,rso->ro", weight, (Y - fitted) ** 2)
    # sklearn's r2_score convention for a constant target: 1 if fitted exactly, else 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(y_ss > 0, 1.0 - sse / y_ss, np.where(sse == 0, 1.0, 0.0))
    return coef, intercept, Y[:, 0], fitted[:, 0], score


def _ridge(
    gram: FloatArray, cross: FloatArray, alpha: float, mask: BoolArray | None = None
) -> FloatArray:
    """Centred ridge weights (R, O, M) from ``gram`` (R, M, M) and ``cross`` (R, O, M).

    With ``mask`` (R, O, M) the fit uses only the selected features: the other
    rows and columns of the system are replaced by the identity and their
    right-hand side by 0, so their weight is exactly 0 and the rest solve the
    sub-problem.
    """
    eye = np.eye(gram.shape[-1])
    system = gram + alpha * eye
    if mask is None:
        coef = np.linalg.solve(system, cross.transpose(0, 2, 1)).transpose(0, 2, 1)
        return coef.astype(np.float64, copy=False)
    keep = mask[..., :, None] & mask[..., None, :]  # (R, O, M, M)
    system = np.where(keep, system[:, None], eye)
    coef = np.linalg.solve(system, np.where(mask, cross, 0.0)[..., None])[..., 0]
    return coef.astype(np.float64, copy=False)


def _forward_selection(
    gram: FloatArray, cross: FloatArray, y_ss: FloatArray, n_select: int
) -> BoolArray:
    """lime's greedy forward selection for all rows and outputs at once: (R, O, M) mask.

    Each step adds the feature whose unpenalised weighted least-squares fit,
    with the features already chosen, has the highest R^2; that R^2 is
    ``c_S' G_SS^-1 c_S / y_ss`` with ``G`` the centred Gram matrix, so no
    candidate refits the samples. Ties go to the lowest feature index, as in lime.
    """
    n_rows, n_outputs, n_features = cross.shape
    # Bound memory: the last step stacks about O * M * K^2 numbers per row.
    per_block = max(1, _MAX_SYSTEM_ENTRIES // (n_outputs * n_features * n_select**2))
    if n_rows > per_block:
        parts = [slice(b, b + per_block) for b in range(0, n_rows, per_block)]
        return np.concatenate(
            [_forward_selection(gram[p], cross[p], y_ss[p], n_select) for p in parts]
        )
    r = np.arange(n_rows)[:, None, None, None]
    o = np.arange(n_outputs)[None, :, None, None]
    # A constant interpretable column (e.g. a feature with one bin) makes G singular;
    # a negligible ridge keeps every solve defined without changing the ranking.
    scale = np.trace(gram, axis1=1, axis2=2) / n_features + np.finfo(np.float64).tiny
    jitter = 1e-12 * scale[:, None, None, None, None]
    taken = np.zeros(cross.shape, dtype=bool)
    chosen = np.zeros((n_rows, n_outputs, 0), dtype=np.int64)
    for step in range(n_select):
        n_cand = n_features - step
        cand = np.argsort(taken, axis=-1, kind="stable")[..., :n_cand]  # untaken, ascending
        prev = np.broadcast_to(chosen[:, :, None, :], (n_rows, n_outputs, n_cand, step))
        subset = np.concatenate([prev, cand[..., None]], axis=-1)  # (R, O, C, step + 1)
        sub_gram = gram[r[..., None], subset[..., :, None], subset[..., None, :]]
        sub_gram = sub_gram + jitter * np.eye(step + 1)
        sub_cross = cross[r, o, subset]  # (R, O, C, step + 1)
        beta = np.linalg.solve(sub_gram, sub_cross[..., None])[..., 0]
        explained = np.where(y_ss[..., None] > 0, (sub_cross * beta).sum(axis=-1), 0.0)
        best = np.take_along_axis(cand, explained.argmax(axis=-1)[..., None], axis=-1)
        chosen = np.concatenate([chosen, best], axis=-1)
        np.put_along_axis(taken, best, True, axis=-1)
    return taken


def _lasso_path_selection(
    Zc: FloatArray, Yc: FloatArray, weight: FloatArray, n_select: int
) -> BoolArray:
    """lime's "lasso_path" selection: (R, O, M) mask of the support of the least
    penalised point on the weighted LARS-lasso path with at most ``n_select``
    features (so possibly fewer). One path per row and output: LARS has no
    batched form."""
    from sklearn.linear_model import lars_path

    n_rows, _, n_outputs = Yc.shape
    root = np.sqrt(weight)  # (R, S)
    mask = np.zeros((n_rows, n_outputs, Zc.shape[2]), dtype=bool)
    for r in range(n_rows):
        for k in range(n_outputs):
            _, _, path = lars_path(Zc[r] * root[r, :, None], Yc[r, :, k] * root[r], method="lasso")
            support = np.ones(Zc.shape[2], dtype=bool)  # lime keeps all if the path is empty
            for step in range(path.shape[1] - 1, 0, -1):
                support = path[:, step] != 0
                if support.sum() <= n_select:
                    break
            mask[r, k] = support
    return mask


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
    for name, data in (("X", X), ("background", background)):
        bad = ~np.isfinite(data[:, ~categorical]).all(axis=0)
        if bad.any():
            cols = np.flatnonzero(~categorical)[bad].tolist()
            raise ValueError(
                f"{name} has NaN or infinite values in continuous columns {cols}; "
                "impute them or mark the columns categorical"
            )
    return X, background, row_index.astype(np.int64), categorical
