"""The ``xai`` command."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from typer.core import TyperCommand, TyperGroup

from xaicli import __version__
from xaicli.cli.compare import EXAMPLES as COMPARE_EXAMPLES
from xaicli.cli.compare import compare
from xaicli.cli.console import LogFormat, Reporter
from xaicli.cli.evaluate import EXAMPLES as EVALUATE_EXAMPLES
from xaicli.cli.evaluate import evaluate
from xaicli.cli.examples import EXAMPLES as EXAMPLES_EXAMPLES
from xaicli.cli.examples import examples
from xaicli.cli.explain import EXAMPLES, explain
from xaicli.cli.fairness import EXAMPLES as FAIRNESS_EXAMPLES
from xaicli.cli.fairness import fairness
from xaicli.cli.reasons import EXAMPLES as REASONS_EXAMPLES
from xaicli.cli.reasons import reasons
from xaicli.cli.report import EXAMPLES as REPORT_EXAMPLES
from xaicli.cli.report import report
from xaicli.cli.run import EXAMPLES as RUN_EXAMPLES
from xaicli.cli.run import run
from xaicli.cli.summarize import EXAMPLES as SUMMARIZE_EXAMPLES
from xaicli.cli.summarize import summarize

try:  # recent typer carries its own copy of click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover - typer on top of click
    from click.exceptions import (  # type: ignore[assignment]
        ClickException,
        NoArgsIsHelpError,
    )


def _plain_flags(params: list) -> list:
    # typer's rich help prints every option's value type, "<bool>" for a flag, which takes
    # no value: an empty metavar leaves the type column blank for flags (--help included)
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class Command(TyperCommand):
    def get_params(self, ctx):
        return _plain_flags(super().get_params(ctx))


class Group(TyperGroup):
    def get_params(self, ctx):
        return _plain_flags(super().get_params(ctx))


app = typer.Typer(
    name="xai",
    cls=Group,
    help="Explain machine-learning models in batch: per-row SHAP, LIME and Integrated Gradients tables.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"xai {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Explain machine-learning models in batch."""


app.command("explain", cls=Command, epilog=EXAMPLES)(explain)
app.command("run", cls=Command, epilog=RUN_EXAMPLES)(run)
app.command("summarize", cls=Command, epilog=SUMMARIZE_EXAMPLES)(summarize)
app.command("reasons", cls=Command, epilog=REASONS_EXAMPLES)(reasons)
app.command("report", cls=Command, epilog=REPORT_EXAMPLES)(report)
app.command("compare", cls=Command, epilog=COMPARE_EXAMPLES)(compare)
app.command("evaluate", cls=Command, epilog=EVALUATE_EXAMPLES)(evaluate)
app.command("fairness", cls=Command, epilog=FAIRNESS_EXAMPLES)(fairness)
app.command("examples", cls=Command, epilog=EXAMPLES_EXAMPLES)(examples)

COMMANDS = tuple(command.name for command in app.registered_commands if command.name)


def main() -> None:
    """The console script: options that do not parse (an unknown option, ``--n-jobs x``)
    become one ``xai: error:`` line, or a JSON ``error`` event, and exit 2, as every other
    bad input does."""
    args = sys.argv[1:]
    try:
        code = app(args=args, prog_name="xai", standalone_mode=False)
    except NoArgsIsHelpError:  # bare `xai`: the help is already printed
        code = 2
    except ClickException as exc:
        code = exc.exit_code
        Reporter(log_format=log_format_of(args)).error(_usage_message(exc, args), code)
    except typer.Abort:
        code = 1
        Reporter(log_format=log_format_of(args)).error("aborted", code)
    sys.exit(code if isinstance(code, int) else 0)


def log_format_of(args: list[str]) -> LogFormat:
    """--log-format from raw arguments: click stops at a bad option before it reads it."""
    for position, arg in enumerate(args):
        if arg == "--log-format=json" or (
            arg == "--log-format" and args[position + 1 : position + 2] == ["json"]
        ):
            return "json"
    return "text"


def _usage_message(exc: ClickException, args: list[str]) -> str:
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        command = ctx.command_path
    elif args and args[0] in COMMANDS:  # some parse errors carry no context
        command = f"xai {args[0]}"
    else:
        command = "xai"
    return f"{exc.format_message()} (see '{command} --help')"
