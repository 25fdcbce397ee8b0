"""Packs: many small objects stored as one, so 100k tiny files are not 100k objects.

A **pack** is an ordinary object (content-addressed, compressed, verified like any
other) whose content is a header listing its members followed by their bytes::

    b"CAIRNPK1"                      8-byte magic
    u32 little-endian                length of the header
    header                           canonical JSON {"format":"cairn.pack/1",
                                                     "members":[[oid, offset, size], ...]}
    body                             the members' contents, concatenated

Offsets are relative to the start of the body.  A member keeps its own oid (the
SHA-256 of its content), so trees never mention packs: a file in a tree names its
digest and the store finds it loose or packed.  Reads re-hash the member, so a
damaged pack is reported as :class:`~cairn.errors.CorruptObject` like a loose object.

Where members are is kept in a :class:`PackIndex` (a SQLite file next to a local
store, a dict in memory).  The index is a cache of what the packs themselves say:
:func:`rebuild_index` recreates it from the objects.  A pack is registered only
after it is stored, so the index never points at a pack that is not there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Protocol, Sequence

from ..errors import CorruptObject, InvalidArgument
from .backends.base import check_oid
from .sidecar import open_sidecar, rollback_quietly, sidecar_error

if TYPE_CHECKING:  # pragma: no cover
    from types import TracebackType

    from .odb import ObjectStore

FORMAT = "cairn.pack/1"
MAGIC = b"CAIRNPK1"
_LEN = struct.Struct("<I")
# Files up to this size go into packs; bigger ones are loose objects (or chunked).
PACK_MEMBER_MAX = 1024 * 1024
# A pack is closed once its body reaches this size: large enough that a 100k-file
# data set is a few dozen requests, small enough that reading one member is cheap.
PACK_TARGET = 16 * 1024 * 1024
_SQL_CHUNK = 900  # SQLite's default limit on host parameters is 999
_BULK = 4 * _SQL_CHUNK


@dataclass(frozen=True, slots=True)
class PackLocation:
    """Where a packed object lives: ``size`` bytes at ``offset`` in the body of ``pack``."""

    pack: str
    offset: int
    size: int


# -- format ----------------------------------------------------------------------------

def encode_pack(members: Sequence[tuple[str, bytes]]) -> bytes:
    """Pack content for ``(oid, content)`` pairs, in the order given (duplicates refused)."""
    entries, offset, seen = [], 0, set()
    for oid, data in members:
        check_oid(oid)
        if oid in seen:
            raise InvalidArgument(f"object {oid} appears twice in one pack", oid=oid)
        seen.add(oid)
        entries.append([oid, offset, len(data)])
        offset += len(data)
    header = json.dumps({"format": FORMAT, "members": entries}, separators=(",", ":"),
                        sort_keys=True).encode()
    return b"".join([MAGIC, _LEN.pack(len(header)), header, *(d for _, d in members)])


def is_pack(content: bytes | memoryview) -> bool:
    return bytes(content[:len(MAGIC)]) == MAGIC


def decode_header(oid: str, content: bytes | memoryview) -> tuple[list[tuple[str, int, int]], int]:
    """``(members, body_start)`` of a pack's content; :class:`CorruptObject` if malformed."""
    try:
        if not is_pack(content):
            raise ValueError("no pack magic")
        (hlen,) = _LEN.unpack_from(content, len(MAGIC))
        start = len(MAGIC) + _LEN.size
        doc = json.loads(bytes(content[start:start + hlen]))
        if doc.get("format") != FORMAT:
            raise ValueError(f"unknown pack format {doc.get('format')!r}")
        body = start + hlen
        members = [(check_oid(m[0]), int(m[1]), int(m[2])) for m in doc["members"]]
        for _, off, size in members:
            if off < 0 or size < 0 or body + off + size > len(content):
                raise ValueError("member outside the pack")
        return members, body
    except (ValueError, KeyError, TypeError, IndexError, struct.error, InvalidArgument) as exc:
        raise CorruptObject(f"object {oid} is not a valid pack ({exc})", oid=oid) from None


