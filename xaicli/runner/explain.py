"""``xai explain`` as a library call: prepare, compute chunk by chunk, write atomically."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from xaicli import __version__
from xaicli.config import ExplainConfig
from xaicli.io.layout import attribution_table
from xaicli.io.manifest import build_manifest
from xaicli.io.writer import TableWriter, check_destination, write_json_atomic
from xaicli.methods.base import Attributions
from xaicli.runner.execute import Timer, effective_n_jobs, run_chunks
from xaicli.runner.prepare import EXTRAS, Prepared, prepare

NoteFn = Callable[[str], None]
ProgressFactory = Callable[[int], Callable[[int], None] | None]


@dataclass(frozen=True)
class RunSummary:
    rows: int
    output_rows: int
    seconds: float
    out: str
    manifest_path: Path | None
    method: str
    algorithm: str


def run_explain(
    config: ExplainConfig,
    *,
    on_note: NoteFn | None = None,
    progress: ProgressFactory | None = None,
) -> RunSummary:
    check_destination(config.out, overwrite=config.overwrite)
    timer = Timer()
    prepared = prepare(config)
    for note in prepared.notes:
        if on_note is not None:
            on_note(note)
    on_progress = progress(prepared.n_rows) if progress is not None else None
    manifest_path = _manifest_path(config)
    manifest = build_manifest(
        tool_version=__version__,
        facts={**prepared.facts, "data": str(config.data)},
        parameters={**config.parameters(), "n_jobs_effective": effective_n_jobs(config.n_jobs)},
        extra={"output": config.out},
    )
    with TableWriter(config.out, config.out_format, metadata=manifest) as writer:
        for table in run_chunks(prepared, config, on_progress):
            writer.write(table)
        final = {"output_rows": writer.rows_written, "wall_time_s": round(timer.elapsed, 3)}
        writer.finish(final, _empty_schema(prepared, config))
    manifest.update(final)
    if manifest_path is not None:
        write_json_atomic(manifest_path, manifest)
    return RunSummary(
        rows=prepared.n_rows,
        output_rows=writer.rows_written,
        seconds=timer.elapsed,
        out=config.out,
        manifest_path=manifest_path,
        method=prepared.plan.method,
        algorithm=prepared.plan.algorithm,
    )


def _manifest_path(config: ExplainConfig) -> Path | None:
    if config.manifest is not None:
        return config.manifest
    if config.out == "-":
        return None
    return Path(config.out + ".manifest.json")


def _empty_schema(prepared: Prepared, config: ExplainConfig):
    plan = prepared.plan
    k, m = len(plan.output.names), len(plan.features)
    empty = Attributions(
        values=np.zeros((0, k, m)),
        base_values=np.zeros((0, k)),
        predictions=np.zeros((0, k)),
        extras={name: np.zeros((0, k)) for name in EXTRAS.get(plan.method, ())},
    )
    key_schema = (
        prepared.source.schema_of(prepared.key_columns)
        if prepared.key_columns
        else pa.schema([("row", pa.int64())])
    )
    return attribution_table(
        empty, key_schema.empty_table(), plan.output.names, plan.features, config.layout
    ).schema
