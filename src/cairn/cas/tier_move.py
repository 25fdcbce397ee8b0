"""Moving objects nobody reads to the cold tier, safely when killed at any point.

An object is a candidate when its last use, the latest of when it was written (the
file's mtime, S3's LastModified), when it was last read and when read tracking began
(``since``), is ``older_than_days`` or more before ``now``.  Each candidate is:

1. read from the hot store (stored bytes as they are: compressed, or ciphertext in an
   encrypted store);
2. written to the cold store, read back, and its SHA-256 compared with what was read;
3. listed as cold in the local index (a local hot store);
4. deleted from the hot store.

Killed between any two steps, the object is in the hot store, or in both: readable
either way, and the next run finishes it (a copy already in the cold store is written
again, which is harmless).  A cold store that cannot be written or read stops the move
with an error naming it; what was moved before stays moved, the rest stays hot.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from .. import clock
from ..errors import CairnError, CorruptObject, InvalidArgument, NotFound, StoreUnavailable
from ._pool import default_workers, ordered_map
from .tiering import DAY_MS, TIER_AFTER_DAYS

if TYPE_CHECKING:  # pragma: no cover
    from .tiering import TieredBackend


@dataclass
class TierReport:
    """What a move did (or, with ``dry_run``, would do)."""

    hot: str
    cold: str
    older_than_days: float
    dry_run: bool
    examined: int = 0          # objects in the hot store
    candidates: int = 0        # of them, unread for older_than_days
    candidate_bytes: int = 0
    moved: int = 0
    moved_bytes: int = 0
    vanished: int = 0          # deleted (garbage collected) while the move ran
    oids: list[str] = field(default_factory=list)  # what moved (or would), first 1,000

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def move(tb: "TieredBackend", *, older_than_days: float | None, dry_run: bool,
         now: int | None, progress: bool | None) -> TierReport:
    from ..progress import bar

    cfg = tb.config(fresh=True)
    if cfg is None:
        raise InvalidArgument(f"the objects at {tb.side.label} have no cold tier: give one "
                              "with --cold-objects DIR|s3://BUCKET/PREFIX (or CAIRN_COLD_OBJECTS)")
    days = _days_setting() if older_than_days is None else older_than_days
    if not isinstance(days, (int, float)) or isinstance(days, bool) or not days >= 0 \
            or days == float("inf"):
        raise InvalidArgument(f"older_than_days must be a number of days >= 0, got {days!r}")
    now = clock.now_ms() if now is None else now
    cutoff = now - int(days * DAY_MS)
    report = TierReport(tb.side.label, cfg.cold, float(days), dry_run)
    if not cfg.cold.startswith("s3://") and not os.path.isdir(cfg.cold):
        raise InvalidArgument(f"the cold tier {cfg.cold} is not there (not mounted?): create "
                              "or mount it, then run the move again")

    tb.flush_reads()  # this process's own reads count too
    reads = tb.reads.last_reads()
    candidates: list[tuple[str, int]] = []
    for oid, written, size in _hot_listing(tb.hot):
        report.examined += 1
        last = max(written if written is not None else cfg.since, reads.get(oid, 0), cfg.since)
        if last <= cutoff:
            candidates.append((oid, size))
    report.candidates = len(candidates)
    report.candidate_bytes = sum(size for _, size in candidates)
    if dry_run:
        report.oids = [oid for oid, _ in candidates[:1000]]
        return report

    cold = tb.cold()
    moved: list[str] = []
    try:
        with bar("moving objects to the cold tier", report.candidate_bytes,
                 enabled=progress) as advance:
            # Each object's move is whole on its own, so several run at once (S3 wants many
            # requests in flight); an error stops new ones, those under way finish.
            workers = 16 if cfg.cold.startswith("s3://") else default_workers()
            moves = ordered_map(lambda c: _move_one(tb, cold, c[0], now), candidates,
                                workers=workers)
            for (oid, size), stored in zip(candidates, moves):
                advance(size)
                if stored is None:
                    report.vanished += 1
                    continue
                moved.append(oid)
                report.moved += 1
                report.moved_bytes += stored
    except CairnError as exc:
        raise type(exc)(f"{exc.message} (moved {report.moved} object(s) before this; the rest "
                        "stay in the hot store, readable as before)", **exc.details) from None
    finally:
        if moved:
            try:
                tb.reads.forget_reads(moved)
            except CairnError:
                pass  # only bookkeeping: a stale read of a cold object is never used
    report.oids = moved[:1000]
    return report


def _days_setting() -> float:
    raw = os.environ.get(TIER_AFTER_DAYS, "").strip()
    try:
        days = float(raw) if raw else 30.0
    except ValueError:
        days = float("nan")
    if not days >= 0 or days == float("inf"):
        raise InvalidArgument(f"environment variable {TIER_AFTER_DAYS}={raw!r} is invalid: "
                              "expected a number of days, 0 or more")
    return days


def _move_one(tb: "TieredBackend", cold: Any, oid: str, now: int) -> int | None:
    """Copy, verify, list, delete; the stored size, or None if the object vanished."""
    try:
        data = tb.hot.get(oid)
    except NotFound:
        return None
    try:
        tb._cold_call("store an object", cold.put, oid, data)
    except NotFound as exc:  # S3 answers a write to a bucket that is not there with 404
        raise StoreUnavailable(f"the cold tier {tb.cold_label()} could not store an object: "
                               f"its bucket was not found ({exc.message}); create it, or fix "
                               "--cold-objects") from None
    try:
        back = tb._cold_call("read back an object it stored", cold.get, oid)
    except NotFound:
        back = None
    if back is None or hashlib.sha256(back).digest() != hashlib.sha256(data).digest():
        raise CorruptObject(f"the cold tier {tb.cold_label()} gave back other bytes for object "
                            f"{oid} than were written to it: it stays in the hot store",
                            oid=oid)
    if tb.index is not None:
        tb.index.add_cold(oid, len(data), now)
    try:
        tb.hot.delete(oid)
    except NotFound:
        pass  # another move (or a GC) got there first
    return len(data)


def _hot_listing(hot: Any) -> Iterator[tuple[str, int | None, int]]:
    """``(oid, written ms or None, stored size)`` of every hot object, from the listing
    alone where the backend gives times (``scan``: a directory's mtimes, S3's LastModified)."""
    scan = getattr(hot, "scan", None)
    if scan is not None:
        for oid, size, ns in scan():
            yield oid, ns // 1_000_000, size
        return
    for oid in hot.iter_oids():
        try:
            yield oid, None, hot.size(oid)
        except NotFound:
            continue
