"""Erasing one person's data on request (``cairn admin erase-user``).

Every place a store records who did something is rewritten: runs (their user,
``mlflow.user``, params, tags and captured environment that name the person), the
registry (creators, approvals, stage history, aliases, policies), data sets,
comments and reports, monitoring, and the audit log, whose events become tombstones
that keep the chain verifiable (:mod:`cairn.registry.audit`).  A local store's
journals are the truth for runs, so the records that name the person are rewritten
there too (a temporary file renamed over the journal): ``cairn reindex`` cannot
bring the name back.  On PostgreSQL the index rows are the truth.

The name is replaced by ``[erased]``; inside longer text (a home path, an e-mail
address) only the name itself is.  All database changes, and the one ``user.erase``
audit event that lists the erased audit events, are one transaction.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import clock
from ..entities import RunStatus
from ..errors import Conflict, InvalidArgument
from ..store.validation import check_text

ERASED = "[erased]"

# (table, column) of plain text columns that hold a user name.
_PEOPLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("registered_models", "created_by"), ("model_versions", "created_by"),
    ("model_versions", "deleted_by"), ("model_aliases", "updated_by"),
    ("stage_policies", "updated_by"), ("transition_requests", "requested_by"),
    ("transition_requests", "resolved_by"), ("model_history", "actor"),
    ("signing_keys", "created_by"), ("datasets", "created_by"),
    ("dataset_versions", "created_by"), ("dataset_versions", "deleted_by"),
    ("dataset_aliases", "updated_by"), ("comments", "author"), ("comments", "edited_by"),
    ("comments", "deleted_by"), ("comment_edits", "editor"), ("saved_views", "created_by"),
    ("saved_views", "updated_by"), ("dashboards", "created_by"), ("dashboards", "updated_by"),
    ("reports", "created_by"), ("reports", "updated_by"), ("alert_rule_sets", "applied_by"),
    ("alert_history", "actor"), ("alert_actions", "claimed_by"),
    ("webhook_subscriptions", "created_by"), ("retention_policies", "updated_by"),
)
# Text columns that may mention the person inside longer text (JSON or prose).
_TEXT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("stage_policies", "approvers"), ("transition_requests", "reason"),
    ("transition_approvals", "comment"), ("model_history", "reason"),
    ("comments", "body"), ("comment_edits", "body"),  # an @mention of them
    ("reports", "body"),
    ("events", "payload"),  # an event reports who did what (a copy of its audit event)
)


@dataclass
class EraseReport:
    """What an erasure changed (or, on a dry run, would change)."""

    name: str
    dry_run: bool
    runs: list[str] = field(default_factory=list)
    journals: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # "table.column" -> rows
    audit_events: list[int] = field(default_factory=list)
    erase_event: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dry_run": self.dry_run, "runs": self.runs,
                "journals": self.journals, "rows": self.rows,
                "audit_events": self.audit_events, "erase_event": self.erase_event}


class Scrubber:
    """Replaces one name: whole where a field is the name, the name alone inside text."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._regex = re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])", re.IGNORECASE)
        # A LIKE pattern for lower(column): SQLite's lower() folds ASCII only, so any other
        # letter matches any one character there (Émile, ÉMILE); Python then decides.
        self.like = "".join(ch.lower() if ch.isascii() else "_" for ch in name)

    def is_name(self, value: Any) -> bool:
        return isinstance(value, str) and value.lower() == self.name.lower()

    def mentions(self, text: str | None) -> bool:
        return bool(text) and self._regex.search(text) is not None  # type: ignore[arg-type]

    def text(self, value: str) -> str:
        return self._regex.sub(ERASED, value)

    def json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.json(v)
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self.json(v) for v in value]
        return value

    def json_text(self, value: str | None) -> str | None:
        if value is None or not self.mentions(value):
            return value
        try:
            doc = json.loads(value)
        except ValueError:
            return self.text(value)
        return json.dumps(self.json(doc), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False)


def check_name(name: str) -> str:
    check_text(name, "user name")
    if not name.strip() or name == ERASED:
        raise InvalidArgument(f"cannot erase the user name {name!r}: give the name as recorded")
    return name


