"""The neighbourhood distribution of tabular LIME, built once from background data.

Two modes, as ``lime.lime_tabular.LimeTabularExplainer`` with
``sample_around_instance=False``:

* discretized (default): every continuous feature is cut at its background
  quartiles; a perturbed value is drawn by picking a bin with its background
  frequency, then a value inside the bin from a normal with the bin's
  background mean and std, truncated to the bin's bounds. The interpretable
  feature is 1 when the sample falls in the row's bin, else 0. For a model that
  takes them (e.g. a Pipeline that imputes), ``NaN``, ``-inf`` and ``+inf`` are
  bins of their own after the quartile bins, each drawn with its background
  frequency and sampled at its value; the quartiles and bin statistics come
  from the finite values. Without such values in the background the sampler has
  the four quartile bins only, and draws exactly as before.
* continuous: a perturbed value is ``mean + std * N(0, 1)`` of the background
  column's finite values, and the interpretable feature is that standard-normal
  draw (the sample standardised by the background mean and std). A row's NaN
  has no z-score: :func:`.lime.explain_lime` refuses it.

Categorical features (float category codes, ``NaN`` a category of its own) are
drawn with their background frequencies in both modes; their interpretable
feature is 1 when the sampled code equals the row's.

The draws never depend on the explained row: it enters only through the
interpretable representation (:meth:`TabularSampler.interpretable`). Drawing
(:meth:`TabularSampler.draw`) and comparing are therefore separate steps, so a
single pool of neighbours can serve many rows.

One uniform per binned value picks both the bin (against the cumulative bin
frequencies) and, rescaled to the bin, the quantile of the value inside it. The
truncated normal is inverted exactly with ``scipy.special.ndtri`` (~10 ns a
value): linear interpolation in a 1025-point table per bin measured only ~25%
faster, not worth an approximation.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr, ndtri

from .base import BoolArray, FloatArray, IntArray

_QUARTILES = (25.0, 50.0, 75.0)
_N_BINS = len(_QUARTILES) + 1
#: Values that are bins of their own, numbered from ``_N_BINS`` in this order.
_SPECIAL = (np.nan, -np.inf, np.inf)
#: Added to every bin's std, as lime does, so that a bin holding a single
#: distinct value still defines a (very narrow) normal.
_STD_FLOOR = 1e-11


def _bin_of(values: FloatArray, borders: FloatArray) -> IntArray:
    """Bin of ``values`` (..., T) given ``borders`` (T, 3): the count of borders
    strictly below the value, so a value equal to a border falls in the lower
    bin (lime's ``np.searchsorted(quartiles, x)``); NaN, -inf and +inf in bins
    4, 5 and 6 of their own."""
    bins = (values[..., None] > borders).sum(axis=-1)
    if not np.isfinite(values).all():
        bins[np.isnan(values)] = _N_BINS
        bins[values == -np.inf] = _N_BINS + 1
        bins[values == np.inf] = _N_BINS + 2
    return bins


def _category_table(column: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Sorted distinct codes (V,) of ``column`` and their cumulative frequencies (V,)."""
    codes, counts = np.unique(column, return_counts=True)  # NaNs count as one code
    cum = np.cumsum(counts) / counts.sum()
    cum[-1] = 1.0
    return codes, cum


@dataclass(frozen=True)
class Neighbours:
    """``n`` draws from the neighbourhood distribution, for one row or shared by many.

    inputs: (..., n, M) the samples fed to the model.
    bins:   (..., n, T) bin (0..3) of each binned feature.
    codes:  (..., n, C) category code of each categorical feature.
    normal: (..., n, G) standard-normal draw of each Gaussian feature.
    """

    inputs: FloatArray
    bins: npt.NDArray[np.int8]
    codes: FloatArray
    normal: FloatArray

    def rows(self, index: int | slice) -> Neighbours:
        """The neighbours of one row or some rows, when each row has its own (leading axis R)."""
        return Neighbours(
            self.inputs[index], self.bins[index], self.codes[index], self.normal[index]
        )


@dataclass(frozen=True)
class TabularSampler:
    """Background statistics defining LIME's perturbation distribution; build with :meth:`fit`.

    Of the ``M`` features, ``C`` are categorical, ``T`` continuous and binned
    (discretized mode) and ``G`` continuous and Gaussian (continuous mode).

    categorical: (C,) column indices; ``codes[c]`` (V,) and ``code_cum[c]`` (V,)
                 their distinct background codes and cumulative frequencies.
    binned:      (T,) column indices; ``borders`` (T, 3) their quartiles, padded
                 with ``+inf`` where ties merged them.
    bin_cum:     (T, N) cumulative background frequency of each bin (1 from the
                 last non-empty bin on, so padding and empty bins are never drawn);
                 N is 4, or 7 when the background holds NaN or infinity (bins
                 4..6: NaN, -inf, +inf).
    bin_low, bin_high, bin_mean, bin_std: (T, N) each bin's bounds and the normal
                 drawn from within them.
    cdf_low, cdf_slope: (T, N) map a uniform ``u`` that picked bin ``b`` to the
                 standard-normal CDF level of its value:
                 ``cdf_low + (u - bin_start) * cdf_slope``, with ``bin_start`` the
                 cumulative frequency below the bin, ``cdf_low`` the CDF at the
                 standardised lower bound and ``cdf_slope`` the bin's CDF mass
                 between its bounds over its frequency.
    gaussian:    (G,) column indices; ``mean``, ``std`` (G,) the moments of their
                 finite background values (std 1 for a constant column, as
                 sklearn's StandardScaler).
    """

    categorical: IntArray
    codes: tuple[FloatArray, ...]
    code_cum: tuple[FloatArray, ...]
    binned: IntArray
    borders: FloatArray
    bin_cum: FloatArray
    bin_start: FloatArray
    bin_low: FloatArray
    bin_high: FloatArray
    bin_mean: FloatArray
    bin_std: FloatArray
    cdf_low: FloatArray
    cdf_slope: FloatArray
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

        special = not np.isfinite(background[:, binned]).all()
        n_bins = _N_BINS + len(_SPECIAL) if special else _N_BINS
        shape = (binned.size, n_bins)
        borders = np.full((binned.size, len(_QUARTILES)), np.inf)
        bin_cum, low, high = np.ones(shape), np.zeros(shape), np.zeros(shape)
        bin_mean, bin_std = np.zeros(shape), np.ones(shape)
        for t, j in enumerate(binned):
            column = background[:, j]
            finite = column[np.isfinite(column)]
            if finite.size:
                # Tied quartiles merge into one border, as in lime.
                qts = np.unique(np.percentile(finite, _QUARTILES))
                borders[t, : qts.size] = qts
                edges = np.concatenate([[finite.min()], qts, [finite.max()]])
                low[t, : qts.size + 1], high[t, : qts.size + 1] = edges[:-1], edges[1:]
            bins = _bin_of(column[:, None], borders[t : t + 1])[:, 0]
            counts = np.bincount(bins, minlength=n_bins)
            last = np.flatnonzero(counts).max()
            bin_cum[t, :last] = np.cumsum(counts)[:last] / column.size
            for b in np.flatnonzero(counts[:_N_BINS]):
                inside = column[bins == b]
                bin_mean[t, b] = inside.mean()
                bin_std[t, b] = inside.std() + _STD_FLOOR
        if special:
            # A special bin's draw is its value: mean + std * ndtri(0.5), clipped to [value, value].
            value = np.array(_SPECIAL)
            bin_mean[:, _N_BINS:] = low[:, _N_BINS:] = high[:, _N_BINS:] = value
        bin_start = np.concatenate([np.zeros((binned.size, 1)), bin_cum[:, :-1]], axis=1)
        frequency = bin_cum - bin_start
        with np.errstate(invalid="ignore"):  # special bins: set below
            cdf_low = ndtr((low - bin_mean) / bin_std)
            cdf_width = ndtr((high - bin_mean) / bin_std) - cdf_low
        # Bins never drawn (empty or padding) have frequency 0: give them slope 0.
        cdf_slope = np.divide(cdf_width, frequency, out=np.zeros(shape), where=frequency > 0)
        cdf_low[:, _N_BINS:], cdf_slope[:, _N_BINS:] = 0.5, 0.0

        tables = [_category_table(background[:, j]) for j in np.flatnonzero(categorical)]
        numbers = background[:, gaussian]
        if np.isfinite(numbers).all():
            std, mean = numbers.std(axis=0), numbers.mean(axis=0)
        else:  # the finite values' moments (a column without any: NaN, refused by the caller)
            numbers = np.where(np.isfinite(numbers), numbers, np.nan)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                std, mean = np.nanstd(numbers, axis=0), np.nanmean(numbers, axis=0)
        tiny = 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0)
        return cls(
            categorical=np.flatnonzero(categorical).astype(np.int64),
            codes=tuple(codes for codes, _ in tables),
            code_cum=tuple(cum for _, cum in tables),
            binned=binned.astype(np.int64),
            borders=borders,
            bin_cum=bin_cum,
            bin_start=bin_start,
            bin_low=low,
            bin_high=high,
            bin_mean=bin_mean,
            bin_std=bin_std,
            cdf_low=cdf_low,
            cdf_slope=cdf_slope,
            gaussian=gaussian.astype(np.int64),
            mean=mean,
            std=np.where(std > tiny, std, 1.0),
        )

    @property
    def n_features(self) -> int:
        return self.categorical.size + self.binned.size + self.gaussian.size

    def draw(self, rng: np.random.Generator, n: int) -> Neighbours:
        """``n`` neighbours (n, M) from ``rng`` alone: they do not depend on any row."""
        into = Neighbours(
            inputs=np.empty((n, self.n_features)),
            bins=np.empty((n, self.binned.size), dtype=np.int8),
            codes=np.empty((n, self.categorical.size)),
            normal=np.empty((n, self.gaussian.size)),
        )
        self._fill(rng, into, self._scratch(n))
        return into

    def draw_rows(
        self, X: FloatArray, rngs: Sequence[np.random.Generator], n_samples: int
    ) -> tuple[FloatArray, Neighbours]:
        """Each row of ``X`` (R, M) its own ``n_samples - 1`` neighbours, row ``r``
        drawing from ``rngs[r]`` only. Returns the model inputs (R, n_samples, M),
        sample 0 the row itself, and the neighbours (R, n_samples - 1, ...)."""
        n_rows, n_features = X.shape
        n_new = n_samples - 1
        inputs = np.empty((n_rows, n_samples, n_features))
        inputs[:, 0] = X
        neighbours = Neighbours(
            inputs=inputs[:, 1:],
            bins=np.empty((n_rows, n_new, self.binned.size), dtype=np.int8),
            codes=np.empty((n_rows, n_new, self.categorical.size)),
            normal=np.empty((n_rows, n_new, self.gaussian.size)),
        )
        # Row by row, as each row draws from its own stream; the work arrays are
        # reused, as fresh ones would cost page faults on every row.
        scratch = self._scratch(n_new)
        for r, rng in enumerate(rngs):
            self._fill(rng, neighbours.rows(r), scratch)
        return inputs, neighbours

    def interpretable(
        self, X: FloatArray, neighbours: Neighbours, out: FloatArray | None = None
    ) -> FloatArray:
        """(R, 1 + n, M) interpretable representation of each row of ``X`` (R, M)
        (sample 0: 1, or the row's z-score for a Gaussian feature) and of the
        neighbours, its own (R, n, ...) or shared by all rows (n, ...); written
        to ``out`` when given."""
        n_rows, n_features = X.shape
        n = neighbours.inputs.shape[-2]
        Z = np.empty((n_rows, 1 + n, n_features)) if out is None else out
        Z[:, 0] = 1.0
        for c, j in enumerate(self.categorical):
            code = neighbours.codes[..., c]  # (R, n) or (n,)
            own = X[:, j, None]
            Z[:, 1:, j] = (code == own) | (np.isnan(code) & np.isnan(own))
        if self.binned.size:
            # C order matters: broadcasting over a strided last axis is ~10x slower.
            own_bin = np.ascontiguousarray(_bin_of(X[:, self.binned], self.borders), np.int8)
            Z[:, 1:, _columns(self.binned)] = neighbours.bins == own_bin[:, None]
        if self.gaussian.size:
            cols = _columns(self.gaussian)
            Z[:, 1:, cols] = neighbours.normal
            Z[:, 0, cols] = (X[:, self.gaussian] - self.mean) / self.std
        return Z

    def _scratch(self, n: int) -> _Scratch:
        n_bin = self.binned.size
        return _Scratch(
            uniform=np.empty((n, self.categorical.size + n_bin)),
            flag=np.empty((n, n_bin), dtype=bool),
            flat=np.empty((n, n_bin), dtype=np.intp),
            values=np.empty((n, n_bin)),
            table=np.empty((n, n_bin)),
            gaussian=np.empty((n, self.gaussian.size)),
        )

    def _fill(self, rng: np.random.Generator, into: Neighbours, scratch: _Scratch) -> None:
        """Draw ``n`` neighbours from ``rng`` into the (n, ...) arrays of ``into``."""
        n_cat = self.categorical.size
        uniform = rng.random(out=scratch.uniform)  # (n, C + T)
        rng.standard_normal(out=into.normal)

        for c, j in enumerate(self.categorical):
            pick = np.searchsorted(self.code_cum[c], uniform[:, c], side="right")
            into.codes[:, c] = self.codes[c][pick]
            into.inputs[:, j] = into.codes[:, c]

        if self.binned.size:
            u, flag, flat = uniform[:, n_cat:], scratch.flag, scratch.flat
            values, table = scratch.values, scratch.table
            # Inverse-CDF choice of the bin: the count of cumulative frequencies <= u.
            bins = into.bins
            bins[...] = 0
            n_bins = self.bin_cum.shape[1]
            for b in range(n_bins - 1):
                bins += np.greater_equal(u, self.bin_cum[:, b], out=flag)
            # ``flat`` indexes the (T, 4) per-bin tables (``take`` with ``out`` needs
            # mode "clip", which never clips here).
            np.add(bins, n_bins * np.arange(self.binned.size), out=flat)
            # The same u, rescaled within its bin, is the quantile of the value: an
            # inverse-CDF draw of the truncated normal. A bin's mean lies inside its
            # bounds, so its CDF mass between them never cancels.
            np.subtract(u, self.bin_start.take(flat, out=table, mode="clip"), out=values)
            values *= self.cdf_slope.take(flat, out=table, mode="clip")
            values += self.cdf_low.take(flat, out=table, mode="clip")
            ndtri(values, out=values)
            values *= self.bin_std.take(flat, out=table, mode="clip")
            values += self.bin_mean.take(flat, out=table, mode="clip")
            # Clipping guards ndtri's infinities and maps a one-value bin to that value.
            np.maximum(values, self.bin_low.take(flat, out=table, mode="clip"), out=values)
            np.minimum(values, self.bin_high.take(flat, out=table, mode="clip"), out=values)
            into.inputs[:, _columns(self.binned)] = values

        if self.gaussian.size:
            values = np.multiply(into.normal, self.std, out=scratch.gaussian)
            values += self.mean
            into.inputs[:, _columns(self.gaussian)] = values


@dataclass(frozen=True)
class _Scratch:
    """Work arrays of :meth:`TabularSampler._fill` for ``n`` draws: (n, C + T) uniforms,
    (n, T) bin flags, flat bin indices, values and table entries, (n, G) Gaussian values."""

    uniform: FloatArray
    flag: BoolArray
    flat: npt.NDArray[np.intp]
    values: FloatArray
    table: FloatArray
    gaussian: FloatArray


def _columns(index: IntArray) -> IntArray | slice:
    """``index`` as a slice when it is a contiguous range: assigning through a slice
    is several times faster than through an index array on (R, S, M) arrays."""
    if index.size and np.array_equal(index, np.arange(index[0], index[0] + index.size)):
        return slice(int(index[0]), int(index[0]) + index.size)
    return index
