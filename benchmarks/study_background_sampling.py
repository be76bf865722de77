"""What sampling each background row's game on its own buys, at equal model calls.

``python -m benchmarks.study_background_sampling`` compares, on four models, the error of
one set of coalitions shared by every background row (the classic Kernel SHAP and
permutation estimators, as shap uses them) with xai's coalitions per background row, at the
same budget and seeds. Writes ``benchmarks/results/background-sampling.md``. Errors are
mean absolute errors divided by the mean |value|, against exact enumeration (10 features)
or against the mean of both xai estimators at 16x the largest budget (30 features).
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks import fixtures
from benchmarks.common import one_core
from xaicli.methods.base import row_rng
from xaicli.methods.shap_common import coalition_values
from xaicli.methods.shap_exact import explain_exact
from xaicli.methods.shap_kernel import explain_kernel, kernel_design, kernel_operator
from xaicli.methods.shap_permutation import explain_permutation

ROWS, BACKGROUND, SEEDS, BUDGETS = 8, 100, (0, 1, 2), (264, 1054)
RESULTS = Path(__file__).parent / "results"


def shared_kernel(f, X, B, budget, seed):
    masks, weights = kernel_design(X.shape[1], budget, seed)
    P, q = kernel_operator(masks, weights)
    base, fx = f(B).mean(axis=0), f(X)
    v = coalition_values(f, X, B, masks, row_index=np.arange(len(X)))  # (n, C, K)
    return np.einsum("mc,nck->nkm", P, v - base) + q * (fx - base)[:, :, None]


def shared_permutation(f, X, B, budget, seed):
    n, m = X.shape
    pairs = max(1, budget // (2 * (m - 1)))
    ranks = np.empty((n, 2 * pairs, m), dtype=np.int64)
    for r in range(n):
        forward = np.argsort(np.argsort(row_rng(seed, r).random((pairs, m)), axis=1), axis=1)
        ranks[r, 0::2], ranks[r, 1::2] = forward, m - 1 - forward
    masks = ranks[:, :, None, :] < np.arange(1, m)[None, None, :, None]
    v = coalition_values(f, X, B, masks.reshape(n, -1, m), row_index=np.arange(n))
    v = v.reshape(n, 2 * pairs, m - 1, -1)
    base, fx = f(B).mean(axis=0), f(X)
    chain = np.concatenate(
        [np.broadcast_to(base, (n, 2 * pairs, 1, base.size)), v,
         np.broadcast_to(fx[:, None, None, :], (n, 2 * pairs, 1, base.size))], axis=2
    )  # fmt: skip
    steps = np.take_along_axis(np.diff(chain, axis=2), ranks[..., None], axis=2)
    return steps.mean(axis=1).transpose(0, 2, 1)


def ours(explain):
    def run(f, X, B, budget, seed):
        index = np.arange(len(X))
        return explain(f, X, background=B, row_index=index, n_samples=budget, seed=seed).values

    return run


ESTIMATORS = {
    "kernel, shared": shared_kernel,
    "kernel, per background row": ours(explain_kernel),
    "permutation, shared": shared_permutation,
    "permutation, per background row": ours(explain_permutation),
}


def models():
    mlp10 = fixtures.friedman_mlp()
    yield (
        "MLP, 10 features",
        lambda A: mlp10.predict(A)[:, None],
        fixtures.friedman_rows(ROWS, 10).to_numpy(),
        fixtures.friedman_rows(BACKGROUND, 11).to_numpy(),
        True,
    )
    for kind in ("gbr", "gbc"):
        model = fixtures.tab30_model(kind)
        call = model.predict if kind == "gbr" else (lambda A, m=model: m.predict_proba(A)[:, 1])
        yield (
            "gradient boosting regressor, 30 features"
            if kind == "gbr"
            else "gradient boosting classifier (probability), 30 features",
            lambda A, c=call: c(A)[:, None],
            fixtures.tab30_rows(ROWS, 20).to_numpy(),
            fixtures.tab30_rows(BACKGROUND, 21).to_numpy(),
            False,
        )
    gbc = fixtures.breast_cancer_model("gbc")
    rows, background = fixtures.breast_cancer_split(ROWS, BACKGROUND)
    yield (
        "breast-cancer boosted classifier (probability), 30 features",
        lambda A: gbc.predict_proba(A)[:, 1:2],
        rows.to_numpy(float),
        background.to_numpy(float),
        False,
    )


def main() -> int:
    lines = [
        "# Sampling per background row vs one shared set of coalitions",
        "",
        f"{ROWS} rows, {BACKGROUND} background rows, seeds {SEEDS}; mean relative error "
        "(mean |error| / mean |value|), averaged over the seeds. Same budget = same model "
        "calls. Run `python -m benchmarks.study_background_sampling`.",
        "",
        "| model | budget | " + " | ".join(ESTIMATORS) + " |",
        "|---|---|" + "---|" * len(ESTIMATORS),
    ]
    start = time.perf_counter()
    with one_core(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, f, X, B, exact in models():
            if exact:
                reference = explain_exact(f, X, background=B, row_index=np.arange(len(X))).values
            else:
                big = 16 * max(BUDGETS)
                reference = (
                    ours(explain_kernel)(f, X, B, big, 99)
                    + ours(explain_permutation)(f, X, B, big, 99)
                ) / 2
            scale = np.abs(reference).mean()
            for budget in BUDGETS:
                errors = [
                    np.mean([np.abs(est(f, X, B, budget, s) - reference).mean() for s in SEEDS])
                    / scale
                    for est in ESTIMATORS.values()
                ]
                lines.append(
                    f"| {name} | {budget} | " + " | ".join(f"{e:.4f}" for e in errors) + " |"
                )
                print(lines[-1], file=sys.stderr)
    lines += ["", f"Total {time.perf_counter() - start:.0f} s."]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "background-sampling.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
