"""Case 3: LIME at 5,000 neighbours against ``lime.lime_tabular.LimeTabularExplainer``.

Both draw their own random neighbours, so values differ row by row; agreement is the
mean overlap of the top-5 features (by |weight|) of the two explanations.
"""

from __future__ import annotations

import numpy as np

from benchmarks import fixtures
from benchmarks.common import (
    Row,
    Sizes,
    Workspace,
    model_function,
    one_core,
    predict_bound,
    run_xai,
    timed,
    top_k_overlap,
)

FAMILY = "3 LIME"
N_SAMPLES = 5000


def lime_reference(model, data) -> tuple[float, np.ndarray]:
    """lime's explainer looped over the rows: (seconds, weights (n_rows, M) for class 1)."""
    from lime.lime_tabular import LimeTabularExplainer

    cols = data.columns
    f = model_function(model, "predict_proba", cols)
    X, m = data.X, len(cols)

    def run() -> np.ndarray:
        explainer = LimeTabularExplainer(
            data.B, discretize_continuous=True, mode="classification", random_state=0
        )
        weights = np.zeros_like(X)
        for i, row in enumerate(X):
            explanation = explainer.explain_instance(row, f, num_features=m, num_samples=N_SAMPLES)
            for j, w in explanation.as_map()[1]:
                weights[i, j] = w
        return weights

    return timed(run)


def _lime_case(label: str, kind: str, target: str):
    def case(ws: Workspace, sizes: Sizes) -> list[Row]:
        model = fixtures.breast_cancer_model(kind)
        rows_frame, background = fixtures.breast_cancer_split(sizes.lime_rows, sizes.background)
        data = ws.dataset(f"lime-{kind}", rows_frame, background)
        path = ws.model(f"lime-{kind}", model)
        n = sizes.lime_rows
        with one_core():
            # default num_features (all) equals lime's num_features=M: no selection, same fit
            xai = run_xai(ws, path, data, method="lime", n_samples=N_SAMPLES)
            ref_s, ref_weights = lime_reference(model, data)
            bound_s = predict_bound(
                model, "predict_proba", n * N_SAMPLES, data.X, data.B, data.columns
            )
        overlap = top_k_overlap(xai.values, ref_weights)
        row = Row(
            FAMILY,
            f"{label}: 5,000 samples",
            n,
            xai_s=xai.seconds,
            ref_name="lime LimeTabularExplainer",
            ref_s=ref_s,
            bound_s=bound_s,
            xai_accuracy=f"top-5 overlap {overlap:.2f}",
            ref_accuracy="(reference)",
            target=target,
            note="model fitted on a DataFrame: both libraries call it with named columns",
            metrics={"top5_overlap": overlap, "background": sizes.background},
        )
        row.met = (
            row.speedup is not None and row.speedup >= 20
            if target.startswith(">=")
            else row.over_bound is not None and row.over_bound <= 1.5
        )
        return [row]

    return case


CASES = [
    ("3a LIME on LogisticRegression", _lime_case("Logistic 30 feat", "logistic", ">= 20x lime")),
    (
        "3b LIME on RandomForestClassifier",
        _lime_case("RF classifier 30 feat", "forest", "xai <= 1.5x predict-bound"),
    ),
]
