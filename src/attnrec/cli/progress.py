"""Rich progress bars driven by the library's ``progress(description, completed, total)`` callbacks."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RichProgress:
    """Context manager giving a callback that creates one bar per description, updates it and removes it once
    complete (so a 30-epoch run leaves its 30 epoch lines, not 30 finished bars)."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            disable=not enabled,
        )
        self._tasks: dict[str, TaskID] = {}

    @property
    def console(self) -> Console:
        """The console of the bars: lines printed through it appear above the live bars."""
        return self._progress.console

    def __enter__(self) -> RichProgress:
        self._progress.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.__exit__(exc_type, exc, tb)

    def __call__(self, description: str, completed: float, total: float | None = None) -> None:
        task = self._tasks.get(description)
        if task is None:
            task = self._progress.add_task(description, total=total)
            self._tasks[description] = task
        self._progress.update(task, completed=completed, total=total)
        if total is not None and completed >= total:  # finished bars go; the per-epoch lines say what happened
            self._progress.remove_task(task)
            del self._tasks[description]
