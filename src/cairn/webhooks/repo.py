"""The SQL of events, subscriptions, deliveries and cursors (SQLAlchemy Core, SQLite and
PostgreSQL alike).  Rows become :mod:`.entities` values here and go no further."""

from __future__ import annotations

import json
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import NotFound
from ..store.sql.tables_monitoring import events as E
from ..store.sql.tables_monitoring import monitor_cursors as C
from ..store.sql.tables_monitoring import webhook_deliveries as D
from ..store.sql.tables_monitoring import webhook_subscriptions as S
from .entities import Delivery, Event, Subscription
from .events import _insert

# -- cursors -----------------------------------------------------------------------------


def start_cursor(conn: Connection, name: str, value: int) -> None:
    """Set cursor ``name`` to ``value`` unless it is set already."""
    conn.execute(_insert(conn, C).values(name=name, value=value)
                 .on_conflict_do_nothing(index_elements=["name"]))


def lock_cursor(conn: Connection, name: str, default: int) -> int:
    """Cursor ``name`` (started at ``default``), locked until the transaction ends so that
    two dispatchers advance it one after the other."""
    start_cursor(conn, name, default)
    return int(conn.execute(sa.select(C.c.value).where(C.c.name == name)
                            .with_for_update()).scalar_one())


def set_cursor(conn: Connection, name: str, value: int) -> None:
    conn.execute(sa.update(C).where(C.c.name == name, C.c.value < value).values(value=value))


def cursor(conn: Connection, name: str) -> int | None:
    return conn.execute(sa.select(C.c.value).where(C.c.name == name)).scalar_one_or_none()


# -- events ------------------------------------------------------------------------------


def to_event(row: Any) -> Event:
    return Event(int(row.seq), row.key, row.type, int(row.at), row.experiment_id, row.model,
                 json.loads(row.payload))


def events_after(conn: Connection, after_seq: int, limit: int, type: str | None = None
                 ) -> list[Event]:
    q = sa.select(E).where(E.c.seq > after_seq)
    if type is not None:
        q = q.where(E.c.type == type)
    return [to_event(r) for r in conn.execute(q.order_by(E.c.seq).limit(limit))]


def existing_keys(conn: Connection, keys: Iterable[str]) -> set[str]:
    keys = list(keys)
    found: set[str] = set()
    for i in range(0, len(keys), 500):
        found.update(conn.execute(sa.select(E.c.key).where(E.c.key.in_(keys[i:i + 500])))
                     .scalars())
    return found


# -- subscriptions -----------------------------------------------------------------------


def to_subscription(row: Any, secret: str | None = None) -> Subscription:
    flt = json.loads(row.filter)
    return Subscription(row.id, row.url, tuple(json.loads(row.events)),
                        flt.get("experiment_id"), flt.get("model"), row.format, row.created_by,
                        int(row.created_at), secret)


def insert_subscription(conn: Connection, sub: Subscription, secret: str) -> None:
    flt = {k: v for k, v in (("experiment_id", sub.experiment_id), ("model", sub.model))
           if v is not None}
    conn.execute(sa.insert(S).values(
        id=sub.id, url=sub.url, secret=secret, events=json.dumps(list(sub.events)),
        filter=json.dumps(flt, sort_keys=True), format=sub.format, created_by=sub.created_by,
        created_at=sub.created_at))


def live_subscriptions(conn: Connection) -> list[tuple[Subscription, str]]:
    """Every subscription not deleted, oldest first, with its secret."""
    rows = conn.execute(sa.select(S).where(S.c.deleted_at.is_(None))
                        .order_by(S.c.created_at, S.c.id))
    return [(to_subscription(r), r.secret) for r in rows]


def require_subscription(conn: Connection, sub_id: str) -> Subscription:
    row = conn.execute(sa.select(S).where(S.c.id == sub_id, S.c.deleted_at.is_(None))).first()
    if row is None:
        raise NotFound(f"no webhook subscription {sub_id!r}; `cairn webhooks ls` lists them",
                       id=sub_id)
    return to_subscription(row)


def delete_subscription(conn: Connection, sub_id: str, now: int) -> int:
    """Mark it deleted, and its pending deliveries dead; how many deliveries that stopped."""
    conn.execute(sa.update(S).where(S.c.id == sub_id).values(deleted_at=now))
    stopped = conn.execute(sa.update(D).where(D.c.subscription_id == sub_id,
                                              D.c.state == "pending")
                           .values(state="dead", claimed_until=None,
                                   last_error="the subscription was deleted"))
    return int(stopped.rowcount or 0)