def erase_user(store: Any, name: str, *, actor: str, dry_run: bool = False,
               now_ms: int | None = None) -> EraseReport:
    """Erase ``name`` from ``store`` (a local store, a database store, or a team server,
    which does it for a global admin and records its caller); ``actor`` is recorded on the
    ``user.erase`` audit event."""
    check_name(name)
    from ..store.base import Indexed, RemoteServer

    if isinstance(store, RemoteServer):  # the server erases, as its global admin asks
        d = store.call("POST", "/admin/erase-user", json={"name": name, "dry_run": dry_run})
        return EraseReport(d["name"], d["dry_run"], d["runs"], d["journals"], d["rows"],
                           d["audit_events"], d["erase_event"])
    if not isinstance(store, Indexed):
        raise InvalidArgument(f"the store {store.uri} keeps no database to erase from")
    scrub = Scrubber(name)
    report = EraseReport(name, dry_run)
    now = clock.now_ms() if now_ms is None else now_ms
    store.open()
    root = getattr(store, "root", None)
    journal_runs = _journal_runs(store, Path(root), scrub) if root is not None else {}
    index = store.index
    with index.session() as conn:
        runs = sorted(set(_index_runs(conn, scrub)) | set(journal_runs))
    _refuse_open_runs(runs, store)  # outside the transaction: a read may apply queued writes
    report.runs = runs
    report.journals = [str(p) for paths in journal_runs.values() for p in paths]
    # Each journal's erased copy is written beside it first; the copies replace the journals
    # inside the transaction, and the originals come back if it fails, so the index's
    # journal offsets and the journals change together.
    staged = [] if dry_run else [(path, *_stage_journal(path, scrub))
                                 for paths in journal_runs.values() for path in paths]
    # An experiment's file is what a reindex reads its tags from (cairn.deleted_by...).
    files = [] if dry_run or root is None else _stage_experiment_files(Path(root), scrub)
    swapped: list[tuple[Path, Path]] = []
    try:
        with index.session(write=not dry_run) as conn:
            _erase_runs(conn, runs, scrub, report, dry_run)
            for path, _tmp, size in staged:
                # Its bytes changed, and every record was applied (no writer is open).
                conn.execute(sa.text('UPDATE writers SET "offset" = :o WHERE writer_id = :w'),
                             {"o": size, "w": path.stem})
            _erase_experiments(conn, scrub, report, dry_run)
            _erase_columns(conn, scrub, report, dry_run)
            _erase_audit(conn, scrub, report, dry_run, actor, now)
            for path, tmp in [(p, t) for p, t, _size in staged] + files:
                backup = path.with_name(path.name + ".pre-erase")
                os.replace(path, backup)
                os.replace(tmp, path)
                swapped.append((path, backup))
    except BaseException:
        for path, backup in swapped:
            os.replace(backup, path)
        for tmp in [t for _p, t, _size in staged] + [t for _p, t in files]:
            with _suppress():
                os.unlink(tmp)
        raise
    for _path, backup in swapped:
        os.unlink(backup)
    return report


# -- runs ----------------------------------------------------------------------------------
def _journal_runs(store: Any, root: Path, scrub: Scrubber) -> dict[str, list[Path]]:
    """Runs whose journal files mention the name (a byte search, then a decode)."""
    # bytes.lower() folds ASCII only, and a journal may hold the name as UTF-8 or as JSON's
    # \\u escapes: look for its longest ASCII part (none: every journal is a candidate).
    ascii_part = max(re.split(r"[^\x00-\x7f]+", scrub.name.lower()), key=len)
    needles = {ascii_part.encode()} if len(ascii_part) >= 2 else {b""}
    out: dict[str, list[Path]] = {}
    runs_dir = root / "runs"
    if not runs_dir.is_dir():
        return out
    for run_dir in sorted(runs_dir.iterdir()):
        for path in sorted((run_dir / "journal").glob("*.cjl")):
            data = path.read_bytes().lower()
            # The bytes only pick candidates: "al" is in "val_loss" and in "alice", and a
            # run picked wrongly is refused while it runs and rewritten for nothing.
            if any(n in data for n in needles) and _journal_mentions(path, scrub):
                out.setdefault(run_dir.name, []).append(path)
    return out


