"""The ``xai`` command."""

from __future__ import annotations

from typing import Annotated

import typer

from xaicli import __version__
from xaicli.cli.explain import EXAMPLES, explain
from xaicli.cli.run import EXAMPLES as RUN_EXAMPLES
from xaicli.cli.run import run

app = typer.Typer(
    name="xai",
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


app.command("explain", epilog=EXAMPLES)(explain)
app.command("run", epilog=RUN_EXAMPLES)(run)


def main() -> None:
    app()
