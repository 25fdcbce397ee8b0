"""Rows of the alert tables (revision 0009_monitoring) in and out, SQLAlchemy Core only.

Every write takes the caller's connection, so a state change, its history row, its audit
event and its webhook event commit together.  Claims and state changes are
compare-and-set: an insert that does nothing on conflict, an update that names the state
it replaces; the caller learns from the row count whether it won.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..store.sql.tables_monitoring import alert_actions as A
from ..store.sql.tables_monitoring import alert_history as H
from ..store.sql.tables_monitoring import alert_rule_sets as R
from ..store.sql.tables_monitoring import alert_states as S
from .rules import Rule

STATES = ("inactive", "pending", "firing", "resolved")


@dataclass(frozen=True, slots=True)
class RuleSet:
    """One applied version of the rules; the newest is the active one."""

    version: int
    rules: tuple[Rule, ...]
    applied_by: str
    applied_at: int
    source: str

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    def to_dict(self, secrets: bool = False) -> dict[str, Any]:
        return {"version": self.version, "applied_by": self.applied_by,
                "applied_at": self.applied_at,
                "rules": [r.to_dict(secrets) for r in self.rules]}


@dataclass(frozen=True, slots=True)
class AlertState:
    """An alert: one rule on one model, and where it stands."""

    rule: str
    model: str
    state: str                       # inactive | pending | firing | resolved
    active_since: int | None         # when the condition began to hold
    changed_at: int
    firing: int                      # firings so far (the current one while firing)
    value: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "model": self.model, "state": self.state,
                "active_since": self.active_since, "changed_at": self.changed_at,
                "firing": self.firing, "value": dict(self.value)}


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of an alert's state (a row of its history)."""

    rule: str
    model: str
    from_state: str
    to_state: str
    at: int
    firing: int
    value: Mapping[str, Any] = field(default_factory=dict)
    actor: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "model": self.model, "from": self.from_state,
                "to": self.to_state, "at": self.at, "firing": self.firing,
                "value": dict(self.value), "actor": self.actor}


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """An action a firing took (or is taking: ``done_at`` None), and what came of it."""

    rule: str
    model: str
    firing: int
    action: int
    kind: str
    claimed_by: str
    claimed_at: int
    done_at: int | None
    result: Mapping[str, Any] | None

    @property
    def ok(self) -> bool:
        return self.result is not None and "error" not in self.result

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "model": self.model, "firing": self.firing,
                "action": self.action, "kind": self.kind, "claimed_by": self.claimed_by,
                "claimed_at": self.claimed_at, "done_at": self.done_at,
                "result": None if self.result is None else dict(self.result)}


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=str)


def _inserted(conn: Connection, stmt: Any, column: Any) -> bool:
    """Run an INSERT ... ON CONFLICT DO NOTHING; whether it inserted its row.  SQLite
    before 3.35 (the one some distributions' Pythons bundle) has no RETURNING: there the
    row count says, as in :func:`cairn.webhooks.events.emit`."""
    if conn.dialect.name == "postgresql":
        return conn.execute(stmt.returning(column)).scalar_one_or_none() is not None
    return bool(conn.execute(stmt).rowcount == 1)


def _insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT DO NOTHING."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


# -- rule sets --------------------------------------------------------------------------
def _ruleset(row: Any) -> RuleSet:
    rules = tuple(Rule.from_dict(d) for d in json.loads(row.rules))
    return RuleSet(row.version, rules, row.applied_by, row.applied_at, row.source)


def latest_ruleset(conn: Connection) -> RuleSet | None:
    row = conn.execute(sa.select(R).order_by(R.c.version.desc()).limit(1)).first()
    return None if row is None else _ruleset(row)


def ruleset(conn: Connection, version: int) -> RuleSet | None:
    row = conn.execute(sa.select(R).where(R.c.version == version)).first()
    return None if row is None else _ruleset(row)


def insert_ruleset(conn: Connection, rules: list[Rule], source: str, user: str,
                   now: int) -> RuleSet | None:
    """The next version, or None when another writer took that number first."""
    top = conn.execute(sa.select(sa.func.max(R.c.version))).scalar()
    version = int(top or 0) + 1
    stmt = (_insert(conn, R).values(version=version, source=source,
                                    rules=_dumps([r.to_dict() for r in rules]),
                                    applied_by=user, applied_at=now)
            .on_conflict_do_nothing(index_elements=["version"]))
    if not _inserted(conn, stmt, R.c.version):
        return None
    return RuleSet(version, tuple(rules), user, now, source)


