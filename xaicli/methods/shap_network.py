"""The outputs of a dense neural network on hybrid rows, without building the rows.

The SHAP algorithms evaluate the model on hybrids h = (x_S, z_b[~S]) of a row x and a
background row z_b. The first layer of a multilayer perceptron is affine, and
preprocessing that acts column by column keeps it a sum of per-column terms,
``pre(h) = c + sum_j g_j(h_j)``, so

    pre(x_S, z_b[~S]) = pre(z_b) + sum_{j in S} (g_j(x_j) - g_j(z_bj)).

The features are split into groups of at most ``MAX_GROUP_BITS``; for each (row,
background row) the sums over every subset of each group are tabulated, each entry one
vector addition from a smaller subset. A coalition's first layer is then one addition
per group instead of M multiply-adds, and no hybrid row is written. The later layers
run as matrix products on tiles of coalitions. The result equals the model's forward
pass up to the order of floating-point additions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit

from xaicli.methods.base import BoolArray, FloatArray

MAX_GROUP_BITS = 12  # a table of 4,096 entries per group: stays in cache
TILE = 1024  # coalitions per matrix product
HIDDEN_ACTIVATIONS = {"identity": 0, "relu": 1, "tanh": 2, "logistic": 3}
OUTPUT_ACTIVATIONS = {"identity": 0, "logistic": 3, "softmax": 4, "exp": 5}


@dataclass(frozen=True)
class DenseLayers:
    """The layers after the first, as arrays.

    weights, biases: layer l maps (n, H_l) to (n, H_{l+1}); the last gives the raw outputs.
    hidden_activation: applied after the first layer and every layer but the last.
    output_activation: applied after the last.
    two_class: the output is one probability p, returned as the columns (1 - p, p).
    columns: the returned output columns (empty: all).
    """

    weights: tuple[FloatArray, ...]
    biases: tuple[FloatArray, ...]
    hidden_activation: str
    output_activation: str
    two_class: bool
    columns: tuple[int, ...]


@dataclass(frozen=True)
class NetworkBackground:
    """What the hybrids of every row share: the layers after the first, and the first
    layer on the background rows.

    pre: (B, H) the background rows' first-layer pre-activations.
    terms: (B, M, H) their per-column first-layer terms.
    """

    layers: DenseLayers
    pre: FloatArray
    terms: FloatArray

    @classmethod
    def measure(
        cls,
        layers: DenseLayers,
        first_layer: Callable[[FloatArray], FloatArray],
        first_layer_terms: Callable[[FloatArray], FloatArray],
        background: FloatArray,
    ) -> NetworkBackground:
        return cls(
            layers,
            np.ascontiguousarray(first_layer(background), dtype=np.float64),
            np.ascontiguousarray(first_layer_terms(background), dtype=np.float64),
        )


class NetworkHybrids:
    """``hybrids(x, masks) -> (g, B, C, K)``: the network's explained outputs on the hybrid
    rows of x (g, M) and the background (B, M), for masks (g|1, C, B|1, M), True = x.

    first_layer(rows) -> (n, H) pre-activations of the first hidden layer;
    first_layer_terms(rows) -> (n, M, H) the per-column terms g_j(rows[:, j]) (any common
    offset cancels).
    """

    def __init__(
        self,
        layers: DenseLayers,
        first_layer: Callable[[FloatArray], FloatArray],
        first_layer_terms: Callable[[FloatArray], FloatArray],
        background: FloatArray,
    ) -> None:
        network = NetworkBackground.measure(layers, first_layer, first_layer_terms, background)
        self._bind(network, first_layer_terms)

    @classmethod
    def from_background(
        cls,
        network: NetworkBackground,
        first_layer_terms: Callable[[FloatArray], FloatArray],
    ) -> NetworkHybrids:
        """Hybrids over a background measured once (:meth:`NetworkBackground.measure`);
        ``first_layer_terms`` measures the explained rows the same way."""
        hybrids = cls.__new__(cls)
        hybrids._bind(network, first_layer_terms)
        return hybrids

    def _bind(
        self,
        network: NetworkBackground,
        first_layer_terms: Callable[[FloatArray], FloatArray],
    ) -> None:
        layers = network.layers
        self.layers = layers
        self.first_layer_terms = first_layer_terms
        self.background_pre = network.pre
        self.background_terms = network.terms
        self.weights = tuple(np.ascontiguousarray(w, dtype=np.float64) for w in layers.weights)
        self.biases = tuple(np.ascontiguousarray(b, dtype=np.float64) for b in layers.biases)
        n_raw = self.weights[-1].shape[1]
        all_columns = 2 if layers.two_class else n_raw
        self.columns = np.array(layers.columns or range(all_columns), dtype=np.int64)

    def __call__(self, x: FloatArray, masks: BoolArray) -> FloatArray:
        g, n_features = x.shape
        n_background = self.background_pre.shape[0]
        n_coalitions = masks.shape[1]
        starts, sizes, offsets = subset_groups(n_features, n_coalitions)
        low_bit = _low_bits(int(sizes.max()))
        terms = np.ascontiguousarray(self.first_layer_terms(x), dtype=np.float64)
        out = np.empty((g, n_background, n_coalitions, len(self.columns)))
        _network_outputs(
            np.ascontiguousarray(masks, dtype=np.bool_),
            terms,
            self.background_terms,
            self.background_pre,
            starts,
            sizes,
            offsets,
            low_bit,
            self.weights,
            self.biases,
            HIDDEN_ACTIVATIONS[self.layers.hidden_activation],
            OUTPUT_ACTIVATIONS[self.layers.output_activation],
            self.layers.two_class,
            self.columns,
            out,
        )
        return out


def subset_groups(n_features: int, n_coalitions: int) -> tuple[np.ndarray, ...]:
    """Split M features into contiguous groups: (starts, sizes, table offsets).

    Tabulating a group of s features costs 2^s additions per (row, background row) and
    each coalition one addition per group: the sizes minimise the sum of the two."""
    candidates = []
    for bits in range(1, min(n_features, MAX_GROUP_BITS) + 1):
        n_groups = -(-n_features // bits)
        sizes = np.full(n_groups, n_features // n_groups, dtype=np.int64)
        sizes[: n_features % n_groups] += 1
        candidates.append((n_groups * n_coalitions + int((1 << sizes).sum()), bits, sizes))
    sizes = min(candidates, key=lambda c: c[:2])[2]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(1 << sizes)]).astype(np.int64)
    return starts, sizes, offsets


def _low_bits(bits: int) -> np.ndarray:
    """low_bit[s]: index of the lowest set bit of s, for 0 < s < 2^bits."""
    s = np.arange(1 << bits)
    s[0] = 1
    return np.log2(s & -s).astype(np.int64)


@njit(cache=True, fastmath=True)
def _activate(a, kind):  # type: ignore[no-untyped-def]
    """In place on a (n, H): identity 0, relu 1, tanh 2, logistic 3, softmax 4, exp 5."""
    n, h = a.shape
    if kind == 1:
        for r in range(n):
            for k in range(h):
                a[r, k] = max(a[r, k], 0.0)
    elif kind == 2:
        for r in range(n):
            for k in range(h):
                a[r, k] = np.tanh(a[r, k])
    elif kind == 3:
        for r in range(n):
            for k in range(h):
                a[r, k] = 1.0 / (1.0 + np.exp(-a[r, k]))
    elif kind == 4:
        for r in range(n):
            top = a[r, 0]
            for k in range(1, h):
                top = max(top, a[r, k])
            total = 0.0
            for k in range(h):
                a[r, k] = np.exp(a[r, k] - top)
                total += a[r, k]
            for k in range(h):
                a[r, k] /= total
    elif kind == 5:
        for r in range(n):
            for k in range(h):
                a[r, k] = np.exp(a[r, k])


@njit(cache=True, fastmath=True)  # fastmath lets the row loops vectorise; no reductions
def _network_outputs(  # type: ignore[no-untyped-def]
    masks,
    terms,
    background_terms,
    background_pre,
    starts,
    sizes,
    offsets,
    low_bit,
    weights,
    biases,
    hidden,
    output,
    two_class,
    columns,
    out,
):
    g, n_background, n_coalitions, _ = out.shape
    n_features, width = terms.shape[1], terms.shape[2]
    n_groups = starts.shape[0]
    n_layers = len(weights)
    table = np.empty((offsets[n_groups], width))
    delta = np.empty((n_features, width))
    tile = np.empty((min(n_coalitions, TILE), width))
    # codes[c, mb, q]: the table row of coalition c's members in group q
    codes = np.empty((n_coalitions, masks.shape[2], n_groups), dtype=np.int64)
    for i in range(g):
        if i == 0 or masks.shape[0] > 1:
            mi = i if masks.shape[0] > 1 else 0
            for c in range(n_coalitions):
                for mb in range(masks.shape[2]):
                    for q in range(n_groups):
                        code = 0
                        for j in range(sizes[q]):  # without branches: masks are random
                            code |= np.int64(masks[mi, c, mb, starts[q] + j]) << j
                        codes[c, mb, q] = offsets[q] + code
        for b in range(n_background):
            mb = b if masks.shape[2] > 1 else 0
            for j in range(n_features):
                for k in range(width):
                    delta[j, k] = terms[i, j, k] - background_terms[b, j, k]
            # table[offsets[q] + s]: sum of delta over the subset s of group q; group 0
            # also carries the background row's own pre-activation
            for q in range(n_groups):
                o = offsets[q]
                for k in range(width):
                    table[o, k] = background_pre[b, k] if q == 0 else 0.0
                for s in range(1, 1 << sizes[q]):
                    j = starts[q] + low_bit[s]
                    prev = o + (s & (s - 1))
                    for k in range(width):
                        table[o + s, k] = table[prev, k] + delta[j, k]
            for c0 in range(0, n_coalitions, tile.shape[0]):
                n = min(tile.shape[0], n_coalitions - c0)
                for t in range(n):
                    row = codes[c0 + t, mb, 0]
                    for k in range(width):
                        tile[t, k] = table[row, k]
                    for q in range(1, n_groups):
                        row = codes[c0 + t, mb, q]
                        for k in range(width):
                            tile[t, k] += table[row, k]
                a = tile[:n]
                _activate(a, hidden)
                for layer in range(n_layers):
                    a = np.dot(a, weights[layer])
                    a += biases[layer]
                    _activate(a, hidden if layer < n_layers - 1 else output)
                for t in range(n):
                    for r in range(columns.shape[0]):
                        col = columns[r]
                        if two_class:
                            p = a[t, 0]
                            out[i, b, c0 + t, r] = p if col == 1 else 1.0 - p
                        else:
                            out[i, b, c0 + t, r] = a[t, col]
