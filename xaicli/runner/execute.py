"""Run a prepared explanation: read chunks in order, fan them out, write results in order.

The one place that talks to joblib. Workers receive the plan and a chunk of encoded rows;
results come back in input order and are written as they arrive, so memory stays bounded
by a few chunks whatever the size of the data.
"""

from __future__ import annotations

import os
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa

from xaicli.config import ExplainConfig
from xaicli.errors import RunFailure, UsageError
from xaicli.io.layout import INTERACTIONS, ROW, attribution_table
from xaicli.methods.base import ROW_GROUP, Attributions
from xaicli.methods.registry import method_spec
from xaicli.runner.compute import (
    compute_chunk,
    compute_chunk_in_worker,
    reissue,
    remember_model,
)
from xaicli.runner.plan import RunPlan, shipped_once
from xaicli.runner.prepare import Prepared
from xaicli.runner.reasons import ReasonPlan
from xaicli.runner.validate import invalid_mask, non_finite_rows, refuse

ProgressFn = Callable[[int], None]
RejectFn = Callable[[pa.Table], None]


@dataclass(frozen=True)
class Chunk:
    index: int
    rows: np.ndarray  # (n_rows,) 0-based positions in the input
    X: np.ndarray
    keys: pa.Table
    categories: tuple[tuple[Any, ...], ...]
    rejected: pa.Table | None = None  # rows the model cannot take: keys and reason
    rejected_rows: np.ndarray | None = None  # their positions
    raw: pa.Table | None = None  # the rows' input values (for reason columns), never shipped

    @property
    def label(self) -> str:
        if not len(self.rows):
            return f"chunk {self.index}"
        first = self.keys.column(0)[0].as_py()
        return f"chunk {self.index} (rows {self.rows[0]}-{self.rows[-1]}, first id {first})"


def table_shape(plan: RunPlan, layout: str) -> tuple[str, tuple[str, ...]]:
    """The output table's layout and the features it lists: the interaction table's with
    --interactions, else ``layout`` (--layout) over every feature."""
    if plan.interactions is not None:
        return INTERACTIONS, plan.interactions
    return layout, plan.features


def effective_n_jobs(n_jobs: int) -> int:
    """Worker processes for ``--n-jobs``: joblib's convention (-1 = every core, -2 = all but
    one, ...; 0 is taken as every core), at most four per core."""
    cores = os.cpu_count() or 1
    if n_jobs > 0:
        return min(n_jobs, 4 * cores)
    return cores if n_jobs == 0 else max(1, cores + 1 + n_jobs)


