"""Everything the command line prints goes through here: stderr only, colour and progress
only on a terminal, ``NO_COLOR`` respected. stdout is reserved for data."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console

_stderr = Console(stderr=True, highlight=False, no_color=bool(os.environ.get("NO_COLOR")) or None)


def note(message: str, *, quiet: bool = False) -> None:
    if not quiet:
        _stderr.print(f"[dim]xai:[/dim] {message}", markup=True, soft_wrap=True)


def error(message: str) -> None:
    # one plain line: scripts and log collectors read it
    print(f"xai: error: {message}", file=sys.stderr, flush=True)


@contextmanager
def progress_bar(quiet: bool) -> Iterator[Callable[[int], Callable[[int], None] | None]]:
    """Yields a factory: total rows -> advance(rows) callback, or None when not on a terminal."""
    if quiet or not sys.stderr.isatty():
        yield lambda total: None
        return
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
    with Progress(*columns, console=_stderr, transient=True) as progress:

        def factory(total: int) -> Callable[[int], None]:
            task = progress.add_task("rows", total=total, rate="")

            def advance(rows: int) -> None:
                progress.advance(task, rows)
                speed = progress.tasks[task].speed
                progress.update(task, rate=f"{speed:,.0f} rows/s" if speed else "")

            return advance

        yield factory
