"""The weighted ridge surrogates of tabular LIME, fitted for a block of rows at once.

For one row and output, lime (``lime_base.LimeBase.explain_instance_with_data``)
fits sklearn's ``Ridge(alpha=1)`` with sample weights ``pi`` to the
interpretable samples ``Z`` (S, M) and the model outputs ``y`` (S,). Every
number lime reads from that fit (weights, intercept, weighted R^2 on the
samples, prediction at the row) and every feature selection except LARS
depends on the samples only through the weighted moments

    total = sum_s pi_s,  z_mean, y_mean (weighted means),
    G = Zc' W Zc (M, M),  c = Zc' W yc (M,),  y_ss = yc' W yc,

with ``Zc``, ``yc`` centred on the weighted means (which removes the
unpenalised intercept, as sklearn's Ridge does). So all rows and outputs of a
block are fitted from their moments with batched linear algebra, and the
samples are read only to form them.
"""

from __future__ import annotations

import numpy as np

from .base import BoolArray, FloatArray

#: lime's ridge penalties: the surrogate, and the ranking fit of "highest_weights".
_ALPHA = 1.0
_ALPHA_RANKING = 0.01
#: Bound on the stacked candidate systems of forward selection (float64 entries).
_MAX_SYSTEM_ENTRIES = 1 << 22


def kernel_weights(Z: FloatArray, width: float) -> FloatArray:
    """(R, S) lime's kernel ``sqrt(exp(-d^2 / width^2))`` of each sample of ``Z``
    (R, S, M), ``d`` its Euclidean distance to sample 0 (the row itself)."""
    z_row = Z[:, 0]
    # |z - z_row|^2 expanded: two reads of Z instead of a difference array. Exact for
    # binary columns; for z-scores the rounding is far below the kernel's sensitivity.
    dist2 = np.einsum("rsm,rsm->rs", Z, Z)
    dist2 -= 2.0 * (Z @ z_row[:, :, None])[..., 0]
    dist2 += np.einsum("rm,rm->r", z_row, z_row)[:, None]
    np.maximum(dist2, 0.0, out=dist2)
    dist2[:, 0] = 0.0
    return np.exp(dist2 / (-2.0 * width**2))


def fit_surrogates(
    Z: FloatArray,
    Y: FloatArray,
    weight: FloatArray,
    *,
    num_features: int | None,
    feature_selection: str,
    work: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Surrogates of R rows from their samples: ``Z`` (R, S, M) interpretable
    samples (sample 0 the row), ``Y`` (R, S, O) model outputs, ``weight`` (R, S);
    ``work``, if given, an (R, S, M + 1 + O) array to use as scratch.

    ``num_features`` (or None: all) and ``feature_selection`` as
    :func:`.lime.explain_lime`, with "auto" already resolved. Returns coef
    (R, O, M) and the (R, O) intercept, surrogate prediction at the row and
    weighted R^2 on the samples.
    """
    n_rows, n_samples, n_features = Z.shape
    n_outputs = Y.shape[2]
    root = np.sqrt(weight)
    total = weight.sum(axis=1)  # (R,)
    y_mean = np.einsum("rs,rso->ro", weight, Y) / total[:, None]  # (R, O)
    # All moments from one product of A = W^1/2 [Z | 1 | Y - y_mean] (R, S, M + 1 + O)
    # with its own transpose, which numpy hands to BLAS syrk: A'A holds Z'WZ, the
    # weighted sums of Z, the cross moments and y_ss. Y is centred exactly first (a
    # locally constant model must give y_ss == 0); Z is centred afterwards, which
    # loses at most a digit as Z is bounded.
    m = n_features
    shape = (n_rows, n_samples, m + 1 + n_outputs)
    scaled = np.empty(shape) if work is None else work
    np.multiply(Z, root[..., None], out=scaled[..., :m])
    scaled[..., m] = root
    np.multiply(Y - y_mean[:, None], root[..., None], out=scaled[..., m + 1 :])
    moments = scaled.transpose(0, 2, 1) @ scaled
    z_mean = moments[:, m, :m] / total[:, None]  # (R, M)
    gram = moments[:, :m, :m] - total[:, None, None] * (z_mean[:, :, None] * z_mean[:, None])
    # sum_s w_s (z_s - z_mean) yc_s == sum_s w_s z_s yc_s, since sum_s w_s yc_s == 0.
    cross = moments[:, m + 1 :, :m]  # (R, O, M)
    y_ss = np.einsum("roo->ro", moments[:, m + 1 :, m + 1 :])  # (R, O)
    z_row = Z[:, 0]  # (R, M)

    mask = None
    if num_features is not None:
        if feature_selection == "forward_selection":
            mask = _forward_selection(gram, cross, y_ss, num_features)
        elif feature_selection == "highest_weights":
            # lime ranks by weight times the row's own interpretable value.
            ranking = np.abs(_ridge(gram, cross, _ALPHA_RANKING) * z_row[:, None])
            top = np.argsort(-ranking, axis=-1, kind="stable")[..., :num_features]
            mask = np.zeros(cross.shape, dtype=bool)
            np.put_along_axis(mask, top, True, axis=-1)
        else:
            Yc = Y - y_mean[:, None]
            mask = _lasso_path_selection(Z - z_mean[:, None], Yc, weight, num_features)

    coef = _ridge(gram, cross, _ALPHA, mask)  # (R, O, M)
    intercept = y_mean - np.einsum("rm,rom->ro", z_mean, coef)
    local = intercept + np.einsum("rm,rom->ro", z_row, coef)
    # Weighted residual sum of squares from the moments: |yc - Zc b|_W^2.
    explained = 2.0 * np.einsum("rom,rom->ro", coef, cross)
    explained -= np.einsum("rom,rmn,ron->ro", coef, gram, coef)
    sse = np.maximum(y_ss - explained, 0.0)
    # sklearn's r2_score convention for a constant target: 1 if fitted exactly, else 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(y_ss > 0, 1.0 - sse / y_ss, np.where(sse == 0, 1.0, 0.0))
    return coef, intercept, local, score


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