# -- states -----------------------------------------------------------------------------
def _state(row: Any) -> AlertState:
    return AlertState(row.rule, row.model, row.state, row.active_since, row.changed_at,
                      row.firing, json.loads(row.value or "{}"))


def state(conn: Connection, rule: str, model: str) -> AlertState | None:
    row = conn.execute(sa.select(S).where(S.c.rule == rule, S.c.model == model)).first()
    return None if row is None else _state(row)


def states(conn: Connection, model: str | None = None) -> list[AlertState]:
    q = sa.select(S).order_by(S.c.model, S.c.rule)
    if model is not None:
        q = q.where(sa.or_(S.c.model == model, S.c.model.startswith(model + "@",
                                                                    autoescape=True)))
    return [_state(r) for r in conn.execute(q)]


def put_state(conn: Connection, old: AlertState | None, new: AlertState) -> bool:
    """Write ``new`` if the alert still is ``old`` (None: no row yet); whether it did."""
    values = {"state": new.state, "active_since": new.active_since,
              "changed_at": new.changed_at, "firing": new.firing, "value": _dumps(new.value)}
    if old is None:
        stmt = (_insert(conn, S).values(rule=new.rule, model=new.model, **values)
                .on_conflict_do_nothing(index_elements=["rule", "model"]))
        return _inserted(conn, stmt, S.c.rule)
    result = conn.execute(S.update().where(
        S.c.rule == old.rule, S.c.model == old.model, S.c.state == old.state,
        S.c.changed_at == old.changed_at, S.c.firing == old.firing).values(**values))
    return bool(result.rowcount == 1)


def add_history(conn: Connection, t: Transition) -> None:
    conn.execute(H.insert().values(rule=t.rule, model=t.model, from_state=t.from_state,
                                   to_state=t.to_state, at=t.at, firing=t.firing,
                                   value=_dumps(t.value), actor=t.actor))


def history(conn: Connection, rule: str | None = None, model: str | None = None,
            limit: int = 100) -> list[Transition]:
    """Changes, newest first."""
    q = sa.select(H).order_by(H.c.id.desc()).limit(limit)
    if rule is not None:
        q = q.where(H.c.rule == rule)
    if model is not None:
        q = q.where(sa.or_(H.c.model == model, H.c.model.startswith(model + "@",
                                                                    autoescape=True)))
    return [Transition(r.rule, r.model, r.from_state, r.to_state, r.at, r.firing,
                       json.loads(r.value or "{}"), r.actor) for r in conn.execute(q)]


# -- actions ----------------------------------------------------------------------------
def claim(conn: Connection, rule: str, model: str, firing: int, action: int, kind: str,
          user: str, now: int) -> bool:
    """Whether this caller took the action (its row did not exist)."""
    stmt = (_insert(conn, A).values(rule=rule, model=model, firing=firing, action=action,
                                    kind=kind, claimed_by=user, claimed_at=now)
            .on_conflict_do_nothing(index_elements=["rule", "model", "firing", "action"]))
    return _inserted(conn, stmt, A.c.rule)


def retake(conn: Connection, rule: str, model: str, firing: int, action: int, user: str,
           now: int, lease_ms: int) -> bool:
    """Whether this caller took over an action claimed more than ``lease_ms`` ago and never
    finished: its monitor died between the claim and the result."""
    result = conn.execute(A.update().where(
        A.c.rule == rule, A.c.model == model, A.c.firing == firing, A.c.action == action,
        A.c.done_at.is_(None), A.c.claimed_at < now - lease_ms,
    ).values(claimed_by=user, claimed_at=now))
    return bool(result.rowcount == 1)


def finish(conn: Connection, rule: str, model: str, firing: int, action: int,
           result: Mapping[str, Any], now: int) -> None:
    conn.execute(A.update().where(A.c.rule == rule, A.c.model == model, A.c.firing == firing,
                                  A.c.action == action)
                 .values(done_at=now, result=_dumps(dict(result))))


def actions(conn: Connection, rule: str | None = None, model: str | None = None,
            limit: int = 100) -> list[ActionRecord]:
    """Actions taken, newest first."""
    q = sa.select(A).order_by(A.c.claimed_at.desc(), A.c.firing.desc(),
                              A.c.action.desc()).limit(limit)
    if rule is not None:
        q = q.where(A.c.rule == rule)
    if model is not None:
        q = q.where(sa.or_(A.c.model == model, A.c.model.startswith(model + "@",
                                                                    autoescape=True)))
    return [ActionRecord(r.rule, r.model, r.firing, r.action, r.kind, r.claimed_by,
                         r.claimed_at, r.done_at,
                         None if r.result is None else json.loads(r.result))
            for r in conn.execute(q)]
