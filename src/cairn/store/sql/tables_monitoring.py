"""Monitoring tables (revision 0009_monitoring): alert rules and their states, the actions
an alert took, Cairn's events, webhook subscriptions and their deliveries.

Not derived from journals, so ``cairn reindex`` never touches them.  Owned by
:mod:`cairn.monitoring` (alerts) and :mod:`cairn.webhooks` (events, subscriptions,
deliveries), which use SQLAlchemy Core only (SQLite and PostgreSQL alike).  Uniqueness
constraints, not locks, make two monitors or dispatchers running at once safe: the second
insert of a claim fails and its writer knows it lost.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text, UniqueConstraint

from .tables import metadata

# Each `cairn monitor rules apply` stores a new version: the YAML as written and the rules
# as parsed (JSON).  The newest version is the active one; a file that does not parse
# stores nothing, so the previous rules stay active.
alert_rule_sets = Table(
    "alert_rule_sets", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("source", Text, nullable=False),  # the YAML text
    Column("rules", Text, nullable=False),  # JSON list of parsed rules
    Column("applied_by", String(256), nullable=False),
    Column("applied_at", BigInteger, nullable=False),
)

# One alert per (rule, model): its state (inactive | pending | firing | resolved), since when
# the condition has held, and how many times it has fired (firing n claims actions for n).
alert_states = Table(
    "alert_states", metadata,
    Column("rule", String(128), primary_key=True),
    Column("model", String(256), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("active_since", BigInteger),  # when the condition began to hold (pending from then)
    Column("changed_at", BigInteger, nullable=False),
    Column("firing", Integer, nullable=False, default=0),  # firings so far
    Column("value", Text, nullable=False, default="{}"),  # JSON: the values last observed
)

# Every change of an alert's state, in order.
alert_history = Table(
    "alert_history", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule", String(128), nullable=False),
    Column("model", String(256), nullable=False),
    Column("from_state", String(16), nullable=False),
    Column("to_state", String(16), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("firing", Integer, nullable=False),
    Column("value", Text, nullable=False, default="{}"),  # JSON
    Column("actor", String(256), nullable=False),
    Index("ix_alert_history_alert", "rule", "model", "at"),
)

# An action of a firing, claimed by the monitor that inserted its row first: two monitors
# evaluating at once take each action once.
alert_actions = Table(
    "alert_actions", metadata,
    Column("rule", String(128), primary_key=True),
    Column("model", String(256), primary_key=True),
    Column("firing", Integer, primary_key=True, autoincrement=False),
    Column("action", Integer, primary_key=True, autoincrement=False),  # its index in the rule
    Column("kind", String(32), nullable=False),  # notify | rollback | promote | abort
    Column("claimed_by", String(256), nullable=False),
    Column("claimed_at", BigInteger, nullable=False),
    Column("done_at", BigInteger),
    Column("result", Text),  # JSON: what it did, or its error
)

# Cairn's events (run finished, model version created, alias moved, alert firing, ...).
# ``key`` names the fact the event reports (``audit:<seq>``, ``run:<id>:FINISHED``), so that
# two producers reporting the same fact store one event.
events = Table(
    "events", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False),
    Column("type", String(64), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("experiment_id", String(64)),  # for subscriptions filtered by experiment
    Column("model", String(256)),  # for subscriptions filtered by model name
    Column("payload", Text, nullable=False),  # JSON
    UniqueConstraint("key", name="uq_events_key"),
    Index("ix_events_type", "type", "seq"),
)

# A webhook: where to send which events, signed with ``secret``.
webhook_subscriptions = Table(
    "webhook_subscriptions", metadata,
    Column("id", String(32), primary_key=True),
    Column("url", Text, nullable=False),
    Column("secret", Text, nullable=False),
    Column("events", Text, nullable=False, default="[]"),  # JSON list of types; [] = all
    Column("filter", Text, nullable=False, default="{}"),  # JSON: experiment_id, model
    Column("format", String(16), nullable=False, default="json"),  # json | slack
    Column("created_by", String(256), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("deleted_at", BigInteger),
)

# One delivery of an event to one target, retried with backoff until delivered or dead.
# ``source`` names what asked for it (``subscription:<id>``, or ``rule:<name>:<action>`` for
# an alert rule's own notify), so that an event goes to a target once; the target (url,
# secret, format) is copied from the source when the delivery is made.
webhook_deliveries = Table(
    "webhook_deliveries", metadata,
    Column("id", String(32), primary_key=True),
    Column("source", String(200), nullable=False),
    Column("subscription_id", String(32)),  # None for a rule's notify
    Column("event_seq", Integer, nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("url", Text, nullable=False),
    Column("secret", Text, nullable=False),
    Column("format", String(16), nullable=False),  # json | slack
    Column("state", String(16), nullable=False),  # pending | delivered | dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", BigInteger, nullable=False),
    Column("claimed_until", BigInteger),  # a dispatcher holds it until then
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger),
    UniqueConstraint("source", "event_seq", name="uq_webhook_deliveries_event"),
    Index("ix_webhook_deliveries_due", "state", "next_at"),
)

# Where a producer or dispatcher has got to in a source (the audit log's seq, the events).
monitor_cursors = Table(
    "monitor_cursors", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

MONITORING_TABLES = (alert_rule_sets, alert_states, alert_history, alert_actions, events,
                     webhook_subscriptions, webhook_deliveries, monitor_cursors)