# -- deliveries --------------------------------------------------------------------------


def to_delivery(row: Any) -> Delivery:
    return Delivery(row.id, row.source, row.subscription_id, int(row.event_seq),
                    row.event_type, row.url, row.format, row.state, int(row.attempts),
                    int(row.next_at), row.last_status, row.last_error, int(row.created_at),
                    None if row.delivered_at is None else int(row.delivered_at))


def deliveries(conn: Connection, state: str | None, limit: int,
               subscription_id: str | None = None) -> list[Delivery]:
    q = sa.select(D)
    if state is not None:
        q = q.where(D.c.state == state)
    if subscription_id is not None:
        q = q.where(D.c.subscription_id == subscription_id)
    q = q.order_by(D.c.created_at.desc(), D.c.event_seq.desc(), D.c.id).limit(limit)
    return [to_delivery(r) for r in conn.execute(q)]


def require_delivery(conn: Connection, delivery_id: str) -> Any:
    row = conn.execute(sa.select(D).where(D.c.id == delivery_id)).first()
    if row is None:
        raise NotFound(f"no webhook delivery {delivery_id!r}; `cairn webhooks deliveries` "
                       "lists them", id=delivery_id)
    return row


def delivered_pairs(conn: Connection, sources: list[str], first_seq: int
                    ) -> set[tuple[str, int]]:
    """(source, event_seq) of the deliveries from ``sources`` of events from ``first_seq``
    on (a range of the unique index on (source, event_seq) per source, never a scan)."""
    found: set[tuple[str, int]] = set()
    for i in range(0, len(sources), 200):
        rows = conn.execute(sa.select(D.c.source, D.c.event_seq).where(
            D.c.source.in_(sources[i:i + 200]), D.c.event_seq >= first_seq))
        found.update((r.source, int(r.event_seq)) for r in rows)
    return found


def due(conn: Connection, now: int, limit: int) -> list[str]:
    """Ids of pending deliveries due by ``now`` that no dispatcher holds, oldest first."""
    q = (sa.select(D.c.id).where(D.c.state == "pending", D.c.next_at <= now,
                                 sa.or_(D.c.claimed_until.is_(None), D.c.claimed_until < now))
         .order_by(D.c.next_at, D.c.created_at, D.c.id).limit(limit))
    return list(conn.execute(q).scalars())


def claim(conn: Connection, delivery_id: str, now: int, until: int) -> Any | None:
    """Take a due delivery until ``until``: its row, or None when another dispatcher took it
    first (the conditional UPDATE is what decides, never a read before it)."""
    took = conn.execute(sa.update(D).where(
        D.c.id == delivery_id, D.c.state == "pending", D.c.next_at <= now,
        sa.or_(D.c.claimed_until.is_(None), D.c.claimed_until < now))
        .values(claimed_until=until))
    if took.rowcount != 1:
        return None
    return conn.execute(sa.select(D).where(D.c.id == delivery_id)).first()


def finish(conn: Connection, delivery_id: str, claimed_until: int, values: dict[str, Any]) -> bool:
    """Record an attempt's outcome if this dispatcher still holds the delivery."""
    done = conn.execute(sa.update(D).where(D.c.id == delivery_id,
                                           D.c.claimed_until == claimed_until,
                                           D.c.state == "pending")
                        .values(claimed_until=None, **values))
    return done.rowcount == 1


# -- retention ---------------------------------------------------------------------------


def prune(conn: Connection, before: int, keep_after_seq: int) -> tuple[int, int]:
    """Delete the finished (delivered or dead) deliveries made before ``before`` of events
    at or below ``keep_after_seq`` (the fan-out looks at those above it again, and makes a
    delivery for each event it finds without one), then the events that happened before
    it, are at or below ``keep_after_seq`` and have no delivery left; how many of each
    went."""
    gone_d = conn.execute(sa.delete(D).where(D.c.state.in_(["delivered", "dead"]),
                                             D.c.created_at < before,
                                             D.c.event_seq <= keep_after_seq)).rowcount or 0
    kept = sa.select(D.c.event_seq).where(D.c.event_seq == E.c.seq).exists()
    gone_e = conn.execute(sa.delete(E).where(E.c.at < before, E.c.seq <= keep_after_seq,
                                             ~kept)).rowcount or 0
    return int(gone_d), int(gone_e)
