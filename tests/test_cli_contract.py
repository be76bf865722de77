"""The command-line surface: every stderr line a JSON object in JSON logs, usage errors
as one line, notes held back on refused runs, list options with commas, help text."""

from __future__ import annotations

import json
import re

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli, run_xai_process
from sklearn.linear_model import LinearRegression


@pytest.fixture(scope="module")
def linear_case(tmp_path_factory):
    """A linear model on a, b, c; its data with values of +-1e308 in a, and with a NaN."""
    folder = tmp_path_factory.mktemp("contract")
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    joblib.dump(LinearRegression().fit(X, X.a + 2 * X.b - X.c), folder / "linear.joblib")
    X.to_parquet(folder / "clean.parquet", index=False)
    extreme = X.copy()
    extreme.loc[::7, "a"] = 1e308
    extreme.loc[3::7, "a"] = -1e308
    extreme.to_parquet(folder / "extreme.parquet", index=False)
    with_nan = X.copy()
    with_nan.loc[70, "b"] = np.nan
    with_nan.to_parquet(folder / "nan.parquet", index=False)
    return folder


def _json_lines(stderr: str) -> list[dict]:
    lines = stderr.strip().splitlines()
    assert lines, "nothing on stderr"
    return [json.loads(line) for line in lines]  # fails on any line that is not JSON


# 14. --log-format json: every line on stderr is one JSON object


@pytest.mark.parametrize("method", ["shap", "saliency"])
def test_json_logs_stay_json_on_extreme_values_in_workers(linear_case, tmp_path, method):
    proc = run_xai_process(
        "explain",
        "--model",
        linear_case / "linear.joblib",
        "--data",
        linear_case / "extreme.parquet",
        "--background",  # ordinary reference rows: a mean over +-1e308 overflows
        linear_case / "clean.parquet",
        "--out",
        tmp_path / "o.parquet",
        "--method",
        method,
        "--n-jobs",
        "2",
        "--chunk-size",
        "64",
        "--log-format",
        "json",
        "--on-invalid",  # saliency's differences at 1e308 overflow: those rows are rejected
        "skip",
    )
    assert proc.returncode == 0, proc.stderr
    events = _json_lines(proc.stderr)
    assert events[-1]["event"] == "summary" and events[-1]["rows"] == 200


@pytest.fixture(scope="module")
def warning_model(linear_case):
    module = linear_case / "noisy.py"
    module.write_text(
        "import warnings\n"
        "import numpy as np\n"
        "def score(X):\n"
        "    warnings.warn('scores are approximate', UserWarning)\n"
        "    return np.asarray(X, dtype=float) @ np.array([1.0, 2.0, -1.0])\n"
    )
    return f"{module}:score"


@pytest.mark.parametrize("n_jobs", ["1", "2"])
def test_model_warnings_become_one_line_or_one_event(linear_case, warning_model, tmp_path, n_jobs):
    common = [
        "explain",
        "--model",
        warning_model,
        "--data",
        linear_case / "clean.parquet",
        "--n-jobs",
        n_jobs,
        "--chunk-size",
        "64",
        "--algorithm",
        "exact",
        "--background-size",
        "10",
    ]
    text = run_xai_process(*common, "--out", tmp_path / "t.parquet")
    assert text.returncode == 0, text.stderr
    lines = text.stderr.strip().splitlines()
    assert all(line.startswith("xai: ") for line in lines), text.stderr
    assert any(
        line.startswith("xai: warning: UserWarning: scores are approximate") for line in lines
    )
    logged = run_xai_process(*common, "--out", tmp_path / "j.parquet", "--log-format", "json")
    assert logged.returncode == 0, logged.stderr
    warnings = [e for e in _json_lines(logged.stderr) if e["event"] == "warning"]
    assert warnings and "scores are approximate" in warnings[0]["message"]


@pytest.mark.parametrize(
    "bad",
    [["--n-jobs", "x"], ["--bogus"], ["--overwrite=yes"]],
    ids=["bad-int", "unknown-option", "flag-with-value"],
)
def test_usage_errors_are_one_line(linear_case, tmp_path, bad):
    args = ["--model", linear_case / "linear.joblib", "--data", linear_case / "clean.parquet"]
    proc = run_xai_process("explain", *args, *bad)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("xai: error: ") and lines[0].endswith("(see 'xai explain --help')")
    assert bad[0].split("=")[0] in lines[0]


