"""Interventional Shapley interaction values of tree ensembles (``--interactions``) against
brute-force enumeration of the Shapley interaction index over hybrid rows, evaluated with
the model's own predict; the table from the command line; its refusals."""

from __future__ import annotations

import itertools
import json
from math import factorial

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from tests.test_shap_tree import _fit_case, _model_output, _repeats_feature_on_a_path
from tests.test_tree_categorical import (
    _categorical_frame,
    _mixed_rows,
    _random_categorical_ensemble,
)
from xaicli.errors import DataError
from xaicli.io.attributions import open_attributions, read_attributions
from xaicli.methods.shap_tree import interventional_tree_shap
from xaicli.methods.shap_tree_interactions import (
    interventional_tree_interactions,
    prepare_interactions,
)
from xaicli.models.tree_inputs import tree_inputs, tree_rows
from xaicli.models.trees import extract_tree_ensemble


def _sii_matrix(value, n_players: int) -> np.ndarray:
    """shap's interaction matrix (n_outputs, P, P) of the game ``value(mask) -> (n_outputs,)``
    by the definition: SII_ij = sum_S |S|!(n-|S|-2)!/(n-1)! [v(S+ij) - v(S+i) - v(S+j) + v(S)]
    halved off the diagonal; the diagonal phi_i - sum_{j != i} of the row, with phi_i the
    Shapley value, also by enumeration."""
    games = {
        bits: np.asarray(value(np.array(bits, dtype=bool)), dtype=float)
        for bits in itertools.product([False, True], repeat=n_players)
    }

    def v(members: set[int]) -> np.ndarray:
        return games[tuple(p in members for p in range(n_players))]

    n = n_players
    k = next(iter(games.values())).shape[0]
    out = np.zeros((k, n, n))
    phi = np.zeros((k, n))
    for i in range(n):
        others = [p for p in range(n) if p != i]
        for size in range(n):
            for subset in itertools.combinations(others, size):
                s = set(subset)
                weight = factorial(size) * factorial(n - size - 1) / factorial(n)
                phi[:, i] += weight * (v(s | {i}) - v(s))
        for j in range(i + 1, n):
            rest = [p for p in range(n) if p not in (i, j)]
            for size in range(n - 1):
                for subset in itertools.combinations(rest, size):
                    s = set(subset)
                    weight = factorial(size) * factorial(n - size - 2) / factorial(n - 1)
                    delta = v(s | {i, j}) - v(s | {i}) - v(s | {j}) + v(s)
                    out[:, i, j] += weight * delta / 2
            out[:, j, i] = out[:, i, j]
    for i in range(n):
        out[:, i, i] = phi[:, i] - out[:, i, :].sum(axis=1)
    return out


def _array_game(predict, x, background, weights=None, groups=None):
    """v(S) = sum_b w_b f(x_S, z_b,~S) over numpy rows; ``groups`` maps columns to players."""
    groups = np.arange(x.shape[0]) if groups is None else np.asarray(groups)
    w = (
        np.full(len(background), 1 / len(background))
        if weights is None
        else weights / weights.sum()
    )

    def value(mask):
        hybrid = np.where(mask[groups][None, :], x[None, :], background)
        return w @ np.asarray(predict(hybrid), dtype=float).reshape(len(background), -1)

    return value


def _close(actual, expected, rel=1e-9):
    scale = max(float(np.abs(expected).max()), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rel * scale)


ENUMERATION_CASES = ["rf_nan", "gbr", "gbc_3class", "hgbc_3class_nan", "rf_3class_proba"]


@pytest.mark.parametrize("engine", ["tables", "pairs"])
@pytest.mark.parametrize("name", ENUMERATION_CASES)
def test_interactions_match_enumeration(name, engine):
    model, output, X = _fit_case(name)
    ensemble = extract_tree_ensemble(model, output)
    rows, background = X[:3], X[100:110]
    result = interventional_tree_interactions(ensemble, rows, background, engine=engine)
    for i, x in enumerate(rows):
        game = _array_game(lambda H: _model_output(model, output, H), x, background)
        _close(result.values[i], _sii_matrix(game, X.shape[1]))


def test_the_cases_repeat_features_on_a_path_and_hold_missing_values():
    model, output, X = _fit_case("rf_nan")
    assert _repeats_feature_on_a_path(extract_tree_ensemble(model, output))
    assert np.isnan(X[:3]).any() and np.isnan(X[100:110]).any()


