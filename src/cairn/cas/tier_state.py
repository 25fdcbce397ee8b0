"""What tiering remembers beside a hot object store: its configuration, the objects moved
cold, and when objects were last read.

Everything lives with the hot store, so any process that opens it (with or without
``CAIRN_COLD_OBJECTS``) finds the cold tier:

* ``tiers.json`` in the hot store's root (a local directory, or ``PREFIX/tiers.json`` in
  an S3 hot store): ``{"format": "cairn.tiers/1", "cold": ..., "endpoint_url": ...,
  "since": MS}``.  ``since`` is when read tracking began: no read before it was seen, so
  nothing counts as unread from before it.
* A local hot store keeps ``tier-index.sqlite`` there too (WAL, short transactions):
  ``cold(oid, size, moved_at)`` lists what was moved, so a miss in the hot store is
  answered without asking the cold one (a packed member, a new object's put), and
  ``reads(oid, at)`` the last recorded read of each hot object.
* An S3 hot store has no such index (a miss asks the cold store); its reads are batches
  ``PREFIX/tier-reads/<ms>-<random>.json`` (``{oid: ms}``), one per flush of a process,
  merged into one by each ``cairn tier move``.

Neither file is an object: object listings skip them.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol

from ..errors import InvalidArgument, from_os_error
from .backends.base import Backend
from .sidecar import open_sidecar, rollback_quietly, sidecar_error

CONFIG_NAME = "tiers.json"
INDEX_NAME = "tier-index.sqlite"
READS_PREFIX = "tier-reads/"
FORMAT = "cairn.tiers/1"
_SQL_CHUNK = 900


@dataclass(frozen=True, slots=True)
class TierConfig:
    """A hot store's cold tier: ``cold`` (an absolute directory or ``s3://bucket/prefix``),
    its S3 ``endpoint_url``, and ``since``, when read tracking began (epoch ms)."""

    cold: str
    endpoint_url: str | None
    since: int

    def to_bytes(self) -> bytes:
        return json.dumps({"format": FORMAT, "cold": self.cold, "endpoint_url": self.endpoint_url,
                           "since": self.since}, sort_keys=True, indent=1).encode() + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> "TierConfig":
        try:
            doc = json.loads(data)
            if doc.get("format") != FORMAT or not isinstance(doc.get("cold"), str) \
                    or not isinstance(doc.get("since"), int):
                raise ValueError("not a cairn.tiers/1 document")
            url = doc.get("endpoint_url")
            return cls(doc["cold"], url if isinstance(url, str) else None, doc["since"])
        except (ValueError, AttributeError) as exc:
            raise InvalidArgument(f"{where} is damaged ({exc}): it names this store's cold "
                                  "tier; restore it from a backup or rewrite it by hand") from None


def normalise_cold(spec: str) -> str:
    """``s3://bucket/prefix`` as it is, a directory (or ``file://`` one) made absolute."""
    if not isinstance(spec, str) or not spec.strip() or "\x00" in spec:
        raise InvalidArgument(f"a cold tier is a directory or s3://bucket/prefix, got {spec!r}")
    spec = spec.strip()
    try:
        spec.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(f"a cold tier is a directory or s3://bucket/prefix, got "
                              f"{spec!r}") from None
    if spec.startswith("s3://"):
        from .backends.s3 import parse_s3_url

        try:
            bucket, prefix = parse_s3_url(spec)
        except ValueError as exc:
            raise InvalidArgument(f"cold tier {spec!r}: {exc}") from None
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    if "://" in spec and not spec.startswith("file://"):
        raise InvalidArgument(f"a cold tier is a directory or s3://bucket/prefix, got {spec!r}")
    return os.path.abspath(os.path.expanduser(spec.removeprefix("file://")))


# -- where the files live ---------------------------------------------------------------

class Side(Protocol):
    """Small named files beside a hot store's objects."""

    label: str

    def read(self, name: str) -> bytes | None: ...
    def write(self, name: str, data: bytes) -> None: ...
    def names(self, prefix: str) -> list[str]: ...
    def remove(self, name: str) -> None: ...


