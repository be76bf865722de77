"""What the manifest and the summary say about the standard errors a run wrote: their
distribution per output, and the rows that stopped at the budget before the target."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from xaicli.io.layout import CONVERGED, SE_LONG, se_column

# the median comes from a histogram of log10(se) in steps of 0.01: within 2.3%
_LOW, _STEP = -15.0, 0.01
_BINS = int(30 / _STEP)  # 1e-15 .. 1e15


class ErrorSummary:
    """Reads the output tables as they are written (computed or resumed alike)."""

    def __init__(
        self,
        outputs: tuple[str, ...],
        features: tuple[str, ...],
        layout: str,
        *,
        errors: bool,
        converged: bool,
    ) -> None:
        self.outputs, self.features, self.layout = outputs, features, layout
        self.errors, self.converged = errors, converged
        k = len(outputs)
        self.count = np.zeros(k, dtype=np.int64)
        self.total = np.zeros(k)
        self.largest = np.zeros(k)
        self.zeros = np.zeros(k, dtype=np.int64)
        self.histogram = np.zeros((k, _BINS), dtype=np.int64)
        self.unconverged = 0  # input rows

    def observe(self, table: pa.Table) -> None:
        if self.converged:
            # one table row per output (long: and feature) of each input row
            per_row = len(self.outputs) * (len(self.features) if self.layout == "long" else 1)
            flags = table.column(CONVERGED).to_numpy(zero_copy_only=False)
            self.unconverged += int((~flags).sum()) // per_row
        if not self.errors:
            return
        wide = self.layout == "wide"
        outputs = table.column("output")
        for k, name in enumerate(self.outputs):
            rows = table.filter(pc.equal(outputs, name))
            if wide:
                se = np.column_stack(
                    [rows.column(se_column(f)).to_numpy() for f in self.features]
                ).reshape(-1)
            else:
                se = rows.column(SE_LONG).to_numpy()
            self._add(k, se)

    def _add(self, k: int, se: np.ndarray) -> None:
        if not se.size:
            return
        self.count[k] += se.size
        self.total[k] += float(se.sum())
        self.largest[k] = max(self.largest[k], float(se.max()))
        positive = se[se > 0]
        self.zeros[k] += se.size - positive.size
        index = np.clip(np.floor((np.log10(positive) - _LOW) / _STEP), 0, _BINS - 1)
        self.histogram[k] += np.bincount(index.astype(np.int64), minlength=_BINS)

    def _median(self, k: int) -> float:
        half = self.count[k] / 2
        if self.zeros[k] >= half:
            return 0.0
        cumulative = self.zeros[k] + np.cumsum(self.histogram[k])
        b = int(np.searchsorted(cumulative, half))
        return float(10 ** (_LOW + (b + 0.5) * _STEP))

    def facts(self) -> dict[str, Any]:
        """For the manifest: ``standard_errors`` {output: {mean, median, max}} and
        ``rows_at_budget`` (rows that stopped at the budget above their target)."""
        facts: dict[str, Any] = {}
        if self.errors:
            facts["standard_errors"] = {
                name: {
                    "mean": float(self.total[k] / self.count[k]) if self.count[k] else 0.0,
                    "median": self._median(k) if self.count[k] else 0.0,
                    "max": float(self.largest[k]),
                }
                for k, name in enumerate(self.outputs)
            }
        if self.converged:
            facts["rows_at_budget"] = self.unconverged
        return facts
