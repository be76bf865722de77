"""xai compare: drift of global importance between two attribution tables, with exit code 3
when it passes a threshold. Checked on hand-computed cases and on the wine data."""

from __future__ import annotations

import json
from math import log2

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression

from tests.conftest import run_cli, run_xai_process
from xaicli import explain
from xaicli.trust.ranking import ndcg, spearman, top_k_overlap


@pytest.fixture(scope="module")
def wine_run(tmp_path_factory):
    """A multiclass wine model explained with linear SHAP: three outputs, 13 features."""
    folder = tmp_path_factory.mktemp("wine")
    X, y = load_wine(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=5000).fit(X, y)
    out = folder / "before.parquet"
    explain(model, X, out=out, method="shap", algorithm="linear", output="decision", n_jobs=1)
    return folder, out


def _hand_table(path, mean_abs: dict[str, float], output: str = "prediction") -> None:
    """A wide attribution CSV (no manifest: read by its column names) whose features have
    the given mean |attribution|, over two rows of opposite signs."""
    rows = []
    for row, sign in enumerate((1.0, -1.0)):
        rows.append(
            {"row": row, "output": output, "base_value": 0.0, "prediction": 0.0}
            | {f: sign * v for f, v in mean_abs.items()}
        )
    pd.DataFrame(rows).to_csv(path, index=False)


def _json(result) -> dict:
    return json.loads(result.stdout)


def test_a_table_against_itself_has_no_drift(wine_run):
    _, before = wine_run
    result = run_cli(
        "compare", before, before, "--fail-below-ndcg", "0.999", "--fail-above", "0", "--out", "-"
    )
    assert result.exit_code == 0, result.stderr
    summary = _json(result)
    assert summary["drift"] is False and summary["crossed"] == []
    assert [o["output"] for o in summary["outputs"]] == ["0", "1", "2"]
    for output in summary["outputs"]:
        assert output["ndcg"] == pytest.approx(1.0, abs=1e-15)
        assert output["spearman"] == 1.0
        assert output["max_share_change"] == 0.0
        assert output["entering_top_k"] == [] and output["leaving_top_k"] == []
        assert len(output["features"]) == 13


def test_ndcg_spearman_and_shares_against_a_hand_computation(tmp_path):
    before, after = tmp_path / "before.csv", tmp_path / "after.csv"
    _hand_table(before, {"a": 3.0, "b": 2.0, "c": 1.0})
    _hand_table(after, {"a": 1.0, "b": 2.0, "c": 3.0})
    result = run_cli("compare", before, after, "--top", "1", "--out", "-")
    assert result.exit_code == 0, result.stderr
    (output,) = _json(result)["outputs"]
    # relevance is BEFORE's mean |attribution|; AFTER ranks c, b, a
    dcg = 1.0 / log2(2) + 2.0 / log2(3) + 3.0 / log2(4)
    ideal = 3.0 / log2(2) + 2.0 / log2(3) + 1.0 / log2(4)
    assert output["ndcg"] == pytest.approx(dcg / ideal, rel=1e-12)
    assert output["ndcg"] == pytest.approx(0.7900, abs=1e-4)
    assert output["spearman"] == pytest.approx(-1.0)
    assert output["entering_top_k"] == ["c"] and output["leaving_top_k"] == ["a"]
    changes = {f["feature"]: f["share_change"] for f in output["features"]}
    assert changes == pytest.approx({"a": -1 / 3, "b": 0.0, "c": 1 / 3})
    # features listed by how far their share moved
    assert [f["feature"] for f in output["features"]][-1] == "b"
    assert output["max_share_change"] == pytest.approx(1 / 3)


def test_ranking_helpers_against_scipy_and_by_hand():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(5)
    a = rng.integers(0, 4, size=(50, 7)).astype(float)  # many ties
    b = rng.integers(0, 4, size=(50, 7)).astype(float)
    expected = [spearmanr(x, y).statistic for x, y in zip(a, b, strict=True)]
    defined = ~np.isnan(expected)
    np.testing.assert_allclose(spearman(a, b)[defined], np.array(expected)[defined], atol=1e-12)
    assert top_k_overlap(np.array([5.0, 4, 3, 2]), np.array([5.0, 1, 4, 3]), 2) == 0.5
    assert ndcg(np.array([3.0, 2.0, 1.0]), np.array([0, 1, 2])) == 1.0
    assert ndcg(np.zeros(3), np.array([2, 1, 0])) == 1.0


