"""Read attribution tables back: a Parquet or CSV file, or a folder of them, in the wide or
long layout, with the facts of the run that wrote them (method, outputs, features, ...).

Parquet files carry those facts in their schema metadata; CSV files in the manifest written
beside them (``OUT.manifest.json``). Without either, the layout, id columns and features are
inferred from the column names, as the table format defines them (``xaicli.io.layout``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from xaicli.errors import DataError
from xaicli.io.layout import (
    CONVERGED,
    FIXED_INTERACTIONS,
    FIXED_LONG,
    FIXED_WIDE,
    INTERACTIONS,
    ROW,
    SE_LONG,
    known_extras,
    reason_columns_in,
    se_column,
)
from xaicli.io.writer import FINAL_KEY, METADATA_KEY

SUFFIXES = (".parquet", ".pq", ".csv")
#: Rows per batch when a table is read in batches.
BATCH_ROWS = 65_536


@dataclass(frozen=True)
class AttributionTable:
    """An attribution table and what it describes.

    frame:          the table as written (wide: a row per input row and output; long: a
                    row per input row, output and feature; interactions: a row per input
                    row, output and ordered pair of features).
    layout:         ``wide``, ``long`` or ``interactions`` (``xai explain --interactions``).
    method, algorithm: as recorded by the run (None when the file carries no metadata).
    outputs:        the explained outputs (class labels, ``prediction``, ...), in order.
    features:       the feature columns (wide) or values of ``feature`` (long; interactions:
                    of ``feature_i``), in order.
    id_columns:     the columns that identify input rows (the ``--id-col`` columns, or ``row``).
    extra_columns:  method extras of the wide layout (``score``, ``completeness_error``,
                    ``converged``, ...).
    se_columns:     the standard errors' columns (``--errors``; format version 2): wide,
                    ``<feature>_se`` in feature order; long, ``se``; () without them.
    reason_columns: the reason columns of the wide layout (``reason_1``, ..., ``summary``), or ().
    base_values:    output -> base value, when every row of that output shares one (SHAP).
    format_version: the table format's version (None for files written before it existed).
    metadata:       the run's full provenance (the manifest), or {}.
    """

    frame: pd.DataFrame
    layout: str
    method: str | None
    algorithm: str | None
    outputs: tuple[str, ...]
    features: tuple[str, ...]
    id_columns: tuple[str, ...]
    extra_columns: tuple[str, ...]
    se_columns: tuple[str, ...] = ()
    base_values: dict[str, float] = field(default_factory=dict)
    format_version: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    reason_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class AttributionSource:
    """An attribution file or folder opened for reading in batches: what the table
    describes (as :class:`AttributionTable`, without the frame) and where its rows are.

    Summaries of million-row tables read it with :meth:`batches`, in constant memory.
    """

    path: Path
    files: tuple[Path, ...]
    columns: tuple[str, ...]
    layout: str
    method: str | None
    algorithm: str | None
    outputs: tuple[str, ...]
    features: tuple[str, ...]
    id_columns: tuple[str, ...]
    extra_columns: tuple[str, ...]
    se_columns: tuple[str, ...] = ()
    format_version: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    reason_columns: tuple[str, ...] = ()

    def batches(
        self, columns: Sequence[str] | None = None, batch_rows: int = BATCH_ROWS
    ) -> Iterator[pd.DataFrame]:
        """The table's rows in order, ``batch_rows`` at a time (all columns, or ``columns``)."""
        wanted = list(columns) if columns is not None else None
        for path in self.files:
            yield from _file_batches(path, self.id_columns, wanted, batch_rows)


