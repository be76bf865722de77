"""The model's structure is derived once per run, and the packages depend one way.

Whatever TreeSHAP and the perceptron path derive from the model and the background (the
trees' arrays and the background in their input space; the network's layers and its first
layer on the background) is built once while planning, in the main process, whatever the
number of chunks and workers.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import warnings
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import exact_interventional_shap, run_cli
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import xaicli.models.network
import xaicli.models.tree_inputs

PACKAGE = Path(xaicli.models.network.__file__).parents[1]
ROOT = PACKAGE.parent
N_ROWS, CHUNK = 256, 64  # four chunks


# -- the import graph -------------------------------------------------------------------


def _imports(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it, as absolute dotted names."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            if base == "xaicli":  # from xaicli import errors: a module of its own
                found.update(f"xaicli.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    return {
        ".".join(path.relative_to(ROOT).with_suffix("").parts): _imports(path)
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


# numpy/numba/scipy and the standard library; lars_path is the array routine of lime's own
# feature selection, which LIME's surrogate follows.
METHODS_MAY_IMPORT = ("numpy", "numba", "scipy", "sklearn.linear_model")


def test_methods_import_only_methods_and_numeric_libraries():
    graph = _graph()
    assert any(_under(m, "xaicli.methods") for m in graph)
    wrong = {
        (module, imported)
        for module, imports in graph.items()
        if _under(module, "xaicli.methods")
        for imported in imports
        if not (
            _under(imported, "xaicli.methods")
            or imported.split(".")[0] in sys.stdlib_module_names
            or imported == "__future__"
            or any(_under(imported, allowed) for allowed in METHODS_MAY_IMPORT)
        )
    }
    assert not wrong


def test_nothing_imports_cli_and_models_io_do_not_import_runner():
    graph = _graph()
    wrong = set()
    for module, imports in graph.items():
        for imported in imports:
            if _under(imported, "xaicli.cli") and not (
                _under(module, "xaicli.cli") or module == "xaicli.__main__"
            ):
                wrong.add((module, imported))
            lower = _under(module, "xaicli.models") or _under(module, "xaicli.io")
            if lower and (_under(imported, "xaicli.runner") or _under(imported, "xaicli.cli")):
                wrong.add((module, imported))
    assert not wrong


def test_the_import_check_sees_relative_and_package_imports(tmp_path):
    """The checks above can fail: a relative import resolves to its absolute module."""
    found = _imports(PACKAGE / "methods" / "lime.py")
    assert "xaicli.methods.lime_sampling" in found
    assert "xaicli.runner.plan" in _imports(PACKAGE / "runner" / "dispatch.py")


# -- built once per run -----------------------------------------------------------------


@pytest.fixture(scope="module")
def forest_case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("forest")
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(N_ROWS, 4)), columns=["a", "b", "c", "d"])
    y = frame.a - 2 * frame.b * (frame.c > 0) + frame.d
    model = make_pipeline(
        StandardScaler(), RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0)
    ).fit(frame, y)
    joblib.dump(model, folder / "forest.joblib")
    frame.to_parquet(folder / "data.parquet")
    return folder


@pytest.fixture(scope="module")
def network_case(tmp_path_factory):
    """An MLP after one-hot encoding, whose last chunk holds a category that neither the
    background nor the earlier chunks hold (the encoder ignores unknown categories)."""
    folder = tmp_path_factory.mktemp("network")
    rng = np.random.default_rng(4)
    position = np.arange(N_ROWS)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=N_ROWS),
            "b": rng.normal(size=N_ROWS),
            "c": np.where(position < 128, "x", np.where(position < 3 * CHUNK, "y", "z")),
        }
    )
    y = 2 * frame.a + frame.b + 3 * (frame.c == "y")
    encode = ColumnTransformer(
        [
            ("num", StandardScaler(), ["a", "b"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["c"]),
        ]
    )
    network = MLPRegressor(hidden_layer_sizes=(8,), max_iter=300, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence: any fitted network will do
        model = make_pipeline(encode, network).fit(frame.iloc[: 3 * CHUNK], y.iloc[: 3 * CHUNK])
    joblib.dump(model, folder / "mlp.joblib")
    frame.to_parquet(folder / "data.parquet")
    frame.iloc[:40].to_parquet(folder / "background.parquet")
    return folder, model, frame


def _counted(monkeypatch, module, name: str) -> list[int]:
    calls: list[int] = []
    original = getattr(module, name)

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


def test_tree_structure_is_built_once_for_every_chunk(forest_case, monkeypatch, tmp_path):
    builds = _counted(monkeypatch, xaicli.models.tree_inputs, "tree_inputs")
    out = tmp_path / "out.csv"
    result = run_cli(
        "explain", "--model", forest_case / "forest.joblib", "--data", forest_case / "data.parquet",
        "--out", out, "--n-jobs", "1", "--chunk-size", str(CHUNK),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "SHAP algorithm: tree" in result.stderr
    assert len(pd.read_csv(out)) == N_ROWS
    assert len(builds) == 1


def test_network_structure_is_built_once_for_every_chunk(network_case, monkeypatch, tmp_path):
    folder, _, _ = network_case
    builds = _counted(monkeypatch, xaicli.models.network, "network_background")
    out = tmp_path / "out.csv"
    result = run_cli(
        "explain", "--model", folder / "mlp.joblib", "--data", folder / "data.parquet",
        "--background", folder / "background.parquet", "--out", out, "--n-jobs", "1",
        "--chunk-size", str(CHUNK), "--algorithm", "exact",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert len(builds) == 1


def test_network_explains_a_category_first_seen_in_a_later_chunk(network_case, tmp_path):
    """The rows' first-layer terms are decoded with their own chunk's categories (the
    network path used to decode every chunk with the first chunk's and fail on "z")."""
    folder, model, frame = network_case
    out = tmp_path / "out.parquet"
    result = run_cli(
        "explain", "--model", folder / "mlp.joblib", "--data", folder / "data.parquet",
        "--background", folder / "background.parquet", "--out", out, "--n-jobs", "1",
        "--chunk-size", str(CHUNK), "--algorithm", "exact",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    table = pd.read_parquet(out).set_index("row")
    background = frame.iloc[:40]
    for row in (N_ROWS - 2, N_ROWS - 1):  # rows with "z"
        expected = exact_interventional_shap(
            lambda rows: model.predict(pd.DataFrame(rows, columns=frame.columns)),
            frame.iloc[row].to_numpy(dtype=object),
            background.to_numpy(dtype=object),
        )[0]
        np.testing.assert_allclose(table.loc[row, ["a", "b", "c"]], expected, atol=1e-9)
        assert table.loc[row, "prediction"] == pytest.approx(model.predict(frame.iloc[[row]])[0])


SITECUSTOMIZE = """
import os

import xaicli.models.network
import xaicli.models.tree_inputs
import xaicli.runner.dispatch


def _count(module, name):
    original = getattr(module, name)

    def counting(*args, **kwargs):
        with open(os.environ["XAI_TEST_BUILDS"], "a") as handle:
            handle.write(f"{name} {os.getpid()}\\n")
        return original(*args, **kwargs)

    setattr(module, name, counting)


_count(xaicli.models.tree_inputs, "tree_inputs")
_count(xaicli.models.network, "network_background")
_count(xaicli.runner.dispatch, "run_method")  # once per chunk computed
"""


@pytest.mark.parametrize("case", ["forest", "network"])
def test_structure_is_built_once_with_two_worker_processes(
    case, forest_case, network_case, tmp_path
):
    """Every process of the run (the workers too) counts the builds in one file."""
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    builds = tmp_path / "builds.txt"
    if case == "forest":
        inputs = ["--model", forest_case / "forest.joblib", "--data", forest_case / "data.parquet"]
    else:
        folder = network_case[0]
        inputs = ["--model", folder / "mlp.joblib", "--data", folder / "data.parquet"]
        inputs += ["--background", folder / "background.parquet", "--algorithm", "exact"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "hook"), str(ROOT)]),
        "XAI_TEST_BUILDS": str(builds),
    }
    command = [
        sys.executable, "-m", "xaicli", "explain", *map(str, inputs),
        "--out", str(tmp_path / "out.parquet"), "--n-jobs", "2", "--chunk-size", str(CHUNK),
    ]  # fmt: skip
    with subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env,
    ) as process:  # fmt: skip
        _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    assert len(pd.read_parquet(tmp_path / "out.parquet")) == N_ROWS
    calls = [line.split() for line in builds.read_text().splitlines()]
    built = [(name, int(pid)) for name, pid in calls if name != "run_method"]
    chunks = [int(pid) for name, pid in calls if name == "run_method"]
    name = "tree_inputs" if case == "forest" else "network_background"
    assert built == [(name, process.pid)]  # once, in the main process
    assert len(chunks) == N_ROWS // CHUNK
    assert process.pid not in chunks  # the chunks ran in the workers
