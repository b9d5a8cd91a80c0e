"""The root ``circuit-census`` Typer app, composed from the command modules, and ``main``,
which turns every user error into one line on stderr and exit code 2, never a traceback.

``main`` also owns signals. SIGINT (Ctrl-C) and SIGTERM both raise :class:`Interrupted`
in the main thread. It is a ``BaseException`` but not a ``KeyboardInterrupt`` (which
Typer would turn into a silent exit code), so every ``try/finally`` and ``except
BaseException`` cleanup runs as it passes: temporary files are removed, the study store's
open transaction is rolled back, worker processes are stopped. The command then ends with
one line on stderr saying what was kept (a command may set the ``kept`` attribute of the
exception it lets through; otherwise "nothing was written") and exit code 130 (SIGINT)
or 143 (SIGTERM), 128 + the signal number as shells report it. A second signal ends the
process at once: worker processes are killed, temporary files removed, the same exit code.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

import typer

from circuit_census.cli import (
    census_cmd,
    discover_cmd,
    explain_cmd,
    report_cmd,
    study_cmd,
    tasks_cmd,
    train_cmd,
)
from circuit_census.errors import DiskFull, InputError, is_disk_full


def _flags_show_no_type() -> None:
    """A flag takes no value, so ``--help`` shows no type beside it. Some Typer versions
    (0.29) print one for every flag in Rich help (``--help  <bool>``); older ones don't."""
    option = getattr(typer.core, "TyperOption", None)
    shown = getattr(option, "display_type_rich", None)
    if shown is None or getattr(shown, "hides_flags", False):
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag else shown(self, ctx)

    display_type_rich.hides_flags = True
    option.display_type_rich = display_type_rich


_flags_show_no_type()
app = typer.Typer(
    name="circuit-census",
    help=(
        "Exact circuit censuses of small MLPs trained on Boolean tasks.\n\n"
        "Bad input: one line on stderr, exit code 2; a full disk: one line, exit code 1, "
        "no partial file. Ctrl-C or SIGTERM stops any command "
        "cleanly (no partial files; a study keeps its stored rows and resumes when run "
        "again) with exit code 130 or 143; a second Ctrl-C stops at once."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# The order here is the order of ``circuit-census --help`` (command groups come last).
app.command("census")(census_cmd.census_command)
app.command("count")(census_cmd.count_command)
app.command("discover")(discover_cmd.discover_command)
app.command("explain")(explain_cmd.explain_command)
app.command("report")(report_cmd.report)
app.command("export")(study_cmd.export)
app.command("reproduce")(study_cmd.reproduce)
app.command("tasks")(tasks_cmd.tasks)
app.command("train")(train_cmd.train)
app.add_typer(study_cmd.study_app, name="study")


EXIT_SIGINT = 128 + signal.SIGINT  # 130
EXIT_SIGTERM = 128 + signal.SIGTERM  # 143
# What an interrupted command kept when it says nothing itself (its exception has no text).
_KEPT = {"report": "the report may be incomplete; run the same command again"}
_KEPT_DEFAULT = "nothing was written"


class Interrupted(BaseException):
    """SIGINT or SIGTERM (``signum``) arrived; raised in the main thread by ``main``'s
    handler. ``kept``: what the command kept, for the last line (set as it passes)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
        self.kept: str | None = None


class _Signals:
    """SIGINT and SIGTERM handlers for the time of one ``main`` call."""

    HANDLED = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._deferred = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.HANDLED:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None and not self._deferred:  # the second signal
            stop_now(signum)
        if _starting_process(frame):
            # take the signal again in a moment, once the start is done
            self.received, self._deferred = signum, True
            timer = threading.Timer(0.01, os.kill, (os.getpid(), signum))
            timer.daemon = True
            timer.start()
            return
        self.received, self._deferred = signum, False
        _stop_children()
        raise Interrupted(signum)

    def exit_code(self, exc: BaseException) -> int:
        return 128 + int(getattr(exc, "signum", None) or self.received or signal.SIGINT)


# Code that starts a thread or a worker process and must not be cut short: the
# interrupt waits until it is done (cut short, a process pool cannot shut down, and a
# half-started worker prints a traceback of its own).
_STARTING = {
    "threading.py": {"start"},
    "process.py": {"start", "_start_executor_manager_thread", "_spawn_process"},
    "popen_spawn_posix.py": {"_launch"},
    "popen_forkserver.py": {"_launch"},
    "popen_fork.py": {"_launch"},
}


def _starting_process(frame: FrameType | None) -> bool:
    """Whether the main thread is starting a thread or a worker process (see
    :data:`_STARTING`), for instance as a process pool takes its first task."""
    while frame is not None:
        code = frame.f_code
        names = _STARTING.get(os.path.basename(code.co_filename))
        if names and code.co_name in names:
            return True
        frame = frame.f_back
    return False


def _stop_children() -> None:
    """Ask this process's worker processes (process pools) to end: they hold no files and
    write nothing, and a pool waiting for them would delay the clean stop."""
    import multiprocessing

    for child in multiprocessing.active_children():
        try:
            child.terminate()
        except (OSError, ValueError, AttributeError):
            pass


def stop_now(signum: int) -> None:
    """End the process at once (a second signal): kill worker processes, remove
    temporary files, one line on stderr, exit 128 + ``signum``. The study store needs no
    cleanup: an uncommitted SQLite transaction is simply not there when it is next read."""
    import multiprocessing

    from circuit_census.files import remove_temporaries

    for child in multiprocessing.active_children():
        try:
            child.kill()
        except (OSError, ValueError, AttributeError):
            pass
    remove_temporaries()
    try:
        sys.stderr.write(
            "interrupted again: stopped at once; temporary files removed "
            "(a study keeps its stored rows: run the same command again to resume)\n"
        )
        sys.stderr.flush()
    finally:
        os._exit(128 + signum)


def _command_name(argv: list[str] | None) -> str:
    args = sys.argv[1:] if argv is None else argv
    return next((a for a in args if not a.startswith("-")), "")


def disk_full_message(exc: BaseException) -> str:
    """One line for a write that found no room (``exc``: see ``is_disk_full``)."""
    where = exc.path if isinstance(exc, DiskFull) else getattr(exc, "filename", None)
    what = str(DiskFull(where)) if where else "no space left on the device"
    return f"{what}; no partial file was left: free some space and run the command again"


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
    """Entry point: run the app, turning user errors into one line and exit code 2, and
    SIGINT / SIGTERM into a clean stop with exit code 130 / 143 (see the module notes)."""
    with _Signals() as signals:
        try:
            result = _run(argv)
        except (Interrupted, KeyboardInterrupt) as exc:
            kept = getattr(exc, "kept", None) or _KEPT.get(_command_name(argv), _KEPT_DEFAULT)
            sys.stderr.write(f"interrupted: {kept}\n")
            raise SystemExit(signals.exit_code(exc)) from None
    if isinstance(result, int) and result:
        raise SystemExit(result)


def _run(argv: list[str] | None):
    """The app's result; user errors become one line and exit code 2, a full disk one
    line and exit code 1."""
    try:
        return app(args=argv, standalone_mode=False)
    except InputError as exc:
        fail(str(exc))
    except _ABORTS:
        fail("aborted")
    except _USAGE_ERRORS as exc:  # bad options, missing arguments, bad values
        fail(" ".join(exc.format_message().split()))
    except _EXITS as exc:
        raise SystemExit(getattr(exc, "exit_code", 0)) from None
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        sys.stderr.write(f"error: {disk_full_message(exc)}\n")
        raise SystemExit(1) from None