def test_rows_sum_to_the_attributions_and_the_matrix_is_symmetric():
    model, output, X = _fit_case("gbc_3class")
    ensemble = extract_tree_ensemble(model, output)
    rows, background = X[:20], X[100:160]
    result = interventional_tree_interactions(ensemble, rows, background)
    shap = interventional_tree_shap(ensemble, rows, background)
    np.testing.assert_allclose(result.values.sum(axis=3), shap.values, atol=1e-12)
    np.testing.assert_allclose(result.values, result.values.transpose(0, 1, 3, 2), atol=0)
    np.testing.assert_allclose(result.base_values, shap.base_values, atol=0)
    np.testing.assert_allclose(result.predictions, _model_output(model, output, rows), atol=1e-10)


def test_weighted_background_matches_the_weighted_game():
    model, output, X = _fit_case("rf_nan")
    ensemble = extract_tree_ensemble(model, output)
    rows, background = X[:3], X[100:110]
    weights = np.array([0.0, 1, 2, 3, 0.5, 1, 1, 4, 2, 1])
    for engine in ("tables", "pairs"):
        result = interventional_tree_interactions(
            ensemble, rows, background, weights=weights, engine=engine
        )
        for i, x in enumerate(rows):
            game = _array_game(lambda H: _model_output(model, output, H), x, background, weights)
            _close(result.values[i], _sii_matrix(game, X.shape[1]))


def test_players_group_columns_as_one():
    model, output, X = _fit_case("gbr")
    ensemble = extract_tree_ensemble(model, output)
    groups = np.array([0, 1, 0, 2, 1, 2])
    rows, background = X[:3], X[100:110]
    result = interventional_tree_interactions(ensemble, rows, background, groups=groups)
    assert result.values.shape == (3, 1, 3, 3)
    for i, x in enumerate(rows):
        game = _array_game(lambda H: _model_output(model, output, H), x, background, None, groups)
        _close(result.values[i], _sii_matrix(game, 3))


def test_categorical_and_zero_as_missing_splits_match_enumeration():
    rng = np.random.default_rng(7)
    ensemble = _random_categorical_ensemble(rng)
    rows, background = _mixed_rows(rng, 4), _mixed_rows(rng, 12)
    for engine in ("tables", "pairs"):
        result = interventional_tree_interactions(ensemble, rows, background, engine=engine)
        for i, x in enumerate(rows):
            game = _array_game(ensemble.predict, x, background)
            _close(result.values[i], _sii_matrix(game, 4), rel=1e-12)


def test_hist_gradient_boosting_categorical_matches_enumeration_over_input_columns():
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(5)
    frame = _categorical_frame(rng, 500)
    target = frame["n3"] * (frame["colour"] == "blue") + frame["size"].isin(["S", "L"])
    model = HistGradientBoostingRegressor(max_iter=15, categorical_features="from_dtype")
    model.fit(frame, target)
    features = tuple(frame.columns)
    unseen = _categorical_frame(np.random.default_rng(6), 12)
    rows, background = unseen.iloc[:2], unseen.iloc[2:]
    inputs = tree_inputs(model, "predict", background, features)
    assert (inputs.ensemble.split_rule >= 0).any()
    result = interventional_tree_interactions(
        inputs.ensemble, tree_rows(model, rows), inputs.background, groups=inputs.groups
    )

    for i in range(len(rows)):

        def value(mask, x=rows.iloc[i]):
            hybrid = background.copy()
            for column, taken in zip(features, mask, strict=True):
                if taken:
                    hybrid[column] = pd.Series([x[column]] * len(hybrid), index=hybrid.index)
                    hybrid[column] = hybrid[column].astype(frame[column].dtype)
            return [model.predict(hybrid).mean()]

        _close(result.values[i], _sii_matrix(value, len(features)))


def test_a_leaf_too_wide_for_a_table_is_walked_pair_by_pair():
    model, output, X = _fit_case("rf_nan")  # unlimited depth: paths of many players
    ensemble = extract_tree_ensemble(model, output)
    rows, background = X[:4], X[100:130]
    capped = prepare_interactions(ensemble, background, n_rows=4, max_table_mb=0)
    assert capped.engine_counts()["tables"] == 0
    tables = prepare_interactions(ensemble, background, engine="tables")
    assert tables.engine_counts()["tables"] > 0
    a = interventional_tree_interactions(ensemble, rows, background, tables=capped)
    b = interventional_tree_interactions(ensemble, rows, background, tables=tables)
    _close(a.values, b.values, rel=1e-12)


# -- from the command line ----------------------------------------------------------------

