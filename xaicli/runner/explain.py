"""``xai explain`` as a library call: prepare, compute chunk by chunk, write atomically."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from xaicli.methods.base import Attributions
from xaicli.runner.error_summary import ErrorSummary
from xaicli.runner.execute import (
    Timer,
    effective_chunk_size,
    empty_result,
    run_chunks,
    table_shape,
    workers_used,
)
from xaicli.runner.prepare import Prepared, prepare
from xaicli.runner.reasons import ReasonPlan, plan_reasons
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
    rows_at_budget: int | None = None  # with a target error: rows that stopped above it


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
    if config.destination.out == "-":
        return _run(config, on_note, progress, on_prepared)
    out = Path(config.destination.out)
    # one run per output: the checks below, the leftovers' cleanup and the publish
    # happen with no other run able to touch the same files
    with output_lock(out):
        clean_leftovers(out)
        return _run(config, on_note, progress, on_prepared)


def check_destinations(config: ExplainConfig) -> None:
    """Before any work: every file the run writes goes to a writable folder, and none of
    them is an input or another of them."""
    inputs = input_files(
        config.inputs.data, config.inputs.model, config.inputs.background, config.compute.baseline
    )
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
    if config.destination.out != "-":
        files.append(("output", Path(config.destination.out)))
        if config.compute.on_invalid == "skip":
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
    may_replace = _check_replaceable(config, finished)
    timer = Timer()
    with np.errstate(all="ignore"):  # extreme values overflow in background statistics
        prepared = prepare(config)
    config = prepared.config
    reasons = plan_reasons(config, prepared.plan.features, prepared.plan.output.kind)
    if on_prepared is not None:
        on_prepared(config)
    # reads every byte of the data files: once per run, and only when writing to a file
    fingerprint = _fingerprint(prepared, config) if config.destination.out != "-" else None
    if finished:
        _check_same_run(config, fingerprint)
        return RunSummary(
            0,
            0,
            0.0,
            config.destination.out,
            None,
            prepared.plan.method,
            prepared.plan.algorithm,
            skipped=True,
        )
    if on_note is not None:
        for note in prepared.notes:
            on_note(note)
    run = _Run(
        prepared=prepared,
        config=config,
        manifest=_manifest(prepared, config, fingerprint),
        manifest_path=_manifest_path(config),
        fingerprint=fingerprint,
        may_replace=may_replace,
        timer=timer,
        rejects=Rejects(),
        base_values=SharedBaseValues(),
        errors=ErrorSummary(
            prepared.plan.output.names,
            prepared.plan.features,
            config.destination.layout,
            errors=prepared.plan.standard_errors,
            converged=prepared.plan.converged,
        ),
        on_progress=progress(prepared.n_rows) if progress is not None else None,
        on_note=on_note,
        reasons=reasons,
    )
    with terminate_as_exception():
        try:
            written = _compute_and_write(run)
        except (KeyboardInterrupt, Terminated) as stop:
            raise _interrupted(config, stop) from None
    return RunSummary(
        rows=prepared.n_rows,
        output_rows=written,
        seconds=timer.elapsed,
        out=config.destination.out,
        manifest_path=run.manifest_path,
        method=prepared.plan.method,
        algorithm=prepared.plan.algorithm,
        skipped_rows=run.rejects.count,
        rows_at_budget=run.errors.unconverged if prepared.plan.converged else None,
    )


@dataclass(frozen=True)
class _Run:
    """One run once prepared: what _compute_and_write and _publish need."""

    prepared: Prepared
    config: ExplainConfig  # as resolved against the data
    manifest: dict[str, Any]  # completed with the row counts before it is written
    manifest_path: Path | None
    fingerprint: dict[str, Any] | None  # None for stdout
    may_replace: bool  # the output and its companions
    timer: Timer
    rejects: Rejects
    base_values: SharedBaseValues
    errors: ErrorSummary
    on_progress: Callable[[int], None] | None
    on_note: NoteFn | None
    reasons: ReasonPlan | None = None


def _check_replaceable(config: ExplainConfig, finished: bool) -> bool:
    """Whether this run may replace the files it writes; UsageError for one that exists
    and may not be replaced."""
    # an interrupted run may have renamed its output into place before it could tidy up
    resuming = (
        config.destination.resume
        and config.destination.out != "-"
        and work_folder(Path(config.destination.out)).exists()
    )
    # the default manifest and the rejects file are companions of the output: a run that
    # may replace the output (or is its own resumed run) may replace them too
    may_replace = config.destination.overwrite or resuming or finished
    for what, path in _written_files(config):
        check_absent(path, what, may_replace=may_replace)
    return may_replace


def _manifest(
    prepared: Prepared, config: ExplainConfig, fingerprint: dict[str, Any] | None
) -> dict[str, Any]:
    return build_manifest(
        tool_version=__version__,
        facts={**prepared.facts, "data": str(config.inputs.data)},
        parameters={
            **config.parameters(),
            "n_jobs_effective": workers_used(config, prepared.n_rows),
        },
        extra={"output": config.destination.out, "fingerprint": fingerprint},
    )


def _compute_and_write(run: _Run) -> int:
    """Write chunk tables in order as they arrive; the number of rows written. To a file,
    each chunk is also committed to the work folder first, so a rerun with --resume
    recomputes only what is missing (the output itself appears by rename only once
    complete)."""
    config = run.config
    store = _open_store(run)
    done = store.committed() if store is not None else set()
    if done and store is not None and run.on_note is not None:
        run.on_note(f"resuming: {len(done)} chunk(s) already committed in {store.folder}")
    metadata = run.manifest if config.destination.out != "-" else None
    writer = TableWriter(
        config.destination.out,
        config.destination.out_format,
        metadata=metadata,
        replace=run.may_replace,
    )
    try:
        with writer:
            chunks = run_chunks(
                run.prepared,
                config,
                run.on_progress,
                skip=done.__contains__,
                on_reject=run.rejects.add,
                on_result=run.base_values.observe,
                reasons=run.reasons,
            )
            for index, table in chunks:
                if store is not None:
                    if table is None:
                        table = store.read(index)
                    else:
                        store.commit(index, table)
                run.errors.observe(table)
                writer.write(table)
            _publish(run, writer)
    except BaseException:
        if store is not None:
            store.discard_if_empty()
        raise
    if store is not None:
        store.remove()
    return writer.rows_written


def _open_store(run: _Run) -> ChunkStore | None:
    """The work folder of finished chunks; None for stdout, which cannot resume."""
    if run.config.destination.out == "-" or run.fingerprint is None:
        return None
    return ChunkStore.open(
        Path(run.config.destination.out),
        run.fingerprint,
        resume=run.config.destination.resume,
        overwrite=run.config.destination.overwrite,
    )


def _publish(run: _Run, writer: TableWriter) -> None:
    """Close the output, write its companions, then move the output into place: a reader
    that sees the output also finds its manifest and rejects file."""
    writer.finish(
        {
            "output_rows": writer.rows_written,
            "wall_time_s": round(run.timer.elapsed, 3),
            **run.base_values.facts(run.prepared.plan.output.names),
            **run.errors.facts(),
        },
        _empty_schema(run.prepared, run.config, run.reasons),
    )
    _write_companions(run, writer.rows_written)
    writer.publish()


def _write_companions(run: _Run, output_rows: int) -> None:
    """The manifest (completed with the counts) and, with --on-invalid skip, the rejects."""
    run.manifest.update(
        output_rows=output_rows,
        rejected_rows=run.rejects.count,
        wall_time_s=round(run.timer.elapsed, 3),
        **run.base_values.facts(run.prepared.plan.output.names),
        **run.errors.facts(),
    )
    if run.config.destination.out != "-" and run.config.compute.on_invalid == "skip":
        run.rejects.write(_rejects_path(run.config))
    if run.manifest_path is not None:
        write_json_atomic(run.manifest_path, run.manifest)


# Parameters that change the numbers; n_jobs, backend and the like do not.
_NEUTRAL = {"n_jobs", "quiet", "overwrite", "resume", "manifest", "backend", "scheduler", "out"}


def _fingerprint(prepared: Prepared, config: ExplainConfig) -> dict[str, Any]:
    parameters = {k: v for k, v in config.parameters().items() if k not in _NEUTRAL}
    parameters["chunk_size"] = effective_chunk_size(config.execution.chunk_size, prepared.n_rows)
    if config.destination.reason_groups is not None:
        # the groups shape the reason columns: an edited file is another run
        parameters["reason_groups_content"] = data_fingerprint((config.destination.reason_groups,))
    return {
        "tool_version": __version__,
        "model_sha256": prepared.facts["model_sha256"],
        "data": data_fingerprint(prepared.source.files),
        "parameters": json.loads(json.dumps(parameters, default=str)),
    }


def _interrupted(config: ExplainConfig, stop: BaseException) -> XaiError:
    code = 143 if isinstance(stop, Terminated) else 130
    what = "terminated" if code == 143 else "interrupted"
    if config.destination.out == "-":
        return Interrupted(f"{what}; nothing was kept (output to stdout)", code)
    if not work_folder(Path(config.destination.out)).exists():
        return Interrupted(f"{what} before any chunk was finished; nothing was kept", code)
    return Interrupted(
        f"{what}; finished chunks are kept in {work_folder(Path(config.destination.out))}: "
        "run the same command with --resume to continue",
        code,
    )


class SharedBaseValues:
    """The base value of each output when every explained row shares it (SHAP: the mean
    output over the background), for the metadata: the long layout has no such column."""

    def __init__(self) -> None:
        self.first: np.ndarray | None = None  # (n_outputs,)
        self.shared: np.ndarray | None = None  # (n_outputs,) still shared by every row

    def observe(self, result: Attributions) -> None:
        base = result.base_values
        if not len(base):
            return
        if self.first is None or self.shared is None:
            self.first = base[0].copy()
            self.shared = np.ones(base.shape[1], dtype=bool)
        # algorithms that average per row may differ from row to row in the last bits
        tolerance = 1e-12 * np.maximum(1.0, np.abs(self.first))
        self.shared &= (np.abs(base - self.first) <= tolerance).all(axis=0)

    def facts(self, outputs: tuple[str, ...]) -> dict[str, Any]:
        if self.first is None or self.shared is None or not self.shared.all():
            return {}
        return {
            "base_values": {name: float(v) for name, v in zip(outputs, self.first, strict=True)}
        }


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
            writer.publish()


def _finished_output(config: ExplainConfig) -> bool:
    """With --resume, an output that exists with no interrupted work is a finished run."""
    if (
        not config.destination.resume
        or config.destination.overwrite
        or config.destination.out == "-"
    ):
        return False
    out = Path(config.destination.out)
    return out.exists() and not work_folder(out).exists()


def _check_same_run(config: ExplainConfig, fingerprint: dict[str, Any] | None) -> None:
    """A finished output is only left alone if it came from this very run (same model,
    data and parameters, per its manifest); otherwise it is not ours to skip or replace."""
    manifest_path = _manifest_path(config)
    try:
        previous = (
            json.loads(manifest_path.read_text()).get("fingerprint") if manifest_path else None
        )
    except (OSError, ValueError):
        previous = None
    if previous != json.loads(json.dumps(fingerprint, default=str)):
        raise UsageError(
            f"output {config.destination.out} exists from another run (different model, data or parameters, "
            "or no manifest); pass --overwrite to replace it"
        )


def _rejects_path(config: ExplainConfig) -> Path:
    return Path(config.destination.out + ".rejects.parquet")


def _manifest_path(config: ExplainConfig) -> Path | None:
    if config.destination.manifest is not None:
        return config.destination.manifest
    if config.destination.out == "-":
        return None
    return Path(config.destination.out + ".manifest.json")


def _empty_schema(
    prepared: Prepared, config: ExplainConfig, reasons: ReasonPlan | None = None
) -> pa.Schema:
    plan = prepared.plan
    key_schema = (
        prepared.source.schema_of(prepared.key_columns)
        if prepared.key_columns
        else pa.schema([("row", pa.int64())])
    )
    layout, features = table_shape(plan, config.destination.layout)
    schema = attribution_table(
        empty_result(plan), key_schema.empty_table(), plan.output.names, features, layout
    ).schema
    if reasons is None:
        return schema
    n_after = len(plan.features) * (2 if plan.standard_errors else 1)  # features, their SEs
    return reasons.add_empty(schema, n_after)