# -- the index -------------------------------------------------------------------------

class PackIndex(Protocol):
    """Which pack holds which object.  Implementations are safe to share between threads."""

    def locate(self, oids: Iterable[str]) -> dict[str, PackLocation]:
        """Locations of those ``oids`` that are packed (absent ones are left out)."""

    def add(self, pack: str, members: Sequence[tuple[str, int, int]]) -> None:
        """Record that ``pack`` (already stored) holds ``members`` as (oid, offset, size)."""

    def packs(self) -> set[str]:
        """Every registered pack."""

    def remove(self, pack: str) -> None:
        """Forget ``pack`` and its members (before deleting the pack object)."""

    def replace(self, old: str, new: str, members: Sequence[tuple[str, int, int]]) -> None:
        """In one step: ``members`` are now in pack ``new`` (already stored), ``old`` is
        forgotten (what repacking does: no reader ever finds a live member unlocated)."""


class MemoryPackIndex:
    """A :class:`PackIndex` in a dict, the twin of :class:`SqlitePackIndex`."""

    def __init__(self) -> None:
        self._where: dict[str, PackLocation] = {}
        self._packs: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def locate(self, oids: Iterable[str]) -> dict[str, PackLocation]:
        with self._lock:
            return {o: self._where[o] for o in oids if o in self._where}

    def add(self, pack: str, members: Sequence[tuple[str, int, int]]) -> None:
        with self._lock:
            self._packs[pack] = [m[0] for m in members]
            for oid, off, size in members:
                self._where.setdefault(oid, PackLocation(pack, off, size))

    def packs(self) -> set[str]:
        with self._lock:
            return set(self._packs)

    def remove(self, pack: str) -> None:
        with self._lock:
            for oid in self._packs.pop(pack, []):
                if self._where.get(oid, PackLocation("", 0, 0)).pack == pack:
                    del self._where[oid]

    def replace(self, old: str, new: str, members: Sequence[tuple[str, int, int]]) -> None:
        with self._lock:
            for oid in self._packs.pop(old, []):
                if self._where.get(oid, PackLocation("", 0, 0)).pack == old:
                    del self._where[oid]
            self._packs[new] = [m[0] for m in members]
            for oid, off, size in members:
                self._where[oid] = PackLocation(new, off, size)

    def members_of(self, pack: str) -> list[tuple[str, int, int]]:
        with self._lock:
            out = [(o, loc.offset, loc.size) for o in self._packs.get(pack, [])
                   if (loc := self._where.get(o)) is not None and loc.pack == pack]
        return sorted(out, key=lambda m: m[1])


_PACK_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS members (oid TEXT PRIMARY KEY, pack TEXT NOT NULL, "
    "off INTEGER NOT NULL, size INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ix_members_pack ON members (pack)",
    "CREATE TABLE IF NOT EXISTS packs (oid TEXT PRIMARY KEY, members INTEGER NOT NULL)",
)


