"""The same job on a real two-worker Dask cluster (127.0.0.1) gives the local table."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import run_cli

distributed = pytest.importorskip("dask.distributed")


@pytest.fixture(scope="module")
def cluster():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=40,
    )
    yield cluster
    cluster.close()


@pytest.mark.parametrize("method", ["shap", "lime"])
def test_dask_backend_matches_local(cluster, regression_case, workdir, tmp_path, method):
    args = [
        "explain",
        "--model",
        regression_case["model_path"],
        "--data",
        workdir / "reg.parquet",
        "--id-col",
        "key",
        "--method",
        method,
        "--chunk-size",
        "16",
        "--seed",
        "5",
        "--n-samples",
        "300",
    ]
    local = run_cli(*args, "--out", tmp_path / "local.parquet", "--n-jobs", "1")
    assert local.exit_code == 0, local.stderr
    remote = run_cli(
        *args,
        "--out",
        tmp_path / "dask.parquet",
        "--backend",
        "dask",
        "--scheduler",
        cluster.scheduler_address,
    )
    assert remote.exit_code == 0, remote.stderr
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "local.parquet"),
        pd.read_parquet(tmp_path / "dask.parquet"),
        check_exact=True,
    )


def test_unreachable_scheduler_is_a_usage_error(regression_case, workdir, tmp_path):
    result = run_cli(
        "explain",
        "--model",
        regression_case["model_path"],
        "--data",
        workdir / "reg.parquet",
        "--out",
        tmp_path / "o.parquet",
        "--backend",
        "dask",
        "--scheduler",
        "tcp://127.0.0.1:9",
    )
    assert result.exit_code == 2 and "Dask scheduler" in result.stderr
    assert not (tmp_path / "o.parquet").exists()


def test_a_job_file_on_the_cluster_matches_the_local_job(
    cluster, regression_case, workdir, tmp_path
):
    table = (
        '[[explain]]\nmodel = "{model}"\ndata = "{data}"\nout = "{out}"\nid_cols = ["key"]\n'
        'method = "ig"\nchunk_size = 16\n{extra}\n'
    )
    local, remote = tmp_path / "local.toml", tmp_path / "remote.toml"
    fill = {"model": regression_case["model_path"], "data": workdir / "reg.parquet"}
    local.write_text(table.format(out=tmp_path / "l.parquet", extra="", **fill))
    remote.write_text(
        table.format(
            out=tmp_path / "r.parquet",
            extra=f'backend = "dask"\nscheduler = "{cluster.scheduler_address}"',
            **fill,
        )
    )
    assert run_cli("run", local).exit_code == 0
    result = run_cli("run", remote)
    assert result.exit_code == 0, result.stderr
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "l.parquet"),
        pd.read_parquet(tmp_path / "r.parquet"),
        check_exact=True,
    )
