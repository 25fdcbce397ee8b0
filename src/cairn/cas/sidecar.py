"""Small SQLite files that sit next to a store (the pack index, the hash cache).

Each is opened lazily, in WAL mode with ``synchronous=NORMAL`` and a long busy
timeout, shared by the threads of one process, and created on the first write.
:func:`sidecar_error` turns SQLite's errors (a full disk: ``SQLITE_FULL``) into
:class:`~cairn.errors.StoreUnavailable` or :class:`~cairn.errors.StorageFull`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Sequence

from ..errors import CairnError, StorageFull, StoreUnavailable, from_os_error


def open_sidecar(path: Path, schema: Sequence[str], create: bool) -> sqlite3.Connection | None:
    """A connection to ``path`` with ``schema`` applied; None if it does not exist and
    ``create`` is false (a reader has nothing to read yet)."""
    if not create and not path.exists():
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise from_os_error(exc, "could not create the directory of", path) from exc
    conn = sqlite3.connect(path, timeout=120, check_same_thread=False, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        for statement in schema:
            conn.execute(statement)
    except sqlite3.Error as exc:
        conn.close()
        raise sidecar_error(exc, path, "could not open") from exc
    return conn


def sidecar_error(exc: sqlite3.Error, path: Path, action: str) -> CairnError:
    """The :class:`~cairn.errors.CairnError` for a SQLite error met ``action`` ``path``."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary == sqlite3.SQLITE_FULL:
        return StorageFull(f"{action} {path}: no space left on device; once the disk holding "
                           "the store has room again, the same call succeeds", path=str(path))
    return StoreUnavailable(f"{action} {path}: {exc}", path=str(path))


def rollback_quietly(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if SQLite has not already (it does on SQLITE_FULL and
    some I/O errors: a second ROLLBACK would raise and hide the first error)."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