class SqlitePackIndex:
    """A :class:`PackIndex` in a SQLite file; the file is created on the first write."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)  # no I/O here
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SqlitePackIndex({str(self.path)!r})"

    def _db(self, create: bool) -> sqlite3.Connection | None:
        if self._conn is None:
            self._conn = open_sidecar(self.path, _PACK_SCHEMA, create)
        return self._conn

    def locate(self, oids: Iterable[str]) -> dict[str, PackLocation]:
        wanted = list(dict.fromkeys(oids))
        out: dict[str, PackLocation] = {}
        with self._lock:
            conn = self._db(create=False)
            if conn is None or not wanted:
                return out
            if len(wanted) > _BULK and 4 * len(wanted) > (
                    conn.execute("SELECT max(rowid) FROM members").fetchone()[0] or 0):
                # Asked for a good part of the index: one scan beats any lookup.
                want = set(wanted)
                rows = [r for r in conn.execute("SELECT oid, pack, off, size FROM members")
                        if r[0] in want]
            elif len(wanted) > _BULK:
                # One join against a temporary table beats a hundred IN (...) lists.
                conn.execute("PRAGMA temp_store=MEMORY")
                conn.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (oid TEXT PRIMARY KEY)")
                conn.execute("BEGIN")  # one transaction, not one per inserted row
                try:
                    conn.executemany("INSERT OR IGNORE INTO wanted VALUES (?)",
                                     ((o,) for o in wanted))
                    rows = conn.execute("SELECT m.oid, m.pack, m.off, m.size FROM wanted w "
                                        "JOIN members m ON m.oid = w.oid").fetchall()
                finally:
                    conn.execute("DELETE FROM wanted")
                    conn.execute("COMMIT")
            else:
                rows = []
                for i in range(0, len(wanted), _SQL_CHUNK):
                    part = wanted[i:i + _SQL_CHUNK]
                    marks = ",".join("?" * len(part))
                    rows += conn.execute(f"SELECT oid, pack, off, size FROM members "
                                         f"WHERE oid IN ({marks})", part).fetchall()
        for oid, pack, off, size in rows:
            out[oid] = PackLocation(pack, off, size)
        return out

    def add(self, pack: str, members: Sequence[tuple[str, int, int]]) -> None:
        # A full disk: the pack is stored but not registered, so its members are not
        # readable through it; adding them again registers it (rebuild_index too).
        with self._writing("could not register a pack in") as conn:
            conn.executemany("INSERT OR IGNORE INTO members VALUES (?, ?, ?, ?)",
                             [(oid, pack, off, size) for oid, off, size in members])
            conn.execute("INSERT OR REPLACE INTO packs VALUES (?, ?)", (pack, len(members)))

    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction on the index (created if need be): committed when the
        block ends, rolled back if it raises; an SQLite error (a full disk) is reported as
        the store's own error, ``what`` naming the step."""
        with self._lock:
            conn = self._db(create=True)
            assert conn is not None
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    rollback_quietly(conn)
                    raise
            except sqlite3.Error as exc:
                raise sidecar_error(exc, self.path, what) from exc

    def packs(self) -> set[str]:
        with self._lock:
            conn = self._db(create=False)
            if conn is None:
                return set()
            return {row[0] for row in conn.execute("SELECT oid FROM packs")}

    def remove(self, pack: str) -> None:
        with self._lock:
            conn = self._db(create=False)
            if conn is None:
                return
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM members WHERE pack = ?", (pack,))
            conn.execute("DELETE FROM packs WHERE oid = ?", (pack,))
            conn.execute("COMMIT")

    def replace(self, old: str, new: str, members: Sequence[tuple[str, int, int]]) -> None:
        with self._writing("could not repack in") as conn:
            conn.execute("DELETE FROM members WHERE pack = ?", (old,))
            conn.execute("DELETE FROM packs WHERE oid = ?", (old,))
            conn.executemany("INSERT OR REPLACE INTO members VALUES (?, ?, ?, ?)",
                             [(oid, new, off, size) for oid, off, size in members])
            conn.execute("INSERT OR REPLACE INTO packs VALUES (?, ?)", (new, len(members)))

    def members_of(self, pack: str) -> list[tuple[str, int, int]]:
        """``(oid, offset, size)`` of the members located in ``pack``."""
        with self._lock:
            conn = self._db(create=False)
            if conn is None:
                return []
            return [tuple(r) for r in conn.execute(
                "SELECT oid, off, size FROM members WHERE pack = ? ORDER BY off", (pack,))]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


# -- reading ---------------------------------------------------------------------------

class PackCache:
    """The decoded content of the last few packs read, so a checkout reads each pack once."""

    def __init__(self, size: int = 3) -> None:
        self._size = size
        self._packs: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._packs.clear()

    def get(self, store: "ObjectStore", pack: str) -> bytes:
        with self._lock:
            data = self._packs.get(pack)
            if data is not None:
                self._packs.move_to_end(pack)
                return data
        data = store.get_bytes(pack)  # verified against the pack's own oid
        with self._lock:
            self._packs[pack] = data
            while len(self._packs) > self._size:
                self._packs.popitem(last=False)
        return data