@pytest.mark.parametrize("form", [["--log-format", "json"], ["--log-format=json"]])
def test_usage_errors_in_json_logs_are_an_error_event(linear_case, form):
    proc = run_xai_process(
        "explain", "--data", linear_case / "clean.parquet", *form, "--n-jobs", "x"
    )
    assert proc.returncode == 2
    (event,) = _json_lines(proc.stderr)
    assert event["event"] == "error" and event["exit_code"] == 2
    assert "--n-jobs" in event["message"]


def test_version_and_bare_command_still_behave():
    version = run_xai_process("--version")
    assert version.returncode == 0 and version.stdout.startswith("xai ")
    bare = run_xai_process()
    assert "explain" in bare.stdout and "Usage" in bare.stdout
    assert "Traceback" not in bare.stderr


# 16. a refused run prints its error alone; notes with --verbose or in JSON logs


@pytest.fixture()
def interrupted(tmp_path):
    """A run stopped by its model on the third chunk: its first chunks stay committed."""
    module = tmp_path / "fragile.py"
    module.write_text(
        "import numpy as np\n"
        "def score(X):\n"
        "    X = np.asarray(X, dtype=float)\n"
        "    if (X[:, 0] > 2.0).any():\n"
        "        raise ValueError('value out of range')\n"
        "    return X.sum(axis=1)\n"
    )
    frame = pd.DataFrame({"a": np.linspace(-1, 3, 200), "b": np.ones(200)})
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    frame.iloc[:10].to_parquet(tmp_path / "bg.parquet", index=False)
    args = [
        "explain",
        *("--model", f"{module}:score", "--data", tmp_path / "d.parquet"),
        *("--background", tmp_path / "bg.parquet", "--out", tmp_path / "o.parquet"),
        *("--algorithm", "exact", "--n-jobs", "1", "--chunk-size", "64"),
    ]
    assert run_cli(*args).exit_code == 1
    return args


def _refused(args, *extra):
    # resuming with another seed: refused once the notes are known, before any work
    return run_cli(*args, "--resume", "--seed", "9", *extra)


def test_refused_run_prints_the_error_alone(interrupted):
    result = _refused(interrupted)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xai: error: "), result.stderr


def test_verbose_and_json_logs_keep_the_notes_of_a_refused_run(interrupted):
    verbose = _refused(interrupted, "--verbose")
    assert verbose.exit_code == 2
    lines = verbose.stderr.strip().splitlines()
    assert lines[0].startswith("xai: SHAP algorithm: ") and lines[-1].startswith("xai: error: ")
    logged = _refused(interrupted, "--log-format", "json")
    kinds = [e["event"] for e in _json_lines(logged.stderr)]
    assert kinds[0] == "note" and kinds[-1] == "error"


def test_notes_are_printed_once_the_work_is_done(linear_case, tmp_path):
    result = run_cli(
        "explain",
        "--model",
        linear_case / "linear.joblib",
        "--data",
        linear_case / "clean.parquet",
        "--out",
        tmp_path / "o.parquet",
        "--n-jobs",
        "1",
    )
    assert result.exit_code == 0
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("xai: SHAP algorithm: linear") and "explained 200 rows" in lines[-1]


# 26. `xai explain` alone points to --help; flags show no value type


def test_explain_without_arguments_points_to_help():
    result = run_cli("explain")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "xai: error: --model and --data are required; see 'xai explain --help'"
    )


@pytest.mark.parametrize("command", [["explain"], ["run"], []])
def test_flags_show_as_plain_flags_in_help(command):
    result = run_cli(*command, "--help")
    assert result.exit_code == 0
    assert "--help" in result.stdout and "<bool>" not in result.stdout


# 21. names with a comma: repeat the option; 'a,b' is a shorthand unless a column is so named


@pytest.fixture(scope="module")
def comma_case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("commas")
    rng = np.random.default_rng(3)
    data = pd.DataFrame(rng.normal(size=(40, 3)), columns=["w,1", "v", "u"])
    data.insert(0, "id,key", [f"r{i}" for i in range(40)])
    data.to_parquet(folder / "data.parquet", index=False)
    module = folder / "scoring.py"
    module.write_text(
        "import numpy as np\n"
        "def score(X):\n"
        "    return np.asarray(X, dtype=float) @ np.array([1.0, 2.0, 3.0])\n"
    )
    return folder


