"""Alerts on a real store: rules in versions, the state machine with ``for`` (explicit
times, no sleeping), every change in the history and the audit log, and the actions of a
firing taken once even with two monitors at once."""

import json
import threading

import pytest
import sqlalchemy as sa

from cairn.errors import InvalidArgument, NotFound
from cairn.monitoring.alert_facts import Facts
from cairn.monitoring.alerts import Alerts
from cairn.monitoring.rules import RulesError
from cairn.services import registry_for
from cairn.store.sql.tables_monitoring import alert_actions, events, webhook_deliveries
from conformance_backends import open_backend
from pg_fixtures import pg_database  # noqa: F401  (a fixture, used by name)

T0 = 1_767_000_000_000  # ms
MIN = 60_000

RULES = """\
rules:
  - name: accuracy-drop
    model: fraud
    condition: "live.accuracy < train.accuracy - 0.05"
    for: 10m
    actions:
      - notify: {url: "http://127.0.0.1:9/hook", secret: "s3cret-hush"}
      - rollback
"""


@pytest.fixture(params=["local", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request, tmp_path):
    b = open_backend(request.param, tmp_path, request)
    yield b
    b.close()


@pytest.fixture
def client(backend):
    """alice's client on a local store, then on PostgreSQL used directly."""
    return backend.client("alice")


class Knob:
    """Facts a test sets: live.accuracy moves, train.accuracy stays."""

    def __init__(self, live=None, train=0.95):
        self.values = {"live.accuracy": live, "train.accuracy": train}
        self.lock = threading.Lock()

    def __call__(self, rule, now_ms):
        f = Facts()
        f.values.update({k: self.values.get(k) for k in rule.parsed().facts})
        f.versions["model"] = "1.0.0"
        f.requests = 1000
        return f


def fit(seed):
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, 3))
    return LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), X


@pytest.fixture
def fraud(client):
    """``fraud``: two versions put in production in turn (the first archived), each from a
    run that logged its accuracy; the client and the two versions."""
    exp = client.get_or_create_experiment("training")
    versions = []
    for seed, acc in ((0, 0.95), (1, 0.96)):
        run = client.create_run(exp.id)
        client.log_metric(run.id, "accuracy", acc)
        model, X = fit(seed)
        mv = client.register_model("fraud", model, run_id=run.id, input_example=X[:2])
        client.set_terminated(run.id)
        client.transition_model_version_stage("fraud", mv.version, "production")
        versions.append(mv.version)
    assert client.get_model_version("fraud", versions[0]).stage == "Archived"
    return client, versions[0], versions[1]


def test_rules_are_versioned_audited_and_bad_ones_keep_the_previous(client):
    alerts = Alerts(client)
    assert alerts.ruleset() is None and alerts.rules() == [] and alerts.evaluate(T0) == []
    first = alerts.apply(RULES)
    assert first.version == 1 and [r.name for r in first.rules] == ["accuracy-drop"]
    with pytest.raises(RulesError) as err:
        alerts.apply(RULES.replace("live.accuracy <", "live.accuracy <<"))
    assert err.value.details["line"] == 4
    assert alerts.ruleset().version == 1  # nothing stored: the previous rules stay active
    second = alerts.apply(RULES.replace("10m", "5m"))
    assert second.version == 2 and alerts.rules()[0].for_s == 300
    assert alerts.ruleset(1).rules[0].for_s == 600
    with pytest.raises(NotFound):
        alerts.ruleset(9)
    with pytest.raises(InvalidArgument):
        alerts.ruleset(0)
    log = client.audit_log(action="alert.rules_applied")
    assert [e.after["version"] for e in log] == [2, 1]
    assert log[0].before == {"version": 1} and log[0].actor == client.user
    assert "s3cret-hush" not in str(log[0].after)
    assert second.to_dict()["rules"][0]["actions"][0]["secret"] == "***"


