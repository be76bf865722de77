"""Everything the command line says goes through a Reporter: stderr only (stdout is for
data), colour and progress bars only on a terminal, ``NO_COLOR`` respected, or one JSON
object per line (``--log-format json``) for log collectors."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape

LOG_FORMATS = ("text", "json")


class Reporter:
    def __init__(self, *, quiet: bool = False, log_format: str = "text") -> None:
        self.quiet = quiet
        self.json = log_format == "json"
        if log_format not in LOG_FORMATS:
            self.json = False
            self.error(f"--log-format must be one of {', '.join(LOG_FORMATS)}; got {log_format!r}")
            raise SystemExit(2)
        no_color = bool(os.environ.get("NO_COLOR"))
        self._console = Console(stderr=True, highlight=False, no_color=no_color or None)
        self._prefix = "xai:" if no_color else "[dim]xai:[/dim]"  # NO_COLOR: no styling at all

    def _emit(self, event: str, **fields: Any) -> None:
        record = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "event": event,
            **fields,
        }
        print(json.dumps(record, default=str), file=sys.stderr, flush=True)

    def note(self, message: str) -> None:
        if self.quiet:
            return
        if self.json:
            self._emit("note", message=message)
        else:
            self._console.print(f"{self._prefix} {escape(message)}", markup=True, soft_wrap=True)

    def error(self, message: str, exit_code: int = 1) -> None:
        if self.json:
            self._emit("error", message=message, exit_code=exit_code)
        else:  # one plain line: scripts read it
            print(f"xai: error: {message}", file=sys.stderr, flush=True)

    def summary(self, summary: Any) -> None:
        where = "stdout" if summary.out == "-" else summary.out
        rate = summary.rows / summary.seconds if summary.seconds > 0 else 0.0
        if self.json:
            self._emit(
                "summary",
                rows=summary.rows,
                output_rows=summary.output_rows,
                seconds=round(summary.seconds, 3),
                rows_per_s=round(rate, 1),
                out=where,
                method=summary.method,
                algorithm=summary.algorithm,
                skipped_rows=getattr(summary, "skipped_rows", 0),
            )
            return
        if summary.skipped:
            self.note(f"{where} is already complete; nothing to do (--overwrite recomputes it)")
            return
        rejected = (
            f", {summary.skipped_rows:,} invalid rows rejected" if summary.skipped_rows else ""
        )
        self.note(
            f"explained {summary.rows:,} rows ({summary.output_rows:,} output rows{rejected}) in "
            f"{summary.seconds:.1f}s, {rate:,.0f} rows/s -> {where}"
        )

    @contextmanager
    def progress(self) -> Iterator[Callable[[int], Callable[[int], None] | None]]:
        """A factory: total rows -> advance(rows) callback (or None when nothing is shown)."""
        if self.quiet:
            yield lambda total: None
        elif self.json:
            yield self._json_progress
        elif not sys.stderr.isatty():
            yield lambda total: None
        else:
            with self._bar() as factory:
                yield factory

    def _json_progress(self, total: int) -> Callable[[int], None]:
        state = {"done": 0, "last": 0.0, "start": time.monotonic()}
        self._emit("start", rows=total)

        def advance(rows: int) -> None:
            state["done"] += rows
            now = time.monotonic()
            if now - state["last"] >= 1.0 or state["done"] >= total:  # at most once a second
                state["last"] = now
                elapsed = now - state["start"]
                rate = state["done"] / elapsed if elapsed > 0 else 0.0
                self._emit(
                    "progress", rows_done=state["done"], rows=total, rows_per_s=round(rate, 1)
                )

        return advance

    @contextmanager
    def _bar(self) -> Iterator[Callable[[int], Callable[[int], None]]]:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        columns = (
            TextColumn("explaining"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows  {task.fields[rate]}"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self._console, transient=True) as bar:

            def factory(total: int) -> Callable[[int], None]:
                task = bar.add_task("rows", total=total, rate="")

                def advance(rows: int) -> None:
                    bar.advance(task, rows)
                    speed = bar.tasks[task].speed
                    bar.update(task, rate=f"{speed:,.0f} rows/s" if speed else "")

                return advance

            yield factory
