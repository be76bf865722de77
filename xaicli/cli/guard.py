"""The boundary where errors become one stderr line and an exit code."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TypeVar

import typer

from xaicli.cli.console import Reporter
from xaicli.errors import XaiError

T = TypeVar("T")

EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


def guarded(debug: bool, action: Callable[[], T], reporter: Reporter | None = None) -> T:
    """Run ``action``; without --debug, turn any failure into one line and an exit code."""
    reporter = reporter or Reporter()
    try:
        with reporter.capturing_warnings():
            return action()
    except BrokenPipeError:
        # the reader of stdout went away (`xai explain --out - | head`): stop quietly,
        # with the shell's code for a process ended by SIGPIPE
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(EXIT_BROKEN_PIPE) from None
    except KeyboardInterrupt:
        reporter.error("interrupted", EXIT_INTERRUPTED)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except XaiError as exc:
        if debug:
            raise
        reporter.error(str(exc), exc.exit_code)
        raise typer.Exit(exc.exit_code) from None
    except Exception as exc:
        if debug:
            raise
        text = str(exc).strip().splitlines()
        message = f"{type(exc).__name__}: {text[0] if text else ''}"
        reporter.error(f"{message} (rerun with --debug for the traceback)", 1)
        raise typer.Exit(1) from None
