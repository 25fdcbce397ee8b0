"""The hash-chained audit log: every registry mutation appends one event in its transaction.

Each event's ``hash`` is the SHA-256 of its canonical content and the previous
event's hash; ``seq`` counts from 1 without gaps, and a one-row head records the
newest ``(seq, hash)``.  So editing any event, deleting one from the middle or the
end, or reordering them is found by :func:`verify`, which names the event.  (Anyone
who can rewrite the whole database can rebuild the chain: export the head hash
somewhere else, e.g. ``cairn audit verify --json`` into CI logs, to pin it.)

Erasing a person's data on request (:mod:`cairn.lifecycle.erase`) turns the events that
name them into *tombstones*: the personal fields are replaced, ``erased`` records when and
by which event, and the stored ``hash`` and ``prev_hash`` are kept, so the chain still
links.  That ``user.erase`` event lists each tombstone's seq, its original hash and the
hash of its erased content (:func:`tombstone_hash`), so :func:`verify` checks a tombstone
against the later event that vouches for it: an edited tombstone, or a tombstone no
erasure lists, is found like any other edit.

Only SQLAlchemy Core, so the server can append from its own transactions on
PostgreSQL too; the head row is locked ``FOR UPDATE`` there, and SQLite's write
transactions (``BEGIN IMMEDIATE``) already serialise appends.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import clock
from ..store.sql import tables as T
from .entities import AuditEvent, AuditProblem, AuditReport

GENESIS = "0" * 64


def canonical(value: Any) -> str | None:
    """The one JSON spelling of ``value`` that hashes are computed over (None stays NULL)."""
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def event_hash(seq: int, time_ms: int, actor: str, action: str, target: str,
               before: str | None, after: str | None, prev_hash: str) -> str:
    doc = [seq, time_ms, actor, action, target, before, after, prev_hash]
    data = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(data).hexdigest()


def append(conn: Connection, actor: str, action: str, target: str, before: Any = None,
           after: Any = None, time_ms: int | None = None) -> AuditEvent:
    """Append one event inside the caller's write transaction and return it."""
    return append_many(conn, [(actor, action, target, before, after, time_ms)])[0]


def append_many(conn: Connection, events: list[tuple]) -> list[AuditEvent]:
    """Append ``(actor, action, target, before, after, time_ms)`` events, in order, inside
    the caller's write transaction: one lock of the head and one insert for all of them
    (a busy server queues an event per ingest request)."""
    # The head row must exist before it is locked: two transactions writing the very
    # first event would otherwise both find no row, lock nothing, and both claim #1.
    # Seq 0 with the genesis hash is the empty chain.
    conn.execute(sa.text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :g) "
                         "ON CONFLICT DO NOTHING"), {"g": GENESIS})
    head = conn.execute(sa.select(T.audit_head.c.seq, T.audit_head.c.hash)
                        .where(T.audit_head.c.id == 1).with_for_update()).one()
    seq, prev = head.seq, head.hash
    out, rows = [], []
    for actor, action, target, before, after, time_ms in events:
        seq += 1
        when = time_ms if time_ms is not None else clock.now_ms()
        b, a = canonical(before), canonical(after)
        h = event_hash(seq, when, actor, action, target, b, a, prev)
        rows.append({"seq": seq, "time": when, "actor": actor, "action": action,
                     "target": target, "before": b, "after": a, "prev_hash": prev, "hash": h})
        out.append(AuditEvent(seq, when, actor, action, target, before, after, prev, h))
        prev = h
    if rows:
        conn.execute(sa.insert(T.audit_events), rows)
        conn.execute(sa.update(T.audit_head).where(T.audit_head.c.id == 1).values(seq=seq,
                                                                                 hash=prev))
    return out


def _event(row: sa.Row[Any]) -> AuditEvent:
    return AuditEvent(row.seq, row.time, row.actor, row.action, row.target,
                      None if row.before is None else json.loads(row.before),
                      None if row.after is None else json.loads(row.after),
                      row.prev_hash, row.hash)


def events(conn: Connection, target: str | None = None, action: str | None = None,
           actor: str | None = None, limit: int | None = None, newest_first: bool = True
           ) -> list[AuditEvent]:
    """Events, newest first; ``target`` matches exactly or as a prefix ending in ``/``."""
    q = sa.select(T.audit_events)
    if target:
        q = q.where(sa.or_(T.audit_events.c.target == target,
                           T.audit_events.c.target.startswith(target.rstrip("/") + "/",
                                                              autoescape=True)))
    if action:
        q = q.where(T.audit_events.c.action == action)
    if actor:
        q = q.where(T.audit_events.c.actor == actor)
    q = q.order_by(T.audit_events.c.seq.desc() if newest_first else T.audit_events.c.seq)
    if limit:
        q = q.limit(limit)
    return [_event(r) for r in conn.execute(q)]


