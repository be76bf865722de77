"""``xai report``: read an attribution table and its data once, draw the charts, and write
one self-contained HTML page (or the charts as PNG/SVG files for slides).

Passes over the files: one over the attribution table (importance, sample, extremes, requested
rows, reason codes: :mod:`xaicli.report.scan`) and one over the data, reading only the rows
drawn (:mod:`xaicli.report.row_values`). The plots show at most ``max_points`` rows.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from xaicli.errors import DataError, UsageError
from xaicli.io.attributions import AttributionSource, open_attributions
from xaicli.report import charts
from xaicli.report.html import Chart, Section, render_html
from xaicli.report.row_values import feature_values
from xaicli.report.scan import ScanResult, row_key, scan_attributions

__all__ = ["MAX_REPORT_BYTES", "REPORT_FORMATS", "ReportOptions", "ReportResult", "build_report"]

REPORT_FORMATS = ("html", "png", "svg")
#: The HTML report stays under this size (to travel by e-mail): charts are images of fixed
#: size and the plots draw at most ``max_points`` rows, so the size grows with the number
#: of outputs and of requested rows, not with the table; past it, images get coarser.
MAX_REPORT_BYTES = 5_000_000
#: Features with a dependence plot (at most ``top``).
DEPENDENCE_FEATURES = 6
#: Features named in a waterfall before the rest are folded into one bar.
WATERFALL_FEATURES = 10
#: Reasons listed per output, the most frequent first.
MAX_REASONS = 20
#: Most outputs that get a section: a model with more classes gets the first ones.
MAX_SECTIONS = 20
_DPI_STEPS = (100, 72, 50)
# charts of many points are images; bars and text stay vector graphics
_HTML_FORMAT = {"importance": "svg", "waterfall": "svg", "beeswarm": "png", "dependence": "png"}


@dataclass(frozen=True)
class ReportOptions:
    """What ``xai report`` was asked for.

    data:       the input table the run explained (default: the one its manifest names).
    out:        the HTML file, or the folder of chart files for ``png``/``svg``.
    rows:       ids of rows to draw a waterfall for (``row`` positions without id columns).
    top:        features in the importance chart and beeswarm (default 10).
    max_points: rows drawn in the beeswarm and dependence plots (default 2,000).
    """

    attributions: Path
    out: Path
    data: Path | None = None
    fmt: str = "html"
    rows: tuple[str, ...] = ()
    top: int = 10
    max_points: int = 2_000
    seed: int = 0
    overwrite: bool = False


@dataclass(frozen=True)
class ReportResult:
    out: Path
    n_charts: int
    n_bytes: int
    n_rows: int
    n_sampled: int
    seconds: float


def build_report(
    options: ReportOptions, on_note: Callable[[str], None] | None = None
) -> ReportResult:
    """Write the report; raise UsageError/DataError on bad input (before writing anything).
    on_note receives what the command line prints on stderr (rows read, a page over the cap)."""
    on_note = on_note or (lambda message: None)
    started = time.perf_counter()
    _check_options(options)
    source = open_attributions(options.attributions)
    data = _data_path(options, source)
    scan = scan_attributions(
        source, n_sample=options.max_points, requested=options.rows, seed=options.seed
    )
    if scan.n_rows == 0:
        raise DataError(f"{options.attributions} holds no rows; nothing to report")
    singles = [scan.requested, *[r for e in scan.extremes.values() for r in e.values()]]
    chosen = pd.concat([scan.sample, *singles])
    shown = _features_shown(source, scan, singles, options.top)
    values = feature_values(data, chosen, source.id_columns, shown)
    n_sampled = scan.sample.shape[0] // max(len(source.outputs), 1)
    on_note(f"read {scan.n_rows:,} rows; plots draw {n_sampled:,} of them")
    drafts = _draft(source, scan, values, options)
    if options.fmt == "html":
        n_bytes = _write_html(options, source, scan, n_sampled, drafts)
        if n_bytes > MAX_REPORT_BYTES:
            on_note(f"the report is {n_bytes / 1e6:.1f} MB, over {MAX_REPORT_BYTES / 1e6:.0f} MB")
    else:
        n_bytes = _write_files(options, drafts)
    return ReportResult(
        out=options.out,
        n_charts=sum(len(d.charts) for d in drafts),
        n_bytes=n_bytes,
        n_rows=scan.n_rows,
        n_sampled=n_sampled,
        seconds=time.perf_counter() - started,
    )


def _features_shown(
    source: AttributionSource, scan: ScanResult, singles: list[pd.DataFrame], top: int
) -> list[str]:
    """The features whose values the charts show (the top ones of each output, and those a
    waterfall names): only these columns are read from the data, which may have hundreds."""
    shown = set(scan.importance.loc[scan.importance["rank"] <= top, "feature"])
    for rows in singles:
        if len(rows):
            magnitude = rows[list(source.features)].abs().to_numpy(dtype=float)
            order = np.argsort(-np.nan_to_num(magnitude, nan=-1.0), axis=1, kind="stable")
            picked = np.unique(order[:, :WATERFALL_FEATURES])
            shown.update(source.features[i] for i in picked)
    return [f for f in source.features if f in shown]


def _check_options(options: ReportOptions) -> None:
    if options.fmt not in REPORT_FORMATS:
        raise UsageError(
            f"--format must be one of {', '.join(REPORT_FORMATS)}; got {options.fmt!r}"
        )
    if options.top < 1:
        raise UsageError(f"--top must be at least 1; got {options.top}")
    if options.max_points < 1:
        raise UsageError(f"--max-points must be at least 1; got {options.max_points}")
    out = options.out
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"the folder of --out {out} does not exist; create it first")
    if options.fmt == "html":
        if out.suffix.lower() not in (".html", ".htm"):
            raise UsageError(
                f"--out {out} is not an .html file; give report.html, or --format png|svg "
                "with a folder for the chart files"
            )
        if out.is_dir():
            raise UsageError(f"--out {out} is a folder; give the HTML file to write")
        if out.exists() and not options.overwrite:
            raise UsageError(f"--out {out} exists; pass --overwrite to replace it")
    elif out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; --format {options.fmt} writes into a folder")
    if out.resolve() == options.attributions.resolve():
        raise UsageError(f"--out {out} is the attribution file; give another path")


def _data_path(options: ReportOptions, source: AttributionSource) -> Path:
    if options.data is not None:
        return options.data
    recorded = source.metadata.get("data")
    if recorded and Path(recorded).exists():
        return Path(recorded)
    raise UsageError(
        "--data is required: the attribution table's run recorded "
        + (f"data {recorded!r}, which is not found from here" if recorded else "no data path")
    )


@dataclass(frozen=True)
class _Heading:
    text: str


@dataclass(frozen=True)
class _Table:
    frame: pd.DataFrame
    collapsed: str | None = None  # the summary line of a folded table


@dataclass(frozen=True)
class _ChartDraft:
    """A chart not yet drawn: drawn again at a coarser resolution if the page is too big."""

    chart_id: str
    caption: str
    kind: str
    draw: Callable[[], Figure]


@dataclass
class _Draft:
    """One output's section: headings, tables and charts, in order."""

    output: str
    title: str
    parts: list[_Heading | _Table | _ChartDraft]

    @property
    def charts(self) -> list[_ChartDraft]:
        return [p for p in self.parts if isinstance(p, _ChartDraft)]


