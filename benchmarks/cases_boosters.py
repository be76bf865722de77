"""Case 2 (boosters): ``--algorithm auto`` on an XGBoost and a LightGBM regressor (30
features, 100 trees, depth 6 / 31 leaves, background 100) against
``shap.TreeExplainer(model, background, feature_perturbation="interventional")`` called
directly, one core, in one run; and the model's own predict time on the same rows.

Where xai explains the model by TreeSHAP it is exact and the accuracy column gives
shap's distance from it. Where it falls back to sampling (a model whose trees it does not
read), the rows are few and shap, exact up to float32, is the error reference instead.
"""

from __future__ import annotations

from benchmarks import fixtures
from benchmarks.cases_tree import FAMILY, describe_gap, shap_tree
from benchmarks.common import (
    RUNS,
    Row,
    Sizes,
    Workspace,
    format_errors,
    one_core,
    relative_errors,
    run_xai,
    timed,
)

FALLBACK_ROWS = 4  # sampling costs ~0.5 s per row at 30 features


def _booster_case(label: str, kind: str, *, rows_factor: int = 5):
    def case(ws: Workspace, sizes: Sizes) -> list[Row]:
        model = fixtures.tab30_booster(kind)
        path = ws.model(kind, model)
        background = fixtures.tab30_rows(sizes.background, seed=31)
        with one_core():
            probe = run_xai(
                ws, path, ws.dataset(f"{kind}-probe", fixtures.tab30_rows(2, seed=30), background),
                warm=False, runs=1,
            )  # fmt: skip
            exact = probe.algorithm == "tree"
            n = sizes.tree_rows * rows_factor if exact else FALLBACK_ROWS
            data = ws.dataset(kind, fixtures.tab30_rows(n, seed=30), background)
            X, B = data.X, data.B
            xai = run_xai(ws, path, data, algorithm="auto")
            shap_tree(model, B, X[:2], check_additivity=False)  # imports, first-call setup
            ref_s, ref_values = timed(
                lambda: shap_tree(model, B, X, check_additivity=False), min_runs=RUNS
            )
            predict_s, _ = timed(lambda: model.predict(X), min_runs=RUNS)
        errors = relative_errors(ref_values, xai.values)
        xai_errors = relative_errors(xai.values, ref_values)
        return [
            Row(
                FAMILY,
                f"{label}: auto (= {xai.algorithm})",
                n,
                xai_s=xai.seconds,
                ref_name="shap Tree interventional",
                ref_s=ref_s,
                xai_accuracy="exact (reference)" if exact else format_errors(xai_errors),
                ref_accuracy=format_errors(errors) if exact else "reference (float32)",
                target="xai <= 1.2x shap's time",
                met=xai.seconds <= 1.2 * ref_s,
                note=(
                    (
                        f"shap vs xai: {describe_gap(errors)}"
                        if exact
                        else f"xai fell back to {xai.algorithm}: measured on {n} rows"
                    )
                    + f"; the model's own predict on these rows {predict_s * 1e3:.2f} ms "
                    f"({n / predict_s:,.0f} rows/s); xai 2-row run {xai.small_run_s * 1e3:.0f} ms"
                ),  # fmt: skip
                metrics={
                    "shap_vs_xai": list(errors),
                    "background": sizes.background,
                    "predict_s": predict_s,
                },
            )
        ]

    return case


CASES = [
    (
        "2f XGBRegressor 100 trees depth 6",
        _booster_case("XGBoost regressor 100x d6", "xgbr"),
    ),
    (
        "2g LGBMRegressor 100 trees 31 leaves",
        _booster_case("LightGBM regressor 100x 31 leaves", "lgbr"),
    ),
]
