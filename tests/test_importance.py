"""Global importance in one streaming pass, checked against pandas on the whole table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression

from xaicli import explain
from xaicli.io.attributions import open_attributions, read_attributions
from xaicli.report.importance import global_importance


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True, as_frame=True)
    X = X.iloc[:, :6]
    model = LogisticRegression(max_iter=2000).fit(X, y)
    return model, X


def _pandas_importance(table, features):
    frame = table.frame
    if table.layout == "wide":
        frame = frame.melt(
            id_vars=["output"], value_vars=list(features), var_name="feature",
            value_name="attribution",
        )  # fmt: skip
    grouped = frame.groupby(["output", "feature"])["attribution"]
    return pd.DataFrame(
        {
            "mean_abs": grouped.apply(lambda s: s.abs().mean()),
            "mean": grouped.mean(),
            "std": grouped.std(),
            "count": grouped.count(),
        }
    ).reset_index()


@pytest.mark.parametrize(("layout", "suffix"), [("wide", "parquet"), ("long", "csv")])
def test_streamed_importance_equals_pandas_on_the_whole_table(wine, tmp_path, layout, suffix):
    model, X = wine
    out = tmp_path / f"a.{suffix}"
    explain(model, X, out=out, layout=layout, method="shap", algorithm="linear", output="decision")
    source = open_attributions(out)
    # batches of 7 rows: many merges of partial moments
    batches = list(source.batches(batch_rows=7))
    assert len(batches) > 10
    from xaicli.report.importance import ImportanceAccumulator

    accumulator = ImportanceAccumulator(source.features)
    for batch in batches:
        (accumulator.add_wide if layout == "wide" else accumulator.add_long)(batch)
    streamed = accumulator.result()
    whole = global_importance(source)
    pd.testing.assert_frame_equal(streamed, whole, check_exact=False, rtol=1e-12)
    expected = _pandas_importance(read_attributions(out), source.features)
    merged = streamed.merge(expected, on=["output", "feature"], suffixes=("", "_pandas"))
    assert len(merged) == len(streamed) == 3 * 6
    for column in ("mean_abs", "mean", "std", "count"):
        np.testing.assert_allclose(merged[column], merged[f"{column}_pandas"], rtol=1e-10)
    for _, per_output in streamed.groupby("output"):
        assert per_output["share"].sum() == pytest.approx(1.0)
        ranks = per_output["mean_abs"].rank(method="min", ascending=False).astype(int)
        assert (ranks == per_output["rank"]).all()


def test_groups_split_the_summary(wine, tmp_path):
    model, X = wine
    out = tmp_path / "a.parquet"
    explain(model, X, out=out, method="shap", algorithm="linear", output="decision")
    source = open_attributions(out)
    frame = read_attributions(out).frame
    alcohol_high = (X["alcohol"] > X["alcohol"].median()).to_numpy()
    row_group = pd.Series(np.where(alcohol_high, "high", "low"))
    groups = [
        row_group.iloc[batch["row"].to_numpy()].set_axis(batch.index) for batch in source.batches()
    ]
    from xaicli.report.importance import ImportanceAccumulator

    accumulator = ImportanceAccumulator(source.features)
    for batch, group in zip(source.batches(), groups, strict=True):
        accumulator.add_wide(batch, group)
    table = accumulator.result("alcohol_level")
    high = frame[alcohol_high[frame["row"].to_numpy()]]
    expected = high[high["output"] == "0"]["alcohol"].abs().mean()
    got = table.query("alcohol_level == 'high' and output == '0' and feature == 'alcohol'")
    assert got["mean_abs"].item() == pytest.approx(expected, rel=1e-12)
