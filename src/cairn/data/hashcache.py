"""The local hash cache: re-adding an unchanged directory costs a stat pass, not a re-hash.

One SQLite file per store (``STORE/cache/hashes.sqlite``) maps an absolute path to
the ``FileEntry`` its content gave, keyed by what ``stat`` says about it: size,
``mtime_ns``, ``ctime_ns`` and inode.  A file whose stat matches is taken as unchanged.
``ctime`` is there as in git's index: a tool that rewrites a file in place and then
puts its mtime back (``cp -p``, ``rsync -t``, ``touch -r``) cannot put ctime back.

Racy entries are never written: a file whose mtime is within ``RACY_NS`` of the
moment hashing started could be modified again within the same timestamp tick
without its stat changing (git's "racily clean" problem), so it is hashed again
next time instead.  The cache is only a cache: deleting the file loses nothing.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Iterable

from ..cas.sidecar import open_sidecar
from ..entities import FileEntry

log = logging.getLogger("cairn.data")

RACY_NS = 100_000_000  # 100 ms: above any file system's timestamp tick

# "files" replaced an earlier "hashes" table that had no ctime; an old table is left
# alone and unused, which costs one re-hash.
_SCHEMA = ("CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
           "mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, "
           "digest TEXT NOT NULL, chunks TEXT)",)


def chunks_of(text: str | None) -> tuple[tuple[str, int], ...]:
    return tuple((c[0], c[1]) for c in json.loads(text)) if text else ()


class HashCache:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)  # created on the first write
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _db(self, create: bool) -> sqlite3.Connection | None:
        if self._conn is None:
            self._conn = open_sidecar(self.path, _SCHEMA, create)
        return self._conn

    def load(self, root: str, single: bool = False) -> dict[str, tuple]:
        """Cached rows for ``root`` (a file) or everything under it (a directory).

        Each maps an absolute path to ``(size, mtime_ns, ctime_ns, inode, digest, chunks_json)``;
        plain tuples, because a re-add of 100k files reads 100k of them.
        """
        with self._lock:
            try:
                conn = self._db(create=False)
                if conn is None:
                    return {}
                if single:
                    rows = conn.execute("SELECT * FROM files WHERE path = ?", (root,))
                else:
                    prefix = root.rstrip(os.sep) + os.sep
                    # A range scan on the primary key: every path that starts with prefix.
                    rows = conn.execute("SELECT * FROM files WHERE path >= ? AND path < ?",
                                        (prefix, prefix[:-1] + chr(ord(os.sep) + 1)))
                return {row[0]: row[1:] for row in rows}
            except (sqlite3.Error, OSError) as exc:  # unreadable: every file is hashed again
                log.warning("could not read the hash cache %s: %s", self.path, exc)
                return {}

    def store(self, items: Iterable[tuple[str, int, int, int, int, FileEntry]]) -> int:
        """Record (abs path, size, mtime_ns, ctime_ns, inode, entry) rows; returns how many."""
        rows = [(p, s, m, c, i, e.digest,
                 json.dumps([list(c) for c in e.chunks]) if e.chunks else None)
                for p, s, m, c, i, e in items]
        if not rows:
            return 0
        with self._lock:
            try:
                conn = self._db(create=True)
                assert conn is not None
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
                                     rows)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:  # SQLite rolls back by itself on a full disk
                        conn.execute("ROLLBACK")
                    raise
            except (sqlite3.Error, OSError) as exc:
                # Only a cache: the next add hashes these files again.  A full disk must
                # not fail an add whose objects and manifest were written.
                log.warning("could not update the hash cache %s: %s", self.path, exc)
                return 0
        return len(rows)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
