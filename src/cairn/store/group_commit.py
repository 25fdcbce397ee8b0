"""Group commit for a local store's index: several journal-durable batches, one transaction.

Creating a run touches one leaf page of each (key, value) index per param, tag and
metric key, so its index transaction writes tens of SQLite pages to the WAL; most of
them are the same pages for the next run.  A batch is durable once its journal append
returns, so its index write may wait a few milliseconds and share one transaction (one
write of each page) with the batches that arrive meanwhile.

Nobody can observe the wait: every read of the store settles what is pending first,
``cairn.flush()`` settles, and so does process exit; after a crash the journal replay
that already covers a crash between journal and index applies what was pending.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import Counter
from typing import Callable

from ..entities import RecordBatch
from ..errors import CairnError, StoreBusy, StoreUnavailable

log = logging.getLogger("cairn.store")

_MAX_ITEMS = 256  # bounds one transaction's size and the memory that pending batches hold
_MAX_BACKLOG = 4 * _MAX_ITEMS  # pending batches beyond which a writer applies some itself
_BUSY_RETRY_S = 30.0  # how long a reader keeps retrying an index that another process locks
_LIVE: "weakref.WeakSet[GroupCommit]" = weakref.WeakSet()


class GroupCommit:
    """Pending index writes of one store, applied by a daemon thread or by whoever reads first.

    ``apply_all(items)`` applies ``[(batch, segments, journal_end), ...]`` in one write
    transaction, skipping batches the index already has (a journal replay by another
    process may have applied them first).
    """

    def __init__(self, apply_all: Callable[[list], None], delay: Callable[[], float]) -> None:
        self._apply_all = apply_all
        self._delay = delay
        self._items: list[tuple[RecordBatch, list, int]] = []
        self._runs: Counter[str] = Counter()
        self._cv = threading.Condition()
        self._apply_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._error: BaseException | None = None
        self.transactions = 0  # for tests and benchmarks: index transactions made
        _LIVE.add(self)

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's pending batches (the parent applies them)
        and take fresh locks (another thread may have held them at the fork)."""
        self._items, self._runs = [], Counter()
        self._cv, self._apply_lock = threading.Condition(), threading.Lock()
        self._thread = None

    def submit(self, batch: RecordBatch, segs: list, end: int) -> None:
        """Queue a batch whose journal append has returned."""
        with self._cv:
            self._items.append((batch, segs, end))
            self._runs[batch.run_id] += 1
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._loop, name="cairn-index", daemon=True)
                self._thread.start()
            self._cv.notify()

    def holds(self, run_id: str) -> bool:
        """Whether a batch of ``run_id`` is still pending (its checks must see it applied)."""
        return run_id in self._runs

    def vouches_for(self, batch: RecordBatch) -> bool | None:
        """Whether pending batches settle ``batch``'s checks without touching the index.

        A writer's next batch of metrics, tags or its end to a run it has a pending batch
        for passes the checks that batch passed: the run exists and is open, unless a
        pending batch ends it (whatever ended it after that batch is queued behind it).
        Params are checked against the index's values.  So a run's end reaches the journal
        even while the index is locked (SIGTERM must not wait for it).  True: check
        nothing more; None: a retry of a pending batch (skip it); False: settle and check
        against the index.
        """
        if batch.params or batch.create is not None:
            return False
        with self._cv:
            if batch.run_id not in self._runs:
                return False
            mine = False
            for b, _segs, _end in self._items:
                if b.run_id != batch.run_id:
                    continue
                if b.status is not None and b.status.terminal:
                    return False
                if b.writer_id == batch.writer_id:
                    if b.seq >= batch.seq:
                        return None
                    mine = True
            return mine

    def settle(self) -> None:
        """Apply everything pending now, in the caller's thread; raise if the index refuses.

        Everything that was pending when it was called: when the index fell behind (a
        long checkpoint) that is several transactions' worth, and a reader must see it all.
        Batches queued meanwhile by other threads are the flusher's to apply.
        """
        with self._cv:
            owed = len(self._items)
        deadline = time.monotonic() + _BUSY_RETRY_S
        backoff = 0.01
        while owed > 0:
            try:
                with self._apply_lock:
                    # The daemon thread may have applied some while we waited for the lock.
                    with self._cv:
                        owed = min(owed, len(self._items))
                    owed -= self._apply_pending()
            except StoreBusy:
                # Another process holds the write lock past the busy timeout, or a
                # snapshot went stale: the transaction was rolled back; try again.
                if time.monotonic() >= deadline:
                    raise
                time.sleep(backoff)
                backoff = min(backoff * 2, 0.5)

    def relieve(self) -> None:
        """While more than :data:`_MAX_BACKLOG` batches wait, apply the oldest in the
        caller's thread: the queue may lag the journal by that much, not without bound."""
        while len(self._items) > _MAX_BACKLOG:
            with self._apply_lock:
                if len(self._items) <= _MAX_BACKLOG:
                    return
                try:
                    self._apply_pending()
                except CairnError:
                    # The write that called this is durable in the journal already; the index
                    # thread retries, and the next reader sees (and raises) the error.
                    return

    def _apply_pending(self) -> int:
        """Apply the oldest pending batches in one transaction; how many it applied."""
        with self._cv:
            items = self._items[:_MAX_ITEMS]
        if not items:
            return 0
        try:
            self._apply_all(items)
        except CairnError as exc:
            self._error = exc
            raise
        except Exception as exc:  # a driver error the index did not translate
            self._error = exc
            raise StoreUnavailable(f"the index could not apply journal records: {exc}") from exc
        self._error = None
        self.transactions += 1
        with self._cv:
            del self._items[:len(items)]
            for batch, _segs, _end in items:
                left = self._runs[batch.run_id] - 1
                if left:
                    self._runs[batch.run_id] = left
                else:
                    del self._runs[batch.run_id]
        return len(items)

    def _loop(self) -> None:
        backoff = 0.05
        while True:
            with self._cv:
                while not self._items:
                    self._cv.wait()
                # Gather what arrives within the delay; a full transaction goes at once.
                deadline = time.monotonic() + self._delay()
                while len(self._items) < _MAX_ITEMS:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
            try:
                with self._apply_lock:
                    self._apply_pending()
                backoff = 0.05
            except Exception as exc:
                # The batches stay pending (and in the journal): a reader's settle() raises
                # the error, and this thread retries.
                log.warning("index write failed, will retry: %s", exc)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)


def settle_all() -> None:
    """Settle every store of this process (process exit; ``cairn.flush()``)."""
    for group in list(_LIVE):
        if group._pid == os.getpid():
            try:
                group.settle()
            except CairnError as exc:  # the journal keeps the records; the next open replays them
                log.error("index writes left to journal replay: %s", exc.message)


atexit.register(settle_all)


def _after_fork() -> None:
    for group in list(_LIVE):
        group.forget_after_fork()


os.register_at_fork(after_in_child=_after_fork)

