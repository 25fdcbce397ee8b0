"""The run journal: append-only, CRC-checked records, one file per writer.

Every writer (one process logging to one run) appends to its own file, so
appends never contend.  A record is one :class:`RecordBatch`::

    magic  4 bytes  b"CJR1"
    length u32 LE   bytes of payload
    crc32  u32 LE   zlib.crc32 of payload
    payload         header_len u32 LE | header (UTF-8 JSON) | metric segments

The JSON header carries the batch's fields; ``"segments": [[key, nbytes], ...]``
lists the metric segments (see segments.py) that follow it in order.  The magic
lets a reader resynchronise after a corrupted record: it skips to the next magic
whose CRC checks, reports the damaged span and keeps the rest of the run.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import orjson

from ..entities import FileEntry, RecordBatch, RunStatus
from . import segments
from .envjson import env_text

MAGIC = b"CJR1"
_FRAME = struct.Struct("<4sII")
_U32 = struct.Struct("<I")
MAX_RECORD = 1 << 30


def encode_batch(batch: RecordBatch, prepared: "list[segments.Segment] | None" = None) -> bytes:
    """Frame one batch; ``prepared`` are its metric segments if the caller already encoded them."""
    if prepared is None:
        prepared = [segments.prepare(k, *arrays) for k, arrays in batch.metrics.items()]
    seg_meta = [[seg.key, len(seg.blob)] for seg in prepared]
    blobs = [seg.blob for seg in prepared]
    header: dict = {"run": batch.run_id, "w": batch.writer_id, "seq": batch.seq, "t": batch.time}
    if batch.create is not None:
        header["create"] = dict(batch.create)
    if batch.params:
        header["params"] = dict(batch.params)
    if batch.tags:
        header["tags"] = dict(batch.tags)
    if batch.deleted_tags:
        header["deleted_tags"] = list(batch.deleted_tags)
    if batch.artifacts:
        header["artifacts"] = [[a.path, a.size, a.digest, [list(c) for c in a.chunks]]
                               for a in batch.artifacts]
    if batch.status is not None:
        header["status"] = batch.status.value
        header["end_time"] = batch.end_time
    if seg_meta:
        header["segments"] = seg_meta
    try:
        hbytes = orjson.dumps(header)  # strings and integers only: no NaN to refuse
    except orjson.JSONEncodeError:  # e.g. a lone surrogate, which the json module escapes
        hbytes = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    if batch.env is not None:  # spliced in: the environment's JSON is memoised across runs
        hbytes = b"%s,\"env\":%s}" % (hbytes[:-1], env_text(batch.env).encode())
    payload = b"".join([_U32.pack(len(hbytes)), hbytes, *blobs])
    return _FRAME.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def decode_payload(payload: bytes, prepared: "list[segments.Segment] | None" = None) -> RecordBatch:
    """The batch in one record's payload; its metric segments go to ``prepared`` if given."""
    (hlen,) = _U32.unpack_from(payload)
    header = json.loads(payload[4:4 + hlen])
    pos = 4 + hlen
    metrics = {}
    for key, nbytes in header.get("segments", ()):
        blob = payload[pos:pos + nbytes]
        metrics[key] = segments.decode(blob)
        if prepared is not None:
            prepared.append(segments.from_blob(key, blob, metrics[key]))
        pos += nbytes
    status = header.get("status")
    return RecordBatch(
        run_id=header["run"], writer_id=header["w"], seq=header["seq"], time=header["t"],
        params=header.get("params", {}), tags=header.get("tags", {}),
        deleted_tags=tuple(header.get("deleted_tags", ())), metrics=metrics,
        artifacts=tuple(FileEntry(p, size, digest, tuple(tuple(c) for c in chunks))
                        for p, size, digest, chunks in header.get("artifacts", ())),
        status=RunStatus(status) if status else None, end_time=header.get("end_time"),
        create=header.get("create"), env=header.get("env"),
    )


def _strs(m: object) -> bool:
    """Whether ``m`` is a JSON object of strings to strings."""
    return type(m) is dict and all(type(k) is str and type(v) is str for k, v in m.items())


def _int(x: object) -> bool:
    return type(x) is int


def _opt(x: object, kind: type) -> bool:
    return x is None or type(x) is kind


_CREATE_FIELDS: dict[str, type] = {
    "experiment_name": str, "experiment_created_at": int, "name": str, "start_time": int,
    "parent_id": str, "user": str, "heartbeat": int,
}


def check(batch: RecordBatch, run_id: str, writer_id: str) -> str | None:
    """Why a decoded record of ``run_id``'s journal ``writer_id`` cannot be replayed, or None.

    A journal written by Cairn passes; a tampered or damaged one (valid CRC, wrong contents)
    may not, and a record that went into the index with a wrong type would break every
    later read of its run.  Replay quarantines what this refuses (:mod:`.quarantine`).
    """
    if batch.run_id != run_id:
        return f"record names run {batch.run_id!r}, but lies in the journal of run {run_id}"
    if batch.writer_id != writer_id:
        return f"record names writer {batch.writer_id!r}, but lies in the journal of {writer_id}"
    if not _int(batch.seq) or batch.seq < 1:
        return f"bad sequence number {batch.seq!r}"
    if not _int(batch.time):
        return f"bad time {batch.time!r}"
    if not _strs(batch.params):
        return "params must map strings to strings"
    if not _strs(batch.tags):
        return "tags must map strings to strings"
    if not all(type(k) is str for k in batch.deleted_tags):
        return "deleted tags must be strings"
    if not all(type(k) is str for k in batch.metrics):
        return "metric keys must be strings"
    for a in batch.artifacts:
        if not (type(a.path) is str and _int(a.size) and type(a.digest) is str
                and all(len(c) == 2 and type(c[0]) is str and _int(c[1]) for c in a.chunks)):
            return f"bad artifact entry {a.path!r}"
    if not _opt(batch.end_time, int):
        return f"bad end time {batch.end_time!r}"
    if not _opt(batch.env, dict):
        return "env must be a JSON object"
    c = batch.create
    if c is not None:
        if type(c) is not dict or type(c.get("experiment_id")) is not str:
            return "run creation without an experiment id"
        for key, kind in _CREATE_FIELDS.items():
            if not _opt(c.get(key), kind):
                return f"run creation field {key!r} has a bad value {c[key]!r}"
    return None