def _draft(
    source: AttributionSource, scan: ScanResult, values: pd.DataFrame, options: ReportOptions
) -> list[_Draft]:
    multi = len(source.outputs) > 1
    drafts = []
    for output in list(source.outputs)[:MAX_SECTIONS]:
        label = f"class {output!r}" if multi else str(output)
        parts = [
            *_importance_parts(scan, output, label, options.top),
            *_sample_parts(source, scan, values, output, label, options.top),
            *_waterfall_parts(source, scan, values, output, label),
            *_reason_parts(scan, output),
        ]
        drafts.append(_Draft(output, f"Class {output}" if multi else f"Output {output}", parts))
    return drafts


def _ranked(scan: ScanResult, output: str) -> pd.DataFrame:
    return scan.importance[scan.importance["output"] == output]


def _importance_parts(
    scan: ScanResult, output: str, label: str, top: int
) -> list[_Heading | _Table | _ChartDraft]:
    ranked = _ranked(scan, output)
    features = list(ranked["feature"])
    caption = f"Mean |attribution| per feature for {label}, over all {scan.n_rows:,} rows"
    if len(features) > top:
        caption += f"; {_count(len(features) - top, 'other feature')} summed in one bar"
    draw = partial(
        charts.importance_chart,
        features,
        ranked["mean_abs"].to_numpy(),
        top=top,
        title=f"Global importance: {label}",
    )
    table = ranked[["rank", "feature", "mean_abs", "mean", "std", "share"]]
    return [
        _Heading("Global importance"),
        _ChartDraft(f"importance-{_slug(output)}", caption, "importance", draw),
        _Table(table, f"Importance of all {_count(len(features), 'feature')}"),
    ]


