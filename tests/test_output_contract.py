"""What a run may write, and where: outputs, manifests, rejects and job files never replace
an input or an existing file without --overwrite, two runs never share an output, a
refused run leaves nothing behind, and CSV is written as pandas writes it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli, run_xai_process

# A model file that records when it is loaded and, when XAI_TEST_HOLD is set, waits in the
# middle of the run (once the temporary output exists) until the test creates ``go``.
SLOW_MODEL = """
import glob
import os
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
with open(HERE / "loaded", "a") as marker:
    marker.write("x")


def score(X):
    X = np.asarray(X, dtype=float)
    if os.environ.get("XAI_TEST_HOLD") and glob.glob(str(HERE / ".out.parquet.*.tmp")):
        (HERE / "computing").touch()
        deadline = time.monotonic() + 120
        while not (HERE / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return X @ np.arange(1.0, X.shape[1] + 1)
"""


@pytest.fixture()
def folder(tmp_path):
    (tmp_path / "score.py").write_text(SLOW_MODEL)
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(rng.normal(size=(128, 3)), columns=["a", "b", "c"])
    frame.to_parquet(tmp_path / "data.parquet", index=False)
    return tmp_path


def _explain(folder: Path, *extra) -> list[str]:
    return [
        "explain",
        "--model",
        f"{folder / 'score.py'}:score",
        "--data",
        folder / "data.parquet",
        "--n-jobs",
        "1",
        "--quiet",
        *extra,
    ]


def _loaded(folder: Path) -> bool:
    return (folder / "loaded").exists()


def _refused(result, *mentions: str) -> None:
    assert result.exit_code == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if not line.startswith("xai: [[")]
    assert len(errors) == 1 and errors[0].startswith("xai: error:"), result.stderr
    for text in mentions:
        assert text in errors[0], errors[0]


# --- 2: --manifest and --save-job follow the output's rule ---------------------------------


def test_manifest_does_not_replace_an_existing_file(folder):
    keep = folder / "notes.json"
    keep.write_text("mine")
    result = run_cli(*_explain(folder, "--out", folder / "o.parquet", "--manifest", keep))
    _refused(result, "already exists", "--overwrite")
    assert keep.read_text() == "mine" and not _loaded(folder)
    assert run_cli(*_explain(folder, "--out", folder / "o.parquet", "--manifest", keep,
                             "--overwrite")).exit_code == 0  # fmt: skip
    assert '"tool": "xaicli"' in keep.read_text()


def test_default_manifest_follows_the_output(folder):
    out = folder / "o.parquet"
    (folder / "o.parquet.manifest.json").write_text("someone's")
    _refused(run_cli(*_explain(folder, "--out", out)), "o.parquet.manifest.json")
    assert not out.exists() and not _loaded(folder)


@pytest.mark.parametrize("option", ["--manifest", "--save-job"])
@pytest.mark.parametrize("target", ["data.parquet", "score.py"])
def test_companions_never_replace_an_input(folder, option, target):
    before = (folder / target).read_bytes()
    result = run_cli(*_explain(folder, "--out", folder / "o.parquet", option, folder / target,
                               "--overwrite"))  # fmt: skip
    _refused(result, str(folder / target), "would replace the input")
    assert (folder / target).read_bytes() == before and not _loaded(folder)
    assert not (folder / "o.parquet").exists()


def test_save_job_does_not_replace_an_existing_file(folder):
    job = folder / "job.toml"
    job.write_text("# mine\n")
    _refused(run_cli(*_explain(folder, "--out", folder / "o.parquet", "--save-job", job)), "job")
    assert job.read_text() == "# mine\n" and not _loaded(folder)
    assert not (folder / "o.parquet").exists()


def test_save_job_cannot_be_the_output(folder):
    out = folder / "o.parquet"
    _refused(run_cli(*_explain(folder, "--out", out, "--save-job", out)), "output")
    assert not out.exists() and not _loaded(folder)


def test_job_manifest_key_does_not_replace_an_existing_file(folder):
    (folder / "keep.json").write_text("mine")
    (folder / "job.toml").write_text(
        f'[[explain]]\nmodel = "{folder}/score.py:score"\ndata = "data.parquet"\n'
        'out = "o.parquet"\nmanifest = "keep.json"\n'
    )
    _refused(run_cli("run", folder / "job.toml"), "keep.json", "--overwrite")
    assert (folder / "keep.json").read_text() == "mine" and not _loaded(folder)


def test_a_finished_run_rerun_with_resume_keeps_its_own_manifest(folder):
    args = _explain(folder, "--out", folder / "o.parquet", "--manifest", folder / "m.json")
    assert run_cli(*args).exit_code == 0
    again = run_cli(*args, "--resume")
    assert again.exit_code == 0, again.stderr


# --- 6: the output is never an input ---------------------------------------------------


@pytest.mark.parametrize("what", ["data", "data folder", "background", "model"])
def test_output_never_replaces_an_input_even_with_overwrite(folder, what):
    model, data, extra = f"{folder / 'score.py'}:score", folder / "data.parquet", []
    out = data
    if what == "data folder":
        (folder / "days").mkdir()
        shutil.copy(data, folder / "days" / "part-0.parquet")
        data = out = folder / "days"
        out = folder / "days" / "part-0.parquet"
    elif what == "background":
        (folder / "sub").mkdir()
        shutil.copy(data, folder / "bg.parquet")
        out = folder / "bg.parquet"
        extra = ["--background", folder / "sub" / ".." / "bg.parquet"]
    elif what == "model":
        from sklearn.linear_model import LinearRegression

        frame = pd.read_parquet(data)
        joblib.dump(LinearRegression().fit(frame, frame["a"]), folder / "m.joblib")
        model = out = folder / "m.joblib"
        extra = ["--format", "parquet"]
    before = out.read_bytes()
    args = ["explain", "--model", model, "--data", data, "--out", out, "--overwrite", *extra]
    _refused(run_cli(*args), "would replace the input")
    assert out.read_bytes() == before


def test_output_through_a_symlink_to_the_data_is_refused(folder):
    (folder / "link.parquet").symlink_to(folder / "data.parquet")
    before = (folder / "data.parquet").read_bytes()
    result = run_cli(*_explain(folder, "--out", folder / "link.parquet", "--overwrite"))
    _refused(result, "data")
    assert (folder / "data.parquet").read_bytes() == before


# --- 3: one run per output -------------------------------------------------------------


def _start_held(folder: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "XAI_TEST_HOLD": "1"}
    args = [str(a) for a in _explain(folder, "--out", folder / "out.parquet", *extra)]
    return subprocess.Popen(
        [sys.executable, "-m", "xaicli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
    )


def _wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_second_run_on_the_same_output_is_refused_and_harms_nothing(folder):
    first = _start_held(folder)
    try:
        _wait_for(folder / "computing", first)  # the first run is writing its output
        for extra in ([], ["--overwrite"], ["--resume"]):
            second = run_xai_process(*_explain(folder, "--out", folder / "out.parquet", *extra))
            assert second.returncode == 2, second.stderr
            assert "another xai run" in second.stderr and "Traceback" not in second.stderr
        (folder / "go").touch()
        _, stderr = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, stderr
    assert len(pd.read_parquet(folder / "out.parquet")) == 128
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []


def test_an_output_that_appears_during_the_run_is_not_replaced(folder):
    first = _start_held(folder)
    try:
        _wait_for(folder / "computing", first)
        (folder / "out.parquet").write_text("written by someone else meanwhile")
        (folder / "go").touch()
        _, stderr = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 2, stderr
    assert "appeared" in stderr and "--overwrite" in stderr
    assert (folder / "out.parquet").read_text() == "written by someone else meanwhile"
    assert not (folder / "out.parquet.manifest.json").exists()


def test_a_lock_file_left_by_a_killed_run_does_not_block(folder):
    (folder / ".out.parquet.xai-lock").touch()  # the kernel released the dead run's lock
    result = run_cli(*_explain(folder, "--out", folder / "out.parquet"))
    assert result.exit_code == 0, result.stderr
    assert not (folder / ".out.parquet.xai-lock").exists()


# --- 13: a refused or failed run leaves no work folder ------------------------------------


def test_a_run_failing_in_its_first_chunk_leaves_no_work_folder(tmp_path, regression_case):
    data = regression_case["data"].copy()
    data.loc[3, "x2"] = np.nan  # the MLP refuses NaN: the run stops on chunk 0
    data.to_parquet(tmp_path / "d.parquet", index=False)
    out = tmp_path / "o.parquet"
    args = [
        "explain",
        "--model",
        regression_case["model_path"],
        "--data",
        tmp_path / "d.parquet",
        "--id-col",
        "key",
        "--out",
        out,
        "--n-jobs",
        "1",
        "--background",
        _background(tmp_path, regression_case),
    ]
    failed = run_cli(*args)
    assert failed.exit_code != 0 and "x2" in failed.stderr, failed.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    regression_case["data"].to_parquet(tmp_path / "d.parquet", index=False)  # fixed
    assert run_cli(*args, "--resume").exit_code == 0
    out.unlink()
    (tmp_path / "o.parquet.manifest.json").unlink()
    fixed = run_cli(*args)
    assert fixed.exit_code == 0, fixed.stderr


def _background(folder: Path, case) -> Path:
    path = folder / "bg.parquet"
    case["background"].to_parquet(path, index=False)
    return path


# --- 15 and 11: folders, permissions, encodings -----------------------------------------


def test_job_files_create_missing_output_folders_explain_does_not(folder):
    (folder / "job.toml").write_text(
        f'[[explain]]\nmodel = "{folder}/score.py:score"\ndata = "data.parquet"\n'
        'out = "out/{date}/o.parquet"\n'
    )
    result = run_cli("run", folder / "job.toml")
    assert result.exit_code == 0, result.stderr
    assert len(list((folder / "out").glob("*/o.parquet"))) == 1
    refused = run_cli(*_explain(folder, "--out", folder / "typo" / "o.parquet"))
    _refused(refused, "does not exist")
    assert not (folder / "typo").exists()


@pytest.mark.parametrize("option", ["--manifest", "--save-job"])
def test_companion_in_a_missing_folder_is_refused_before_any_work(folder, option):
    result = run_cli(*_explain(folder, "--out", folder / "o.parquet", option,
                               folder / "missing" / "f"))  # fmt: skip
    _refused(result, str(folder / "missing"), "does not exist")
    assert not _loaded(folder) and not (folder / "o.parquet").exists()


def test_a_read_only_output_folder_is_refused_before_any_work(folder, monkeypatch):
    locked = folder / "ro"
    locked.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: make the folder look read-only
        real_access = os.access
        monkeypatch.setattr(
            os,
            "access",
            lambda p, mode, **kw: False if Path(p) == locked else real_access(p, mode, **kw),
        )
    else:
        locked.chmod(0o555)
    try:
        result = run_cli(*_explain(folder, "--out", locked / "o.parquet"))
    finally:
        locked.chmod(0o755)
    _refused(result, str(locked), "not writable")
    assert not _loaded(folder)


def test_a_job_file_that_is_not_utf8_is_refused(folder):
    (folder / "job.toml").write_bytes(
        b'[[explain]]\nmodel = "score.py:score"\ndata = "d\xe9j\xe0.parquet"\n'
    )
    _refused(run_cli("run", folder / "job.toml"), "UTF-8", "job.toml")


# --- 22: file modes ---------------------------------------------------------------------


def test_companions_get_the_same_mode_as_the_output(folder):
    out = folder / "o.parquet"
    result = run_cli(*_explain(folder, "--out", out, "--save-job", folder / "job.toml"))
    assert result.exit_code == 0, result.stderr
    umask = os.umask(0)
    os.umask(umask)
    for path in (out, folder / "o.parquet.manifest.json", folder / "job.toml"):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


# --- 20: CSV as pandas writes it ---------------------------------------------------------


def test_csv_is_byte_identical_to_pandas(tmp_path, regression_case):
    data = regression_case["data"].copy()
    n = len(data)
    data["name"] = [f"n{i}" for i in range(n)]
    data.loc[1, "name"] = "Smith, John"
    data.loc[2, "name"] = 'the "best"'
    data.loc[3, "name"] = "two\nlines"
    data["number"] = np.arange(n, dtype=np.int64) * 1_000_003
    data["flag"] = np.arange(n) % 3 == 0
    data["score"] = np.where(np.arange(n) % 5 == 0, np.nan, np.arange(n) / 7.0)
    data.loc[4, "score"] = 1e-05
    data.loc[6, "score"] = 1e16
    data.to_parquet(tmp_path / "d.parquet", index=False)
    args = [
        "explain",
        "--model",
        regression_case["model_path"],
        "--data",
        tmp_path / "d.parquet",
        "--background",
        _background(tmp_path, regression_case),
        "--chunk-size",
        "16",
        "--n-jobs",
        "1",
        "--method",
        "saliency",
    ]
    for name in ("key", "name", "number", "flag", "score"):
        args += ["--id-col", name]
    assert run_cli(*args, "--out", tmp_path / "o.parquet").exit_code == 0
    assert run_cli(*args, "--out", tmp_path / "o.csv").exit_code == 0
    expected = pd.read_parquet(tmp_path / "o.parquet").to_csv(index=False).encode()
    assert (tmp_path / "o.csv").read_bytes() == expected
    piped = run_xai_process(*args, "--out", "-")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.encode() == expected
    first_field = [line.split(",")[0] for line in piped.stdout.splitlines()[:3]]
    assert first_field == ["key", "k0", "k1"]  # `| cut -d, -f1` works