def test_a_swapped_ranking_is_flagged_with_exit_code_3(wine_run, tmp_path):
    folder, before = wine_run
    frame = pd.read_parquet(before)
    importance = frame[frame["output"] == "0"].iloc[:, 4:].abs().mean().sort_values()
    least, most = importance.index[0], importance.index[-1]
    swapped = frame.rename(columns={least: most, most: least})[frame.columns]
    after = tmp_path / "after.csv"
    swapped.to_csv(after, index=False)
    csv_out = tmp_path / "drift.csv"
    result = run_cli(
        "compare", before, after, "--fail-below-ndcg", "0.9", "--top", "3", "--out", csv_out
    )
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xai: error: attribution drift: output '0'")
    assert "NDCG" in lines[0]
    table = pd.read_csv(csv_out, dtype={"output": str})  # written before the exit
    row = table[table["output"] == "0"].iloc[0]
    assert row["feature"] in (least, most) and row["ndcg"] < 0.9
    assert set(table.columns) >= {"before_share", "after_share", "share_change", "spearman"}
    # the share threshold alone also flags it; the reversed check passes
    assert run_cli("compare", before, after, "--fail-above", "0.05").exit_code == 3
    assert run_cli("compare", before, after, "--fail-above", "0.99").exit_code == 0


def test_a_folder_is_read_like_the_file_it_was_cut_from(wine_run, tmp_path):
    _, before = wine_run
    frame = pd.read_parquet(before)
    parts = tmp_path / "parts"
    parts.mkdir()
    frame.iloc[:200].to_parquet(parts / "part-0.parquet", index=False)
    frame.iloc[200:].to_parquet(parts / "part-1.parquet", index=False)
    result = run_cli("compare", before, parts, "--out", "-")
    assert result.exit_code == 0, result.stderr
    for output in _json(result)["outputs"]:
        assert output["ndcg"] == pytest.approx(1.0) and output["max_share_change"] < 1e-12


def test_terminal_table_names_the_scores_and_the_features(tmp_path):
    before, after = tmp_path / "before.csv", tmp_path / "after.csv"
    _hand_table(before, {"a": 3.0, "b": 2.0, "c": 1.0})
    _hand_table(after, {"a": 1.0, "b": 2.0, "c": 3.0})
    result = run_cli("compare", before, after, "--top", "1")
    assert result.exit_code == 0
    assert "NDCG 0.7900, Spearman -1.0000" in result.stdout
    assert "entering c, leaving a" in result.stdout


def test_bad_input_is_one_line_and_exit_2(wine_run, tmp_path):
    folder, before = wine_run
    fewer = tmp_path / "fewer.csv"
    pd.read_parquet(before).drop(columns=["alcohol"]).to_csv(fewer, index=False)
    other_classes = tmp_path / "classes.csv"
    frame = pd.read_parquet(before)
    frame.assign(output=frame["output"].replace({"2": "two"})).to_csv(other_classes, index=False)
    not_a_table = tmp_path / "data.csv"
    pd.DataFrame({"a": [1, 2]}).to_csv(not_a_table, index=False)
    cases = [
        ((before, fewer), "'alcohol' only in BEFORE"),
        ((before, other_classes), "do not explain the same outputs"),
        ((before, tmp_path / "missing.parquet"), "not found"),
        ((before, not_a_table), "is not an attribution table"),
        ((before, before, "--top", "0"), "--top must be at least 1"),
        ((before, before, "--fail-below-ndcg", "1.5"), "between 0 and 1"),
        ((before, before, "--out", tmp_path / "drift.txt"), "cannot tell the format"),
        ((before, fewer, "--out", fewer), "would replace"),
    ]
    for args, expected in cases:
        result = run_cli("compare", *args)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2, (args, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("xai: error:"), lines
        assert expected in lines[0], lines[0]
        assert "Traceback" not in result.stderr


def test_exit_code_3_from_a_real_process(tmp_path):
    before, after = tmp_path / "before.csv", tmp_path / "after.csv"
    _hand_table(before, {"a": 3.0, "b": 2.0, "c": 1.0})
    _hand_table(after, {"a": 1.0, "b": 2.0, "c": 3.0})
    done = run_xai_process(
        "compare", before, after, "--fail-below-ndcg", "0.9", "--out", tmp_path / "drift.json"
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.count("\n") == 1 and "NDCG 0.7900 < 0.9" in done.stderr
    summary = json.loads((tmp_path / "drift.json").read_text())
    assert summary["drift"] is True and summary["thresholds"]["min_ndcg"] == 0.9
