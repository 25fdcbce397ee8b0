"""Small SQLite files that sit next to a store (the pack index, the hash cache).

Each is opened lazily, in WAL mode with ``synchronous=NORMAL`` and a long busy
timeout, shared by the threads of one process, and created on the first write.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Sequence


def open_sidecar(path: Path, schema: Sequence[str], create: bool) -> sqlite3.Connection | None:
    """A connection to ``path`` with ``schema`` applied; None if it does not exist and
    ``create`` is false (a reader has nothing to read yet)."""
    if not create and not path.exists():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=120, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for statement in schema:
        conn.execute(statement)
    return conn
