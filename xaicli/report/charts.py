"""The report's charts, drawn with matplotlib's Agg backend: no display, no GUI toolkit.

Each function takes arrays and frames and returns a ``matplotlib.figure.Figure``; :func:`encode`
turns one into PNG or SVG bytes that are the same for the same input (no dates, fixed ids).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec

import matplotlib

# the headless backend, chosen before pyplot can ever be imported: no display is needed and
# saved images are never blank (pyplot on a display-less machine is how shap's come out blank)
matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = [
    "beeswarm_chart",
    "dependence_chart",
    "encode",
    "importance_chart",
    "waterfall_chart",
]

POSITIVE = "#d62728"
NEGATIVE = "#1f77b4"
NEUTRAL = "#7f7f7f"
CMAP = "coolwarm"
#: Category labels shown on a dependence plot's axis; more are left unlabelled.
MAX_CATEGORY_TICKS = 12
_STYLE: Any = {"svg.hashsalt": "xaicli", "svg.fonttype": "none", "font.size": 9}


def encode(figure: Figure, fmt: str, dpi: int = 100) -> bytes:
    """The figure as PNG or SVG bytes, without a creation date (same input, same bytes)."""
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    with matplotlib.rc_context(_STYLE):
        figure.savefig(buffer, format=fmt, dpi=dpi, metadata=metadata)
    return buffer.getvalue()


P = ParamSpec("P")


def _styled(draw: Callable[P, Figure]) -> Callable[P, Figure]:
    """Draw with the report's style (rcParams apply when artists are created)."""

    @functools.wraps(draw)
    def styled(*args: P.args, **kwargs: P.kwargs) -> Figure:
        with matplotlib.rc_context(_STYLE):
            return draw(*args, **kwargs)

    return styled


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


@_styled
def importance_chart(
    features: Sequence[str], mean_abs: np.ndarray, *, top: int, title: str
) -> Figure:
    """Horizontal bars of mean |attribution|, largest on top; beyond ``top`` features, one
    bar for the sum of the rest. features/mean_abs: ordered by rank, shape (n_features,)."""
    labels = list(features[:top])
    values = list(np.asarray(mean_abs[:top], dtype=float))
    rest = len(features) - top
    if rest > 0:
        labels.append(f"sum of {rest} other features")
        values.append(float(np.nansum(mean_abs[top:])))
    figure = _figure(7.5, 0.8 + 0.32 * len(labels))
    axes = figure.add_subplot()
    colours = [
        NEUTRAL if rest > 0 and i == len(labels) - 1 else NEGATIVE for i in range(len(labels))
    ]
    axes.barh(np.arange(len(labels))[::-1], values, color=colours)
    axes.set_yticks(np.arange(len(labels))[::-1], labels=[_short(x) for x in labels])
    axes.set_xlabel("mean |attribution|")
    axes.set_title(title)
    axes.spines[["top", "right"]].set_visible(False)
    return figure


def colour_scale(values: pd.Series) -> tuple[np.ndarray, list[str] | None]:
    """Values mapped to [0, 1] for colouring (NaN stays NaN): numbers between their 5th and
    95th percentiles, categories by category code. Returns the scale and the categories
    (None for numbers)."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.to_numpy(dtype=float)
        finite = numbers[np.isfinite(numbers)]
        if finite.size == 0:
            return np.full(numbers.shape, np.nan), None
        low, high = np.percentile(finite, [5, 95])
        if high <= low:
            low, high = finite.min(), finite.max()
        span = high - low if high > low else 1.0
        return np.clip((numbers - low) / span, 0.0, 1.0), None
    codes, categories = pd.factorize(values.astype("string"), sort=True)
    scale = codes / max(len(categories) - 1, 1)
    return np.where(codes < 0, np.nan, scale), [str(c) for c in categories]


def _swarm_offsets(values: np.ndarray, n_bins: int = 100) -> np.ndarray:
    """Vertical offsets in [-0.4, 0.4] that stack points of nearly equal value side by side
    (the beeswarm's layout: points in one bin of the x axis alternate above and below)."""
    if values.size == 0:
        return values
    span = np.ptp(values) or 1.0
    bins = np.floor((values - values.min()) / span * (n_bins - 1)).astype(np.int64)
    order = np.argsort(bins, kind="stable")
    sorted_bins = bins[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_bins)) + 1]
    layer = np.arange(values.size) - np.repeat(starts, np.diff(np.r_[starts, values.size]))
    offset_sorted = np.ceil(layer / 2) * np.where(layer % 2 == 1, -1.0, 1.0)
    offsets = np.empty(values.size)
    offsets[order] = offset_sorted
    biggest = np.abs(offsets).max()
    return offsets * (0.4 / biggest) if biggest > 0 else offsets


