"""Reason codes and sentences: `xai reasons` on a table written by hand (every cell checked
by hand: ties, directions, groups, categorical and missing values), and `xai explain
--reasons` on real runs (the same columns, job files, resume, refusals)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import joblib
import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_cli
from xaicli import read_attributions
from xaicli.report.reasons import format_value

ROOT = __import__("pathlib").Path(__file__).parent.parent
PENGUINS = ROOT / "sample_data" / "penguins.parquet"
PENGUIN_MODEL = ROOT / "sample_data" / "models" / "penguins.joblib"

# A wide table as `xai explain` writes it: two rows, one class, features a, b, c, colour.
HAND_TABLE = """\
applicant,output,base_value,prediction,a,b,c,colour
x1,yes,0.5,0.9,0.3,-0.3,0.1,0.0
x2,yes,0.5,0.2,-0.2,0.05,-0.5,0.1
"""
HAND_DATA = pd.DataFrame(
    {
        "applicant": ["x1", "x2"],
        "a": [23.1, 123456.7],
        "b": [np.nan, 2.0],
        "c": [0.1234567, 0.00001234],
        "colour": ["blue", "light green"],
    }
)


@pytest.fixture
def hand(tmp_path):
    table = tmp_path / "hand.csv"
    table.write_text(HAND_TABLE)
    manifest = {"output_kind": "proba", "features": ["a", "b", "c", "colour"]}
    (tmp_path / "hand.csv.manifest.json").write_text(json.dumps(manifest))
    HAND_DATA.to_parquet(tmp_path / "data.parquet", index=False)
    return tmp_path


def _reasons(hand, *args):
    out = hand / "reasons.csv"
    result = run_cli(
        "reasons", hand / "hand.csv", "--data", hand / "data.parquet", "--out", out,
        "--overwrite", *args,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return pd.read_csv(out, dtype=str, keep_default_na=False)


def test_both_directions_rank_by_size_and_ties_keep_the_feature_order(hand):
    got = _reasons(hand, "--top", "4", "--text")
    assert list(got.columns[:4]) == ["applicant", "output", "base_value", "prediction"]
    x1, x2 = got.to_dict("records")
    # a and b tie at |0.3|: a comes first in the table; colour's 0 is never a reason
    assert [x1[f"reason_{k}"] for k in range(1, 5)] == ["a", "b", "c", ""]
    assert [x1[f"reason_{k}_value"] for k in range(1, 5)] == ["23.1", "missing", "0.1235", ""]
    assert [x1[f"reason_{k}_attribution"] for k in range(1, 5)] == ["0.3", "-0.3", "0.1", ""]
    assert x1["summary"] == (
        "Predicted 0.9 for class 'yes' (baseline 0.5), mostly because a = 23.1 (+0.3) and "
        "c = 0.1235 (+0.1); b = missing (-0.3) pulled it down."
    )
    assert [x2[f"reason_{k}"] for k in range(1, 5)] == ["c", "a", "colour", "b"]
    assert [x2[f"reason_{k}_value"] for k in range(1, 5)] == [
        "1.234e-05", "123457", "light green", "2",
    ]  # fmt: skip
    assert x2["summary"] == (
        "Predicted 0.2 for class 'yes' (baseline 0.5), mostly because c = 1.234e-05 (-0.5) "
        "and a = 123457 (-0.2); colour = light green (+0.1) and b = 2 (+0.05) pushed it up."
    )


def test_down_lists_only_what_pulled_the_prediction_down_most_negative_first(hand):
    got = _reasons(hand, "--top", "3", "--reason-direction", "down")
    x1, x2 = got.to_dict("records")
    assert [x1[f"reason_{k}"] for k in (1, 2, 3)] == ["b", "", ""]
    assert [x2[f"reason_{k}"] for k in (1, 2, 3)] == ["c", "a", ""]
    assert x2["reason_1_attribution"] == "-0.5" and x2["reason_2_value"] == "123457"
    up = _reasons(hand, "--top", "2", "--reason-direction", "up").to_dict("records")
    assert [up[0]["reason_1"], up[0]["reason_2"]] == ["a", "c"]
    assert [up[1]["reason_1"], up[1]["reason_2"]] == ["colour", "b"]


def test_groups_sum_their_features_and_carry_code_and_text(hand):
    groups = hand / "groups.toml"
    groups.write_text(
        '[[group]]\nname = "size"\nfeatures = ["c", "a"]\ncode = "R01"\ntext = "Too large"\n'
    )
    got = _reasons(hand, "--top", "3", "--reason-groups", groups, "--text")
    assert list(got.columns[4:9]) == [
        "reason_1", "reason_1_code", "reason_1_text", "reason_1_value", "reason_1_attribution",
    ]  # fmt: skip
    x1, x2 = got.to_dict("records")
    # size = a + c: 0.3 + 0.1 (row 1), -0.2 - 0.5 (row 2): exactly the sums
    assert float(x1["reason_1_attribution"]) == 0.3 + 0.1
    assert float(x2["reason_1_attribution"]) == -0.2 + -0.5
    assert [x1["reason_1"], x1["reason_1_code"], x1["reason_1_text"]] == [
        "size",
        "R01",
        "Too large",
    ]
    assert x1["reason_1_value"] == "a = 23.1, c = 0.1235"
    assert [x1["reason_2"], x1["reason_2_code"], x1["reason_2_text"]] == ["b", "", ""]
    assert x1["reason_3"] == ""  # colour: 0
    assert x2["summary"] == (
        "Predicted 0.2 for class 'yes' (baseline 0.5), mostly because size (a = 123457, "
        "c = 1.234e-05) (-0.7); colour = light green (+0.1) and b = 2 (+0.05) pushed it up."
    )


def test_without_data_the_values_are_empty(hand):
    out = hand / "r.parquet"
    result = run_cli("reasons", hand / "hand.csv", "--top", "1", "--text", "--out", out)
    assert result.exit_code == 0, result.stderr
    got = pd.read_parquet(out)
    assert got["reason_1_value"].isna().all()
    assert got["summary"][0].endswith("mostly because a (+0.3).")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (np.nan, "missing"), (None, "missing"), (pd.NA, "missing"), ("", "missing"),
        (3750.0, "3750"), (0.5, "0.5"), (np.int64(7), "7"), (True, "True"),
        (2.0e-7, "2e-07"), (-0.000123456, "-0.0001235"), ("Dream", "Dream"),
    ],
)  # fmt: skip
def test_values_are_written_for_people(value, text):
    assert format_value(value) == text


def test_a_long_table_gets_the_same_reasons_as_the_wide_one(tmp_path):
    common = ["--model", PENGUIN_MODEL, "--data", PENGUINS, "--id-col", "customer_id", "-q"]
    assert run_cli("explain", *common, "--out", tmp_path / "w.parquet").exit_code == 0
    assert (
        run_cli("explain", *common, "--out", tmp_path / "l.csv", "--layout", "long").exit_code == 0
    )
    reasons = ["--data", PENGUINS, "--top", "3", "--batch-rows", "400"]
    wide = run_cli("reasons", tmp_path / "w.parquet", *reasons, "--out", tmp_path / "rw.csv")
    long = run_cli("reasons", tmp_path / "l.csv", *reasons, "--out", tmp_path / "rl.csv")
    assert wide.exit_code == 0 and long.exit_code == 0, wide.stderr + long.stderr
    rw, rl = pd.read_csv(tmp_path / "rw.csv"), pd.read_csv(tmp_path / "rl.csv")
    columns = [c for c in rw.columns if c.startswith("reason_") and "attribution" not in c]
    assert len(rl) == len(rw) == 333 * 3
    pd.testing.assert_frame_equal(rl[columns], rw[columns])
    np.testing.assert_allclose(rl["reason_1_attribution"], rw["reason_1_attribution"], rtol=1e-12)


@pytest.fixture(scope="module")
def penguin_run(tmp_path_factory):
    """The sample penguins explained with and without --reasons (same seed, same numbers)."""
    folder = tmp_path_factory.mktemp("penguins")
    common = ["--model", PENGUIN_MODEL, "--data", PENGUINS, "--id-col", "customer_id", "-q"]
    plain = run_cli("explain", *common, "--out", folder / "plain.parquet")
    with_reasons = run_cli(
        "explain", *common, "--out", folder / "reasons.csv", "--reasons", "3", "--text"
    )
    assert plain.exit_code == 0 and with_reasons.exit_code == 0, with_reasons.stderr
    return folder


def test_explain_reasons_sit_between_the_extras_and_the_features(penguin_run):
    table = read_attributions(penguin_run / "reasons.csv")
    assert table.format_version == 3
    assert table.features == read_attributions(penguin_run / "plain.parquet").features
    columns = list(table.frame.columns)
    assert columns[:4] == ["customer_id", "output", "base_value", "prediction"]
    assert columns[4:7] == ["reason_1", "reason_1_value", "reason_1_attribution"]
    assert columns[13] == "summary" and columns[14:] == list(table.features)
    assert table.reason_columns == tuple(columns[4:14])
    # each row's first reason: its feature with the largest |attribution|, its raw value
    frame = table.frame
    data = pd.read_parquet(PENGUINS).set_index("customer_id")
    attributions = frame[list(table.features)].to_numpy()
    top = np.array(table.features)[np.abs(attributions).argmax(axis=1)]
    assert (frame["reason_1"].to_numpy() == top).all()
    for row in frame[frame["reason_2"].isin(["island", "sex"])].head(5).itertuples():
        assert row.reason_2_value == data.loc[row.customer_id, row.reason_2]  # category as text


def test_explain_reasons_equal_xai_reasons_on_the_same_table(penguin_run):
    out = penguin_run / "afterwards.csv"
    result = run_cli(
        "reasons", penguin_run / "plain.parquet", "--data", PENGUINS, "--top", "3", "--text",
        "--out", out, "--overwrite",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    afterwards = pd.read_csv(out)
    during = pd.read_csv(penguin_run / "reasons.csv")
    pd.testing.assert_frame_equal(afterwards, during[afterwards.columns.tolist()])


def test_explain_reads_missing_values_from_the_data_being_explained(tmp_path):
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 3)), columns=["p", "q", "r"])
    y = 3 * X["p"] + X["q"]
    X.loc[::7, "p"] = np.nan  # the model takes NaN: explained, and shown as missing
    joblib.dump(HistGradientBoostingRegressor(max_iter=30).fit(X, y), tmp_path / "m.joblib")
    X.iloc[:40].to_parquet(tmp_path / "d.parquet", index=False)
    result = run_cli(
        "explain", "--model", tmp_path / "m.joblib", "--data", tmp_path / "d.parquet",
        "--out", tmp_path / "o.parquet", "--reasons", "3", "--text", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    frame = pd.read_parquet(tmp_path / "o.parquet")
    p_reasons = [frame[f"reason_{k}"] == "p" for k in (1, 2, 3)]
    for k, is_p in enumerate(p_reasons, start=1):
        missing = X.iloc[:40]["p"].isna().to_numpy() & is_p.to_numpy()
        assert (frame.loc[missing, f"reason_{k}_value"] == "missing").all()
        assert frame.loc[missing, "summary"].str.contains("p = missing").all()
    assert any((X.iloc[:40]["p"].isna().to_numpy() & is_p.to_numpy()).any() for is_p in p_reasons)


def test_explain_groups_and_direction_down(tmp_path):
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(200, 4)), columns=["w", "x", "y", "z"])
    joblib.dump(LinearRegression().fit(X, X @ [1.0, -2.0, 0.5, 3.0]), tmp_path / "m.joblib")
    X.to_csv(tmp_path / "d.csv", index=False)
    groups = tmp_path / "g.toml"
    groups.write_text('[[group]]\nname = "wy"\nfeatures = ["w", "y"]\n')
    result = run_cli(
        "explain", "--model", tmp_path / "m.joblib", "--data", tmp_path / "d.csv",
        "--out", tmp_path / "o.parquet", "--reasons", "2", "--reason-direction", "down",
        "--reason-groups", groups, "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    frame = pd.read_parquet(tmp_path / "o.parquet")
    units = pd.DataFrame({"wy": frame["w"] + frame["y"], "x": frame["x"], "z": frame["z"]})
    for row, got in zip(units.itertuples(index=False), frame.itertuples(), strict=True):
        negative = sorted(
            [(v, name) for name, v in row._asdict().items() if v < 0], key=lambda t: t[0]
        )
        expected = [name for _, name in negative[:2]] + [None] * (2 - len(negative[:2]))
        assert [None if pd.isna(r) else r for r in (got.reason_1, got.reason_2)] == expected
        if not pd.isna(got.reason_1):
            assert got.reason_1_attribution == pytest.approx(negative[0][0], rel=1e-15)
            assert got.reason_1_attribution < 0
    wy = frame["reason_1"] == "wy"
    assert wy.any()
    shown = frame.loc[wy, "reason_1_value"].str.match(r"^w = -?[0-9.e+-]+, y = -?[0-9.e+-]+$")
    assert shown.all()


@pytest.mark.parametrize("reasons", [[], ["--reasons", "1"]])
def test_a_run_with_every_row_rejected_writes_an_empty_table_with_its_columns(tmp_path, reasons):
    # every row rejected used to fail (exit 1) reshaping the empty chunk's results
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame({"u": [1.0, 2.0, 3.0], "v": [0.0, 1.0, 0.0]})
    joblib.dump(LinearRegression().fit(X, [1.0, 2.0, 4.0]), tmp_path / "m.joblib")
    X.assign(u=np.nan).to_parquet(tmp_path / "d.parquet", index=False)
    X.to_parquet(tmp_path / "bg.parquet", index=False)
    result = run_cli(
        "explain", "--model", tmp_path / "m.joblib", "--data", tmp_path / "d.parquet",
        "--background", tmp_path / "bg.parquet", "--out", tmp_path / "o.parquet",
        "--on-invalid", "skip", "-q", *reasons,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    frame = pd.read_parquet(tmp_path / "o.parquet")
    assert len(frame) == 0
    added = ["reason_1", "reason_1_value", "reason_1_attribution"] if reasons else []
    assert list(frame.columns) == ["row", "output", "base_value", "prediction", *added, "u", "v"]


def test_a_job_file_takes_the_reason_options(tmp_path):
    groups = tmp_path / "groups.toml"
    groups.write_text('[[group]]\nname = "bill"\nfeatures = ["bill_length_mm", "bill_depth_mm"]\n')
    job = tmp_path / "job.toml"
    job.write_text(
        f'[[explain]]\nmodel = "{PENGUIN_MODEL}"\ndata = "{PENGUINS}"\nout = "out.parquet"\n'
        'reasons = 2\nreason_direction = "up"\nreason_groups = "groups.toml"\n'
        "reason_text = true\n"
    )
    result = run_cli("run", job, "-q")
    assert result.exit_code == 0, result.stderr
    frame = pd.read_parquet(tmp_path / "out.parquet")
    assert {"reason_1", "reason_2", "summary"} <= set(frame.columns)
    assert (frame["reason_1_attribution"].dropna() > 0).all()
    assert "bill" in set(frame["reason_1"])
    again = run_cli("run", job)  # resumable: the finished output is this very run's
    assert again.exit_code == 0 and "already complete" in again.stderr
    # other groups make other reasons: the output is no longer this run's to skip
    groups.write_text('[[group]]\nname = "bill"\nfeatures = ["bill_length_mm"]\n')
    changed = run_cli("run", job)
    assert changed.exit_code == 2 and "exists from another run" in changed.stderr


def test_killed_run_with_reasons_resumes_to_the_uninterrupted_table(tmp_path, regression_case):
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(64 * 16, 6)), columns=[f"x{i}" for i in range(6)])
    frame.insert(0, "key", [f"r{i}" for i in range(len(frame))])
    frame.to_parquet(tmp_path / "data.parquet", index=False)
    args = [
        "explain", "--model", str(regression_case["model_path"]), "--data",
        str(tmp_path / "data.parquet"), "--id-col", "key", "--chunk-size", "64",
        "--algorithm", "permutation", "--n-samples", "300", "--background-size", "30",
        "--reasons", "2", "--text",
    ]  # fmt: skip
    reference = tmp_path / "reference.parquet"
    assert run_cli(*args, "--out", reference, "--n-jobs", "1").exit_code == 0
    out, work = tmp_path / "out.parquet", tmp_path / ".out.parquet.xai-work"
    proc = subprocess.Popen(
        [sys.executable, "-m", "xaicli", *args, "--out", str(out), "--resume", "--n-jobs", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if work.exists() and len(list(work.glob("chunk-*.parquet"))) >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert work.exists() and not out.exists()
    result = run_cli(*args, "--out", out, "--resume", "--n-jobs", "2")
    assert result.exit_code == 0, result.stderr
    pd.testing.assert_frame_equal(
        pd.read_parquet(out), pd.read_parquet(reference), check_exact=True
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reasons", "0"], "--reasons must be at least 1; got 0"),
        (["--reasons", "2", "--layout", "long"], "--reasons adds columns to the wide layout"),
        (["--text"], "--text needs --reasons K"),
        (["--reasons", "2", "--reason-direction", "sideways"], "--reason-direction must be one of"),
        (["--reasons", "2", "--reason-groups", "{bad_toml}"], "is not a readable TOML file"),
        (["--reasons", "2", "--reason-groups", "{unknown}"], "names 'wingspan', which is not a"),
        (["--reasons", "2", "--reason-groups", "{twice}"], "is in reason groups 'a' and 'b'"),
        (["--reasons", "2", "--reason-groups", "{no_name}"], "name must be a non-empty string"),
        (["--reasons", "2", "--reason-groups", "{missing}"], "--reason-groups file not found"),
    ],
)
def test_bad_reason_options_of_explain_are_one_line_and_exit_2(tmp_path, args, message):
    files = {
        "bad_toml": "[[group]\n",
        "unknown": '[[group]]\nname = "w"\nfeatures = ["wingspan"]\n',
        "twice": '[[group]]\nname = "a"\nfeatures = ["sex"]\n'
        '[[group]]\nname = "b"\nfeatures = ["sex", "island"]\n',
        "no_name": '[[group]]\nfeatures = ["sex"]\n',
    }
    for name, text in files.items():
        (tmp_path / f"{name}.toml").write_text(text)
    names = {name: tmp_path / f"{name}.toml" for name in [*files, "missing"]}
    result = run_cli(
        "explain", "--model", PENGUIN_MODEL, "--data", PENGUINS, "--out", tmp_path / "o.parquet",
        *[a.format(**names) for a in args],
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("xai: error: ")
    assert message in result.stderr
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--top", "0"], "--top must be at least 1; got 0"),
        (["--reason-direction", "sideways"], "--reason-direction must be one of both, up, down"),
        (["--data", "{other}"], "is not in --data (in input order)"),
        (["--out", "{folder}/r.txt"], "cannot tell the format of --out"),
        (["--out", "{folder}/hand.csv"], "is the attribution file"),
    ],
)
def test_bad_reasons_are_one_line_and_exit_2(hand, args, message):
    HAND_DATA.iloc[::-1].to_parquet(hand / "other.parquet", index=False)
    names = {"other": hand / "other.parquet", "folder": hand}
    result = run_cli("reasons", hand / "hand.csv", *[a.format(**names) for a in args])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("xai: error: ")
    assert message in result.stderr
