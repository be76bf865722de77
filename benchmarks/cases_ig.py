"""Case 4: Integrated Gradients (path form, default steps) against the predict-bound.

No reference library: IG needs gradients elsewhere (captum), xai uses finite segments.
"""

from __future__ import annotations

from benchmarks import fixtures
from benchmarks.common import Row, Sizes, Workspace, one_core, predict_bound, run_xai
from xaicli.config import Compute

FAMILY = "4 Integrated Gradients"


def ig_evals(n_features: int, steps: int) -> int:
    """Path form per row: interior nodes plus a forward and a backward point per
    (segment, feature), plus f(x) itself."""
    return steps - 1 + 2 * steps * n_features + 1


def mlp(ws: Workspace, sizes: Sizes) -> list[Row]:
    model = fixtures.friedman_mlp()
    data = ws.dataset(
        "ig-mlp10",
        fixtures.friedman_rows(sizes.ig_rows, seed=40),
        fixtures.friedman_rows(sizes.background, seed=41),
    )
    path = ws.model("ig-mlp10", model)
    steps = Compute.steps  # the CLI default
    n = sizes.ig_rows
    with one_core():
        xai = run_xai(ws, path, data, method="ig")
        bound_s = predict_bound(
            model, "predict", n * ig_evals(10, steps), data, layout="path", fitted_on_frame=False
        )
    completeness = float(abs(xai.predictions - xai.base_values - xai.values.sum(axis=1)).max())
    return [
        Row(
            FAMILY,
            f"MLP 10 feat: ig path, steps={steps}",
            n,
            xai_s=xai.seconds,
            bound_s=bound_s,
            xai_accuracy=f"completeness err {completeness:.1e}",
            target="xai <= 1.5x predict-bound",
            met=xai.seconds <= 1.5 * bound_s,
            note=f"{ig_evals(10, steps)} model rows per explained row; baseline = background mean",
            metrics={"completeness_error_max": completeness},
        )
    ]


CASES = [("4 IG on MLP", mlp)]
