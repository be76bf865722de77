"""Run a prepared explanation: read chunks in order, fan them out, write results in order.

The one place that talks to joblib. Workers receive the plan and a chunk of encoded rows;
results come back in input order and are written as they arrive, so memory stays bounded
by a few chunks whatever the size of the data.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from xaicli.config import ExplainConfig
from xaicli.io.layout import ROW, attribution_table
from xaicli.methods.base import ROW_GROUP
from xaicli.runner.compute import compute_chunk, remember_model
from xaicli.runner.prepare import Prepared

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int  # 0-based position of the first row in the input
    X: np.ndarray
    keys: pa.Table
    categories: tuple[tuple[Any, ...], ...]

    @property
    def label(self) -> str:
        first = self.keys.column(0)[0].as_py() if self.keys.num_rows else self.start
        return f"chunk {self.index} (rows {self.start}-{self.start + len(self.X) - 1}, first id {first})"


def effective_n_jobs(n_jobs: int) -> int:
    cores = os.cpu_count() or 1
    return (
        cores
        if n_jobs in (0, -1)
        else max(1, min(n_jobs, 4 * cores) if n_jobs > 0 else cores + 1 + n_jobs)
    )


def aligned_chunk_size(chunk_size: int) -> int:
    """Chunks hold a multiple of ROW_GROUP rows, so model calls never depend on chunking."""
    return -(-max(1, chunk_size) // ROW_GROUP) * ROW_GROUP


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


def iter_chunks(prepared: Prepared, chunk_size: int) -> Iterator[Chunk]:
    """Encoded chunks of ``chunk_size`` rows (the last may be shorter), in input order."""
    plan = prepared.plan
    keys = prepared.key_columns
    columns = list(dict.fromkeys(list(plan.features) + list(keys)))
    position = 0
    batches = prepared.source.iter_batches(columns, chunk_size)
    for index, table in enumerate(_exact_batches(batches, chunk_size)):
        X = prepared.codec.encode(table)
        if keys:
            key_table = table.select(list(keys)).combine_chunks()
        else:
            key_table = pa.table(
                {ROW: pa.array(np.arange(position, position + table.num_rows), pa.int64())}
            )
        yield Chunk(index, position, X, key_table, prepared.codec.snapshot())
        position += table.num_rows


def run_chunks(
    prepared: Prepared,
    config: ExplainConfig,
    on_progress: ProgressFn | None = None,
    *,
    skip: Callable[[int], bool] = lambda index: False,
) -> Iterator[tuple[int, pa.Table | None]]:
    """(chunk index, output table) of every chunk in input order; ``None`` for the chunks
    ``skip`` names (already committed by an earlier run: read, but not recomputed)."""
    plan = prepared.plan
    n_jobs = effective_n_jobs(config.n_jobs)
    chunks = iter_chunks(prepared, aligned_chunk_size(config.chunk_size))

    def tables(results: Iterator[tuple[Chunk, Any]]) -> Iterator[tuple[int, pa.Table | None]]:
        for chunk, result in results:
            if on_progress is not None:
                on_progress(len(chunk.X))
            if result is None:
                yield chunk.index, None
                continue
            table = attribution_table(
                result, chunk.keys, plan.output.names, plan.features, config.layout
            )
            yield chunk.index, table

    if n_jobs == 1:
        remember_model(plan.model_key, prepared.model)
        yield from tables(
            (
                c,
                None
                if skip(c.index)
                else compute_chunk(plan, c.X, _rows(c), c.categories, c.label),
            )
            for c in chunks
        )
        return
    from joblib import Parallel, delayed, parallel_config

    dispatched: deque[Chunk] = deque()

    def tasks():
        for chunk in chunks:
            dispatched.append(chunk)  # results return in this order; ids never leave this process
            if skip(chunk.index):
                yield delayed(_nothing)()
            else:
                yield delayed(compute_chunk)(
                    plan, chunk.X, _rows(chunk), chunk.categories, chunk.label
                )

    with parallel_config(
        backend=config.backend, inner_max_num_threads=1, **_backend_options(config)
    ):
        parallel = Parallel(n_jobs=n_jobs, return_as="generator", pre_dispatch="2*n_jobs")
        yield from tables((dispatched.popleft(), result) for result in parallel(tasks()))


def _rows(chunk: Chunk) -> np.ndarray:
    return chunk.start + np.arange(len(chunk.X))


def _nothing() -> None:
    return None


def _backend_options(config: ExplainConfig) -> dict[str, Any]:
    return {}


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start
