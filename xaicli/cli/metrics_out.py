"""Where the results of ``xai compare`` and ``xai evaluate`` go: a table for people on
stdout, or ``--out``: a CSV table, a JSON summary, or ``-`` for the JSON on stdout."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xaicli.errors import UsageError
from xaicli.io.destinations import check_absent, check_not_input, check_writable_folder
from xaicli.io.writer import write_text_atomic

SUFFIXES = (".csv", ".json")


def check_destination(out: str | None, *, overwrite: bool, inputs: list[tuple[str, Path]]) -> None:
    """Before any work: --out has a known format, a writable folder, is no input, and is
    new unless --overwrite."""
    if out is None or out == "-":
        return
    path = Path(out)
    if path.suffix.lower() not in SUFFIXES:
        raise UsageError(
            f"cannot tell the format of --out {out}; use .csv (a table), .json (a summary), "
            "or - for JSON on stdout"
        )
    check_writable_folder(path, "--out")
    check_not_input(path, "--out", inputs)
    check_absent(path, "--out", may_replace=overwrite)


def write_result(
    out: str | None, *, text: str, table: pd.DataFrame, summary: dict[str, Any]
) -> None:
    """No --out: ``text`` on stdout; ``-``: the JSON summary on stdout; else the file."""
    if out is None:
        print(text)
    elif out == "-":
        print(to_json(summary))
    elif Path(out).suffix.lower() == ".json":
        write_text_atomic(Path(out), to_json(summary) + "\n")
    else:
        write_text_atomic(Path(out), table.to_csv(index=False))


def to_json(summary: dict[str, Any]) -> str:
    """Strict JSON: numpy numbers as numbers, NaN (an undefined metric) as null."""
    return json.dumps(_plain(summary), indent=2, allow_nan=False)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
