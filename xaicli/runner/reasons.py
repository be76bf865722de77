"""Reason columns in an ``xai explain`` run (``--reasons K``): planned once, before any work,
and added to each chunk's wide table from its attributions and its raw input values."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from xaicli.config import ExplainConfig
from xaicli.errors import UsageError
from xaicli.io.layout import is_reason_column, with_reason_columns
from xaicli.methods.base import Attributions
from xaicli.report.reasons import (
    ReasonSpec,
    ReasonUnits,
    load_reason_groups,
    reason_frame,
    reason_schema,
    reason_units,
)


@dataclass(frozen=True)
class ReasonPlan:
    """What the reason columns of a run need besides each chunk's results."""

    spec: ReasonSpec
    units: ReasonUnits
    output_kind: str
    schema: pa.Schema

    def add(self, table: pa.Table, result: Attributions, raw: pa.Table | None) -> pa.Table:
        """``table`` (a chunk's wide table) with its reason columns. raw: the chunk's rows'
        input values, a column per feature (one row per input row)."""
        n_rows, n_outputs, n_features = result.values.shape
        values = None
        if raw is not None:
            per_output = pa.array(np.repeat(np.arange(n_rows), n_outputs))
            values = raw.take(per_output).to_pandas()
        frame = reason_frame(
            result.values.reshape(n_rows * n_outputs, n_features),
            self.spec,
            self.units,
            values=values,
            outputs=table.column("output").to_pylist() if self.spec.text else None,
            predictions=result.predictions.reshape(-1),
            base_values=result.base_values.reshape(-1),
            output_kind=self.output_kind,
        )
        reasons = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        with_errors = result.standard_errors is not None  # <feature>_se after the features
        return with_reason_columns(table, reasons, n_features * (2 if with_errors else 1))

    def add_empty(self, schema: pa.Schema, n_after: int) -> pa.Schema:
        """The schema of a table with no rows, with the reason columns before its last
        ``n_after`` columns (see :func:`~xaicli.io.layout.with_reason_columns`)."""
        return with_reason_columns(schema.empty_table(), self.schema.empty_table(), n_after).schema


def plan_reasons(
    config: ExplainConfig, features: tuple[str, ...], output_kind: str
) -> ReasonPlan | None:
    """The run's reason plan, or None without ``--reasons``. Raises UsageError for a groups
    file that does not fit the features, or a feature named like a reason column."""
    destination = config.destination
    if destination.reasons is None:
        return None
    clash = [f for f in features if is_reason_column(f)]
    if clash:
        raise UsageError(
            f"feature {clash[0]!r} is named like a reason column; rename it, or drop --reasons"
        )
    groups = load_reason_groups(destination.reason_groups) if destination.reason_groups else ()
    spec = ReasonSpec(
        top=destination.reasons,
        direction=destination.reason_direction,
        groups=groups,
        text=destination.reason_text,
    )
    units = reason_units(features, groups)
    return ReasonPlan(spec, units, output_kind, reason_schema(spec, units))
