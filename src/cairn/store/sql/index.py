"""The SQL index: applies record batches and answers reads, on SQLite or PostgreSQL.

Rows never leave this module: every read returns entities.  Applying a batch is
idempotent per (writer, seq), so journals can be replayed at any time.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, Sequence

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ...entities import (
    Experiment, FileEntry, LatestMetric, MetricHistory, RecordBatch, Run, RunStatus,
)
from ...errors import InvalidArgument, NotFound, RunFinished
from .. import segments as seglib
from . import tables as T
from .engine import ensure_schema, make_engine, session

_CHUNK = 500  # ids per IN (...) list


def _insert(conn: Connection):
    """The dialect's INSERT, which knows ON CONFLICT on both SQLite and PostgreSQL."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _chunks(seq: Sequence, n: int = _CHUNK):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


class SqlIndex:
    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None

    # -- lifecycle -------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.url)
        return self._engine

    def open(self, create: bool = True) -> None:
        ensure_schema(self.engine, create=create)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def session(self, write: bool = False):
        return session(self.engine, write=write)

    # -- experiments -----------------------------------------------------
    def insert_experiment(self, conn: Connection, exp: Experiment, ignore_existing: bool = False) -> None:
        stmt = _insert(conn)(T.experiments).values(
            id=exp.id, name=exp.name, created_at=exp.created_at, lifecycle=exp.lifecycle,
            tags=json.dumps(dict(exp.tags)))
        if ignore_existing:
            stmt = stmt.on_conflict_do_nothing()
        conn.execute(stmt)

    def list_experiments(self) -> list[Experiment]:
        with self.session() as conn:
            rows = conn.execute(sa.select(T.experiments).order_by(T.experiments.c.created_at,
                                                                  T.experiments.c.name)).all()
        return [self._experiment(r) for r in rows]

    def get_experiment(self, experiment_id: str) -> Experiment | None:
        with self.session() as conn:
            row = conn.execute(sa.select(T.experiments).where(
                T.experiments.c.id == experiment_id)).first()
        return None if row is None else self._experiment(row)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        with self.session() as conn:
            row = conn.execute(sa.select(T.experiments).where(T.experiments.c.name == name)).first()
        return None if row is None else self._experiment(row)

    def get_experiment_by_name_conn(self, conn: Connection, name: str) -> Experiment | None:
        row = conn.execute(sa.select(T.experiments).where(T.experiments.c.name == name)).first()
        return None if row is None else self._experiment(row)

    @staticmethod
    def _experiment(row) -> Experiment:
        return Experiment(row.id, row.name, row.created_at, row.lifecycle, json.loads(row.tags))

    # -- writes ----------------------------------------------------------
    def check(self, conn: Connection, batch: RecordBatch) -> None:
        """Refuse a new (not replayed) batch that would break a run's invariants."""
        if batch.create is not None:
            return
        row = conn.execute(sa.select(T.runs.c.status, T.runs.c.end_time).where(
            T.runs.c.id == batch.run_id)).first()
        if row is None:
            raise NotFound(f"run {batch.run_id!r} does not exist")
        if (batch.params or batch.metrics) and row.status != RunStatus.RUNNING.value \
                and row.end_time is not None:
            raise RunFinished(f"run {batch.run_id} is {row.status}: its params and metrics "
                              "are immutable (tags and notes stay editable)")
        if batch.params:
            existing = dict(conn.execute(sa.select(T.params.c.key, T.params.c.value).where(
                T.params.c.run_id == batch.run_id, T.params.c.key.in_(list(batch.params)))).all())
            for key, value in batch.params.items():
                if key in existing and existing[key] != value:
                    raise InvalidArgument(
                        f"param {key!r} of run {batch.run_id} is already {existing[key]!r}; "
                        f"params are immutable and cannot be changed to {value!r}")

    def applied_seq(self, conn: Connection, writer_ids: Iterable[str]) -> dict[str, int]:
        ids = list(set(writer_ids))
        out: dict[str, int] = {}
        for part in _chunks(ids):
            out.update(conn.execute(sa.select(T.writers.c.writer_id, T.writers.c.seq).where(
                T.writers.c.writer_id.in_(part))).all())
        return out

    def apply(self, conn: Connection, batch: RecordBatch, segs: list[seglib.Segment],
              end_offset: int = 0) -> None:
        """Apply one batch inside the caller's write transaction (caller checked its seq)."""
        ins = _insert(conn)
        rid = batch.run_id
        if batch.create is not None:
            c = batch.create
            if c.get("experiment_name"):
                self.insert_experiment(conn, Experiment(c["experiment_id"], c["experiment_name"],
                                                        c.get("experiment_created_at", batch.time)),
                                       ignore_existing=True)
            conn.execute(ins(T.runs).values(
                id=rid, experiment_id=c["experiment_id"], name=c.get("name") or rid[:8],
                status=RunStatus.RUNNING.value, start_time=c.get("start_time", batch.time),
                end_time=None, parent_id=c.get("parent_id"), user=c.get("user", ""),
                lifecycle="active", heartbeat=batch.time, env="{}",
            ).on_conflict_do_nothing())
        if batch.env is not None:
            conn.execute(sa.update(T.runs).where(T.runs.c.id == rid).values(
                env=json.dumps(batch.env, default=str)))
        if batch.params:
            conn.execute(ins(T.params).on_conflict_do_nothing(),
                         [{"run_id": rid, "key": k, "value": v} for k, v in batch.params.items()])
        if batch.tags:
            stmt = ins(T.tags)
            conn.execute(stmt.on_conflict_do_update(index_elements=["run_id", "key"],
                                                    set_={"value": stmt.excluded.value}),
                         [{"run_id": rid, "key": k, "value": v} for k, v in batch.tags.items()])
        if batch.deleted_tags:
            conn.execute(sa.delete(T.tags).where(T.tags.c.run_id == rid,
                                                 T.tags.c.key.in_(list(batch.deleted_tags))))
        if segs:
            self._apply_metrics(conn, rid, batch.writer_id, batch.seq, segs)
        if batch.artifacts:
            stmt = ins(T.artifacts)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["run_id", "path"],
                set_={"size": stmt.excluded.size, "digest": stmt.excluded.digest,
                      "chunks": stmt.excluded.chunks}),
                [{"run_id": rid, "path": a.path, "size": a.size, "digest": a.digest,
                  "chunks": json.dumps([list(c) for c in a.chunks]) if a.chunks else None}
                 for a in batch.artifacts])
        values: dict[str, Any] = {"heartbeat": sa.func.max(
            sa.func.coalesce(T.runs.c.heartbeat, 0), batch.time) if conn.dialect.name == "sqlite"
            else sa.func.greatest(sa.func.coalesce(T.runs.c.heartbeat, 0), batch.time)}
        if batch.status is not None:
            values["status"] = batch.status.value
            values["end_time"] = batch.end_time if batch.status.terminal else None
        else:
            # A writer heard from again revives a run that was only presumed dead.
            values["status"] = sa.case((T.runs.c.end_time.is_(None), RunStatus.RUNNING.value),
                                       else_=T.runs.c.status)
        conn.execute(sa.update(T.runs).where(T.runs.c.id == rid).values(**values))
        stmt = ins(T.writers)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["writer_id"],
            set_={"seq": stmt.excluded.seq, "offset": stmt.excluded.offset}),
            {"writer_id": batch.writer_id, "run_id": rid, "seq": batch.seq, "offset": end_offset})

    def _apply_metrics(self, conn, rid, writer, seq, segs: list[seglib.Segment]) -> None:
        conn.execute(_insert(conn)(T.metric_segments).on_conflict_do_nothing(), [
            {"run_id": rid, "key": s.key, "writer": writer, "seq": seq, "n": s.n,
             "step_min": s.step_min, "step_max": s.step_max, "payload": s.blob} for s in segs])
        lm = T.latest_metrics
        old = {r.key: r for r in conn.execute(sa.select(lm).where(
            lm.c.run_id == rid, lm.c.key.in_([s.key for s in segs]))).all()}
        fresh, updates = [], []
        for s in segs:
            new = s.summary
            prev = old.get(s.key)
            if prev is None:
                fresh.append(_latest_row(rid, s.key, new))
                continue
            prev_val = math.nan if prev.is_nan else prev.value
            if (new["step"], new["timestamp"]) >= (prev.step, prev.timestamp):
                val, step, ts = new["value"], new["step"], new["timestamp"]
            else:
                val, step, ts = prev_val, prev.step, prev.timestamp
            merged = {"value": val, "step": step, "timestamp": ts,
                      "min": _nan_min(prev.min, new["min"]), "max": _nan_max(prev.max, new["max"]),
                      "count": prev.count + new["count"]}
            updates.append(_latest_row(rid, s.key, merged))
        if fresh:
            conn.execute(sa.insert(lm), fresh)
        for row in updates:
            conn.execute(sa.update(lm).where(lm.c.run_id == rid, lm.c.key == row["key"]).values(
                {k: v for k, v in row.items() if k not in ("run_id", "key")}))

    def heartbeat(self, run_ids: Sequence[str], when: int) -> None:
        with self.session(write=True) as conn:
            for part in _chunks(list(run_ids)):
                conn.execute(sa.update(T.runs).where(T.runs.c.id.in_(part),
                                                     T.runs.c.end_time.is_(None)).values(
                    heartbeat=when, status=RunStatus.RUNNING.value))

    def mark_stale(self, cutoff: int) -> int:
        """Persist KILLED for RUNNING runs whose heartbeat stopped before ``cutoff``."""
        with self.session(write=True) as conn:
            # end_time stays NULL: the owner may only be suspended, and may come back.
            res = conn.execute(sa.update(T.runs).where(
                T.runs.c.status == RunStatus.RUNNING.value, T.runs.c.heartbeat < cutoff).values(
                status=RunStatus.KILLED.value))
            return res.rowcount or 0

    # -- reads -----------------------------------------------------------
    def run_states(self) -> dict[str, str]:
        with self.session() as conn:
            return dict(conn.execute(sa.select(T.runs.c.id, T.runs.c.status)).all())

    def writer_offsets(self, run_id: str) -> dict[str, int]:
        with self.session() as conn:
            return dict(conn.execute(sa.select(T.writers.c.writer_id, T.writers.c.offset).where(
                T.writers.c.run_id == run_id)).all())

    def get_run(self, run_id: str, stale_before: int | None = None) -> Run:
        with self.session() as conn:
            runs = self.load_runs(conn, [run_id], with_env=True, stale_before=stale_before)
        if not runs:
            raise NotFound(f"run {run_id!r} does not exist")
        return runs[0]

    def load_runs(self, conn: Connection, ids: Sequence[str], with_env: bool = False,
                  stale_before: int | None = None) -> list[Run]:
        """Runs by id, in the order given, with params, tags and latest metrics."""
        r, e = T.runs, T.experiments
        cols = [r.c.id, r.c.name, r.c.experiment_id, e.c.name.label("experiment"), r.c.status,
                r.c.start_time, r.c.end_time, r.c.user, r.c.parent_id, r.c.lifecycle, r.c.heartbeat]
        if with_env:
            cols.append(r.c.env)
        rows, params, tags, metrics = {}, {}, {}, {}
        for part in _chunks(list(ids)):
            for row in conn.execute(sa.select(*cols).select_from(
                    r.outerjoin(e, e.c.id == r.c.experiment_id)).where(r.c.id.in_(part))):
                rows[row.id] = row
            for rid, k, v in conn.execute(sa.select(T.params.c.run_id, T.params.c.key,
                                                    T.params.c.value).where(T.params.c.run_id.in_(part))):
                params.setdefault(rid, {})[k] = v
            for rid, k, v in conn.execute(sa.select(T.tags.c.run_id, T.tags.c.key,
                                                    T.tags.c.value).where(T.tags.c.run_id.in_(part))):
                tags.setdefault(rid, {})[k] = v
            for m in conn.execute(sa.select(T.latest_metrics).where(
                    T.latest_metrics.c.run_id.in_(part))):
                value = math.nan if m.is_nan else m.value
                metrics.setdefault(m.run_id, {})[m.key] = LatestMetric(
                    m.key, value, m.step, m.timestamp,
                    math.nan if m.min is None else m.min, math.nan if m.max is None else m.max, m.count)
        out = []
        for rid in ids:
            row = rows.get(rid)
            if row is None:
                continue
            status = RunStatus(row.status)
            end_time = row.end_time
            if status is RunStatus.RUNNING and stale_before is not None and row.heartbeat is not None \
                    and row.heartbeat < stale_before:
                status = RunStatus.KILLED
            if status is RunStatus.KILLED and end_time is None:
                end_time = row.heartbeat  # presumed dead: its last sign of life
            summaries = metrics.get(rid, {})
            out.append(Run(
                id=row.id, name=row.name, experiment_id=row.experiment_id,
                experiment=row.experiment or "", status=status, start_time=row.start_time,
                end_time=end_time, user=row.user, parent_id=row.parent_id,
                params=params.get(rid, {}), tags=tags.get(rid, {}),
                metrics={k: m.value for k, m in summaries.items()},
                env=json.loads(row.env) if with_env else {}, lifecycle=row.lifecycle,
                heartbeat=row.heartbeat, metric_summaries=summaries))
        return out

    def search(self, experiment_ids: Sequence[str] | None, flt: Any, order: Any, offset: int,
               limit: int, stale_before: int | None = None) -> tuple[list[Run], bool]:
        """One page of matching runs, and whether more follow."""
        from ... import search

        query = search.compile_query(experiment_ids, flt, order, T)
        query = query.offset(offset).limit(limit + 1)
        with self.session() as conn:
            ids = [row[0] for row in conn.execute(query)]
            more = len(ids) > limit
            runs = self.load_runs(conn, ids[:limit], stale_before=stale_before)
        return runs, more

    def metric_history(self, run_id: str, key: str) -> MetricHistory:
        ms = T.metric_segments
        with self.session() as conn:
            blobs = [row[0] for row in conn.execute(
                sa.select(ms.c.payload).where(ms.c.run_id == run_id, ms.c.key == key).order_by(
                    ms.c.step_min, ms.c.writer, ms.c.seq))]
            if not blobs and conn.execute(sa.select(T.runs.c.id).where(
                    T.runs.c.id == run_id)).first() is None:
                raise NotFound(f"run {run_id!r} does not exist")
        return history_from_blobs(key, blobs)

    def metric_keys(self, run_id: str) -> list[str]:
        lm = T.latest_metrics
        with self.session() as conn:
            return [r[0] for r in conn.execute(sa.select(lm.c.key).where(
                lm.c.run_id == run_id).order_by(lm.c.key))]

    def list_artifacts(self, run_id: str) -> list[FileEntry]:
        a = T.artifacts
        with self.session() as conn:
            rows = conn.execute(sa.select(a).where(a.c.run_id == run_id).order_by(a.c.path)).all()
        return [FileEntry(r.path, r.size, r.digest,
                          tuple(tuple(c) for c in json.loads(r.chunks)) if r.chunks else ())
                for r in rows]

    def all_artifacts(self) -> list[tuple[str, FileEntry]]:
        a = T.artifacts
        with self.session() as conn:
            rows = conn.execute(sa.select(a)).all()
        return [(r.run_id, FileEntry(r.path, r.size, r.digest,
                                     tuple(tuple(c) for c in json.loads(r.chunks)) if r.chunks else ()))
                for r in rows]

    def reset_derived(self) -> None:
        """Empty every table that journals can rebuild (``cairn reindex``)."""
        with self.session(write=True) as conn:
            for table in reversed(T.DERIVED_TABLES):
                conn.execute(sa.delete(table))


