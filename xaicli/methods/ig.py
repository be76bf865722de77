"""Integrated Gradients from model outputs only (no autograd).

Integrated Gradients (Sundararajan, Taly & Yan 2017, "Axiomatic Attribution
for Deep Networks") attributes ``f(x) - f(x')`` along the straight path
``p(a) = x' + a (x - x')``::

    IG_i(x; x') = (x_i - x'_i) * integral_0^1 df/dx_i(p(a)) da

and is complete, ``sum_i IG_i = f(x) - f(x')``, for differentiable ``f``.
Several baselines give their mean (multi-baseline IG, the expected gradients
of Erion et al. 2021) with ``base_value = mean f(x')``, so completeness still
reads ``base_value + sum(attr) == prediction``. Only ``predict`` is called, so
any scikit-learn Pipeline, boosted trees or plain callable works.

``form="path"`` (the default, also chosen by ``"auto"``)
    Telescoping path differences. Split [0, 1] into ``steps`` equal segments,
    nodes ``p_0 = x', ..., p_K = x``. On segment k the change
    ``D_k = f(p_{k+1}) - f(p_k)`` is a game among the features (feature i
    "plays" by taking its ``p_{k+1}`` value instead of its ``p_k`` one). Its
    exact Shapley split costs 2**M evaluations; we use the symmetric
    one-at-a-time marginals, from nobody and from everybody else::

        phi_ki = 1/2 [f(p_k with i from p_{k+1}) - f(p_k)]
               + 1/2 [f(p_{k+1}) - f(p_{k+1} with i from p_k)]

    and hand the residual ``r_k = D_k - sum_i phi_ki`` to the features in
    proportion to ``|phi_ki|`` (equally among the moving features if every
    ``phi_ki`` is 0, e.g. a tree split that needs two features at once).
    Each segment's attributions then sum to ``D_k`` and the segments
    telescope: ``base_value + sum(attr) == prediction`` for *any*
    deterministic model, trees included, up to float rounding. Why this rule:

    * In Harsanyi terms a segment game is ``sum_T m(T)`` over feature sets T;
      Shapley gives each member ``m(T) / |T|``, ``phi`` gives ``m(T) / 2``. So
      ``phi`` is the exact Shapley split when no interaction has order > 2
      (always when M <= 2) and ``r_k = 0``; for a single interaction of any
      order the proportional residual restores ``m(T) / |T|`` too. Features
      that do not move get ``phi = 0`` and hence no residual.
    * Linear ``f``: both marginals are ``w_i (p_{k+1,i} - p_{k,i})`` and
      ``r_k = 0``, so ``attr_i = w_i (x_i - x'_i)``, exactly IG. More
      generally, on any quadratic ``f`` the segment games have order <= 2 and
      their Shapley split is the midpoint gradient times the step: exact IG
      at every ``steps``.
    * Smooth ``f``: the mean of a forward and a backward difference is the
      trapezoid rule for ``integral df/dx_i (x_i - x'_i) da`` over the segment
      up to O(h**3), and ``r_k`` (interactions of order >= 3) is O(h**3), so
      the result converges to IG at rate O(steps**-2).

    Cost per row and baseline: ``steps - 1 + 2 * steps * M`` evaluations.

``form="smooth"``
    Gauss-Legendre quadrature with ``steps`` nodes on [0, 1] of the
    derivative, each partial derivative by central differences with half-step
    ``h_i = 1e-4 * scale_i``. Cost: ``2 * steps * M`` evaluations. On smooth
    models the quadrature error decays geometrically (IG to ~1e-8 on MLPs and
    logistic regression), but completeness is only approximate, and on
    piecewise-constant models (trees) the derivative is 0 almost everywhere:
    the attributions collapse to 0, or to a spike where a split falls within
    ``h``. Why ``1e-4``: truncation error ~ h**2 f''' / 6 and rounding error
    ~ 1e-16 |f| / h give ~2e-9 and ~1e-12 relative for a model that varies on
    the scale of a feature's spread (~1e-3 rounding on float32 models); and
    ``h_i`` stays within half the smallest gap between neighbouring nodes
    along the path (~2.9e-3 |x_i - x'_i| at 32 nodes) whenever
    ``|x_i - x'_i| > 0.035 scale_i``, so each quotient probes its own node;
    below that the attribution is ~0 anyway.

``form="auto"`` is always ``"path"``: smoothness cannot be told reliably from a
few outputs, and "path" costs the same, is exactly complete on every model and
converges to IG; "smooth" is the better estimate of IG itself when the model
is known to be smooth and the default ``steps`` is kept.

Categorical columns (codes) are never interpolated: along the path they hold
the baseline's code for ``a < 0.5`` and the row's code for ``a >= 0.5``, a
jump at ``a = 0.5``. In "path" the jump lies in the segment ending at the first
node with ``a >= 0.5``, where the codes are simply further moving features, so
the rule above attributes the jump and completeness holds. A missing or
infinite value (in the row or the baseline) of a numeric column cannot be
interpolated either, for a model that takes it (e.g. a Pipeline that imputes):
"path" treats that entry as a code, so it jumps at mid-path and completeness
still holds; "smooth" refuses it (no derivative through it).

Default ``steps`` (64). On logistic regressions (StandardScaler +
LogisticRegression on scikit-learn's breast_cancer and wine data, multinomial
and binary, the data's mean as baseline), the path form's largest relative
error over rows and outputs, ``sum_i |IG_i - exact_i| / sum_i |exact_i|``
against the closed form (numerical quadrature for the softmax), is 4.1e-3 at
32 steps, 1.6e-3 at 48 and 8.3e-4 at 64 (the largest single feature's error
1e-4 of the total). The error falls as ``steps**-2``; 64 steps cost about
twice the model calls of 32. Richardson extrapolation from 32 and 16 steps
(1.5x the cost) gave 8e-5 on wine but no gain on breast_cancer (4.1e-3, 30
features of mixed signs), so the default takes more steps instead. In "smooth" the
numeric integrand at node ``a`` uses the codes of that side of the jump, and
the categorical features share the jump
``f(p(0.5), row's codes) - f(p(0.5), baseline's codes)`` by the same symmetric
rule (2 + 2 C extra evaluations for C categorical features); the quadrature is
split at the jump, ceil(steps / 2) nodes on each half, because one
Gauss-Legendre rule across a discontinuous integrand converges slowly.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from xaicli.methods.base import (
    Attributions,
    BoolArray,
    FloatArray,
    IntArray,
    PredictFn,
    row_blocks,
)
from xaicli.methods.checks import (
    check_feature_arrays,
    check_max_eval_rows,
    check_numeric_finite,
    evaluate_checked,
    feature_spread,
    finite_or_nan,
)
from xaicli.methods.ig_forms import path_ig, smooth_ig
from xaicli.methods.registry import (
    Block,
    MethodSpec,
    RunInputs,
    Setup,
    TableParam,
    register,
)

__all__ = ["explain_ig"]

_FORMS = ("auto", "path", "smooth")
_FD_EPS = 1e-4  # finite-difference half-step of "smooth", in units of scale (see above)


def explain_ig(
    predict: PredictFn,
    X: FloatArray,
    *,
    baselines: FloatArray,
    scale: FloatArray,
    categorical: BoolArray | None = None,
    steps: int = 64,
    form: str = "auto",
    row_index: IntArray | None = None,
    max_eval_rows: int = 200_000,
    feature_names: Sequence[str] | None = None,
) -> Attributions:
    """Integrated Gradients of every row and output, without gradients.

    Parameters
    ----------
    predict : callable
        ``predict(X) -> Y``, X (n, n_features), Y (n, n_outputs); deterministic.
    X : ndarray of shape (n_rows, n_features)
        Rows to explain (categorical columns as float codes).
    baselines : ndarray of shape (n_baselines, n_features)
        Reference points x'; several give the mean of the per-baseline
        attributions. A 1-D array is one baseline.
    scale : ndarray of shape (n_features,)
        Each feature's spread (e.g. background std, zeros replaced by 1);
        finite and > 0. Sizes the finite differences of "smooth".
    categorical : ndarray of bool, shape (n_features,), default None
        Categorical columns, never interpolated. None means all numeric.
    steps : int, default 64
        Path segments ("path") or quadrature nodes ("smooth").
    form : {"auto", "path", "smooth"}, default "auto"
        Estimator; "auto" is "path" (see the module docstring).
    row_index : ndarray of shape (n_rows,), default None
        Global row positions; rows are batched by position (``row_blocks``) so that
        results never depend on how the caller chunked them. Default: 0..n_rows-1.
    max_eval_rows : int, default 200_000
        Most rows passed to ``predict`` (and held in memory) at once.
    feature_names : sequence of str, optional
        Column names, for error messages.

    Returns
    -------
    Attributions
        values (n_rows, n_outputs, n_features); base_values mean f(baselines)
        per row (n_rows, n_outputs); predictions f(X); extras
        ``completeness_error`` = prediction - base_value - sum(values)
        (n_rows, n_outputs), float rounding only for "path".
    """
    X, scale, categorical = check_feature_arrays(X, scale, categorical)
    baselines = np.atleast_2d(np.asarray(baselines, dtype=np.float64))
    if baselines.ndim != 2 or baselines.shape[0] < 1 or baselines.shape[1] != X.shape[1]:
        raise ValueError(
            f"baselines must have shape (n_baselines >= 1, {X.shape[1]}); got {baselines.shape}."
        )
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
        raise ValueError(f"steps must be an int >= 1; got {steps!r}.")
    if form not in _FORMS:
        raise ValueError(f"form must be one of {_FORMS}; got {form!r}.")
    if form == "smooth":
        advice = "form='smooth' has no derivative there; use form='path', or impute it"
        check_numeric_finite(X, categorical, "X", names=feature_names, advice=advice)
        check_numeric_finite(
            baselines, categorical, "baselines", names=feature_names, advice=advice
        )
    check_max_eval_rows(max_eval_rows)

    baseline_outputs = evaluate_checked(predict, baselines, max_rows=max_eval_rows)
    n_outputs = baseline_outputs.shape[1]
    if X.shape[0] == 0:  # many models refuse an empty input
        predictions = np.empty((0, n_outputs))
        values = np.empty((0, n_outputs, X.shape[1]))
    else:
        index = np.arange(X.shape[0]) if row_index is None else np.asarray(row_index)
        per_row = baselines.shape[0] * (2 * steps * X.shape[1] + steps)
        parts = []
        for block in row_blocks(index, per_row, max_eval_rows):
            predicted = evaluate_checked(predict, X[block], max_rows=max_eval_rows)
            if predicted.shape[1] != n_outputs:
                raise ValueError(
                    f"predict returned {predicted.shape[1]} outputs for X but "
                    f"{n_outputs} for baselines."
                )
            block_values = _average_over_baselines(
                predict,
                X[block],
                baselines,
                predicted,
                baseline_outputs,
                categorical=categorical,
                steps=int(steps),
                step_sizes=_FD_EPS * scale,
                smooth=form == "smooth",
                max_eval_rows=max_eval_rows,
            )
            parts.append((predicted, block_values))
        predictions = np.concatenate([p for p, _ in parts], axis=0)
        values = np.concatenate([v for _, v in parts], axis=0)
    base_values = np.repeat(baseline_outputs.mean(axis=0)[None, :], X.shape[0], axis=0)
    completeness_error = predictions - base_values - values.sum(axis=2)
    return Attributions(
        values=values,
        base_values=base_values,
        predictions=predictions,
        extras={"completeness_error": completeness_error},
    )


def _average_over_baselines(
    predict: PredictFn,
    X: FloatArray,
    baselines: FloatArray,
    predictions: FloatArray,
    baseline_outputs: FloatArray,
    *,
    categorical: BoolArray,
    steps: int,
    step_sizes: FloatArray,
    smooth: bool,
    max_eval_rows: int,
) -> FloatArray:
    """Mean over baselines of the single-baseline IG; (n_rows, n_outputs, n_features)."""
    n_rows, n_features = X.shape
    n_baselines, n_outputs = baseline_outputs.shape
    n_numeric = int((~categorical).sum())
    n_categorical = n_features - n_numeric
    if smooth and n_categorical:
        evals_per_pair = 4 * ((steps + 1) // 2) * n_numeric + 2 + 2 * n_categorical
    elif smooth:
        evals_per_pair = 2 * steps * n_numeric
    else:
        evals_per_pair = steps - 1 + 2 * (steps * n_numeric + n_categorical)

    total = np.zeros((n_rows, n_features, n_outputs))
    for rows, bases in _pair_groups(n_rows, n_baselines, max(1, max_eval_rows // evals_per_pair)):
        x, x_base = X[rows], baselines[bases]  # (G, M) each
        if smooth:
            attr = smooth_ig(
                predict, x, x_base, n_outputs, categorical, steps, step_sizes, max_eval_rows
            )
        else:
            attr = path_ig(
                predict,
                x,
                x_base,
                predictions[rows],
                baseline_outputs[bases],
                categorical,
                steps,
                max_eval_rows,
            )
        np.add.at(total, rows, attr)
    return (total / n_baselines).transpose(0, 2, 1)


def _pair_groups(
    n_rows: int, n_baselines: int, pairs_per_group: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(row, baseline) index arrays of consecutive groups of row-major pairs."""
    n_pairs = n_rows * n_baselines
    for start in range(0, n_pairs, pairs_per_group):
        pair = np.arange(start, min(start + pairs_per_group, n_pairs))
        yield pair // n_baselines, pair % n_baselines


