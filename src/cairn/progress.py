"""Progress bars for long data operations (rich), shown only on a terminal unless asked."""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator


@contextmanager
def bar(description: str, total: int | None, *, enabled: bool | None = None,
        unit: str = "bytes") -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; draws a rich progress bar on stderr when ``enabled``.

    ``enabled=None`` shows it when stderr is a terminal.  ``advance`` is thread safe.
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn()]
    if unit == "bytes":
        # Binary units, as the results print sizes (MiB): rich's default is decimal MB.
        columns += [DownloadColumn(binary_units=True), _binary_speed_column()]
    else:
        columns += [MofNCompleteColumn()]
    columns.append(TimeRemainingColumn())
    lock = threading.Lock()
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(description, total=total)

        def advance(n: int) -> None:
            with lock:
                progress.advance(task, n)

        yield advance


def size_text(n: float) -> str:
    """``n`` bytes in binary units, as Cairn prints every size (the bars' speeds, the data
    commands' results): ``1,023 B``, ``1.5 KiB``, ``1,023.9 MiB``, thousands separated as
    rich prints the amounts beside the speed on a bar."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024:
            return f"{int(n):,} B" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} PiB"


def _binary_speed_column() -> Any:
    from rich.progress import ProgressColumn
    from rich.text import Text

    class BinarySpeed(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            if speed is None:
                return Text("?", style="progress.data.speed")
            return Text(f"{size_text(speed)}/s", style="progress.data.speed")

    return BinarySpeed()
