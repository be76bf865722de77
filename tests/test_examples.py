"""`xai examples`: neighbours equal scikit-learn's NearestNeighbors, chunk by chunk."""

from __future__ import annotations

import io

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler


@pytest.fixture(scope="module")
def wine(tmp_path_factory):
    """40 query rows and 138 reference rows of scikit-learn's wine data, with ids."""
    folder = tmp_path_factory.mktemp("examples")
    bunch = load_wine(as_frame=True)
    frame = bunch.data.copy()
    frame.insert(0, "wine_id", [f"w{i:03d}" for i in range(len(frame))])
    frame["cultivar"] = bunch.target.astype(str)
    order = np.random.default_rng(5).permutation(len(frame))
    data, reference = frame.iloc[order[:40]], frame.iloc[order[40:]]
    data.drop(columns="cultivar").to_parquet(folder / "data.parquet", index=False)
    reference.to_parquet(folder / "reference.parquet", index=False)
    reference.to_csv(folder / "reference.csv", index=False)
    return {"folder": folder, "data": data, "reference": reference, "features": list(bunch.data)}


def _table(result) -> pd.DataFrame:
    assert result.exit_code == 0, result.stderr
    return pd.read_csv(io.StringIO(result.stdout), dtype={"wine_id": str})


@pytest.mark.parametrize("reference_file", ["reference.parquet", "reference.csv"])
def test_numeric_neighbours_equal_nearest_neighbors_across_chunks(wine, reference_file):
    """A reference of 138 rows in chunks of 16: ids, ranks and distances equal scikit-learn's
    on the columns standardized with the reference's mean and standard deviation."""
    folder, k = wine["folder"], 4
    table = _table(
        run_cli(
            "examples",
            "--data",
            folder / "data.parquet",
            "--reference",
            folder / reference_file,
            "--k",
            k,
            "--id-col",
            "wine_id",
            "--chunk-size",
            16,
            "--out",
            "-",
        )  # fmt: skip
    )
    scaler = StandardScaler().fit(wine["reference"][wine["features"]])
    nn = NearestNeighbors(n_neighbors=k).fit(scaler.transform(wine["reference"][wine["features"]]))
    distances, positions = nn.kneighbors(scaler.transform(wine["data"][wine["features"]]))
    assert list(table.columns) == ["wine_id", "rank", "reference_wine_id", "distance"]
    assert list(table.wine_id) == list(np.repeat(wine["data"].wine_id.to_numpy(), k))
    assert list(table["rank"]) == [1, 2, 3, 4] * len(wine["data"])
    expected_ids = wine["reference"].wine_id.to_numpy()[positions.reshape(-1)]
    assert list(table.reference_wine_id) == list(expected_ids)
    np.testing.assert_allclose(table.distance, distances.reshape(-1), rtol=1e-10, atol=1e-12)


def test_categorical_mismatch_costs_one_in_the_squared_sum(tmp_path):
    """Worked by hand: the reference's x has mean 2 and standard deviation 1 (1, 3, 1, 3),
    so a difference of 1 in x costs 1; a colour mismatch adds 1 to the squared distance, and
    a missing colour is a colour of its own."""
    reference = pd.DataFrame({"x": [1.0, 3.0, 1.0, 3.0], "colour": ["red", "red", "blue", None]})
    reference.to_parquet(tmp_path / "ref.parquet", index=False)
    rows = pd.DataFrame({"x": [2.0, 1.0], "colour": ["red", None]})
    rows.to_parquet(tmp_path / "rows.parquet", index=False)
    args = ["--data", tmp_path / "rows.parquet", "--reference", tmp_path / "ref.parquet"]
    table = _table(run_cli("examples", *args, "--k", 4, "--out", "-", "--chunk-size", 3))
    assert list(table.columns) == ["row", "rank", "reference_row", "distance"]
    first = table[table.row == 0]
    # (2, red) to (1, red): 1 + 0; (3, red): 1 + 0; (1, blue): 1 + 1; (3, missing): 1 + 1
    assert list(first.reference_row) == [0, 1, 2, 3]  # ties in reference order
    np.testing.assert_allclose(first.distance, [1.0, 1.0, np.sqrt(2), np.sqrt(2)])
    second = table[table.row == 1]
    # (1, missing) to (1, red): 0 + 1; (3, red): 4 + 1; (1, blue): 0 + 1; (3, missing): 4 + 0
    assert list(second.reference_row) == [0, 2, 3, 1]
    np.testing.assert_allclose(second.distance, [1.0, 1.0, 2.0, np.sqrt(5)])


def test_ties_and_chunk_sizes_give_the_same_table(tmp_path):
    rng = np.random.default_rng(0)
    base = pd.DataFrame(rng.integers(0, 3, size=(30, 2)).astype(float), columns=["a", "b"])
    base.to_parquet(tmp_path / "ref.parquet", index=False)  # many exact ties
    base.iloc[:7].to_parquet(tmp_path / "rows.parquet", index=False)
    outputs = [
        run_cli(
            "examples", "--data", tmp_path / "rows.parquet", "--reference",
            tmp_path / "ref.parquet", "--k", 5, "--out", "-", "--chunk-size", size,
        ).stdout
        for size in (1, 4, 7, 1000)
    ]  # fmt: skip
    assert all(out == outputs[0] for out in outputs)


