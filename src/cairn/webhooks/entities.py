"""The values the webhooks API returns: events, subscriptions, deliveries, dispatch stats.

Rows never leave :mod:`.repo`; these frozen values do.  A delivery's or a subscription's
secret is never in them, except the one :class:`Subscription` that ``subscribe`` returns
(its only chance to be seen).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Mapping


def iso(ms: int | None) -> str | None:
    """``ms`` since the epoch as ISO 8601 UTC with milliseconds (``...Z``)."""
    if ms is None:
        return None
    t = dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Event:
    """One of Cairn's events (docs/webhooks.md lists each type's payload)."""

    seq: int
    key: str
    type: str
    at: int  # ms since the epoch
    experiment_id: str | None
    model: str | None
    payload: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "key": self.key, "type": self.type, "at": iso(self.at),
                "at_ms": self.at, "experiment_id": self.experiment_id, "model": self.model,
                "payload": dict(self.payload)}


@dataclass(frozen=True, slots=True)
class Subscription:
    """Where to send which events: all types when ``events`` is empty, only those of
    ``experiment_id`` / ``model`` when set.  ``secret`` is set only on the value that
    :meth:`~cairn.webhooks.service.Webhooks.subscribe` returns."""

    id: str
    url: str
    events: tuple[str, ...]
    experiment_id: str | None
    model: str | None
    format: str
    created_by: str
    created_at: int
    secret: str | None = field(default=None, repr=False)

    def matches(self, event_type: str, experiment_id: str | None, model: str | None) -> bool:
        if self.events and event_type not in self.events:
            return False
        if self.experiment_id is not None and experiment_id != self.experiment_id:
            return False
        return self.model is None or model == self.model

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["events"] = list(self.events)
        out["created_at"] = iso(self.created_at)
        if self.secret is None:
            del out["secret"]
        return out


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event's delivery to one target: ``pending`` (due at ``next_at``), ``delivered``
    or ``dead`` (gave up after the dispatcher's ``max_attempts``)."""

    id: str
    source: str  # subscription:<id>, or what else asked for it (an alert rule's notify)
    subscription_id: str | None
    event_seq: int
    event_type: str
    url: str
    format: str
    state: str
    attempts: int
    next_at: int
    last_status: int | None
    last_error: str | None
    created_at: int
    delivered_at: int | None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for k in ("next_at", "created_at", "delivered_at"):
            out[k] = iso(out[k])
        return out


@dataclass(frozen=True, slots=True)
class DispatchStats:
    """What one :meth:`~cairn.webhooks.dispatch.Dispatcher.dispatch_once` did."""

    events: int = 0  # events it produced (from the audit log and the runs)
    queued: int = 0  # deliveries it made for subscriptions
    sent: int = 0  # deliveries it tried to send
    delivered: int = 0
    failed: int = 0  # tried, failed, will be retried
    dead: int = 0  # failed for the last time
    errors: tuple[str, ...] = ()  # steps that failed (the others still ran)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["errors"] = list(self.errors)
        return out
