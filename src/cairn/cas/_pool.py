"""A bounded, order-preserving parallel map for object transfers.

Hashing, zstd and file I/O all release the GIL, so a few threads keep every core
busy on large files; the bound keeps at most ``depth`` chunks in memory.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    return max(2, min(8, os.cpu_count() or 2))


def ordered_map(fn: Callable[[T], R], items: Iterable[T], *, workers: int,
                depth: int | None = None) -> Iterator[R]:
    """Yield ``fn(item)`` for each item, in order, computing up to ``depth`` ahead."""
    if workers <= 1:
        yield from map(fn, items)
        return
    depth = depth or 2 * workers
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cairn-cas") as pool:
        pending: deque[Future[R]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= depth:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            # On an error or an abandoned reader, don't start work nobody will collect.
            for fut in pending:
                fut.cancel()