def test_model_predictions_and_target_of_the_reference(wine, tmp_path):
    folder = wine["folder"]
    features = wine["features"]
    model = LogisticRegression(max_iter=5000).fit(
        wine["reference"][features], wine["reference"].cultivar
    )
    joblib.dump(model, tmp_path / "model.joblib")
    table = _table(
        run_cli(
            "examples",
            "--data",
            folder / "data.parquet",
            "--reference",
            folder / "reference.parquet",
            "--k",
            2,
            "--id-col",
            "wine_id",
            "--model",
            tmp_path / "model.joblib",
            "--target",
            "cultivar",
            "--out",
            "-",
        )  # fmt: skip
    )
    assert list(table.columns)[:5] == [
        "wine_id",
        "rank",
        "reference_wine_id",
        "distance",
        "reference_cultivar",
    ]
    reference = wine["reference"].set_index("wine_id")
    chosen = reference.loc[table.reference_wine_id]
    assert list(table.reference_cultivar.astype(str)) == list(chosen.cultivar)
    proba = model.predict_proba(chosen[features])
    for j, label in enumerate(model.classes_):
        np.testing.assert_allclose(table[f"reference_prediction_{label}"], proba[:, j], rtol=1e-12)


def test_attribution_space_equals_nearest_neighbors_on_attribution_vectors(wine, tmp_path):
    folder = wine["folder"]
    features = wine["features"]
    model = LogisticRegression(max_iter=5000).fit(
        wine["reference"][features], wine["reference"].cultivar
    )
    joblib.dump(model, tmp_path / "model.joblib")
    for name in ("data", "reference"):
        explained = run_cli(
            "explain", "--model", tmp_path / "model.joblib", "--data", folder / f"{name}.parquet",
            "--features", ",".join(features), "--id-col", "wine_id", "--n-jobs", 1,
            "--out", tmp_path / f"{name}.shap.parquet", "--quiet",
        )  # fmt: skip
        assert explained.exit_code == 0, explained.stderr
    table = _table(
        run_cli(
            "examples",
            "--data",
            tmp_path / "data.shap.parquet",
            "--reference",
            tmp_path / "reference.shap.parquet",
            "--k",
            3,
            "--space",
            "attributions",
            "--chunk-size",
            10,
            "--out",
            "-",
        )  # fmt: skip
    )

    def vectors(path):
        frame = pd.read_parquet(path)
        wide = frame.pivot(index="wine_id", columns="output", values=features)
        wide = wide.swaplevel(axis=1)[[(o, f) for o in model.classes_ for f in features]]
        return wide.loc[frame.wine_id.drop_duplicates()]

    x, r = vectors(tmp_path / "data.shap.parquet"), vectors(tmp_path / "reference.shap.parquet")
    distances, positions = (
        NearestNeighbors(n_neighbors=3).fit(r.to_numpy()).kneighbors(x.to_numpy())
    )
    assert list(table.reference_wine_id) == list(r.index.to_numpy()[positions.reshape(-1)])
    np.testing.assert_allclose(table.distance, distances.reshape(-1), rtol=1e-9, atol=1e-12)
    assert "reference_prediction_0" in table.columns


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--k", "0"], "--k must be at least 1"),
        (["--id-col", "nope"], "id column 'nope' is not in the data"),
        (["--target", "nope"], "--target column 'nope' is not in the reference"),
        (["--space", "pixels"], "--space must be one of"),
        (["--out", "x.txt"], "cannot tell the format"),
        (["--space", "attributions"], "is not an attribution table"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(wine, extra, message):
    folder = wine["folder"]
    result = run_cli(
        "examples", "--data", folder / "data.parquet", "--reference", folder / "reference.parquet",
        "--out", "-", *extra,
    )  # fmt: skip
    assert result.exit_code == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("xai: error: ")
    assert message in result.stderr
    assert result.stdout == ""


def test_output_file_is_not_replaced_without_overwrite(wine):
    folder = wine["folder"]
    args = ["examples", "--data", folder / "data.parquet", "--reference", folder / "reference.parquet"]  # fmt: skip
    first = run_cli(*args, "--k", 1)
    assert first.exit_code == 0, first.stderr
    written = folder / "data.examples.parquet"
    assert len(pd.read_parquet(written)) == len(wine["data"])
    again = run_cli(*args, "--k", 2)
    assert again.exit_code == 2 and "already exists" in again.stderr
    replaced = run_cli(*args, "--k", 2, "--overwrite")
    assert replaced.exit_code == 0 and len(pd.read_parquet(written)) == 2 * len(wine["data"])
