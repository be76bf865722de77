"""Study: the default target error of permutation SHAP (``python -m benchmarks.study_target_error``).

On the benchmark's 30-feature cases (boosted classifier probability, MLP), against a
high-budget reference: the error, time, coverage of +-2 SE and rows at the budget of xai's
permutation SHAP at several targets, and shap's KernelExplainer at its default budget.
Writes benchmarks/results/target-error-study.md.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import fixtures
from benchmarks.cases_shap import budget, shap_reference
from benchmarks.common import Workspace, model_function, one_core, relative_errors, run_xai

TARGETS = ("1%", "2%", "5%")
RESULTS = Path(__file__).parent / "results"


def cases(n_rows: int, n_background: int):
    rows, background = fixtures.breast_cancer_split(n_rows, n_background)
    yield "GBC 30 feat proba", fixtures.breast_cancer_model("gbc"), rows, background, (
        "predict_proba", 1, True
    )
    yield "MLP 30 feat", fixtures.tab30_mlp(), fixtures.tab30_rows(n_rows, seed=30), (
        fixtures.tab30_rows(n_background, seed=31)
    ), ("predict", None, False)


def study(n_rows: int = 20, n_background: int = 100) -> list[str]:
    lines = [
        "| case | run | rows/s | speed vs shap Kernel | max err | mean err | coverage +-2 SE | rows at budget |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, model, rows, background, (method, column, on_frame) in cases(n_rows, n_background):
        print(f"{label} ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="xai-study-") as folder, one_core():
            ws = Workspace(Path(folder))
            data = ws.dataset("d", rows, background)
            path = ws.model("m", model)
            m = len(data.columns)
            n_samples = budget(m)
            reference = run_xai(
                ws, path, data, warm=False, runs=1, algorithm="permutation",
                n_samples=16 * n_samples, seed=1,
            ).values  # fmt: skip
            f = model_function(model, method, data.columns if on_frame else None, column=column)
            shap_run = shap_reference(f, data, n_samples, 1)
            shap_rate = n_rows / shap_run.kernel_s
            err = relative_errors(shap_run.kernel_values, reference)
            lines.append(
                f"| {label} | shap Kernel nsamples={n_samples} | {shap_rate:.1f} | 1.00x | "
                f"{err[0]:.3f} | {err[1]:.4f} | | |"
            )
            runs = {f"permutation n_samples={n_samples} (fixed)": {"n_samples": n_samples}}
            runs |= {f"permutation target {t}": {"target_error": t} for t in TARGETS}
            for name, options in runs.items():
                run = run_xai(ws, path, data, algorithm="permutation", errors=True, **options)
                err = relative_errors(run.values, reference)
                se = run.standard_errors
                coverage = float(np.mean(np.abs(run.values - reference) <= 2 * se))
                at_budget = "" if run.converged is None else int((~run.converged).sum())
                rate = n_rows / run.seconds
                lines.append(
                    f"| {label} | {name} | {rate:.1f} | {rate / shap_rate:.2f}x | {err[0]:.3f} | "
                    f"{err[1]:.4f} | {coverage:.3f} | {at_budget} |"
                )
                print(lines[-1], file=sys.stderr, flush=True)
    return lines


def main() -> None:
    lines = study()
    text = "\n".join(
        [
            "# Target error study",
            "",
            "Errors are relative to the mean |reference value| (the reference: permutation "
            "SHAP at 16x shap's default budget, seed 1); 20 rows, 100 background rows, one core.",
            "",
            *lines,
            "",
        ]
    )
    (RESULTS / "target-error-study.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