def open_attributions(path: str | Path, *, interactions: bool = False) -> AttributionSource:
    """Open an attribution file written by ``xai explain`` (or a folder of such files, read
    in name order) with its metadata, reading only the schema and the metadata (and, for a
    long table without metadata, its ``output`` and ``feature`` columns). Raises DataError
    when it is not an attribution table (or, unless ``interactions``, an interaction
    table, which the commands that read attributions cannot use)."""
    path = Path(path)
    files = _files(path)
    metadata = _metadata(files[0])
    columns = _column_names(files[0])
    layout = _layout(columns, path)
    if layout == INTERACTIONS and not interactions:
        raise DataError(
            f"{path} is an interaction table (xai explain --interactions), not an attribution "
            "table; explain the rows without --interactions for this command"
        )
    id_columns = _id_columns(columns, metadata)
    if len(files) > 1 and any(tuple(_column_names(f)) != tuple(columns) for f in files[1:]):
        raise DataError(f"the files in {path} do not share one set of columns")
    extras = (
        tuple(c for c in columns if c in (*known_extras(), CONVERGED)) if layout == "wide" else ()
    )
    features: tuple[str, ...]
    outputs: tuple[str, ...]
    reasons: tuple[str, ...] = ()
    if layout == INTERACTIONS:
        recorded = metadata.get("interaction_features")
        features = (
            tuple(str(f) for f in recorded)
            if recorded
            else _distinct(files, id_columns, "feature_i")
        )
    elif metadata.get("features"):
        features = tuple(str(f) for f in metadata["features"])
        if layout == "wide":
            reasons = reason_columns_in(columns, features)
    elif layout == "wide":
        reasons = reason_columns_in(columns)
        taken = set(id_columns) | set(FIXED_WIDE) | set(extras) | set(reasons)
        features = _features_without_errors(tuple(c for c in columns if c not in taken))
    else:
        features = _distinct(files, id_columns, "feature")
    if layout == "wide":
        se_columns = tuple(se_column(f) for f in features if se_column(f) in columns)
        se_columns = se_columns if len(se_columns) == len(features) else ()
    elif layout == INTERACTIONS:
        se_columns = ()
    else:
        se_columns = (SE_LONG,) if SE_LONG in columns else ()
    if metadata.get("outputs"):
        outputs = tuple(str(o) for o in metadata["outputs"])
    else:
        outputs = _distinct(files, id_columns, "output")
    return AttributionSource(
        path=path,
        files=tuple(files),
        columns=tuple(columns),
        layout=layout,
        method=metadata.get("method"),
        algorithm=metadata.get("algorithm"),
        outputs=outputs,
        features=features,
        id_columns=id_columns,
        extra_columns=extras,
        se_columns=se_columns,
        format_version=metadata.get("format_version"),
        metadata=metadata,
        reason_columns=reasons,
    )


def read_attributions(path: str | Path, *, interactions: bool = True) -> AttributionTable:
    """Read an attribution file written by ``xai explain`` (or a folder of such files, read
    in name order) with its metadata; an interaction table (``--interactions``) too, as
    layout ``interactions``, unless ``interactions`` is False. Raises DataError when it is
    not such a table."""
    source = open_attributions(path, interactions=interactions)
    frame = pd.concat([_read(f, source.id_columns) for f in source.files], ignore_index=True)
    return AttributionTable(
        frame=frame,
        layout=source.layout,
        method=source.method,
        algorithm=source.algorithm,
        outputs=source.outputs,
        features=source.features,
        id_columns=source.id_columns,
        extra_columns=source.extra_columns,
        se_columns=source.se_columns,
        base_values=_base_values(frame, source.layout, source.metadata),
        format_version=source.format_version,
        metadata=source.metadata,
        reason_columns=source.reason_columns,
    )


def _features_without_errors(columns: tuple[str, ...]) -> tuple[str, ...]:
    """The feature columns of a wide table without metadata: its ``<feature>_se`` columns,
    when every feature before them has one, are standard errors (``--errors``)."""
    n = len(columns) // 2
    if n and columns[n:] == tuple(se_column(f) for f in columns[:n]):
        return columns[:n]
    return columns


def _distinct(files: list[Path], id_columns: tuple[str, ...], column: str) -> tuple[str, ...]:
    """The values of ``column`` in order of first appearance, read one batch at a time."""
    seen: dict[str, None] = {}
    for path in files:
        for batch in _file_batches(path, id_columns, [column], BATCH_ROWS):
            seen.update(dict.fromkeys(batch[column].astype(str)))
    return tuple(seen)


