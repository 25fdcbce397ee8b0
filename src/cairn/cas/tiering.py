"""Tiering: a cold object store beside the hot one, read through transparently.

:class:`TieredBackend` wraps the hot backend of a local or S3 object store.  Writes go to
the hot store.  A read that misses there is answered by the cold store, if the object
was moved there; ``exists`` and ``size`` see both tiers, ``iter_oids`` lists each object
once whichever tier holds it (both, after an interrupted move), and ``delete`` removes it
from both, so garbage collection works on a tiered store unchanged.

A read of a cold object does **not** bring it back to the hot store: a sweep that reads
everything (``cairn doctor``, a backup, a push) would otherwise undo every move.  Objects
go cold by :func:`move_cold` (``cairn tier``) only.

What tiering remembers (the cold tier's location, what is cold, last reads) lies beside
the hot store, see :mod:`.tier_state`: a process that opens the store without
``CAIRN_COLD_OBJECTS`` finds cold objects all the same.  A store is wrapped whether or
not it has a cold tier yet, and looks for ``tiers.json`` again when a read misses, so a
process that was running before the first ``cairn tier`` still finds what it moved.

Reads of hot objects are counted cheaply: the read path only notes the oid in a dict
(once per object per hour per process); a background thread writes the notes every few
seconds (and at exit) in one short transaction.  Reads are counted only once a cold tier
is configured (``since`` in ``tiers.json``), and not inside :func:`untracked` (checks
that read everything, which are not uses).
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import warnings
import weakref
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from .. import clock
from ..errors import CairnError, InvalidArgument, NotFound, StoreUnavailable
from .backends.base import Backend, capability, check_oid
from .tier_state import (
    CONFIG_NAME, INDEX_NAME, BatchReads, LocalSide, Side, TierConfig, TierIndex, normalise_cold,
    side_of,
)

if TYPE_CHECKING:  # pragma: no cover
    from .odb import ObjectStore
    from .tier_move import TierReport

# The settings (declared in cairn.settings for the docs; the storage layer reads no settings
# module, so it reads the environment itself).
COLD_OBJECTS = "CAIRN_COLD_OBJECTS"
COLD_ENDPOINT_URL = "CAIRN_COLD_ENDPOINT_URL"
TIER_AFTER_DAYS = "CAIRN_TIER_AFTER_DAYS"

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
_SEEN_MAX = 100_000  # oids remembered as recently counted, per backend

__all__ = ["TieredBackend", "configure", "find_tiered", "move_cold", "tiered", "untracked"]

_untracked = 0
_untracked_lock = threading.Lock()


@contextmanager
def untracked() -> Iterator[None]:
    """Reads in this process inside the block do not count as uses of the objects (a
    check or copy that reads every object must not keep them all hot)."""
    global _untracked
    with _untracked_lock:
        _untracked += 1
    try:
        yield
    finally:
        with _untracked_lock:
            _untracked -= 1


def tiered(backend: Backend) -> Backend:
    """``backend`` wrapped for tiering where it can have a cold tier (a local directory or
    S3); any other backend as it is."""
    side = side_of(backend)
    return backend if side is None else TieredBackend(backend, side)


def find_tiered(backend: Any) -> "TieredBackend | None":
    """The tiering layer inside ``backend`` (outer layers name what they wrap ``inner``)."""
    seen = 0
    while backend is not None and seen < 8:
        if isinstance(backend, TieredBackend):
            return backend
        backend = backend.__dict__.get("inner") if hasattr(backend, "__dict__") else None
        seen += 1
    return None


def open_cold(cfg: TierConfig) -> Backend:
    if cfg.cold.startswith("s3://"):
        from .backends.s3 import S3Backend

        return S3Backend.from_url(cfg.cold, endpoint_url=cfg.endpoint_url)
    from .backends.local import LocalBackend

    return LocalBackend(cfg.cold)


class TieredBackend:
    """A hot backend with an optional cold one (see the module's doc)."""

    def __init__(self, hot: Backend, side: Side) -> None:
        # No I/O here: the store's directory may not exist yet.
        self.hot = hot
        self.side = side
        self.index = TierIndex(side.root / INDEX_NAME) if isinstance(side, LocalSide) else None
        self.reads: TierIndex | BatchReads = self.index or BatchReads(side)
        self._lock = threading.Lock()
        self._config: TierConfig | None = None
        self._checked = float("-inf")
        self._cold: Backend | None = None
        self._seen: dict[str, int] = {}
        self._pending: dict[str, int] = {}
        self._pending_lock = threading.Lock()
        self._flusher: threading.Thread | None = None
        self._flush_every = 5.0 if self.index is not None else 60.0
        self._pid = os.getpid()
        self._hot_freshen = capability(hot, "freshen")

    def __repr__(self) -> str:
        cfg = self._config
        return f"TieredBackend({self.hot!r}, cold={cfg.cold if cfg else None!r})"

    def __getattr__(self, name: str) -> Any:
        # The hot backend's own attributes (root, path(), bucket ...), for tools and tests.
        if name in ("hot", "__setstate__") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.hot, name)

    # -- configuration --------------------------------------------------------------

    def config(self, *, fresh: bool = False) -> TierConfig | None:
        """This store's cold tier, or None.  Without ``fresh`` a store with none looks
        again at most every 30 s (the put path asks on every new object)."""
        cfg = self._config
        if cfg is not None:
            return cfg
        if not fresh and time.monotonic() - self._checked < 30.0:
            return None
        with self._lock:
            if self._config is None:
                self._config = self._load_config()
                self._checked = time.monotonic()
            return self._config

    def _load_config(self) -> TierConfig | None:
        data = self.side.read(CONFIG_NAME)
        wanted = os.environ.get(COLD_OBJECTS, "")
        if data is not None:
            cfg = TierConfig.from_bytes(data, f"{self.side.label}/{CONFIG_NAME}")
            if wanted and normalise_cold(wanted) != cfg.cold:
                warnings.warn(f"CAIRN_COLD_OBJECTS={wanted} is ignored: the objects at "
                              f"{self.side.label} already have the cold tier {cfg.cold} "
                              f"({CONFIG_NAME})", stacklevel=3)
            return cfg
        if not wanted:
            return None
        cfg = _new_config(self, wanted, os.environ.get(COLD_ENDPOINT_URL) or None)
        try:
            if not cfg.cold.startswith("s3://"):
                os.makedirs(cfg.cold, exist_ok=True)
            self.side.write(CONFIG_NAME, cfg.to_bytes())
        except (CairnError, OSError):
            pass  # a read-only store: use the setting, unrecorded
        return cfg

    def _set_config(self, cfg: TierConfig) -> None:
        with self._lock:
            self._config = cfg
            self._cold = None

    def cold(self) -> Backend:
        """The cold backend (made on first use); InvalidArgument when there is none."""
        cold = self._cold
        if cold is None:
            cfg = self.config(fresh=True)
            if cfg is None:
                raise InvalidArgument(f"the objects at {self.side.label} have no cold tier: give "
                                      "one with --cold-objects or CAIRN_COLD_OBJECTS")
            cold = self._cold = open_cold(cfg)
        return cold

    def cold_label(self) -> str:
        cfg = self._config
        return cfg.cold if cfg is not None else "(none)"

    def _cold_call(self, what: str, fn: Any, *args: Any) -> Any:
        """A call to the cold store; its failures (other than a missing object) name it."""
        try:
            return fn(*args)
        except NotFound:
            raise
        except CairnError as exc:
            raise type(exc)(f"the cold tier {self.cold_label()} could not {what}: {exc.message}",
                            **exc.details) from None
        except OSError as exc:
            raise StoreUnavailable(f"the cold tier {self.cold_label()} could not {what}: {exc}") \
                from None

    def _cold_missing(self, oid: str) -> NotFound:
        cfg = self._config
        if cfg is not None and not cfg.cold.startswith("s3://") and not os.path.isdir(cfg.cold):
            raise StoreUnavailable(f"object {oid} is in the cold tier {cfg.cold}, which is not "
                                   "there (not mounted?)", oid=oid, path=cfg.cold)
        return NotFound(f"object {oid} not found in {self.side.label} nor in its cold tier "
                        f"{self.cold_label()}", oid=oid)

    def in_cold(self, oid: str) -> bool:
        """Whether ``oid`` was moved cold (a local store's index; an S3 store asks)."""
        if self._config_or_none() is None:
            return False
        if self.index is not None:
            return self.index.cold_size(oid) is not None
        return bool(self._cold_call("be asked for an object", self.cold().exists, oid))

    # -- the Backend protocol -------------------------------------------------------

    def put(self, oid: str, data: bytes) -> None:
        self.hot.put(oid, data)

    def get(self, oid: str) -> bytes:
        try:
            data = self.hot.get(oid)
        except NotFound:
            if self.config(fresh=True) is None:
                raise
            if self.index is not None and self.index.cold_size(oid) is None:
                raise
            try:
                return self._cold_call("read an object", self.cold().get, oid)
            except NotFound:
                raise self._cold_missing(oid) from None
        if _untracked == 0 and (self._config is not None or self._config_or_none() is not None):
            self._touch(oid)
        return data

    def _config_or_none(self) -> TierConfig | None:
        """The cold tier where a damaged ``tiers.json`` must not stop the hot store: a hit
        is not counted, a new object is stored hot (a copy of a cold one is harmless).
        Reads of cold objects still fail, naming the file."""
        try:
            return self.config()
        except CairnError:
            return None

    def exists(self, oid: str) -> bool:
        return self.hot.exists(oid) or self.in_cold(oid)

    def size(self, oid: str) -> int:
        try:
            return self.hot.size(oid)
        except NotFound:
            if self.config(fresh=True) is None:
                raise
            if self.index is not None:
                size = self.index.cold_size(oid)
                if size is None:
                    raise
                return size
            return int(self._cold_call("be asked for an object", self.cold().size, oid))

    def delete(self, oid: str) -> None:
        """Remove ``oid`` from both tiers.  The index forgets a cold object before the
        cold store deletes it: interrupted, that leaves an unlisted cold copy (space),
        never a listed object that is gone (a put would skip storing it again)."""
        check_oid(oid)
        found = True
        try:
            self.hot.delete(oid)
        except NotFound:
            found = False
        if self.config(fresh=True) is None:
            if not found:
                raise NotFound(f"object {oid} not found in {self.side.label}", oid=oid)
            return
        listed = self.index is None or self.index.cold_size(oid) is not None
        if self.index is not None and listed:
            self.index.remove_cold(oid)
        if listed or not found:
            try:
                self._cold_call("delete an object", self.cold().delete, oid)
                found = True
            except NotFound:
                pass
        if not found:
            raise self._cold_missing(oid)

    def iter_oids(self) -> Iterator[str]:
        """Every object once.  Shard by shard, the hot one is listed before the cold one,
        so an object being moved (copied cold, then deleted hot) is never missed."""
        if self.config(fresh=True) is None:
            yield from self.hot.iter_oids()
            return
        if self.index is not None:
            cold_oids: Iterator[str] = self.index.iter_cold()
        else:
            cold_oids = self._cold_listing()
        if not _shard_ordered(self.hot):
            seen = set(self.hot.iter_oids())
            yield from seen
            yield from (o for o in cold_oids if o not in seen)
            return
        yield from _merge_by_shard(self.hot.iter_oids(), cold_oids)

    def _cold_listing(self) -> Iterator[str]:
        listing = self._cold_call("list its objects", lambda: iter(self.cold().iter_oids()))
        while True:
            oid = self._cold_call("list its objects", next, listing, None)
            if oid is None:
                return
            yield oid

    # -- what garbage collection needs (cairn.cas.backends.base.Sweepable) -------------

    def scan(self) -> Iterator[tuple[str, int, int]]:
        """``(oid, size, time ns)`` of the hot objects, then of the cold ones (their time:
        when they were moved, or made young again).  An object in both tiers (an
        interrupted move) comes twice: a collection keys them by oid."""
        hot_scan = capability(self.hot, "scan")
        if hot_scan is None:
            raise InvalidArgument(f"{self.hot!r} cannot list objects with their times")
        yield from hot_scan()
        if self.config(fresh=True) is None:
            return
        if self.index is not None:
            for oid, size, at in self.index.cold_rows():
                yield oid, size, at * 1_000_000
            return
        cold_scan = capability(self.cold(), "scan")
        if cold_scan is not None:
            yield from self._cold_call("list its objects", lambda: list(cold_scan()))

    def freshen(self, oid: str) -> bool:
        """Make ``oid`` young (a put found it stored): a cold object's time in the index is
        set to now; without an index it is copied back to the hot store."""
        hot_freshen = self._hot_freshen
        if hot_freshen is not None and hot_freshen(oid):
            return True
        if hot_freshen is None and self.hot.exists(oid):
            return True
        if self._config_or_none() is None:
            return False
        if self.index is not None:
            return self.index.touch_cold(oid, clock.now_ms())
        try:
            data = self._cold_call("read an object", self.cold().get, oid)
        except NotFound:
            return False
        self.hot.put(oid, data)
        return True

    def remove_old(self, oids: list[str], before_ns: int) -> list[tuple[str, int]]:
        """Delete each of ``oids`` older than ``before_ns`` from whichever tier holds it."""
        hot_remove = capability(self.hot, "remove_old")
        if hot_remove is None:
            raise InvalidArgument(f"{self.hot!r} cannot remove objects by age")
        removed = list(hot_remove(oids, before_ns))
        if self.config(fresh=True) is None:
            return removed
        done = {oid for oid, _ in removed}
        if self.index is not None:
            for oid in oids:
                size = self.index.remove_cold_if_old(oid, before_ns // 1_000_000)
                if size is None:
                    continue
                try:
                    self._cold_call("delete an object", self.cold().delete, oid)
                except NotFound:
                    pass
                if oid not in done:
                    removed.append((oid, size))
            return removed
        cold_remove = capability(self.cold(), "remove_old")
        if cold_remove is not None:
            removed += [(o, n) for o, n in self._cold_call("delete objects", cold_remove, oids,
                                                            before_ns) if o not in done]
        return removed

    # -- counting reads ---------------------------------------------------------------

    def _touch(self, oid: str) -> None:
        now = clock.now_ms()
        last = self._seen.get(oid)
        if last is not None and 0 <= now - last < HOUR_MS:
            return
        with self._pending_lock:
            if len(self._seen) >= _SEEN_MAX:
                self._seen.clear()
            self._seen[oid] = now
            self._pending[oid] = now
            if self._pid != os.getpid():  # forked: the parent's thread is not ours
                self._pid, self._flusher = os.getpid(), None
                if self.index is not None:
                    self.index.forget_connection()
            if self._flusher is None:
                _live.add(self)
                self._flusher = threading.Thread(target=self._flush_loop, daemon=True,
                                                 name="cairn-tier-reads")
                self._flusher.start()

    def _flush_loop(self) -> None:
        while True:
            time.sleep(self._flush_every)
            self.flush_reads()
            with self._pending_lock:
                if not self._pending:
                    self._flusher = None
                    return

    def flush_reads(self) -> None:
        """Record the reads noted so far (the background thread does this every few
        seconds, and at exit).  A store that cannot be written loses them quietly: the
        objects then count as unread, which costs speed, never data."""
        with self._pending_lock:
            batch, self._pending = self._pending, {}
        if batch:
            try:
                self.reads.record_reads(batch)
            except CairnError:
                pass

    def close(self) -> None:
        self.flush_reads()
        if self.index is not None:
            self.index.close()


def _shard_ordered(backend: Backend) -> bool:
    """Whether ``backend`` lists its objects grouped by shard in ascending order (the local
    directory lists shards sorted, S3 lists keys sorted)."""
    from .backends.local import LocalBackend

    return isinstance(backend, LocalBackend) or type(backend).__name__ == "S3Backend"


def _merge_by_shard(hot: Iterator[str], cold: Iterator[str]) -> Iterator[str]:
    """Each oid once from two listings grouped by ascending shard, holding one shard of the
    hot listing in memory (1/256 of it) rather than all of it."""
    cold_next = next(cold, None)
    group: set[str] = set()
    shard = None
    for oid in hot:
        if oid[:2] != shard:
            if shard is not None:
                while cold_next is not None and cold_next[:2] <= shard:
                    if cold_next not in group:
                        yield cold_next
                    cold_next = next(cold, None)
            shard, group = oid[:2], set()
            while cold_next is not None and cold_next[:2] < shard:
                yield cold_next
                cold_next = next(cold, None)
        group.add(oid)
        yield oid
    while cold_next is not None:
        if shard is None or cold_next[:2] != shard or cold_next not in group:
            yield cold_next
        cold_next = next(cold, None)


def _new_config(tb: TieredBackend, cold: str, endpoint_url: str | None) -> TierConfig:
    where = normalise_cold(cold)
    hot = tb.side.label
    if where.startswith("s3://"):
        same = where == hot.rstrip("/")
    else:
        same = isinstance(tb.side, LocalSide) and \
            os.path.realpath(where) == os.path.realpath(tb.side.root)
    if same:
        raise InvalidArgument(f"the cold tier {where} is the hot object store itself: moving "
                              "objects there would delete them; give another directory or bucket")
    return TierConfig(where, endpoint_url or None, clock.now_ms())


def configure(objects: "ObjectStore | Backend", cold: str,
              endpoint_url: str | None = None) -> TierConfig:
    """Give a store's objects the cold tier ``cold`` (a directory, created if missing, or
    ``s3://bucket/prefix``), recorded in ``tiers.json`` beside them; idempotent.  A store
    that already has another cold tier is refused (its cold objects are there)."""
    tb = _tiered_of(objects)
    existing = tb.config(fresh=True)
    if existing is not None and existing.cold == normalise_cold(cold):
        if endpoint_url and endpoint_url != existing.endpoint_url:
            existing = TierConfig(existing.cold, endpoint_url, existing.since)
            tb.side.write(CONFIG_NAME, existing.to_bytes())
            tb._set_config(existing)
        return existing
    if existing is not None:
        raise InvalidArgument(f"the objects at {tb.side.label} already have the cold tier "
                              f"{existing.cold} ({CONFIG_NAME}); objects moved there are read "
                              f"from there, so it cannot be changed to {normalise_cold(cold)}")
    cfg = _new_config(tb, cold, endpoint_url)
    if not cfg.cold.startswith("s3://"):
        try:
            os.makedirs(cfg.cold, exist_ok=True)
        except OSError as exc:
            raise InvalidArgument(f"cannot create the cold tier directory {cfg.cold}: "
                                  f"{exc.strerror or exc}") from None
    tb.side.write(CONFIG_NAME, cfg.to_bytes())
    tb._set_config(cfg)
    return cfg


def _tiered_of(objects: Any) -> TieredBackend:
    tb = find_tiered(getattr(objects, "backend", objects))
    if tb is None:
        raise InvalidArgument(f"{objects!r} cannot have a cold tier: only a local directory or "
                              "an s3:// object store can")
    return tb


def move_cold(objects: "ObjectStore | Backend", *, older_than_days: float | None = None,
              dry_run: bool = False, now: int | None = None,
              progress: bool | None = False) -> "TierReport":
    """Move the objects unread for ``older_than_days`` (default ``CAIRN_TIER_AFTER_DAYS``)
    to the cold tier; see :mod:`.tier_move`.  ``now``: epoch ms (default: the clock)."""
    from .tier_move import move

    return move(_tiered_of(objects), older_than_days=older_than_days, dry_run=dry_run, now=now,
                progress=progress)


_live: "weakref.WeakSet[TieredBackend]" = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for tb in list(_live):
        tb.flush_reads()