def _sample_parts(
    source: AttributionSource,
    scan: ScanResult,
    values: pd.DataFrame,
    output: str,
    label: str,
    top: int,
) -> list[_Heading | _Table | _ChartDraft]:
    features = list(_ranked(scan, output)["feature"])[:top]
    sample = scan.sample[scan.sample["output"] == output]
    sample_values = values.loc[row_key(sample, source.id_columns)].reset_index(drop=True)
    sample = sample.reset_index(drop=True)
    dependence = features[:DEPENDENCE_FEATURES]
    return [
        _Heading("How each feature's value moves the output"),
        _ChartDraft(
            f"beeswarm-{_slug(output)}",
            f"Attribution of the top {_count(len(features), 'feature')} for {label}, one point "
            "per sampled row, coloured by the feature's value",
            "beeswarm",
            partial(
                charts.beeswarm_chart,
                features,
                sample,
                sample_values,
                title=f"Attributions: {label}",
            ),
        ),
        _ChartDraft(
            f"dependence-{_slug(output)}",
            f"Feature value against attribution for the top {_count(len(dependence), 'feature')}, "
            f"{label}",
            "dependence",
            partial(
                charts.dependence_chart,
                dependence,
                sample,
                sample_values,
                title=f"Dependence: {label}",
            ),
        ),
    ]


def _waterfall_parts(
    source: AttributionSource, scan: ScanResult, values: pd.DataFrame, output: str, label: str
) -> list[_Heading | _Table | _ChartDraft]:
    ids = "/".join(source.id_columns)
    parts: list[_Heading | _Table | _ChartDraft] = [
        _Heading("Single rows: from the base value to the prediction")
    ]
    for name, row in _waterfall_rows(scan, output):
        key = row_key(row, source.id_columns).iloc[0]
        first = row.iloc[0]
        draw = partial(
            charts.waterfall_chart,
            float(first["base_value"]),
            float(first["prediction"]),
            first[list(source.features)].astype(float),
            values.loc[key],
            top=WATERFALL_FEATURES,
            title=f"{name.capitalize()} ({ids} {key}): {label}",
        )
        chart_id = f"waterfall-{_slug(output)}-{_slug(name)}-{_slug(key)}"
        caption = f"{name.capitalize()}: {ids} {key}, {label}"
        parts.append(_ChartDraft(chart_id, caption, "waterfall", draw))
    return parts


def _waterfall_rows(scan: ScanResult, output: str) -> list[tuple[str, pd.DataFrame]]:
    """The rows of largest and smallest prediction, then the requested rows."""
    chosen = []
    extremes = scan.extremes.get(output, {})
    for name in ("largest", "smallest"):
        if name in extremes:
            chosen.append((f"{name} prediction", extremes[name]))
    requested = scan.requested[scan.requested["output"] == output]
    for position in range(len(requested)):
        chosen.append(("requested row", requested.iloc[[position]]))
    return chosen


def _reason_parts(scan: ScanResult, output: str) -> list[_Heading | _Table | _ChartDraft]:
    reasons = scan.reasons.get(output)
    if reasons is None:
        return []
    shown = reasons.head(MAX_REASONS).assign(share=reasons["any"] / scan.n_rows)
    shown.columns = ["reason", "times first reason", "times among the reasons", "share of rows"]
    return [_Heading("Reason codes"), _Table(shown)]


