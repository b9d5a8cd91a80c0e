"""Rich progress bars for long work, shown only on a terminal and when not ``--quiet``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def make_progress(transient: bool = True) -> Progress:
    """A progress bar with rate-derived ETA, on stderr."""
    from rich.console import Console

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