def test_state_machine_with_for_and_history(client):
    knob = Knob(live=0.94)
    alerts = Alerts(client, facts=knob)
    alerts.apply(RULES.replace("      - rollback\n", ""))
    assert alerts.evaluate(T0) == []
    (st,) = alerts.states()
    assert (st.state, st.value["result"]) == ("inactive", False)

    knob.values["live.accuracy"] = 0.80              # condition holds from T0 + 1m
    (t,) = alerts.evaluate(T0 + MIN)
    assert (t.from_state, t.to_state, t.firing) == ("inactive", "pending", 0)
    assert alerts.evaluate(T0 + 5 * MIN) == []       # held 4m of 10m: still pending
    assert alerts.act(T0 + 5 * MIN) == []            # nothing fires, nothing acts
    (t,) = alerts.evaluate(T0 + 11 * MIN)            # held 10m: fires
    assert (t.from_state, t.to_state, t.firing) == ("pending", "firing", 1)
    assert t.value["facts"] == {"live.accuracy": 0.80, "train.accuracy": 0.95}
    (st,) = alerts.states("fraud")
    assert (st.state, st.active_since, st.firing) == ("firing", T0 + MIN, 1)
    assert alerts.evaluate(T0 + 12 * MIN) == []      # still firing: no new change

    knob.values["live.accuracy"] = None              # no labels: unknown, so not active
    (t,) = alerts.evaluate(T0 + 13 * MIN)
    assert (t.from_state, t.to_state) == ("firing", "resolved")
    assert t.value["result"] is None and t.value["missing"] == ["live.accuracy"]

    knob.values["live.accuracy"] = 0.5               # holds again, then stops while pending
    assert alerts.evaluate(T0 + 14 * MIN)[0].to_state == "pending"
    knob.values["live.accuracy"] = 0.99
    assert alerts.evaluate(T0 + 15 * MIN)[0].to_state == "inactive"
    # A rule no longer applied stops: its firing alert resolves, not fires forever.
    knob.values["live.accuracy"] = 0.5
    alerts.evaluate(T0 + 16 * MIN)
    alerts.evaluate(T0 + 26 * MIN)
    assert alerts.states()[0].state == "firing"
    alerts.apply(RULES.replace("accuracy-drop", "renamed"))
    moves = [(t.rule, t.from_state, t.to_state) for t in alerts.evaluate(T0 + 27 * MIN)]
    assert moves == [("renamed", "inactive", "pending"),
                     ("accuracy-drop", "firing", "resolved")]
    assert alerts.history(rule="accuracy-drop", limit=1)[0].value["notes"] == \
        ["rule 'accuracy-drop' on fraud is no longer applied"]
    hist = [(h.from_state, h.to_state) for h in reversed(alerts.history(rule="accuracy-drop"))][:5]
    assert hist == [("inactive", "pending"), ("pending", "firing"), ("firing", "resolved"),
                    ("resolved", "pending"), ("pending", "inactive")]
    actions = [e.action for e in reversed(client.audit_log(target="alert:accuracy-drop"))][:5]
    assert actions == ["alert.pending", "alert.firing", "alert.resolved", "alert.pending",
                       "alert.inactive"]
    assert client.verify_audit_log().ok
    # Firing and resolved are events for webhooks; notify queued one signed delivery.
    with client.store.index.session() as conn:
        keys = [r.key for r in conn.execute(sa.select(events.c.key).order_by(events.c.seq))]
    assert keys == ["alert:accuracy-drop:fraud:1:firing", "alert:accuracy-drop:fraud:1:resolved",
                    "alert:accuracy-drop:fraud:2:firing", "alert:accuracy-drop:fraud:2:resolved"]


def test_for_zero_fires_at_once_and_notify_is_queued_once(client):
    alerts = Alerts(client, facts=Knob(live=0.5))
    alerts.apply(RULES.replace("for: 10m", "for: 0").replace("      - rollback\n", ""))
    (t,) = alerts.evaluate(T0)
    assert (t.from_state, t.to_state, t.firing) == ("inactive", "firing", 1)
    (rec,) = alerts.act(T0)
    assert rec.kind == "notify" and rec.ok
    # The target as origin and fingerprint only: a chat webhook's URL is a credential.
    assert rec.result["url"]["origin"] == "http://127.0.0.1:9"
    assert "/hook" not in json.dumps(rec.result)
    assert alerts.act(T0 + MIN) == []  # each action of a firing is taken once
    with client.store.index.session() as conn:
        rows = conn.execute(sa.select(webhook_deliveries)).all()
    assert [(r.source, r.url, r.secret, r.event_type) for r in rows] == \
        [("rule:accuracy-drop:0", "http://127.0.0.1:9/hook", "s3cret-hush", "alert.firing")]


