"""The report as one self-contained HTML page: styles inline, charts as data: URIs, no script,
no font, no link to anything outside the file (it opens offline and travels by e-mail)."""

from __future__ import annotations

import base64
import numbers
from dataclasses import dataclass, field
from html import escape

import pandas as pd

__all__ = ["Chart", "Section", "render_html"]

MIME = {"png": "image/png", "svg": "image/svg+xml"}

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;
margin:2rem auto;max-width:1100px;padding:0 1rem;color:#222;line-height:1.4}
h1{font-size:1.6rem}h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2.2rem}
h3{margin-top:1.6rem}table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1rem 0}figure img{max-width:100%;height:auto}
figcaption{font-size:.85rem;color:#555}.note{color:#555;font-size:.9rem}
nav a{margin-right:1rem}
"""


@dataclass(frozen=True)
class Chart:
    """One chart: a stable id (also its file name), a caption, and its encoded image."""

    chart_id: str
    caption: str
    fmt: str
    image: bytes


@dataclass
class Section:
    """A part of the page: a heading, paragraphs (plain text), tables and charts, in order."""

    section_id: str
    title: str
    parts: list[str] = field(default_factory=list)

    def paragraph(self, text: str, css_class: str = "") -> None:
        attribute = f' class="{css_class}"' if css_class else ""
        self.parts.append(f"<p{attribute}>{escape(text)}</p>")

    def heading(self, text: str) -> None:
        self.parts.append(f"<h3>{escape(text)}</h3>")

    def table(self, frame: pd.DataFrame, *, collapsed: str | None = None) -> None:
        html = _table(frame)
        if collapsed:
            html = f"<details><summary>{escape(collapsed)}</summary>{html}</details>"
        self.parts.append(html)

    def chart(self, chart: Chart) -> None:
        data = base64.b64encode(chart.image).decode("ascii")
        self.parts.append(
            f'<figure class="chart" id="{escape(chart.chart_id)}">'
            f'<img alt="{escape(chart.caption)}" src="data:{MIME[chart.fmt]};base64,{data}">'
            f"<figcaption>{escape(chart.caption)}</figcaption></figure>"
        )


def render_html(title: str, intro: list[str], sections: list[Section]) -> str:
    """The page: title, introductory notes, a table of contents, then the sections."""
    nav = "".join(f'<a href="#{escape(s.section_id)}">{escape(s.title)}</a>' for s in sections)
    body = "".join(
        f'<section id="{escape(s.section_id)}"><h2>{escape(s.title)}</h2>{"".join(s.parts)}</section>'
        for s in sections
    )
    notes = "".join(f'<p class="note">{escape(line)}</p>' for line in intro)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
        f"<body><h1>{escape(title)}</h1>{notes}<nav>{nav}</nav>{body}</body></html>\n"
    )


def _table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = []
        for value in record:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                cells.append(f"<td>{escape(str(value))}</td>")
            elif isinstance(value, numbers.Integral):
                cells.append(f'<td class="num">{value:,}</td>')
            else:
                cells.append(f'<td class="num">{float(value):.4g}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
