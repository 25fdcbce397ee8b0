"""Alerts: rules applied in versions, evaluated into states, and the actions a firing takes.

::

    from cairn.monitoring.alerts import Alerts

    alerts = Alerts(client)                  # a local store or PostgreSQL, acting as its user
    alerts.apply(open("alerts.yaml").read())  # a new version of the rules (audited)
    alerts.evaluate()                        # judge every rule now: the state changes
    alerts.act()                             # the actions of firing alerts, each taken once

An alert is one rule on one model.  Its state goes inactive -> pending (the condition
holds) -> firing (it held for the rule's ``for``) -> resolved (it no longer holds), and
back to pending when it holds again; a rule with ``for: 0`` fires at once.  Every change
is one transaction: the state (a compare-and-set on the state it replaces, so two
monitors evaluating at once make each change once), a history row, an audit event
(``alert.pending``, ``alert.firing``, ...) and, for firing and resolved, an event for
webhooks.  Each action of a firing is claimed by inserting its row first: whoever inserts
it takes the action, the other monitor moves on.
"""

from __future__ import annotations

import datetime as dt
import logging
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .. import clock
from ..errors import CairnError, InvalidArgument, NotFound
from ..services import StoreService
from ..store.base import Indexed
from . import alert_actions as acts
from . import alert_store as db
from .alert_facts import Facts, FactSource, Gatherer
from .alert_store import ActionRecord, AlertState, RuleSet, Transition
from .rules import Action, Rule, parse_rules

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

log = logging.getLogger("cairn.monitoring.alerts")

AUDIT_TARGET = "alerts:rules"
MAX_LIMIT = 10_000
# An action claimed this long ago and never finished is taken over by the next monitor:
# the one that claimed it died (a registry change takes well under a second).
ACTION_LEASE_S = 300


def when_ms(now: Any) -> int:
    """``now`` (None: the clock; a datetime, naive as UTC; or ms) as ms since the epoch."""
    if now is None:
        return clock.now_ms()
    if isinstance(now, dt.datetime):
        if now.tzinfo is None:
            now = now.replace(tzinfo=dt.timezone.utc)
        return int(now.timestamp() * 1000)
    if isinstance(now, (int, float)) and not isinstance(now, bool) and 0 <= now < 2**62:
        return int(now)
    raise InvalidArgument(f"now must be a datetime or milliseconds since the epoch, got {now!r}")


def _limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= MAX_LIMIT:
        raise InvalidArgument(f"limit must be a whole number from 1 to {MAX_LIMIT}, got {limit!r}")
    return limit


def _rule_name(rule: Any) -> str | None:
    if rule is None:
        return None
    from ..store.validation import check_text

    if not isinstance(rule, str) or not rule or len(rule) > 128:
        raise InvalidArgument(f"rule must be a rule's name, got {rule!r}")
    return check_text(rule, "rule")


def _target(rule: str, model: str) -> str:
    return f"alert:{rule}/{model}"


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Fact values as JSON takes them (NaN and infinities are refused by the store)."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            v = None
        out[k] = v
    return out


