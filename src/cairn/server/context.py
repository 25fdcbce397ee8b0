"""What every route needs: the store, the object store, the guard and the audit log."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator

from fastapi import Request

from ..errors import CairnError, InvalidArgument
from .auth import Guard, Principal
from .config import ServerSettings

if TYPE_CHECKING:  # pragma: no cover
    from ..cas.odb import ObjectStore

log = logging.getLogger("cairn.server")
AUDIT_INTERVAL = 0.2  # seconds between writes of queued audit events


def sql_engine(store: Any):
    """The SQLAlchemy engine behind a store, or None (the in-memory store has none)."""
    index = getattr(store, "index", None)
    return getattr(index, "engine", None) if index is not None else None


class RunWriters:
    """One writer per run in this server process, for requests that bring none of their own.

    A fresh writer per request made a journal file per request (every MLflow
    ``log_metric`` call is one).  A writer's batches must reach the store in ``seq``
    order, or a later one makes an earlier one look like a replay, so a run's requests
    hold its lock from numbering their batch until it is applied.
    """

    def __init__(self, limit: int = 4096) -> None:
        self._lock = threading.Lock()
        self._runs: OrderedDict[str, list] = OrderedDict()
        self._limit = limit

    @contextmanager
    def next(self, run_id: str, new_id: Callable[[], str]) -> Iterator[tuple[str, int]]:
        """``(writer_id, seq)`` for the run's next batch; apply it inside the block."""
        with self._lock:
            slot = self._runs.get(run_id)
            if slot is None:
                slot = self._runs[run_id] = [new_id(), 0, threading.Lock()]
                if len(self._runs) > self._limit:  # a forgotten run gets a new writer next time
                    self._runs.popitem(last=False)
            else:
                self._runs.move_to_end(run_id)
        with slot[2]:
            slot[1] += 1
            yield slot[0], slot[1]


class ServerContext:
    def __init__(self, store: Any, objects: "ObjectStore", settings: ServerSettings) -> None:
        self.store = store
        if hasattr(store, "index_delay"):
            # A response means the write is in the index: the next request may reach
            # another worker process, which cannot settle this one's pending writes.
            store.index_delay = 0.0
        self.objects = objects
        self.settings = settings
        self.writers = RunWriters()
        self._engine = None
        self._auth_db = None
        self.guard = Guard(None, settings.auth, settings.token_cache_s)
        self._audit_queue: list[tuple] = []
        self._audit_lock = threading.Lock()
        self._audit_flush_lock = threading.Lock()
        self._audit_thread: threading.Thread | None = None

    @property
    def engine(self):
        if self._engine is None:
            if hasattr(self.store, "open"):
                self.store.open()
            self._engine = sql_engine(self.store)
        return self._engine

    @property
    def auth_db(self):
        if self._auth_db is None:
            if self.engine is None:
                raise InvalidArgument("users, tokens and roles need an SQL-backed store "
                                      "(a local directory or a database URL)")
            from ..store.sql.auth import AuthDB

            self._auth_db = AuthDB(self.engine)
            self.guard.db = self._auth_db
        return self._auth_db

    def start(self) -> str | None:
        """Open the store; with auth, make sure an admin exists (returns a new token once)."""
        if hasattr(self.store, "open"):
            self.store.open()
        if self.settings.auth:
            db = self.auth_db
            return db.bootstrap_admin(self.settings.bootstrap_user, self.settings.bootstrap_token)
        return None

    def audit(self, p: Principal, action: str, target: str, before: Any = None,
              after: Any = None, wait: bool = False) -> None:
        """Append one event to the hash-chained audit log, after the change committed.

        Events are queued and written in batches (one short transaction every
        ``AUDIT_INTERVAL`` seconds), so metric ingestion never queues on the chain's
        head lock; ``wait=True`` (user, token and role changes) writes before returning.
        A crash between a change and its event loses the event, never the change.
        """
        if not self.settings.audit or self.engine is None:
            return
        import time as _time

        event = (p.user, action, target, before, after, _time.time_ns() // 1_000_000)
        with self._audit_lock:
            self._audit_queue.append(event)
            if self._audit_thread is None or not self._audit_thread.is_alive():
                self._audit_thread = threading.Thread(target=self._audit_loop,
                                                      name="cairn-audit", daemon=True)
                self._audit_thread.start()
        if wait:
            self.flush_audit()

    def flush_audit(self) -> None:
        """Write every queued audit event now (one transaction)."""
        if self.engine is None:
            return
        from ..registry import audit as chain
        from ..store.sql.engine import session

        with self._audit_flush_lock:
            with self._audit_lock:
                events, self._audit_queue = self._audit_queue, []
            if not events:
                return
            try:
                with session(self.engine, write=True) as conn:
                    chain.append_many(conn, events)
            except CairnError as exc:  # keep them for the next try, and say so
                with self._audit_lock:
                    self._audit_queue[:0] = events
                log.error("%d audit event(s) could not be written yet: %s", len(events),
                          exc.message)
                raise

    def _audit_loop(self) -> None:
        import time as _time

        while True:
            _time.sleep(AUDIT_INTERVAL)
            try:
                self.flush_audit()
            except CairnError:
                pass


def ctx(request: Request) -> ServerContext:
    return request.app.state.cairn


def principal(request: Request) -> Principal:
    """The authenticated caller (a FastAPI dependency)."""
    c: ServerContext = request.app.state.cairn
    if c.settings.auth:
        c.auth_db  # noqa: B018  (binds the guard to the database on first use)
    return c.guard.authenticate(request.headers.get("authorization"))
