"""`xai summarize`: global importance from the command line, checked against pandas on the
whole table, on data the other tests never use (statsmodels' Fair affairs survey)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

import xaicli.io.attributions as attributions_module
from tests.conftest import run_cli
from xaicli import explain, read_attributions

FEATURES = ["rate_marriage", "age", "yrs_married", "children", "religious", "educ"]


@pytest.fixture(scope="module")
def fair(tmp_path_factory):
    """A linear model of the Fair survey and 500 of its rows (one with a missing age),
    written as Parquet and CSV, with an id column and an occupation to group by."""
    import statsmodels.api as sm

    folder = tmp_path_factory.mktemp("fair")
    survey = sm.datasets.fair.load_pandas().data
    model = LinearRegression().fit(survey[FEATURES], survey["affairs"])
    rows = survey.sample(500, random_state=3).reset_index(drop=True)
    data = rows[FEATURES].copy()
    data.loc[17, "age"] = np.nan  # the model cannot take it: skipped, and passed over by joins
    data.insert(0, "person", [f"{i:05d}" for i in range(len(data))])
    data["occupation"] = rows["occupation"].map({1: "student", 2: "farming", 3: "white collar"})
    data.to_parquet(folder / "fair.parquet", index=False)
    data.to_csv(folder / "fair.csv", index=False)
    return {"folder": folder, "model": model, "data": data}


def _explain(fair, out, **options):
    explain(
        fair["model"],
        fair["folder"] / "fair.parquet",
        out=out,
        features=FEATURES,
        method="shap",
        algorithm="linear",
        on_invalid="skip",
        **options,
    )


def _pandas_summary(path, data, by=None):
    """The summary computed on the whole table in memory, the obvious way."""
    table = read_attributions(path)
    frame = table.frame
    if table.layout == "wide":
        frame = frame.melt(
            id_vars=[*table.id_columns, "output"], value_vars=list(table.features),
            var_name="feature", value_name="attribution",
        )  # fmt: skip
    keys = ["output", "feature"]
    if by is not None:
        if table.id_columns == ("row",):
            frame = frame.assign(**{by: data[by].to_numpy()[frame["row"].to_numpy()]})
        else:
            ids = data[[*table.id_columns, by]].astype({c: str for c in table.id_columns})
            frame = frame.astype({c: str for c in table.id_columns}).merge(ids, how="left")
        frame[by] = frame[by].fillna("(missing)")
        keys = [by, *keys]
    grouped = frame.groupby(keys)["attribution"]
    expected = pd.DataFrame(
        {
            "count": grouped.count(),
            "mean_abs": grouped.apply(lambda s: s.abs().mean()),
            "mean": grouped.mean(),
            "std": grouped.std(),
        }
    ).reset_index()
    per = expected.groupby(keys[:-1])["mean_abs"]
    expected["share"] = expected["mean_abs"] / per.transform("sum")
    expected["rank"] = per.rank(method="min", ascending=False).astype(int)
    return expected


def _read_summary(path):
    if path.suffix == ".json":
        return pd.DataFrame(json.loads(path.read_text()))
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


def _compare(got, expected, by=None):
    keys = ["output", "feature"] if by is None else [by, "output", "feature"]
    got = got.copy()
    got["output"] = got["output"].astype(str)
    if by is not None:
        got[by] = got[by].fillna("(missing)")
    merged = got.merge(expected, on=keys, suffixes=("", "_pandas"), validate="one_to_one")
    assert len(merged) == len(got) == len(expected)
    for column in ("count", "mean_abs", "mean", "std", "share", "rank"):
        np.testing.assert_allclose(merged[column], merged[f"{column}_pandas"], rtol=1e-10)


@pytest.fixture
def batch_sizes(monkeypatch):
    """The size of every batch read from an attribution file."""
    sizes: list[int] = []
    original = attributions_module._file_batches

    def counting(*args, **kwargs):
        for batch in original(*args, **kwargs):
            sizes.append(len(batch))
            yield batch

    monkeypatch.setattr(attributions_module, "_file_batches", counting)
    return sizes


@pytest.mark.parametrize(
    ("layout", "suffix", "id_cols", "data_file", "out_suffix"),
    [
        ("wide", "parquet", ["person"], "fair.parquet", ".csv"),
        ("long", "csv", ["person"], "fair.csv", ".parquet"),
        ("wide", "csv", [], "fair.csv", ".json"),
        ("long", "parquet", [], "fair.parquet", ".csv"),
    ],
)
def test_summary_by_a_data_column_equals_pandas_and_streams(
    fair, tmp_path, batch_sizes, layout, suffix, id_cols, data_file, out_suffix
):
    table = tmp_path / f"attributions.{suffix}"
    _explain(fair, table, layout=layout, id_cols=id_cols)
    out = tmp_path / f"summary{out_suffix}"
    result = run_cli(
        "summarize", table, "--by", "occupation", "--data", fair["folder"] / data_file,
        "--out", out, "--batch-rows", 40,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    # streamed: many small batches, never the whole table at once
    assert max(batch_sizes) <= 40 and len(batch_sizes) > 20
    expected = _pandas_summary(table, fair["data"], by="occupation")
    _compare(_read_summary(out), expected, by="occupation")


def test_summary_without_groups_on_stdout_equals_pandas(fair, tmp_path):
    table = tmp_path / "attributions.parquet"
    _explain(fair, table, id_cols=["person"])
    result = run_cli("summarize", table, "--batch-rows", 64)
    assert result.exit_code == 0, result.stderr
    got = pd.read_csv(pd.io.common.StringIO(result.stdout))
    assert list(got.columns) == [
        "output", "feature", "count", "mean_abs", "mean", "std", "share", "rank",
    ]  # fmt: skip
    _compare(got, _pandas_summary(table, fair["data"]))
    assert got["count"].eq(499).all()  # the skipped row is in no summary
    top = run_cli("summarize", table, "--top", "2", "--out", "-")
    assert pd.read_csv(pd.io.common.StringIO(top.stdout))["rank"].tolist() == [1, 2]


def test_summary_by_a_column_of_the_table(fair, tmp_path):
    table = tmp_path / "attributions.parquet"
    _explain(fair, table, id_cols=["person"], reasons=1)
    result = run_cli("summarize", table, "--by", "reason_1", "--out", "-")
    assert result.exit_code == 0, result.stderr
    got = pd.read_csv(pd.io.common.StringIO(result.stdout))
    frame = read_attributions(table).frame
    expected = frame.groupby("reason_1")["age"].apply(lambda s: s.abs().mean())
    for reason, value in expected.items():
        row = got[(got["reason_1"] == reason) & (got["feature"] == "age")]
        assert row["mean_abs"].item() == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--by", "occupation"], "--by column 'occupation' is not in the attribution table"),
        (["--by", "nope", "--data", "{data}"], "is in neither the attribution table nor --data"),
        (["--by", "occupation", "--data", "{other}"], "is not in --data (in input order)"),
        (["--by", "occupation", "--data", "{noid}"], "lacks the id column 'person'"),
        (["--by", "output"], "already per output and feature"),
        (["--top", "0"], "--top must be at least 1; got 0"),
        (["--out", "{folder}/summary.txt"], "cannot tell the format of --out"),
        (["--out", "{data}"], "already exists; pass --overwrite"),
    ],
)
def test_bad_summaries_are_one_line_and_exit_2(fair, tmp_path, args, message):
    table = tmp_path / "attributions.parquet"
    _explain(fair, table, id_cols=["person"])
    other = fair["data"].iloc[::-1]  # the same ids in another order: not joinable in order
    other.to_parquet(tmp_path / "other.parquet", index=False)
    fair["data"].drop(columns="person").to_parquet(tmp_path / "noid.parquet", index=False)
    names = {
        "data": fair["folder"] / "fair.parquet",
        "other": tmp_path / "other.parquet",
        "noid": tmp_path / "noid.parquet",
        "folder": tmp_path,
    }
    result = run_cli("summarize", table, *[a.format(**names) for a in args])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("xai: error: ")
    assert message in result.stderr


def test_a_file_that_is_not_an_attribution_table_is_refused(fair):
    result = run_cli("summarize", fair["folder"] / "fair.parquet")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "is not an attribution table" in result.stderr


def test_on_a_terminal_the_summary_is_a_table_per_output(fair, tmp_path, monkeypatch):
    table = tmp_path / "attributions.parquet"
    _explain(fair, table, id_cols=["person"])
    monkeypatch.setattr("xaicli.cli.summarize.on_terminal", lambda: True)
    result = run_cli("summarize", table, "--top", "2")
    assert result.exit_code == 0, result.stderr
    assert "attributions.parquet: output prediction (499 rows)" in result.stdout
    assert "mean_abs" in result.stdout and "count,mean_abs" not in result.stdout
    expected = _pandas_summary(table, fair["data"]).sort_values("rank")["feature"].head(2)
    for feature in expected:
        assert feature in result.stdout