def aligned_chunk_size(chunk_size: int) -> int:
    """Chunks hold a multiple of ROW_GROUP rows, so model calls never depend on chunking."""
    return -(-max(1, chunk_size) // ROW_GROUP) * ROW_GROUP


#: A table is cut into at least this many chunks (of at least ROW_GROUP rows), so a small
#: table still keeps every core busy and progress moves during the run.
MIN_CHUNKS = 16


def effective_chunk_size(chunk_size: int, n_rows: int) -> int:
    """Rows per chunk: ``--chunk-size`` rounded up to a multiple of ROW_GROUP, smaller for
    tables of fewer than MIN_CHUNKS such chunks. A function of the row count and
    ``--chunk-size`` only, never of --n-jobs or the machine: a resumed run, perhaps on
    another machine, must cut the table the same way."""
    share = aligned_chunk_size(-(-n_rows // MIN_CHUNKS))
    return min(aligned_chunk_size(chunk_size), max(ROW_GROUP, share))


def workers_used(config: ExplainConfig, n_rows: int) -> int | None:
    """Worker processes a local run starts: no more than it has chunks. None on Dask,
    where the cluster decides."""
    if config.execution.backend != "loky":
        return None
    n_chunks = -(-n_rows // effective_chunk_size(config.execution.chunk_size, n_rows))
    return max(1, min(effective_n_jobs(config.execution.n_jobs), n_chunks))


def _exact_batches(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.Table]:
    """Re-cut record batches (which may end early at file or block ends) to ``size`` rows."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        while count >= size:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, size)
            rest = table.slice(size)
            pending, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(pending)


def iter_chunks(prepared: Prepared, chunk_size: int, *, keep_raw: bool = False) -> Iterator[Chunk]:
    """Encoded chunks of ``chunk_size`` input rows, in input order, without the rows the
    model cannot take (an error, or kept in ``Chunk.rejected`` with ``--on-invalid skip``);
    with ``keep_raw``, also the rows' input values as read."""
    plan = prepared.plan
    keys = prepared.key_columns
    columns = list(dict.fromkeys(list(plan.features) + list(keys)))
    categorical = np.array(plan.categorical, dtype=bool)
    position = 0
    batches = prepared.source.iter_batches(columns, chunk_size)
    for index, table in enumerate(_exact_batches(batches, chunk_size)):
        X = prepared.codec.encode(table)
        rows = np.arange(position, position + table.num_rows)
        if keys:
            key_table = table.select(list(keys)).combine_chunks()
        else:
            key_table = pa.table({ROW: pa.array(rows, pa.int64())})
        bad, reasons = invalid_mask(X, categorical, prepared.invalid)
        rejected = rejected_rows = None
        raw = table.select(list(plan.features)) if keep_raw else None
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            if prepared.invalid.on_invalid == "error":
                names = [
                    plan.features[j] for j in np.flatnonzero(~np.isfinite(X[first]) & ~categorical)
                ]
                first_id = key_table.column(0)[first].as_py()
                raise refuse(int(rows[first]), first_id, reasons[0], names, prepared.invalid)
            rejected = key_table.filter(pa.array(bad))
            rejected = rejected.append_column("reason", pa.array(reasons, pa.string()))
            rejected_rows = rows[bad]
            keep = ~bad
            X, rows, key_table = X[keep], rows[keep], key_table.filter(pa.array(keep))
            raw = raw.filter(pa.array(keep)) if raw is not None else None
        yield Chunk(
            index, rows, X, key_table, prepared.codec.snapshot(), rejected, rejected_rows, raw
        )
        position += table.num_rows


def run_chunks(
    prepared: Prepared,
    config: ExplainConfig,
    on_progress: ProgressFn | None = None,
    *,
    skip: Callable[[int], bool] = lambda index: False,
    on_reject: RejectFn | None = None,
    on_result: Callable[[Attributions], None] | None = None,
    reasons: ReasonPlan | None = None,
) -> Iterator[tuple[int, pa.Table | None]]:
    """(chunk index, output table) of every chunk in input order; ``None`` for the chunks
    ``skip`` names (already committed by an earlier run: read, but not recomputed). With
    ``reasons``, the tables carry the reason columns."""
    plan = prepared.plan
    chunk_size = effective_chunk_size(config.execution.chunk_size, prepared.n_rows)
    # no more workers than chunks: a one-chunk run stays in this process (no pool start-up)
    n_jobs = workers_used(config, prepared.n_rows) or 1
    chunks = iter_chunks(prepared, chunk_size, keep_raw=reasons is not None)
    layout, features = table_shape(plan, config.destination.layout)

    def tables(results: Iterator[tuple[Chunk, Any]]) -> Iterator[tuple[int, pa.Table | None]]:
        for chunk, result in results:
            if on_progress is not None:
                on_progress(len(chunk.X))
            if result is None:
                _report_rejects(chunk, on_reject)
                yield chunk.index, None
                continue
            result, keys, keep = _finite_rows_only(
                chunk, result, config.compute.on_invalid, on_reject
            )
            if on_result is not None:
                on_result(result)
            table = attribution_table(result, keys, plan.output.names, features, layout)
            if reasons is not None:
                raw = chunk.raw
                if raw is not None and keep is not None:
                    raw = raw.filter(pa.array(keep))
                table = reasons.add(table, result, raw)
            yield chunk.index, table

    remember_model(plan.model_key, prepared.model)
    if n_jobs == 1 and config.execution.backend == "loky":
        yield from tables((c, None if skip(c.index) else _compute_local(plan, c)) for c in chunks)
        return
    from joblib import Parallel, delayed, parallel_config

    dispatched: deque[Chunk] = deque()
    registry: dict = {}  # workers' warnings, reported once per place in the code

    def tasks():
        for chunk in chunks:
            dispatched.append(chunk)  # results return in this order; ids never leave this process
            if skip(chunk.index):
                yield delayed(_nothing)()
            elif not len(chunk.X):
                yield delayed(empty_result)(plan)
            else:
                yield delayed(compute_chunk_in_worker)(
                    plan, chunk.X, chunk.rows, chunk.categories, chunk.label
                )

    if config.execution.backend == "dask":
        with dask_backend(config.execution.scheduler, plan) as (n_workers, shipped):
            plan = shipped  # tasks() reads it: remote workers get the model object itself
            parallel = Parallel(n_jobs=-1, return_as="generator", pre_dispatch=f"{2 * n_workers}")
            yield from tables(
                (dispatched.popleft(), reissue(result, registry)) for result in parallel(tasks())
            )
        return
    with (
        parallel_config(backend="loky", inner_max_num_threads=1),
        warnings.catch_warnings(),
        shipped_once(plan) as plan,  # tasks() reads it: each worker reads the structure once
    ):
        # stopping early (an error, a closed pipe) cancels queued tasks; that is intended
        warnings.filterwarnings("ignore", message=".*tasks which were still being processed")
        parallel = Parallel(n_jobs=n_jobs, return_as="generator", pre_dispatch="2*n_jobs")
        results = parallel(tasks())
        try:
            yield from tables(
                (dispatched.popleft(), reissue(result, registry)) for result in results
            )
        finally:
            results.close()  # here, under the filter, when tables() stops the run


def _finite_rows_only(
    chunk: Chunk, result: Attributions, on_invalid: str, on_reject: RejectFn | None
) -> tuple[Attributions, pa.Table, np.ndarray | None]:
    """The chunk's results and keys without rows the model answered NaN or infinity on:
    a runtime failure naming them, or (``--on-invalid skip``) rejected with the reason.
    NaN never reaches the output table. The third item: the rows kept, None for all."""
    bad, reasons = non_finite_rows(result)
    if not bad.any():
        _report_rejects(chunk, on_reject)
        return result, chunk.keys, None
    if on_invalid == "error":
        raise _model_failure(chunk, bad, reasons)
    keys = chunk.keys.filter(pa.array(bad))
    _report_rejects(
        chunk, on_reject, keys.append_column("reason", pa.array(reasons, pa.string())), bad
    )
    keep = ~bad
    kept = result.take_rows(keep)
    return kept, chunk.keys.filter(pa.array(keep)), keep


def _report_rejects(
    chunk: Chunk,
    on_reject: RejectFn | None,
    model_rejects: pa.Table | None = None,
    model_bad: np.ndarray | None = None,
) -> None:
    """Pass on a chunk's rejected rows (the data's and the model's) in input order."""
    if on_reject is None:
        return
    parts, positions = [], []
    if chunk.rejected is not None and chunk.rejected_rows is not None:
        parts.append(chunk.rejected)
        positions.append(chunk.rejected_rows)
    if model_rejects is not None and model_bad is not None:
        parts.append(model_rejects)
        positions.append(chunk.rows[model_bad])
    if not parts:
        return
    table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    if len(parts) > 1:
        table = table.take(pa.array(np.argsort(np.concatenate(positions), kind="stable")))
    on_reject(table)


def _model_failure(chunk: Chunk, bad: np.ndarray, reasons: list[str]) -> RunFailure:
    where = np.flatnonzero(bad)
    named = ", ".join(
        f"row {chunk.rows[i]} (id {chunk.keys.column(0)[int(i)].as_py()})" for i in where[:3]
    )
    more = ", ..." if len(where) > 3 else ""
    reason = reasons[0] if len(set(reasons)) == 1 else "model returned NaN or infinite values"
    return RunFailure(
        f"{chunk.label}: the {reason} for {len(where)} row(s): {named}{more}; pass "
        "--on-invalid skip to write such rows to the rejects file instead"
    )


def _nothing() -> None:
    return None


def _compute_local(plan: RunPlan, chunk: Chunk) -> Attributions:
    if not len(chunk.X):
        return empty_result(plan)
    return compute_chunk(plan, chunk.X, chunk.rows, chunk.categories, chunk.label)


def empty_result(plan: RunPlan) -> Attributions:
    """The result of a chunk whose rows were all rejected."""
    k, m = len(plan.output.names), len(plan.features)
    shape = (
        (0, k, len(plan.interactions), len(plan.interactions))
        if plan.interactions is not None
        else (0, k, m)
    )
    return Attributions(
        values=np.zeros(shape),
        base_values=np.zeros((0, k)),
        predictions=np.zeros((0, k)),
        extras={name: np.zeros((0, k)) for name in method_spec(plan.method, plan.algorithm).extras},
        standard_errors=np.zeros((0, k, m)) if plan.standard_errors else None,
        converged=np.zeros(0, dtype=bool) if plan.converged else None,
    )


@contextmanager
def dask_backend(scheduler: str | None, plan: RunPlan) -> Iterator[tuple[int, RunPlan]]:
    """joblib on an existing Dask cluster. The plan carries the model object itself
    (workers need not see our files) and is scattered to the workers once."""
    try:
        from dask.distributed import Client
    except ImportError as exc:
        raise UsageError(
            "--backend dask needs dask.distributed: pip install 'xaicli[dask]'"
        ) from exc
    from joblib import parallel_config

    from xaicli.runner.compute import cached_model

    shipped = replace(plan, model_object=cached_model(plan))
    try:
        client = Client(scheduler, timeout=10, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        with client.as_current(), parallel_config(backend="dask", scatter=[shipped]):
            yield n_workers, shipped
    finally:
        client.close()


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start
