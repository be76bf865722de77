"""The configuration split by concern keeps its flat interfaces (manifest parameters, job
keys), and ``--method`` takes every method the registry holds."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields

from conftest import run_cli

from tests.test_registry import OCCLUSION
from xaicli.config import FIELD_NAMES, GROUPS, ExplainConfig, build_config, method_choices
from xaicli.methods import registry

# the manifest's ``parameters`` keys, in their order: an interface, pinned here
PARAMETER_KEYS = (
    "model", "data", "out", "out_format", "features", "id_cols", "method", "algorithm",
    "output", "classes", "background", "background_size", "background_weights",
    "n_samples", "kernel_width",
    "discretize", "num_features", "lime_neighbourhood", "baseline", "steps", "n_jobs",
    "chunk_size", "seed", "layout", "overwrite", "resume", "trust_model", "manifest", "quiet",
    "max_eval_rows", "on_invalid", "backend", "scheduler",
    "reasons", "reason_direction", "reason_groups", "reason_text", "errors", "target_error",
    "interactions", "interactions_top",
)  # fmt: skip


def test_each_field_belongs_to_one_group_and_the_flat_order_is_kept(tmp_path):
    grouped = [f.name for group in GROUPS.values() for f in fields(group)]
    assert sorted(grouped) == sorted(FIELD_NAMES) and len(grouped) == len(set(grouped))
    config = build_config(
        {"model": "m.joblib", "data": tmp_path / "d.parquet"}, name=lambda key: key
    )
    assert tuple(config.parameters()) == PARAMETER_KEYS == FIELD_NAMES
    assert config.compute.seed == config.value("seed") == 0
    assert config.destination.out == str(tmp_path / "d.attributions.parquet")
    changed = config.with_values(seed=3, n_jobs=1)
    assert (changed.compute.seed, changed.execution.n_jobs) == (3, 1)
    assert changed.inputs == config.inputs and isinstance(changed, ExplainConfig)


def test_the_method_choices_are_the_registry_methods(monkeypatch):
    registry.registered()
    monkeypatch.setitem(registry._SPECS, ("occlusion", ""), OCCLUSION)
    assert method_choices() == ("auto", "shap", "lime", "ig", "saliency", "occlusion")
    result = run_cli("explain", "--model", "m.joblib", "--data", "d.parquet", "--method", "x")
    assert result.exit_code == 2
    assert result.stderr == (
        "xai: error: --method must be one of auto, shap, lime, ig, saliency, occlusion; got 'x'\n"
    )


def test_xai_version_imports_no_method():
    """The configuration reads the registry only when it checks a method: ``xai --version``
    stays quick."""
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from xaicli.cli.app import app\n"
        "CliRunner().invoke(app, ['--version'])\n"
        "print('numba' in sys.modules, 'xaicli.methods.registry' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["False", "False"], done.stderr
