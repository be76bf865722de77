"""Everything the command line says goes through a Reporter: stderr only (stdout is for
data), colour and progress bars only on a terminal, ``NO_COLOR`` respected, or one JSON
object per line (``--log-format json``) for log collectors.

In text mode, notes wait until the work starts (or the summary): a run refused before
any work shows its error line alone. ``--verbose`` prints notes as they come; JSON logs
always carry them as they come.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from rich.console import Console
from rich.markup import escape

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[str, ...] = get_args(LogFormat)
DEFAULT_LOG_FORMAT: LogFormat = "text"


class Reporter:
    def __init__(
        self, *, quiet: bool = False, log_format: str = DEFAULT_LOG_FORMAT, verbose: bool = False
    ) -> None:
        self.quiet = quiet
        self.verbose = verbose
        self._pending: list[str] = []  # text-mode notes waiting for the work to start
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
        elif self.verbose:
            self._print(message)
        else:
            self._pending.append(message)

    def flush_notes(self) -> None:
        """Print the notes held back so far: the work is starting, or has ended well."""
        pending, self._pending = self._pending, []
        for message in pending:
            self._print(message)

    def _print(self, message: str) -> None:
        self._console.print(f"{self._prefix} {escape(message)}", markup=True, soft_wrap=True)

    def warning(self, message: str) -> None:
        if self.quiet:
            return
        if self.json:
            self._emit("warning", message=message)
        else:  # one plain line, like errors
            print(f"xai: warning: {message}", file=sys.stderr, flush=True)

    @contextmanager
    def capturing_warnings(self) -> Iterator[None]:
        """Python warnings and library log records become ``warning`` lines (or events)
        instead of raw multi-line text on stderr."""

        def show(message, category, filename, lineno, file=None, line=None) -> None:
            self.warning(f"{category.__name__}: {message} ({Path(filename).name}:{lineno})")

        handler = _ReporterHandler(self)
        root = logging.getLogger()
        with warnings.catch_warnings():
            warnings.showwarning = show
            root.addHandler(handler)
            try:
                yield
            finally:
                root.removeHandler(handler)

    def error(self, message: str, exit_code: int = 1) -> None:
        self._pending.clear()  # the error says what matters; --verbose shows the notes
        if self.json:
            self._emit("error", message=message, exit_code=exit_code)
        else:  # one plain line: scripts read it
            print(f"xai: error: {message}", file=sys.stderr, flush=True)

    def summary(self, summary: Any) -> None:
        where = "stdout" if summary.out == "-" else summary.out
        rate = summary.rows / summary.seconds if summary.seconds > 0 else 0.0
        self.flush_notes()
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
                **(
                    {"rows_at_budget": summary.rows_at_budget}
                    if getattr(summary, "rows_at_budget", None) is not None
                    else {}
                ),
            )
            return
        if self.quiet:
            return
        if summary.skipped:
            self._print(f"{where} is already complete; nothing to do (--overwrite recomputes it)")
            return
        rejected = (
            f", {summary.skipped_rows:,} invalid rows rejected" if summary.skipped_rows else ""
        )
        at_budget = getattr(summary, "rows_at_budget", None)
        budget = (
            f"; {at_budget:,} rows stopped at --n-samples above the target error "
            "(converged = false)"
            if at_budget
            else ""
        )
        self._print(
            f"explained {summary.rows:,} rows ({summary.output_rows:,} output rows{rejected}) in "
            f"{summary.seconds:.1f}s, {rate:,.0f} rows/s -> {where}{budget}"
        )

    @contextmanager
    def progress(self) -> Iterator[Callable[[int], Callable[[int], None] | None]]:
        """A factory: total rows -> advance(rows) callback (or None when nothing is shown).
        The notes held back are printed when the first chunk is done: a run refused on its
        first rows (a NaN the model cannot take) still shows its error alone."""
        if self.quiet:
            yield lambda total: None
        elif self.json:
            yield self._json_progress
        elif not sys.stderr.isatty():
            yield self._starting(lambda total: None)
        else:
            with self._bar() as factory:
                yield self._starting(factory)

    def _starting(
        self, factory: Callable[[int], Callable[[int], None] | None]
    ) -> Callable[[int], Callable[[int], None]]:
        def start(total: int) -> Callable[[int], None]:
            shown = factory(total)

            def advance(rows: int) -> None:
                self.flush_notes()
                if shown is not None:
                    shown(rows)

            return advance

        return start

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


class _ReporterHandler(logging.Handler):
    """Library log records of level WARNING and above, through the Reporter."""

    def __init__(self, reporter: Reporter) -> None:
        super().__init__(logging.WARNING)
        self.reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage().strip().splitlines()
        message = f"{record.name}: {text[0] if text else ''}"
        if record.levelno >= logging.ERROR:
            message = f"{record.levelname.lower()} logged by {message}"
        self.reporter.warning(message)
