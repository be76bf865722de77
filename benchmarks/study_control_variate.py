"""Study: the margin game as a control variate for a boosted classifier's probability.

``python -m benchmarks.study_control_variate [PAIRS...]``: the benchmark's 30-feature
boosted classifier, 40 rows, 100 background rows; permutation sampling with PAIRS
antithetic pairs of orderings per background row, as xai samples (default 3 and 4).

The probability is sigmoid(margin), and the margin's interventional Shapley values are
exact (TreeSHAP; here shap's TreeExplainer, independent of xai). Along the same orderings,
each feature's margin contributions have that known mean, so
``phi_p - beta * (mean margin contribution - phi_margin)`` is unbiased for any beta and
has a lower variance the more the two contributions correlate. ``beta`` per row (one for
every feature: the attributions stay additive, as the margin's contributions sum to the
same total as its Shapley values) or per feature (not additive). Errors: max and mean
|value - reference| over the 1,200 attributions, divided by the mean |reference|; the
reference is xai's permutation SHAP at 8x shap's default budget, seed 1 (as
``study_target_error``). Findings: benchmarks/results/target-error-study.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import fixtures
from benchmarks.study_target_error import BUDGET, N_BACKGROUND, N_ROWS
from xaicli.methods.shap_permutation import explain_permutation


def main(pairs: list[int]) -> None:
    import shap

    rows, background = fixtures.breast_cancer_split(N_ROWS, N_BACKGROUND)
    model, columns = fixtures.breast_cancer_model("gbc"), list(rows.columns)
    X, B = rows.to_numpy(float), background.to_numpy(float)

    def proba(A: np.ndarray) -> np.ndarray:
        return model.predict_proba(pd.DataFrame(A, columns=columns))[:, 1]

    def margin(A: np.ndarray) -> np.ndarray:
        return model.decision_function(pd.DataFrame(A, columns=columns))

    cached = Path("/tmp/xai-study-reference-gbc.npy")  # study_target_error's, if it ran
    if cached.exists():
        reference = np.load(cached)[:, 0]
    else:
        reference = explain_permutation(
            lambda A: proba(A)[:, None], X, background=B, row_index=np.arange(len(X)),
            n_samples=8 * BUDGET, seed=1,
        ).values[:, 0]  # fmt: skip
    scale = np.mean(np.abs(reference))
    explainer = shap.TreeExplainer(model, B, feature_perturbation="interventional")
    phi_margin = np.asarray(explainer.shap_values(X))  # (n, M): the margin's, exact
    if phi_margin.ndim == 3:  # one set per class in some shap versions
        phi_margin = phi_margin[..., -1]
    for n_pairs in pairs:
        estimates = {name: np.empty_like(reference) for name in ("plain", "row", "feature")}
        for i in range(len(X)):
            p, mg = _pair_contributions(X[i], B, n_pairs, np.random.default_rng([7, i]),
                                        (proba, margin))  # fmt: skip
            plain = p.mean(axis=(0, 1))
            # deviations within each background row's pairs: the background rows are strata
            dp, dm = p - p.mean(axis=0), mg - mg.mean(axis=0)
            offset = mg.mean(axis=(0, 1)) - phi_margin[i]  # known-mean part, per feature
            beta = (dp * dm).sum() / max(float((dm * dm).sum()), 1e-300)
            per_feature = (dm * dm).sum(axis=(0, 1))
            beta_j = np.where(per_feature > 1e-9, (dp * dm).sum(axis=(0, 1)), 0.0) / np.maximum(
                per_feature, 1e-300
            )
            estimates["plain"][i] = plain
            estimates["row"][i] = plain - beta * offset
            estimates["feature"][i] = plain - beta_j * offset
        for name, values in estimates.items():
            err = np.abs(values - reference)
            print(
                f"{n_pairs} pairs, {name}: max {err.max() / scale:.3f} mean {err.mean() / scale:.4f}"
            )


def _pair_contributions(x, background, n_pairs, rng, models):
    """(P, B, M) contributions of each feature, averaged over each antithetic pair, for the
    probability and the margin along the same orderings."""
    n_background, m = background.shape
    forward = np.argsort(rng.random((n_pairs, n_background, m)), axis=2)
    orders = np.empty((2 * n_pairs, n_background, m), dtype=np.int64)
    orders[0::2], orders[1::2] = forward, forward[:, :, ::-1]
    ranks = np.argsort(orders, axis=2)
    masks = ranks[:, :, None, :] < np.arange(1, m)[None, None, :, None]  # (O, B, M-1, M)
    hybrids = np.where(masks, x, background[None, :, None, :]).reshape(-1, m)
    out = []
    for f in models:
        v = f(hybrids).reshape(2 * n_pairs, n_background, m - 1)
        start = np.broadcast_to(f(background)[None, :, None], (2 * n_pairs, n_background, 1))
        end = np.full((2 * n_pairs, n_background, 1), f(x[None])[0])
        steps = np.diff(np.concatenate([start, v, end], axis=2), axis=2)  # step at each rank
        c = np.take_along_axis(steps, ranks, axis=2)
        out.append((c[0::2] + c[1::2]) / 2)
    return out


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [3, 4])
