"""Engine creation, the one transaction helper and the schema-revision check.

SQLite is opened in WAL mode with a long busy timeout, and write transactions
start with ``BEGIN IMMEDIATE``: a writer takes the lock up front instead of
upgrading a read lock mid-transaction, which is what produces "database is
locked" under many concurrent processes.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from typing import Any, Iterator

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from ...errors import AlreadyExists, SchemaOutOfDate, StoreBusy, StoreUnavailable
from . import tables

_BUSY_MS = 120_000  # how long a write waits for another process's write lock, in all
_SLICE_MS = 250  # SQLite's own busy wait: one slice of that


def make_engine(url: str) -> Engine:
    if url.startswith(("postgresql://", "postgres://")):  # psycopg 3, not SQLAlchemy's psycopg2
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": _BUSY_MS / 1000,
                                                      "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control from pysqlite so BEGIN IMMEDIATE is ours to send.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            # Checkpoints fsync the database; every 1,000 pages (the default) that was a
            # third of the cost of creating a run.  WAL size stays bounded (~64 MB).
            cur.execute("PRAGMA wal_autocheckpoint=16000")
            # A store of a few thousand runs is tens of MB; SQLite's default 2 MB page
            # cache made every search re-read most of its pages from the OS (2-3x slower).
            # The cache grows only as pages are read, up to this bound.
            cur.execute("PRAGMA cache_size=-65536")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:  # the pysqlite connection is never None here
            write = conn.get_execution_options().get("cairn_write", False)
            # Straight to the driver: SQLAlchemy's execution path for this one statement
            # cost more than SQLite's work for it, once per transaction.
            dbapi = conn.connection.dbapi_connection
            if not write:
                dbapi.execute("BEGIN")
                return
            # SQLite waits for the write lock in C for up to its busy timeout, where no
            # signal handler can run; waiting in short slices here lets SIGTERM and
            # Ctrl-C through between them, with the same overall patience.
            # Everything else (switching a new file to WAL, the rare busy read) keeps the
            # long timeout: a short one there failed 16 processes opening one new store.
            # The two PRAGMAs are C calls of about a microsecond each.
            deadline = time.monotonic() + _BUSY_MS / 1000
            dbapi.execute(f"PRAGMA busy_timeout={_SLICE_MS}")
            try:
                while True:
                    try:
                        dbapi.execute("BEGIN IMMEDIATE")
                        return
                    except sqlite3.OperationalError as exc:
                        if not _is_busy(exc) or time.monotonic() >= deadline:
                            raise
            finally:
                dbapi.execute(f"PRAGMA busy_timeout={_BUSY_MS}")

        return engine
    # A server runs up to 40 requests at once per process (FastAPI's thread pool); the
    # pool grows to that only under such load.  No ping before each checkout: it was a
    # round trip (and a PostgreSQL wake-up) per transaction.  After a database restart the
    # first use of each stale connection fails as StoreUnavailable (a 503 the clients
    # retry) and SQLAlchemy recycles the pool.
    return sa.create_engine(url, pool_pre_ping=False, pool_size=10, max_overflow=30,
                            pool_timeout=60)


@contextmanager
def session(engine: Engine, write: bool = False) -> Iterator[Connection]:
    """One transaction: commit on success, roll back on error, driver errors translated."""
    with _translated():
        with engine.connect().execution_options(cairn_write=write) as conn:
            with conn.begin():
                yield conn


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    """A connection for reads only.

    On PostgreSQL it runs without BEGIN and COMMIT (autocommit), two round trips fewer
    for each read: under READ COMMITTED each statement has its own snapshot inside a
    transaction too, so nothing is lost.  On SQLite it is a read transaction, which keeps
    one snapshot for all its statements and costs no round trip.  Nothing may write
    through it.
    """
    if engine.dialect.name != "postgresql":
        with session(engine) as conn:
            yield conn
        return
    with _translated():
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            try:
                yield conn
            except engine.dialect.loaded_dbapi.OperationalError as exc:
                # A statement sent straight to the driver found the connection dead (a
                # database restart). SQLAlchemy did not see it, and with no BEGIN of its
                # own it had no earlier chance to: drop this connection and the idle ones,
                # which the restart killed too, as SQLAlchemy does on a disconnect.
                conn.invalidate()
                engine.pool.dispose()
                raise StoreUnavailable(f"the index database failed: {exc}") from None


@contextmanager
def _translated() -> Iterator[None]:
    """Driver errors as Cairn's."""
    try:
        yield
    except IntegrityError as exc:
        raise AlreadyExists(f"conflicting record: {exc.orig}") from None
    except OperationalError as exc:
        if _is_busy(exc.orig):
            # The transaction was rolled back (the connection's context ended with the
            # error): the caller may try it again from the start.
            raise StoreBusy(f"the index database is locked by another writer: {exc.orig}") from None
        # Locks wait busy_timeout (minutes) before this fires, so it means real trouble.
        raise StoreUnavailable(f"the index database failed: {exc.orig}") from None
    except DBAPIError as exc:
        raise StoreUnavailable(f"the index database failed: {exc.orig}") from None
    except sqlite3.OperationalError as exc:  # raised by our own BEGIN, which SQLAlchemy does not wrap
        if _is_busy(exc):
            raise StoreBusy(f"the index database is locked by another writer: {exc}") from None
        raise StoreUnavailable(f"the index database failed: {exc}") from None
    except sa.exc.TimeoutError as exc:  # every pooled connection busy for pool_timeout seconds
        raise StoreUnavailable(f"the index database is overloaded: {exc}") from None


def _is_busy(exc: BaseException | None) -> bool:
    """SQLite's SQLITE_BUSY family: "database is locked" (another writer, or a read
    snapshot that went stale before it could write) and "database is busy"."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF == sqlite3.SQLITE_BUSY
    return "database is locked" in str(exc) or "database is busy" in str(exc)


def current_revision(conn: Connection) -> str | None:
    insp = sa.inspect(conn)
    if not insp.has_table("alembic_version"):
        return None
    row = conn.exec_driver_sql("SELECT version_num FROM alembic_version").first()
    return row[0] if row else None


def ensure_schema(engine: Engine, create: bool = True) -> None:
    """Create a fresh index at the head revision, or refuse an out-of-date one.

    A new store needs no set-up; an existing one is never migrated implicitly
    (``cairn db upgrade`` does that) so that a library upgrade can't silently
    rewrite a team's database.
    """
    with session(engine, write=True) as conn:
        rev = current_revision(conn)
        if rev == tables.HEAD_REVISION:
            return
        if rev is None and not sa.inspect(conn).has_table("runs"):
            if not create:
                raise SchemaOutOfDate("the index has no Cairn schema; run `cairn db upgrade`")
            tables.metadata.create_all(conn)
            conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS alembic_version "
                                 "(version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
            conn.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES (:v)"),
                         {"v": tables.HEAD_REVISION})
            return
        raise SchemaOutOfDate(
            f"the index schema is at revision {rev!r} but this Cairn needs "
            f"{tables.HEAD_REVISION!r}; run `cairn db upgrade` (back up the store first)")