def _explain_commas(folder, out, *lists):
    return run_cli(
        "explain",
        "--model",
        f"{folder / 'scoring.py'}:score",
        "--data",
        folder / "data.parquet",
        "--out",
        out,
        "--algorithm",
        "exact",
        "--background-size",
        "10",
        "--n-jobs",
        "1",
        *lists,
    )


def test_a_column_with_a_comma_is_named_whole(comma_case, tmp_path):
    repeated = _explain_commas(
        comma_case,
        tmp_path / "a.parquet",
        *("--features", "w,1", "--features", "v", "--features", "u", "--id-col", "id,key"),
    )
    assert repeated.exit_code == 0, repeated.stderr
    table = pd.read_parquet(tmp_path / "a.parquet")
    assert list(table.columns) == ["id,key", "output", "base_value", "prediction", "w,1", "v", "u"]
    assert table["id,key"].tolist() == [f"r{i}" for i in range(40)]
    # the comma shorthand still lists several columns next to a name with a comma
    mixed = _explain_commas(
        comma_case,
        tmp_path / "b.parquet",
        *("--features", "w,1", "--features", "v,u", "--id-col", "id,key"),
    )
    assert mixed.exit_code == 0, mixed.stderr
    pd.testing.assert_frame_equal(table, pd.read_parquet(tmp_path / "b.parquet"))


def test_save_job_round_trips_a_name_with_a_comma(comma_case, tmp_path):
    job = tmp_path / "saved.toml"
    first = _explain_commas(
        comma_case,
        tmp_path / "a.parquet",
        *("--features", "w,1", "--features", "v,u", "--id-col", "id,key", "--save-job", job),
    )
    assert first.exit_code == 0, first.stderr
    text = job.read_text()
    assert 'features = ["w,1", "v", "u"]' in text and 'id_cols = ["id,key"]' in text
    job.write_text(text.replace(str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")))
    again = run_cli("run", job)
    assert again.exit_code == 0, again.stderr
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet")
    )


def test_job_file_list_items_are_names_and_a_string_is_the_shorthand(comma_case, tmp_path):
    def job(features: str, out: str):
        path = tmp_path / f"{out}.toml"
        path.write_text(
            "[[explain]]\n"
            f'model = "{comma_case / "scoring.py"}:score"\n'
            f'data = "{comma_case / "data.parquet"}"\n'
            f'out = "{tmp_path / out}.parquet"\n'
            f"features = {features}\n"
            'id_cols = ["id,key"]\nalgorithm = "exact"\nbackground_size = 10\nn_jobs = 1\n'
        )
        return run_cli("run", path)

    assert job('["w,1", "v", "u"]', "listed").exit_code == 0
    literal = job('["w,1", "v,u"]', "literal")  # no column is named "v,u"
    assert literal.exit_code == 2 and "v,u" in literal.stderr
    shorthand = job('"w,1,v,u"', "shorthand")  # split: w, 1, v, u
    assert shorthand.exit_code == 2 and "lacks" in shorthand.stderr


def test_a_class_label_with_a_comma(tmp_path):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(4)
    X = pd.DataFrame(rng.normal(size=(90, 2)), columns=["a", "b"])
    y = np.array(["yes, sure", "no", "maybe"])[
        np.argmax(X.to_numpy() @ [[1, -1, 0], [0, 1, -1]], 1)
    ]
    joblib.dump(LogisticRegression().fit(X, y), tmp_path / "clf.joblib")
    X.to_parquet(tmp_path / "x.parquet", index=False)
    result = run_cli(
        "explain",
        "--model",
        tmp_path / "clf.joblib",
        "--data",
        tmp_path / "x.parquet",
        "--out",
        tmp_path / "o.parquet",
        "--class",
        "yes, sure",
        "--n-jobs",
        "1",
    )
    assert result.exit_code == 0, result.stderr
    assert set(pd.read_parquet(tmp_path / "o.parquet")["output"]) == {"yes, sure"}


# 24. the help says that loading a pickle runs code


def test_model_help_says_pickles_run_code():
    result = run_cli("explain", "--help")
    assert "runs its code" in re.sub(r"[\s│]+", " ", result.stdout)  # across wrapped lines
