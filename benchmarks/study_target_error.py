"""Study: the default target error and first round of permutation SHAP.

``python -m benchmarks.study_target_error CASE SPEC...`` with CASE ``gbc`` (the 30-feature
boosted classifier's probability) or ``mlp`` (the 30-feature MLP), 40 rows and 100
background rows as in the benchmark, and SPEC one of: ``shap`` (KernelExplainer at its
default budget), ``fixed`` (xai at the same fixed budget), ``E`` (absolute target), ``E%``
(of each row's |prediction - base value|), ``Emad`` (E% of the output's mean |f(z) - base|
over the background, what ``--target-error auto`` uses). ``FIRST=n`` in the environment sets
the pairs of the first round. Errors are relative to the mean |reference value|; the
reference is permutation SHAP at 8x shap's default budget with another seed. Cost is
counted in model rows (pairs of orderings per row), which a loaded machine does not skew.
Findings: benchmarks/results/target-error-study.md.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import xaicli.methods.shap_permutation as permutation
from benchmarks import fixtures
from xaicli.methods.sampling_error import TargetError

N_ROWS, N_BACKGROUND, BUDGET = 40, 100, 2 * 30 + 2048


def case(name: str):
    if name == "gbc":
        rows, background = fixtures.breast_cancer_split(N_ROWS, N_BACKGROUND)
        model, columns = fixtures.breast_cancer_model("gbc"), list(rows.columns)
        return (
            rows,
            background,
            lambda X: model.predict_proba(pd.DataFrame(X, columns=columns))[:, 1:],
        )
    model = fixtures.tab30_mlp()
    rows = fixtures.tab30_rows(N_ROWS, seed=30)
    background = fixtures.tab30_rows(N_BACKGROUND, seed=31)
    return rows, background, lambda X: model.predict(X)[:, None]


def target_of(spec: str, spread: float) -> TargetError:
    if spec.endswith("mad"):
        return TargetError(float(spec[:-3]) / 100 * spread, relative=False)
    if spec.endswith("%"):
        return TargetError(float(spec[:-1]) / 100, relative=True)
    return TargetError(float(spec), relative=False)


def main(name: str, specs: list[str]) -> None:
    permutation.FIRST_ROUND_PAIRS = int(os.environ.get("FIRST", permutation.FIRST_ROUND_PAIRS))
    rows, background, model = case(name)
    X, B = rows.to_numpy(float), background.to_numpy(float)
    index = np.arange(len(X))
    cached = Path(f"/tmp/xai-study-reference-{name}.npy")
    if cached.exists():
        reference = np.load(cached)
    else:
        reference = permutation.explain_permutation(
            model, X, background=B, row_index=index, n_samples=8 * BUDGET, seed=1
        ).values
        np.save(cached, reference)
    scale = np.mean(np.abs(reference))
    f_background = model(B)
    spread = float(np.mean(np.abs(f_background - f_background.mean(axis=0))))
    calls = [0]

    def counted(A):
        calls[0] += len(A)
        return model(A)

    for spec in specs:
        calls[0] = 0
        start = time.perf_counter()
        if spec == "shap":
            import shap

            np.random.seed(0)
            explainer = shap.KernelExplainer(lambda A: model(A)[:, 0], B)
            values = np.asarray(
                explainer.shap_values(X, nsamples=BUDGET, l1_reg=False, silent=True)
            )
            err = np.abs(values - reference[:, 0])
            print(f"{name} shap: max {err.max() / scale:.3f} mean {err.mean() / scale:.4f}")
            continue
        target = None if spec == "fixed" else target_of(spec, spread)
        result = permutation.explain_permutation(
            counted, X, background=B, row_index=index, n_samples=BUDGET, target=target,
            errors=True,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        err = np.abs(result.values - reference)
        coverage = np.mean(err <= 2 * result.standard_errors)
        pairs = (calls[0] / len(X) - N_BACKGROUND) / (2 * 29) / N_BACKGROUND
        at_budget = 0 if result.converged is None else int((~result.converged).sum())
        print(
            f"{name} {spec}: max {err.max() / scale:.3f} mean {err.mean() / scale:.4f} "
            f"coverage {coverage:.3f} at budget {at_budget} pairs/row {pairs:.2f} {seconds:.1f}s"
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
