"""Choose the SHAP algorithm: the fastest exact one the model allows, unless asked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xaicli.errors import UsageError
from xaicli.methods.shap_exact import MAX_FEATURES
from xaicli.models.boosters import has_margin
from xaicli.models.catboost_trees import is_catboost
from xaicli.models.structure import final_estimator, is_additive, is_pipeline

EXACT_AUTO_MAX_FEATURES = 12  # 4,096 coalitions per row: about as costly as 2M + 2048 samples
#: --interactions: the --method and --algorithm values that may give interaction values
INTERACTION_CHOICES = {"--method": ("auto", "shap"), "--algorithm": ("auto", "tree")}


@dataclass(frozen=True)
class Choice:
    algorithm: str
    reason: str
    hint: str | None = None
    tree_inputs: Any = None  # for "tree": what deciding built, kept for the run

    @property
    def takes_weights(self) -> bool:
        """Whether the algorithm takes background row weights (interventional TreeSHAP)."""
        return self.algorithm == "tree"

    @property
    def takes_interactions(self) -> bool:
        """Whether the algorithm gives interaction values (interventional TreeSHAP)."""
        return self.algorithm == "tree"


def may_choose_tree(method: str, algorithm: str, model: Any, output: str) -> bool:
    """Whether TreeSHAP is likely to run (before the background is drawn, which deciding
    needs): --method auto/shap, --algorithm auto/tree, a supported tree model and output."""
    if method not in ("auto", "shap") or algorithm not in ("auto", "tree"):
        return False
    from xaicli.models.trees import may_run_tree_shap

    return may_run_tree_shap(model, output)


def choose_shap_algorithm(
    requested: str,
    model: Any,
    output_kind: str,
    features: tuple[str, ...],
    any_categorical: bool,
    background_frame: Any,
) -> Choice:
    n_features = len(features)
    tree_problem, tree_inputs = None, None
    if requested in ("auto", "tree", "tree-path"):
        tree_problem, tree_inputs = _tree_problem(
            model, output_kind, any_categorical, background_frame, features
        )
    if requested == "tree":
        if tree_problem:
            raise UsageError(f"--algorithm tree: {tree_problem}")
        return Choice("tree", "requested", tree_inputs=tree_inputs)
    if requested == "tree-path":
        if is_pipeline(model):
            tree_problem = (
                "path-dependent TreeSHAP (via shap) needs a bare tree ensemble, not a Pipeline"
            )
        if tree_problem:
            raise UsageError(f"--algorithm tree-path: {tree_problem}")
        return Choice("tree-path", "requested (path-dependent; ignores the background)")
    if requested == "linear":
        if not is_additive(model, output_kind):
            raise UsageError(
                "--algorithm linear needs a linear model's predict or decision output, after "
                "column-wise preprocessing only; use exact or kernel"
            )
        return Choice("linear", "requested")
    if requested == "exact":
        if n_features > MAX_FEATURES:
            raise UsageError(
                f"--algorithm exact enumerates 2^{n_features} coalitions per row; "
                f"use it for at most {MAX_FEATURES} features, or --algorithm kernel"
            )
        return Choice("exact", "requested")
    if requested in ("kernel", "permutation"):
        if n_features < 2:
            raise UsageError(f"--algorithm {requested} needs at least 2 features")
        return Choice(requested, "requested")
    # auto
    hint = None
    if not tree_problem:
        return Choice(
            "tree", "tree ensemble: exact interventional TreeSHAP", tree_inputs=tree_inputs
        )
    if output_kind == "proba" and _is_boosted(model):
        hint = (
            "the probability of a boosted classifier has no exact TreeSHAP; "
            "--output decision explains its margin exactly and fast"
        )
    elif output_kind == "predict" and "--output decision" in tree_problem:
        hint = (
            "this model's prediction is a nonlinear link of its margin, so it has no exact "
            "TreeSHAP; --output decision explains the margin exactly and fast"
        )
    elif is_catboost(final_estimator(model)):
        hint = f"no exact TreeSHAP for this model: {tree_problem}"  # never silently
    if is_additive(model, output_kind):
        return Choice("linear", "model is additive in its input columns: closed form", hint)
    if n_features <= EXACT_AUTO_MAX_FEATURES:
        return Choice("exact", f"{n_features} features: exact enumeration", hint)
    # permutation sampling with orderings per background row: at equal model calls as
    # accurate as Kernel SHAP at large budgets and more accurate at small ones
    return Choice("permutation", f"{n_features} features: permutation sampling", hint)


def _is_boosted(model: Any) -> bool:
    final = final_estimator(model)
    return has_margin(final) or type(final).__name__ in (
        "GradientBoostingClassifier",
        "HistGradientBoostingClassifier",
    )


def _tree_problem(
    model: Any,
    output_kind: str,
    any_categorical: bool,
    background_frame: Any,
    features: tuple[str, ...],
) -> tuple[str | None, Any]:
    """Why TreeSHAP cannot run on this model (None when it can), and when it can, the trees'
    inputs (``xaicli.models.tree_inputs.TreeInputs``) built to find out."""
    if output_kind == "call":
        return "the model is a plain callable, not a tree ensemble", None
    from xaicli.models.tree_inputs import reads_categories, tree_inputs

    if (
        any_categorical
        and not is_pipeline(model)
        and not reads_categories(model)
        and not is_catboost(model)
    ):
        return "TreeSHAP needs numeric input columns", None
    from xaicli.models.trees import TreeModelNotSupported

    try:
        return None, tree_inputs(model, output_kind, background_frame, features)
    except TreeModelNotSupported as exc:
        return str(exc), None
