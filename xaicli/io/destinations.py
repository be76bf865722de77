"""Checks on the files a run writes (output, manifest, rejects, job file), made before any
work: every folder exists and is writable, nothing replaces an input, and nothing
replaces an existing file unless the run may (``--overwrite``, or its own resumed run)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from xaicli.errors import UsageError


def check_writable_folder(path: Path, what: str) -> None:
    """``path``'s folder exists and this process may create files in it."""
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"{what} folder {folder} does not exist; create it or choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{what} folder {folder} is not writable; choose another path")
    if path.is_dir():
        raise UsageError(f"{what} {path} is a folder; give a file name")


def check_not_input(path: Path, what: str, inputs: Iterable[tuple[str, Path]]) -> None:
    """``path`` is none of the input files (resolved paths, so links and ``..`` count)."""
    for label, source in inputs:
        if same_file(path, source):
            raise UsageError(
                f"{what} {path} is the {label} file {source}; writing it would replace "
                "the input: choose another path"
            )


def check_absent(path: Path, what: str, *, may_replace: bool) -> None:
    if not may_replace and (path.exists() or path.is_symlink()):
        raise UsageError(f"{what} {path} already exists; pass --overwrite to replace it")


def same_file(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def input_files(
    data: Path, model: str, background: Path | None, baseline: str | None = None
) -> list[tuple[str, Path]]:
    """(label, path) of every input file a run reads: the data (each file of a data
    folder), the model's file, the background and a baseline file."""
    files: list[tuple[str, Path]] = []
    if data.is_dir():
        files += [("data", p) for p in sorted(data.rglob("*.parquet")) if p.is_file()]
    else:
        files.append(("data", data))
    model_file = _model_file(model)
    if model_file is not None:
        files.append(("model", model_file))
    if background is not None:
        files.append(("background", background))
    if baseline is not None and baseline not in ("mean", "median", "zero"):
        files.append(("baseline", Path(baseline)))
    return files


def _model_file(spec: str) -> Path | None:
    """The file a model spec names (``m.joblib``, ``path/file.py:attr``), if any."""
    if not spec:
        return None
    path = Path(spec)
    if path.is_file():
        return path
    target = spec.rpartition(":")[0]
    return Path(target) if target.endswith(".py") else None
