"""The SQL index: applies record batches and answers reads, on SQLite or PostgreSQL.

Rows never leave this module: every read returns entities.  Applying a batch is
idempotent per (writer, seq), so journals can be replayed at any time.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Callable, Iterable, Iterator, Sequence, cast

import orjson

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ...entities import (
    LIFECYCLES, RUN_LIFECYCLE_TAG, RUN_NAME_TAG, Experiment, FileEntry, LatestMetric, MetricHistory,
    RecordBatch, Run, RunStatus, split_row_tags,
)
from ...errors import InvalidArgument, NotFound, RunFinished
from .. import segments as seglib
from ..envjson import env_text
from . import tables as T
from .engine import ensure_schema, make_engine, read as read_only, session

_CHUNK = 500  # ids per IN (...) list

# The write path runs these for every batch, so they are plain SQL: building SQLAlchemy
# constructs per call cost more than the database work.  ON CONFLICT and quoted
# identifiers mean the same on SQLite (>= 3.24) and PostgreSQL; only the placeholder
# differs, and _sql() swaps it.
_STATEMENTS = {
    "applied_seq": 'SELECT seq FROM writers WHERE writer_id = ?',
    # Both things a write needs to know first, in one round trip.
    "preflight": 'SELECT w.seq, r.status, r.end_time, r.id FROM (SELECT 1 AS one) AS o '
                 'LEFT JOIN writers w ON w.writer_id = ? LEFT JOIN runs r ON r.id = ?',
    "run_state": 'SELECT status, end_time FROM runs WHERE id = ?',
    "insert_experiment": 'INSERT INTO experiments (id, name, created_at, lifecycle, tags) '
                         'VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
    "insert_run": 'INSERT INTO runs (id, experiment_id, name, status, start_time, end_time, '
                  'parent_id, "user", lifecycle, heartbeat, env) '
                  "VALUES (?, ?, ?, 'RUNNING', ?, NULL, ?, ?, 'active', ?, '{}') "
                  'ON CONFLICT DO NOTHING',
    # The experiment a new run goes to: the one of its id, else the one of its name.
    "experiment_for_run": 'SELECT id FROM experiments WHERE id = ? OR name = ? '
                          'ORDER BY id = ? DESC LIMIT 1',
    "experiment_row_by_name": 'SELECT id, name, created_at, lifecycle, tags FROM experiments '
                              'WHERE name = ?',
    "experiment_row_by_id": 'SELECT id, name, created_at, lifecycle, tags FROM experiments '
                            'WHERE id = ?',
    "update_env": 'UPDATE runs SET env = ? WHERE id = ?',
    # What the reserved tags cairn.run.name / cairn.run.lifecycle set (a rename, a delete).
    "rename_run": 'UPDATE runs SET name = ? WHERE id = ?',
    "set_run_lifecycle": 'UPDATE runs SET lifecycle = ? WHERE id = ?',
    "get_doc": 'SELECT doc, summaries FROM runs WHERE id = ?',
    "set_doc": 'UPDATE runs SET doc = ?, summaries = ? WHERE id = ?',
    "insert_param": 'INSERT INTO params (run_id, key, value) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
    "upsert_tag": 'INSERT INTO tags (run_id, key, value) VALUES (?, ?, ?) '
                  'ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value',
    "delete_tag": 'DELETE FROM tags WHERE run_id = ? AND key = ?',
    "insert_segment": 'INSERT INTO metric_segments (run_id, key, writer, seq, n, step_min, step_max, '
                      'payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
    "insert_latest": 'INSERT INTO latest_metrics (run_id, key, value, is_nan, step, timestamp, '
                     'min, max, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    "update_latest": 'UPDATE latest_metrics SET value = ?, is_nan = ?, step = ?, timestamp = ?, '
                     'min = ?, max = ?, count = ? WHERE run_id = ? AND key = ?',
    "upsert_artifact": 'INSERT INTO artifacts (run_id, path, size, digest, chunks) '
                       'VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, path) DO UPDATE SET '
                       'size = excluded.size, digest = excluded.digest, chunks = excluded.chunks',
    "end_run": 'UPDATE runs SET heartbeat = CASE WHEN COALESCE(heartbeat, 0) > ? '
               'THEN heartbeat ELSE ? END, status = ?, end_time = ? WHERE id = ?',
    "touch_run": 'UPDATE runs SET heartbeat = CASE WHEN COALESCE(heartbeat, 0) > ? '
                 "THEN heartbeat ELSE ? END, status = CASE WHEN end_time IS NULL "
                 "THEN 'RUNNING' ELSE status END WHERE id = ?",
    "upsert_writer": 'INSERT INTO writers (writer_id, run_id, seq, "offset") VALUES (?, ?, ?, ?) '
                     'ON CONFLICT (writer_id) DO UPDATE SET seq = excluded.seq, '
                     '"offset" = excluded."offset"',
    # A quarantined record: its bytes are consumed, its writer's seq stays what it was.
    "consume_writer": 'INSERT INTO writers (writer_id, run_id, seq, "offset") VALUES (?, ?, 0, ?) '
                      'ON CONFLICT (writer_id) DO UPDATE SET "offset" = CASE WHEN '
                      'excluded."offset" > writers."offset" THEN excluded."offset" '
                      'ELSE writers."offset" END',
}
_PG_STATEMENTS = {k: v.replace("?", "%s") for k, v in _STATEMENTS.items()}


def _sql(conn: Connection, name: str) -> str:
    return (_PG_STATEMENTS if conn.dialect.name == "postgresql" else _STATEMENTS)[name]


def _dbapi(conn: Connection) -> Any:
    """The transaction's own driver connection (sqlite3's or psycopg's: psycopg's
    ``pipeline()`` is no part of SQLAlchemy's DBAPIConnection protocol)."""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None, "a connection in use has its driver connection"
    return dbapi