@_styled
def beeswarm_chart(
    features: Sequence[str], attributions: pd.DataFrame, values: pd.DataFrame, *, title: str
) -> Figure:
    """One row of points per feature (most important on top): x is the attribution, the
    colour the feature's value (low blue, high red; categories by code; missing grey)."""
    figure = _figure(7.5, 1.0 + 0.45 * len(features))
    axes = figure.add_subplot()
    n = len(features)
    for i, feature in enumerate(features):
        x = attributions[feature].to_numpy(dtype=float)
        scale, _ = colour_scale(values[feature])
        y = (n - 1 - i) + _swarm_offsets(np.nan_to_num(x))
        missing = np.isnan(scale)
        axes.scatter(x[missing], y[missing], s=6, c=NEUTRAL, linewidths=0, rasterized=True)
        points = axes.scatter(
            x[~missing],
            y[~missing],
            s=6,
            c=scale[~missing],
            cmap=CMAP,
            vmin=0,
            vmax=1,
            linewidths=0,
            rasterized=True,
        )
    axes.axvline(0, color=NEUTRAL, linewidth=0.8)
    axes.set_yticks(np.arange(n)[::-1], labels=[_short(f) for f in features])
    axes.set_xlabel("attribution (impact on the output)")
    axes.set_title(title)
    axes.spines[["top", "right"]].set_visible(False)
    if n:
        bar = figure.colorbar(points, ax=axes, ticks=[0, 1], aspect=40, pad=0.01)
        bar.ax.set_yticklabels(["low", "high"])
        bar.set_label("feature value (categories: by code)")
    return figure


@_styled
def dependence_chart(
    features: Sequence[str],
    attributions: pd.DataFrame,
    values: pd.DataFrame,
    *,
    title: str,
    columns: int = 3,
) -> Figure:
    """Small multiples, one per feature: the feature's value (x) against its attribution (y).
    Categories are spread around their code with a fixed jitter and labelled."""
    rows = max(1, -(-len(features) // columns))
    figure = _figure(3.1 * columns, 2.5 * rows)
    figure.suptitle(title)
    jitter = np.random.default_rng(0).uniform(-0.2, 0.2, size=len(attributions))
    for i, feature in enumerate(features):
        axes = figure.add_subplot(rows, columns, i + 1)
        y = attributions[feature].to_numpy(dtype=float)
        scale, categories = colour_scale(values[feature])
        if categories is None:
            x = values[feature].to_numpy(dtype=float)
        else:
            codes = np.rint(scale * max(len(categories) - 1, 1))
            x = codes + jitter
            shown = categories[:MAX_CATEGORY_TICKS]
            axes.set_xticks(np.arange(len(shown)), labels=[_short(c, 14) for c in shown])
            axes.tick_params(axis="x", labelrotation=30)
        colours = np.where(y >= 0, POSITIVE, NEGATIVE)
        axes.scatter(x, y, s=5, c=colours, linewidths=0, alpha=0.6, rasterized=True)
        axes.axhline(0, color=NEUTRAL, linewidth=0.8)
        axes.set_title(_short(feature, 40), fontsize=9)
        axes.set_ylabel("attribution", fontsize=8)
        axes.spines[["top", "right"]].set_visible(False)
    return figure


@_styled
def waterfall_chart(
    base_value: float,
    prediction: float,
    attributions: pd.Series,
    values: pd.Series,
    *,
    top: int,
    title: str,
) -> Figure:
    """From the base value (bottom) to the prediction (top): one bar per feature, the
    ``top`` largest |attribution| labelled ``feature = value``, the rest folded into one."""
    order = attributions.abs().sort_values(ascending=False, kind="stable").index
    shown = list(order[:top])
    steps = [
        (f"{_short(f)} = {format_value(values.get(f))}", float(attributions[f])) for f in shown
    ]
    rest = list(order[top:])
    if rest:
        steps.append((f"{len(rest)} other features", float(attributions[rest].sum())))
    steps = steps[::-1]  # the smallest contributions first, from the base value up
    figure = _figure(7.5, 1.2 + 0.36 * len(steps))
    axes = figure.add_subplot()
    start = base_value
    for position, (_label, step) in enumerate(steps):
        axes.barh(position, step, left=start, color=POSITIVE if step >= 0 else NEGATIVE, height=0.7)
        axes.annotate(
            f"{step:+.3g}",
            (start + step, position),
            xytext=(3 if step >= 0 else -3, 0),
            textcoords="offset points",
            ha="left" if step >= 0 else "right",
            va="center",
            fontsize=7,
        )
        start += step
    axes.margins(x=0.15)  # room for the labels of the outermost bars
    axes.axvline(base_value, color=NEUTRAL, linestyle=":", linewidth=1)
    axes.axvline(prediction, color="black", linestyle="--", linewidth=1)
    axes.set_yticks(np.arange(len(steps)), labels=[label for label, _ in steps])
    label = f"base value {base_value:.4g}  ->  prediction {prediction:.4g}"
    if not np.isclose(start, prediction, rtol=1e-6, atol=1e-9):
        # LIME, saliency: attributions need not add up to the prediction
        label += f"\n(base value + attributions = {start:.4g}: this method is not additive)"
    axes.set_xlabel(label)
    axes.set_title(title)
    axes.spines[["top", "right"]].set_visible(False)
    return figure


def format_value(value: object) -> str:
    """An input value for people: numbers to 4 significant digits, missing as 'missing'."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return "missing"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return _short(str(value), 24)


def _short(text: str, width: int = 32) -> str:
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "…"
