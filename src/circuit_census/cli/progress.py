"""Every Rich progress bar of the command line (census, training, study); the library only
calls plain callbacks. Commands show a bar only on a terminal and never with ``--quiet``.

Also the wording of durations and rates that commands print (:func:`format_duration`,
:func:`format_rate`), so that bars and messages say them the same way."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

STUDY_LABEL_WIDTH = 22
_DAY = 86_400.0
_YEAR = 365.25 * _DAY


def _approx(value: float) -> str:
    """``value`` (positive) with at most 3 significant figures: one decimal below 10
    (``4.2``, ``2``), thousands separators up to 10^15, then a power of ten (``2.2e23``)."""
    if value < 9.95:
        return f"{value:.1f}".removesuffix(".0")
    if value >= 1e15:
        return f"{value:.2g}".replace("e+", "e")
    digits = math.floor(math.log10(value)) + 1
    return f"{round(value, min(0, 3 - digits)):,.0f}"


def format_duration(seconds: float) -> str:
    """A rough duration for a person: "under a second", "about 86 s", "about 3 min",
    "about 4.2 h", "about 12 days", "about 767,000,000 years" (at most 3 significant
    figures); ``inf`` (too long to compute) says so."""
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"not a duration: {seconds!r}")
    if math.isinf(seconds):
        return "more than 10^300 years"
    if seconds < 1:
        return "under a second"
    if seconds < 120:
        return f"about {seconds:.0f} s"
    if seconds < 7_200:
        return f"about {seconds / 60:.0f} min"
    if seconds < 2 * _DAY:
        return f"about {_approx(seconds / 3_600)} h"
    if seconds < 2 * _YEAR:
        return f"about {seconds / _DAY:.0f} days"
    return f"about {_approx(seconds / _YEAR)} years"


def format_rate(per_second: float, unit: str = "candidates") -> str:
    """A rate for a person: "0.5 candidates/s", "1,234,567 candidates/s" (thousands
    separators below 10^7), "5.2e7 candidates/s" (two significant figures above)."""
    if per_second < 10:
        number = f"{per_second:.1f}"
    elif per_second < 1e7:
        number = f"{per_second:,.0f}"
    else:
        number = f"{per_second:.1e}".replace("e+0", "e").replace("e+", "e")
    return f"{number} {unit}/s"


class _CountColumn(ProgressColumn):
    """``done/total`` with thousands separators (Rich's own column has none)."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(no_wrap=True))

    def render(self, task: Task) -> Text:
        total = "?" if task.total is None else f"{int(task.total):,}"
        return Text(f"{int(task.completed):,}/{total}", style="progress.download")


class _RateColumn(ProgressColumn):
    """The recent rate, such as ``5.2e7 candidates/s`` (blank until Rich has measured it)."""

    def __init__(self, unit: str) -> None:
        super().__init__(table_column=Column(no_wrap=True))
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text(
            "" if speed is None else format_rate(speed, self.unit), style="progress.data.speed"
        )


def show_bar(quiet: bool, stream: TextIO) -> bool:
    """Whether a bar drawn on ``stream`` should show: not ``--quiet`` and a terminal."""
    return not quiet and stream.isatty()


def make_progress(transient: bool = True, unit: str = "candidates") -> Progress:
    """A bar over candidates (or another ``unit``) on stderr, one line on an 80-column
    terminal: ``done/total`` with thousands separators, exact at any size (Python ints,
    never floats), the rate (candidates/s) and the ETA derived from it."""
    return Progress(
        TextColumn("[progress.description]{task.description}", table_column=Column(no_wrap=True)),
        BarColumn(bar_width=12),
        _CountColumn(),
        _RateColumn(unit),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=transient,
    )


@contextmanager
def census_progress(
    show: bool, total: int, label: str = "", unit: str = "candidates"
) -> Iterator[Callable[[int, int], None] | None]:
    """Yield a ``tick(done, total)`` callback driving a bar over candidates (or circuits
    drawn, for an estimate: ``unit``), or None."""
    if not show:
        yield None
        return
    with make_progress(unit=unit) as progress:
        task = progress.add_task(label.rstrip(": ") or "census", total=total)

        def tick(done: int, total_now: int) -> None:
            progress.update(task, completed=done, total=total_now)

        yield tick


@contextmanager
def training_progress(
    show: bool, n_models: int, epochs: int
) -> Iterator[Callable[[int, int, int], None] | None]:
    """Yield a ``progress(epoch, epochs, n_still_training)`` callback for ``train_models``
    driving a transient bar over epochs (on stdout), or None."""
    if not show:
        yield None
        return
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs"),
        transient=True,
    )
    with progress:
        task = progress.add_task(f"training {n_models} models", total=epochs)

        def update(epoch: int, total: int, n_active: int) -> None:
            progress.update(
                task,
                completed=epoch,
                total=total,
                description=f"training {n_models} models ({n_active} still running)",
            )

        yield update


class _StudyBar:
    """A Rich bar over a study's (condition, seed) rows, labelled with the experiment of the
    row last stored; started by the first call (rows already stored count as done) unless
    the study has no rows."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._task = None

    def __call__(self, done: int, total: int, experiment: str) -> None:
        if self._progress is None:
            if total == 0:
                return
            self._progress = Progress(
                TextColumn(f"[bold]{{task.description:<{STUDY_LABEL_WIDTH}}}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("models"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                experiment[:STUDY_LABEL_WIDTH], total=total, completed=done
            )
            return
        self._progress.update(
            self._task,
            completed=done,
            total=total,
            description=experiment[:STUDY_LABEL_WIDTH],
        )

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


@contextmanager
def study_progress(show: bool) -> Iterator[Callable[[int, int, str], None] | None]:
    """Yield a ``progress(done, total, experiment)`` callback for ``run_study`` driving a
    bar over the study's rows on stderr, or None."""
    if not show:
        yield None
        return
    bar = _StudyBar()
    try:
        yield bar
    finally:
        bar.close()