class _Done:
    """What callers of _run use of a result: rowcount and the first row."""

    __slots__ = ("rowcount", "_row")

    def __init__(self, rowcount: int, row: tuple | None) -> None:
        self.rowcount, self._row = rowcount, row

    def first(self) -> tuple | None:
        return self._row


def _run(conn: Connection, name: str, params: tuple[Any, ...] | list[tuple[Any, ...]]) -> _Done:
    """Run a fixed statement on the transaction's own DBAPI connection.

    SQLAlchemy's per-execute bookkeeping cost more than SQLite's work for these
    one-row statements (a third of a 1,000-point log_batch).
    """
    cur = _dbapi(conn).cursor()
    try:
        if isinstance(params, list):
            cur.executemany(_sql(conn, name), params)
            return _Done(cur.rowcount, None)
        cur.execute(_sql(conn, name), params)
        row = cur.fetchone() if cur.description is not None else None
        return _Done(cur.rowcount, row)
    finally:
        cur.close()


def _run_all(conn: Connection, statements: list[tuple[str, Any]]) -> None:
    """Run statements whose results nobody reads, in order.

    On PostgreSQL they go out in one pipeline: a batch of metric points on a server
    was a dozen round trips, each costing both processes a wake-up, and most of them
    were these writes.  SQLite runs in-process, so there is nothing to save there.
    """
    if not statements:
        return
    dbapi = _dbapi(conn)
    if conn.dialect.name != "postgresql":
        for name, params in statements:
            _run(conn, name, params)
        return
    with dbapi.pipeline():
        cur = dbapi.cursor()
        try:
            for name, params in statements:
                if isinstance(params, list):
                    cur.executemany(_sql(conn, name), params)
                else:
                    cur.execute(_sql(conn, name), params)
        finally:
            cur.close()


def _fetchall(conn: Connection, sql: str, params: tuple) -> list[tuple]:
    """Rows as plain tuples straight from the driver: reads of thousands of rows are
    several times faster than through SQLAlchemy's result objects."""
    cur = _dbapi(conn).cursor()
    try:
        cur.execute(sql, params)
        return cur.fetchall()
    finally:
        cur.close()


def _insert(conn: Connection) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT on both SQLite and PostgreSQL."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    return insert


