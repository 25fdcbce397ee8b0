"""What every route needs: the store, the object store, the guard and the audit log."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Iterator

from fastapi import Request

from .. import clock
from ..errors import CairnError, InvalidArgument
from ..store.base import DeferredIndex, Indexed, Openable
from .auth import Guard, Principal
from .config import ServerSettings
from .permissions import Need, lookup

if TYPE_CHECKING:  # pragma: no cover
    from ..cas.odb import ObjectStore

log = logging.getLogger("cairn.server")
AUDIT_INTERVAL = 0.2  # seconds between writes of queued audit events


def sql_engine(store: Any):
    """The SQLAlchemy engine behind a store, or None (the in-memory store has none)."""
    return store.index.engine if isinstance(store, Indexed) else None


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
        if isinstance(store, DeferredIndex):
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
        self._audit_stop = threading.Event()

    @property
    def engine(self):
        if self._engine is None:
            if isinstance(self.store, Openable):
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
        if isinstance(self.store, Openable):
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
        event = (p.user, action, target, before, after, clock.now_ms())
        with self._audit_lock:
            self._audit_queue.append(event)
            closed = self._audit_stop.is_set()
            if not closed and (self._audit_thread is None or not self._audit_thread.is_alive()):
                self._audit_thread = threading.Thread(target=self._audit_loop,
                                                      name="cairn-audit", daemon=True)
                self._audit_thread.start()
        if wait or closed:
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
        while not self._audit_stop.wait(AUDIT_INTERVAL):
            try:
                self.flush_audit()
            except CairnError:
                pass
            with self._audit_lock:  # idle: end, so that nothing outlives the server
                if not self._audit_queue:
                    self._audit_thread = None
                    return

    def close(self) -> None:
        """Stop the audit writer and write what it still holds (the app's shutdown).

        The writer must be done with its connection before the store closes: a connection
        it held across the store's close would go back to a pool nothing closes any more.
        """
        self._audit_stop.set()
        thread = self._audit_thread
        if thread is not None:
            thread.join(timeout=30)
        self.flush_audit()


def ctx(request: Request) -> ServerContext:
    return request.app.state.cairn


def principal(request: Request) -> Principal:
    """The authenticated caller, with what the route needs (a FastAPI dependency).

    The need comes from :mod:`.permissions`' table, by the matched route; those that
    name no single resource (global admin, a role somewhere or on all of a type) are
    checked here, the rest by the route once it knows the resource.
    """
    c: ServerContext = request.app.state.cairn
    if c.settings.auth:
        c.auth_db  # noqa: B018  (binds the guard to the database on first use)
    p = c.guard.authenticate(request.headers.get("authorization"))
    n = route_need(request)
    if n is not None:
        p = replace(p, need=n)
        c.guard.enforce(p)
    return p


NEED_KEY = "cairn.need"  # where a route that is not a FastAPI route puts its need in the scope
_needs: dict[tuple[Any, str], Need | None] = {}
_needs_lock = threading.Lock()


def route_need(request: Request) -> Need | None:
    """The permissions table's entry for the route a request matched (None: not in it)."""
    scope = request.scope
    n = scope.get(NEED_KEY)
    if n is not None:
        return n
    method = "GET" if request.method == "HEAD" else request.method
    endpoint = scope.get("endpoint")
    if endpoint is None:  # served before routing (FastRoutes): plain paths only
        from .app import route_path

        return lookup(method, route_path(scope))
    key = (endpoint, method)
    try:
        return _needs[key]
    except KeyError:
        pass
    from .permissions import mounted_routes

    with _needs_lock:
        for m, path, ep in mounted_routes(request.app):
            _needs.setdefault((ep, m), lookup(m, path))
        return _needs.setdefault(key, None)
