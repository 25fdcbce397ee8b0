"""The remote client's spool: its journal, kept until the server acknowledges each record.

Layout (one directory per server URL under the spool root)::

    <spool root>/<host>_<port>-<hash>/
      journal/<writer>.cjl     append-only journal of one writer (docs/formats.md)
      journal/<writer>.ack     acknowledged byte offset into that journal (text)
      objects/ab/cdef...       artifact objects waiting to be uploaded
      experiments.json         experiments seen, so a brief outage does not stop set_experiment
      rejected.log             records the server refused for good (one JSON line each)

A record is acknowledged when the server answers ``applied`` or ``duplicate`` (it had
it already: the spool was re-sent) or ``rejected`` (a permanent error).  A writer's
files are deleted once everything is acknowledged and its run has ended.  Delivery of
one journal takes an exclusive ``flock`` on its ack file, so a live process, an adopting
process and ``cairn sync`` never send the same journal at once.
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
from typing import Iterator

from . import journal as jlib

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

    def append(self, batch, segs, fsync: bool = False) -> tuple[int, int]:
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
        for suffix in (".cjl", ".ack", ".lock"):
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

    # -- the rest ----------------------------------------------------------
    def note_rejected(self, batch, error: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"time": int(time.time() * 1000), "run_id": batch.run_id,
                           "writer_id": batch.writer_id, "seq": batch.seq, "error": error},
                          default=str)
        with open(self.root / "rejected.log", "a") as fh:
            fh.write(line + "\n")

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