def member_bytes(store: "ObjectStore", oid: str, loc: PackLocation, cache: PackCache) -> bytes:
    """A packed object's content, re-hashed against ``oid``."""
    content = cache.get(store, loc.pack)
    start = body_start(loc.pack, content) + loc.offset
    data = content[start:start + loc.size]
    if len(data) != loc.size or hashlib.sha256(data).hexdigest() != oid:
        raise CorruptObject(f"object {oid} in pack {loc.pack} is corrupt: content does not "
                            "match its id", oid=oid, pack=loc.pack)
    return data


def body_start(pack: str, content: bytes) -> int:
    if not is_pack(content) or len(content) < len(MAGIC) + _LEN.size:
        raise CorruptObject(f"object {pack} is not a valid pack (no pack magic)", oid=pack)
    (hlen,) = _LEN.unpack_from(content, len(MAGIC))
    return len(MAGIC) + _LEN.size + hlen


# -- writing ---------------------------------------------------------------------------

class PackWriter:
    """Collects small objects and stores them as packs of about ``target`` bytes.

    Use it as a context manager or call :meth:`close`: members become readable only
    once their pack is stored and registered.  ``written`` lists the packs stored.
    """

    def __init__(self, store: "ObjectStore", *, target: int = PACK_TARGET) -> None:
        if store.packs is None:
            raise InvalidArgument("this object store has no pack index")
        self.store = store
        self.target = target
        self.written: list[str] = []
        self._members: list[tuple[str, bytes]] = []
        self._seen: set[str] = set()
        self._size = 0
        self._lock = threading.Lock()

    def add(self, oid: str, data: bytes) -> None:
        """Queue an object (its oid already computed); a pack is stored when full."""
        with self._lock:
            if oid in self._seen:
                return
            self._seen.add(oid)
            self._members.append((oid, data))
            self._size += len(data)
            if self._size < self.target:
                return
            batch, self._members, self._size = self._members, [], 0
        self._store(batch)

    def flush(self) -> None:
        with self._lock:
            batch, self._members, self._size = self._members, [], 0
        if batch:
            self._store(batch)

    def _store(self, batch: list[tuple[str, bytes]]) -> None:
        content = encode_pack(batch)
        pack = self.store.put_bytes(content)
        members, _ = decode_header(pack, content)
        assert self.store.packs is not None
        self.store.packs.add(pack, members)  # only after the pack is stored
        with self._lock:
            self.written.append(pack)

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> "PackWriter":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()


def iter_pack_members(store: "ObjectStore", pack: str) -> Iterator[tuple[str, int, int]]:
    content = store.get_bytes(pack)
    members, _ = decode_header(pack, content)
    yield from members


def register_pack(store: "ObjectStore", pack: str) -> int:
    """Read a stored pack's header and record its members in the store's index."""
    if store.packs is None:
        raise InvalidArgument("this object store has no pack index")
    members = list(iter_pack_members(store, pack))
    store.packs.add(pack, members)
    return len(members)


def rebuild_index(store: "ObjectStore") -> int:
    """Register every pack found among the stored objects; returns how many.

    The index is a cache of the packs' own headers, so a lost or damaged index file
    is repaired by deleting it and running this.
    """
    from . import codec

    count = 0
    for oid in store.backend.iter_oids():
        stored = store.backend.get(oid)
        if stored[:1] == codec.RAW and stored[1:1 + len(MAGIC)] != MAGIC:
            continue
        try:
            content = codec.decode(oid, stored)
        except CorruptObject:
            continue
        if is_pack(content) and hashlib.sha256(content).hexdigest() == oid:
            members, _ = decode_header(oid, content)
            assert store.packs is not None
            store.packs.add(oid, members)
            count += 1
    return count