def test_an_alert_rolls_the_registry_back_with_itself_as_the_reason(fraud):
    client, old, new = fraud
    knob = Knob(live=0.80)
    alerts = Alerts(client, facts=knob)
    alerts.apply(RULES)
    alerts.evaluate(T0)
    assert alerts.act(T0) == []
    alerts.evaluate(T0 + 10 * MIN)
    done = alerts.act(T0 + 10 * MIN)
    assert [(r.kind, r.ok) for r in done] == [("notify", True), ("rollback", True)]
    assert done[1].result == {"rolled_back_to": old, "from": new, "stage": "Production"}
    assert client.get_model_version("fraud", old).stage == "Production"
    assert client.get_model_version("fraud", new).stage == "Archived"
    assert registry_for(client).resolve("fraud@production").version == old
    rollback = client.audit_log(action="model.rollback")[0]
    reason = rollback.after["reason"]
    assert reason == ("alert accuracy-drop firing: live.accuracy < train.accuracy - 0.05 "
                      "(live.accuracy=0.8, train.accuracy=0.95)")
    firing = client.audit_log(action="alert.firing")[0]
    assert firing.seq < rollback.seq and firing.target == "alert:accuracy-drop/fraud"
    assert client.audit_log(action="alert.rollback")[0].after["reason"] == reason
    assert client.verify_audit_log().ok
    # A second firing never brings back the version the first one rolled back from: the
    # error is recorded, nothing raises, production stays.
    knob.values["live.accuracy"] = 0.99
    alerts.evaluate(T0 + 11 * MIN)
    knob.values["live.accuracy"] = 0.5
    alerts.evaluate(T0 + 12 * MIN)
    alerts.evaluate(T0 + 22 * MIN)
    again = {r.kind: r for r in alerts.act(T0 + 22 * MIN)}
    assert again["rollback"].firing == 2
    assert "already rolled back from" in again["rollback"].result["error"]
    assert registry_for(client).resolve("fraud@production").version == old