FEATURES = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor
    from sklearn.neighbors import KNeighborsRegressor

    folder = tmp_path_factory.mktemp("interactions")
    rng = np.random.default_rng(11)
    frame = pd.DataFrame(rng.normal(size=(300, 4)), columns=FEATURES)
    y = frame.a * frame.b + np.sin(frame.c) + 0.1 * frame.d
    joblib.dump(
        GradientBoostingRegressor(n_estimators=15, max_depth=3, random_state=0).fit(frame, y),
        folder / "gbr.joblib",
    )
    joblib.dump(
        GradientBoostingClassifier(n_estimators=10, random_state=0).fit(frame, y > 0),
        folder / "gbc.joblib",
    )
    joblib.dump(KNeighborsRegressor().fit(frame, y), folder / "knn.joblib")
    frame.insert(0, "key", [f"k{i:03d}" for i in range(len(frame))])
    frame.to_parquet(folder / "data.parquet")
    return folder


def _explain(folder, out, *args, model="gbr.joblib"):
    return run_cli(
        "explain", "--model", folder / model, "--data", folder / "data.parquet",
        "--id-col", "key", "--out", out, "--background-size", "40", *args,
    )  # fmt: skip


def test_cli_table_shape_and_rows_summing_to_the_attributions(case, tmp_path):
    inter, attr = tmp_path / "inter.parquet", tmp_path / "attr.parquet"
    result = _explain(case, inter, "--interactions", "--n-jobs", "1")
    assert result.exit_code == 0, result.stderr
    assert _explain(case, attr, "--n-jobs", "1").exit_code == 0
    table = pd.read_parquet(inter)
    assert list(table.columns) == ["key", "output", "feature_i", "feature_j", "interaction"]
    assert len(table) == 300 * 16
    first = table.iloc[:16]
    assert (first["key"] == "k000").all()
    assert list(first["feature_i"]) == [f for f in FEATURES for _ in FEATURES]
    assert list(first["feature_j"]) == FEATURES * 4
    sums = table.groupby(["key", "feature_i"], sort=False)["interaction"].sum().unstack()
    wide = pd.read_parquet(attr).set_index("key")
    np.testing.assert_allclose(sums.loc[wide.index, FEATURES], wide[FEATURES], atol=1e-12)
    matrix = table["interaction"].to_numpy().reshape(300, 4, 4)
    np.testing.assert_allclose(matrix, matrix.transpose(0, 2, 1), atol=0)
    manifest = json.loads(inter.with_name(inter.name + ".manifest.json").read_text())
    assert manifest["table"] == "interactions"
    assert manifest["interaction_features"] == FEATURES
    assert manifest["format_version"] == 3
    read = read_attributions(inter)
    assert read.layout == "interactions" and read.features == tuple(FEATURES)
    assert read.outputs == ("prediction",) and read.id_columns == ("key",)
    with pytest.raises(DataError, match="interaction table"):
        open_attributions(inter)


def test_cli_top_features_by_mean_attribution_over_the_background(case, tmp_path):
    out, full = tmp_path / "top.csv", tmp_path / "full.parquet"
    result = _explain(case, out, "--interactions", "--interactions-top", "2", "--n-jobs", "1")
    assert result.exit_code == 0, result.stderr
    assert _explain(case, full, "--interactions", "--n-jobs", "1").exit_code == 0
    table = pd.read_csv(out)
    # the background is the seeded sample of the data: its attributions, independently
    background = pd.read_parquet(case / "data.parquet")
    manifest = json.loads(out.with_name(out.name + ".manifest.json").read_text())
    model = joblib.load(case / "gbr.joblib")
    ensemble = extract_tree_ensemble(model, "predict")
    sample = _background_sample(background, 40)
    phi = interventional_tree_shap(ensemble, sample, sample).values[:, 0, :]
    expected = [FEATURES[j] for j in sorted(np.argsort(-np.abs(phi).mean(axis=0))[:2])]
    assert manifest["interaction_features"] == expected
    assert sorted(set(table["feature_i"])) == sorted(expected)
    assert len(table) == 300 * 4
    # the same pairs as in the full table
    whole = pd.read_parquet(full)
    kept = whole[whole["feature_i"].isin(expected) & whole["feature_j"].isin(expected)]
    np.testing.assert_allclose(table["interaction"], kept["interaction"], atol=1e-15)


def _background_sample(frame: pd.DataFrame, size: int) -> np.ndarray:
    from xaicli.runner.background import BACKGROUND_STREAM

    rng = np.random.default_rng([0, BACKGROUND_STREAM, 1])
    positions = np.sort(rng.choice(len(frame), size=size, replace=False))
    return frame[FEATURES].to_numpy()[positions]