class LocalSide:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.label = str(root)

    def read(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        dest = self.root / name
        tmp = dest.with_name(f".tmp-{dest.name}-{secrets.token_hex(4)}")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, dest)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise from_os_error(exc, "could not write", dest) from exc

    def names(self, prefix: str) -> list[str]:
        folder, _, start = prefix.rpartition("/")
        try:
            found = os.listdir(self.root / folder)
        except FileNotFoundError:
            return []
        return sorted(f"{folder}/{n}" if folder else n for n in found
                      if n.startswith(start) and not n.startswith(".tmp-"))

    def remove(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)


class S3Side:
    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.label = f"s3://{backend.bucket}/{backend.prefix}"

    def _key(self, name: str) -> str:
        return f"{self.backend.prefix}/{name}" if self.backend.prefix else name

    def read(self, name: str) -> bytes | None:
        from ..errors import NotFound

        b = self.backend
        try:
            return b._call(b.client.get_object, None, Key=self._key(name))["Body"].read()
        except NotFound:
            return None

    def write(self, name: str, data: bytes) -> None:
        b = self.backend
        b._call(b.client.put_object, None, Key=self._key(name), Body=data)

    def names(self, prefix: str) -> list[str]:
        b = self.backend
        start = self._key("")
        out, token = [], None
        while True:
            kw: dict[str, Any] = {"Prefix": self._key(prefix)}
            if token:
                kw["ContinuationToken"] = token
            page = b._call(b.client.list_objects_v2, None, **kw)
            out += [item["Key"][len(start):] for item in page.get("Contents", ())]
            if not page.get("IsTruncated"):
                return sorted(out)
            token = page.get("NextContinuationToken")

    def remove(self, name: str) -> None:
        b = self.backend
        b._call(b.client.delete_object, None, Key=self._key(name))


def side_of(hot: Backend) -> Side | None:
    """Where ``hot`` keeps tiering's files; None for a backend that cannot be tiered."""
    from .backends.local import LocalBackend

    if isinstance(hot, LocalBackend):
        return LocalSide(hot.root)
    if type(hot).__name__ == "S3Backend" and type(hot).__module__.endswith("backends.s3"):
        return S3Side(hot)
    return None


# -- the local index: what is cold, and last reads -----------------------------------------

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS cold (oid TEXT PRIMARY KEY, size INTEGER NOT NULL, "
    "moved_at INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS reads (oid TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID",
)


