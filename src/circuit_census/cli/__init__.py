"""The ``circuit-census`` command line: one Typer app, one module per command group.

Every user error becomes one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys

import click
import typer

from circuit_census.network import InputError

app = typer.Typer(
    name="circuit-census",
    help="Exact circuit censuses of small MLPs trained on Boolean tasks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Command modules register themselves on ``app`` when imported.
from circuit_census.cli import commands  # noqa: E402,F401


def fail(message: str) -> None:
    """Print one line on stderr and exit with code 2."""
    sys.stderr.write(f"error: {message}\n")
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line and exit code 2."""
    try:
        app(args=argv, standalone_mode=False)
    except InputError as exc:
        fail(str(exc))
    except click.exceptions.Abort:
        fail("aborted")
    except click.ClickException as exc:  # bad options, missing arguments, bad values
        fail(exc.format_message().replace("\n", " "))
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        fail("interrupted")