def test_two_monitors_at_once_take_each_action_once(fraud, backend):
    client, old, new = fraud
    rules = RULES.replace("for: 10m", "for: 0")
    Alerts(client, facts=Knob(live=0.5)).apply(rules)
    barrier = threading.Barrier(4)
    results, errors = [], []

    def monitor(i):
        try:
            c = backend.client(f"monitor-{i}")
            a = Alerts(c, facts=Knob(live=0.5))
            barrier.wait()
            results.append(("eval", a.evaluate(T0)))
            results.append(("act", a.act(T0)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=monitor, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    transitions = [t for kind, ts in results if kind == "eval" for t in ts]
    taken = [r for kind, rs in results if kind == "act" for r in rs]
    assert [(t.from_state, t.to_state) for t in transitions] == [("inactive", "firing")]
    assert sorted(r.kind for r in taken) == ["notify", "rollback"]
    assert registry_for(client).resolve("fraud@production").version == old  # rolled back once, not twice
    assert len(client.audit_log(action="model.rollback")) == 1
    with client.store.index.session() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(alert_actions)).scalar() == 2
        assert conn.execute(sa.select(sa.func.count()).select_from(webhook_deliveries)
                            ).scalar() == 1


def test_bad_arguments(client):
    alerts = Alerts(client)
    for bad in ("soon", True, -1, float("nan")):
        with pytest.raises(InvalidArgument):
            alerts.evaluate(bad)
    for bad in (0, -1, True, 10**9, "5"):
        with pytest.raises(InvalidArgument):
            alerts.history(limit=bad)
    for bad in ("  ", 3, "x" * 301, "fr\ud800aud"):
        with pytest.raises(InvalidArgument):
            alerts.states(model=bad)
    for bad in ("", 3, "x" * 129, "r\ud800"):
        with pytest.raises(InvalidArgument):
            alerts.history(rule=bad)
        with pytest.raises(InvalidArgument):
            alerts.actions(rule=bad)
    with pytest.raises(InvalidArgument):
        alerts.apply(None)



def test_the_rollback_comes_in_the_cycle_for_passes_and_serving_follows_it(fraud):
    """``cairn monitor run``'s cycle: at the first cycle after ``for`` has passed the alert
    fires and the registry is rolled back; a deployment following @production switches back
    to the earlier version within seconds."""
    import time

    from cairn.monitoring.daemon import Monitor
    from cairn.serving import deploy

    client, old, new = fraud
    reg = registry_for(client)
    served = deploy(reg, "models:/fraud@production", poll=0.05)
    served.start()
    try:
        assert served.holder.current.version.version == new
        monitor = Monitor(Alerts(client, facts=Knob(live=0.5)), 30, dispatch=False)
        monitor.alerts.apply(RULES.replace("      - notify: {url: \"http://127.0.0.1:9/hook\", "
                                           "secret: \"s3cret-hush\"}\n", ""))
        assert [t.to_state for t in monitor.once(T0).transitions] == ["pending"]
        assert monitor.once(T0 + 10 * MIN - 30_000).actions == []      # 9m30s: not yet
        cycle = monitor.once(T0 + 10 * MIN + 29_000)                  # the next cycle
        assert [t.to_state for t in cycle.transitions] == ["firing"]
        assert [(a.kind, a.result["rolled_back_to"]) for a in cycle.actions] == \
            [("rollback", old)]
        deadline = time.monotonic() + 20  # ~0.1 s here; a loaded machine loads slower
        while served.holder.current.version.version != old and time.monotonic() < deadline:
            time.sleep(0.02)
        assert served.holder.current.version.version == old
    finally:
        served.close()


CANARY_RULES = """\
rules:
  - name: canary-worse
    model: models:/fraud@production
    condition: canary.live.accuracy < primary.live.accuracy - 0.1
    min_requests: 20
    actions:
      - abort: {canary: "@challenger"}
  - name: canary-better
    model: fraud@production
    condition: canary.live.accuracy >= primary.live.accuracy
    min_requests: 20
    actions: [promote]
  - name: too-few
    model: fraud
    condition: serving.error_rate > 0.5
    min_requests: 100000
  - name: train-bar
    model: fraud@production
    condition: live.accuracy < train.accuracy
"""


def serve_and_label(client, arms):
    """Log requests answered by each ``(arm, version, model, correct)`` in the last five
    minutes with the serving code's own PredictionLog, and send their labels back."""
    import time

    from cairn.monitoring.feedback import record_feedback
    from cairn.serving.events import Scored
    from cairn.serving.predlog import PredictionLog

    plog = PredictionLog(client, flush_rows=100_000, flush_seconds=3600)
    start = time.time() - 300
    labels = []
    for arm, version, model, correct, n in arms:
        _, X = fit(7)
        for i in range(n):
            rid = f"{arm}-{i}"
            pred = model.predict(X[i:i + 1])
            plog.scored(Scored(rid, "fraud", version, arm, "/invocations", 200, None,
                               start + i, 0.004, 1, X[i:i + 1], pred))
            labels.append({"request_id": rid,
                           "label": int(pred[0]) if correct else 1 - int(pred[0])})
    plog.close()
    assert plog.stats()["dropped"] == 0
    assert not record_feedback(client, "fraud", labels).rejected


def test_a_worse_canary_is_aborted_from_real_live_metrics(fraud):
    """The facts come from the prediction log and the labels (live_metrics), the training
    run's metrics and the registry: nothing stands in for them."""
    client, old, new = fraud
    reg = registry_for(client)
    reg.set_alias("fraud", "challenger", old)
    serve_and_label(client, [("primary", new, fit(1)[0], True, 40),
                             ("canary", old, fit(0)[0], False, 30)])
    alerts = Alerts(client)
    alerts.apply(CANARY_RULES)
    moves = {t.rule: t for t in alerts.evaluate()}
    worse = moves["canary-worse"]
    assert worse.to_state == "firing"
    assert worse.value["facts"] == {"canary.live.accuracy": 0.0, "primary.live.accuracy": 1.0}
    assert worse.value["versions"] == {"model": new, "primary": new, "canary": old}
    assert worse.value["requests"] == 30
    # live.accuracy of the version production follows (the primary's); train.accuracy of
    # its run: 1.0 is not below 0.96.
    states = {s.rule: s for s in alerts.states()}
    assert states["train-bar"].value["facts"] == {"live.accuracy": 1.0, "train.accuracy": 0.96}
    assert states["canary-better"].state == "inactive"
    assert states["too-few"].value["result"] is None
    assert "30" not in states["too-few"].value["notes"][0] and \
        "100000 requests" in states["too-few"].value["notes"][0]
    (done,) = alerts.act()
    assert (done.kind, done.result) == ("abort", {"alias": "challenger", "from": old, "to": new})
    assert reg.resolve("fraud@challenger").version == new
    aborted = client.audit_log(action="alert.abort")[0]
    assert aborted.after["reason"].startswith("alert canary-worse firing: canary.live.accuracy")
    assert client.audit_log(action="model.alias")[0].after == {"version": new}


def test_promote_moves_production_to_the_canary(fraud):
    client, old, new = fraud
    reg = registry_for(client)
    reg.set_alias("fraud", "challenger", old)
    serve_and_label(client, [("primary", new, fit(1)[0], False, 25),
                             ("canary", old, fit(0)[0], True, 25)])
    alerts = Alerts(client)
    alerts.apply(CANARY_RULES)
    moves = {t.rule: t.to_state for t in alerts.evaluate()}
    assert moves == {"canary-better": "firing", "train-bar": "firing"}
    (done,) = alerts.act()
    assert done.result == {"stage": "Production", "from": new, "to": old}
    assert reg.resolve("fraud@production").version == old
    assert client.get_model_version("fraud", new).stage == "Archived"


def test_notify_is_delivered_signed_by_the_webhook_dispatcher(client):
    """A real HTTP receiver in a thread gets the alert.firing event, signed."""
    import http.server
    import json

    got = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((dict(self.headers), json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        from cairn.monitoring.daemon import Monitor

        alerts = Alerts(client, facts=Knob(live=0.5))
        alerts.apply(RULES.replace("http://127.0.0.1:9/hook", url).replace("for: 10m", "for: 0")
                     .replace("      - rollback\n", ""))
        cycle = Monitor(alerts, 30).once()
        assert cycle.error is None and [t.to_state for t in cycle.transitions] == ["firing"]
        assert [a.kind for a in cycle.actions] == ["notify"]
        assert cycle.to_dict()["deliveries"]["delivered"] >= 1
    finally:
        server.shutdown()
        server.server_close()
    mine = [(h, b) for h, b in got if "alert" in json.dumps(b)]
    assert len(mine) == 1
    headers, body = mine[0]
    assert "accuracy-drop" in json.dumps(body)
    assert any("signature" in k.lower() for k in headers)


# -- the CLI ------------------------------------------------------------------------------
def cli_run(store, *args):
    from click.testing import CliRunner

    from cairn.cli.main import cli

    return CliRunner().invoke(cli, ["--store", str(store), *args])


CLI_RULES = """\
rules:
  - name: trained-well
    model: models:/fraud@production
    condition: "train.accuracy > 0.9"
    actions:
      - rollback
      - notify: {url: "https://hooks.example.com/cairn", secret: "s3cret-hush"}
"""


def test_cli_rules_run_and_status(tracking, tmp_path):
    import json

    import cairn

    client = cairn.Client(str(tracking))
    run = client.create_run(client.get_or_create_experiment("training").id)
    client.log_metric(run.id, "accuracy", 0.95)
    model, X = fit(0)
    mv = client.register_model("fraud", model, run_id=run.id, input_example=X[:2])
    client.transition_model_version_stage("fraud", mv.version, "production")
    good, bad = tmp_path / "alerts.yaml", tmp_path / "bad.yaml"
    good.write_text(CLI_RULES)
    bad.write_text(CLI_RULES.replace("    condition", "    conditon"))

    res = cli_run(tracking, "monitor", "rules", "show")
    assert res.exit_code == 0 and "No alert rules yet" in res.output
    res = cli_run(tracking, "monitor", "rules", "check", str(good))
    assert res.exit_code == 0 and "1 rule(s), all valid: trained-well" in res.output
    res = cli_run(tracking, "monitor", "rules", "check", str(bad))
    assert res.exit_code == 1 and f"{bad}: line 4, column 5: unknown key" in res.output
    res = cli_run(tracking, "monitor", "rules", "check", str(tmp_path / "none.yaml"))
    assert res.exit_code == 1 and "cannot read" in res.output
    res = cli_run(tracking, "monitor", "rules", "apply", str(good))
    assert res.exit_code == 0, res.output
    assert "Applied version 1 of the alert rules: 1 rule(s): trained-well" in res.output
    res = cli_run(tracking, "monitor", "rules", "apply", str(bad))
    assert res.exit_code == 1
    assert f"Error: {bad}: line 4, column 5: unknown key 'conditon'" in res.output
    res = cli_run(tracking, "monitor", "rules", "show", "--json")
    doc = json.loads(res.output)
    assert doc["version"] == 1 and doc["rules"][0]["actions"][1]["secret"] == "***"
    assert cli_run(tracking, "monitor", "rules", "show", "--source").output == CLI_RULES
    res = cli_run(tracking, "monitor", "rules", "show")
    assert "trained-well" in res.output and "rollback, notify" in res.output
    assert cli_run(tracking, "monitor", "rules", "show", "--version", "7").exit_code == 1

    res = cli_run(tracking, "monitor", "run", "--once", "--json")
    assert res.exit_code == 0, res.output
    cycle = json.loads(res.output.strip().splitlines()[-1])
    assert [(t["rule"], t["to"]) for t in cycle["transitions"]] == [("trained-well", "firing")]
    kinds = {a["kind"]: a["result"] for a in cycle["actions"]}
    assert "nothing to roll back" in kinds["rollback"]["error"] and "delivery" in kinds["notify"]

    res = cli_run(tracking, "monitor", "status", "--json")
    doc = json.loads(res.output)
    (alert,) = doc["alerts"]
    assert (alert["state"], alert["firing"], alert["value"]["facts"]) == \
        ("firing", 1, {"train.accuracy": 0.95})
    assert alert["firing_since"] is not None and len(doc["actions"]) == 2
    res = cli_run(tracking, "monitor", "status", "models:/fraud@production")
    assert res.exit_code == 0, res.output
    assert "firing" in res.output and "train.accuracy=0.95" in res.output
    res = cli_run(tracking, "monitor", "status", "other", "--json")
    assert json.loads(res.output)["alerts"] == []
    res = cli_run(tracking, "monitor", "run", "--once")
    assert res.exit_code == 0 and res.output == ""  # still firing: nothing changes
    assert cli_run(tracking, "monitor", "run", "--interval", "0s").exit_code == 1
    ghost = tmp_path / "ghost.yaml"
    ghost.write_text(CLI_RULES.replace("fraud@production", "ghost@production"))
    res = cli_run(tracking, "monitor", "rules", "apply", str(ghost))
    assert res.exit_code == 0
    assert "warning: no registered model 'ghost' (yet): trained-well stay unknown" in \
        res.stderr


def test_a_server_client_is_told_plainly(tmp_path):
    import cairn

    with pytest.raises(InvalidArgument, match="not supported over a server yet"):
        Alerts(cairn.Client("http://127.0.0.1:9")).rules()


@pytest.mark.slow
def test_monitor_run_stops_cleanly_on_sigterm(tracking, tmp_path):
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    rules = tmp_path / "alerts.yaml"
    rules.write_text("rules:\n  - name: quiet\n    model: fraud\n    condition: "
                     "serving.error_rate > 0.5\n")
    assert cli_run(tracking, "monitor", "rules", "apply", str(rules)).exit_code == 0
    env = {**os.environ, "CAIRN_TRACKING_URI": str(tracking)}
    proc = subprocess.Popen([sys.executable, "-c", "from cairn.cli.main import cli; cli()",
                             "monitor", "run", "--interval", "1s", "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        import cairn

        alerts = Alerts(cairn.Client(str(tracking)))
        while not alerts.states() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert alerts.states(), "the monitor never evaluated"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert json.loads(out.splitlines()[0])["error"] is None


def test_drift_facts_are_the_stored_drift_results(tracking, tmp_path):
    """``cairn monitor drift``'s stored results (here drift_report's, over a log with one
    drifted hour) are what drift.* facts read; results over a day old are not."""
    import datetime as dt

    import cairn
    from cairn.monitoring import drift_report

    from .conftest import T0 as LOG_T0
    from .conftest import train, transactions, write_log

    client = cairn.Client(str(tracking))
    mv, model, _ = train(client, rows=600, tmp=tmp_path)
    write_log(client, model, [transactions(300, seed=5),
                              transactions(300, seed=2, shift=1.0, channels=(0.1, 0.2, 0.7))])
    report = drift_report(client, "models:/fraud@production", window="1h",
                          since=LOG_T0, until=LOG_T0 + dt.timedelta(hours=2))
    assert report.run_id and report.windows[-1].drifted
    alerts = Alerts(client)
    alerts.apply("rules:\n  - name: drifted\n    model: fraud@production\n    condition: "
                 "drift.share >= 0.5 and drift.amount.drifted and drift.age < 2\n")
    end = LOG_T0 + dt.timedelta(hours=2)
    (t,) = alerts.evaluate(end + dt.timedelta(minutes=5))
    assert t.to_state == "firing"
    facts = t.value["facts"]
    assert facts["drift.share"] == report.windows[-1].share and facts["drift.amount.drifted"] is True
    (t,) = alerts.evaluate(end + dt.timedelta(days=2))
    assert t.to_state == "resolved" and t.value["result"] is None
    assert any("over a day old" in n for n in t.value["notes"])


@pytest.mark.slow
def test_two_monitor_processes_at_once_roll_back_once(tracking, tmp_path):
    """Two `cairn monitor run --once` processes on one store at the same moment: one firing,
    one rollback, one of each audit event."""
    import json
    import os
    import subprocess
    import sys

    import cairn

    client = cairn.Client(str(tracking))
    exp = client.get_or_create_experiment("training")
    versions = []
    for seed in (0, 1):
        run = client.create_run(exp.id)
        client.log_metric(run.id, "accuracy", 0.95)
        model, X = fit(seed)
        mv = client.register_model("fraud", model, run_id=run.id, input_example=X[:2])
        client.transition_model_version_stage("fraud", mv.version, "production")
        versions.append(mv.version)
    rules = tmp_path / "alerts.yaml"
    rules.write_text("rules:\n  - name: always\n    model: fraud@production\n    condition: "
                     "train.accuracy > 0.9\n    actions: [rollback]\n")
    assert cli_run(tracking, "monitor", "rules", "apply", str(rules)).exit_code == 0
    env = {**os.environ, "CAIRN_TRACKING_URI": str(tracking)}
    procs = [subprocess.Popen([sys.executable, "-c", "from cairn.cli.main import cli; cli()",
                               "monitor", "run", "--once", "--json"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    cycles = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert sum(len(c["transitions"]) for c in cycles) == 1
    assert sum(len(c["actions"]) for c in cycles) == 1
    assert registry_for(client).resolve("fraud@production").version == versions[0]
    assert len(client.audit_log(action="model.rollback")) == 1
    assert len(client.audit_log(action="alert.firing")) == 1
    assert client.verify_audit_log().ok


def test_rules_over_other_windows_read_the_labels_once_per_evaluation(fraud, monkeypatch):
    """Each window reads its own part of the prediction log, but the labels are the
    model's, whatever the window: one evaluation reads them once."""
    from cairn.monitoring import feedback

    client, old, new = fraud
    serve_and_label(client, [("primary", new, fit(1)[0], True, 10)])
    calls = []
    real = feedback.read_labels
    monkeypatch.setattr(feedback, "read_labels", lambda c, m, *a, **k: calls.append(m) or
                        real(c, m, *a, **k))
    alerts = Alerts(client)
    alerts.apply("rules:\n" + "".join(
        f"  - name: w{w}\n    model: fraud@production\n    window: {w}\n"
        f"    condition: live.accuracy < 0.5\n" for w in ("5m", "1h", "1d")))
    alerts.evaluate()
    assert calls == ["fraud"]
    assert {s.rule: s.value["facts"]["live.accuracy"] for s in alerts.states()} == \
        {"w5m": 1.0, "w1h": 1.0, "w1d": 1.0}


def test_train_facts_are_the_metrics_registered_with_the_version(client):
    """train.<metric> is what `cairn monitor live` compares with: the value registered with
    the version, not whatever its run logged afterwards."""
    exp = client.get_or_create_experiment("training")
    run = client.create_run(exp.id)
    client.log_metric(run.id, "accuracy", 0.9)
    model, X = fit(0)
    mv = client.register_model("solo", model, run_id=run.id, input_example=X[:2])
    client.log_metric(run.id, "accuracy", 0.2)  # a later evaluation on the same run
    client.set_terminated(run.id)
    client.transition_model_version_stage("solo", mv.version, "production")
    alerts = Alerts(client)
    alerts.apply("rules:\n  - name: bar\n    model: solo\n"
                 "    condition: train.accuracy < 0.5\n")
    alerts.evaluate()
    (state,) = alerts.states()
    assert state.value["facts"] == {"train.accuracy": 0.9}
    assert state.state == "inactive"


def test_an_action_whose_monitor_died_is_taken_over_after_its_lease(fraud):
    """A monitor that claimed the rollback and died before its result left the claim
    open: a claim younger than the lease is left alone, an older one is taken over, and a
    rollback the dead monitor had already made is not made twice."""
    from cairn.monitoring import alert_store as db
    from cairn.monitoring.alerts import ACTION_LEASE_S

    client, old, new = fraud
    knob = Knob(live=0.80)
    knob_versions = Knob.__call__

    def facts(rule, now_ms):  # the firing judged the version in production
        f = knob_versions(knob, rule, now_ms)
        f.versions["model"] = registry_for(client).resolve("fraud@production").version
        return f

    alerts = Alerts(client, facts=facts)
    alerts.apply(RULES)
    alerts.evaluate(T0)
    fired = T0 + 10 * MIN
    alerts.evaluate(fired)
    with alerts.session(write=True) as conn:  # the dead monitor's claim of action 1
        assert db.claim(conn, "accuracy-drop", "fraud", 1, 1, "rollback", "bob", fired)
    assert [r.kind for r in alerts.act(fired + 60_000)] == ["notify"]  # within the lease
    assert registry_for(client).resolve("fraud@production").version == new
    later = fired + (ACTION_LEASE_S + 1) * 1000
    (took,) = alerts.act(later)
    assert took.result == {"rolled_back_to": old, "from": new, "stage": "Production"}
    assert registry_for(client).resolve("fraud@production").version == old
    assert alerts.act(later + 1) == []  # finished: nobody takes it again

    # Second firing: the dead monitor made its rollback before dying.
    knob.values["live.accuracy"] = 0.99
    alerts.evaluate(later + MIN)
    knob.values["live.accuracy"] = 0.5
    alerts.evaluate(later + 2 * MIN)
    second = later + 12 * MIN
    alerts.evaluate(second)
    assert {s.rule: s.firing for s in alerts.states()} == {"accuracy-drop": 2}
    with alerts.session(write=True) as conn:
        assert db.claim(conn, "accuracy-drop", "fraud", 2, 1, "rollback", "bob", second)
    registry_for(client).rollback("fraud", stage="production", to=new, reason="bob's")
    acted = {r.kind: r for r in alerts.act(second + (ACTION_LEASE_S + 1) * 1000)}
    assert "no longer" in acted["rollback"].result["skipped"]
    assert registry_for(client).resolve("fraud@production").version == new