class TierIndex:
    """``tier-index.sqlite`` of a local hot store (created on the first write to it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        # One connection for the process's threads (the read-counting thread, a move, a
        # collection): a transaction spans several statements, so one thread at a time.
        self._lock = threading.RLock()

    def _db(self, create: bool) -> sqlite3.Connection | None:
        if self._pid != os.getpid():
            self.forget_connection()
        if self._conn is None:
            self._conn = open_sidecar(self.path, _SCHEMA, create)
        return self._conn

    def forget_connection(self) -> None:
        """After a fork: the parent's connection is not this process's to use (or close)."""
        self._conn, self._pid = None, os.getpid()

    def _write(self, sql: str, rows: Iterable[tuple]) -> None:
        with self._lock:
            conn = self._db(True)
            assert conn is not None
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(sql, rows)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                rollback_quietly(conn)
                raise sidecar_error(exc, self.path, "could not write") from exc

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            conn = self._db(False)
            if conn is None:
                return []
            try:
                return conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise sidecar_error(exc, self.path, "could not read") from exc

    def _one(self, sql: str, args: tuple) -> tuple[int, tuple | None]:
        """One statement in its own (autocommit) transaction: (rows changed, first row
        returned); (0, None) without a file."""
        with self._lock:
            conn = self._db(False)
            if conn is None:
                return 0, None
            try:
                cur = conn.execute(sql, args)
                rows = cur.fetchall()  # to the end: the statement (and its lock) is done
                return cur.rowcount, (rows[0] if rows else None)
            except sqlite3.Error as exc:
                raise sidecar_error(exc, self.path, "could not write") from exc

    # what is cold
    def cold_size(self, oid: str) -> int | None:
        rows = self._query("SELECT size FROM cold WHERE oid = ?", (oid,))
        return rows[0][0] if rows else None

    def add_cold(self, oid: str, size: int, at: int) -> None:
        self._write("INSERT OR REPLACE INTO cold VALUES (?, ?, ?)", [(oid, size, at)])

    def remove_cold(self, oid: str) -> None:
        self._write("DELETE FROM cold WHERE oid = ?", [(oid,)])

    def iter_cold(self) -> Iterator[str]:
        """Cold oids in order (so a listing can merge them with the hot one shard by shard)."""
        last = ""
        while True:
            rows = self._query("SELECT oid FROM cold WHERE oid > ? ORDER BY oid LIMIT 5000",
                               (last,))
            if not rows:
                return
            for (oid,) in rows:
                yield oid
            last = rows[-1][0]

    def cold_rows(self) -> Iterator[tuple[str, int, int]]:
        """``(oid, size, moved_at ms)`` of every cold object, in oid order."""
        last = ""
        while True:
            rows = self._query("SELECT oid, size, moved_at FROM cold WHERE oid > ? ORDER BY oid "
                               "LIMIT 5000", (last,))
            if not rows:
                return
            yield from rows
            last = rows[-1][0]

    def touch_cold(self, oid: str, at: int) -> bool:
        """Make a cold object young for garbage collection; False if it is not cold."""
        if self.cold_size(oid) is None:  # a read first: most puts are of new objects
            return False
        changed, _ = self._one("UPDATE cold SET moved_at = max(moved_at, ?) WHERE oid = ?",
                               (at, oid))
        return changed > 0

    def remove_cold_if_old(self, oid: str, before: int) -> int | None:
        """Forget a cold object whose time is before ``before`` (ms), in one statement, so
        a :meth:`touch_cold` either came first (kept) or finds it gone (stored again);
        its size, or None when kept or not cold."""
        _, row = self._one("DELETE FROM cold WHERE oid = ? AND moved_at < ? RETURNING size",
                           (oid, before))
        return None if row is None else int(row[0])

    def cold_count(self) -> tuple[int, int]:
        rows = self._query("SELECT count(*), coalesce(sum(size), 0) FROM cold")
        return (rows[0][0], rows[0][1]) if rows else (0, 0)

    # last reads
    def record_reads(self, batch: dict[str, int]) -> None:
        self._write("INSERT INTO reads VALUES (?, ?) ON CONFLICT(oid) DO UPDATE SET "
                    "at = max(at, excluded.at)", batch.items())

    def last_reads(self) -> dict[str, int]:
        return dict(self._query("SELECT oid, at FROM reads"))

    def forget_reads(self, oids: list[str]) -> None:
        self._write("DELETE FROM reads WHERE oid = ?", [(o,) for o in oids])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


class BatchReads:
    """Last reads as batch files beside an S3 hot store (no database to share there)."""

    def __init__(self, side: Side) -> None:
        self.side = side

    def record_reads(self, batch: dict[str, int]) -> None:
        from .. import clock

        name = f"{READS_PREFIX}{clock.now_ms():015d}-{secrets.token_hex(6)}.json"
        self.side.write(name, json.dumps(batch, separators=(",", ":")).encode())

    def _load(self) -> tuple[dict[str, int], list[str]]:
        merged: dict[str, int] = {}
        names = self.side.names(READS_PREFIX)
        for name in names:
            data = self.side.read(name)
            try:
                doc = json.loads(data or b"{}")
            except ValueError:
                continue  # a damaged batch costs only what it recorded
            for oid, at in (doc.items() if isinstance(doc, dict) else ()):
                if isinstance(at, int) and at > merged.get(oid, -1):
                    merged[oid] = at
        return merged, names

    def last_reads(self) -> dict[str, int]:
        return self._load()[0]

    def forget_reads(self, oids: list[str]) -> None:
        """Merge every batch into one, leaving out ``oids``: the new batch is written before
        the old ones are removed, so a read recorded meanwhile is never lost."""
        drop = set(oids)
        merged, names = self._load()
        merged = {o: t for o, t in merged.items() if o not in drop}
        if len(names) <= 1 and not drop:
            return
        if merged:
            self.record_reads(merged)
        for name in names:
            self.side.remove(name)

    def close(self) -> None:
        pass
