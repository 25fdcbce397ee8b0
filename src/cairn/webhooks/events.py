"""Cairn's events: what happened, stored once, in order, for webhooks to deliver.

An event is a row of the ``events`` table: ``seq`` (its place in the order), ``key`` (the
fact it reports, so that two producers reporting one fact store one event), ``type``
(one of :data:`EVENT_TYPES`), ``at`` (when it happened, ms), the experiment and model it
concerns (for subscriptions that filter on them) and a JSON ``payload``.

Producers call :func:`emit` inside their own write transaction, so the event is stored
if and only if what it reports is; an alert rule's own ``notify`` target gets a delivery
with :func:`enqueue_direct`.  Both only insert, and a duplicate is answered ``None``
without disturbing the caller's transaction (``ON CONFLICT DO NOTHING``, SQLite and
PostgreSQL alike).  docs/webhooks.md shows each type's payload.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import InvalidArgument
from ..store.sql.tables_monitoring import events as E
from ..store.sql.tables_monitoring import webhook_deliveries as D
from . import rules

#: Every event type, with what it reports.
EVENT_DESCRIPTIONS: dict[str, str] = {
    "run.finished": "a run ended with status FINISHED",
    "run.failed": "a run ended with status FAILED",
    "run.killed": "a run ended with status KILLED",
    "model.created": "a registered model was created",
    "model.renamed": "a registered model was renamed",
    "model.deleted": "a registered model was deleted",
    "model_version.created": "a model version was registered",
    "model_version.deleted": "a model version was deleted",
    "transition.requested": "a stage transition was requested (approvers: one waits for you)",
    "transition.approved": "a pending stage transition was approved",
    "transition.rejected": "a pending stage transition was rejected",
    "stage.changed": "a model version moved to another stage (rollback: true for a rollback)",
    "alias.moved": "an alias was set or moved to a model version",
    "alias.deleted": "an alias was removed",
    "deployment.changed": "a deployment started, switched to, rolled back to or stopped "
                          "serving a model version",
    "alert.firing": "an alert rule's condition held long enough to fire",
    "alert.resolved": "a firing alert's condition no longer holds",
}
#: The event types, in documentation order.
EVENT_TYPES: tuple[str, ...] = tuple(EVENT_DESCRIPTIONS)


def _insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT DO NOTHING."""
    name = conn.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    raise InvalidArgument(f"events need SQLite or PostgreSQL, not {name}")


#: PostgreSQL advisory lock between the transactions that store events (shared) and the
#: fan-out (exclusive): a seq is taken at insert, so without it a transaction storing many
#: events (a page of the audit log) could commit after a later one had been fanned out,
#: further back than the fan-out looks again, and its events would never be delivered.
EVENTS_LOCK = int.from_bytes(b"cairnevt", "big")


def lock_events(conn: Connection, exclusive: bool) -> None:
    """Take the events lock until ``conn``'s transaction ends (PostgreSQL; SQLite has one
    writer at a time, so seqs commit in order there already)."""
    if conn.dialect.name == "postgresql":
        fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        conn.execute(sa.select(getattr(sa.func, fn)(EVENTS_LOCK)))


def _at(value: Any, field: str) -> int:
    return rules.check_int(value, field, 0, 2**62)


def emit(conn: Connection, *, key: str, type: str, payload: dict[str, Any], at_ms: int,
         model: str | None = None, experiment_id: str | None = None) -> int | None:
    """Store an event in the caller's transaction; its ``seq``, or None when an event with
    ``key`` is already stored (the caller's transaction goes on unharmed)."""
    rules.check_key(key)
    rules.check_event_type(type)
    rules.check_payload(payload)
    _at(at_ms, "at_ms")
    rules.check_filter_value(model, "model")
    rules.check_filter_value(experiment_id, "experiment_id")
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    lock_events(conn, exclusive=False)
    stmt = (_insert(conn, E).values(key=key, type=type, at=at_ms, experiment_id=experiment_id,
                                    model=model, payload=body)
            .on_conflict_do_nothing(index_elements=["key"]))
    if conn.dialect.name == "postgresql":
        seq = conn.execute(stmt.returning(E.c.seq)).scalar_one_or_none()
        return None if seq is None else int(seq)
    # SQLite before 3.35 has no RETURNING: the row count says whether it was inserted,
    # and the rowid is the seq (an INTEGER PRIMARY KEY).
    res = conn.execute(stmt)
    return int(res.lastrowid) if res.rowcount == 1 else None


def insert_delivery(conn: Connection, *, source: str, event_seq: int, event_type: str,
                    url: str, secret: str, format: str, now_ms: int,
                    subscription_id: str | None = None) -> str | None:
    """A pending delivery, due now; its id, or None if ``source`` already has one for the
    event.  Values are checked by the callers."""
    did = uuid.uuid4().hex
    stmt = (_insert(conn, D).values(
        id=did, source=source, subscription_id=subscription_id, event_seq=event_seq,
        event_type=event_type, url=url, secret=secret, format=format, state="pending",
        attempts=0, next_at=now_ms, created_at=now_ms)
        .on_conflict_do_nothing(index_elements=["source", "event_seq"]))
    if conn.dialect.name == "postgresql":
        return conn.execute(stmt.returning(D.c.id)).scalar_one_or_none()
    return did if conn.execute(stmt).rowcount == 1 else None  # as in emit


def enqueue_direct(conn: Connection, *, source: str, event_seq: int, url: str, secret: str,
                   format: str = "json", now_ms: int) -> str | None:
    """Deliver event ``event_seq`` to a one-off target (an alert rule's ``notify``): a
    pending delivery in the caller's transaction, sent by the next dispatch like any
    other; its id, or None when ``source`` already has a delivery of this event."""
    rules.check_text_field(source, "source")
    rules.check_int(event_seq, "event_seq", 1, 2**62)
    rules.check_url(url)
    rules.check_secret(secret)
    rules.check_format(format)
    _at(now_ms, "now_ms")
    kind = conn.execute(sa.select(E.c.type).where(E.c.seq == event_seq)).scalar_one_or_none()
    if kind is None:
        from ..errors import NotFound

        raise NotFound(f"no event #{event_seq} to deliver", event_seq=event_seq)
    return insert_delivery(conn, source=source, event_seq=event_seq, event_type=kind, url=url,
                           secret=secret, format=format, now_ms=now_ms)