def _journal_mentions(path: Path, scrub: Scrubber) -> bool:
    """Whether a record of the journal names the person where an erasure rewrites it."""
    from ..store import journal as jlib

    for item in jlib.read(path):
        if isinstance(item, jlib.Damage):
            continue
        batch = item.batch
        if any(scrub.mentions(v) for v in (*batch.params.values(), *batch.tags.values())):
            return True
        for doc in (batch.create, batch.env):
            if doc is not None and scrub.json(dict(doc)) != dict(doc):
                return True
    return False


def _index_runs(conn: Connection, scrub: Scrubber) -> list[str]:
    like = f"%{scrub.like}%"
    q = sa.text("SELECT id FROM runs WHERE lower(\"user\") LIKE :n OR lower(env) LIKE :l "
                "OR lower(name) LIKE :l "
                "OR id IN (SELECT run_id FROM tags WHERE lower(value) LIKE :l) "
                "OR id IN (SELECT run_id FROM params WHERE lower(value) LIKE :l)")
    ids = [r[0] for r in conn.execute(q, {"n": scrub.like, "l": like})]
    # LIKE found candidates; keep those where the name stands as a word.
    out = []
    for run_id in ids:
        row = conn.execute(sa.text('SELECT "user", env, name FROM runs WHERE id = :r'),
                           {"r": run_id}).one()
        values = [row[0], row[1], row[2]] + [v for (v,) in conn.execute(
            sa.text("SELECT value FROM tags WHERE run_id = :r UNION ALL "
                    "SELECT value FROM params WHERE run_id = :r"), {"r": run_id})]
        if any(scrub.mentions(v) for v in values if isinstance(v, str)):
            out.append(run_id)
    return out


def _refuse_open_runs(run_ids: list[str], store: Any) -> None:
    for run_id in run_ids:
        try:
            run = store.get_run(run_id)
        except Exception:  # in a journal but not (yet) in the index: nothing open to ask
            continue
        if run.status == RunStatus.RUNNING:
            raise Conflict(f"run {run_id} is still running (a writer holds it open): erasing "
                           "now would race its writes; end or kill it, or wait until it is "
                           "shown KILLED, then erase again")


def _erase_batch(batch: Any, scrub: Scrubber) -> Any:
    changes: dict[str, Any] = {}
    if batch.params:
        changes["params"] = {k: scrub.text(v) for k, v in batch.params.items()}
    if batch.tags:
        changes["tags"] = {k: scrub.text(v) for k, v in batch.tags.items()}
    if batch.create is not None:
        changes["create"] = scrub.json(dict(batch.create))
    if batch.env is not None:
        changes["env"] = scrub.json(batch.env)
    return replace(batch, **changes)


def _stage_journal(path: Path, scrub: Scrubber) -> tuple[Path, int]:
    """Write ``path`` with the name erased from every record to a temporary file beside it;
    (that file, its size).  Damaged spans are copied as they are (they cannot be read, so
    not rewritten either)."""
    from ..store import journal as jlib

    data = path.read_bytes()
    parts: list[bytes] = []
    pos = 0
    for item in jlib.read(path):
        if isinstance(item, jlib.Damage):
            continue  # copied with the bytes between records below
        parts.append(data[pos:item.offset])
        payload = data[item.offset + jlib._FRAME.size:item.end]
        prepared: list[Any] = []
        batch = jlib.decode_payload(payload, prepared)
        parts.append(jlib.encode_batch(_erase_batch(batch, scrub), prepared))
        pos = item.end
    parts.append(data[pos:])
    new = b"".join(parts)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".erase", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(new)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
    except BaseException:
        with _suppress():
            os.unlink(tmp)
        raise
    return tmp, len(new)


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> bool:
        return True


