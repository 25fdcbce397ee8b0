"""The model's monitoring page in Chromium, and its API route.

A small store of its own (not the session's seeded world, which takes longer to build):
model "fraud" with two real scikit-learn versions, 1.0.0 primary and 1.1.0 canary; drift
and live metrics written to their monitoring runs with the public client, as
``cairn.monitoring.results`` writes them; alert states and history inserted into their
tables; model "quiet" with nothing monitored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from serving import ThreadedServer

from .conftest import STATIC, Page

T = 1_767_225_600  # 2026-01-01, seconds: a window's step is its end in seconds
HOUR = 3600
WINDOWS = 6


def _model(client, name: str, n: int) -> list:
    from sklearn.linear_model import LogisticRegression

    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.2], [1.0, 0.9]])
    y = np.array([0, 1, 0, 1])
    return [client.register_model(name, LogisticRegression(C=1.0 / (i + 1)).fit(X, y))
            for i in range(n)]


def _drift(client, version: str, drifting_from: int) -> str:
    """Six hourly windows of features amount and country (amount drifts from window
    ``drifting_from`` on), and live accuracy, as the monitor writes them."""
    from cairn.monitoring import results

    run_id = results.monitoring_run(client, "fraud", version)
    points = []
    for i in range(WINDOWS):
        step = T + (i + 1) * HOUR
        ts = step * 1000
        drifted = i >= drifting_from
        points += [("drift.rows", 100.0 + i, step, ts),
                   ("drift.amount", 0.001 if drifted else 0.4, step, ts),
                   ("drift.amount.drifted", float(drifted), step, ts),
                   ("drift.amount.missing", 0.0, step, ts),
                   ("drift.country", 0.7, step, ts),
                   ("drift.country.drifted", 0.0, step, ts),
                   ("drift.country.missing", 0.1, step, ts),
                   ("drift.share", 0.5 if drifted else 0.0, step, ts),
                   ("drift.drifted", float(drifted), step, ts),
                   ("live.accuracy", 0.9 - 0.05 * drifted, step, ts),
                   ("train.accuracy", 0.92, step, ts),
                   ("live.requests", 50.0, step, ts)]
    client.log_batch(run_id, points)
    return run_id


def _alerts(store) -> None:
    """Rule accuracy-drop on "fraud": pending, then firing, which rolled back; rule
    canary-errors on "fraud@canary" firing later; a rule on another model."""
    from cairn.store.sql.tables_monitoring import alert_actions, alert_history, alert_states

    at = (T + 5 * HOUR) * 1000
    value = json.dumps({"live.accuracy": 0.85, "drift.amount.drifted": 1})
    with store.index.session(write=True) as conn:
        conn.execute(sa.insert(alert_states).values(
            rule="accuracy-drop", model="fraud", state="firing", active_since=at,
            changed_at=at + 600_000, firing=1, value=value))
        conn.execute(sa.insert(alert_history), [
            {"rule": "accuracy-drop", "model": "fraud", "from_state": "inactive",
             "to_state": "pending", "at": at, "firing": 0, "value": value, "actor": "monitor"},
            {"rule": "accuracy-drop", "model": "fraud", "from_state": "pending",
             "to_state": "firing", "at": at + 600_000, "firing": 1, "value": value,
             "actor": "monitor"},
            {"rule": "other-model", "model": "quiet-not-this", "from_state": "inactive",
             "to_state": "firing", "at": at, "firing": 1, "value": "{}", "actor": "monitor"},
            {"rule": "canary-errors", "model": "fraud@canary", "from_state": "inactive",
             "to_state": "firing", "at": at + 1_200_000, "firing": 1,
             "value": json.dumps({"canary.live.error_rate": 0.2}), "actor": "monitor"}])
        conn.execute(sa.insert(alert_actions).values(
            rule="accuracy-drop", model="fraud", firing=1, action=0, kind="rollback",
            claimed_by="monitor", claimed_at=at + 601_000, done_at=at + 602_000,
            result=json.dumps({"version": "1.0.0"})))


@pytest.fixture(scope="module")
def store_root(tmp_path_factory):
    import cairn
    from cairn.store import close_store

    root = tmp_path_factory.mktemp("monitoring") / "store"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAIRN_KEYS_DIR", str(root.parent / "keys"))  # never the developer's keys
        client = cairn.Client(str(root), user="ann")
        v1, v2 = _model(client, "fraud", 2)
        _model(client, "quiet", 1)
        _drift(client, v1.version, drifting_from=4)
        _drift(client, v2.version, drifting_from=6)  # the canary has not drifted
        client.record_deployment("fraud", v1.version, "start", deployment="host:8080",
                                 reason="first release")
        client.record_deployment("fraud", v2.version, "start", deployment="host:8080",
                                 arm="canary", reason="10% canary")
        client.set_alias("fraud", "champion", v1.version)
        _alerts(client.store)
    close_store(str(root))
    return root


@pytest.fixture(scope="module")
def mon_server(store_root):
    from cairn.server import create_app
    from cairn.store.local import LocalStore

    if not (STATIC / "index.html").is_file():
        pytest.fail(f"the web UI is not built ({STATIC} has no index.html): run `make ui`")
    store = LocalStore(store_root)
    try:
        with ThreadedServer(create_app(store)) as url:
            yield url
    finally:
        store.close()


@pytest.fixture
def tab(browser, mon_server, tmp_path):
    shots = Path(os.environ.get("CAIRN_UI_SCREENSHOTS") or tmp_path)  # as conftest's ``ui``
    shots.mkdir(parents=True, exist_ok=True)
    t = Page(browser, mon_server, shots)
    yield t
    errors = list(t.errors)
    t.page.close()
    assert not errors, "the page logged errors:\n" + "\n".join(errors)


def test_monitoring_api(mon_server):
    import httpx

    data = httpx.get(mon_server + "/api/v1/ui/models/fraud/monitoring", timeout=30).json()
    by = {v["version"]: v for v in data["versions"]}
    assert set(by) == {"1.0.0", "1.1.0"} and all(v["run_id"] for v in by.values())
    v1 = by["1.0.0"]
    assert v1["windows"] == [T + (i + 1) * HOUR for i in range(WINDOWS)]
    assert [f["name"] for f in v1["features"]] == ["amount", "country"]  # most drifted first
    amount = v1["features"][0]
    assert amount["drifted"] == [False] * 4 + [True] * 2
    assert amount["score"][-1] == pytest.approx(0.001)
    assert v1["features"][1]["missing"][0] == pytest.approx(0.1)
    assert v1["share"] == [0.0] * 4 + [0.5] * 2 and v1["rows"][0] == 100
    assert {s["key"] for s in v1["live"]} == {"live.accuracy", "live.requests"}
    assert [(s["key"], s["values"][0]) for s in v1["train"]] == [("train.accuracy", 0.92)]
    states = data["alerts"]["states"]
    assert [(s["rule"], s["state"], s["value"]["live.accuracy"]) for s in states] == [
        ("accuracy-drop", "firing", 0.85)]
    assert [(e["rule"], e["model"], e["to"]) for e in data["alerts"]["history"]] == [
        ("canary-errors", "fraud@canary", "firing"), ("accuracy-drop", "fraud", "firing"),
        ("accuracy-drop", "fraud", "pending")]
    assert [(a["kind"], a["ok"], a["result"]) for a in data["alerts"]["actions"]] == [
        ("rollback", True, {"version": "1.0.0"})]
    assert [(a["arm"], a["version"]) for a in data["arms"]] == [("primary", "1.0.0"),
                                                                ("canary", "1.1.0")]
    assert [e["event"] for e in data["deployments"]] == ["start", "start"]
    assert data["aliases"] == {"champion": "1.0.0"}

    quiet = httpx.get(mon_server + "/api/v1/ui/models/quiet/monitoring", timeout=30).json()
    assert [v["run_id"] for v in quiet["versions"]] == [None]
    assert quiet["alerts"] == {"states": [], "history": [], "history_truncated": False,
                               "actions": [], "actions_truncated": False}
    assert quiet["arms"] == [] and quiet["deployments"] == []
    assert httpx.get(mon_server + "/api/v1/ui/models/nope/monitoring",
                     timeout=30).status_code == 404
    too_long = httpx.get(mon_server + "/api/v1/ui/models/" + "x" * 300 + "/monitoring",
                         timeout=30)
    assert too_long.status_code in (400, 422)


def test_monitoring_api_caps_what_it_sends(mon_server, monkeypatch):
    """The newest windows, the most drifted features, the newest alert changes: and the
    totals, so that the page can say what it left out."""
    import httpx

    from cairn.server.ui import monitoring

    monkeypatch.setattr(monitoring, "MAX_WINDOWS", 4)
    monkeypatch.setattr(monitoring, "MAX_FEATURES", 1)
    monkeypatch.setattr(monitoring, "MAX_ALERT_HISTORY", 1)
    monkeypatch.setattr(monitoring, "MAX_LOADED", 1)
    data = httpx.get(mon_server + "/api/v1/ui/models/fraud/monitoring", timeout=30).json()
    v1 = next(v for v in data["versions"] if v["version"] == "1.0.0")
    assert v1["windows"] == [T + (i + 1) * HOUR for i in range(2, WINDOWS)]
    assert v1["windows_total"] == WINDOWS and len(v1["share"]) == 4
    assert [f["name"] for f in v1["features"]] == ["amount"] and v1["features_total"] == 2
    assert all(len(s["steps"]) == 4 for s in v1["live"])
    assert [e["rule"] for e in data["alerts"]["history"]] == ["canary-errors"]
    assert data["alerts"]["history_truncated"] is True
    # One version's data: the primary's (served first); the canary's when asked for.
    assert [(v["version"], v["loaded"], "windows" in v) for v in data["versions"]] == [
        ("1.1.0", False, False), ("1.0.0", True, True)]
    asked = httpx.get(mon_server + "/api/v1/ui/models/fraud/monitoring",
                      params={"version": "1.1.0"}, timeout=30).json()
    assert [v["version"] for v in asked["versions"] if v["loaded"]] == ["1.1.0"]
    bad = httpx.get(mon_server + "/api/v1/ui/models/fraud/monitoring",
                    params={"version": "x" * 65}, timeout=30)
    assert bad.status_code == 400


def test_monitoring_route_needs_viewer_on_the_model(store_root):
    """Auth on: a user without a role on the model is refused, one with viewer reads."""
    from fastapi.testclient import TestClient

    from cairn.server import ServerSettings, create_app
    from cairn.store.local import LocalStore

    token = "cairn_monitoring-test-admin-token-0123456789"
    store = LocalStore(store_root)
    app = create_app(store, settings=ServerSettings(auth=True, bootstrap_token=token,
                                                    bootstrap_user="root"))
    try:
        with TestClient(app) as api:
            app.state.cairn.start()
            admin = {"authorization": f"Bearer {token}"}
            users = {}
            for user in ("outsider", "vic"):
                assert api.post("/api/v1/users", json={"name": user},
                                headers=admin).status_code == 201
                t = api.post(f"/api/v1/users/{user}/tokens", json={"name": "t"},
                             headers=admin).json()["token"]
                users[user] = {"authorization": f"Bearer {t}"}
            r = api.put("/api/v1/roles", json={"user": "vic", "resource_type": "model",
                                               "role": "viewer", "resource_id": "fraud"},
                        headers=admin)
            assert r.status_code == 200, r.text
            url = "/api/v1/ui/models/fraud/monitoring"
            assert api.get(url).status_code == 401
            assert api.get(url, headers=users["outsider"]).status_code in (403, 404)
            # a model that does not exist answers the same to someone who may not view it
            assert api.get("/api/v1/ui/models/nope/monitoring",
                           headers=users["outsider"]).status_code in (403, 404)
            seen = api.get(url, headers=users["vic"])
            assert seen.status_code == 200, seen.text
            assert seen.json()["alerts"]["states"][0]["rule"] == "accuracy-drop"
            assert api.get("/api/v1/ui/models/quiet/monitoring",
                           headers=users["vic"]).status_code in (403, 404)
            assert api.get(url, headers=admin).status_code == 200
    finally:
        store.close()


def test_monitoring_page_shows_drift_live_alerts_and_arms(tab):
    page = tab.goto("/models/fraud")
    page.get_by_role("link", name="Monitoring").click()
    expect(page).to_have_url(f"{tab.base}/models/fraud/monitoring")

    arms = page.locator("table.arms")
    expect(arms.locator('tr[data-arm="primary"]')).to_contain_text("1.0.0")
    expect(arms.locator('tr[data-arm="canary"]')).to_contain_text("1.1.0")
    expect(page.locator(".alias", has_text="@champion → 1.0.0")).to_be_visible()

    state = page.locator('table.alert-states tr[data-rule="accuracy-drop"]')
    expect(state.locator(".badge")).to_have_text("firing")
    expect(state).to_contain_text("live.accuracy=0.85")
    timeline = page.locator(".alert-timeline li")  # newest first
    expect(timeline).to_have_count(4)
    expect(timeline.nth(0)).to_contain_text("canary-errors @canary: inactive → firing")
    expect(timeline.nth(0)).to_contain_text("canary.live.error_rate=0.2")
    expect(timeline.nth(1)).to_contain_text("accuracy-drop firing 1, action: rollback: done")
    expect(timeline.nth(1)).to_contain_text("version=")
    expect(timeline.nth(2)).to_contain_text("accuracy-drop: pending → firing")
    expect(timeline.nth(3)).to_contain_text("inactive → pending")

    # The primary (served, and drifting) is shown first: 2 features x 6 windows, + share.
    expect(page.get_by_label("drift of version")).to_have_value("1.0.0")
    cells = page.locator(".heatmap rect[data-feature]")
    expect(cells).to_have_count(2 * WINDOWS)
    expect(page.locator(".heatmap rect.hm-drifted")).to_have_count(2)
    last = page.locator(f'.heatmap rect[data-feature="amount"][data-window="{T + 6 * HOUR}"]')
    expect(last.locator("title")).to_contain_text("amount at ")
    expect(last.locator("title")).to_contain_text("drifted, score 0.001")
    expect(page.locator(".drift-version")).to_contain_text("drift in amount")

    # The same cells as a table, for screen readers and copying.
    page.get_by_text("Show as a table").click()
    rows = page.locator("table.drift tbody tr")
    expect(rows).to_have_count(WINDOWS)
    expect(rows.first.locator("td.hm-drifted")).to_contain_text("drifted, score 0.001")

    # The canary: no drift.
    page.get_by_label("drift of version").select_option("1.1.0")
    expect(page.locator(".drift-version")).to_contain_text("no feature drifted")
    expect(page.locator(".heatmap rect.hm-drifted")).to_have_count(0)

    charts = page.locator(".chart[data-key]")
    expect(charts).to_have_count(2)
    acc = page.locator('.chart[data-key="live.accuracy"]')
    expect(acc).to_have_attribute("data-ready", "1")
    # a line per version, and one for the accuracy each was registered with
    expect(acc).to_have_attribute("data-points", str(4 * WINDOWS))
    expect(acc.locator(".legend-item")).to_have_text([
        "1.1.0 (canary)", "1.1.0 at registration", "1.0.0 (primary)", "1.0.0 at registration"])
    expect(page.locator(".deploy-timeline li")).to_have_count(2)
    page.get_by_label("drift of version").select_option("1.0.0")
    page.screenshot(path=str(tab.shots / "model-monitoring.png"), full_page=True)


def test_a_model_without_monitoring_says_how_to_start(tab):
    page = tab.goto("/models/quiet/monitoring")
    expect(page.locator(".empty")).to_contain_text("No monitoring data yet")
    expect(page.locator(".empty")).to_contain_text("cairn monitor drift models:/quiet@production")
    expect(page.get_by_text("No alert for this model")).to_be_visible()
    expect(page.get_by_text("No live metrics yet")).to_contain_text(
        "cairn monitor live models:/quiet@production")
    expect(page.get_by_text("No arm is serving this model")).to_be_visible()


def test_a_missing_model_is_an_answer_not_an_error(tab):
    page = tab.goto("/models/nope/monitoring")
    expect(page.locator("h1")).to_have_text("Model not found")


def test_a_version_whose_data_did_not_come_is_asked_for_when_picked(tab, monkeypatch):
    from cairn.server.ui import monitoring

    monkeypatch.setattr(monitoring, "MAX_LOADED", 1)  # the primary's data only, at first
    page = tab.goto("/models/fraud/monitoring")
    expect(page.locator(".drift-version")).to_contain_text("drift in amount")
    expect(page.locator('.chart[data-key="live.accuracy"] .legend-item')).to_have_text(
        ["1.0.0 (primary)", "1.0.0 at registration"])
    page.get_by_label("drift of version").select_option("1.1.0")
    expect(page.locator(".drift-version")).to_contain_text("no feature drifted")
    expect(page.locator(".heatmap rect[data-feature]")).to_have_count(2 * WINDOWS)


def test_a_notify_action_s_url_is_not_shown_to_viewers(tmp_path, monkeypatch):
    """A notify action's result names its target; a chat webhook's URL is a credential
    (the audit log keeps only its origin), so a model's viewers see the origin alone."""
    import cairn
    from cairn.server.ui.monitoring import _alerts
    from cairn.store import close_store
    from cairn.store.sql.tables_monitoring import alert_actions

    monkeypatch.setenv("CAIRN_KEYS_DIR", str(tmp_path / "keys"))
    client = cairn.Client(str(tmp_path / "store"), user="ann")
    store = client.store
    store.open()
    url = "https://user:pw-s3cret@hooks.example.com/services/T000/B000/XXXXXXXXXXXX?t=1"
    try:
        with store.index.session(write=True) as conn:
            conn.execute(sa.insert(alert_actions), [
                {"rule": "r", "model": "fraud", "firing": 1, "action": 0, "kind": "notify",
                 "claimed_by": "monitor", "claimed_at": 1, "done_at": 2,
                 "result": json.dumps({"event": 3, "delivery": "d" * 32, "url": url})},
                {"rule": "r", "model": "fraud", "firing": 1, "action": 1, "kind": "notify",
                 "claimed_by": "monitor", "claimed_at": 1, "done_at": 2,
                 "result": json.dumps({"error": f"webhook url {url[:80]!r} has no host"})}])
        with store.index.session() as conn:
            text = json.dumps(_alerts(conn, "fraud"))
        for secret in ("pw-s3cret", "XXXXXXXXXXXX", "T000/B000"):
            assert secret not in text
        assert "https://hooks.example.com" in text
    finally:
        close_store(client.uri)
