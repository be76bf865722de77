"""Brute-force interventional Shapley values on DataFrames, for models that read pandas
``category`` columns: the independent reference of the tree engine's tests."""

from __future__ import annotations

from itertools import product
from math import factorial

import numpy as np
import pandas as pd


def enumerate_shap(predict, x: pd.DataFrame, background: pd.DataFrame) -> np.ndarray:
    """phi (n_outputs, M) of v(S) = mean_b predict(x_S, z_b,~S), every coalition S
    evaluated by ``predict`` on hybrid rows (one call); x is one row, columns as the model's."""
    n_features, n_background = x.shape[1], len(background)
    pool = pd.concat([x, background], ignore_index=True)
    coalitions = np.array(list(product([False, True], repeat=n_features)))  # (2^M, M)
    from_background = np.tile(np.arange(1, n_background + 1), len(coalitions))
    hybrid = pd.DataFrame(
        {
            name: pool[name]
            .iloc[np.where(np.repeat(coalitions[:, j], n_background), 0, from_background)]
            .reset_index(drop=True)
            for j, name in enumerate(x.columns)
        }
    )
    out = np.asarray(predict(hybrid), dtype=np.float64).reshape(len(coalitions), n_background, -1)
    value = out.mean(axis=1)  # (2^M, n_outputs)
    bit = 2 ** np.arange(n_features - 1, -1, -1)
    index = coalitions @ bit
    phi = np.zeros((value.shape[1], n_features))
    for row, members in zip(index, coalitions, strict=True):
        size = int(members.sum())
        for i in np.flatnonzero(~members):
            weight = factorial(size) * factorial(n_features - size - 1) / factorial(n_features)
            phi[:, i] += weight * (value[row | bit[i]] - value[row])
    return phi