def _file_batches(
    path: Path, id_columns: tuple[str, ...], columns: list[str] | None, batch_rows: int
) -> Iterator[pd.DataFrame]:
    if _is_csv(path):
        text = {
            c: str for c in (*id_columns, "output", "feature", "feature_i", "feature_j") if c != ROW
        }
        if columns is not None:
            text = {c: t for c, t in text.items() if c in columns}
        yield from pd.read_csv(path, dtype=text, usecols=columns, chunksize=batch_rows)
        return
    # no pre-buffering or read-ahead threads: memory stays at about one row group
    batches = pq.ParquetFile(path, pre_buffer=False).iter_batches(
        batch_size=batch_rows, columns=columns, use_threads=False
    )
    for record_batch in batches:
        yield record_batch.to_pandas()


def _files(path: Path) -> list[Path]:
    if not path.exists():
        raise DataError(f"attribution file not found: {path}")
    if path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith((".", "_"))
        )
        if not files:
            raise DataError(f"folder {path} holds no .parquet or .csv attribution files")
        return files
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(f"cannot tell the format of {path}; expected .parquet or .csv")
    return [path]


def _is_csv(path: Path) -> bool:
    return path.suffix.lower() == ".csv"


def _metadata(path: Path) -> dict[str, Any]:
    """The run's facts: the Parquet schema metadata (plus the facts known only at the end),
    else the manifest beside the file."""
    if not _is_csv(path):
        try:
            file = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise DataError(f"{path} is not a readable Parquet file: {exc}") from exc
        found = file.schema_arrow.metadata or {}
        if METADATA_KEY in found:
            facts = json.loads(found[METADATA_KEY])
            final = (file.metadata.metadata or {}).get(FINAL_KEY)
            if final:
                facts.update(json.loads(final))
            return facts
    manifest = path.with_name(path.name + ".manifest.json")
    if manifest.is_file():
        try:
            return dict(json.loads(manifest.read_text()))
        except (OSError, ValueError):
            return {}
    return {}


def _column_names(path: Path) -> list[str]:
    if _is_csv(path):
        return list(pd.read_csv(path, nrows=0).columns)
    return list(pq.ParquetFile(path).schema_arrow.names)


def _layout(columns: list[str], path: Path) -> str:
    if all(c in columns for c in FIXED_INTERACTIONS):
        return INTERACTIONS
    if all(c in columns for c in FIXED_LONG):
        return "long"
    if all(c in columns for c in FIXED_WIDE):
        return "wide"
    raise DataError(
        f"{path} is not an attribution table: it lacks the columns "
        f"{', '.join(FIXED_WIDE)} (wide) or {', '.join(FIXED_LONG)} (long)"
    )


def _id_columns(columns: list[str], metadata: dict[str, Any]) -> tuple[str, ...]:
    recorded = (metadata.get("parameters") or {}).get("id_cols")
    if recorded:
        return tuple(str(c) for c in recorded)
    # the format puts the id columns (or ``row``) first, before ``output``
    return tuple(columns[: columns.index("output")]) or (ROW,)


def _read(path: Path, id_columns: tuple[str, ...]) -> pd.DataFrame:
    if _is_csv(path):
        # ids come back exactly as written (leading zeros, long account numbers)
        text = {c: str for c in id_columns if c != ROW}
        names = {c: str for c in ("output", "feature", "feature_i", "feature_j")}
        return pd.read_csv(path, dtype={**text, **names})
    return pd.read_parquet(path)


def _base_values(frame: pd.DataFrame, layout: str, metadata: dict[str, Any]) -> dict[str, float]:
    recorded = metadata.get("base_values")
    if recorded:
        return {str(k): float(v) for k, v in recorded.items()}
    if layout != "wide" or frame.empty:
        return {}
    per_output = frame.groupby("output", sort=False)["base_value"]
    if (per_output.nunique(dropna=False) == 1).all():
        return {str(k): float(v) for k, v in per_output.first().items()}
    return {}
