"""The embedded default store: journals + SQLite index + content-addressed objects.

Layout of a store directory (docs/store-layout.md)::

    .cairn/
      index.db                        SQLite index, derived from the journals
      experiments/<id>.json           one small file per experiment
      runs/<run_id>/journal/<writer>.cjl   append-only journal, one per writer
      objects/ab/cdef...              content-addressed objects (artifacts)

Journal first, index second: a batch is checked against the index, appended to its
writer's journal, then applied to the index, grouped with the batches of the next
few milliseconds into one transaction (:mod:`cairn.store.group_commit`; every read
settles what is pending first).  Whatever the index missed (a crash between the two,
a run copied in from another machine) is replayed idempotently when the store is
opened, when an unknown run is asked for, or by ``cairn reindex``.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .. import clock
from ..entities import LIFECYCLES, Experiment, FileEntry, RecordBatch, Run
from ..errors import AlreadyExists, CorruptObject, NotFound
from . import journal as jlib
from . import options, quarantine
from . import segments as seglib
from .group_commit import GroupCommit
from .sql.experiments import IndexedExperiments
from .sql.run_reads import IndexedRunReads
from .validation import check_batch_text, is_run_id

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from ..cas.odb import ObjectStore
    from .sql.index import SqlIndex


_OPEN_JOURNALS = 256  # journal files a store keeps open at once

log = logging.getLogger(__name__)

# A record replay sets aside: (journal, offset, end, reason, is the run's creation record).
_Refusal = tuple[Path, int, int, str, bool]


class LocalStore(IndexedExperiments, IndexedRunReads):
    def __init__(self, root: str | os.PathLike, *, index_delay: float | None = None,
                 fsync: bool | None = None, heartbeat_timeout: float | None = None) -> None:
        """A store in directory ``root``.  A tunable left None follows
        :data:`cairn.store.options.DEFAULTS` (the CAIRN_* settings) at each use."""
        self.root = Path(root)
        self.uri = str(self.root)
        self._index: SqlIndex | None = None
        self._objects: ObjectStore | None = None
        self._journals: dict[tuple[str, str], jlib.JournalWriter] = {}
        # run id -> its journals' (writer, size) when the index last held all of them.
        self._caught_up: dict[str, tuple[tuple[str, int], ...]] = {}
        self._lock = threading.RLock()
        self._opened = False
        self.damage: list[jlib.Damage] = []
        self.refused: list[str] = []  # reasons of records replay quarantined, other than damage
        # None: CAIRN_INDEX_DELAY decides; a server sets 0 (see ServerContext).
        self.index_delay: float | None = index_delay
        self.fsync = fsync
        self.heartbeat_timeout = heartbeat_timeout
        self._group = GroupCommit(self._apply_group, self._index_delay)

    # -- lifecycle -------------------------------------------------------
    @property
    def index(self) -> SqlIndex:
        """The SQLite index, with every pending batch applied (what readers must use).

        Inside a transaction of this thread nothing is applied (see
        :meth:`SqlIndex.in_transaction`): whoever opened it settled before.
        """
        self.settle()
        return self._raw_index()

    def _raw_index(self) -> SqlIndex:
        if self._index is None:
            from .sql.index import SqlIndex

            self._index = SqlIndex(f"sqlite:///{self.root / 'index.db'}")
        return self._index

    def _index_delay(self) -> float:
        return options.resolve(self.index_delay, "index_delay")

    def settle(self) -> None:
        """Apply pending index writes now, so other processes see them too."""
        if not self._raw_index().in_transaction():
            self._group.settle()

    @property
    def objects(self) -> ObjectStore:
        if self._objects is None:
            from ..cas.odb import ObjectStore

            self._objects = ObjectStore.local(self.root / "objects")
        return self._objects

    def open(self) -> "LocalStore":
        """Create or check the index, then replay anything it missed.  Idempotent."""
        with self._lock:
            if self._opened:
                return self
            self.root.mkdir(parents=True, exist_ok=True)
            self.index.open(create=True)
            self._opened = True
            self.recover()
        return self

    def close(self) -> None:
        self._group.settle()
        with self._lock:
            for jw in self._journals.values():
                jw.close()
            self._journals.clear()
            if self._index is not None:
                self._index.close()
            self._opened = False

    def _stale_before(self) -> int:
        timeout = options.resolve(self.heartbeat_timeout, "heartbeat_timeout")
        return clock.now_ms() - int(timeout * 1000)

    # -- experiments -----------------------------------------------------
    def _experiment_created(self, exp: Experiment) -> None:
        # Written inside the insert's transaction: if the insert lost a race the file is never made.
        _write_atomic(self.root / "experiments" / f"{exp.id}.json",
                      json.dumps({"id": exp.id, "name": exp.name, "created_at": exp.created_at,
                                  "lifecycle": exp.lifecycle, "tags": dict(exp.tags)}).encode())

    # -- writes ----------------------------------------------------------
    def _journal(self, run_id: str, writer_id: str) -> jlib.JournalWriter:
        key = (run_id, writer_id)
        jw = self._journals.get(key)
        if jw is None:
            jw = self._journals[key] = jlib.JournalWriter(
                self.root / "runs" / run_id / "journal" / f"{writer_id}.cjl")
            if len(self._journals) > _OPEN_JOURNALS:
                # A writer that went quiet without ending its run (a server sees many)
                # gives back its file descriptor; a later append reopens the file.
                oldest = next(iter(self._journals))
                self._journals.pop(oldest).close()
        return jw

    def write(self, batch: RecordBatch, fsync: bool | None = None) -> None:
        segs = [seglib.prepare(k, *arrays) for k, arrays in batch.metrics.items()]
        self._write_checked(batch, segs, fsync)

    def write_prepared(self, batch: RecordBatch, segs: list) -> bool:
        """:meth:`write` with the metric segments already encoded (a server's request);
        False when the batch was applied before (a retry or a re-sent spool record)."""
        return self._write_checked(batch, segs, None)

    def _write_checked(self, batch: RecordBatch, segs: list, fsync: bool | None) -> bool:
        check_batch_text(batch)  # before the journal: orjson cannot write a lone surrogate
        self.open()
        create = batch.create
        if create is not None and not create.get("experiment_name"):
            # A run goes into an experiment this store has, or one its creation names (to
            # be joined or made): never into an id alone, which would leave it orphaned.
            # The index as it is first: settling pending batches would make every
            # creation wait for the index thread.
            exp_id = str(create.get("experiment_id", ""))
            if self._raw_index().get_experiment(exp_id) is None:
                self.get_experiment(exp_id)  # NotFound, unless a pending batch made it
        if fsync is None:
            fsync = options.resolve(self.fsync, "fsync")
        try:
            return self._write(batch, segs, fsync)
        except NotFound:
            # The run may exist only in its journal (its creator died before indexing
            # it, or it was copied in): replay that run, then try once more.
            if not self.recover_run(batch.run_id):
                raise
            return self._write(batch, segs, fsync)

    def _write(self, batch: RecordBatch, segs: list, fsync: bool) -> bool:
        """False when the batch was applied (or is pending) already."""
        with self._lock:
            jw = self._journal(batch.run_id, batch.writer_id)
            if self._index_delay() <= 0:
                span: tuple[int, int] | None = None
                try:
                    with self.index.session(write=True) as conn:
                        # Already applied (a retry or a replay), or refused before anything
                        # reaches the journal.
                        if not self.index.preflight(conn, batch):
                            return False
                        span = jw.append(batch, segs, fsync=fsync)
                        self.index.apply(conn, batch, segs, span[1])
                except Exception as exc:
                    if span is not None and _refused(exc):
                        # In the journal, but the index cannot take it: quarantined, as
                        # replay would, so that no open meets it again.  The caller learns.
                        with self._raw_index().session(write=True) as conn:
                            self._set_aside(self._raw_index(), conn, [
                                (jw.path, span[0], span[1], _reason(exc), batch.create is not None)])
                    raise
            else:
                # A run's first batch has nothing to check: its writer is new, so no
                # index or journal holds any of its records yet.
                vouched = self._group.vouches_for(batch) if batch.create is None else True
                if vouched is None:
                    return False  # a retry of a batch still pending
                if not vouched:
                    # The checks must see this run's earlier batches applied.
                    index = self.index if self._group.holds(batch.run_id) else self._raw_index()
                    with index.session() as conn:
                        if not index.preflight(conn, batch):
                            return False
                _start, end = jw.append(batch, segs, fsync=fsync)
                self._group.submit(batch, segs, end)
            if batch.status is not None and batch.status.terminal:
                self._journals.pop((batch.run_id, batch.writer_id), None)
                jw.close()
        # Back-pressure: a writer faster than the index thread (a sweep creating runs in a
        # loop) helps apply, so the queue, its memory and the wait at exit stay bounded.
        if not self._raw_index().in_transaction():
            self._group.relieve()
        return True

    def _apply_group(self, items: list) -> None:
        index = self._raw_index()
        try:
            self._apply_items(index, items, guarded=False)
        except Exception as exc:
            if not _refused(exc):
                raise
            # One of them cannot go into the index: apply them one by one, and quarantine
            # what the index refuses (it is in the journal, whole).
            self._apply_items(index, items, guarded=True)

    def _apply_items(self, index: SqlIndex, items: list, guarded: bool) -> None:
        refusals: list[_Refusal] = []
        lost: set[str] = set()  # runs whose creation record was refused
        with index.session(write=True) as conn:
            seqs = index.applied_seq(conn, {batch.writer_id for batch, _segs, _end in items})
            for batch, segs, end in items:
                if seqs.get(batch.writer_id, 0) >= batch.seq:
                    continue  # another process replayed it from the journal first
                if guarded:
                    if batch.run_id in lost:
                        err: BaseException | str | None = _NO_CREATION
                    else:
                        err = index.apply_guarded(conn, batch, segs, end, _refused)
                    if err is not None:
                        refusals.append(self._live_refusal(batch, segs, end, err))
                        if batch.create is not None:
                            lost.add(batch.run_id)
                        continue
                else:
                    index.apply(conn, batch, segs, end)
                seqs[batch.writer_id] = batch.seq
            self._set_aside(index, conn, refusals)

    def _live_refusal(self, batch: RecordBatch, segs: list, end: int,
                      err: BaseException | str) -> _Refusal:
        """Where in its journal a batch this process wrote lies (it ends at ``end``)."""
        path = self.root / "runs" / batch.run_id / "journal" / f"{batch.writer_id}.cjl"
        try:
            start = end - len(jlib.encode_batch(batch, segs))  # the same bytes as written
        except Exception:  # noqa: BLE001 - cannot re-encode it: look for it
            start = next((e.offset for e in jlib.read(path)
                          if isinstance(e, jlib.Entry) and e.end == end), end)
        return path, start, end, _reason(err), batch.create is not None

    def heartbeat(self, run_ids: Sequence[str], when: int) -> None:
        if run_ids:
            self.open()
            self.index.heartbeat(run_ids, when)

    # -- reads -----------------------------------------------------------
    def get_run(self, run_id: str) -> Run:
        self.open()
        try:
            return self.index.get_run(run_id, self._stale_before())
        except NotFound:
            if not self.recover_run(run_id):
                raise
            return self.index.get_run(run_id, self._stale_before())

    def _catch_up(self, run_id: str) -> None:
        """Apply what the run's journals hold beyond the index: the records of a writer
        that exited (``os._exit``, a fork's child, a kill) before its buffered index
        writes were made.  They are in its journal, whole; without this a reader opened
        before that writer exited would not see them until it reopened the store.  One
        directory scan and one indexed query; replaying twice is harmless (each writer's
        sequence numbers say what was applied)."""
        if not is_run_id(run_id):
            return  # not a run id: get_run answers NotFound; never a path outside runs/
        try:
            files = [(f.name[:-4], f.stat().st_size)
                     for f in os.scandir(self.root / "runs" / run_id / "journal")
                     if f.name.endswith(".cjl")]
        except (FileNotFoundError, NotADirectoryError):
            return
        if not files:
            return
        key = tuple(sorted(files))
        if self._caught_up.get(run_id) == key:
            return  # no journal grew since this process last found the index level with it
        offsets = self.index.writer_offsets([w for w, _ in files])
        if any(size > offsets.get(w, 0) for w, size in files):
            self.recover_run(run_id)
        if len(self._caught_up) > 10_000:
            self._caught_up.clear()
        self._caught_up[run_id] = key

    def list_artifacts(self, run_id: str) -> list[FileEntry]:
        self.open()
        self._catch_up(run_id)
        self.get_run(run_id)  # NotFound for unknown runs
        return self.index.list_artifacts(run_id)

    # -- recovery --------------------------------------------------------
    def recover(self) -> int:
        """Replay journal records the index lacks: any journal longer than what was applied.

        One stat per journal file; a finished run can still gain records (a tag set
        after its end) whose index write a crash interrupted.
        """
        runs_dir = self.root / "runs"
        self._load_experiment_files()
        applied = 0
        if runs_dir.is_dir():
            offsets = self.index.all_writer_offsets()
            for entry in os.scandir(runs_dir):
                if entry.is_dir() and self._behind(entry.path, offsets):
                    applied += self.recover_run(entry.name)
        self.index.mark_stale(self._stale_before())
        return applied

    @staticmethod
    def _behind(run_path: str, offsets: dict[str, int]) -> bool:
        try:
            files = list(os.scandir(os.path.join(run_path, "journal")))
        except FileNotFoundError:
            return False
        for f in files:
            if f.name.endswith(".cjl") and f.stat().st_size > offsets.get(f.name[:-4], 0):
                return True
        return False

    def recover_run(self, run_id: str, from_start: bool = False) -> int:
        """Apply ``run_id``'s journal records the index lacks; how many it applied.

        Whatever cannot be applied (damage, a record that :func:`journal.check` or the
        index refuses) is quarantined and counted as read, and the rest of the run is
        applied: one bad record never makes a store unopenable.  All good records go in
        one transaction; only if the index refuses one are they applied one by one.
        """
        jdir = self.root / "runs" / run_id / "journal"
        if not jdir.is_dir():
            return 0
        paths = sorted(jdir.glob("*.cjl"))
        offsets = {} if from_start else self.index.writer_offsets([p.stem for p in paths])
        entries: list[jlib.Entry] = []
        refusals: list[_Refusal] = []
        for path in paths:
            for item in jlib.read(path, offsets.get(path.stem, 0)):
                if isinstance(item, jlib.Damage):
                    self.damage.append(item)
                    refusals.append((path, item.offset, item.offset + item.length, item.reason,
                                     False))
                    continue
                why = jlib.check(item.batch, run_id, path.stem)
                if why is None:
                    entries.append(item)
                else:
                    refusals.append((path, item.offset, item.end, why,
                                     item.batch.create is not None))
        if not entries and not refusals:
            return 0
        # Creation first, then each writer's records in order.
        entries.sort(key=lambda e: (e.batch.create is None, e.batch.writer_id, e.batch.seq))
        with self._lock:
            try:
                return self._replay(jdir, run_id, entries, list(refusals), guarded=False)
            except Exception as exc:
                if not _refused(exc):
                    raise
            return self._replay(jdir, run_id, entries, refusals, guarded=True)

    def _replay(self, jdir: Path, run_id: str, entries: list[jlib.Entry],
                refusals: list[_Refusal], guarded: bool) -> int:
        """Apply ``entries`` of one run in one transaction, and set ``refusals`` aside.

        ``guarded``: each record in a savepoint, quarantining those the index refuses
        (the slow path, after the transaction without savepoints failed).
        """
        index = self.index
        applied = 0
        waiting = False  # records of a run that does not exist (yet)
        with index.session(write=True) as conn:
            seqs = index.applied_seq(conn, {e.batch.writer_id for e in entries})
            exists = False
            for e in entries:
                b = e.batch
                if seqs.get(b.writer_id, 0) >= b.seq:
                    continue
                if b.create is None and not exists:
                    exists = index.run_exists(conn, run_id)
                    if not exists:
                        if any(r[4] for r in refusals) or quarantine.has_creation(self.root, run_id):
                            refusals.append((jdir / f"{b.writer_id}.cjl", e.offset, e.end,
                                             _NO_CREATION, False))
                            continue
                        # Its creation record may still be on its way (a copy in progress):
                        # leave the run's records for a later replay.
                        waiting = True
                        break
                if guarded:
                    try:
                        segs = [seglib.prepare(k, *arrays) for k, arrays in b.metrics.items()]
                        err = index.apply_guarded(conn, b, segs, e.end, _refused)
                    except Exception as exc:
                        if not _refused(exc):
                            raise
                        err = exc
                    if err is not None:
                        refusals.append((jdir / f"{b.writer_id}.cjl", e.offset, e.end,
                                         _reason(err), b.create is not None))
                        continue
                else:
                    segs = [seglib.prepare(k, *arrays) for k, arrays in b.metrics.items()]
                    index.apply(conn, b, segs, e.end)
                exists = True
                seqs[b.writer_id] = b.seq
                applied += 1
            self._set_aside(index, conn, refusals, consume=not waiting)
        return applied

    def _set_aside(self, index: SqlIndex, conn: Connection, refusals: list[_Refusal],
                   consume: bool = True) -> None:
        """Quarantine refused records, then (in the caller's transaction) count their
        bytes of the journal as read, so that no later replay meets them again."""
        ends: dict[tuple[str, str], int] = {}
        for path, start, end, reason, creation in refusals:
            if quarantine.put(self.root, path, start, end - start, reason, creation):
                log.warning("quarantined %d bytes of %s at byte %d: %s",
                            end - start, path, start, reason)
            if not reason.startswith(_DAMAGE_REASONS):
                self.refused.append(reason)
            key = (path.stem, path.parent.parent.name)
            ends[key] = max(ends.get(key, 0), end)
        if consume:
            for (writer_id, run_id), end in ends.items():
                index.consume(conn, writer_id, run_id, end)

    def _load_experiment_files(self) -> None:
        exp_dir = self.root / "experiments"
        if not exp_dir.is_dir():
            return
        known = {e.id for e in self.index.list_experiments()}
        missing = [p for p in exp_dir.glob("*.json") if p.stem not in known]
        if not missing:
            return
        with self.index.session(write=True) as conn:
            for path in missing:
                try:
                    d = json.loads(path.read_text())
                    lifecycle = d.get("lifecycle", "active")  # a file from before deletes
                    if lifecycle not in LIFECYCLES:
                        raise ValueError(f"lifecycle {lifecycle!r}")
                    exp = Experiment(d["id"], d["name"], d["created_at"], lifecycle,
                                     d.get("tags", {}))
                except (OSError, ValueError, KeyError) as exc:
                    self.damage.append(jlib.Damage(str(path), 0, 0, f"unreadable experiment: {exc}"))
                    continue
                if self.index.get_experiment_by_name_conn(conn, exp.name) is None:
                    self.index.insert_experiment(conn, exp, ignore_existing=True)

    def _follow_experiments(self) -> None:
        """The runs of a deleted experiment are deleted with it (as its delete left them);
        journals know only each run's own rename and delete."""
        import sqlalchemy as sa

        from .sql import tables as T

        with self.index.session(write=True) as conn:
            deleted = sa.select(T.experiments.c.id).where(T.experiments.c.lifecycle == "deleted")
            conn.execute(sa.update(T.runs).where(T.runs.c.experiment_id.in_(deleted))
                         .values(lifecycle="deleted"))

    def reindex(self, *, progress: bool | None = False) -> dict[str, int]:
        """Rebuild every derived table from the experiment files and journals; ``progress``:
        a bar on stderr, a step per run (None: when stderr is a terminal)."""
        from ..progress import bar

        self.open()
        self.damage.clear()
        self.refused.clear()
        with self._lock:
            self.index.reset_derived()
            self._load_experiment_files()
            runs_dir = self.root / "runs"
            count = records = 0
            runs = sorted(e.name for e in os.scandir(runs_dir) if e.is_dir()) \
                if runs_dir.is_dir() else []
            with bar("reindexing runs", len(runs), enabled=progress, unit="runs") as advance:
                for run_id in runs:
                    records += self.recover_run(run_id, from_start=True)
                    count += 1
                    advance(1)
            self._follow_experiments()
            self.index.mark_stale(self._stale_before())
        return {"runs": count, "records": records, "damaged": len(self.damage),
                "quarantined": len(self.damage) + len(self.refused)}

    def scan_damage(self) -> list[jlib.Damage]:
        """Read every journal completely and report damaged spans (``cairn doctor``)."""
        found: list[jlib.Damage] = []
        runs_dir = self.root / "runs"
        if runs_dir.is_dir():
            for path in sorted(runs_dir.glob("*/journal/*.cjl")):
                found.extend(d for d in jlib.read(path) if isinstance(d, jlib.Damage))
        return found


_NO_CREATION = "the run's creation record is in quarantine: the run does not exist"
# Reasons journal.read gives damaged spans (not records the index refused).
_DAMAGE_REASONS = ("bad record magic", "implausible record length", "truncated record",
                   "CRC mismatch", "undecodable record")


def _refused(exc: BaseException) -> bool:
    """Whether an error applying one record is the record's fault (it goes to quarantine)
    rather than the database's (raised: the records wait in the journal for a retry)."""
    if isinstance(exc, sqlite3.ProgrammingError):
        return "closed" not in str(exc)
    return isinstance(exc, (ValueError, TypeError, KeyError, IndexError, AttributeError,
                            OverflowError, sqlite3.IntegrityError, sqlite3.DataError,
                            sqlite3.InterfaceError, CorruptObject, AlreadyExists))


def _reason(err: BaseException | str) -> str:
    return err if isinstance(err, str) else f"{type(err).__name__}: {err}"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