def history_from_blobs(key: str, blobs: list[bytes]) -> MetricHistory:
    if not blobs:
        empty_i = np.empty(0, dtype=np.int64)
        return MetricHistory(key, empty_i, empty_i.copy(), np.empty(0, dtype=np.float64))
    parts = [seglib.decode(b) for b in blobs]
    if len(parts) == 1:
        s, t, v = (np.array(a) for a in parts[0])
    else:
        s = np.concatenate([p[0] for p in parts])
        t = np.concatenate([p[1] for p in parts])
        v = np.concatenate([p[2] for p in parts])
    if s.shape[0] > 1:
        ds = np.diff(s)
        if not (np.all(ds > 0) or (np.all(ds >= 0) and np.all(np.diff(t)[ds == 0] >= 0))):
            order = np.lexsort((t, s))
            s, t, v = s[order], t[order], v[order]
    return MetricHistory(key, s, t, v)


def _latest_row(rid: str, key: str, m: dict) -> dict:
    value = m["value"]
    is_nan = isinstance(value, float) and math.isnan(value)
    return {"run_id": rid, "key": key, "value": None if is_nan else value, "is_nan": int(is_nan),
            "step": m["step"], "timestamp": m["timestamp"], "min": m["min"], "max": m["max"],
            "count": m["count"]}


def _nan_min(a, b):
    vals = [x for x in (a, b) if x is not None]
    return min(vals) if vals else None


def _nan_max(a, b):
    vals = [x for x in (a, b) if x is not None]
    return max(vals) if vals else None
