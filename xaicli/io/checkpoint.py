"""Durable chunk results for resuming an interrupted run.

Each finished chunk is written to a work folder beside the output under a temporary name,
flushed to disk and renamed, so a chunk file is either complete or absent whatever moment
the process dies (SIGKILL included). ``state.json`` holds the run's fingerprint: a resume
with another model, data or parameters is refused instead of mixing results.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from xaicli.errors import UsageError

STATE = "state.json"
READ_BYTES = 1 << 22


def work_folder(out: Path) -> Path:
    return out.parent / f".{out.name}.xai-work"


def data_fingerprint(files: tuple[Path, ...]) -> str:
    """BLAKE2b of every byte of every input file, with its name and size: any edit, even
    one that keeps the size, changes it. Read in large blocks, it costs a fraction of
    reading the data for the run."""
    digest = hashlib.blake2b(digest_size=32)
    buffer = bytearray(READ_BYTES)
    view = memoryview(buffer)
    for path in files:
        digest.update(f"{path.name}:{path.stat().st_size}".encode())
        with path.open("rb", buffering=0) as handle:
            while size := handle.readinto(buffer):
                digest.update(view[:size])
    return digest.hexdigest()


class ChunkStore:
    """The work folder of one output."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def open(
        cls, out: Path, fingerprint: dict[str, Any], *, resume: bool, overwrite: bool
    ) -> ChunkStore:
        folder = work_folder(out)
        clean_leftovers(out)
        store = cls(folder)
        if folder.exists():
            if resume:
                store._check(fingerprint)
                return store
            if not overwrite:
                raise UsageError(
                    f"an interrupted run left {folder}; pass --resume to continue it, "
                    "or --overwrite to start again"
                )
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        _write_durably(folder / STATE, json.dumps(fingerprint, indent=2, sort_keys=True).encode())
        return store

    def _check(self, fingerprint: dict[str, Any]) -> None:
        try:
            saved = json.loads((self.folder / STATE).read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot resume: {self.folder / STATE} is unreadable ({exc})") from exc
        changed = [
            key
            for key in sorted(set(saved) | set(fingerprint))
            if saved.get(key) != fingerprint.get(key)
        ]
        if changed:
            raise UsageError(
                "cannot resume: changed since the interrupted run: "
                f"{', '.join(_describe(k) for k in changed)}; pass --overwrite to start again"
            )

    def _chunk_path(self, index: int) -> Path:
        return self.folder / f"chunk-{index:07d}.parquet"

    def committed(self) -> set[int]:
        return {int(p.stem.split("-")[1]) for p in self.folder.glob("chunk-*.parquet")}

    def commit(self, index: int, table: pa.Table) -> None:
        target = self._chunk_path(index)
        tmp = target.with_suffix(".tmp")
        with pa.OSFile(str(tmp), "wb") as sink:
            pq.write_table(table, sink, compression="none")  # temporary: speed over size
        _fsync(tmp)
        os.replace(tmp, target)
        _fsync(self.folder)

    def read(self, index: int) -> pa.Table:
        return pq.read_table(self._chunk_path(index))

    def remove(self) -> None:
        """Retire the folder in one atomic rename first, so a kill while deleting never
        leaves a half-deleted folder that looks like an interrupted run."""
        retired = _retired(self.folder)
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(self.folder, retired)
        shutil.rmtree(retired, ignore_errors=True)


def _retired(folder: Path) -> Path:
    return folder.with_name(folder.name + ".done")


def clean_leftovers(out: Path) -> None:
    """Remove what a killed run could not: temporary outputs and a retired work folder."""
    shutil.rmtree(_retired(work_folder(out)), ignore_errors=True)
    for tmp in out.parent.glob(f".{out.name}.*.tmp"):
        tmp.unlink(missing_ok=True)


def _describe(key: str) -> str:
    return {
        "model_sha256": "the model file",
        "data": "the data",
        "parameters": "the parameters",
    }.get(key, key)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, payload: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(payload)
    _fsync(tmp)
    os.replace(tmp, path)
    _fsync(path.parent)