def test_cli_same_table_for_any_jobs_and_chunk_size_and_when_resumed(case, tmp_path, monkeypatch):
    one, many = tmp_path / "one.parquet", tmp_path / "many.parquet"
    assert _explain(case, one, "--interactions", "--n-jobs", "1").exit_code == 0
    result = _explain(case, many, "--interactions", "--n-jobs", "2", "--chunk-size", "64")
    assert result.exit_code == 0, result.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(one), pd.read_parquet(many))

    from xaicli.io.writer import TableWriter

    resumed = tmp_path / "resumed.parquet"
    write = TableWriter.write
    calls = []

    def interrupted(self, table):  # the third chunk never arrives
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        write(self, table)

    monkeypatch.setattr(TableWriter, "write", interrupted)
    first = _explain(case, resumed, "--interactions", "--n-jobs", "1", "--chunk-size", "64")
    assert first.exit_code == 130 and not resumed.exists()
    monkeypatch.setattr(TableWriter, "write", write)
    again = _explain(
        case, resumed, "--interactions", "--n-jobs", "1", "--chunk-size", "64", "--resume"
    )
    assert again.exit_code == 0, again.stderr
    assert "resuming: 3 chunk(s)" in again.stderr  # committed before written
    pd.testing.assert_frame_equal(pd.read_parquet(one), pd.read_parquet(resumed))


def test_cli_decision_margin_of_a_boosted_classifier(case, tmp_path):
    out = tmp_path / "margin.parquet"
    result = _explain(
        case, out, "--interactions", "--output", "decision", "--n-jobs", "1", model="gbc.joblib"
    )
    assert result.exit_code == 0, result.stderr
    assert len(pd.read_parquet(out)) == 300 * 16


@pytest.mark.parametrize(
    ("model", "args", "message"),
    [
        ("gbc.joblib", ["--output", "proba"], "needs exact TreeSHAP"),
        ("knn.joblib", [], "needs exact TreeSHAP"),
        ("gbr.joblib", ["--method", "lime"], "this run uses --method lime"),
        ("gbr.joblib", ["--algorithm", "tree-path"], "this run uses --algorithm tree-path"),
        ("gbr.joblib", ["--layout", "long"], "drop --layout long"),
        ("gbr.joblib", ["--reasons", "2"], "--reasons adds to the attribution table"),
        ("gbr.joblib", ["--interactions-top", "0"], "at least 1"),
    ],
)
def test_cli_refuses_what_has_no_interaction_table(case, tmp_path, model, args, message):
    out = tmp_path / "refused.parquet"
    result = _explain(case, out, "--interactions", *args, model=model)
    assert result.exit_code == 2
    assert result.stderr.startswith("xai: error:") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_top_needs_interactions_and_commands_refuse_the_table(case, tmp_path):
    result = _explain(case, tmp_path / "x.parquet", "--interactions-top", "2")
    assert result.exit_code == 2 and "needs --interactions" in result.stderr
    out = tmp_path / "inter.parquet"
    assert _explain(case, out, "--interactions", "--n-jobs", "1").exit_code == 0
    summary = run_cli("summarize", out)
    assert summary.exit_code == 2
    assert "interaction table" in summary.stderr
    assert len(summary.stderr.strip().splitlines()) == 1


def test_job_file_takes_the_interaction_options(case, tmp_path):
    inter = tmp_path / "inter.parquet"
    assert _explain(case, inter, "--interactions", "--interactions-top", "3").exit_code == 0
    job = tmp_path / "job.toml"
    job.write_text(
        f'[[explain]]\nmodel = "{case / "gbr.joblib"}"\ndata = "{case / "data.parquet"}"\n'
        f'out = "{tmp_path / "job.parquet"}"\nid_cols = ["key"]\nbackground_size = 40\n'
        "interactions = true\ninteractions_top = 3\nn_jobs = 1\n"
    )
    result = run_cli("run", job)
    assert result.exit_code == 0, result.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "job.parquet"), pd.read_parquet(inter))
    job.write_text(job.read_text().replace("interactions = true\n", ""))
    refused = run_cli("run", job)
    assert refused.exit_code == 2 and "--interactions-top K needs" in refused.stderr


@pytest.mark.parametrize("engine", ["tables", "pairs"])
def test_kept_players_are_the_full_matrix_restricted(engine):
    model, output, X = _fit_case("gbc_3class")
    ensemble = extract_tree_ensemble(model, output)
    rows, background = X[:5], X[100:130]
    full = interventional_tree_interactions(ensemble, rows, background, engine=engine)
    keep = np.array([4, 1, 7])  # 7: a player no tree reads
    part = interventional_tree_interactions(ensemble, rows, background, engine=engine, keep=keep)
    padded = np.pad(full.values, ((0, 0), (0, 0), (0, 2), (0, 2)))
    np.testing.assert_array_equal(part.values, padded[:, :, keep][:, :, :, keep])
