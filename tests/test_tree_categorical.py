"""The tree engine's split rules beyond `x <= threshold`: categorical sets and LightGBM's
zero-as-missing, checked on hand-built ensembles (routing) and against brute-force
enumeration (interventional TreeSHAP over them); scikit-learn's categorical
HistGradientBoosting read into them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import exact_interventional_shap
from frame_shapley import enumerate_shap
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from xaicli.methods.shap_tree import interventional_tree_shap
from xaicli.methods.tree_ensemble import NUMERIC, ZERO_IS_MISSING, TreeEnsemble
from xaicli.models.tree_builder import category_table
from xaicli.models.tree_inputs import tree_inputs, tree_rows
from xaicli.models.trees import extract_tree_ensemble


def _stump(rule: int, *, threshold: float = 0.5, missing_left: bool = False, bits=None):
    """One split on feature 0: leaf values 1 (left) and 2 (right)."""
    return TreeEnsemble(
        roots=np.array([0]),
        left=np.array([1, -1, -1]),
        right=np.array([2, -1, -1]),
        feature=np.array([0, -1, -1]),
        threshold=np.array([threshold, 0.0, 0.0]),
        missing_left=np.array([missing_left, False, False]),
        value=np.array([[0.0], [1.0], [2.0]]),
        tree_output=np.array([-1]),
        offset=np.zeros(1),
        n_features=1,
        float32_inputs=False,
        max_depth=1,
        split_rule=np.array([rule, NUMERIC, NUMERIC]),
        category_bits=bits,
    )


def test_categorical_split_sends_its_set_left_and_other_codes_right():
    bits = category_table([np.array([1, 3, 70])])  # two words: code 70 is in the second
    ensemble = _stump(0, missing_left=True, bits=bits)
    codes = np.array([0, 1, 2, 3, 69, 70, 71, 500, -1, np.nan])[:, None]
    went_left = ensemble.predict(codes)[:, 0] == 1.0
    # NaN follows missing_left; negative codes and codes beyond the set go right
    assert went_left.tolist() == [False, True, False, True, False, True, False, False, False, True]
    assert ensemble.predict(np.array([[np.nan]]))[0, 0] == 1.0
    assert _stump(0, missing_left=False, bits=bits).predict(np.array([[np.nan]]))[0, 0] == 2.0


def test_zero_is_missing_rule_sends_near_zero_and_nan_the_default_way():
    ensemble = _stump(ZERO_IS_MISSING, threshold=-1.0, missing_left=True)
    values = np.array([-2.0, -1.0, -1e-35, 0.0, 1e-35, 1e-34, 3.0, np.nan])[:, None]
    went_left = ensemble.predict(values)[:, 0] == 1.0
    assert went_left.tolist() == [True, True, True, True, True, False, False, True]


def test_default_split_rule_is_numeric():
    ensemble = TreeEnsemble(
        **{**_stump(NUMERIC).__dict__, "split_rule": None, "category_bits": None}
    )
    assert (ensemble.split_rule == NUMERIC).all()
    assert ensemble.predict(np.array([[0.5], [0.6]]))[:, 0].tolist() == [1.0, 2.0]


def _random_categorical_ensemble(rng: np.random.Generator) -> TreeEnsemble:
    """Three depth-3 trees over 4 features; features 0 and 1 are categorical (codes 0-9),
    2 numeric, 3 zero-as-missing numeric; the same feature repeats along paths."""
    left, right, feature, threshold, missing, rule, value, sets = [], [], [], [], [], [], [], []
    roots = []
    for _ in range(3):
        base = len(left)
        roots.append(base)
        for node in range(15):
            if node < 7:
                f = int(rng.integers(4))
                left.append(base + 2 * node + 1)
                right.append(base + 2 * node + 2)
                feature.append(f)
                threshold.append(float(rng.normal()))
                missing.append(bool(rng.random() < 0.5))
                if f < 2:
                    rule.append(len(sets))
                    sets.append(np.flatnonzero(rng.random(10) < 0.5))
                else:
                    rule.append(ZERO_IS_MISSING if f == 3 else NUMERIC)
                value.append(0.0)
            else:
                left.append(-1)
                right.append(-1)
                feature.append(-1)
                threshold.append(0.0)
                missing.append(False)
                rule.append(NUMERIC)
                value.append(float(rng.normal()))
    return TreeEnsemble(
        roots=np.array(roots),
        left=np.array(left),
        right=np.array(right),
        feature=np.array(feature),
        threshold=np.array(threshold),
        missing_left=np.array(missing),
        value=np.array(value)[:, None],
        tree_output=np.full(3, -1),
        offset=np.array([0.25]),
        n_features=4,
        float32_inputs=False,
        max_depth=3,
        split_rule=np.array(rule),
        category_bits=category_table(sets),
    )


def _mixed_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    rows = np.column_stack(
        [
            rng.integers(0, 10, n).astype(float),
            rng.integers(0, 10, n).astype(float),
            rng.normal(size=n),
            np.where(rng.random(n) < 0.3, 0.0, rng.normal(size=n)),
        ]
    )
    rows[rng.random(rows.shape) < 0.15] = np.nan
    return rows


def test_interventional_shap_matches_enumeration_with_categorical_and_zero_splits():
    rng = np.random.default_rng(7)
    ensemble = _random_categorical_ensemble(rng)
    rows, background = _mixed_rows(rng, 6), _mixed_rows(rng, 12)
    result = interventional_tree_shap(ensemble, rows, background)
    for i, x in enumerate(rows):
        expected = exact_interventional_shap(ensemble.predict, x, background)
        np.testing.assert_allclose(result.values[i], expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        result.base_values[:, 0] + result.values.sum(axis=2)[:, 0], result.predictions[:, 0]
    )


def _categorical_frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    frame = pd.DataFrame(rng.normal(size=(n, 5)), columns=["n1", "n2", "n3", "n4", "n5"])
    frame.loc[rng.random(n) < 0.1, "n1"] = np.nan
    frame.insert(1, "colour", pd.Categorical(rng.choice(["red", "green", "blue", "grey"], n)))
    frame["size"] = pd.Categorical(rng.choice(list("SMLX"), n), categories=list("XLMS"))
    frame.loc[rng.random(n) < 0.1, "colour"] = np.nan
    return frame


@pytest.mark.parametrize(
    "estimator", [HistGradientBoostingRegressor, HistGradientBoostingClassifier]
)
def test_hist_gradient_boosting_categorical_splits_reproduce_the_model(estimator):
    rng = np.random.default_rng(3)
    frame = _categorical_frame(rng, 500)
    target = frame["n2"] + 2.0 * frame["colour"].isin(["red", "grey"]) - (frame["size"] == "M")
    if estimator is HistGradientBoostingClassifier:
        target = np.digitize(target, [-0.5, 0.8])
        output = "decision"
    else:
        output = "predict"
    model = estimator(max_iter=20, categorical_features="from_dtype", random_state=0)
    model.fit(frame, target)
    ensemble = extract_tree_ensemble(model, output)
    assert (ensemble.split_rule >= 0).any()  # categorical splits were read
    unseen = _categorical_frame(np.random.default_rng(4), 200)
    # a category the model never saw
    unseen["colour"] = unseen["colour"].cat.add_categories("purple")
    unseen.loc[:5, "colour"] = "purple"
    expected = model.predict(unseen) if output == "predict" else model.decision_function(unseen)
    got = ensemble.predict(tree_rows(model, unseen))
    np.testing.assert_array_equal(got, np.asarray(expected).reshape(len(unseen), -1))


def test_hist_gradient_boosting_categorical_shap_matches_enumeration_over_input_columns():
    rng = np.random.default_rng(5)
    frame = _categorical_frame(rng, 500)
    target = frame["n3"] * (frame["colour"] == "blue") + frame["size"].isin(["S", "L"])
    model = HistGradientBoostingRegressor(max_iter=15, categorical_features="from_dtype")
    model.fit(frame, target)
    features = tuple(frame.columns)
    unseen = _categorical_frame(np.random.default_rng(6), 14)
    rows, background = unseen.iloc[:3], unseen.iloc[3:]
    inputs = tree_inputs(model, "predict", background, features)
    result = interventional_tree_shap(
        inputs.ensemble, tree_rows(model, rows), inputs.background, groups=inputs.groups
    )
    assert (inputs.ensemble.split_rule >= 0).any()
    for i in range(len(rows)):
        expected = enumerate_shap(model.predict, rows.iloc[[i]], background)[0]
        np.testing.assert_allclose(result.values[i, 0], expected, rtol=1e-9, atol=1e-12)