def _rows(conn: Connection) -> Iterator[Any]:
    last = 0
    while True:  # pages keep memory flat on a long log
        page = conn.execute(sa.select(T.audit_events).where(T.audit_events.c.seq > last)
                            .order_by(T.audit_events.c.seq).limit(5000)).all()
        if not page:
            return
        yield from page
        last = page[-1].seq


ERASE_ACTION = "user.erase"


def tombstone_hash(row: Any) -> str:
    """The hash of an event's content as erased (what its ``user.erase`` event lists)."""
    return event_hash(row.seq, row.time, row.actor, row.action, row.target, row.before,
                      row.after, row.prev_hash)


def _vouchers(conn: Connection) -> dict[tuple[int, int], tuple[str, str]]:
    """``(erase event seq, erased seq) -> (original hash, tombstone hash)`` from every
    ``user.erase`` event; a forged or edited erase event is itself reported by verify."""
    out: dict[tuple[int, int], tuple[str, str]] = {}
    q = sa.select(T.audit_events.c.seq, T.audit_events.c.after).where(
        T.audit_events.c.action == ERASE_ACTION)
    for seq, after in conn.execute(q):
        try:
            listed = json.loads(after or "{}").get("erased", [])
            for item in listed:
                out[(seq, int(item["seq"]))] = (str(item["hash"]), str(item["tombstone"]))
        except (ValueError, TypeError, KeyError, AttributeError):
            continue  # not an erasure's listing: vouches for nothing
    return out


def _tombstone_problem(row: Any, vouchers: dict[tuple[int, int], tuple[str, str]]) -> str | None:
    try:
        by_seq = int(json.loads(row.erased)["by_seq"])
    except (ValueError, TypeError, KeyError):
        return "is marked erased, but its erasure record is unreadable"
    voucher = vouchers.get((by_seq, row.seq)) if by_seq > row.seq else None
    if voucher is None:
        return (f"is marked erased, but no erasure event lists it (it names #{by_seq}): a "
                "forged tombstone")
    if voucher[0] != row.hash:
        return f"is a tombstone whose hash differs from what erasure event #{by_seq} recorded"
    if voucher[1] != tombstone_hash(row):
        return (f"is a tombstone that was edited after erasure event #{by_seq}: its content "
                "does not match what that event recorded")
    return None


def verify(conn: Connection) -> AuditReport:
    """Walk the chain from the first event; report every event that is not what was written."""
    problems: list[AuditProblem] = []
    expected_seq, prev = 1, GENESIS
    checked = 0
    vouchers = _vouchers(conn)
    for row in _rows(conn):
        checked += 1
        label = f"audit event #{row.seq} ({row.action} {row.target})"
        if row.seq != expected_seq:
            missing = (f"#{expected_seq}" if row.seq == expected_seq + 1
                       else f"#{expected_seq}..#{row.seq - 1}")
            problems.append(AuditProblem(expected_seq, f"audit event {missing} is missing "
                                                       f"(deleted); the chain resumes at #{row.seq}"))
        if row.erased is not None:
            why = _tombstone_problem(row, vouchers)
            if why is not None:
                problems.append(AuditProblem(row.seq, f"{label} {why}"))
            elif row.prev_hash != prev and row.seq == expected_seq:
                problems.append(AuditProblem(row.seq, f"{label} does not link to event "
                                                      f"#{row.seq - 1}: event #{row.seq - 1} was "
                                                      "rewritten or replaced"))
            expected_seq, prev = row.seq + 1, row.hash
            continue
        recomputed = event_hash(row.seq, row.time, row.actor, row.action, row.target, row.before,
                                row.after, row.prev_hash)
        if recomputed != row.hash:
            problems.append(AuditProblem(row.seq, f"{label} was edited: its content does not "
                                                  "match its hash"))
        elif row.prev_hash != prev and row.seq == expected_seq:
            problems.append(AuditProblem(row.seq, f"{label} does not link to event "
                                                  f"#{row.seq - 1}: event #{row.seq - 1} was "
                                                  "rewritten or replaced"))
        expected_seq, prev = row.seq + 1, row.hash
    head = conn.execute(sa.select(T.audit_head).where(T.audit_head.c.id == 1)).first()
    if head is None:
        if checked:
            problems.append(AuditProblem(None, "the audit head record is missing"))
    elif head.seq != expected_seq - 1:
        problems.append(AuditProblem(
            head.seq, f"the newest audit events were deleted: the head says #{head.seq}, "
                      f"the log ends at #{expected_seq - 1}"))
    elif head.hash != prev:
        problems.append(AuditProblem(head.seq, f"audit event #{head.seq} was rewritten: its hash "
                                               "does not match the recorded head"))
    return AuditReport(checked, tuple(problems))


def head(conn: Connection) -> tuple[int, str]:
    row = conn.execute(sa.select(T.audit_head).where(T.audit_head.c.id == 1)).first()
    return (row.seq, row.hash) if row else (0, GENESIS)
