"""Webhook subscriptions, and what they received: :class:`Webhooks` acts as one user.

A subscription says where to POST which events (:data:`~.events.EVENT_TYPES`, all by
default; only an experiment's or a model's when filtered) and the secret that signs them.
Making and deleting one is recorded in the registry's audit log, without the secret and
with the URL reduced to its origin and a fingerprint (a chat webhook's URL is itself a
credential).  Deliveries are made and sent by :class:`~.dispatch.Dispatcher`.
"""

from __future__ import annotations

import hashlib
import secrets as _secrets
import uuid
from typing import Any, Iterable
from urllib.parse import urlsplit

import sqlalchemy as sa

from .. import clock
from ..errors import Conflict, NotFound
from ..store.sql.tables_monitoring import webhook_deliveries as D
from ..store.validation import text_checked
from . import produce, repo, rules
from .base import IndexedService
from .entities import Delivery, Event, Subscription


MIN_RETENTION_MS = 24 * 3600 * 1000  # prune keeps at least a day: receivers may be behind


def url_for_audit(url: str) -> dict[str, str]:
    """What the audit log keeps of a URL: its origin and a SHA-256 fingerprint."""
    p = urlsplit(url)
    origin = f"{p.scheme}://{p.netloc.rpartition('@')[2]}"  # never the user:password@
    return {"origin": origin, "sha256": hashlib.sha256(url.encode("utf-8")).hexdigest()}