def _erase_runs(conn: Connection, run_ids: list[str], scrub: Scrubber, report: EraseReport,
                dry_run: bool) -> None:
    counts = {"runs.user": 0, "runs.name": 0, "runs.env": 0, "params.value": 0,
              "tags.value": 0}
    for run_id in run_ids:
        row = conn.execute(sa.text('SELECT "user", env, doc, name FROM runs WHERE id = :r'),
                           {"r": run_id}).first()
        if row is None:
            continue
        user, env, doc, name = row
        sets: dict[str, Any] = {}
        if isinstance(user, str) and scrub.mentions(user):
            sets["user"] = scrub.text(user)
            counts["runs.user"] += 1
        if isinstance(name, str) and scrub.mentions(name):  # as the journals now say
            sets["name"] = scrub.text(name)
            counts["runs.name"] += 1
        if isinstance(env, str) and scrub.mentions(env):
            sets["env"] = scrub.json_text(env)
            counts["runs.env"] += 1
        if isinstance(doc, str) and scrub.mentions(doc):
            sets["doc"] = scrub.json_text(doc)
        if sets and not dry_run:
            conn.execute(sa.text("UPDATE runs SET " + ", ".join(f'"{k}" = :{k}' for k in sets)
                                 + " WHERE id = :r"), {**sets, "r": run_id})
        for table in ("params", "tags"):
            for key, value in conn.execute(
                    sa.text(f"SELECT key, value FROM {table} WHERE run_id = :r"), {"r": run_id}).all():
                if isinstance(value, str) and scrub.mentions(value):
                    counts[f"{table}.value"] += 1
                    if not dry_run:
                        conn.execute(sa.text(f"UPDATE {table} SET value = :v "
                                             "WHERE run_id = :r AND key = :k"),
                                     {"v": scrub.text(value), "r": run_id, "k": key})
    report.rows.update({k: v for k, v in counts.items() if v})


# -- experiments ------------------------------------------------------------------------------
def _erase_experiments(conn: Connection, scrub: Scrubber, report: EraseReport,
                       dry_run: bool) -> None:
    """Experiment tags (``cairn.deleted_by``, an owner); names stay, as runs refer to them."""
    rows = conn.execute(sa.text("SELECT id, tags FROM experiments WHERE lower(tags) LIKE :l"),
                        {"l": f"%{scrub.like}%"}).all()
    changed = 0
    for exp_id, tags in rows:
        try:
            doc = json.loads(tags)
        except ValueError:
            continue
        if not isinstance(doc, dict) or scrub.json(doc) == doc:
            continue
        changed += 1
        if not dry_run:
            conn.execute(sa.text("UPDATE experiments SET tags = :t WHERE id = :i"),
                         {"t": json.dumps(scrub.json(doc)), "i": exp_id})
    if changed:
        report.rows["experiments.tags"] = changed


def _stage_experiment_files(root: Path, scrub: Scrubber) -> list[tuple[Path, Path]]:
    """(file, its erased copy beside it) for each experiment file whose tags name them."""
    out: list[tuple[Path, Path]] = []
    for path in sorted((root / "experiments").glob("*.json")):
        try:
            doc = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue  # damaged: cairn doctor names it
        tags = doc.get("tags") if isinstance(doc, dict) else None
        if not isinstance(tags, dict) or scrub.json(tags) == tags:
            continue
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".erase", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(json.dumps({**doc, "tags": scrub.json(tags)}).encode())
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(name, 0o644)
        out.append((path, Path(name)))
    return out


# -- registry, data sets, collaboration, monitoring -----------------------------------------
def _columns(conn: Connection) -> dict[str, set[str]]:
    """The tables of this database's revision and their columns."""
    inspector = sa.inspect(conn)
    return {t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()}


def _spellings(conn: Connection, table: str, column: str, scrub: Scrubber) -> list[str]:
    """The values of ``table.column`` that are the name, in any case."""
    values = conn.execute(sa.text(f'SELECT DISTINCT "{column}" FROM {table} '
                                  f'WHERE lower("{column}") LIKE :p'), {"p": scrub.like}).scalars()
    return [v for v in values if scrub.is_name(v)]


def _count(conn: Connection, table: str, column: str, values: list[str]) -> int:
    return sum(conn.execute(sa.text(f'SELECT count(*) FROM {table} WHERE "{column}" = :v'),
                            {"v": v}).scalar_one() for v in values)