def _run_section(source: AttributionSource, scan: ScanResult, n_sampled: int) -> Section:
    meta = source.metadata
    params = meta.get("parameters") or {}
    facts = [
        ("attribution table", str(source.path)),
        ("model", params.get("model")),
        ("data", meta.get("data")),
        ("method", source.method),
        ("algorithm", source.algorithm),
        ("explained output", meta.get("output_kind")),
        ("outputs", ", ".join(source.outputs)),
        ("features", f"{len(source.features):,}"),
        ("rows", f"{scan.n_rows:,}"),
        ("rows refused by the run", meta.get("rejected_rows")),
        ("background rows", meta.get("background_rows")),
        ("seed", params.get("seed")),
        ("written", meta.get("created_at")),
        ("wall time (s)", meta.get("wall_time_s")),
        ("xaicli", meta.get("tool_version")),
    ]
    section = Section("run", "The run")
    shown = [(k, str(v)) for k, v in facts if v is not None and v != ""]
    section.table(pd.DataFrame(shown, columns=["", "value"]))
    listed = [(k, str(v)) for k, v in params.items() if v not in (None, [], "")]
    if listed:
        section.table(
            pd.DataFrame(listed, columns=["parameter", "value"]), collapsed="All parameters"
        )
    if not meta:
        section.paragraph(
            "The table carries no record of its run (no metadata, no manifest).", "note"
        )
    return section


def _encode_all(drafts: list[_Draft], fmt: str | None, dpi: int) -> dict[str, Chart]:
    encoded = {}
    for draft in drafts:
        for chart in draft.charts:
            chart_fmt = fmt or _HTML_FORMAT[chart.kind]
            image = charts.encode(chart.draw(), chart_fmt, dpi=dpi)
            encoded[chart.chart_id] = Chart(chart.chart_id, chart.caption, chart_fmt, image)
    return encoded


def _write_html(
    options: ReportOptions,
    source: AttributionSource,
    scan: ScanResult,
    n_sampled: int,
    drafts: list[_Draft],
) -> int:
    intro = [
        f"{source.method or 'Attributions'} of {scan.n_rows:,} rows, "
        f"{len(source.features):,} features, {len(source.outputs)} output(s).",
        f"Importance is computed over every row. The beeswarm and dependence plots draw a "
        f"deterministic sample of {n_sampled:,} rows (--max-points {options.max_points:,}); "
        "waterfalls show single rows.",
    ]
    if len(source.outputs) > MAX_SECTIONS:
        intro.append(f"Sections for the first {MAX_SECTIONS} of {len(source.outputs)} outputs.")
    for dpi in _DPI_STEPS:
        encoded = _encode_all(drafts, None, dpi)
        sections = [_run_section(source, scan, n_sampled)]
        for draft in drafts:
            section = Section(f"output-{_slug(draft.output)}", draft.title)
            for part in draft.parts:
                if isinstance(part, _Heading):
                    section.heading(part.text)
                elif isinstance(part, _Table):
                    section.table(part.frame, collapsed=part.collapsed)
                else:
                    section.chart(encoded[part.chart_id])
            sections.append(section)
        page = render_html(f"Explanations: {source.path.name}", intro, sections).encode("utf-8")
        if len(page) <= MAX_REPORT_BYTES:
            break
    _atomic_write(options.out, page)
    return len(page)


def _write_files(options: ReportOptions, drafts: list[_Draft]) -> int:
    names = [f"{c.chart_id}.{options.fmt}" for d in drafts for c in d.charts]
    taken = [n for n in names if (options.out / n).exists()]
    if taken and not options.overwrite:
        raise UsageError(f"{options.out / taken[0]} exists; pass --overwrite to replace it")
    options.out.mkdir(exist_ok=True)
    encoded = _encode_all(drafts, options.fmt, dpi=150)
    total = 0
    for chart in encoded.values():
        _atomic_write(options.out / f"{chart.chart_id}.{chart.fmt}", chart.image)
        total += len(chart.image)
    return total


def _atomic_write(path: Path, content: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(content)
    os.replace(partial, path)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _slug(text: str) -> str:
    """A name safe in file names and HTML ids."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "x"
