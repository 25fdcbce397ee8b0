"""The index check of a local store: does the SQLite index say what the journals say?

The index is derived from the journals (``cairn reindex`` rebuilds it), so the truth
to compare with is a rebuild: the journals are replayed, by the store's own replay,
into a scratch index in a temporary directory (never into the store, which doctor
only reads), and the two databases are compared table by table in SQLite.  A run in
one and not the other, or a run whose status, params, tags, metrics (latest value,
step, count, and every stored segment) or artifacts differ, is reported.

What is not derived from journals is left out: heartbeats (a live writer's beat goes
to the index only), and the writers' read offsets.  A run left RUNNING and one
presumed dead (KILLED without an end time) are the same here: which one a run is
depends on the clock, not on its records.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..store.local import LocalStore

# Differences listed in the report (all of them are counted).
LISTED = 50

# A run not ended is RUNNING or presumed dead; only an ended run's status is its own.
_STATUS = ("CASE WHEN {t}.end_time IS NULL AND {t}.status IN ('RUNNING', 'KILLED') "
           "THEN 'RUNNING' ELSE {t}.status END")

# table -> (key columns, compared columns); the run's id is the first key of each
# table but experiments.  runs' status is compared through _STATUS.
_TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "experiments": (("id",), ("name", "lifecycle")),
    "runs": (("id",), ("experiment_id", "name", "status", "start_time", "end_time",
                       "parent_id", '"user"', "lifecycle")),
    "params": (("run_id", "key"), ("value",)),
    "tags": (("run_id", "key"), ("value",)),
    "latest_metrics": (("run_id", "key"), ("value", "is_nan", "step", "timestamp", "min",
                                           "max", "count")),
    "metric_segments": (("run_id", "key", "writer", "seq"), ("n", "step_min", "step_max",
                                                             "payload")),
    "artifacts": (("run_id", "path"), ("size", "digest", "chunks")),
}


def check(store: "LocalStore", *, progress: bool | None = False) -> dict[str, Any]:
    """The index check's details: ``ok``, run counts and the ``differences`` found."""
    from ..store.local import LocalStore

    before = _journal_sizes(store.root)
    with tempfile.TemporaryDirectory(prefix="cairn-doctor-") as tmp:
        scratch = LocalStore(tmp, fsync=False)
        quiet = _Quiet(tmp)
        logging.getLogger("cairn.store.local").addFilter(quiet)
        try:
            scratch.open()  # the schema, while there is nothing to replay
            for name in ("runs", "experiments"):
                if (store.root / name).is_dir():
                    os.symlink(store.root / name, Path(tmp) / name)
            scratch.reindex(progress=progress)
        finally:
            logging.getLogger("cairn.store.local").removeFilter(quiet)
            scratch.close()
        store.settle()
        found = _compare(Path(tmp) / "index.db", store.root / "index.db")
    if found["ok"]:
        return {**found, "runs_written_meanwhile": []}
    # A run whose journals grew while doctor replayed and compared was being written: its
    # differences are the writes doctor saw in one copy and not yet in the other.
    after = _journal_sizes(store.root, found.pop("_runs"))
    live = sorted(r for r, size in after.items() if size != before.get(r))
    if not live:
        found.pop("_per_run", None)
        return {**found, "runs_written_meanwhile": []}
    return _drop_runs(found, set(live))


def _journal_sizes(root: Path, run_ids: Any = None) -> dict[str, int | None]:
    """run id -> the total size of its journal files (None: it has none) of ``run_ids``,
    default every run."""
    runs_dir = root / "runs"
    if run_ids is None:
        run_ids = [e.name for e in os.scandir(runs_dir) if e.is_dir()] \
            if runs_dir.is_dir() else []
    sizes: dict[str, int | None] = {}
    for rid in run_ids:
        try:
            with os.scandir(runs_dir / rid / "journal") as it:
                sizes[rid] = sum(e.stat().st_size for e in it if e.is_file())
        except OSError:
            sizes[rid] = None
    return sizes


def _drop_runs(found: dict[str, Any], live: set[str]) -> dict[str, Any]:
    """``found`` without the differences of ``live`` runs, which it lists instead."""
    kept = [d for d in found["differences"] if d.get("run_id") not in live]
    total = found["differences_found"] - sum(found["_per_run"].get(r, 0) for r in live)
    runs = found["runs_differing"] - len(live)
    out = {**found, "ok": total == 0, "runs_differing": runs, "differences_found": total,
           "differences": kept, "fix": None if total == 0 else "cairn reindex",
           "runs_written_meanwhile": sorted(live)}
    out.pop("_per_run", None)
    return out


class _Quiet(logging.Filter):
    """Drops the scratch replay's notes on what it set aside (doctor lists those itself
    from the store's quarantine and journals)."""

    def __init__(self, where: str) -> None:
        super().__init__()
        self.where = where

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(isinstance(a, (str, os.PathLike)) and str(a).startswith(self.where)
                       for a in (record.args if isinstance(record.args, tuple) else ()))


