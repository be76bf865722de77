"""The input contract: what is read, exactly how, and what is refused before any work.

Ids are copied as written; every byte of the data is in the resume fingerprint; a folder
holds only tables we read, with schemas that agree; values the model cannot take are found
before the first row is written, with the column, the value and the row named.
"""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_cli

FEATURES = [f"x{i}" for i in range(6)]


@pytest.fixture()
def case(regression_case, tmp_path):
    return {
        "model": regression_case["model_path"],
        "tmp": tmp_path,
        "out": tmp_path / "out.parquet",
    }


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 6)).round(6), columns=FEATURES)
    frame.insert(0, "key", [f"k{i}" for i in range(n)])
    return frame


def _explain(model, data, out, *extra):
    return run_cli(
        "explain",
        "--model",
        model,
        "--data",
        data,
        "--out",
        out,
        "--n-jobs",
        "1",
        "--algorithm",
        "permutation",
        "--n-samples",
        "20",
        "--background-size",
        "10",
        *extra,
    )


def _refused(result, *mentions):
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("xai: error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    for text in mentions:
        assert text in lines[-1], (text, lines[-1])
    return lines[-1]


# item 1: CSV id columns are read as text


def test_csv_ids_are_copied_exactly_as_written(case):
    frame = _frame(4).drop(columns="key")
    ids = ["00042", "12345678901234567890", "12345678901234567891", "7"]
    path = case["tmp"] / "accounts.csv"
    with path.open("w") as handle:
        handle.write("account," + ",".join(FEATURES) + "\n")
        for account, row in zip(ids, frame.itertuples(index=False), strict=True):
            handle.write(account + "," + ",".join(repr(v) for v in row) + "\n")
    result = _explain(case["model"], path, case["out"], "--id-col", "account")
    assert result.exit_code == 0, result.stderr
    out = pq.read_table(case["out"])
    assert out.schema.field("account").type == pa.string()
    assert out.column("account").to_pylist() == ids


# item 5: resume fingerprints every byte of the data


def test_resume_sees_an_edit_in_the_middle_of_the_data(case):
    frame = _frame(60)
    frame["note"] = "x" * 60_000  # about 3.6 MB: the edit lies far from both ends
    path = case["tmp"] / "big.csv"
    frame.to_csv(path, index=False)
    first = _explain(case["model"], path, case["out"], "--id-col", "key", "--resume")
    assert first.exit_code == 0, first.stderr
    text = path.read_bytes()
    row = text.index(b"\nk30,") + 5  # x0 of row 30: same length, another value
    edited = text[:row] + (b"9" if text[row : row + 1] != b"9" else b"8") + text[row + 1 :]
    assert len(edited) == len(text) and row > 1_500_000 and len(text) - row > 1_500_000
    path.write_bytes(edited)
    again = _explain(case["model"], path, case["out"], "--id-col", "key", "--resume")
    _refused(again, "another run")


# item 7: a folder holds only files that are read


def test_folder_with_a_file_that_is_not_parquet_is_refused(case):
    folder = case["tmp"] / "mixed"
    folder.mkdir()
    frame = _frame(1000)
    frame.iloc[:500].to_parquet(folder / "part-0.parquet", index=False)
    frame.iloc[500:].to_csv(folder / "part-1.csv", index=False)
    _refused(_explain(case["model"], folder, case["out"], "--id-col", "key"), "part-1.csv")
    assert not case["out"].exists()


def test_folder_ignores_spark_markers_and_hidden_files(case):
    folder = case["tmp"] / "spark"
    (folder / "_temporary").mkdir(parents=True)
    _frame(100).to_parquet(folder / "part-0.parquet", index=False)
    (folder / "_SUCCESS").write_text("")
    (folder / ".part-0.parquet.crc").write_bytes(b"\0\1")
    (folder / "_temporary" / "junk.txt").write_text("x")
    result = _explain(case["model"], folder, case["out"], "--id-col", "key")
    assert result.exit_code == 0, result.stderr
    assert pq.read_table(case["out"]).num_rows == 100


# item 9 and 17: values the model cannot take are found before any work


def test_text_late_in_a_large_csv_numeric_column_is_refused_before_any_work(case):
    frame = _frame(5001)
    frame["pad"] = "p" * 1000  # 5 MB: the bad value lies beyond the first block read
    frame["x2"] = frame["x2"].astype(object)
    frame.loc[5000, "x2"] = "abc"
    path = case["tmp"] / "late.csv"
    frame.to_csv(path, index=False)
    result = _explain(case["model"], path, "-", "--id-col", "key", "--chunk-size", "64")
    _refused(result, "'x2'", "'abc'", "row 5000")


def test_text_in_a_small_csv_numeric_column_is_refused_before_any_work(case):
    frame = _frame(3000)
    frame["x2"] = frame["x2"].astype(object)
    frame.loc[2500, "x2"] = "abc"  # the column is read as text; the background has only numbers
    path = case["tmp"] / "small.csv"
    frame.to_csv(path, index=False)
    result = _explain(case["model"], path, "-", "--id-col", "key", "--chunk-size", "64")
    _refused(result, "'x2'", "'abc'", "row 2500")


def test_nan_the_model_refuses_is_found_before_the_first_row_is_written(case):
    frame = _frame(3000)
    frame.loc[2900, "x4"] = np.nan
    path = case["tmp"] / "nan.parquet"
    frame.to_parquet(path, index=False)
    result = _explain(case["model"], path, "-", "--id-col", "key", "--chunk-size", "64")
    _refused(result, "row 2900", "k2900", "x4")


# item 10: a folder's files agree on their columns


def _folder(case, name, second: pd.DataFrame) -> object:
    folder = case["tmp"] / name
    folder.mkdir()
    _frame(100).to_parquet(folder / "a.parquet", index=False)
    second.to_parquet(folder / "b.parquet", index=False)
    return folder


def test_folder_unifies_integer_and_float_columns(case):
    second = _frame(100, seed=1)
    second["x1"] = np.arange(100, dtype=np.int64)
    folder = _folder(case, "ints", second)
    reference = case["tmp"] / "floats.parquet"
    whole = pd.concat([_frame(100), second.astype({"x1": float})], ignore_index=True)
    whole.to_parquet(reference, index=False)
    for chunk_size in ("64", "1024"):
        out = case["tmp"] / f"out{chunk_size}.parquet"
        args = ("--id-col", "key", "--chunk-size", chunk_size)
        result = _explain(case["model"], folder, out, *args)
        assert result.exit_code == 0, result.stderr
        expected = case["tmp"] / f"ref{chunk_size}.parquet"
        assert _explain(case["model"], reference, expected, *args).exit_code == 0
        pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(expected))


