"""Garbage collection of objects: mark what the index refers to, sweep the rest.

Safe while writers run (the design, in full, is docs/lifecycle.md "Garbage collection"):

1. The generation starts: ``G`` = now.  The cut-off is ``G - grace``, moved back to the start
   of the oldest run still running (less a minute of clock skew): an object modified after
   it is *young* and never collected, whatever refers to it.
2. The index is settled (this process's queued writes applied; a local store also replays
   journal records other processes have not applied yet).
3. Every stored object is listed with its size and modified time (``scan``).
4. Mark: every oid the index refers to (:mod:`cairn.lifecycle.roots`).
5. Re-mark (the generation's re-check): references made while 3 and 4 ran are added, so a
   candidate that became referenced meanwhile is kept.
6. Sweep: each old, unreferenced object is deleted only if its modified time is still before
   the cut-off at that moment (``remove_old``).  A put that finds its object already stored
   freshens it (local: ``utime``; S3: a copy onto itself), so the deduplicated write of an
   old garbage object makes it young before the writer refers to it.
7. Packs that are mostly garbage are repacked: live members go into a new pack, the pack
   index points at it in one transaction, then the old pack is deleted (grace 0) or
   freshened, to be deleted by a later run once it is older than the grace.
8. Temporary files of killed writers (``.tmp-*``) older than the cut-off go too.

A killed collection loses nothing referenced: an object being deleted is renamed aside
first (local) and the next run puts back any such object that is referenced.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..errors import Conflict, InvalidArgument
from ..settings import parse_duration  # one duration syntax for the setting and --grace

if TYPE_CHECKING:  # pragma: no cover
    from ..cas.odb import ObjectStore


__all__ = ["GcReport", "collect", "parse_duration", "DEFAULT_GRACE_S", "REPACK_BELOW"]

DEFAULT_GRACE_S = 86_400.0
#: A pack no live version names is repacked when its live members hold less than this
#: share of its bytes (kept as it is otherwise: rewriting it would free little).
REPACK_BELOW = 0.5
#: Whatever the grace, an object modified this recently is kept: a writer's record may not
#: have reached any index yet (the fluent API buffers a run's records, its creation
#: included, for CAIRN_FLUSH_INTERVAL), so nothing can tell yet that it is referenced.
WRITE_WINDOW_S = 30.0
#: Client clocks (run start times) and the object store's clock (mtimes, S3 LastModified)
#: may differ by this much without an open run's objects looking old.
CLOCK_SKEW_MS = 60_000
_SWEEP_BATCH = 1000
_SWEEP_THREADS = 4


@dataclass
class GcReport:
    """What one collection found and did (``dry_run``: what it would do).

    Counts are objects, ``*_bytes`` stored (compressed) bytes.  ``scanned`` = ``live`` +
    ``young`` + ``garbage`` + ``repack_candidates`` + the packs kept whole."""

    dry_run: bool
    grace_s: float
    started_at: int  # ms since the epoch: the generation
    cutoff: int  # ms: objects modified at or after this were young
    scanned: int = 0
    scanned_bytes: int | None = 0  # None: a local store lists names, not sizes
    referenced: int = 0  # oids the index refers to (stored or not)
    live: int = 0
    live_bytes: int | None = 0
    young: int = 0  # kept because modified after the cut-off
    young_bytes: int = 0
    garbage: int = 0  # old and unreferenced: what is (or would be) deleted
    garbage_bytes: int = 0
    freed: int = 0
    freed_bytes: int = 0
    kept_meanwhile: int = 0  # candidates referenced or freshened while the collection ran
    packs_kept: int = 0  # unreferenced packs whose live members are most of them
    repacked_packs: int = 0
    repacked_members: int = 0  # live members moved into new packs
    repack_garbage_bytes: int = 0  # bytes of dead members the repacks drop
    old_packs_deleted: int = 0  # repacked packs deleted now (grace 0); else by a later run
    old_packs_deleted_bytes: int = 0
    temp_files: int = 0
    temp_bytes: int = 0
    restored: int = 0  # objects a killed collection left aside, put back (referenced)
    expired_runs: int = 0  # runs whose artifact TTL had passed
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    retention: dict[str, Any] | None = None
    purge: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def collect(store: Any, *, dry_run: bool = False, grace_s: float | None = None,
            now_ms: int | None = None, progress: bool | None = False,
            objects: "ObjectStore | None" = None, unrooted: Any = None) -> GcReport:
    """Delete the objects of ``store`` nothing refers to and that are older than the grace.

    ``grace_s``: None reads ``CAIRN_GC_GRACE``; 0 collects every unreferenced object not
    written during this collection (for tests, and stores nobody writes).  ``now_ms``: the
    time artifact TTLs are judged at (default now).  ``objects``: the object store (a
    database store's, as ``cairn server --objects``); default the store's own.
    ``progress``: bars on stderr (None: when it is a terminal).  ``unrooted``: with
    ``dry_run``, a :class:`cairn.lifecycle.roots.Unrooted` of what the purge run first
    would remove (a dry run purges nothing, yet predicts the real run).
    """
    from .. import clock
    from ..cas.backends.base import capability

    grace = _grace(grace_s)
    t0 = time.monotonic()
    if now_ms is not None:
        _check_ms(now_ms)
    objects = objects if objects is not None else store.objects
    backend = objects.backend
    scan = capability(backend, "scan")
    remove_old = capability(backend, "remove_old")
    if scan is None or remove_old is None:
        raise InvalidArgument(f"garbage collection cannot tell the age of objects in "
                              f"{backend!r}: it needs a local directory, S3 or memory backend")
    # The generation starts: objects are stamped by the store's clock (a kernel's coarse
    # one a few ms behind this process's, a file server's, S3's), so it is read first; a
    # put after this moment never looks older than it.
    store_clock = capability(backend, "clock_ns")
    store_now = store_clock() if store_clock is not None and not dry_run else None
    gen_ms = clock.now_ms()
    now = gen_ms if now_ms is None else now_ms
    _settle(store)
    window = max(grace, WRITE_WINDOW_S)
    cutoff_ms = gen_ms - int(window * 1000)
    open_since = _open_runs_since(store, gen_ms)
    if open_since is not None:
        cutoff_ms = min(cutoff_ms, open_since - CLOCK_SKEW_MS)
    cutoff_ns = cutoff_ms * 1_000_000
    if store_now is not None:
        cutoff_ns = min(cutoff_ns, store_now - int(window * 1e9))
        cutoff_ms = min(cutoff_ms, cutoff_ns // 1_000_000)
    report = GcReport(dry_run=dry_run, grace_s=grace, started_at=gen_ms, cutoff=cutoff_ms)

    from .roots import Marker

    marker = Marker(store, objects, now)
    if unrooted is not None and dry_run:
        marker.unrooted = unrooted
    local = _local_listing(backend)
    temps: list[tuple[str, str]] | None = None
    graves: list[tuple[str, str]] | None = None
    if local is None:
        # 3. list every object with its time (S3: 1,000 a request), then 4. mark.
        candidates, young = _list_scan(scan, cutoff_ns, report)
        referenced = marker.mark()
        _drop(candidates, referenced, report)
        _drop(young, referenced, report)
        report.young, report.young_bytes = len(young), sum(young.values())
        del young
    else:
        # A local directory: 4. mark first, then 3. list names only and read the times of
        # the unreferenced alone (a stat per live object was most of a big store's gc).
        referenced = marker.mark()
        report.scanned_bytes = report.live_bytes = None
        candidates, temps, graves = _list_names(local, referenced, cutoff_ns, report, progress)
    # 5. settle and mark again: what was referred to meanwhile is kept.
    _settle(store)
    before = len(candidates)
    referenced = marker.mark()
    _drop(candidates, referenced, report, count_live=False)
    report.kept_meanwhile += before - len(candidates)
    report.referenced = len(referenced)
    report.expired_runs = marker.expired_runs
    if marker.unreadable:
        # A tree that cannot be read hides which objects it needs: delete nothing.
        report.problems += sorted(marker.unreadable.values())
        report.garbage = report.garbage_bytes = 0
        report.seconds = time.monotonic() - t0
        raise Conflict("garbage collection stopped before deleting anything: "
                       + "; ".join(report.problems[:5])
                       + " (run `cairn doctor`, restore the file list from a copy of the "
                         "store, or purge what names it)", report=report.to_dict())

    packs = _packs_among(objects, candidates)
    for oid in packs:
        candidates.pop(oid)
    report.garbage += len(candidates)
    report.garbage_bytes += sum(candidates.values())
    if not dry_run:
        _restore_graves(backend, referenced, report, graves, cutoff_ns)
    del referenced

    # 6. sweep
    if not dry_run and candidates:
        from concurrent.futures import ThreadPoolExecutor

        doomed = list(candidates)
        batches = [doomed[i:i + _SWEEP_BATCH] for i in range(0, len(doomed), _SWEEP_BATCH)]
        # Deleting waits on the file system (or S3) far more than on Python: a few at once.
        with _bar("deleting garbage", len(doomed), progress, "objects") as advance, \
                ThreadPoolExecutor(max_workers=_SWEEP_THREADS) as pool:
            for batch, gone in zip(batches, pool.map(lambda b: remove_old(b, cutoff_ns),
                                                     batches)):
                report.freed += len(gone)
                report.freed_bytes += sum(size for _, size in gone)
                report.kept_meanwhile += len(batch) - len(gone)
                advance(len(batch))

    # 7. packs
    _collect_packs(objects, packs, marker, report, dry_run, grace, cutoff_ns, remove_old)

    # 8. what killed writers left
    names = capability(backend, "names")
    if names is not None:
        here = names.__self__  # type: ignore[attr-defined]
        report.temp_files, report.temp_bytes = here.clean_temp(cutoff_ns, temps,
                                                               dry_run=dry_run)
    elif not dry_run:
        clean_temp = capability(backend, "clean_temp")
        if clean_temp is not None:
            report.temp_files, report.temp_bytes = clean_temp(cutoff_ns)
    report.seconds = round(time.monotonic() - t0, 3)
    return report


def _list_scan(scan: Callable[[], Any], cutoff_ns: int,
               report: GcReport) -> tuple[dict[str, int], dict[str, int]]:
    """Every object with its size and time: ``(old ones, young ones)``, oid -> size."""
    old: dict[str, int] = {}
    young: dict[str, int] = {}
    total = 0
    for oid, size, mtime_ns in scan():
        total += size
        (young if mtime_ns >= cutoff_ns else old)[oid] = size
    report.scanned, report.scanned_bytes = len(old) + len(young), total
    return old, young


def _list_names(local: Any, referenced: set[str], cutoff_ns: int, report: GcReport,
                progress: bool | None) -> tuple[dict[str, int], list[tuple[str, str]],
                                                list[tuple[str, str]]]:
    """A local directory's objects by name: the referenced are live; the others' times are
    read (young or candidate).  Also the temporary files and objects set aside it holds."""
    from ..cas.backends.base import is_oid

    unreferenced: list[str] = []
    temps: list[tuple[str, str]] = []
    graves: list[tuple[str, str]] = []
    with _bar("listing objects", 256, progress, "shards") as advance:
        for shard, names in local.names():
            for name in names:
                if name[0] == ".":
                    if name.startswith(".tmp-"):
                        temps.append((shard, name))
                    elif name.startswith(".gc-"):
                        oid = shard + name[4:].split("-", 1)[0]
                        if is_oid(oid):
                            graves.append((oid, f"{local.root}/{shard}/{name}"))
                    continue
                oid = shard + name
                if oid in referenced:
                    report.scanned += 1
                    report.live += 1
                elif len(oid) == 64 and is_oid(oid):
                    report.scanned += 1
                    unreferenced.append(oid)
            advance(1)
    candidates: dict[str, int] = {}
    for oid, size, mtime_ns in local.ages(unreferenced):
        if mtime_ns >= cutoff_ns:
            report.young += 1
            report.young_bytes += size
        else:
            candidates[oid] = size
    return candidates, temps, graves


def _local_listing(backend: Any) -> Any:
    """The local directory under ``backend`` if listing it by name lists every object (no
    layer in between keeps objects of its own, as a tiering layer with a cold tier does)."""
    from ..cas.backends.base import _INNER

    b, depth = backend, 0
    while b is not None and depth < 8:
        # The tiering layer first: it lends its hot directory's names() and ages() through
        # __getattr__, which list no cold object.
        config = getattr(b, "config", None)  # the tiering layer: its cold tier, if any
        if callable(getattr(b, "scan", None)) and callable(config):
            try:
                if config(fresh=True) is not None:
                    return None
            except TypeError:
                return None
        if callable(getattr(b, "names", None)) and callable(getattr(b, "ages", None)):
            return b
        if callable(getattr(b, "scan", None)) and not callable(config):
            return None
        b = next((getattr(b, a) for a in _INNER if getattr(b, a, None) is not None), None)
        depth += 1
    return None


def _drop(candidates: dict[str, int], referenced: set[str], report: GcReport,
          count_live: bool = True) -> None:
    live = [oid for oid in candidates if oid in referenced]
    for oid in live:
        size = candidates.pop(oid)
        if count_live:
            report.live += 1
            if report.live_bytes is not None:
                report.live_bytes += size


# -- packs -----------------------------------------------------------------------------

def _packs_among(objects: "ObjectStore", candidates: dict[str, int]) -> dict[str, int]:
    """The registered packs among the unreferenced candidates (handled by member)."""
    if objects.packs is None:
        return {}
    return {p: candidates[p] for p in objects.packs.packs() if p in candidates}


def _members(objects: "ObjectStore", pack: str) -> list[tuple[str, int, int]]:
    from ..cas.packs import iter_pack_members

    members_of = getattr(objects.packs, "members_of", None)
    if members_of is not None:
        return list(members_of(pack))
    return list(iter_pack_members(objects, pack))


def _collect_packs(objects: "ObjectStore", packs: dict[str, int], marker: Any,
                   report: GcReport, dry_run: bool, grace: float, cutoff_ns: int,
                   remove_old: Callable[[list[str], int], list[tuple[str, int]]]) -> None:
    """Unreferenced packs: wholly dead ones are deleted, mostly dead ones repacked."""
    if not packs:
        return
    assert objects.packs is not None
    for pack, stored in sorted(packs.items()):
        members = _members(objects, pack)
        live = [m for m in members if m[0] in marker.oids]
        total = sum(m[2] for m in members)
        live_bytes = sum(m[2] for m in live)
        if not live:
            report.garbage += 1
            report.garbage_bytes += stored
            if dry_run:
                continue
            objects.packs.remove(pack)  # unlocated first: never a pointer to a deleted pack
            gone = remove_old([pack], cutoff_ns)
            if not gone:  # freshened meanwhile (a writer stored the same pack): locate again
                objects.packs.add(pack, members)
                report.kept_meanwhile += 1
                continue
            report.freed += 1
            report.freed_bytes += gone[0][1]
            continue
        if total and live_bytes / total >= REPACK_BELOW:
            report.packs_kept += 1
            report.live += 1
            if report.live_bytes is not None:
                report.live_bytes += stored
            continue
        if _young(objects.backend, pack, cutoff_ns):
            # A writer found a member in it since the listing (``missing`` freshens the
            # pack) and may refer to a member the mark did not see: repacked, it would be
            # unlocated.  A later collection looks again.
            report.kept_meanwhile += 1
            continue
        report.repacked_packs += 1
        report.repacked_members += len(live)
        report.repack_garbage_bytes += total - live_bytes
        if dry_run:
            continue
        _repack(objects, pack, live)
        if _young(objects.backend, pack, cutoff_ns):
            # Freshened while it was repacked: its dead members stay located in it, and
            # it stays, until a collection finds it old and unreferenced again.
            kept = {m[0] for m in live}
            objects.packs.add(pack, [m for m in members if m[0] not in kept])
            report.kept_meanwhile += 1
            continue
        if grace == 0:
            gone = remove_old([pack], cutoff_ns)
            report.old_packs_deleted += len(gone)
            report.old_packs_deleted_bytes += sum(s for _, s in gone)
        else:
            # Readers that located a member in it a moment ago still find it: it is
            # deleted by a later collection, once it is older than the grace.
            from ..cas.backends.base import freshen

            freshen(objects.backend, pack)


def _young(backend: Any, oid: str, cutoff_ns: int) -> bool:
    """Whether ``oid`` was modified at or after the cut-off (or its time cannot be read:
    then it is left as it is).  A second's doubt counts as young (S3's whole seconds)."""
    from ..cas.backends.base import capability

    ages = capability(backend, "ages")
    if ages is None:
        return True
    for _oid, _size, mtime_ns in ages([oid]):
        return bool(mtime_ns + 1_000_000_000 > cutoff_ns)
    return True


def _repack(objects: "ObjectStore", pack: str, live: list[tuple[str, int, int]]) -> str:
    """Store ``live`` members of ``pack`` as a new pack and point the index at it."""
    from ..cas.packs import body_start, decode_header, encode_pack

    assert objects.packs is not None
    content = objects.get_bytes(pack)
    body = body_start(pack, content)
    data = [(oid, content[body + off: body + off + size]) for oid, off, size in live]
    new_content = encode_pack(data)
    new = objects.put_bytes(new_content)
    members, _ = decode_header(new, new_content)
    objects.packs.replace(pack, new, members)  # one transaction: no member is ever unlocated
    objects.drop_caches()
    return new


# -- the rest --------------------------------------------------------------------------

def _restore_graves(backend: Any, referenced: set[str], report: GcReport,
                    found: list[tuple[str, str]] | None, cutoff_ns: int) -> None:
    """Objects a killed collection renamed aside: referenced or young ones go back, the
    rest go."""
    from ..cas.backends.base import capability

    graves, settle = capability(backend, "graves"), capability(backend, "settle_grave")
    if graves is None or settle is None:
        return
    for oid, path in (found if found is not None else list(graves())):
        freed = settle(oid, path, oid in referenced, cutoff_ns)
        if freed is None:
            report.restored += 1
        elif freed:
            report.freed += 1
            report.freed_bytes += freed


def _settle(store: Any) -> None:
    """Make the index say what writers have written: this process's queue applied, and on
    a local store the journal records other processes have not applied yet."""
    open_ = getattr(store, "open", None)
    if open_ is not None:
        open_()
    settle = getattr(store, "settle", None)
    if settle is not None:
        settle()
    recover = getattr(store, "recover", None)
    if recover is not None:
        recover()


def _open_runs_since(store: Any, now: int) -> int | None:
    """The start of the oldest run still running (heartbeat fresh); None when none is."""
    import sqlalchemy as sa

    from ..store import options
    from ..store.sql import tables as T
    from .heartbeats import fresh

    timeout = options.resolve(getattr(store, "heartbeat_timeout", None), "heartbeat_timeout")
    stale = now - int(float(timeout) * 1000)
    # A run made through MLflow's routes has no heartbeat (see .heartbeats): its artifacts
    # are recorded as they are uploaded (no client buffer to wait for), and one left
    # RUNNING for months must not hold every newer object back from collection.
    r = T.runs
    beat = sa.func.coalesce(r.c.heartbeat, r.c.start_time)
    with store.index.read() as conn:
        oldest = conn.execute(sa.select(sa.func.min(r.c.start_time)).where(
            r.c.status == "RUNNING", fresh(beat, stale, now))).scalar()
    return None if oldest is None else min(int(oldest), now)


def _grace(grace_s: float | None) -> float:
    if grace_s is None:
        from ..settings import GC_GRACE

        grace_s = GC_GRACE.get()
    if isinstance(grace_s, bool) or not isinstance(grace_s, (int, float)) or grace_s != grace_s \
            or grace_s < 0 or grace_s == float("inf"):
        raise InvalidArgument(f"the grace period must be a number of seconds >= 0, got {grace_s!r}")
    return float(grace_s)


def _check_ms(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgument(f"now_ms must be milliseconds since the epoch, got {value!r}")
    return value


class _bar:  # noqa: N801 - a context manager used like a function
    def __init__(self, what: str, total: int | None, enabled: bool | None, unit: str) -> None:
        from ..progress import bar

        self._cm = bar(what, total, enabled=enabled, unit=unit)

    def __enter__(self) -> Callable[[int], None]:
        return self._cm.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)