@text_checked()
class Webhooks(IndexedService):
    """Subscriptions, events and deliveries on ``store`` (or a :class:`~cairn.Client`'s
    store) as ``user``.  A server's client is refused for now."""

    def subscribe(self, url: str, *, events: Iterable[str] | str | None = (),
                  experiment_id: str | None = None, model: str | None = None,
                  format: str = "json", secret: str | None = None) -> Subscription:
        """Send ``events`` (all types if empty) to ``url``, signed with ``secret`` (one is
        generated if None).  The returned value is the only one that shows the secret."""
        rules.check_url(url)
        kinds = rules.check_event_types(events)
        rules.check_filter_value(experiment_id, "experiment_id")
        rules.check_filter_value(model, "model")
        rules.check_format(format)
        if experiment_id is not None:
            experiment_id = self._experiment(experiment_id)
        secret = _secrets.token_hex(32) if secret is None else rules.check_secret(secret)
        now = clock.now_ms()
        sub = Subscription(uuid.uuid4().hex, url, kinds, experiment_id, model, format,
                           self.user, now)
        from ..registry import repo as registry_repo

        with self.session(write=True) as conn:
            produce.start(conn, now)  # events from now on are produced for it
            repo.insert_subscription(conn, sub, secret)
            registry_repo.record(conn, self.user, "webhook.subscribe", f"webhook:{sub.id}",
                                 None, {**url_for_audit(url), "events": list(kinds),
                                        "experiment_id": experiment_id, "model": model,
                                        "format": format}, now)
        return Subscription(sub.id, url, kinds, experiment_id, model, format, self.user, now,
                            secret)

    def _experiment(self, ref: str) -> str:
        """The id of the experiment with id or name ``ref`` (NotFound if there is none)."""
        try:
            return self.client.get_experiment(ref).id
        except NotFound:
            exp = self.client.get_experiment_by_name(ref)
            if exp is None:
                raise NotFound(f"no experiment with id or name {ref!r} to filter on",
                               experiment_id=ref) from None
            return exp.id

    def subscriptions(self) -> list[Subscription]:
        """Every subscription, oldest first (without secrets)."""
        with self.session() as conn:
            return [s for s, _ in repo.live_subscriptions(conn)]

    def get_subscription(self, subscription_id: str) -> Subscription:
        rules.check_id(subscription_id, "subscription")
        with self.session() as conn:
            return repo.require_subscription(conn, subscription_id)

    def unsubscribe(self, subscription_id: str) -> Subscription:
        """Delete a subscription; its pending deliveries become dead (never sent)."""
        rules.check_id(subscription_id, "subscription")
        from ..registry import repo as registry_repo

        now = clock.now_ms()
        with self.session(write=True) as conn:
            sub = repo.require_subscription(conn, subscription_id)
            stopped = repo.delete_subscription(conn, sub.id, now)
            registry_repo.record(conn, self.user, "webhook.unsubscribe", f"webhook:{sub.id}",
                                 {**url_for_audit(sub.url), "events": list(sub.events),
                                  "experiment_id": sub.experiment_id, "model": sub.model,
                                  "format": sub.format}, {"pending_stopped": stopped}, now)
        return sub

    def events(self, after_seq: int = 0, type: str | None = None,
               limit: int = 100) -> list[Event]:
        """Events after ``after_seq``, oldest first (page on with the last one's seq)."""
        rules.check_int(after_seq, "after_seq", 0, 2**62)
        if type is not None:
            rules.check_event_type(type)
        rules.check_limit(limit)
        with self.session() as conn:
            return repo.events_after(conn, after_seq, limit, type)

    def deliveries(self, state: str | None = None, limit: int = 100,
                   subscription_id: str | None = None) -> list[Delivery]:
        """Deliveries, newest first: ``state`` pending, delivered or dead (the dead letters)."""
        rules.check_state(state)
        rules.check_limit(limit)
        if subscription_id is not None:
            rules.check_id(subscription_id, "subscription")
        with self.session() as conn:
            return repo.deliveries(conn, state, limit, subscription_id)

    def get_delivery(self, delivery_id: str) -> Delivery:
        rules.check_id(delivery_id, "delivery")
        with self.session() as conn:
            return repo.to_delivery(repo.require_delivery(conn, delivery_id))

    def redeliver(self, delivery_id: str) -> Delivery:
        """Send a dead (or delivered) delivery again from its first attempt, at the next
        dispatch; refused while it is pending, and when its subscription is deleted."""
        rules.check_id(delivery_id, "delivery")
        now = clock.now_ms()
        with self.session(write=True) as conn:
            row = repo.require_delivery(conn, delivery_id)
            if row.state == "pending":
                raise Conflict(f"delivery {delivery_id} is pending already (attempt "
                               f"{row.attempts + 1} is due at {row.next_at})", id=delivery_id)
            if row.subscription_id is not None:
                repo.require_subscription(conn, row.subscription_id)
            conn.execute(sa.update(D).where(D.c.id == delivery_id).values(
                state="pending", attempts=0, next_at=now, claimed_until=None,
                delivered_at=None))
            return repo.to_delivery(repo.require_delivery(conn, delivery_id))

    def prune(self, older_than_ms: int) -> dict[str, int]:
        """Forget what is older than ``older_than_ms`` (at least a day): delivered and dead
        deliveries, and the events no delivery still needs.  Pending deliveries, and
        events the fan-out may still look at, stay.  Audited as ``events.prune``."""
        from ..registry import repo as registry_repo
        from .dispatch import FANOUT, FANOUT_LOOKBACK

        rules.check_int(older_than_ms, "older_than_ms", MIN_RETENTION_MS, 2**62)
        now = clock.now_ms()
        with self.session(write=True) as conn:
            fanned = repo.cursor(conn, FANOUT) or 0
            deliveries, events = repo.prune(conn, now - older_than_ms,
                                            fanned - FANOUT_LOOKBACK)
            out = {"deliveries": deliveries, "events": events}
            registry_repo.record(conn, self.user, "events.prune", "events", None,
                                 {"older_than_ms": older_than_ms, **out}, now)
        return out

    def cursors(self) -> dict[str, Any]:
        """Where the producers and the fan-out have got to (None: not started)."""
        from .dispatch import FANOUT

        with self.session() as conn:
            return {n: repo.cursor(conn, n) for n in (produce.AUDIT, produce.RUNS, FANOUT)}