def test_folder_with_a_text_column_in_one_file_is_refused(case):
    second = _frame(100, seed=1)
    second["x3"] = second["x3"].astype(str)
    folder = _folder(case, "text", second)
    for chunk_size in ("64", "1024"):
        result = _explain(case["model"], folder, "-", "--id-col", "key", "--chunk-size", chunk_size)
        _refused(result, "b.parquet", "'x3'")


def test_folder_with_a_file_missing_a_column_is_refused(case):
    folder = _folder(case, "missing", _frame(100, seed=1).drop(columns="x5"))
    _refused(_explain(case["model"], folder, case["out"], "--id-col", "key"), "b.parquet", "'x5'")


def test_folder_with_id_columns_of_different_types_is_refused(case):
    second = _frame(100, seed=1)
    second["key"] = np.arange(100)
    folder = _folder(case, "ids", second)
    _refused(_explain(case["model"], folder, case["out"], "--id-col", "key"), "b.parquet", "'key'")


# item 11: duplicate names and string_view columns


def test_duplicate_column_names_in_a_csv_are_refused(case):
    path = case["tmp"] / "dup.csv"
    frame = _frame(20)
    with path.open("w") as handle:
        handle.write("key," + ",".join(FEATURES) + ",x1\n")
        for row in frame.itertuples(index=False):
            handle.write(",".join(str(v) for v in row) + ",0\n")
    _refused(_explain(case["model"], path, case["out"], "--id-col", "key"), "'x1'")