@dataclass(frozen=True, slots=True)
class Damage:
    """A span of a journal that could not be read; reported by ``cairn doctor``."""

    path: str
    offset: int
    length: int
    reason: str


@dataclass(frozen=True, slots=True)
class Entry:
    offset: int  # where the record starts
    end: int  # where the next one starts
    batch: RecordBatch


def read(path: Path, offset: int = 0) -> Iterator[Entry | Damage]:
    """Yield records from ``offset``; damaged spans come out as :class:`Damage`.

    An incomplete record at the very end is not damage: its writer may still be
    writing it (or died mid-write; then the points of that flush are lost).
    """
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read()
    pos = 0
    size = len(data)
    while pos < size:
        if size - pos < _FRAME.size:
            return
        magic, length, crc = _FRAME.unpack_from(data, pos)
        bad = None
        if magic != MAGIC:
            bad = "bad record magic"
        elif length > MAX_RECORD:
            bad = f"implausible record length {length}"
        elif pos + _FRAME.size + length > size:
            nxt = data.find(MAGIC, pos + 1)
            if nxt < 0:
                return  # an incomplete tail
            bad = "truncated record"
        else:
            payload = data[pos + _FRAME.size:pos + _FRAME.size + length]
            if zlib.crc32(payload) != crc:
                bad = "CRC mismatch"
            else:
                try:
                    batch = decode_payload(payload)
                except Exception as exc:  # a CRC-valid but undecodable record is still damage
                    # Whole, so it ends where its length says: what follows is read on its own.
                    end = pos + _FRAME.size + length
                    yield Damage(str(path), offset + pos, end - pos, f"undecodable record: {exc}")
                    pos = end
                    continue
                else:
                    end = pos + _FRAME.size + length
                    yield Entry(offset + pos, offset + end, batch)
                    pos = end
                    continue
        nxt = data.find(MAGIC, pos + 1)
        stop = size if nxt < 0 else nxt
        yield Damage(str(path), offset + pos, stop - pos, bad)
        pos = stop


class JournalWriter:
    """Appends records to one writer's journal file.  Not thread-safe: one owner.

    Records go out with one unbuffered ``write`` each: a record is only worth anything
    whole, and a buffered file would add a copy and a flush call per record.
    """

    _FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._end = 0

    def _open(self, new: bool = False) -> None:
        """Open the file for appending; ``new``: a run's first record, so make its
        directories first rather than after a failed open."""
        if new:
            self._make_dirs()
        try:
            fd = os.open(self.path, self._FLAGS, 0o644)
        except FileNotFoundError:
            self._make_dirs()
            fd = os.open(self.path, self._FLAGS, 0o644)
        self._fd = fd
        self._end = os.fstat(fd).st_size

    def _make_dirs(self) -> None:
        # The run's directory and the journal directory in it: two plain mkdirs; pathlib's
        # parents=True tries the leaf first and fails once more, and directory creation is
        # a third of the file-system cost of a short run.
        try:
            for d in (self.path.parent.parent, self.path.parent):
                try:
                    os.mkdir(d)
                except FileExistsError:
                    pass
        except FileNotFoundError:  # the store's runs/ directory itself is new
            os.makedirs(self.path.parent, exist_ok=True)

    def append(self, batch: RecordBatch, prepared: list[segments.Segment] | None = None,
               fsync: bool = False) -> tuple[int, int]:
        """Append one record; returns (start offset, end offset)."""
        if self._fd is None:
            self._open(new=batch.create is not None)
        elif self._replaced():
            # `cairn admin erase-user` renames a rewritten copy over a journal (under the
            # index's write lock, as appends are): write to that, not to the old file.
            self.close()
            self._open()
        fd = self._fd
        assert fd is not None  # _open set it
        data = encode_batch(batch, prepared)
        # Where the file ends now, not where this writer left it: the workers of a server
        # on a local store each append to a writer's journal (under the index's write
        # lock), and the end offset goes into the index, where recovery starts reading.
        start = os.lseek(fd, 0, os.SEEK_END)
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view):]
        except OSError:
            # A torn record (disk full): cut it off, so that the retry of the same batch
            # follows the last whole record and `cairn doctor` finds no damage (shrinking
            # a file needs no space; readers never go past a whole record).  Should even
            # that fail, readers skip it as damage and later records start after it.
            try:
                os.ftruncate(fd, start)
                self._end = start
            except OSError:
                self._end = os.fstat(fd).st_size
            raise
        self._end = start + len(data)
        if fsync:
            os.fsync(fd)
        return start, self._end

    def _replaced(self) -> bool:
        if self._fd is None:
            return False
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(self._fd)
        return (now.st_ino, now.st_dev) != (held.st_ino, held.st_dev)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
