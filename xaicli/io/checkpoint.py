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
    """The work folder of one output. A new folder is created only when the first chunk
    is committed: a run that fails or is refused before that leaves nothing behind."""

    def __init__(self, folder: Path, fingerprint: dict[str, Any] | None = None) -> None:
        self.folder = folder
        self._fingerprint = fingerprint  # to write into a folder not created yet

    @classmethod
    def open(
        cls, out: Path, fingerprint: dict[str, Any], *, resume: bool, overwrite: bool
    ) -> ChunkStore:
        """The output's work folder: an interrupted run's (with ``resume``, if it was the
        same run), or a new one. Call with the output's lock held."""
        folder = work_folder(out)
        if folder.exists():
            if resume:
                store = cls(folder)
                store._check(fingerprint)
                return store
            if not overwrite:
                raise UsageError(
                    f"an interrupted run left {folder}; pass --resume to continue it, "
                    "or --overwrite to start again"
                )
            shutil.rmtree(folder)
        return cls(folder, fingerprint)

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

    def _create(self) -> None:
        self.folder.mkdir()
        state = json.dumps(self._fingerprint, indent=2, sort_keys=True).encode()
        _write_durably(self.folder / STATE, state)
        self._fingerprint = None

    def commit(self, index: int, table: pa.Table) -> None:
        if self._fingerprint is not None:
            self._create()
        target = self._chunk_path(index)
        tmp = target.with_suffix(".tmp")
        with pa.OSFile(str(tmp), "wb") as sink:
            pq.write_table(table, sink, compression="none")  # temporary: speed over size
        _fsync(tmp)
        os.replace(tmp, target)
        _fsync(self.folder)

    def read(self, index: int) -> pa.Table:
        return pq.read_table(self._chunk_path(index))

    def discard_if_empty(self) -> None:
        """After a failure: a folder holding no committed chunk has nothing to resume, and
        would only make the next run refuse to start."""
        if self.folder.exists() and not self.committed():
            self.remove()

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
    """Remove what a killed run could not: temporary outputs and a retired work folder.
    Only with the output's lock held: another run's temporary output is not a leftover."""
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
