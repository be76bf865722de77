"""``xai explain`` as a library call: prepare, compute chunk by chunk, write atomically."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from xaicli import __version__
from xaicli.config import ExplainConfig
from xaicli.errors import Interrupted, UsageError, XaiError
from xaicli.io.checkpoint import ChunkStore, clean_leftovers, data_fingerprint, work_folder
from xaicli.io.destinations import (
    check_absent,
    check_not_input,
    check_writable_folder,
    input_files,
    same_file,
)
from xaicli.io.layout import attribution_table
from xaicli.io.lock import output_lock
from xaicli.io.manifest import build_manifest
from xaicli.io.writer import TableWriter, write_json_atomic
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
    on_prepared: Callable[[ExplainConfig], None] | None = None,
) -> RunSummary:
    """Explain the data of ``config``. ``on_prepared`` receives the configuration as
    resolved against the data (list options as names) once every check has passed."""
    check_destinations(config)
    if config.out == "-":
        return _run(config, on_note, progress, on_prepared)
    out = Path(config.out)
    # one run per output: the checks below, the leftovers' cleanup and the publish
    # happen with no other run able to touch the same files
    with output_lock(out):
        clean_leftovers(out)
        return _run(config, on_note, progress, on_prepared)


def check_destinations(config: ExplainConfig) -> None:
    """Before any work: every file the run writes goes to a writable folder, and none of
    them is an input or another of them."""
    inputs = input_files(config.data, config.model, config.background, config.baseline)
    written = _written_files(config)
    for what, path in written:
        check_writable_folder(path, what)
        check_not_input(path, what, inputs)
    for i, (what, path) in enumerate(written):
        for other, other_path in written[:i]:
            if same_file(path, other_path):
                raise UsageError(f"{what} {path} is also the {other}; choose another path")


def _written_files(config: ExplainConfig) -> list[tuple[str, Path]]:
    """(label, path) of the files a run writes, output first."""
    files: list[tuple[str, Path]] = []
    if config.out != "-":
        files.append(("output", Path(config.out)))
        if config.on_invalid == "skip":
            files.append(("rejects file", _rejects_path(config)))
    manifest = _manifest_path(config)
    if manifest is not None:
        files.append(("manifest", manifest))
    return files


def _run(
    config: ExplainConfig,
    on_note: NoteFn | None,
    progress: ProgressFactory | None,
    on_prepared: Callable[[ExplainConfig], None] | None,
) -> RunSummary:
    finished = _finished_output(config)
    # an interrupted run may have renamed its output into place before it could tidy up
    resuming = config.resume and config.out != "-" and work_folder(Path(config.out)).exists()
    # the default manifest and the rejects file are companions of the output: a run that
    # may replace the output (or is its own resumed run) may replace them too
    may_replace = config.overwrite or resuming or finished
    for what, path in _written_files(config):
        check_absent(path, what, may_replace=may_replace)
    timer = Timer()
    with np.errstate(all="ignore"):  # extreme values overflow in background statistics
        prepared = prepare(config)
    config = prepared.config
    if on_prepared is not None:
        on_prepared(config)
    # reads every byte of the data files: once per run, and only when writing to a file
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
                if config.out != "-" and config.on_invalid == "skip":
                    rejects.write(_rejects_path(config))
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
                may_replace,
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
    prepared,
    config,
    manifest,
    fingerprint,
    on_progress,
    on_note,
    timer,
    rejects,
    companions,
    may_replace,
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
    writer = TableWriter(config.out, config.out_format, metadata=metadata, replace=may_replace)
    try:
        with writer:
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
    except BaseException:
        if store is not None:
            store.discard_if_empty()
        raise
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
    if not work_folder(Path(config.out)).exists():
        return Interrupted(f"{what} before any chunk was finished; nothing was kept", code)
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
        """Write the rejected rows to ``path``; with none, remove an earlier run's file
        there (this run may replace it), which would no longer match the output."""
        if not self.tables:
            path.unlink(missing_ok=True)
            return
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


def _rejects_path(config: ExplainConfig) -> Path:
    return Path(config.out + ".rejects.parquet")


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
