"""``xai explain`` as a library call: prepare, compute chunk by chunk, write atomically."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from xaicli import __version__
from xaicli.config import ExplainConfig
from xaicli.errors import Interrupted, UsageError, XaiError
from xaicli.io.checkpoint import ChunkStore, data_fingerprint, work_folder
from xaicli.io.layout import attribution_table
from xaicli.io.manifest import build_manifest
from xaicli.io.writer import TableWriter, check_destination, write_json_atomic
from xaicli.runner.execute import (
    Timer,
    effective_chunk_size,
    empty_result,
    run_chunks,
    workers_used,
)
from xaicli.runner.prepare import Prepared, prepare
from xaicli.runner.signals import Terminated, terminate_as_exception

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
    skipped_rows: int = 0  # rejected by --on-invalid skip
    skipped: bool = False  # the output was already complete


def run_explain(
    config: ExplainConfig,
    *,
    on_note: NoteFn | None = None,
    progress: ProgressFactory | None = None,
) -> RunSummary:
    finished = _finished_output(config)
    # an interrupted run may have renamed its output into place before it could tidy up
    resuming = config.resume and config.out != "-" and work_folder(Path(config.out)).exists()
    check_destination(config.out, overwrite=config.overwrite or resuming or finished)
    timer = Timer()
    prepared = prepare(config)
    # reads the data files' ends: once per run
    fingerprint = _fingerprint(prepared, config) if config.out != "-" else None
    if finished:
        _check_same_run(config, fingerprint)
        return RunSummary(
            0, 0, 0.0, config.out, None, prepared.plan.method, prepared.plan.algorithm, skipped=True
        )
    for note in prepared.notes:
        if on_note is not None:
            on_note(note)
    on_progress = progress(prepared.n_rows) if progress is not None else None
    manifest_path = _manifest_path(config)
    manifest = build_manifest(
        tool_version=__version__,
        facts={**prepared.facts, "data": str(config.data)},
        parameters={
            **config.parameters(),
            "n_jobs_effective": workers_used(config, prepared.n_rows),
        },
        extra={
            "output": config.out,
            "fingerprint": fingerprint,
        },
    )
    with terminate_as_exception():
        try:
            rejects = Rejects()

            def companions(output_rows: int) -> None:
                manifest.update(
                    output_rows=output_rows,
                    rejected_rows=rejects.count,
                    wall_time_s=round(timer.elapsed, 3),
                )
                if rejects.count and config.out != "-":
                    rejects.write(Path(config.out + ".rejects.parquet"))
                if manifest_path is not None:
                    write_json_atomic(manifest_path, manifest)

            written = _compute_and_write(
                prepared,
                config,
                manifest,
                fingerprint,
                on_progress,
                on_note,
                timer,
                rejects,
                companions,
            )
        except (KeyboardInterrupt, Terminated) as stop:
            raise _interrupted(config, stop) from None
    return RunSummary(
        rows=prepared.n_rows,
        output_rows=written,
        seconds=timer.elapsed,
        out=config.out,
        manifest_path=manifest_path,
        method=prepared.plan.method,
        algorithm=prepared.plan.algorithm,
        skipped_rows=rejects.count,
    )


def _compute_and_write(
    prepared, config, manifest, fingerprint, on_progress, on_note, timer, rejects, companions
) -> int:
    """Write chunk tables in order as they arrive. To a file, each chunk is also committed
    to the work folder first, so a rerun with --resume recomputes only what is missing
    (the output itself appears by rename only once complete)."""
    store = None
    done: set[int] = set()
    if config.out != "-":
        store = ChunkStore.open(
            Path(config.out),
            fingerprint,
            resume=config.resume,
            overwrite=config.overwrite,
        )
        done = store.committed()
        if done and on_note is not None:
            on_note(f"resuming: {len(done)} chunk(s) already committed in {store.folder}")
    metadata = manifest if config.out != "-" else None
    with TableWriter(config.out, config.out_format, metadata=metadata) as writer:
        for index, table in run_chunks(
            prepared, config, on_progress, skip=done.__contains__, on_reject=rejects.add
        ):
            if store is not None:
                if table is None:
                    table = store.read(index)
                else:
                    store.commit(index, table)
            writer.write(table)
        writer.finish(
            {"output_rows": writer.rows_written, "wall_time_s": round(timer.elapsed, 3)},
            _empty_schema(prepared, config),
            before_publish=lambda: companions(writer.rows_written),
        )
    if store is not None:
        store.remove()
    return writer.rows_written


# Parameters that change the numbers; n_jobs, backend and the like do not.
_NEUTRAL = {"n_jobs", "quiet", "overwrite", "resume", "manifest", "backend", "scheduler", "out"}


def _fingerprint(prepared: Prepared, config: ExplainConfig) -> dict:
    parameters = {k: v for k, v in config.parameters().items() if k not in _NEUTRAL}
    parameters["chunk_size"] = effective_chunk_size(config.chunk_size, prepared.n_rows)
    return {
        "tool_version": __version__,
        "model_sha256": prepared.facts["model_sha256"],
        "data": data_fingerprint(prepared.source.files),
        "parameters": json.loads(json.dumps(parameters, default=str)),
    }


def _interrupted(config: ExplainConfig, stop: BaseException) -> XaiError:
    code = 143 if isinstance(stop, Terminated) else 130
    what = "terminated" if code == 143 else "interrupted"
    if config.out == "-":
        return Interrupted(f"{what}; nothing was kept (output to stdout)", code)
    return Interrupted(
        f"{what}; finished chunks are kept in {work_folder(Path(config.out))}: "
        "run the same command with --resume to continue",
        code,
    )


class Rejects:
    """Rows skipped by --on-invalid skip, with the reason."""

    def __init__(self) -> None:
        self.tables: list[pa.Table] = []

    @property
    def count(self) -> int:
        return sum(t.num_rows for t in self.tables)

    def add(self, table: pa.Table) -> None:
        self.tables.append(table)

    def write(self, path: Path) -> None:
        with TableWriter(str(path), "parquet") as writer:
            for table in self.tables:
                writer.write(table)
            writer.finish({"rejected_rows": self.count}, self.tables[0].schema)


def _finished_output(config: ExplainConfig) -> bool:
    """With --resume, an output that exists with no interrupted work is a finished run."""
    if not config.resume or config.overwrite or config.out == "-":
        return False
    out = Path(config.out)
    return out.exists() and not work_folder(out).exists()


def _check_same_run(config: ExplainConfig, fingerprint: dict) -> None:
    """A finished output is only left alone if it came from this very run (same model,
    data and parameters, per its manifest); otherwise it is not ours to skip or replace."""
    try:
        previous = json.loads(_manifest_path(config).read_text()).get("fingerprint")
    except (OSError, ValueError):
        previous = None
    if previous != json.loads(json.dumps(fingerprint, default=str)):
        raise UsageError(
            f"output {config.out} exists from another run (different model, data or parameters, "
            "or no manifest); pass --overwrite to replace it"
        )


def _manifest_path(config: ExplainConfig) -> Path | None:
    if config.manifest is not None:
        return config.manifest
    if config.out == "-":
        return None
    return Path(config.out + ".manifest.json")


def _empty_schema(prepared: Prepared, config: ExplainConfig):
    plan = prepared.plan
    key_schema = (
        prepared.source.schema_of(prepared.key_columns)
        if prepared.key_columns
        else pa.schema([("row", pa.int64())])
    )
    return attribution_table(
        empty_result(plan),
        key_schema.empty_table(),
        plan.output.names,
        plan.features,
        config.layout,
    ).schema
