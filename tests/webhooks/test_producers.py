"""Events from real registry actions and from runs that ended, and the subscriptions'
filters by type, model and experiment."""

from __future__ import annotations

import json

from cairn.webhooks.dispatch import Dispatcher
from cairn.webhooks.service import Webhooks

from .conftest import fit_logreg


def _types(wh, **kw):
    return [e.type for e in wh.events(**kw)]


def test_registry_actions_become_events_with_their_payloads(client, receiver, as_bob):
    r = receiver()
    wh = Webhooks(client)
    sub = wh.subscribe(r.url)
    r.secret = sub.secret
    exp = client.create_experiment("fraud-exp").id
    run = client.create_run(exp)
    mv = client.register_model("fraud", fit_logreg(), run_id=run.id)
    client.set_alias("fraud", "champion", mv.version)
    client.set_stage_policy("fraud", "production", approvals=1, approvers=["bob", "carol"])
    req = client.request_transition("fraud", mv.version, "production", comment="ship it")
    as_bob.approve(req.id, comment="ok")
    stats = Dispatcher(client).dispatch_once()
    assert _types(wh) == ["model.created", "model_version.created", "alias.moved",
                          "transition.requested", "transition.approved", "stage.changed"]
    assert stats.events == 6 and stats.delivered == 6
    ev = {e.type: e for e in wh.events()}
    created = ev["model_version.created"]
    assert created.model == "fraud" and created.experiment_id == exp
    assert created.payload["version"] == mv.version and created.payload["by"] == "alice"
    assert created.payload["source_run"] == run.id and created.payload["flavor"] == "sklearn"
    moved_alias = ev["alias.moved"].payload
    assert (moved_alias["alias"], moved_alias["version"], moved_alias["previous"]) == \
        ("champion", mv.version, None)
    asked = ev["transition.requested"].payload
    assert (asked["request"], asked["to_stage"], asked["approvals_needed"]) == \
        (req.id, "Production", 1)
    assert asked["approvers"] == ["bob", "carol"]  # whom to tell that it waits
    assert ev["transition.approved"].payload["by"] == "bob"
    moved = ev["stage.changed"].payload
    assert (moved["from_stage"], moved["to_stage"], moved["rollback"]) == \
        ("Development", "Production", False)
    # sent at once, so in any order: a receiver orders them by seq
    got = sorted((d["seq"], d["type"]) for d in map(json.loads, r.bodies()))
    assert [t for _, t in got] == _types(wh)
    assert all(q["verified"] for q in r.requests)
    # nothing is produced twice
    assert Dispatcher(client).dispatch_once().events == 0


def test_a_rollback_is_a_stage_change_marked_rollback(client):
    wh = Webhooks(client)
    wh.subscribe("http://127.0.0.1:9/", events=["stage.changed"])
    v1 = client.register_model("fraud", fit_logreg())
    v2 = client.register_model("fraud", fit_logreg(C=0.3))
    client.transition_model_version_stage("fraud", v1.version, "production")
    client.transition_model_version_stage("fraud", v2.version, "production")
    client.rollback("fraud", "production", reason="p95 regression")
    Dispatcher(client).produce(now=client_now())
    changes = [e.payload for e in wh.events(type="stage.changed")]
    assert changes[-1]["rollback"] is True and changes[-1]["version"] == v1.version
    assert changes[-1]["reason"] == "p95 regression"
    assert not any(c["rollback"] for c in changes[:-1])


def client_now():
    from cairn import clock

    return clock.now_ms()


def test_runs_that_end_become_events(client):
    wh = Webhooks(client)
    wh.subscribe("http://127.0.0.1:9/")
    exp = client.create_experiment("e").id
    ok = client.create_run(exp)
    client.log_metric(ok.id, "acc", 0.91)
    client.set_terminated(ok.id)
    bad = client.create_run(exp)
    client.set_terminated(bad.id, "FAILED")
    client.create_run(exp)  # still running: no event
    Dispatcher(client).dispatch_once()
    found = {e.type: e for e in wh.events()}
    assert set(found) == {"run.finished", "run.failed"}
    fin = found["run.finished"]
    assert fin.key == f"run:{ok.id}:FINISHED" and fin.experiment_id == exp
    assert fin.payload["metrics"] == {"acc": 0.91} and fin.payload["status"] == "FINISHED"
    assert found["run.failed"].payload["run_id"] == bad.id
    assert Dispatcher(client).dispatch_once().events == 0  # looked at again, not repeated


