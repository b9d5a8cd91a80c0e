"""The root ``circuit-census`` Typer app, composed from the command modules, and ``main``,
which turns every user error into one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import sys

import typer

from circuit_census.cli import census_cmd, report_cmd, study_cmd, tasks_cmd, train_cmd
from circuit_census.errors import InputError

app = typer.Typer(
    name="circuit-census",
    help="Exact circuit censuses of small MLPs trained on Boolean tasks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# The order here is the order of ``circuit-census --help`` (command groups come last).
app.command("census")(census_cmd.census_command)
app.command("count")(census_cmd.count_command)
app.command("report")(report_cmd.report)
app.command("export")(study_cmd.export)
app.command("reproduce")(study_cmd.reproduce)
app.command("tasks")(tasks_cmd.tasks)
app.command("train")(train_cmd.train)
app.add_typer(study_cmd.study_app, name="study")


def fail(message: str) -> None:
    """Print one line on stderr and exit with code 2."""
    sys.stderr.write(f"error: {message}\n")
    raise SystemExit(2)


def _click_classes(name: str) -> tuple[type[BaseException], ...]:
    """The click exception class ``name`` as Typer raises it (Typer may bundle its own
    copy of click rather than depend on the click package)."""
    found = set()
    for cls in (typer.BadParameter, typer.Exit, typer.Abort):
        for base in cls.__mro__:
            if base.__name__ == name:
                found.add(base)
            twin = getattr(sys.modules.get(base.__module__), name, None)
            if isinstance(twin, type) and issubclass(twin, BaseException):
                found.add(twin)
    return tuple(found)


_USAGE_ERRORS = _click_classes("ClickException")
_EXITS = _click_classes("Exit")
_ABORTS = _click_classes("Abort")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line and exit code 2."""
    try:
        result = app(args=argv, standalone_mode=False)
    except InputError as exc:
        fail(str(exc))
    except _ABORTS:
        fail("aborted")
    except _USAGE_ERRORS as exc:  # bad options, missing arguments, bad values
        fail(" ".join(exc.format_message().split()))
    except _EXITS as exc:
        raise SystemExit(getattr(exc, "exit_code", 0)) from None
    except KeyboardInterrupt:
        fail("interrupted")
    if isinstance(result, int) and result:
        raise SystemExit(result)