class Alerts(StoreService):
    """Alert rules, their states and actions on ``store`` (one with an SQL index: a local
    store or PostgreSQL), acting as ``user``.  ``facts`` replaces how facts are gathered
    (``facts(rule, now_ms) -> Facts``): tests and dry runs use it."""

    def __init__(self, store: Any = None, user: str | None = None, *,
                 facts: FactSource | None = None) -> None:
        StoreService.__init__(self, store, user)
        self._facts = facts

    @property
    def store(self) -> Any:
        from ..store.http import HttpStore

        store = self._backend
        if isinstance(store, HttpStore):
            raise InvalidArgument("alert rules are not supported over a server yet: run "
                                  "`cairn monitor` with the server's own store (its directory "
                                  "or its postgresql:// URL)")
        if not isinstance(store, Indexed):
            raise InvalidArgument(f"alert rules need a store with a database (a local store "
                                  f"directory or PostgreSQL), not {store.uri}")
        store.open()
        return store

    def session(self, write: bool = False) -> AbstractContextManager[Connection]:
        return self.store.index.session(write=write)

    def registry(self) -> Any:
        from ..services import registry_for

        return registry_for(self.client, self.user)

    # -- rules -----------------------------------------------------------------------
    def apply(self, yaml_text: str) -> RuleSet:
        """Check ``yaml_text`` and store it as the next version of the rules, which become
        the active ones.  Rules that do not parse raise (with line and column) and store
        nothing: the previous rules stay active."""
        rules = parse_rules(yaml_text)
        for _ in range(20):
            now = clock.now_ms()
            with self.session(write=True) as conn:
                old = db.latest_ruleset(conn)
                new = db.insert_ruleset(conn, rules, yaml_text, self.user, now)
                if new is None:
                    continue  # another apply took the number: take the next one
                from ..registry import audit

                audit.append(conn, self.user, "alert.rules_applied", AUDIT_TARGET,
                             None if old is None else {"version": old.version},
                             {"version": new.version, "rules": [r.name for r in rules]}, now)
                return new
        raise CairnError("could not store the rules: other writers kept taking the version "
                         "number; try again")

    def ruleset(self, version: int | None = None) -> RuleSet | None:
        """The active rules (the newest version), or version ``version``; None if none."""
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)
                                    or version < 1):
            raise InvalidArgument(f"version must be a whole number from 1, got {version!r}")
        with self.session() as conn:
            if version is None:
                return db.latest_ruleset(conn)
            found = db.ruleset(conn, version)
        if found is None:
            raise NotFound(f"no version {version} of the alert rules", version=version)
        return found

    def rules(self) -> list[Rule]:
        rs = self.ruleset()
        return [] if rs is None else list(rs.rules)

    # -- reading ---------------------------------------------------------------------
    def _model_filter(self, model: str | None) -> str | None:
        if model is None:
            return None
        if not isinstance(model, str) or not model.strip() or len(model) > 300:
            raise InvalidArgument(f"model must be a model's name or reference, got {model!r}")
        from ..store.validation import check_text

        text = check_text(model, "model").strip().removeprefix("models:/")
        name, at, sel = text.partition("@")
        from ..registry.entities import Stage

        if at and Stage.is_stage(sel):
            # Rules store a stage as they normalise it (fraud@production): so must the
            # filter, or fraud@Production finds none of that model's alerts.
            return f"{name}@{Stage.parse(sel).value.lower()}"
        return text

    def states(self, model: str | None = None) -> list[AlertState]:
        """Every alert's state (of ``model``'s rules: ``fraud`` or ``fraud@production``)."""
        with self.session() as conn:
            return db.states(conn, self._model_filter(model))

    def history(self, rule: str | None = None, model: str | None = None,
                limit: int = 100) -> list[Transition]:
        """State changes, newest first."""
        with self.session() as conn:
            return db.history(conn, _rule_name(rule), self._model_filter(model), _limit(limit))

    def actions(self, rule: str | None = None, model: str | None = None,
                limit: int = 100) -> list[ActionRecord]:
        """Actions taken by firings, newest first."""
        with self.session() as conn:
            return db.actions(conn, _rule_name(rule), self._model_filter(model), _limit(limit))

    # -- evaluating ------------------------------------------------------------------
    def facts(self, rule: Rule, now: Any = None) -> Facts:
        """The facts ``rule`` is judged on at ``now``."""
        source = self._facts or Gatherer(self.client, self.registry())
        return source(rule, when_ms(now))

    def judge(self, rule: Rule, now_ms: int, source: FactSource) -> dict[str, Any]:
        """What the rule's condition says at ``now_ms``: ``result`` True, False or None
        (unknown), with the facts, the versions judged and the notes."""
        cond = rule.parsed()
        try:
            facts = source(rule, now_ms)
        except CairnError as exc:
            facts = Facts()
            facts.note(f"facts could not be gathered: {exc.message}")
        except Exception as exc:  # noqa: BLE001 - one rule's broken input must not stop the rest
            # (a corrupt log segment, a library's own error): logged with its traceback and
            # shown in the alert's notes; the condition is unknown, so nothing fires on it.
            log.exception("gathering the facts of alert rule %s on %s failed", rule.name,
                          rule.model)
            facts = Facts()
            facts.note(f"facts could not be gathered: {type(exc).__name__}: {exc}")
        result = cond.evaluate(facts.values)
        if rule.min_requests and (facts.requests or 0) < rule.min_requests:
            facts.note(f"the window holds {facts.requests or 0} of the {rule.min_requests} "
                       "requests the rule waits for")
            result = None
        missing = cond.missing(facts.values)
        return {"result": result, "facts": _plain(facts.values), "missing": missing,
                "versions": facts.versions, "requests": facts.requests,
                "notes": facts.notes, "evaluated_at": now_ms,
                "shown": cond.shown(facts.values)}

    def evaluate(self, now: Any = None) -> list[Transition]:
        """Judge every active rule at ``now`` (default: the clock) and store the changes of
        state; the changes made by this call, in order."""
        now_ms = when_ms(now)
        rs = self.ruleset()
        if rs is None:
            return []
        source = self._facts or Gatherer(self.client, self.registry())
        out: list[Transition] = []
        for rule in rs.rules:
            value = self.judge(rule, now_ms, source)
            t = self._step(rule, value, now_ms)
            if t is not None:
                out.append(t)
        out.extend(self._retire(rs, now_ms))
        return out

    def _retire(self, rs: RuleSet, now: int) -> list[Transition]:
        """Alerts of rules no longer applied (or now on another model) stop: a pending one
        goes inactive, a firing one resolves, so nothing fires forever unseen."""
        current = {(r.name, r.model) for r in rs.rules}
        with self.session() as conn:
            stale = [s for s in db.states(conn) if (s.rule, s.model) not in current
                     and s.state in ("pending", "firing")]
        out = []
        for old in stale:
            value: dict[str, Any] = {
                "result": None, "facts": {}, "missing": [], "versions": {}, "requests": None,
                "evaluated_at": now, "shown": "",
                "notes": [f"rule {old.rule!r} on {old.model} is no longer applied"]}
            to = "resolved" if old.state == "firing" else "inactive"
            new = replace(old, state=to, active_since=None, changed_at=now, value=value)
            with self.session(write=True) as conn:
                if not db.put_state(conn, old, new):
                    continue
                t = Transition(old.rule, old.model, old.state, to, now, old.firing, value,
                               self.user)
                db.add_history(conn, t)
                from ..registry import audit

                audit.append(conn, self.user, f"alert.{to}", _target(old.rule, old.model),
                             {"state": old.state, "firing": old.firing},
                             {"state": to, "firing": old.firing, "reason": value["notes"][0]},
                             now)
                if to == "resolved":
                    acts.emit_event(conn, None, new, value, now)
            out.append(t)
        return out

    def _step(self, rule: Rule, value: dict[str, Any], now: int) -> Transition | None:
        active = value["result"] is True
        with self.session(write=True) as conn:
            old = db.state(conn, rule.name, rule.model)
            cur = old or AlertState(rule.name, rule.model, "inactive", None, now, 0)
            new = _next(rule, cur, active, now)
            new = replace(new, value=value)
            if new.state == cur.state:
                db.put_state(conn, old, new)  # the values seen; the state stays
                return None
            if not db.put_state(conn, old, new):
                return None  # another monitor changed it first
            t = Transition(rule.name, rule.model, cur.state, new.state, now, new.firing,
                           value, self.user)
            db.add_history(conn, t)
            from ..registry import audit

            audit.append(conn, self.user, f"alert.{new.state}", _target(rule.name, rule.model),
                         {"state": cur.state, "firing": cur.firing},
                         {"state": new.state, "firing": new.firing,
                          "condition": rule.condition, "values": value["facts"]}, now)
            if new.state in ("firing", "resolved"):
                acts.emit_event(conn, rule, new, value, now)
        log.info("alert %s on %s: %s -> %s (%s)", rule.name, rule.model, cur.state, new.state,
                 value["shown"])
        return t

    # -- acting ----------------------------------------------------------------------
    def act(self, now: Any = None) -> list[ActionRecord]:
        """Take the actions of every firing alert that no monitor has claimed yet; what
        this call did (an action that failed has ``result["error"]``)."""
        now_ms = when_ms(now)
        rs = self.ruleset()
        if rs is None:
            return []
        with self.session() as conn:
            firing = [s for s in db.states(conn) if s.state == "firing"]
        out: list[ActionRecord] = []
        for st in firing:
            rule = rs.rule(st.rule)
            if rule is None or rule.model != st.model:
                continue
            for i, action in enumerate(rule.actions):
                rec = self._take(rule, st, i, action, now_ms)
                if rec is not None:
                    out.append(rec)
        return out

    def _take(self, rule: Rule, st: AlertState, i: int, action: Action,
              now: int) -> ActionRecord | None:
        if action.kind == "notify":
            with self.session(write=True) as conn:
                if not db.claim(conn, rule.name, rule.model, st.firing, i, action.kind,
                                self.user, now):
                    return None
                result = acts.notify(conn, rule, st, i, action, now)
                db.finish(conn, rule.name, rule.model, st.firing, i, result, now)
        else:
            with self.session(write=True) as conn:
                retaken = False
                if not db.claim(conn, rule.name, rule.model, st.firing, i, action.kind,
                                self.user, now):
                    retaken = db.retake(conn, rule.name, rule.model, st.firing, i,
                                        self.user, now, ACTION_LEASE_S * 1000)
                    if not retaken:
                        return None
            reason = acts.reason_of(rule, st)
            try:
                done_before = acts.done_before(self.registry(), rule, st, action) \
                    if retaken else None
                if done_before is not None:
                    result = done_before
                else:
                    # Never back to a version this rule already rolled back from: a second
                    # firing on the restored version must not bring the bad one back.
                    left = {str(r.result["from"]) for r in self.actions(rule.name, rule.model,
                                                                        MAX_LIMIT)
                            if r.kind == "rollback" and r.result and r.result.get("from")} \
                        if action.kind == "rollback" else set()
                    result = acts.registry_action(self.registry(), rule, action, reason, left)
            except CairnError as exc:
                result = {"error": exc.message}
            except Exception as exc:  # noqa: BLE001 - the claim must get its result
                # Anything else (a registry's own bug, a library's error) is stored as the
                # action's error too: left unfinished, the claim would read "in progress"
                # forever and no later cycle would take it.
                log.exception("alert %s on %s: %s failed", rule.name, rule.model, action.kind)
                result = {"error": f"{type(exc).__name__}: {exc}"}
            done = clock.now_ms()
            with self.session(write=True) as conn:
                db.finish(conn, rule.name, rule.model, st.firing, i, result, done)
                from ..registry import audit

                audit.append(conn, self.user, f"alert.{action.kind}",
                             _target(rule.name, rule.model), None,
                             {"firing": st.firing, "action": i, "reason": reason, **result},
                             done)
        level = logging.WARNING if "error" in result else logging.INFO
        log.log(level, "alert %s on %s, firing %d: %s: %s", rule.name, rule.model, st.firing,
                action.kind, result)
        return ActionRecord(rule.name, rule.model, st.firing, i, action.kind, self.user, now,
                            now, result)


def _next(rule: Rule, cur: AlertState, active: bool, now: int) -> AlertState:
    """The state after one judgement: the alert state machine, in one place."""
    s = cur.state
    if s in ("inactive", "resolved"):
        if not active:
            return cur
        if rule.for_s == 0:
            return replace(cur, state="firing", active_since=now, changed_at=now,
                           firing=cur.firing + 1)
        return replace(cur, state="pending", active_since=now, changed_at=now)
    if s == "pending":
        if not active:
            return replace(cur, state="inactive", active_since=None, changed_at=now)
        if now - (cur.active_since or now) >= rule.for_s * 1000:
            return replace(cur, state="firing", changed_at=now, firing=cur.firing + 1)
        return cur
    if s == "firing" and not active:
        return replace(cur, state="resolved", active_since=None, changed_at=now)
    return cur
