"""The remote client's spool: its journal, kept until the server acknowledges each record.

Layout (one directory per server URL under the spool root)::

    <spool root>/<host>_<port>-<hash>/
      journal/<writer>.cjl     append-only journal of one writer (docs/formats.md)
      journal/<writer>.ack     acknowledged byte offset into that journal (text)
      journal/<writer>.skip    offsets of records set aside before the ones before them were sent
      objects/ab/cdef...       artifact objects waiting to be uploaded
      experiments.json         experiments seen, so a brief outage does not stop set_experiment
      rejected/log.jsonl       what the server refused for good: one JSON line per record
                               (run, writer, seq, the error; ``items`` when only some of
                               its params, tags or metrics were refused)
      rejected/<writer>.cjl.rejected  the refused records themselves, as journal frames

A record is acknowledged when the server answers ``applied`` or ``duplicate`` (it had
it already: the spool was re-sent) or ``rejected`` (a permanent error: the record is
moved to ``rejected/`` first).  Errors that are not the record's fault (5xx, an
unreachable server) acknowledge nothing.  A writer's files are deleted once everything
is acknowledged and its run has ended; ``rejected/`` stays until ``cairn sync
--clear-rejected``.  Delivery of one journal takes an exclusive ``flock`` on its lock
file, so a live process, an adopting process and ``cairn sync`` never send the same
journal at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from .. import clock
from . import journal as jlib

if TYPE_CHECKING:  # pragma: no cover
    from ..entities import RecordBatch
    from .segments import Segment

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def default_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cairn" / "spool"


def server_dir(root: Path, url: str) -> Path:
    parts = urllib.parse.urlsplit(url)
    label = _SAFE.sub("_", f"{parts.hostname or 'server'}_{parts.port or ''}").strip("_")
    digest = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:10]
    return root / f"{label}-{digest}"


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.journal_dir = self.root / "journal"
        self._writers: dict[str, jlib.JournalWriter] = {}

    # -- writing -----------------------------------------------------------
    def path(self, writer_id: str) -> Path:
        return self.journal_dir / f"{writer_id}.cjl"

    def append(self, batch: RecordBatch, segs: list[Segment] | None,
               fsync: bool = False) -> tuple[int, int]:
        jw = self._writers.get(batch.writer_id)
        if jw is None:
            jw = self._writers[batch.writer_id] = jlib.JournalWriter(self.path(batch.writer_id))
        return jw.append(batch, segs, fsync=fsync)

    def close_writer(self, writer_id: str) -> None:
        jw = self._writers.pop(writer_id, None)
        if jw is not None:
            jw.close()

    def close(self) -> None:
        for jw in self._writers.values():
            jw.close()
        self._writers.clear()

    # -- acknowledgements --------------------------------------------------
    def acked(self, writer_id: str) -> int:
        try:
            return int((self.journal_dir / f"{writer_id}.ack").read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def ack(self, writer_id: str, offset: int) -> None:
        """Record that everything before ``offset`` is delivered (never moves backwards)."""
        if offset <= self.acked(writer_id):
            return
        path = self.journal_dir / f"{writer_id}.ack"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(str(offset))
        os.replace(tmp, path)

    def size(self, writer_id: str) -> int:
        try:
            return self.path(writer_id).stat().st_size
        except FileNotFoundError:
            return 0

    def pending(self, writer_id: str) -> bool:
        return self.size(writer_id) > self.acked(writer_id)

    @contextlib.contextmanager
    def lock(self, writer_id: str, blocking: bool = True) -> Iterator[bool]:
        """Exclusive delivery of one journal; yields False if busy and not ``blocking``."""
        import fcntl

        self.journal_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.journal_dir / f"{writer_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def entries(self, writer_id: str) -> Iterator[jlib.Entry | jlib.Damage]:
        """Records after the acknowledged offset (a torn tail is left for later)."""
        path = self.path(writer_id)
        if not path.exists():
            return iter(())
        return jlib.read(path, self.acked(writer_id))

    def remove(self, writer_id: str) -> None:
        self.close_writer(writer_id)
        for suffix in (".cjl", ".ack", ".skip", ".lock"):
            with contextlib.suppress(FileNotFoundError):
                (self.journal_dir / f"{writer_id}{suffix}").unlink()

    def writer_ids(self, idle_for: float = 0.0) -> list[str]:
        """Writers with a journal here (idle at least ``idle_for`` seconds), oldest first."""
        if not self.journal_dir.is_dir():
            return []
        cutoff = time.time() - idle_for
        found = []
        for p in self.journal_dir.glob("*.cjl"):
            try:
                mtime = p.stat().st_mtime
            except FileNotFoundError:
                continue
            if mtime <= cutoff:
                found.append((mtime, p.stem))
        return [w for _, w in sorted(found)]

    # -- records set aside ---------------------------------------------------
    def skipped(self, writer_id: str) -> set[int]:
        """Offsets of records not to send (refused while records before them were unsent)."""
        try:
            text = (self.journal_dir / f"{writer_id}.skip").read_text()
        except FileNotFoundError:
            return set()
        return {int(x) for x in text.split() if x.isdigit()}

    def skip(self, writer_id: str, offset: int) -> None:
        self.journal_dir.mkdir(parents=True, exist_ok=True)
        with open(self.journal_dir / f"{writer_id}.skip", "a") as fh:
            fh.write(f"{offset}\n")

    # -- what the server refused --------------------------------------------
    @property
    def rejected_dir(self) -> Path:
        return self.root / "rejected"

    def note_rejected(self, batch: RecordBatch, error: dict, frame: bytes | None = None,
                      items: list[dict] | None = None) -> None:
        """Keep what the server refused: the record's frame (when it was refused whole)
        and a line saying why."""
        d = self.rejected_dir
        d.mkdir(parents=True, exist_ok=True)
        rec: dict = {"time": clock.now_ms(), "run_id": batch.run_id,
                     "writer_id": batch.writer_id, "seq": batch.seq, "error": error}
        if items:
            rec["items"] = items
        if frame is not None:
            name = f"{_SAFE.sub('_', batch.writer_id)}.cjl.rejected"
            path = d / name
            with open(path, "ab") as fh:
                rec["file"], rec["offset"] = name, fh.tell()
                fh.write(frame)
                fh.flush()
                os.fsync(fh.fileno())
        # json escapes lone surrogates; default=str for anything else odd in an error
        line = json.dumps(rec, default=str)
        with open(d / "log.jsonl", "a") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def rejected(self) -> list[dict]:
        """Everything the server refused (oldest first), as :meth:`note_rejected` noted it."""
        out = []
        try:
            with open(self.rejected_dir / "log.jsonl") as fh:
                for line in fh:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        continue
        except FileNotFoundError:
            pass
        return out

    def clear_rejected(self) -> int:
        """Forget what the server refused; returns how many records that was."""
        n = len(self.rejected())
        if self.rejected_dir.is_dir():
            for p in self.rejected_dir.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
            with contextlib.suppress(OSError):
                self.rejected_dir.rmdir()
        return n

    # -- the rest ----------------------------------------------------------

    def load_experiments(self) -> list[dict]:
        try:
            return json.loads((self.root / "experiments.json").read_text())
        except (FileNotFoundError, ValueError):
            return []

    def save_experiments(self, exps: list[dict]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / "experiments.json"
        tmp = path.with_name(f".experiments.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(exps))
        os.replace(tmp, path)