def test_duplicate_column_names_in_parquet_are_refused(case):
    path = case["tmp"] / "dup.parquet"
    frame = _frame(20)
    columns = [pa.array(frame[c]) for c in frame.columns] + [pa.array(frame["x1"])]
    pq.write_table(pa.Table.from_arrays(columns, names=[*frame.columns, "x1"]), path)
    _refused(_explain(case["model"], path, case["out"], "--id-col", "key"), "'x1'")


@pytest.fixture(scope="module")
def category_model(tmp_path_factory):
    """A pipeline one-hot encoding the text column ``c`` (which holds numbers as text)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"x": rng.normal(size=200), "c": rng.choice(["1", "2", "3"], size=200)})
    y = frame.x + frame.c.astype(float)
    encode = ColumnTransformer(
        [("c", OneHotEncoder(handle_unknown="ignore"), ["c"])], remainder="passthrough"
    )
    model = make_pipeline(encode, Ridge()).fit(frame, y)
    path = tmp_path_factory.mktemp("category") / "pipe.joblib"
    joblib.dump(model, path)
    return path, frame


@pytest.mark.parametrize("text_type", [pa.string_view(), pa.large_string()])
def test_string_view_and_large_string_columns_are_categorical(category_model, tmp_path, text_type):
    model, frame = category_model
    table = pa.table(
        {"id": pa.array(range(50)), "x": frame.x[:50], "c": pa.array(frame.c[:50], text_type)}
    )
    pq.write_table(table, tmp_path / "view.parquet")
    pq.write_table(
        table.set_column(2, "c", table.column("c").cast(pa.string())), tmp_path / "s.parquet"
    )
    out, ref = tmp_path / "view.out.parquet", tmp_path / "s.out.parquet"
    result = _explain(model, tmp_path / "view.parquet", out, "--id-col", "id")
    assert result.exit_code == 0, result.stderr
    assert _explain(model, tmp_path / "s.parquet", ref, "--id-col", "id").exit_code == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(ref))


# item 18: numbers stored as text get a note


def test_numbers_stored_as_text_get_a_note(category_model, tmp_path):
    model, frame = category_model
    path = tmp_path / "c.parquet"
    frame.iloc[:40].to_parquet(path, index=False)
    result = _explain(model, path, tmp_path / "out.parquet")
    assert result.exit_code == 0, result.stderr
    assert "column 'c' holds numbers stored as text" in result.stderr
    assert "'x'" not in result.stderr.split("numbers stored as text")[0].splitlines()[-1]


# item 19: a column NaN in every row


def test_column_nan_in_every_row_is_named_when_the_model_refuses_nan(case):
    frame = _frame(50)
    frame["x4"] = np.nan
    path = case["tmp"] / "allnan.parquet"
    frame.to_parquet(path, index=False)
    _refused(_explain(case["model"], path, case["out"], "--id-col", "key"), "x4")


def test_column_nan_in_every_row_is_explained_when_the_model_takes_nan(tmp_path):
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "z"])
    frame.loc[::3, "z"] = np.nan
    model = HistGradientBoostingRegressor(max_iter=20).fit(frame, frame.a - frame.b)
    joblib.dump(model, tmp_path / "hgb.joblib")
    data = frame.iloc[:50].assign(z=np.nan)
    data.to_parquet(tmp_path / "data.parquet", index=False)
    result = _explain(tmp_path / "hgb.joblib", tmp_path / "data.parquet", tmp_path / "o.parquet")
    assert result.exit_code == 0, result.stderr
    out = pd.read_parquet(tmp_path / "o.parquet")
    assert len(out) == 50 and np.allclose(out.z, 0.0)