def _compare(journals_db: Path, index_db: Path) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{journals_db}?mode=ro", uri=True)
    try:
        conn.execute("ATTACH DATABASE ? AS live", (f"file:{index_db}?mode=ro",))
        conn.execute("BEGIN")  # one snapshot of both
        counts = {"runs_in_journals": _count(conn, "main.runs"),
                  "runs_in_index": _count(conn, "live.runs")}
        found: list[dict[str, Any]] = []
        total = 0
        runs: set[str] = set()
        per_run: dict[str, int] = {}
        for table, (keys, cols) in _TABLES.items():
            for kind, rows in _differences(conn, table, keys, cols):
                for row in rows:
                    total += 1
                    if table != "experiments":
                        runs.add(row[0])
                        per_run[row[0]] = per_run.get(row[0], 0) + 1
                    if len(found) < LISTED:
                        found.append(_describe(table, keys, cols, kind, row))
        for rid, a, b in _docs(conn):
            total += 1
            runs.add(rid)
            per_run[rid] = per_run.get(rid, 0) + 1
            if len(found) < LISTED:
                found.append({"table": "runs", "run_id": rid, "key": None,
                              "problem": "search document differs", "journals": a, "index": b})
        conn.execute("COMMIT")
    finally:
        conn.close()
    out: dict[str, Any] = {
        "ok": total == 0, **counts, "runs_differing": len(runs), "differences_found": total,
        "differences": found, "fix": None if total == 0 else "cairn reindex"}
    if total:
        out.update(_runs=sorted(runs), _per_run=per_run)
    return out


def _count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _differences(conn: sqlite3.Connection, table: str, keys: tuple[str, ...],
                 cols: tuple[str, ...]) -> list[tuple[str, list[tuple]]]:
    """(kind, rows) for rows only in the journals' rebuild, only in the index, and in both
    but different.  Rows of a run missing on one side are left to that run's own row."""
    on = " AND ".join(f"m.{k} IS l.{k}" for k in keys)
    key_list = ", ".join(f"{{t}}.{k}" for k in keys)
    run_of = ""
    out = []
    for kind, this, other in (("missing from the index", "m", "l"),
                              ("not in the journals", "l", "m")):
        if table not in ("runs", "experiments"):
            # the run exists on the other side (else the run's own row is the difference)
            run_of = (f" AND EXISTS (SELECT 1 FROM {_db(other)}.runs r "
                      f"WHERE r.id = {this}.run_id)")
        sql = (f"SELECT {key_list.format(t=this)} FROM {_db(this)}.{table} {this} "
               f"WHERE NOT EXISTS (SELECT 1 FROM {_db(other)}.{table} {other} WHERE {on})"
               f"{run_of} ORDER BY 1")
        out.append((kind, conn.execute(sql).fetchall()))
    values = [(_STATUS.format(t="m"), _STATUS.format(t="l")) if c == "status"
              else (f"m.{c}", f"l.{c}") for c in cols]
    differ = " OR ".join(f"{a} IS NOT {b}" for a, b in values)
    sql = (f"SELECT {key_list.format(t='m')}, "
           f"{', '.join(a for a, _ in values)}, {', '.join(b for _, b in values)} "
           f"FROM main.{table} m JOIN live.{table} l ON {on} WHERE {differ} ORDER BY 1")
    out.append(("differs", conn.execute(sql).fetchall()))
    return out


def _db(alias: str) -> str:
    return "main" if alias == "m" else "live"


def _describe(table: str, keys: tuple[str, ...], cols: tuple[str, ...], kind: str,
              row: tuple) -> dict[str, Any]:
    key = row[:len(keys)]
    out: dict[str, Any] = {"table": table}
    if table == "experiments":
        out["experiment_id"] = key[0]
    else:
        out["run_id"] = key[0]
    out["key"] = "/".join(str(k) for k in key[1:]) or None
    out["problem"] = kind
    if kind == "differs":
        a, b = row[len(keys):len(keys) + len(cols)], row[len(keys) + len(cols):]
        names = [c.strip('"') for c in cols]
        out["journals"] = {n: _shown(x) for n, x, y in zip(names, a, b) if x != y}
        out["index"] = {n: _shown(y) for n, x, y in zip(names, a, b) if x != y}
    return out


def _shown(value: Any) -> Any:
    return f"<{len(value)} bytes>" if isinstance(value, bytes) else value


def _docs(conn: sqlite3.Connection) -> list[tuple[str, Any, Any]]:
    """Runs whose search document (params, tags and latest values as one JSON, read by
    every search) or metric summaries differ in content, not just in key order."""
    rows = conn.execute("SELECT m.id, m.doc, l.doc, m.summaries, l.summaries FROM main.runs m "
                        "JOIN live.runs l ON m.id = l.id "
                        "WHERE m.doc IS NOT l.doc OR m.summaries IS NOT l.summaries "
                        "ORDER BY 1").fetchall()
    out = []
    for rid, doc_a, doc_b, sum_a, sum_b in rows:
        a, b = _json(doc_a), _json(doc_b)
        if a != b:
            out.append((rid, a, b))
        elif _json(sum_a) != _json(sum_b):
            out.append((rid, {"summaries": _json(sum_a)}, {"summaries": _json(sum_b)}))
    return out


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