def _erase_columns(conn: Connection, scrub: Scrubber, report: EraseReport, dry_run: bool) -> None:
    tables = _columns(conn)
    # transition_approvals.user is part of the key: one approval per user.
    for table, column in (*_PEOPLE_COLUMNS, ("transition_approvals", "user")):
        if column not in tables.get(table, ()):
            continue
        values = _spellings(conn, table, column, scrub)
        n = _count(conn, table, column, values)
        if n:
            report.rows[f"{table}.{column}"] = n
            if not dry_run:
                for v in values:
                    conn.execute(sa.text(f'UPDATE {table} SET "{column}" = :e '
                                         f'WHERE "{column}" = :v'), {"e": ERASED, "v": v})
    for table, column in _TEXT_COLUMNS:
        if column in tables.get(table, ()):
            _rewrite_text_column(conn, table, column, scrub, report, dry_run)
    if "comment_mentions" in tables:  # derived from bodies: the mention goes
        values = _spellings(conn, "comment_mentions", "user_name", scrub)
        n = _count(conn, "comment_mentions", "user_name", values)
        if n:
            report.rows["comment_mentions.user_name"] = n
            if not dry_run:
                for v in values:
                    conn.execute(sa.text("DELETE FROM comment_mentions WHERE user_name = :v"),
                                 {"v": v})


def _rewrite_text_column(conn: Connection, table: str, column: str, scrub: Scrubber,
                         report: EraseReport, dry_run: bool) -> None:
    values = conn.execute(sa.text(f'SELECT DISTINCT "{column}" FROM {table} '
                                  f'WHERE lower("{column}") LIKE :l'),
                          {"l": f"%{scrub.like}%"}).scalars().all()
    changed = 0
    for value in values:
        if not scrub.mentions(value):
            continue
        changed += conn.execute(sa.text(f'SELECT count(*) FROM {table} WHERE "{column}" = :o'),
                                {"o": value}).scalar_one()
        if not dry_run:
            conn.execute(sa.text(f'UPDATE {table} SET "{column}" = :v WHERE "{column}" = :o'),
                         {"v": scrub.json_text(value), "o": value})
    if changed:
        report.rows[f"{table}.{column}"] = changed


# -- the audit log ---------------------------------------------------------------------------
def _erase_audit(conn: Connection, scrub: Scrubber, report: EraseReport, dry_run: bool,
                 actor: str, now: int) -> None:
    from ..registry import audit
    from ..store.sql import tables as T

    like = f"%{scrub.like}%"
    ev = T.audit_events.c
    rows = conn.execute(sa.select(T.audit_events).where(sa.or_(
        sa.func.lower(ev.actor).like(like), sa.func.lower(ev.target).like(like),
        sa.func.lower(ev.before).like(like), sa.func.lower(ev.after).like(like)))
        .order_by(ev.seq)).all()
    tombs = []
    vouchers = None
    for row in rows:
        fields = [f for f in ("actor", "target", "before", "after")
                  if scrub.mentions(getattr(row, f))]
        if not fields:
            continue
        # A tombstone is vouched for by the erasure, so an event edited before it would
        # pass verify afterwards: the evidence of tampering would be erased with the name.
        if row.erased is None:
            damage = None if audit.tombstone_hash(row) == row.hash else "was edited"
        else:
            vouchers = audit._vouchers(conn) if vouchers is None else vouchers
            damage = audit._tombstone_problem(row, vouchers)
        if damage is not None:
            raise Conflict(f"audit event #{row.seq} ({row.action} {row.target}) {damage}; "
                           "erasing it would hide that. Run `cairn audit verify` and look "
                           "into the damage first; nothing was erased")
        who, target = scrub.text(row.actor), scrub.text(row.target)
        before, after = scrub.json_text(row.before), scrub.json_text(row.after)
        new = {"actor": who, "target": target, "before": before, "after": after}
        tomb = audit.event_hash(row.seq, row.time, who, row.action, target, before, after,
                                row.prev_hash)
        tombs.append((row, new, fields, tomb))
    report.audit_events = [row.seq for row, *_ in tombs]
    if dry_run or not (tombs or report.runs or report.rows):
        return
    listing = [{"seq": row.seq, "hash": row.hash, "tombstone": tomb}
               for row, _new, _f, tomb in tombs]
    changed = {"runs": len(report.runs), "rows": sum(report.rows.values()),
               "journals": len(report.journals), "erased": listing}
    event = audit.append(conn, actor, audit.ERASE_ACTION, "users/" + ERASED, None, changed, now)
    report.erase_event = event.seq
    for row, new, fields, _tomb in tombs:
        mark = json.dumps({"at": now, "by_seq": event.seq, "fields": fields},
                          separators=(",", ":"))
        conn.execute(sa.update(T.audit_events).where(ev.seq == row.seq)
                     .values(**new, erased=mark))
