"""Labels sent to ``POST /v1/feedback``, written in the background.

The route parses and checks the body in a worker thread (:func:`parse`), then hands the
valid labels to :meth:`FeedbackLog.put`, which only appends to a bounded buffer: the event
loop never waits on the store.  A daemon thread writes what gathered every
``flush_seconds`` (:class:`~cairn.serving.feedback.FeedbackStore`: Parquet segments of
the model's feedback run); a write that fails is tried once more, then its labels are
counted as dropped.  ``close()`` writes what is left, so labels answered 200 are stored
once the server has exited (unless the store refused them twice: counted and logged).

::

    feedback = FeedbackLog(client)
    deployment = deploy(reg, "models:/fraud@prod", feedback=feedback)
    ...
    feedback.close()
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from ..errors import InvalidArgument

log = logging.getLogger("cairn.serving")

DEFAULT_MAX_QUEUED = 1_000_000
DEFAULT_FLUSH_SECONDS = 10.0  # a segment per 10 s at most: readers list and read them all
DEFAULT_CLOSE_TIMEOUT = 30.0


def parse(body: bytes) -> tuple[list[tuple[int, Any]], list[dict[str, Any]]]:
    """The body's valid labels with their index, and each refused record
    (``{"index", "error"}``); InvalidArgument when the body is no JSON record or list."""
    from .feedback import check_records

    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"the feedback body is not JSON: {exc}") from None
    except RecursionError:  # "[[[[..." nested deeper than the decoder goes: a 400, not a 500
        raise InvalidArgument("the feedback body is nested too deeply to be feedback") from None
    labels, rejected = check_records(doc)
    bad = {r.index for r in rejected}
    indices = [i for i in range(len(labels) + len(bad)) if i not in bad]
    return list(zip(indices, labels)), [r.to_dict() for r in rejected]


class FeedbackLog:
    """Stores labels of served models in the background.  ``client``: a
    :class:`cairn.Client`; or ``store``, anything with ``write(model, labels)``.  The
    constructor does no I/O; the writer thread starts with the first label."""

    status_name = "feedback"  # where GET /v1/status shows stats()

    def __init__(self, client: Any = None, *, store: Any = None,
                 max_queued: int = DEFAULT_MAX_QUEUED,
                 flush_seconds: float = DEFAULT_FLUSH_SECONDS,
                 close_timeout: float = DEFAULT_CLOSE_TIMEOUT) -> None:
        if (client is None) == (store is None):
            raise InvalidArgument("FeedbackLog takes a client or a store (one of them)")
        if not isinstance(max_queued, int) or max_queued < 1:
            raise InvalidArgument(f"max_queued must be a positive integer, got {max_queued!r}")
        if not flush_seconds > 0 or not close_timeout > 0:
            raise InvalidArgument("flush_seconds and close_timeout must be more than 0")
        if store is None:
            from .feedback import FeedbackStore

            store = FeedbackStore(client)
        self.store = store
        self.max_queued = max_queued
        self.flush_seconds = float(flush_seconds)
        self.close_timeout = float(close_timeout)
        self._pending: dict[str, list[Any]] = {}
        self._queued = 0
        self._failed: list[tuple[str, list[Any]]] = []
        self._counts = {"accepted": 0, "written": 0, "dropped": 0, "failed_writes": 0}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    def put(self, model: str, labels: list[Any]) -> int:
        """Queue ``labels`` of ``model`` without waiting; how many were taken (the rest:
        the buffer is full or the log closed)."""
        with self._lock:
            if self._closed:
                return 0
            room = max(0, self.max_queued - self._queued)
            taken = labels[:room]
            if taken:
                self._pending.setdefault(model, []).extend(taken)
                self._queued += len(taken)
                self._counts["accepted"] += len(taken)
            start = self._thread is None and bool(taken)
            if start:
                self._thread = threading.Thread(target=self._run, name="cairn-feedback",
                                                daemon=True)
        if start:
            assert self._thread is not None
            self._thread.start()
        return len(taken)

    def stats(self) -> dict[str, int]:
        """``queued`` (labels not written yet), ``accepted``, ``written``, ``dropped`` (failed
        twice to write), ``failed_writes``."""
        with self._lock:
            return {"queued": self._queued, **self._counts}

    def close(self, timeout: float | None = None) -> None:
        """Write everything queued, then stop (waits at most ``timeout`` seconds)."""
        with self._lock:
            self._closed = True
            thread = self._thread
        self._closing.set()
        self._wake.set()
        if thread is not None:
            thread.join(self.close_timeout if timeout is None else timeout)
            if thread.is_alive():
                log.error("feedback: %d label(s) were not written before the timeout",
                          self.stats()["queued"])

    def _run(self) -> None:
        while True:
            closing = self._closing.is_set()
            if not closing:
                self._wake.wait(self.flush_seconds)
                self._wake.clear()
            with self._lock:
                batch, self._pending = self._pending, {}
                retry, self._failed = self._failed, []
            for model, labels in batch.items():
                self._write(model, labels, last_try=False)
            for model, labels in retry:
                self._write(model, labels, last_try=True)
            if closing:
                with self._lock:
                    again, self._failed = self._failed, []
                for model, labels in again:
                    self._write(model, labels, last_try=True)
                return

    def _write(self, model: str, labels: list[Any], last_try: bool) -> None:
        try:
            self.store.write(model, labels)
        except Exception as exc:  # noqa: BLE001 (a store down, a full disk: counted)
            text = getattr(exc, "message", exc)
            with self._lock:
                self._counts["failed_writes"] += 1
                if last_try:
                    self._counts["dropped"] += len(labels)
                    self._queued -= len(labels)
                else:
                    self._failed.append((model, labels))
            if last_try:
                log.error("feedback: %d label(s) of %s failed to write again; dropped: %s",
                          len(labels), model, text)
            else:
                log.warning("feedback: %d label(s) of %s failed to write (will try once "
                            "more): %s", len(labels), model, text)
            return
        with self._lock:
            self._counts["written"] += len(labels)
            self._queued -= len(labels)

