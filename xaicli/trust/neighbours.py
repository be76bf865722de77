"""Nearest reference rows by chunks of the reference: a running top-K per row.

Distance between a row x and a reference row r (numeric columns standardized with the
reference's mean and standard deviation):

    d(x, r) = sqrt( sum_numeric (z_x - z_r)^2 + sum_categorical [x_c != r_c] )

so a categorical mismatch costs as much as a standardized binary column that differs
(1 in the squared sum). Ties are broken by the reference position (the earlier row
first), so the neighbours do not depend on how the reference is chunked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: most distances held at once (rows x reference rows of one block): 32 MB of float64
MAX_BLOCK_VALUES = 1 << 22


#: rows whose moments are merged at once: fixed, so the moments (and every distance) do not
#: depend on how the reference is chunked
STATS_BLOCK_ROWS = 4096


@dataclass
class ColumnStats:
    """Count, mean and sum of squared deviations of the numeric columns, merged block by
    block (Chan et al.'s parallel update) over blocks of ``STATS_BLOCK_ROWS`` rows at fixed
    positions, whatever batches the rows arrive in. Call ``add`` for every batch, in order,
    then ``finish``."""

    n_columns: int
    count: int = 0
    mean: np.ndarray = field(init=False)
    m2: np.ndarray = field(init=False)
    _pending: list[np.ndarray] = field(init=False, default_factory=list)
    _pending_rows: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.mean = np.zeros(self.n_columns)
        self.m2 = np.zeros(self.n_columns)

    def add(self, values: np.ndarray) -> None:
        """values: (n_rows, n_columns) float64, finite."""
        self._pending.append(values)
        self._pending_rows += values.shape[0]
        if self._pending_rows >= STATS_BLOCK_ROWS:
            rows = np.concatenate(self._pending)
            whole = (len(rows) // STATS_BLOCK_ROWS) * STATS_BLOCK_ROWS
            for start in range(0, whole, STATS_BLOCK_ROWS):
                self._merge(rows[start : start + STATS_BLOCK_ROWS])
            self._pending = [rows[whole:]]
            self._pending_rows = len(rows) - whole

    def finish(self) -> None:
        if self._pending_rows:
            self._merge(np.concatenate(self._pending))
        self._pending, self._pending_rows = [], 0

    def _merge(self, values: np.ndarray) -> None:
        n = values.shape[0]
        mean = values.mean(axis=0)
        m2 = ((values - mean) ** 2).sum(axis=0)
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * n / total)
        self.count = total

    def scale(self) -> np.ndarray:
        """Population standard deviation (as scikit-learn's StandardScaler); 1 for a
        constant column, which then adds nothing to any distance."""
        std = np.sqrt(self.m2 / max(self.count, 1))
        return np.where(std > 0, std, 1.0)


class RunningTopK:
    """The k nearest reference rows of each of n rows, updated one reference chunk at a
    time. ``squared`` (n, k) and ``positions`` (n, k) are sorted by (distance, position)."""

    def __init__(self, n_rows: int, k: int) -> None:
        self.k = k
        self.squared = np.full((n_rows, k), np.inf)
        self.positions = np.full((n_rows, k), -1, dtype=np.int64)

    def update(
        self,
        numeric: np.ndarray,
        categorical: np.ndarray,
        ref_numeric: np.ndarray,
        ref_categorical: np.ndarray,
        first_position: int,
    ) -> None:
        """Merge the reference rows ``first_position ...`` into the running top-k.
        numeric (n, p) and ref_numeric (m, p): standardized values; categorical (n, q) and
        ref_categorical (m, q): category codes."""
        m = ref_numeric.shape[0]
        step = max(1, MAX_BLOCK_VALUES // max(m, 1))
        for start in range(0, self.squared.shape[0], step):
            rows = slice(start, start + step)
            block = squared_distances(
                numeric[rows], categorical[rows], ref_numeric, ref_categorical
            )
            self._merge(rows, block, first_position)

    def _merge(self, rows: slice, block: np.ndarray, first_position: int) -> None:
        kept = min(self.k, block.shape[1])
        # a stable sort keeps equal distances in position order; the running entries come
        # first and hold earlier positions
        order = np.argsort(block, axis=1, kind="stable")[:, :kept]
        squared = np.concatenate(
            [self.squared[rows], np.take_along_axis(block, order, axis=1)], axis=1
        )
        positions = np.concatenate([self.positions[rows], order + first_position], axis=1)
        best = np.argsort(squared, axis=1, kind="stable")[:, : self.k]
        self.squared[rows] = np.take_along_axis(squared, best, axis=1)
        self.positions[rows] = np.take_along_axis(positions, best, axis=1)

    def distances(self) -> np.ndarray:
        return np.sqrt(self.squared)


def squared_distances(
    numeric: np.ndarray,
    categorical: np.ndarray,
    ref_numeric: np.ndarray,
    ref_categorical: np.ndarray,
) -> np.ndarray:
    """(n, m) squared distances, summed column by column in a fixed order: a pair's
    distance is the same whatever rows share its block."""
    out = np.zeros((numeric.shape[0], ref_numeric.shape[0]))
    for j in range(numeric.shape[1]):
        out += (numeric[:, j, None] - ref_numeric[None, :, j]) ** 2
    for j in range(categorical.shape[1]):
        out += categorical[:, j, None] != ref_categorical[None, :, j]
    return out