BASELINE_KINDS = ("mean", "median", "zero")


@dataclass(frozen=True)
class IgParams:
    steps: int = 64
    baseline: str = "mean"  # a BASELINE_KINDS keyword, or a table (RunInputs.tables)


@dataclass(frozen=True)
class _IgState:
    baselines: FloatArray  # (n_baselines, n_features), encoded
    scale: FloatArray  # (n_features,)


def _prepare(params: IgParams, inputs: RunInputs) -> Setup:
    baselines = inputs.tables.get("baseline")
    if baselines is None:
        baselines = _baseline_row(params.baseline, inputs.background, inputs.categorical)
    return Setup(_IgState(baselines, feature_spread(inputs.background, inputs.categorical)))


def _baseline_row(kind: str, background: FloatArray, categorical: BoolArray) -> FloatArray:
    """(1, n_features) the background's mean, median or zero; a category takes its most
    frequent code (a category cannot be averaged)."""
    if kind == "zero":
        row = np.zeros(background.shape[1])
    else:
        # Over the finite values; a column with none gets NaN, which IG's path
        # switches at mid-path (the model takes NaN, or its rows were left out).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            average = np.nanmean if kind == "mean" else np.nanmedian
            row = average(finite_or_nan(background), axis=0)
    for j in np.flatnonzero(categorical):
        codes = background[:, j][~np.isnan(background[:, j])]
        row[j] = np.bincount(codes.astype(np.int64)).argmax() if codes.size else np.nan
    return row[None, :]


def _compute(block: Block) -> Attributions:
    state: _IgState = block.state
    return explain_ig(
        block.predict,
        block.X,
        baselines=state.baselines,
        scale=state.scale,
        categorical=block.categorical,
        steps=block.params.steps,
        feature_names=block.feature_names,
        row_index=block.row_index,
        max_eval_rows=block.max_eval_rows,
    )


register(
    MethodSpec(
        "ig",
        "",
        IgParams,
        _compute,
        _prepare,
        extras=("completeness_error",),
        table_params=(TableParam("baseline", BASELINE_KINDS),),
    )
)
