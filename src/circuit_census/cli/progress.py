"""Every Rich progress bar of the command line (census, training, study); the library only
calls plain callbacks. Commands show a bar only on a terminal and never with ``--quiet``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

STUDY_LABEL_WIDTH = 22


def show_bar(quiet: bool, stream: TextIO) -> bool:
    """Whether a bar drawn on ``stream`` should show: not ``--quiet`` and a terminal."""
    return not quiet and stream.isatty()


def make_progress(transient: bool = True) -> Progress:
    """A progress bar with rate-derived ETA, on stderr."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=transient,
    )


@contextmanager
def census_progress(
    show: bool, total: int, label: str = ""
) -> Iterator[Callable[[int, int], None] | None]:
    """Yield a ``tick(done, total)`` callback driving a bar over candidates, or None."""
    if not show:
        yield None
        return
    with make_progress() as progress:
        task = progress.add_task(f"{label}census", total=total)

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