def _chunks(seq: Sequence[Any], n: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def _fetch_in(conn: Connection, head: str, values: Sequence, before: tuple = ()) -> list:
    """The rows of ``head (v1, v2, ...)`` over ``values``, a chunk of them per statement.

    ``head`` ends with ``IN`` and writes its other placeholders as ``{ph}``; ``before``
    binds them.  Driver-level: these run on every write's check and every page of runs.
    """
    ph = "%s" if conn.dialect.name == "postgresql" else "?"
    head = head.format(ph=ph)
    out: list = []
    for part in _chunks(list(values)):
        out.extend(_fetchall(conn, f"{head} ({', '.join([ph] * len(part))})", (*before, *part)))
    return out


class SqlIndex:
    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._queries: dict[tuple, Any] = {}  # compiled searches, by (experiments, filter, order)
        self._local = threading.local()  # per thread: how many of its transactions are open

    # -- lifecycle -------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.url)
        return self._engine

    def open(self, create: bool = True) -> None:
        ensure_schema(self.engine, create=create)
        if self.engine.dialect.name == "sqlite":
            self._refresh_statistics()

    def _refresh_statistics(self) -> None:
        """Give SQLite's planner statistics once a store has grown, so searches start from
        their most selective clause; later opens only re-analyze tables that changed a lot."""
        with self.session(write=True) as conn:
            analyzed = conn.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").first()
            if analyzed:
                conn.exec_driver_sql("PRAGMA optimize")
            elif conn.exec_driver_sql("SELECT count(*) FROM runs").scalar_one() >= 500:
                conn.exec_driver_sql("PRAGMA analysis_limit = 1000")
                conn.exec_driver_sql("ANALYZE")

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def session(self, write: bool = False) -> AbstractContextManager[Connection]:
        return self._counted(session(self.engine, write=write))

    def read(self) -> AbstractContextManager[Connection]:
        """A connection for reads only (see :func:`~cairn.store.sql.engine.read`)."""
        return self._counted(read_only(self.engine))

    @contextmanager
    def _counted(self, cm: AbstractContextManager[Connection]) -> Iterator[Connection]:
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            with cm as conn:
                yield conn
        finally:
            self._local.depth -= 1

    def in_transaction(self) -> bool:
        """Whether the calling thread has a transaction of this index open.

        A store that queues index writes (group commit) must not apply them from inside
        one: on SQLite the apply's BEGIN IMMEDIATE would wait for the write lock that the
        caller's own transaction may hold, for ever.
        """
        return getattr(self._local, "depth", 0) > 0

    # -- experiments -----------------------------------------------------
    def insert_experiment(self, conn: Connection, exp: Experiment, ignore_existing: bool = False) -> None:
        params = (exp.id, exp.name, exp.created_at, exp.lifecycle, json.dumps(dict(exp.tags)))
        if ignore_existing:
            _run(conn, "insert_experiment", params)
        else:
            conn.execute(sa.insert(T.experiments).values(
                id=exp.id, name=exp.name, created_at=exp.created_at, lifecycle=exp.lifecycle,
                tags=params[-1]))

    def list_experiments(self) -> list[Experiment]:
        with self.read() as conn:
            rows = conn.execute(sa.select(T.experiments).order_by(T.experiments.c.created_at,
                                                                  T.experiments.c.name)).all()
        return [self._experiment(r) for r in rows]

    def get_experiment(self, experiment_id: str) -> Experiment | None:
        with self.read() as conn:
            rows = _fetchall(conn, _sql(conn, "experiment_row_by_id"), (experiment_id,))
        return self._experiment(rows[0]) if rows else None

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        with self.read() as conn:
            return self.get_experiment_by_name_conn(conn, name)

    def get_experiment_by_name_conn(self, conn: Connection, name: str) -> Experiment | None:
        rows = _fetchall(conn, _sql(conn, "experiment_row_by_name"), (name,))
        return self._experiment(rows[0]) if rows else None

    @staticmethod
    def _experiment(row: Sequence[Any]) -> Experiment:
        """From (id, name, created_at, lifecycle, tags): the table's column order."""
        return Experiment(row[0], row[1], row[2], row[3], json.loads(row[4]))

    # -- writes ----------------------------------------------------------
    def preflight(self, conn: Connection, batch: RecordBatch) -> bool:
        """Whether ``batch`` is new; if so, :meth:`check` it.  False for a replay or retry.
        (PostgreSQL's writes check in :meth:`apply_pg`, under the run's lock.)"""
        row = _run(conn, "preflight", (batch.writer_id, batch.run_id)).first()
        assert row is not None, "the preflight query has one row whatever it finds"
        seq, status, end_time, found = row
        if seq is not None and seq >= batch.seq:
            return False
        self.check(conn, batch, (status, end_time) if found is not None else None)
        return True

    def check(self, conn: Connection, batch: RecordBatch, state: Any = False) -> None:
        """Refuse a new (not replayed) batch that would break a run's invariants.

        ``state`` is the run's (status, end_time) or None when the caller already read
        it; by default it is read here.
        """
        if batch.create is not None:
            return
        row = _run(conn, "run_state", (batch.run_id,)).first() if state is False else state
        if row is None:
            raise NotFound(f"run {batch.run_id!r} does not exist")
        _check_state(batch, *row)
        if batch.params:
            _check_params(batch, dict(_fetch_in(
                conn, "SELECT key, value FROM params WHERE run_id = {ph} AND key IN",
                list(batch.params), (batch.run_id,))))

    def applied_seq(self, conn: Connection, writer_ids: Iterable[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for wid in set(writer_ids):
            row = _run(conn, "applied_seq", (wid,)).first()
            if row is not None:
                out[wid] = row[0]
        return out

    def apply(self, conn: Connection, batch: RecordBatch, segs: list[seglib.Segment],
              end_offset: int = 0) -> None:
        """Apply one batch inside the caller's write transaction (caller checked its seq)."""
        created = self._create_run(conn, batch) if batch.create is not None else False
        doc_row = None
        if not created and (segs or batch.params or batch.tags or batch.deleted_tags):
            # Read (and on PostgreSQL lock) the run's document first: its summaries are
            # what the metrics merge with, so latest_metrics needs no read of its own.
            sql = _sql(conn, "get_doc") + (" FOR UPDATE" if conn.dialect.name == "postgresql" else "")
            rows = _fetchall(conn, sql, (batch.run_id,))
            doc_row = rows[0] if rows else (None, None)
        _run_all(conn, self._writes(conn, batch, segs, end_offset, created, doc_row))

    def _create_run(self, conn: Connection, batch: RecordBatch) -> bool:
        """Insert the run a batch creates (and the experiment it names, if new); whether
        the run is new."""
        c = batch.create
        assert c is not None
        exp_id = c["experiment_id"]
        if c.get("experiment_name"):
            self.insert_experiment(conn, Experiment(exp_id, c["experiment_name"],
                                                    c.get("experiment_created_at", batch.time)),
                                   ignore_existing=True)
            # A run merged in from another store (or started while a server was out
            # of reach) joins the experiment of the same name; a known id wins, so a
            # creation never lands in an experiment other than the one it names by id
            # (the one the server authorized).
            row = _run(conn, "experiment_for_run",
                       (exp_id, c["experiment_name"], exp_id)).first()
            if row is not None:
                exp_id = row[0]
        return _run(conn, "insert_run", _run_row(batch, exp_id)).rowcount == 1

    def _writes(self, conn: Connection, batch: RecordBatch, segs: list[seglib.Segment],
                end_offset: int, created: bool, doc_row: tuple | None,
                later: list[tuple[str, Any]] | None = None) -> list[tuple[str, Any]]:
        """The statements that apply ``batch`` once its run exists, appended to ``later``:
        writes whose results nothing reads, so they can go out together.  ``doc_row``:
        the run's (doc, summaries), read under the transaction's lock (None if created)."""
        rid = batch.run_id
        later = [] if later is None else later
        tags = batch.tags
        stamps = None
        if tags and (RUN_NAME_TAG in tags or RUN_LIFECYCLE_TAG in tags):
            # A rename or delete/restore: the row's columns, not tags (entities.RUN_NAME_TAG).
            batch, name, lifecycle = split_row_tags(batch)
            stamps = _row_changes(rid, (batch.time, batch.writer_id), name, lifecycle, created,
                                  doc_row, later)
        if batch.env is not None:
            later.append(("update_env", (env_text(batch.env), rid)))
        if batch.params:
            later.append(("insert_param", [(rid, k, v) for k, v in batch.params.items()]))
        if batch.tags:
            later.append(("upsert_tag", [(rid, k, v) for k, v in batch.tags.items()]))
        if batch.deleted_tags:
            later.append(("delete_tag", [(rid, k) for k in batch.deleted_tags]))
        latest = self._apply_metrics(conn, rid, batch.writer_id, batch.seq, segs, later,
                                     new_run=created, doc_row=doc_row) if segs else {}
        if batch.params or batch.tags or batch.deleted_tags or latest or created \
                or stamps is not None:
            self._update_doc(conn, batch, latest, created, later, doc_row, stamps)
        if batch.artifacts:
            later.append(("upsert_artifact", [
                (rid, a.path, a.size, a.digest,
                 json.dumps([list(c) for c in a.chunks]) if a.chunks else None)
                for a in batch.artifacts]))
        if batch.status is not None:
            later.append(("end_run", (batch.time, batch.time, batch.status.value,
                                      batch.end_time if batch.status.terminal else None, rid)))
        else:
            # A writer heard from again revives a run that was only presumed dead.
            later.append(("touch_run", (batch.time, batch.time, rid)))
        later.append(("upsert_writer", (batch.writer_id, rid, batch.seq, end_offset)))
        return later

    def apply_pg(self, conn: Connection, batch: RecordBatch, segs: list[seglib.Segment],
                 lock: int) -> bool:
        """Check and apply a new batch on PostgreSQL, and commit, in two round trips (see
        :mod:`.pg_batch`); False for a replay or retry (nothing written)."""
        from .pg_batch import array_statement, merge_run_row

        rid, c = batch.run_id, batch.create
        dbapi = _dbapi(conn)
        curs = [dbapi.cursor() for _ in range(5)]
        try:
            # 1. What the write must know first, after the run's lock.  Each statement of
            # a READ COMMITTED transaction sees what committed before it started, so the
            # reads behind the lock see every earlier batch of this run.
            with dbapi.pipeline():
                curs[0].execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
                curs[1].execute(_PG_STATEMENTS["preflight"], (batch.writer_id, rid))
                if batch.params and c is None:
                    curs[2].execute('SELECT "key", value FROM params WHERE run_id = %s '
                                    'AND "key" = ANY(%s::text[])', (rid, list(batch.params)))
                if c is not None:
                    exp_id = str(c.get("experiment_id", ""))
                    curs[3].execute(_PG_STATEMENTS["experiment_for_run"],
                                    (exp_id, c.get("experiment_name") or None, exp_id))
                curs[4].execute(_PG_STATEMENTS["get_doc"] + " FOR UPDATE", (rid,))
            seq, status, end_time, found = curs[1].fetchone()
            if seq is not None and seq >= batch.seq:
                return False
            later: list[tuple[str, Any]] = []
            if c is None:
                if found is None:
                    raise NotFound(f"run {rid!r} does not exist")
                _check_state(batch, status, end_time)
                if batch.params:
                    _check_params(batch, dict(curs[2].fetchall()))
                created = False
            else:
                exp_row = curs[3].fetchone()
                if exp_row is None:
                    if not c.get("experiment_name"):
                        raise NotFound(f"experiment {c.get('experiment_id')!r} does not exist")
                    created = self._create_run(conn, batch)  # it makes its experiment: rare
                else:
                    created = found is None
                    if created:
                        later.append(("insert_run", _run_row(batch, exp_row[0])))
            doc = curs[4].fetchone()
        finally:
            for cur in curs:
                cur.close()
        doc_row = None if created else (doc or (None, None))
        self._writes(conn, batch, segs, 0, created, doc_row, later)
        # 2. Every write, then the commit: the session's own COMMIT finds nothing to do.
        with dbapi.pipeline():
            cur = dbapi.cursor()
            try:
                for name, params in merge_run_row(later):
                    arrays = array_statement(name, params)
                    if name == "sql":  # a statement of its own (pg_batch.merge_run_row)
                        cur.execute(*params)
                    elif arrays is not None:
                        cur.execute(*arrays)
                    elif isinstance(params, list):
                        cur.executemany(_PG_STATEMENTS[name], params)
                    else:
                        cur.execute(_PG_STATEMENTS[name], params)
                cur.execute("COMMIT")
            finally:
                cur.close()
        return True

    def apply_guarded(self, conn: Connection, batch: RecordBatch, segs: list[seglib.Segment],
                      end_offset: int, refused: Callable[[BaseException], bool]) -> BaseException | None:
        """:meth:`apply` in a savepoint: if it fails with an error that ``refused`` blames
        on the batch, undo the batch alone and return the error (the transaction goes on);
        any other error is raised.  For replay's slow path only: a savepoint per batch."""
        cur = _dbapi(conn).cursor()
        try:
            cur.execute("SAVEPOINT cairn_record")
            try:
                self.apply(conn, batch, segs, end_offset)
            except Exception as exc:
                if not refused(exc):
                    raise
                cur.execute("ROLLBACK TO SAVEPOINT cairn_record")
                cur.execute("RELEASE SAVEPOINT cairn_record")
                return exc
            cur.execute("RELEASE SAVEPOINT cairn_record")
            return None
        finally:
            cur.close()

    def run_exists(self, conn: Connection, run_id: str) -> bool:
        return _run(conn, "run_state", (run_id,)).first() is not None

    def consume(self, conn: Connection, writer_id: str, run_id: str, end_offset: int) -> None:
        """Count a writer's journal as read up to ``end_offset`` (at least), its seq unchanged:
        what replay quarantined there is not tried again."""
        _run(conn, "consume_writer", (writer_id, run_id, end_offset))

    def _apply_metrics(self, conn: Connection, rid: str, writer: str, seq: int,
                       segs: list[seglib.Segment], later: list[tuple[str, Any]],
                       new_run: bool = False, doc_row: tuple | None = None) -> dict[str, list[Any]]:
        later.append(("insert_segment", [(rid, s.key, writer, seq, s.n, s.step_min, s.step_max,
                                          s.blob) for s in segs]))
        old = {}
        if new_run:  # a run created in this very batch has no summaries to merge with
            pass
        elif doc_row is not None and doc_row[0] and doc_row[1]:
            summaries = orjson.loads(doc_row[1])
            for s in segs:
                m = summaries.get(s.key)
                if m is not None:
                    old[s.key] = (s.key, _num_or_none(m[0]), m[1], m[2], m[3],
                                  _num_or_none(m[4]), _num_or_none(m[5]), m[6])
        else:  # a document from before summaries were stored beside it
            ph = "%s" if conn.dialect.name == "postgresql" else "?"
            sql = ("SELECT key, value, is_nan, step, timestamp, min, max, count FROM latest_metrics "
                   f"WHERE run_id = {ph} AND key IN ({', '.join([ph] * len(segs))})")
            old = {r[0]: r for r in _fetchall(conn, sql, (rid, *[s.key for s in segs]))}
        fresh, updates = [], []
        for s in segs:
            new = s.summary
            prev = old.get(s.key)
            if prev is None:
                fresh.append(_latest_row(rid, s.key, new))
                continue
            _k, p_value, p_is_nan, p_step, p_ts, p_min, p_max, p_count = prev
            if (new["step"], new["timestamp"]) >= (p_step, p_ts):
                val, step, ts = new["value"], new["step"], new["timestamp"]
            else:
                val, step, ts = (math.nan if p_is_nan else p_value), p_step, p_ts
            merged = {"value": val, "step": step, "timestamp": ts,
                      "min": _nan_min(p_min, new["min"]), "max": _nan_max(p_max, new["max"]),
                      "count": p_count + new["count"]}
            r = _latest_row(rid, s.key, merged)
            updates.append(r[2:] + r[:2])
        if fresh:
            later.append(("insert_latest", fresh))
        if updates:
            later.append(("update_latest", updates))
        # key -> [value or None, is_nan, step, timestamp, min, max, count], for the run's doc
        return {r[1]: list(r[2:]) for r in fresh} | {u[-1]: list(u[:-2]) for u in updates}

    def _update_doc(self, conn: Connection, batch: RecordBatch, latest: dict, created: bool,
                    later: list, doc_row: tuple | None = None, stamps: dict | None = None) -> None:
        """Bring the run's document (and, if metrics moved, its summaries) up to date.

        ``doc`` is ``{"p": params, "t": tags, "v": latest values}`` (plus ``"x": 1`` when a
        value is NaN or infinite, spelt null / "inf" / "-inf"; and ``"r"``: the time and value
        of the run's last rename and delete/restore, see :func:`_row_changes`); ``summaries``
        maps each key to ``[value, is_nan, step, timestamp, min, max, count]``.
        """
        rid = batch.run_id
        doc: dict[str, Any]
        summaries: Any  # a dict, or the stored text when no metric moved
        if created:
            doc, summaries = {"p": {}, "t": {}, "v": {}}, {}
        else:
            if doc_row is None:
                sql = _sql(conn, "get_doc") + (" FOR UPDATE" if conn.dialect.name == "postgresql" else "")
                rows = _fetchall(conn, sql, (rid,))
            else:
                rows = [doc_row] if doc_row[0] else []
            if not rows or not rows[0][0]:
                # A row from before documents existed: build both from the tables, once
                # they hold this batch.
                _run_all(conn, later)
                later.clear()
                later.append(self._set_doc(rid, *self._doc_from_tables(conn, rid)))
                return
            doc = orjson.loads(rows[0][0])
            if "m" in doc:  # written by revision 0005: summaries lived in the document
                summaries = doc.pop("m")
                doc["v"] = {}
                latest = summaries | latest
            elif latest:
                summaries = orjson.loads(rows[0][1]) if rows[0][1] else {}
            else:
                summaries = rows[0][1]  # untouched: written back as the same text
        if stamps is not None:
            doc["r"] = stamps
        params = doc["p"]
        for k, v in batch.params.items():
            params.setdefault(k, v)  # params never change: the first value stays
        doc["t"].update(batch.tags)
        for k in batch.deleted_tags:
            doc["t"].pop(k, None)
        if latest:
            summaries.update(latest)
            values = doc["v"]
            for k, m in latest.items():
                values[k] = None if m[1] else m[0]
            # Non-finite: NaN (None), an infinity, or one already spelt "inf" by revision 0005.
            if any(v is None or isinstance(v, str) or type(v) is float and math.isinf(v)
                   for v in values.values()):
                doc["x"] = 1
            else:
                doc.pop("x", None)
        later.append(self._set_doc(rid, doc, summaries))

    @staticmethod
    def _set_doc(rid: str, doc: dict, summaries: dict | str | None) -> tuple[str, tuple]:
        """The statement that stores a run's document and summaries."""
        # JSON has no infinities: they are spelt "inf"/"-inf" (NaN is null, or flagged).
        if doc.get("x"):
            doc["v"] = {k: repr(v) if type(v) is float and math.isinf(v) else v
                        for k, v in doc["v"].items()}
        if isinstance(summaries, dict):
            for m in summaries.values():
                for i in (0, 4, 5):
                    if isinstance(m[i], float) and math.isinf(m[i]):
                        m[i] = repr(m[i])
            summaries = orjson.dumps(summaries).decode()
        return "set_doc", (orjson.dumps(doc).decode(), summaries, rid)

    @staticmethod
    def _doc_from_tables(conn: Connection, rid: str) -> tuple[dict, dict]:
        ph = "%s" if conn.dialect.name == "postgresql" else "?"
        summaries = {m[0]: list(m[1:]) for m in _fetchall(
            conn, "SELECT key, value, is_nan, step, timestamp, min, max, count "
            f"FROM latest_metrics WHERE run_id = {ph}", (rid,))}
        values = {k: None if m[1] else m[0] for k, m in summaries.items()}
        doc: dict[str, Any] = {
            "p": dict(_fetchall(conn, f"SELECT key, value FROM params WHERE run_id = {ph}", (rid,))),
            "t": dict(_fetchall(conn, f"SELECT key, value FROM tags WHERE run_id = {ph}", (rid,))),
            "v": values,
        }
        if any(v is None or math.isinf(v) for v in values.values()):
            doc["x"] = 1
        return doc, summaries

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
    def all_writer_offsets(self) -> dict[str, int]:
        with self.session() as conn:
            return dict(_fetchall(conn, 'SELECT writer_id, "offset" FROM writers', ()))

    def writer_offsets(self, writer_ids: Sequence[str]) -> dict[str, int]:
        """How many bytes of each of these writers' journals were applied (absent: none).

        By writer id, the table's key: ``writers`` has no index on ``run_id``, and a scan
        of it for every run replayed made opening a store of a million runs take minutes.
        """
        with self.session() as conn:
            return dict(_fetch_in(conn, 'SELECT writer_id, "offset" FROM writers WHERE writer_id IN',
                                  list(writer_ids)))

    def get_run(self, run_id: str, stale_before: int | None = None) -> Run:
        with self.read() as conn:
            runs = self.load_runs(conn, [run_id], with_env=True, stale_before=stale_before)
        if not runs:
            raise NotFound(f"run {run_id!r} does not exist")
        return runs[0]

    def run_states(self, run_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """run id -> (experiment id, lifecycle), for the runs that exist."""
        with self.read() as conn:
            return {row[0]: (row[1], row[2]) for row in _fetch_in(
                conn, "SELECT id, experiment_id, lifecycle FROM runs WHERE id IN",
                list(dict.fromkeys(run_ids)))}

    # Columns of a run row, in the order _build_runs reads them.
    _RUN_COLUMNS = ("id", "name", "experiment_id", "status", "start_time", "end_time", "user",
                    "parent_id", "lifecycle", "heartbeat", "doc", "summaries")

    def load_runs(self, conn: Connection, ids: Sequence[str], with_env: bool = False,
                  stale_before: int | None = None) -> list[Run]:
        """Runs by id, in the order given, with params, tags and latest metrics."""
        # The experiment's name comes in the same statement: one round trip per page.
        cols = ", ".join(f'r."{c}"' for c in self._RUN_COLUMNS) + ", e.name" + (
            ", r.env" if with_env else "")
        rows = {row[0]: row for row in _fetch_in(
            conn, f"SELECT {cols} FROM runs r LEFT JOIN experiments e ON e.id = r.experiment_id "
                  "WHERE r.id IN", ids)}
        return self._build_runs(conn, [rows[i] for i in ids if i in rows], with_env, stale_before)

    def _build_runs(self, conn: Connection, rows: Sequence[tuple], with_env: bool,
                    stale_before: int | None) -> list[Run]:
        """Runs from rows of _RUN_COLUMNS, the experiment's name, and (``with_env``) env."""
        out = []
        for row in rows:
            (rid, name, exp_id, status_text, start, end_time, user, parent, lifecycle,
             heartbeat, doc_text, summaries_text, exp_name) = row[:13]
            if doc_text:
                doc = orjson.loads(doc_text)
            else:
                doc, summaries_text = self._doc_from_tables(conn, rid)
            values = doc.get("v")
            if values is None:  # a revision-0005 document: summaries inside
                raw = doc["m"]
                metrics = {k: math.nan if m[1] else _num(m[0]) for k, m in raw.items()}
                summaries = _Summaries(raw)
            else:
                metrics = values if "x" not in doc else {
                    k: math.nan if v is None else _num(v) for k, v in values.items()}
                summaries = _Summaries(summaries_text or {})
            status = _STATUS[status_text]
            if status is RunStatus.RUNNING and stale_before is not None and heartbeat is not None \
                    and heartbeat < stale_before:
                status = RunStatus.KILLED
            if status is RunStatus.KILLED and end_time is None:
                end_time = heartbeat  # presumed dead: its last sign of life
            out.append(Run(
                id=rid, name=name, experiment_id=exp_id, experiment=exp_name or "",
                status=status, start_time=start, end_time=end_time, user=user, parent_id=parent,
                params=doc["p"], tags=doc["t"], metrics=metrics,
                env=json.loads(row[13]) if with_env else {}, lifecycle=lifecycle,
                heartbeat=heartbeat, metric_summaries=summaries))
        return out

    def search(self, experiment_ids: Sequence[str] | None, flt: Any, order: Any, offset: int,
               limit: int, stale_before: int | None = None,
               lifecycle: str | None = "active") -> tuple[list[Run], bool]:
        """One page of matching runs of ``lifecycle`` (None: any), and whether more follow."""
        with self.read() as conn:
            sql, params = self._search_sql(conn, experiment_ids, flt, order, offset, limit + 1,
                                           lifecycle)
            if conn.dialect.name == "postgresql":
                rows = self._page_rows_pg(conn, sql, params)
                more = len(rows) > limit
                return self._build_runs(conn, rows[:limit], False, stale_before), more
            ids = [row[0] for row in _fetchall(conn, sql, params)]
            more = len(ids) > limit
            runs = self.load_runs(conn, ids[:limit], stale_before=stale_before)
        return runs, more

    def _page_rows_pg(self, conn: Connection, ids_sql: str, params: Any) -> list[tuple]:
        """The rows :meth:`load_runs` reads, for the ids ``ids_sql`` selects, in its order:
        one statement, so a page is one round trip, not two.  ``ARRAY(subquery)`` keeps the
        subquery's order and ``WITH ORDINALITY`` numbers it.

        Never prepared.  psycopg prepares a statement on its fifth run on a connection, and
        PostgreSQL then soon plans it once for any parameters (a generic plan): not knowing
        which experiment or key, it scanned every run's params, so a search repeated by a
        dashboard got slower the more runs *other* experiments held (10 ms against 3 ms
        with 300 runs searched among 3,000).  Planned each time, it follows the values."""
        cols = ", ".join(f'r."{c}"' for c in self._RUN_COLUMNS)
        sql = (f"SELECT {cols}, e.name FROM unnest(ARRAY({ids_sql})) WITH ORDINALITY "
               "AS page(id, n) JOIN runs r ON r.id = page.id "
               "LEFT JOIN experiments e ON e.id = r.experiment_id ORDER BY page.n")
        cur = _dbapi(conn).cursor()
        try:
            cur.execute(sql, params, prepare=False)
            return cur.fetchall()
        finally:
            cur.close()

    def _search_sql(self, conn: Connection, experiment_ids: Sequence[str] | None, flt: Any,
                    order: Any, offset: int, limit: int,
                    lifecycle: str | None = "active") -> tuple[str, Any]:
        """The page's query as driver SQL, compiled once per distinct search.

        It selects ids only: carrying the run documents through the sort was slower than
        fetching the page's rows by id afterwards.  A dashboard repeats a few searches.
        """
        key = (conn.dialect.name, None if experiment_ids is None else tuple(experiment_ids),
               flt, order, offset, limit, lifecycle)
        hit = self._queries.get(key)
        if hit is None:
            from ... import search

            query = search.compile_query(experiment_ids, flt, order, T,
                                         lifecycle=lifecycle).with_only_columns(
                T.runs.c.id, maintain_column_froms=True)
            compiled = query.offset(offset).limit(limit).compile(
                dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
            if compiled.positiontup is not None:
                args: Any = tuple(compiled.params[name] for name in compiled.positiontup)
            else:
                args = compiled.params
            hit = (str(compiled), args)
            if len(self._queries) >= 256:
                self._queries.clear()
            self._queries[key] = hit
        return hit

    def metric_history(self, run_id: str, key: str) -> MetricHistory:
        ms = T.metric_segments
        with self.read() as conn:
            blobs = [row[0] for row in conn.execute(
                sa.select(ms.c.payload).where(ms.c.run_id == run_id, ms.c.key == key).order_by(
                    ms.c.step_min, ms.c.writer, ms.c.seq))]
            if not blobs and conn.execute(sa.select(T.runs.c.id).where(
                    T.runs.c.id == run_id)).first() is None:
                raise NotFound(f"run {run_id!r} does not exist")
        return history_from_blobs(key, blobs)

    def metric_keys(self, run_id: str) -> list[str]:
        lm = T.latest_metrics
        with self.read() as conn:
            return [r[0] for r in conn.execute(sa.select(lm.c.key).where(
                lm.c.run_id == run_id).order_by(lm.c.key))]

    def list_artifacts(self, run_id: str) -> list[FileEntry]:
        a = T.artifacts
        with self.read() as conn:
            rows = conn.execute(sa.select(a).where(a.c.run_id == run_id).order_by(a.c.path)).all()
        return [FileEntry(r.path, r.size, r.digest,
                          tuple(tuple(c) for c in json.loads(r.chunks)) if r.chunks else ())
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


def _num(x: Any) -> float:
    return float(x) if isinstance(x, str) else x  # "inf" / "-inf" from a run doc


def _latest(key: str, m: list) -> LatestMetric:
    value, is_nan, step, ts, lo, hi, count = m
    return LatestMetric(key, math.nan if is_nan else _num(value), step, ts,
                        math.nan if lo is None else _num(lo), math.nan if hi is None else _num(hi),
                        count)


class _Summaries(Mapping[str, LatestMetric]):
    """Latest-metric summaries built on first access: a page of search results rarely
    needs them, and parsing and building them was most of the page's cost.  Holds the
    stored JSON text (or its parsed dict) until then."""

    __slots__ = ("_src", "_raw", "_cache")

    def __init__(self, raw: dict | str) -> None:
        self._src = raw
        self._raw: dict | None = raw if isinstance(raw, dict) else None
        self._cache: dict[str, LatestMetric] = {}

    def _parsed(self) -> dict:
        if self._raw is None:
            self._raw = orjson.loads(cast(str, self._src))  # no dict yet: the stored text
        return self._raw

    def __getitem__(self, key: str) -> LatestMetric:
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = _latest(key, self._parsed()[key])
        return hit

    def position(self, key: str) -> tuple[int, int] | None:
        """``(step, timestamp)`` of the key's latest point, without building its summary
        (what an MLflow run's metric list shows of each key)."""
        m = self._parsed().get(key)
        return None if m is None else (m[2], m[3])

    def __iter__(self) -> Iterator[str]:
        return iter(self._parsed())

    def __len__(self) -> int:
        return len(self._parsed())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

    def __repr__(self) -> str:
        return f"{dict(self.items())!r}"


_STATUS = {s.value: s for s in RunStatus}  # a dict lookup: Enum's call was 5% of a search page


def _run_row(batch: RecordBatch, exp_id: str) -> tuple:
    """insert_run's parameters for the run ``batch`` creates, in experiment ``exp_id``."""
    c = batch.create
    assert c is not None
    return (batch.run_id, exp_id, c.get("name") or batch.run_id[:8],
            c.get("start_time", batch.time), c.get("parent_id"), c.get("user", ""),
            c.get("heartbeat", batch.time))


def _row_changes(rid: str, when: tuple[int, str], name: str | None, lifecycle: str | None,
                 created: bool, doc_row: tuple | None, later: list[tuple[str, Any]]) -> dict:
    """The statements of a rename and a delete/restore (the reserved tags), and the run
    document's ``"r"`` entry after them: ``{"n": [time, name, writer], "l": [time,
    lifecycle, writer]}``.  The latest change (``when``: time, then writer id for changes
    in the same millisecond) wins whatever order batches arrive in (writers replayed by id
    on ``cairn reindex``, journals synced to a server one after another): an older one is
    skipped.  The document was read anyway (under the run's lock on PostgreSQL), so this
    costs no round trip."""
    stamps: dict = {}
    if not created and doc_row is not None and doc_row[0]:
        stamps = orjson.loads(doc_row[0]).get("r") or {}
    if lifecycle is not None and lifecycle not in LIFECYCLES:
        lifecycle = None  # a journal from before the tags were checked: not a lifecycle
    for key, value, statement in (("n", name or None, "rename_run"),
                                  ("l", lifecycle, "set_run_lifecycle")):
        if value is None:
            continue
        prev = stamps.get(key)
        if prev is not None and (prev[0], prev[2] if len(prev) > 2 else "") > when:
            continue  # a later change was applied first
        stamps[key] = [when[0], value, when[1]]
        later.append((statement, (value, rid)))
    return stamps


def _check_state(batch: RecordBatch, status: str, end_time: int | None) -> None:
    """A finished run's params, metrics and status stay as they are."""
    if (batch.params or batch.metrics or batch.status is not None) and end_time is not None:
        raise RunFinished(f"run {batch.run_id} is {status}: its params, metrics and status "
                          "are immutable (tags and notes stay editable)")


def _check_params(batch: RecordBatch, existing: dict[str, str]) -> None:
    """A param keeps its first value: ``existing`` holds those of the batch's keys."""
    for key, value in batch.params.items():
        if key in existing and existing[key] != value:
            raise InvalidArgument(
                f"param {key!r} of run {batch.run_id} is already {existing[key]!r}; "
                f"params are immutable and cannot be changed to {value!r}")


def _latest_row(rid: str, key: str, m: dict) -> tuple:
    """(run_id, key, value, is_nan, step, timestamp, min, max, count); NaN is flagged, value NULL."""
    value = m["value"]
    is_nan = isinstance(value, float) and math.isnan(value)
    return (rid, key, None if is_nan else value, int(is_nan), m["step"], m["timestamp"],
            m["min"], m["max"], m["count"])


def _num_or_none(x: Any) -> Any:
    """A summary number as stored in JSON: infinities are spelt "inf"/"-inf"."""
    return float(x) if isinstance(x, str) else x


def _nan_min(a: float | None, b: float | None) -> float | None:
    vals = [x for x in (a, b) if x is not None]
    return min(vals) if vals else None


def _nan_max(a: float | None, b: float | None) -> float | None:
    vals = [x for x in (a, b) if x is not None]
    return max(vals) if vals else None
