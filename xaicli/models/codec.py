"""Encode table columns as one float matrix for the numeric core, and decode it for the model.

Numeric columns pass through as float64 (null -> NaN). Categorical columns (strings,
booleans, dictionaries) become float category codes, in order of first appearance
(background first, then the data in input order), so codes do not depend on chunking.
The methods only ever copy whole codes between rows; the model sees the original values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from xaicli.errors import DataError


def is_categorical_type(arrow_type: pa.DataType) -> bool:
    return (
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_boolean(arrow_type)
        or pa.types.is_dictionary(arrow_type)
        or pa.types.is_string_view(arrow_type)
    )


def _is_numeric_type(arrow_type: pa.DataType) -> bool:
    return (
        pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_decimal(arrow_type)
    )


@dataclass
class FeatureCodec:
    """Maps the feature columns of Arrow batches to a float matrix and back."""

    names: tuple[str, ...]
    categorical: tuple[bool, ...]
    categories: list[list[Any]] = field(default_factory=list)  # per column; empty for numeric
    _lookup: list[dict[Any, int]] = field(default_factory=list, repr=False)

    @classmethod
    def from_schema(cls, schema: pa.Schema, names: tuple[str, ...]) -> FeatureCodec:
        flags = []
        for name in names:
            arrow_type = schema.field(name).type
            if is_categorical_type(arrow_type):
                flags.append(True)
            elif _is_numeric_type(arrow_type):
                flags.append(False)
            else:
                raise DataError(
                    f"column {name!r} has type {arrow_type}, which cannot be explained; "
                    "use numeric, string or boolean columns, or leave it out with --features"
                )
        return cls(names, tuple(flags), [[] for _ in names], [{} for _ in names])

    @property
    def categorical_mask(self) -> np.ndarray:
        return np.array(self.categorical, dtype=bool)

    def encode(self, batch: pa.RecordBatch | pa.Table) -> np.ndarray:
        """(n_rows, n_features) float64; new categories get the next free code."""
        out = np.empty((batch.num_rows, len(self.names)), dtype=np.float64)
        for j, name in enumerate(self.names):
            column = batch.column(name)
            if isinstance(column, pa.ChunkedArray):
                column = column.combine_chunks()
            if self.categorical[j]:
                out[:, j] = self._encode_categorical(j, column)
            else:
                try:
                    values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise DataError(f"column {name!r} is not numeric: {exc}") from exc
                out[:, j] = values
        return out

    def _encode_categorical(self, j: int, column: pa.Array) -> np.ndarray:
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        # one Python step per distinct value, not per row: Arrow lists the distinct values
        # in order of first appearance, which keeps codes in that order too
        encoded = column.dictionary_encode()
        lookup, categories = self._lookup[j], self.categories[j]
        mapping = np.empty(len(encoded.dictionary) + 1, dtype=np.float64)
        for k, value in enumerate(encoded.dictionary.to_pylist()):
            code = lookup.get(value)
            if code is None:
                code = lookup[value] = len(categories)
                categories.append(value)
            mapping[k] = code
        mapping[-1] = np.nan  # nulls
        indices = encoded.indices.fill_null(len(encoded.dictionary)).to_numpy(zero_copy_only=False)
        return mapping[indices]

    def snapshot(self) -> tuple[tuple[Any, ...], ...]:
        """The category lists as they are now: enough to decode every code issued so far."""
        return tuple(tuple(c) for c in self.categories)


def decode_frame(
    X: np.ndarray,
    names: tuple[str, ...],
    categorical: tuple[bool, ...],
    categories: tuple[tuple[Any, ...], ...],
) -> pd.DataFrame:
    """The model-facing DataFrame for an encoded matrix X (n_rows, n_features)."""
    if not any(categorical):
        # one float block, no copy: scikit-learn turns it back into X without copying either
        return pd.DataFrame(X, columns=list(names), copy=False)
    columns: dict[str, Any] = {}
    for j, name in enumerate(names):
        if not categorical[j]:
            columns[name] = X[:, j]
            continue
        cats = categories[j]
        if (
            cats
            and all(isinstance(c, (bool, np.bool_)) for c in cats)
            and not np.isnan(X[:, j]).any()
        ):
            columns[name] = np.array(cats, dtype=bool)[X[:, j].astype(np.intp)]
            continue
        table = np.empty(len(cats) + 1, dtype=object)
        table[: len(cats)] = cats
        table[len(cats)] = np.nan
        codes = np.where(np.isnan(X[:, j]), len(cats), X[:, j]).astype(np.intp)
        columns[name] = table[codes]
    return pd.DataFrame(columns, copy=False)


def with_categories(frame: pd.DataFrame, categories: dict[str, list[Any]]) -> pd.DataFrame:
    """``frame`` with the named columns as pandas ``category`` columns of exactly these
    categories, in this order (a model fitted on ``category`` columns reads each value by
    its position in its training categories); values outside them become missing."""
    frame = frame.copy(deep=False)
    for name, cats in categories.items():
        if name in frame.columns:
            values = frame[name]
            # unseen values made missing first: pandas will refuse them in the constructor
            frame[name] = pd.Categorical(values.where(values.isin(cats)), categories=cats)
    return frame
