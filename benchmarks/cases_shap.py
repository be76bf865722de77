"""Case 1: model-agnostic SHAP (exact enumeration, Kernel, permutation) against shap.

All on one core. The budget is shap's default ``2M + 2048`` coalitions per row for both
libraries; shap's PermutationExplainer gets ``max_evals`` equal to that budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks import fixtures
from benchmarks.common import (
    EXACT_TOL,
    RUNS,
    Dataset,
    Row,
    Sizes,
    Workspace,
    XaiRun,
    format_errors,
    method_inputs,
    model_function,
    one_core,
    predict_bound,
    relative_errors,
    run_xai,
    timed,
)
from xaicli.methods.shap_kernel import explain_kernel
from xaicli.methods.shap_permutation import explain_permutation

FAMILY = "1 SHAP sampling"


def budget(n_features: int) -> int:
    return 2 * n_features + 2048


def kernel_evals(n_features: int, n_samples: int) -> int:
    """Coalitions evaluated per row: the budget, or all 2^M - 2 when they fit in it."""
    return min(n_samples, 2**n_features - 2)


def permutation_evals(n_features: int, n_samples: int) -> int:
    """xai's permutation: antithetic pairs of orderings, 2 (M - 1) coalitions per pair."""
    return 2 * max(1, n_samples // (2 * (n_features - 1))) * (n_features - 1)


@dataclass
class ShapReference:
    kernel_s: float
    kernel_values: np.ndarray  # (n_rows, M)
    permutation_s: float
    permutation_values: np.ndarray  # (n_permutation_rows, M): the first rows only
    permutation_rows: int
    alongside_s: float | None = None  # the fastest run of ``alongside``


def shap_reference(
    f, data: Dataset, n_samples: int, permutation_rows: int, alongside=None
) -> ShapReference:
    """shap's KernelExplainer and PermutationExplainer on the same rows, background and
    budget; the PermutationExplainer on the first ``permutation_rows`` rows only (its
    per-row Python overhead would dominate the suite's time). ``alongside() -> seconds``,
    when given, runs in turn with every KernelExplainer run, so that the two are timed
    under the same load: their ratio is what a shared machine disturbs least."""
    import shap

    X, B = data.X, data.B
    permutation_rows = min(permutation_rows, len(X))

    def kernel():
        np.random.seed(0)  # KernelExplainer samples from numpy's global generator
        explainer = shap.KernelExplainer(f, B)
        return explainer.shap_values(X, nsamples=n_samples, l1_reg=False, silent=True)

    def permutation():
        masker = shap.maskers.Independent(B, max_samples=len(B))
        explainer = shap.PermutationExplainer(f, masker, seed=0)
        return explainer(X[:permutation_rows], max_evals=n_samples, silent=True).values

    alongside_s = None
    if alongside is None:
        kernel_s, kernel_values = timed(kernel, min_runs=RUNS)
    else:
        kernel_s = alongside_s = float("inf")
        for _ in range(RUNS):
            alongside_s = min(alongside_s, alongside())
            seconds, kernel_values = timed(kernel, max_runs=1)
            kernel_s = min(kernel_s, seconds)
    permutation_s, permutation_values = timed(permutation, min_runs=RUNS)
    return ShapReference(
        kernel_s,
        np.asarray(kernel_values),
        permutation_s,
        np.asarray(permutation_values),
        permutation_rows,
        alongside_s,
    )


def small_run_note(*runs: XaiRun) -> str:
    """The cost of a 2-row run: what every run pays whatever its size."""
    times = ", ".join(f"{r.small_run_s * 1e3:.0f} ms" for r in runs if r.small_run_s)
    return f"xai 2-row run (fixed cost): {times}"


def mlp(ws: Workspace, sizes: Sizes) -> list[Row]:
    """10-feature MLP: exact enumeration is affordable, so errors are measured exactly."""
    model = fixtures.friedman_mlp()
    data = ws.dataset(
        "mlp10",
        fixtures.friedman_rows(sizes.shap_mlp_rows, seed=10),
        fixtures.friedman_rows(sizes.background, seed=11),
    )
    path = ws.model("mlp10", model)
    m, n, n_bg = 10, sizes.shap_mlp_rows, sizes.background
    n_samples = budget(m)
    with one_core():
        auto = run_xai(ws, path, data, algorithm="auto")  # 10 features: exact enumeration
        kernel = run_xai(ws, path, data, algorithm="kernel", n_samples=n_samples)
        permutation = run_xai(ws, path, data, algorithm="permutation", n_samples=n_samples)
        ref = shap_reference(model.predict, data, n_samples, sizes.shap_permutation_rows)

        def bound(evals_per_row: int) -> float:
            return predict_bound(
                model,
                "predict",
                n * evals_per_row * n_bg,
                data,
                layout="coalitions",
                fitted_on_frame=False,
            )

        bound_exact = bound(2**m)
        bound_kernel = bound(kernel_evals(m, n_samples))
        bound_permutation = bound(permutation_evals(m, n_samples))

    exact = auto.values  # xai's exact enumeration is the reference of this case
    err = {
        "auto": relative_errors(auto.values, exact),
        "kernel": relative_errors(kernel.values, exact),
        # on the rows shap's PermutationExplainer ran on, so the max is over the same rows
        "permutation": relative_errors(
            permutation.values[: ref.permutation_rows], exact[: ref.permutation_rows]
        ),
        "shap kernel": relative_errors(ref.kernel_values, exact),
        "shap permutation": relative_errors(ref.permutation_values, exact[: ref.permutation_rows]),
    }
    shap_err = err["shap kernel"][1]
    # the fastest xai setting at least as accurate (mean error) as shap's Kernel; rounding
    # counts as exact
    candidates = [("auto", auto, bound_exact), ("kernel", kernel, bound_kernel)]
    good = [c for c in candidates if err[c[0]][1] <= max(shap_err, EXACT_TOL)]
    best_name, best, best_bound = (
        min(good, key=lambda c: c[1].seconds) if good else (None, None, None)
    )
    rows = [
        Row(
            FAMILY,
            f"MLP 10 feat: best xai at shap Kernel accuracy ({best_name or 'none'})",
            n,
            xai_s=best.seconds if best else None,
            ref_name="shap Kernel",
            ref_s=ref.kernel_s,
            bound_s=best_bound,
            xai_accuracy=(
                "exact (reference)"
                if best_name == "auto"
                else format_errors(err[best_name])
                if best_name
                else ""
            ),
            ref_accuracy=format_errors(err["shap kernel"]),
            target="mean err <= shap Kernel's, >= 5x faster",
            met=bool(best and ref.kernel_s / best.seconds >= 5),
            note=(
                f"xai auto chose '{auto.algorithm}' (exact enumeration, the error reference; on "
                "a perceptron it evaluates the coalitions from the network's layers, without "
                "building hybrid rows); shap Kernel at nsamples="
                f"{n_samples} enumerates all 2^10-2 coalitions too, so both are exact to "
                "rounding and only speed differs"
                + (
                    f"; shap takes {ref.kernel_s / best_bound:.2f}x the model's own predict "
                    f"time over these coalitions, xai {best.seconds / best_bound:.2f}x"
                    if best and best_bound
                    else ""
                )
            ),
        ),
        Row(
            FAMILY,
            f"MLP 10 feat: kernel n_samples={n_samples}",
            n,
            xai_s=kernel.seconds,
            ref_name="shap Kernel",
            ref_s=ref.kernel_s,
            bound_s=bound_kernel,
            xai_accuracy=format_errors(err["kernel"]),
            ref_accuracy=format_errors(err["shap kernel"]),
            target="xai <= 1.5x predict-bound",
            met=kernel.seconds <= 1.5 * bound_kernel,
            note=small_run_note(kernel),
        ),
        Row(
            FAMILY,
            f"MLP 10 feat: permutation n_samples={n_samples}",
            n,
            xai_s=permutation.seconds,
            ref_name="shap Permutation",
            ref_s=ref.permutation_s,
            ref_rows=ref.permutation_rows,
            bound_s=bound_permutation,
            xai_accuracy=format_errors(err["permutation"]),
            ref_accuracy=format_errors(err["shap permutation"]),
            note=(
                f"informative (no target); shap Permutation ran on the first "
                f"{ref.permutation_rows} rows (max_evals={n_samples})"
            ),
        ),
    ]
    for row in rows:
        row.metrics = {"errors": {k: list(v) for k, v in err.items()}, "background": n_bg}
    return rows


def gbc(ws: Workspace, sizes: Sizes) -> list[Row]:
    """30-feature boosted classifier, predict_proba of class 1: no exact method exists
    (2^30 coalitions; no TreeSHAP for a sigmoid of trees)."""
    rows_frame, background = fixtures.breast_cancer_split(sizes.shap_gbc_rows, sizes.background)
    return sampled_case(
        ws,
        sizes,
        key="gbc30",
        label="GBC 30 feat proba",
        model=fixtures.breast_cancer_model("gbc"),
        rows_frame=rows_frame,
        background=background,
        method="predict_proba",
        column=1,
        fitted_on_frame=True,
    )


def mlp30(ws: Workspace, sizes: Sizes) -> list[Row]:
    """30-feature MLP regressor: the sampling case on a neural network (with 10 features
    shap's default budget enumerates every coalition, so only 30 features compare sampling)."""
    return sampled_case(
        ws,
        sizes,
        key="mlp30",
        label="MLP 30 feat",
        model=fixtures.tab30_mlp(),
        rows_frame=fixtures.tab30_rows(sizes.shap_gbc_rows, seed=30),
        background=fixtures.tab30_rows(sizes.background, seed=31),
        method="predict",
        column=None,
        fitted_on_frame=False,
        opaque=True,
    )


def sampled_case(
    ws: Workspace,
    sizes: Sizes,
    *,
    key: str,
    label: str,
    model,
    rows_frame,
    background,
    method: str,
    column: int | None,
    fitted_on_frame: bool,
    opaque: bool = False,
) -> list[Row]:
    """A model with too many features for enumeration: xai's sampling against shap's at
    shap's default budget, and the cheapest xai budget reaching shap Kernel's accuracy. In
    the full run a few rows get a high-budget reference: the mean of xai's kernel and
    permutation at 16x the budget, with another seed (two independent estimators; their
    disagreement is reported). ``opaque`` also times Kernel SHAP on the model wrapped in a
    plain callable, which hides its structure: the generic path's overhead on this model."""
    data = ws.dataset(key, rows_frame, background)
    path = ws.model(key, model)
    cols = data.columns
    m, n, n_bg = len(cols), sizes.shap_gbc_rows, sizes.background
    n_samples = budget(m)
    evals = {"kernel": kernel_evals, "permutation": permutation_evals}
    f = model_function(model, method, cols if fitted_on_frame else None, column=column)
    with one_core():
        # 30 features: permutation sampling to its default target error
        auto = run_xai(ws, path, data, algorithm="auto")
        runs = {
            name: run_xai(ws, path, data, algorithm=name, n_samples=n_samples)
            for name in ("kernel", "permutation")
        }
        targets = {
            target: run_xai(ws, path, data, algorithm="permutation", target_error=target)
            for target in TARGETS
        }
        ref = shap_reference(
            f,
            data,
            n_samples,
            sizes.shap_permutation_rows,
            # auto at its defaults against shap's KernelExplainer, run for run
            alongside=lambda: run_xai(ws, path, data, warm=False, runs=1, algorithm="auto").seconds,
        )
        opaque_run = None
        if opaque:
            opaque_path = ws.model(f"{key}-opaque", fixtures.OpaqueModel(model))
            opaque_run = run_xai(ws, opaque_path, data, algorithm="kernel", n_samples=n_samples)

        def bound(algorithm: str) -> float:
            explain = {"kernel": explain_kernel, "permutation": explain_permutation}[algorithm]
            return predict_bound(
                model,
                method,
                n * evals[algorithm](m, n_samples) * n_bg,
                data,
                layout="coalitions",
                fitted_on_frame=fitted_on_frame,
                inputs=method_inputs(explain, data.X[:2], data.B, seed=0, n_samples=n_samples),
            )

        bounds = {name: bound(name) for name in runs}
        reference, reference_spread, coverage_reference = _high_budget_reference(
            ws, path, data, sizes.shap_gbc_reference_rows, n_samples, key
        )
        # smaller budgets: the cheapest run at least as accurate as shap's Kernel is the answer
        smaller: dict[tuple[str, int], XaiRun] = {}
        if reference is not None:
            for fraction in SMALLER_BUDGETS:
                for name in runs:
                    budget_s = max(2 * m + 2, int(n_samples * fraction))
                    smaller[(name, budget_s)] = run_xai(
                        ws, path, data, algorithm=name, n_samples=budget_s
                    )

    err: dict[str, tuple[float, float]] = {}
    if reference is not None:
        k = len(reference)
        named = {"auto": auto.values, **{name: r.values for name, r in runs.items()}}
        named |= {"shap kernel": ref.kernel_values, "shap permutation": ref.permutation_values}
        for name, values in named.items():
            if len(values) >= k:
                err[name] = relative_errors(values[:k], reference)
        for (name, budget_s), run in smaller.items():
            err[f"{name} n_samples={budget_s}"] = relative_errors(run.values[:k], reference)
        for target, run in targets.items():
            err[f"target {target}"] = relative_errors(run.values[:k], reference)
    agreement = relative_errors(auto.values, ref.kernel_values)
    reference_note = (
        f"errors on the first {sizes.shap_gbc_reference_rows} rows vs the mean of xai kernel "
        f"and permutation at n_samples={16 * n_samples}, seed 1 (sampled too: the two differ "
        f"by {format_errors(reference_spread)}, so errors below that are not resolved); "
        "coverage vs the permutation one alone"
        if reference is not None
        else "no exact values for 30 features; error reference skipped in --quick"
    )

    def sampled_row(run_label: str, run: XaiRun, vs_permutation: bool = False) -> Row:
        algorithm = run.algorithm
        return Row(
            FAMILY,
            f"{label}: {run_label} n_samples={n_samples}",
            n,
            xai_s=run.seconds,
            ref_name="shap Permutation" if vs_permutation else "shap Kernel",
            ref_s=ref.permutation_s if vs_permutation else ref.kernel_s,
            ref_rows=ref.permutation_rows if vs_permutation else None,
            bound_s=bounds[algorithm],
            xai_accuracy=format_errors(err.get(algorithm)),
            ref_accuracy=format_errors(
                err.get("shap permutation" if vs_permutation else "shap kernel")
            ),
            target="" if vs_permutation else "xai <= 1.5x predict-bound",
            met=None if vs_permutation else run.seconds <= 1.5 * bounds[algorithm],
            note=(
                f"informative (no target); shap Permutation on the first {ref.permutation_rows} rows"
                if vs_permutation
                else small_run_note(run)
            ),
        )

    auto_row = _defaults_row(label, n, auto, ref, err, reference, coverage_reference)
    auto_row.note = (
        f"{reference_note}; timed in turn with shap Kernel's runs; "
        f"xai vs shap Kernel: {format_errors(agreement)}; "
        f"{_budget_note(auto, n)}; " + small_run_note(auto)
    )
    rows = [auto_row]
    for name in ("kernel", "permutation"):
        row = sampled_row(name, runs[name], vs_permutation=name == "permutation")
        row.case = f"{label}: {name} n_samples={n_samples} (fixed budget)"
        rows.append(row)
    for target, run in targets.items():
        rows.append(
            Row(
                FAMILY,
                f"{label}: permutation --target-error {target}",
                n,
                xai_s=run.seconds,
                ref_name="shap Kernel",
                ref_s=ref.kernel_s,
                xai_accuracy=format_errors(err.get(f"target {target}")),
                ref_accuracy=format_errors(err.get("shap kernel")),
                note=f"informative (no target); {_budget_note(run, n)}"
                + (
                    f"; coverage of +-2 SE {_coverage(run, coverage_reference):.3f}"
                    if reference is not None
                    else ""
                ),
            )
        )
    if opaque_run is not None:
        opaque_row = sampled_row("kernel", opaque_run)
        opaque_row.case = f"{label} as an opaque callable: kernel n_samples={n_samples}"
        opaque_row.target, opaque_row.met = "", None
        opaque_row.note = (
            "informative (no target): the model wrapped in a plain Python callable, so xai "
            "builds every hybrid row and calls it (the generic path, as for any model whose "
            "layers it cannot read); same values as the kernel row to rounding; "
            + small_run_note(opaque_run)
        )
        rows.append(opaque_row)
    if reference is not None:
        # at least as accurate as shap's Kernel: both the mean and the max relative error
        shap_max, shap_mean = err["shap kernel"]
        tried = [(name, n_samples, run, err[name]) for name, run in runs.items()] + [
            (name, b, run, err[f"{name} n_samples={b}"]) for (name, b), run in smaller.items()
        ]
        good = [t for t in tried if t[3][1] <= shap_mean and t[3][0] <= shap_max]
        chosen = min(good, key=lambda t: t[2].seconds) if good else None
        tried_note = "; ".join(
            f"{name} n_samples={b}: {r.seconds:.2f} s, {format_errors(e)}"
            for name, b, r, e in sorted(tried, key=lambda t: (t[0], -t[1]))
        )
        rows.insert(
            1,
            Row(
                FAMILY,
                f"{label}: cheapest xai at shap Kernel accuracy"
                + (f" ({chosen[0]} n_samples={chosen[1]})" if chosen else " (none)"),
                n,
                xai_s=chosen[2].seconds if chosen else None,
                ref_name="shap Kernel",
                ref_s=ref.kernel_s,
                xai_accuracy=format_errors(chosen[3]) if chosen else "",
                ref_accuracy=format_errors(err["shap kernel"]),
                target="mean and max err <= shap Kernel's, >= 5x faster",
                met=bool(chosen and ref.kernel_s / chosen[2].seconds >= 5),
                note=f"shap Kernel at n_samples={n_samples}; xai tried {tried_note}",
            ),
        )
    for row in rows:
        row.metrics = {
            "errors": {k: list(v) for k, v in err.items()},
            "xai_auto_vs_shap_kernel": list(agreement),
            "reference_spread": list(reference_spread) if reference is not None else None,
            "background": n_bg,
        }
    return rows


SMALLER_BUDGETS = (0.5, 0.25, 0.125, 0.0625)  # of shap's default budget
TARGETS = ("1%", "5%", "10%")  # --target-error of the rows/s rows


def _coverage(run: XaiRun, reference: np.ndarray) -> float:
    """Share of the attributions whose reference value lies within +-2 standard errors.

    The reference must be far more accurate than each attribution's standard error, which
    for an attribution that rarely moves the output is tiny: the high-budget permutation
    estimate is (its error is that of the run at 1/145 of the variance, attribution by
    attribution), the kernel estimate is not (a regression spreads its error over every
    feature: against it, +-2 SE of auto on the boosted classifier covered 85%, against
    permutation estimates of two seeds 94%; benchmarks/results/target-error-study.md)."""
    k = len(reference)
    return float(np.mean(np.abs(run.values[:k] - reference) <= 2 * run.standard_errors[:k]))


def _budget_note(run: XaiRun, n_rows: int) -> str:
    if run.converged is None:
        return "fixed budget"
    return f"{int((~run.converged).sum())} of {n_rows} rows stopped at the budget"


def _defaults_row(
    label, n, auto: XaiRun, ref: ShapReference, err, reference, coverage_reference
) -> Row:
    """auto at its defaults (permutation to the default target error) against shap's
    KernelExplainer at its default budget: >= 10x faster, no worse mean and max error,
    +-2 standard errors covering 90-98% of the reference values."""
    mine, shap_err = err.get("auto"), err.get("shap kernel")
    accurate = bool(mine and shap_err and mine[0] <= shap_err[0] and mine[1] <= shap_err[1])
    xai_s = auto.seconds if ref.alongside_s is None else min(auto.seconds, ref.alongside_s)
    covered = (
        _coverage(auto, coverage_reference)
        if coverage_reference is not None and auto.standard_errors is not None
        else None
    )
    row = Row(
        FAMILY,
        f"{label}: auto (= {auto.algorithm}) at defaults",
        n,
        xai_s=xai_s,
        ref_name="shap Kernel",
        ref_s=ref.kernel_s,
        xai_accuracy=format_errors(mine)
        + (f"; coverage +-2 SE {covered:.3f}" if covered is not None else ""),
        ref_accuracy=format_errors(shap_err),
        target=">= 10x shap Kernel at defaults, mean and max err <= shap Kernel's, "
        "+-2 SE cover 90-98%",
    )
    speed_ok = bool(row.speedup and row.speedup >= 10)
    coverage_ok = covered is not None and 0.90 <= covered <= 0.98
    row.met = speed_ok and accurate and coverage_ok if reference is not None else None
    return row


def _high_budget_reference(
    ws: Workspace, path, data: Dataset, n_rows: int, n_samples: int, key: str
) -> tuple[np.ndarray | None, tuple[float, float] | None, np.ndarray | None]:
    """The mean of two independent high-budget estimates, how far apart they are, and the
    permutation one alone (the reference of coverage, see :func:`_coverage`)."""
    if n_rows <= 0:
        return None, None, None
    head = ws.dataset(f"{key}-head", data.frame.head(n_rows), data.background)
    # another seed, so the reference does not share the timed runs' draws
    estimates = [
        run_xai(
            ws, path, head, warm=False, runs=1, algorithm=name, n_samples=16 * n_samples, seed=1
        ).values
        for name in ("kernel", "permutation")
    ]
    mean = (estimates[0] + estimates[1]) / 2
    return mean, relative_errors(estimates[0], estimates[1]), estimates[1]


CASES = [
    ("1a SHAP on MLP (10 features)", mlp),
    ("1b SHAP on GBC proba (30 features)", gbc),
    ("1c SHAP on MLP (30 features)", mlp30),
]
