"""Journal records that replay set aside, kept whole in ``<store>/quarantine/``.

A record the index cannot take (a damaged span, an undecodable record, one with wrong
types, one whose values the database refuses) must not make the store unopenable, nor
be lost: replay copies its bytes here, notes why, applies the rest of its run, and marks
its bytes of the journal consumed, so no later open tries it again.  ``cairn doctor``
lists what is here.  Layout (docs/store-layout.md)::

    quarantine/<run_id>/<writer_id>.<offset>.cjr    the bytes, exactly as in the journal
    quarantine/<run_id>/<writer_id>.<offset>.json   {"run_id", "writer_id", "journal",
                                                     "offset", "length", "reason",
                                                     "creation", "quarantined_at"}

The journal itself is never changed.  Entries are named by their place in the journal,
so setting the same record aside twice (two processes replaying at once, ``cairn
reindex``) writes it once.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .. import clock

DIRECTORY = "quarantine"


@dataclass(frozen=True, slots=True)
class Quarantined:
    """One record (or damaged span) set aside by replay."""

    run_id: str
    writer_id: str
    journal: str  # the journal file, relative to the store
    offset: int  # where in it the record starts
    length: int
    reason: str
    creation: bool  # the run's creation record: without it the run cannot exist
    quarantined_at: int  # ms since the epoch
    path: str  # the entry's .json file

    def to_dict(self) -> dict[str, object]:
        return {"run_id": self.run_id, "writer_id": self.writer_id, "journal": self.journal,
                "offset": self.offset, "length": self.length, "reason": self.reason,
                "creation": self.creation, "quarantined_at": self.quarantined_at,
                "file": self.path}


def put(root: Path, journal: Path, offset: int, length: int, reason: str,
        creation: bool = False) -> bool:
    """Set aside ``length`` bytes of ``journal`` from ``offset``; False if already there.

    ``journal`` is ``<root>/runs/<run_id>/journal/<writer_id>.cjl``: the run and writer
    are named by where the record lies, not by what it says.
    """
    run_id, writer_id = journal.parent.parent.name, journal.stem
    folder = root / DIRECTORY / run_id
    stem = f"{writer_id}.{offset}"
    meta = folder / f"{stem}.json"
    if meta.exists():
        return False
    with open(journal, "rb") as fh:
        fh.seek(offset)
        data = fh.read(length)
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomic(folder / f"{stem}.cjr", data)  # the bytes first: the .json lists them
    try:
        rel = str(journal.relative_to(root))
    except ValueError:
        rel = str(journal)
    _write_atomic(meta, json.dumps({
        "run_id": run_id, "writer_id": writer_id, "journal": rel, "offset": offset,
        "length": len(data), "reason": reason, "creation": creation,
        "quarantined_at": clock.now_ms()}, indent=1).encode())
    return True


def has_creation(root: Path, run_id: str) -> bool:
    """Whether ``run_id``'s creation record is in quarantine (so the run cannot exist)."""
    return any(q.creation for q in list_run(root, run_id))


def list_run(root: Path, run_id: str) -> list[Quarantined]:
    folder = root / DIRECTORY / run_id
    if not folder.is_dir():
        return []
    return [q for q in (_load(p) for p in sorted(folder.glob("*.json"))) if q is not None]


def list_all(root: Path) -> list[Quarantined]:
    """Every quarantined record of the store, by run, writer and offset."""
    base = root / DIRECTORY
    if not base.is_dir():
        return []
    out = [q for q in (_load(p) for p in base.glob("*/*.json")) if q is not None]
    return sorted(out, key=lambda q: (q.run_id, q.writer_id, q.offset))


def _load(path: Path) -> Quarantined | None:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        return Quarantined(str(d["run_id"]), str(d["writer_id"]), str(d["journal"]),
                           int(d["offset"]), int(d["length"]), str(d["reason"]),
                           bool(d.get("creation", False)), int(d.get("quarantined_at", 0)),
                           str(path))
    except (OSError, ValueError, KeyError, TypeError) as exc:  # still listed: never hidden
        return Quarantined(path.parent.name, path.stem.split(".")[0], "", -1, 0,
                           f"unreadable quarantine entry: {exc}", False, 0, str(path))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
