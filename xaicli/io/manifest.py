"""Provenance of a run: written beside the output and into the Parquet metadata."""

from __future__ import annotations

import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from xaicli.io.layout import FORMAT_VERSION

LIBRARIES = (
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "shap",
    "lime",
    "joblib",
    "numba",
    "skops",
)


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def build_manifest(
    *, tool_version: str, facts: dict[str, Any], parameters: dict[str, Any], extra: dict[str, Any]
) -> dict[str, Any]:
    return {
        "tool": "xaicli",
        "tool_version": tool_version,
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": sys.argv[1:] if sys.argv and sys.argv[0].endswith("xai") else None,
        "versions": library_versions(),
        **facts,
        "parameters": parameters,
        **extra,
    }
