"""The neighbourhood distribution of tabular LIME, built once from background data.

Two modes, as ``lime.lime_tabular.LimeTabularExplainer`` with
``sample_around_instance=False``:

* discretized (default): every continuous feature is cut at its background
  quartiles; a perturbed value is drawn by picking a bin with its background
  frequency, then a value inside the bin from a normal with the bin's
  background mean and std, truncated to the bin's bounds. The interpretable
  feature is 1 when the sample falls in the row's bin, else 0.
* continuous: a perturbed value is ``mean + std * N(0, 1)`` of the background
  column, and the interpretable feature is that standard-normal draw (the
  sample standardised by the background mean and std).

Categorical features (float category codes, ``NaN`` a category of its own) are
drawn with their background frequencies in both modes; their interpretable
feature is 1 when the sampled code equals the row's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

from .base import BoolArray, FloatArray, IntArray

_QUARTILES = (25.0, 50.0, 75.0)
_N_BINS = len(_QUARTILES) + 1
#: Added to every bin's std, as lime does, so that a bin holding a single
#: distinct value still defines a (very narrow) normal.
_STD_FLOOR = 1e-11


def _bin_of(values: FloatArray, borders: FloatArray) -> IntArray:
    """Bin of ``values`` (..., T) given ``borders`` (T, 3): the count of borders
    strictly below the value, so a value equal to a border falls in the lower
    bin (lime's ``np.searchsorted(quartiles, x)``)."""
    return (values[..., None] > borders).sum(axis=-1)


def _category_table(column: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Sorted distinct codes (V,) of ``column`` and their cumulative frequencies (V,)."""
    codes, counts = np.unique(column, return_counts=True)  # NaNs count as one code
    cum = np.cumsum(counts) / counts.sum()
    cum[-1] = 1.0
    return codes, cum


@dataclass(frozen=True)
class TabularSampler:
    """Background statistics defining LIME's perturbation distribution; build with :meth:`fit`.

    Of the ``M`` features, ``C`` are categorical, ``T`` continuous and binned
    (discretized mode) and ``G`` continuous and Gaussian (continuous mode).

    categorical: (C,) column indices; ``codes[c]`` (V,) and ``code_cum[c]`` (V,)
                 their distinct background codes and cumulative frequencies.
    binned:      (T,) column indices; ``borders`` (T, 3) their quartiles, padded
                 with ``+inf`` where ties merged them.
    bin_cum:     (T, 4) cumulative background frequency of each bin (1 from the
                 last non-empty bin on, so padding and empty bins are never drawn).
    bin_low, bin_high, bin_mean, bin_std: (T, 4) each bin's bounds and the normal
                 drawn from within them; ``cdf_low`` and ``cdf_width`` the
                 standard-normal CDF at the standardised lower bound and the
                 CDF mass between the bounds.
    gaussian:    (G,) column indices; ``mean``, ``std`` (G,) their background
                 moments (std 1 for a constant column, as sklearn's StandardScaler).
    """

    categorical: IntArray
    codes: tuple[FloatArray, ...]
    code_cum: tuple[FloatArray, ...]
    binned: IntArray
    borders: FloatArray
    bin_cum: FloatArray
    bin_low: FloatArray
    bin_high: FloatArray
    bin_mean: FloatArray
    bin_std: FloatArray
    cdf_low: FloatArray
    cdf_width: FloatArray
    gaussian: IntArray
    mean: FloatArray
    std: FloatArray

    @classmethod
    def fit(
        cls, background: FloatArray, categorical: BoolArray, discretize: bool
    ) -> TabularSampler:
        """Statistics of ``background`` (B, M); ``categorical`` (M,) marks code columns."""
        continuous = np.flatnonzero(~categorical)
        binned = continuous if discretize else np.empty(0, dtype=np.int64)
        gaussian = np.empty(0, dtype=np.int64) if discretize else continuous

        shape = (binned.size, _N_BINS)
        borders = np.full((binned.size, len(_QUARTILES)), np.inf)
        bin_cum, low, high = np.ones(shape), np.zeros(shape), np.zeros(shape)
        bin_mean, bin_std = np.zeros(shape), np.ones(shape)
        for t, j in enumerate(binned):
            column = background[:, j]
            # Tied quartiles merge into one border, as in lime.
            qts = np.unique(np.percentile(column, _QUARTILES))
            borders[t, : qts.size] = qts
            bins = _bin_of(column[:, None], borders[t : t + 1])[:, 0]
            counts = np.bincount(bins, minlength=_N_BINS)
            last = np.flatnonzero(counts).max()
            bin_cum[t, :last] = np.cumsum(counts)[:last] / column.size
            edges = np.concatenate([[column.min()], qts, [column.max()]])
            low[t, : qts.size + 1], high[t, : qts.size + 1] = edges[:-1], edges[1:]
            for b in np.flatnonzero(counts):
                inside = column[bins == b]
                bin_mean[t, b] = inside.mean()
                bin_std[t, b] = inside.std() + _STD_FLOOR
        cdf_low = ndtr((low - bin_mean) / bin_std)

        tables = [_category_table(background[:, j]) for j in np.flatnonzero(categorical)]
        std = background[:, gaussian].std(axis=0)
        mean = background[:, gaussian].mean(axis=0)
        tiny = 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0)
        return cls(
            categorical=np.flatnonzero(categorical).astype(np.int64),
            codes=tuple(codes for codes, _ in tables),
            code_cum=tuple(cum for _, cum in tables),
            binned=binned.astype(np.int64),
            borders=borders,
            bin_cum=bin_cum,
            bin_low=low,
            bin_high=high,
            bin_mean=bin_mean,
            bin_std=bin_std,
            cdf_low=cdf_low,
            cdf_width=ndtr((high - bin_mean) / bin_std) - cdf_low,
            gaussian=gaussian.astype(np.int64),
            mean=mean,
            std=np.where(std > tiny, std, 1.0),
        )

    def sample(
        self, X: FloatArray, rngs: Sequence[np.random.Generator], n_samples: int
    ) -> tuple[FloatArray, FloatArray]:
        """Neighbours of each row of ``X`` (R, M); row ``r`` draws from ``rngs[r]`` only.

        Returns ``(inputs, interpretable)``, both (R, n_samples, M): the samples
        fed to the model and their interpretable representation. Sample 0 is
        the row itself (interpretable: 1, or the row's z-score for a Gaussian feature).
        """
        n_rows, n_features = X.shape
        n_new = n_samples - 1
        n_cat, n_bin, n_gauss = self.categorical.size, self.binned.size, self.gaussian.size

        # The one per-row loop: each row's draws must come from its own stream.
        u_cat = np.empty((n_rows, n_new, n_cat))
        u_bin = np.empty((n_rows, n_new, n_bin))
        u_value = np.empty((n_rows, n_new, n_bin))
        normal = np.empty((n_rows, n_new, n_gauss))
        for r, rng in enumerate(rngs):
            u_cat[r] = rng.random((n_new, n_cat))
            u_bin[r] = rng.random((n_new, n_bin))
            u_value[r] = rng.random((n_new, n_bin))
            normal[r] = rng.standard_normal((n_new, n_gauss))

        inputs = np.empty((n_rows, n_samples, n_features))
        interp = np.empty((n_rows, n_samples, n_features))
        inputs[:, 0] = X
        interp[:, 0] = 1.0

        for c, j in enumerate(self.categorical):
            pick = np.searchsorted(self.code_cum[c], u_cat[..., c], side="right")
            code = self.codes[c][pick]  # (R, n_new)
            own = X[:, j, None]
            inputs[:, 1:, j] = code
            interp[:, 1:, j] = (code == own) | (np.isnan(code) & np.isnan(own))

        if n_bin:
            cols = _columns(self.binned)
            # Inverse-CDF choice of the bin: the count of cumulative frequencies <= u.
            # Then ``flat`` indexes the (T, 4) per-bin tables.
            offset = _N_BINS * np.arange(n_bin)
            flat = (u_bin >= self.bin_cum[:, 0]).astype(np.intp)  # (R, n_new, T)
            for b in range(1, _N_BINS - 1):
                flat += u_bin >= self.bin_cum[:, b]
            flat += offset
            own_bin = _bin_of(X[:, self.binned], self.borders) + offset  # (R, T)
            interp[:, 1:, cols] = flat == own_bin[:, None]
            # Inverse-CDF draw of the truncated normal, in place in ``u_value``. A bin's
            # mean lies inside its bounds, so the CDF mass between them never cancels.
            values = u_value
            values *= self.cdf_width.take(flat)
            values += self.cdf_low.take(flat)
            ndtri(values, out=values)
            values *= self.bin_std.take(flat)
            values += self.bin_mean.take(flat)
            # Clipping guards ndtri's infinities and maps a one-value bin to that value.
            np.maximum(values, self.bin_low.take(flat), out=values)
            np.minimum(values, self.bin_high.take(flat), out=values)
            inputs[:, 1:, cols] = values

        if n_gauss:
            cols = _columns(self.gaussian)
            inputs[:, 1:, cols] = self.mean + self.std * normal
            interp[:, 1:, cols] = normal
            interp[:, 0, cols] = (X[:, self.gaussian] - self.mean) / self.std
        return inputs, interp


def _columns(index: IntArray) -> IntArray | slice:
    """``index`` as a slice when it is a contiguous range: assigning through a slice
    is several times faster than through an index array on (R, S, M) arrays."""
    if index.size and np.array_equal(index, np.arange(index[0], index[0] + index.size)):
        return slice(int(index[0]), int(index[0]) + index.size)
    return index
