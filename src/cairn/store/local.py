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
import os
import random
import threading
import time
from pathlib import Path
from typing import Sequence

from .. import settings
from ..entities import Experiment, FileEntry, RecordBatch, Run
from ..errors import NotFound
from . import journal as jlib
from . import segments as seglib
from .group_commit import GroupCommit
from .sql.experiments import IndexedExperiments
from .sql.run_reads import IndexedRunReads


_OPEN_JOURNALS = 256  # journal files a store keeps open at once


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def new_experiment_id() -> str:
    # Numeric like MLflow's ids (its clients expect digits), random so that
    # processes and machines never collide.
    return str(random.SystemRandom().randrange(10**17, 10**18))


class LocalStore(IndexedExperiments, IndexedRunReads):
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.uri = str(self.root)
        self._index = None
        self._objects = None
        self._journals: dict[tuple[str, str], jlib.JournalWriter] = {}
        self._lock = threading.RLock()
        self._opened = False
        self.damage: list[jlib.Damage] = []
        # None: CAIRN_INDEX_DELAY decides; a server sets 0 (see ServerContext).
        self.index_delay: float | None = None
        self._group = GroupCommit(self._apply_group, self._index_delay)

    # -- lifecycle -------------------------------------------------------
    @property
    def index(self):
        """The SQLite index, with every pending batch applied (what readers must use)."""
        self._group.settle()
        return self._raw_index()

    def _raw_index(self):
        if self._index is None:
            from .sql.index import SqlIndex

            self._index = SqlIndex(f"sqlite:///{self.root / 'index.db'}")
        return self._index

    def _index_delay(self) -> float:
        return settings.INDEX_DELAY.get() if self.index_delay is None else self.index_delay

    def settle(self) -> None:
        """Apply pending index writes now, so other processes see them too."""
        self._group.settle()

    @property
    def objects(self):
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
        return now_ms() - int(settings.HEARTBEAT_TIMEOUT.get() * 1000)

    # -- experiments -----------------------------------------------------
    def _experiment_created(self, exp: Experiment) -> None:
        # Written inside the insert's transaction: if the insert lost a race the file is never made.
        _write_atomic(self.root / "experiments" / f"{exp.id}.json",
                      json.dumps({"id": exp.id, "name": exp.name, "created_at": exp.created_at,
                                  "tags": dict(exp.tags)}).encode())

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
        self.open()
        if fsync is None:
            fsync = settings.FSYNC.get()
        segs = [seglib.prepare(k, *arrays) for k, arrays in batch.metrics.items()]
        try:
            self._write(batch, segs, fsync)
        except NotFound:
            # The run may exist only in its journal (its creator died before indexing
            # it, or it was copied in): replay that run, then try once more.
            if not self.recover_run(batch.run_id):
                raise
            self._write(batch, segs, fsync)

    def _write(self, batch: RecordBatch, segs: list, fsync: bool) -> None:
        with self._lock:
            jw = self._journal(batch.run_id, batch.writer_id)
            if self._index_delay() <= 0:
                with self.index.session(write=True) as conn:
                    # Already applied (a retry or a replay), or refused before anything
                    # reaches the journal.
                    if not self.index.preflight(conn, batch):
                        return
                    _start, end = jw.append(batch, segs, fsync=fsync)
                    self.index.apply(conn, batch, segs, end)
            else:
                # A run's first batch has nothing to check: its writer is new, so no
                # index or journal holds any of its records yet.
                vouched = self._group.vouches_for(batch) if batch.create is None else True
                if vouched is None:
                    return  # a retry of a batch still pending
                if not vouched:
                    # The checks must see this run's earlier batches applied.
                    index = self.index if self._group.holds(batch.run_id) else self._raw_index()
                    with index.session() as conn:
                        if not index.preflight(conn, batch):
                            return
                _start, end = jw.append(batch, segs, fsync=fsync)
                self._group.submit(batch, segs, end)
            if batch.status is not None and batch.status.terminal:
                self._journals.pop((batch.run_id, batch.writer_id), None)
                jw.close()

    def _apply_group(self, items: list) -> None:
        index = self._raw_index()
        with index.session(write=True) as conn:
            seqs = index.applied_seq(conn, {batch.writer_id for batch, _segs, _end in items})
            for batch, segs, end in items:
                if seqs.get(batch.writer_id, 0) >= batch.seq:
                    continue  # another process replayed it from the journal first
                index.apply(conn, batch, segs, end)
                seqs[batch.writer_id] = batch.seq

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

    def list_artifacts(self, run_id: str) -> list[FileEntry]:
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
        jdir = self.root / "runs" / run_id / "journal"
        if not jdir.is_dir():
            return 0
        offsets = {} if from_start else self.index.writer_offsets(run_id)
        entries: list[jlib.Entry] = []
        for path in sorted(jdir.glob("*.cjl")):
            for item in jlib.read(path, offsets.get(path.stem, 0)):
                if isinstance(item, jlib.Damage):
                    self.damage.append(item)
                else:
                    entries.append(item)
        if not entries:
            return 0
        # Creation first, then each writer's records in order.
        entries.sort(key=lambda e: (e.batch.create is None, e.batch.writer_id, e.batch.seq))
        applied = 0
        with self._lock, self.index.session(write=True) as conn:
            seqs = self.index.applied_seq(conn, {e.batch.writer_id for e in entries})
            for e in entries:
                b = e.batch
                if seqs.get(b.writer_id, 0) >= b.seq:
                    continue
                segs = [seglib.prepare(k, *arrays) for k, arrays in b.metrics.items()]
                self.index.apply(conn, b, segs, e.end)
                seqs[b.writer_id] = b.seq
                applied += 1
        return applied

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
                    exp = Experiment(d["id"], d["name"], d["created_at"], "active", d.get("tags", {}))
                except (OSError, ValueError, KeyError) as exc:
                    self.damage.append(jlib.Damage(str(path), 0, 0, f"unreadable experiment: {exc}"))
                    continue
                if self.index.get_experiment_by_name_conn(conn, exp.name) is None:
                    self.index.insert_experiment(conn, exp, ignore_existing=True)

    def reindex(self) -> dict[str, int]:
        """Rebuild every derived table from the experiment files and journals."""
        self.open()
        self.damage.clear()
        with self._lock:
            self.index.reset_derived()
            self._load_experiment_files()
            runs_dir = self.root / "runs"
            count = records = 0
            if runs_dir.is_dir():
                for entry in sorted(os.scandir(runs_dir), key=lambda e: e.name):
                    if entry.is_dir():
                        records += self.recover_run(entry.name, from_start=True)
                        count += 1
            self.index.mark_stale(self._stale_before())
        return {"runs": count, "records": records, "damaged": len(self.damage)}

    def scan_damage(self) -> list[jlib.Damage]:
        """Read every journal completely and report damaged spans (``cairn doctor``)."""
        found = []
        runs_dir = self.root / "runs"
        if runs_dir.is_dir():
            for path in sorted(runs_dir.glob("*/journal/*.cjl")):
                found.extend(d for d in jlib.read(path) if isinstance(d, jlib.Damage))
        return found


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