def test_subscriptions_filter_by_type_model_and_experiment(client, receiver):
    r_model, r_exp, r_type, r_all = receiver(), receiver(), receiver(), receiver()
    wh = Webhooks(client)
    e1 = client.create_experiment("one").id
    e2 = client.create_experiment("two").id
    wh.subscribe(r_model.url, model="fraud")
    wh.subscribe(r_exp.url, experiment_id="one")  # a name: resolved to its id
    wh.subscribe(r_type.url, events=["run.failed", "alias.moved"])
    wh.subscribe(r_all.url)
    run1 = client.create_run(e1)
    client.register_model("fraud", fit_logreg(), run_id=run1.id)
    client.set_terminated(run1.id, "FAILED")
    run2 = client.create_run(e2)
    client.register_model("churn", fit_logreg(), run_id=run2.id)
    client.set_terminated(run2.id)
    client.set_alias("churn", "best", "1.0.0")
    Dispatcher(client).dispatch_once()

    def got(rec):
        return sorted((d["type"], d["data"].get("model"), d["data"].get("experiment_id"))
                      for d in map(json.loads, rec.bodies()))

    assert got(r_model) == [("model.created", "fraud", None),
                            ("model_version.created", "fraud", e1)]
    assert got(r_exp) == [("model_version.created", "fraud", e1), ("run.failed", None, e1)]
    assert got(r_type) == [("alias.moved", "churn", None), ("run.failed", None, e1)]
    assert len(r_all.bodies()) == 7


def test_history_before_a_subscription_is_not_sent(client, receiver):
    client.register_model("fraud", fit_logreg())  # before any subscription
    Dispatcher(client).dispatch_once()
    r = receiver()
    Webhooks(client).subscribe(r.url)
    Dispatcher(client).dispatch_once()
    client.set_alias("fraud", "champion", "1.0.0")
    Dispatcher(client).dispatch_once()
    assert [json.loads(b)["type"] for b in r.bodies()] == ["alias.moved"]


def test_a_backlog_is_read_in_pages_within_one_round(client, monkeypatch):
    from cairn.webhooks import dispatch, produce

    monkeypatch.setattr(produce, "AUDIT_PAGE", 2)
    monkeypatch.setattr(dispatch, "FANOUT_PAGE", 2)
    monkeypatch.setattr(dispatch, "FANOUT_LOOKBACK", 1)
    wh = Webhooks(client)
    wh.subscribe("http://127.0.0.1:9/")
    for i in range(3):
        client.register_model(f"m{i}", fit_logreg())
    stats = Dispatcher(client).produce(now=client_now())
    assert stats == 6 and len(wh.events()) == 6
    assert Dispatcher(client).fan_out() == 6
    assert Dispatcher(client).fan_out() == 0


def test_every_registry_event_type_is_produced(client, as_bob):
    from cairn.services import registry_for

    wh = Webhooks(client)
    wh.subscribe("http://127.0.0.1:9/")
    v1 = client.register_model("fraud", fit_logreg())
    client.set_stage_policy("fraud", "production", approvals=1)
    req = client.request_transition("fraud", v1.version, "production")
    as_bob.reject(req.id, comment="not yet")
    client.set_alias("fraud", "champion", v1.version)
    client.delete_alias("fraud", "champion")
    registry_for(client).record_deployment("fraud", v1.version, "start", deployment="prod")
    v2 = client.register_model("fraud", fit_logreg(C=0.2))
    client.delete_model_version("fraud", v2.version)
    client.rename_registered_model("fraud", "fraud2")
    client.delete_registered_model("fraud2", force=True)
    Dispatcher(client).produce(now=client_now())
    ev = {}
    for e in wh.events():
        ev.setdefault(e.type, e.payload)
    assert set(ev) == {"model.created", "model_version.created", "transition.requested",
                       "transition.rejected", "alias.moved", "alias.deleted",
                       "deployment.changed", "model_version.deleted", "model.renamed",
                       "model.deleted"}
    assert ev["transition.rejected"]["by"] == "bob"
    assert ev["transition.rejected"]["comment"] == "not yet"
    assert (ev["alias.deleted"]["alias"], ev["alias.deleted"]["version"]) == \
        ("champion", v1.version)
    dep = ev["deployment.changed"]
    assert (dep["event"], dep["deployment"], dep["arm"], dep["version"]) == \
        ("start", "prod", "primary", v1.version)
    assert ev["model_version.deleted"]["version"] == v2.version
    assert (ev["model.renamed"]["model"], ev["model.renamed"]["previous_name"]) == \
        ("fraud2", "fraud")
    assert ev["model.deleted"]["model"] == "fraud2"


def test_many_runs_ended_just_before_the_cursor_never_stall_the_producer(client, monkeypatch):
    """Runs are looked at again RUN_LOOKBACK_MS back, in pages up to a cap: with more runs
    than the cap in that stretch the cursor never moved, and every run that ended after
    it was never produced."""
    from cairn.webhooks import produce

    monkeypatch.setattr(produce, "RUN_PAGE", 2)
    monkeypatch.setattr(produce, "RUN_PAGES", 2)
    wh = Webhooks(client)
    wh.subscribe("http://127.0.0.1:9/")
    now = client_now()
    d = Dispatcher(client)
    d.produce(now)  # the runs cursor starts at now
    exp = client.create_experiment("e").id
    for i in range(6):  # more than RUN_PAGE * RUN_PAGES, in the look back
        r = client.create_run(exp)
        client.set_terminated(r.id, end_time=now - 60_000 + i)
    late = client.create_run(exp)
    client.set_terminated(late.id, end_time=now + 1000)
    for _ in range(3):
        d.produce(now + 2000)
    keys = {e.key for e in wh.events(limit=100)}
    assert f"run:{late.id}:FINISHED" in keys
