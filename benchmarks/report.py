"""Present results: the console table (rich), the JSON record and the Markdown page."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from benchmarks.common import Row

HEADERS = (
    "#",
    "case",
    "rows",
    "xai rows/s",
    "reference",
    "ref rows/s",
    "bound rows/s",
    "speedup vs ref",
    "xai / bound",
    "xai accuracy",
    "ref accuracy",
    "target",
    "met",
)


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _met(row: Row) -> str:
    if row.error:
        return "error"
    return "—" if row.met is None else ("yes" if row.met else "NO")


def cells(index: int, row: Row) -> list[str]:
    if row.error:
        return [str(index), f"{row.family} / {row.case}", "", "", "", "", "", "", "",
                f"error: {row.error}", "", row.target, "error"]  # fmt: skip
    return [
        str(index),
        row.case,
        f"{row.rows:,}",
        _num(row.xai_rows_s),
        row.ref_name or "—",
        _num(row.ref_rows_s),
        _num(row.bound_rows_s),
        f"{row.speedup:.2f}x" if row.speedup else "—",
        f"{row.over_bound:.2f}" if row.over_bound else "—",
        row.xai_accuracy or "—",
        row.ref_accuracy or "—",
        row.target or "—",
        _met(row),
    ]


def print_table(rows: list[Row], environment: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 220))  # a pipe gets the full table
    table = Table(title=f"xai benchmarks ({environment['mode']})", show_lines=False)
    for header in HEADERS:
        table.add_column(header, overflow="fold")
    family = None
    for index, row in enumerate(rows, 1):
        if row.family != family and family is not None:
            table.add_section()
        family = row.family
        table.add_row(*cells(index, row))
    console.print(table)
    for index, row in enumerate(rows, 1):
        if row.note:
            console.print(f"[dim]{index}.[/dim] {row.note}", highlight=False)
    console.print(summary_line(rows), highlight=False)


def summary_line(rows: list[Row]) -> str:
    judged = [r for r in rows if r.met is not None or r.error]
    met = sum(1 for r in judged if r.met and not r.error)
    errors = sum(1 for r in rows if r.error)
    return f"targets met: {met} of {len(judged)}" + (f" ({errors} errors)" if errors else "")


def as_json(rows: list[Row], environment: dict[str, Any]) -> dict[str, Any]:
    def record(row: Row) -> dict[str, Any]:
        return {
            "family": row.family,
            "case": row.case,
            "rows": row.rows,
            "xai_s": row.xai_s,
            "reference": row.ref_name or None,
            "ref_s": row.ref_s,
            "bound_s": row.bound_s,
            "xai_rows_per_s": row.xai_rows_s,
            "ref_rows_per_s": row.ref_rows_s,
            "bound_rows_per_s": row.bound_rows_s,
            "speedup_vs_ref": row.speedup,
            "xai_over_bound": row.over_bound,
            "xai_accuracy": row.xai_accuracy or None,
            "ref_accuracy": row.ref_accuracy or None,
            "target": row.target or None,
            "met": row.met,
            "note": row.note or None,
            "error": row.error,
            "metrics": row.metrics,
        }

    return {"environment": environment, "rows": [record(r) for r in rows]}


def write_json(path: Path, rows: list[Row], environment: dict[str, Any]) -> None:
    text = json.dumps(_plain(as_json(rows, environment)), indent=2, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars as Python numbers, NaN (not measured) as null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def markdown(rows: list[Row], environment: dict[str, Any]) -> str:
    env = environment
    lines = [
        f"# xai benchmarks ({env['mode']})",
        "",
        f"Run on {env['date']} on {env['platform']}, {env['cpu_count']} CPUs "
        f"({env['cpu_model']}), Python {env['python']}; total {env['wall_time_s']:.0f} s; "
        f"load average {env['load_average_at_start']} at the start, "
        f"{env['load_average_at_end']} at the end.",
        "",
        "Library versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".",
        "",
        "All figures of a row were measured side by side in the same run. *rows/s* counts "
        "explained rows. *reference* is the reference library called directly on the same "
        "model, background, seed and budget; *bound* is the model's own predict/predict_proba "
        "over exactly as many rows as the method evaluates, in blocks of 200,000 rows on the "
        "model's fitted input type (for the 30-feature sampling rows, the very rows the "
        "method sends to the model, recorded and repeated: a tree's predict time depends on "
        "its inputs' values; elsewhere rows laid out as the method builds them). *speedup* = ref time / xai time; *xai / bound* = xai time "
        "/ bound time (1.0 = no overhead beyond the model). Accuracy: max and mean absolute "
        "error divided by the mean |exact value|. Single-core rows run with BLAS/OpenMP "
        "limited to one thread and `n_jobs=1`. Every time is the fastest of 2 runs (the CLI "
        "runs: one each); xai times are whole `run_explain` calls, each reading its own copy "
        "of the model file, so they include the fixed cost of a run (loading the model, "
        "writing the output) but not process start. A note DISTURBED means other processes "
        "kept part of the machine busy during that case.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" for _ in HEADERS) + "|",
    ]
    for index, row in enumerate(rows, 1):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells(index, row)) + " |")
    lines += ["", summary_line(rows) + ".", "", "## Targets", ""]
    for index, row in enumerate(rows, 1):
        if row.error:
            lines.append(f"- **{index}.** {row.case}: error ({row.error})")
        elif row.met is not None:
            lines.append(
                f"- **{index}.** {row.case}: {row.target} — {'met' if row.met else '**missed**'}"
            )
    lines += ["", "## Notes", ""]
    for index, row in enumerate(rows, 1):
        if row.note:
            lines.append(f"- **{index}.** {row.note}")
    return "\n".join(lines) + "\n"
