"""What a firing alert does: queue its webhook, roll the registry back, abort or promote a
canary; and the webhook event of a state change.

Each function does one action and returns what it did as a small JSON document (stored in
``alert_actions``); the registry audits its own change, with the alert as its reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import CairnError, Conflict, InvalidArgument, NotFound
from .alert_store import AlertState
from .rules import Action, Rule

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def notify(conn: Connection, rule: Rule, st: AlertState, i: int, action: Action,
           now: int) -> dict[str, Any]:
    """Queue the firing's ``alert.firing`` event for the action's own target, in the
    claim's transaction: the webhook dispatcher signs, sends and retries it."""
    try:
        from ..webhooks.events import enqueue_direct
        from ..store.sql.tables_monitoring import events as E
    except ImportError:  # pragma: no cover - part of the package
        return {"error": "webhooks are not available in this installation"}
    import sqlalchemy as sa

    key = event_key(rule.name, rule.model, st.firing, "firing")
    seq = conn.execute(sa.select(E.c.seq).where(E.c.key == key)).scalar_one_or_none()
    if seq is None:
        return {"error": f"no alert.firing event {key!r} to send"}
    try:
        delivery = enqueue_direct(conn, source=f"rule:{rule.name}:{i}", event_seq=int(seq),
                                  url=action.options["url"], secret=action.options["secret"],
                                  format=action.options.get("format", "json"), now_ms=now)
    except CairnError as exc:
        return {"error": exc.message}
    # Stored, logged and shown as origin and fingerprint only: a chat webhook's URL is
    # itself a credential, and the rules' readers need not learn it from the results.
    from ..webhooks.service import url_for_audit

    return {"event": int(seq), "delivery": delivery, "url": url_for_audit(action.options["url"])}


def registry_action(reg: Any, rule: Rule, action: Action, reason: str,
                    left: set[str]) -> dict[str, Any]:
    """Roll back, abort or promote through the registry (audited there); what it did.
    ``left``: versions this rule rolled back from, never restored by its rollbacks."""
    from ..registry.entities import Stage

    name = rule.model_name
    if action.kind == "rollback":
        stage = _rollback_stage(rule, action)
        before = version_or_none(reg, f"{name}@{stage}")
        targets = [v for v in reg.rollback_targets(name, stage) if v not in left]
        if not targets:
            raise Conflict(f"nothing to roll back {name} {stage} to: no earlier version "
                           "that this rule has not already rolled back from")
        mv = reg.rollback(name, stage=stage, to=targets[0], reason=reason)
        return {"rolled_back_to": mv.version, "from": before, "stage": mv.stage}
    canary = str(action.options.get("canary") or rule.canary)
    if action.kind == "abort":
        to = str(action.options.get("to") or rule.selector or "production")
        version = reg.resolve(f"{name}@{to}").version
        before = version_or_none(reg, f"{name}@{canary}")
        if before == version:
            return {"skipped": f"@{canary} already is {version}, the version of @{to}"}
        reg.set_alias(name, canary, version)
        return {"alias": canary, "from": before, "to": version}
    if action.kind == "promote":
        to = str(action.options.get("to") or rule.selector or "production")
        version = reg.resolve(f"{name}@{canary}").version
        before = version_or_none(reg, f"{name}@{to}")
        if before == version:
            return {"skipped": f"@{to} already is {version}, the version of @{canary}"}
        if Stage.is_stage(to):
            mv = reg.transition_stage(name, version, to, comment=reason)
            return {"stage": mv.stage, "from": before, "to": version}
        reg.set_alias(name, to, version)
        return {"alias": to, "from": before, "to": version}
    raise InvalidArgument(f"unknown action {action.kind!r}")  # pragma: no cover


def _rollback_stage(rule: Rule, action: Action) -> str:
    """The stage a rollback moves: the one the rule follows (fraud@staging rolls staging
    back), else production."""
    from ..registry.entities import Stage

    follows = rule.selector if rule.selector and Stage.is_stage(rule.selector) else None
    return str(action.options.get("stage") or follows or "production")


def done_before(reg: Any, rule: Rule, st: Any, action: Action) -> dict[str, Any] | None:
    """For an action taken over from a monitor that died after claiming it: its result
    when that monitor may have done it already, else None (take it).

    Abort and promote say so themselves (they skip a move already made); a rollback would
    roll back once more, so it is skipped when the stage no longer holds the version the
    firing judged."""
    if action.kind != "rollback":
        return None
    judged = (st.value.get("versions") or {}).get("model") if isinstance(st.value, dict) \
        else None
    stage = _rollback_stage(rule, action)
    now = version_or_none(reg, f"{rule.model_name}@{stage}")
    if judged is None or now == str(judged):
        return None
    return {"skipped": f"{stage} holds {now}, no longer {judged}, the version this firing "
                       "judged: the monitor that claimed the rollback and died had made it"}


def emit_event(conn: Connection, rule: Rule | None, st: AlertState, value: dict[str, Any],
               now: int) -> None:
    """The webhook event of a firing or a resolution, in the state change's transaction
    (``rule`` None: a rule no longer applied)."""
    try:
        from ..webhooks.events import emit
    except ImportError:  # pragma: no cover - part of the package
        return
    payload = {"rule": st.rule, "model": st.model, "state": st.state, "firing": st.firing,
               "condition": rule.condition if rule else None, "values": value["facts"],
               "versions": value["versions"], "active_since": st.active_since, "at": now,
               "actions": [a.kind for a in rule.actions] if rule else [],
               "notes": value.get("notes", [])}
    emit(conn, key=event_key(st.rule, st.model, st.firing, st.state),
         type=f"alert.{st.state}", payload=payload, at_ms=now,
         model=st.model.partition("@")[0])


def version_or_none(reg: Any, ref: str) -> str | None:
    try:
        return str(reg.resolve(ref).version)
    except NotFound:
        return None


def event_key(rule: str, model: str, firing: int, state: str) -> str:
    """The key of an alert's webhook event: one per firing and state."""
    key = f"alert:{rule}:{model}:{firing}:{state}"
    if len(key) <= 200:
        return key
    import hashlib

    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"alert:{rule[:100]}:{digest}:{firing}:{state}"


def reason_of(rule: Rule, st: AlertState) -> str:
    """``alert <rule> firing: <condition> (<values>)``: what a rollback's history says."""
    shown = st.value.get("shown") if isinstance(st.value, dict) else None
    return f"alert {rule.name} firing: {rule.condition}" + (f" ({shown})" if shown else "")
