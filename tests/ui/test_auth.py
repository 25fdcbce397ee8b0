"""A team server with auth on: the UI asks for an API token, then works with it."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pytest
from playwright.sync_api import expect

from serving import ThreadedServer

TOKEN = "cairn_ui-test-admin-token-0123456789"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    from cairn.server import ServerSettings, create_app
    from cairn.store.local import LocalStore

    tmp = tmp_path_factory.mktemp("auth")
    store = LocalStore(tmp / "store")
    store.create_experiment("secret-experiment")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAIRN_KEYS_DIR", str(tmp / "keys"))  # never the developer's signing keys
        _guarded_model(store)
    app = create_app(store, settings=ServerSettings(auth=True, bootstrap_token=TOKEN,
                                                    bootstrap_user="root"))
    app.state.cairn.start()
    try:
        with ThreadedServer(app) as url:
            yield url
    finally:
        store.close()


def _guarded_model(store) -> None:
    """Model "guarded": 1.0.0 and 1.1.0 in Development; Production needs an approval, and
    root's request to move 1.0.0 there is waiting."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    import cairn

    client = cairn.Client(store.uri, user="root")
    client._store = store
    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.2], [1.0, 0.9]])
    y = np.array([0, 1, 0, 1])
    for C in (1.0, 0.5):
        client.register_model("guarded", LogisticRegression(C=C).fit(X, y), params={"C": C})
    client.set_stage_policy("guarded", "production", approvals=1)
    client.request_transition("guarded", "1.0.0", "production", comment="first release")


def test_token_login_and_sign_out(browser, auth_server):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))  # none at all
    asked: list[str] = []  # every API request the page makes, with its status
    page.on("response", lambda r: "/api/" in r.url and asked.append(f"{r.status} {r.url}"))
    try:
        # The page asks GET /ui/session first: no token, so the form, and no 401.
        page.goto(auth_server + "/")
        expect(page.locator("form.login")).to_contain_text("needs an API token")
        # A wrong token is checked the same way before it is kept: refused, still no 401.
        page.get_by_label("API token").fill("wrong-token")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("form.login")).to_contain_text("refused")
        assert page.evaluate("localStorage.getItem('cairn.token')") is None
        page.get_by_label("API token").fill(TOKEN)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator(".top .whoami")).to_have_text("root")
        page.locator(".picker-button").click()
        expect(page.locator(".menu-item", has_text="secret-experiment")).to_be_visible()
        page.get_by_role("link", name="Sign out").click()
        expect(page.locator("form.login")).to_contain_text("needs an API token")
        expect(page.locator(".top .whoami")).to_have_count(0)
    finally:
        page.evaluate("localStorage.clear()")
        page.close()
    assert not errors, errors
    assert asked and all(a.startswith("200 ") for a in asked), asked


def test_ui_endpoints_show_only_what_the_caller_may_view(auth_server):
    import httpx

    admin = {"authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=auth_server + "/api/v1", timeout=30) as api:
        exp = api.get("/experiments/by-name", params={"name": "secret-experiment"},
                      headers=admin).json()["id"]
        run = api.post("/runs", json={"experiment_id": exp, "params": {"seed": "1"}},
                       headers=admin).json()["id"]
        api.post(f"/runs/{run}/log", json={"metrics": [{"key": "loss", "value": 1.0}]},
                 headers=admin)
        assert api.post("/users", json={"name": "outsider"}, headers=admin).status_code == 201
        token = api.post("/users/outsider/tokens", json={"name": "t"}, headers=admin).json()
        them = {"authorization": f"Bearer {token['token']}"}

        assert api.get("/ui/session").json() == {"auth": True, "user": None}
        assert api.get("/ui/session", headers={"authorization": "Bearer wrong"}).json() == {
            "auth": True, "user": None}
        assert api.get("/ui/session", headers=them).json() == {"auth": True, "user": "outsider"}
        assert api.post("/ui/runs", json={}).status_code == 401
        mine = api.post("/ui/runs", json={"columns": ["params.seed"]}, headers=admin).json()
        assert [r["id"] for r in mine["rows"]] == [run]
        assert api.post("/ui/runs", json={}, headers=them).json()["rows"] == []
        assert api.get("/ui/keys", params={"kind": "params"}, headers=them).json()["keys"] == []
        assert api.get("/ui/keys", params={"kind": "params"},
                       headers=admin).json()["keys"] == ["seed"]
        assert api.get(f"/ui/runs/{run}/series", params={"key": "loss"},
                       headers=them).status_code == 403
        assert api.get(f"/ui/runs/{run}", headers=admin).json()["run"]["id"] == run
        page = api.get(f"/ui/runs/{run}", headers=them)  # the run page: 200, nothing to show
        assert page.status_code == 200
        assert page.json()["run"] is None and page.json()["status"] == 403
        assert api.get(f"/ui/runs/{run}").status_code == 401  # no token: the sign-in form
        hidden = api.get("/ui/models/anything", headers=them)  # the model page: 200, nothing
        assert hidden.status_code == 200 and hidden.json()["model"] is None
        assert hidden.json()["status"] == 403
        r = api.post("/ui/compare/aggregate", json={"run_ids": [run], "metric": "loss"},
                     headers=them)
        assert r.status_code == 403


# -- roles: the pages offer only what the server would accept -------------------------------

def _admin():
    return {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def team(auth_server):
    """Experiment "team" with one run, and three users with tokens: vic views the experiment
    and model "guarded", ed edits both, amy approves the model's requests (and nothing on
    the experiment)."""
    import httpx

    roles = {"vic": [("experiment", "viewer"), ("model", "viewer")],
             "ed": [("experiment", "editor"), ("model", "editor")],
             "amy": [("model", "approver")]}
    with httpx.Client(base_url=auth_server + "/api/v1", timeout=30, headers=_admin()) as api:
        exp = api.post("/experiments", json={"name": "team"}).json()["id"]
        run = api.post("/runs", json={"experiment_id": exp, "name": "shared-run"}).json()["id"]
        tokens = {}
        for user, grants in roles.items():
            assert api.post("/users", json={"name": user}).status_code == 201
            tokens[user] = api.post(f"/users/{user}/tokens", json={"name": "ui"}).json()["token"]
            for kind, role in grants:
                r = api.put("/roles", json={"user": user, "resource_type": kind, "role": role,
                                            "resource_id": exp if kind == "experiment"
                                            else "guarded"})
                assert r.status_code == 200, r.text
    return {"url": auth_server, "experiment": exp, "run": run, "tokens": tokens}


@contextmanager
def signed_in(browser, team, user):
    """A tab signed in as ``user`` that fails the test on a console error, a page error or
    any API answer of 400 or more (a refusal is a console error in Chromium)."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("response", lambda r: "/api/" in r.url and r.status >= 400
            and errors.append(f"{r.status} {r.request.method} {r.url}"))
    page.add_init_script(f"localStorage.setItem('cairn.token', {json.dumps(team['tokens'][user])})")
    try:
        yield page
    finally:
        page.evaluate("localStorage.clear()")
        page.close()
    assert not errors, errors


def test_can_says_what_each_role_may_do(team):
    import httpx

    def can(user, path):
        headers = {"authorization": f"Bearer {team['tokens'][user]}"} if user else _admin()
        r = api.get(path, headers=headers)
        assert r.status_code == 200, r.text
        return r.json()["can"]

    model, run = "/ui/models/guarded", f"/ui/runs/{team['run']}"
    with httpx.Client(base_url=team["url"] + "/api/v1", timeout=30) as api:
        assert can("vic", model) == {"edit": False, "approve": False, "admin": False,
                                     "delete": False}
        assert can("ed", model) == {"edit": True, "approve": False, "admin": False,
                                    "delete": False}
        assert can("amy", model) == {"edit": True, "approve": True, "admin": False,
                                     "delete": False}
        assert can(None, model) == {"edit": True, "approve": True, "admin": True,
                                    "delete": True}  # root
        assert can("vic", run) == {"edit": False, "delete": False}
        assert can("ed", run) == {"edit": True, "delete": True}
        assert can(None, run) == {"edit": True, "delete": True}
        assert can("amy", run) is None  # no role on the experiment: nothing to show
        # The same guard answers the mutations: what `can` denies, the server refuses.
        vic = {"authorization": f"Bearer {team['tokens']['vic']}"}
        r = api.put(f"/runs/{team['run']}/tags/cairn.note", content="x", headers=vic)
        assert r.status_code == 403
        r = api.post("/models/guarded/versions/1.1.0/stage", json={"stage": "Staging"},
                     headers=vic)
        assert r.status_code == 403


def test_a_viewer_gets_no_action_the_server_would_refuse(browser, team):
    with signed_in(browser, team, "vic") as page:
        page.goto(f"{team['url']}/models/guarded")
        expect(page.locator(".roles-note")).to_contain_text("Signed in as vic")
        row = page.locator('tr[data-version="1.1.0"]')
        move = row.get_by_role("button", name="Move")
        expect(move).to_be_disabled()
        expect(move).to_have_attribute("title", "needs the editor role on model guarded")
        expect(row.get_by_label("stage for 1.1.0")).to_be_disabled()
        request = page.locator("table.requests tbody tr")
        expect(request).to_contain_text("root")
        for name in ("Approve", "Reject"):
            button = request.get_by_role("button", name=name)
            expect(button).to_be_disabled()
            expect(button).to_have_attribute("title", "needs the approver role on model guarded")
        request.get_by_role("button", name="Approve").click(force=True)  # a disabled button
        rollback = page.get_by_role("button", name="Roll back")
        expect(rollback).to_be_disabled()
        expect(rollback).to_have_attribute("title", "needs the editor role on model guarded")
        expect(page.locator("button:enabled", has_text="Move")).to_have_count(0)

        page.goto(f"{team['url']}/runs/{team['run']}")
        expect(page.locator("h1")).to_contain_text("shared-run")
        notes = page.get_by_role("button", name="Add notes")
        expect(notes).to_be_disabled()
        expect(notes).to_have_attribute("title", "needs the editor role on experiment team")
        expect(page.locator("section.notes button:enabled")).to_have_count(0)
        page.wait_for_timeout(200)  # a refused request would have come back by now


def test_an_editor_edits_notes_and_moves_but_does_not_decide(browser, team):
    with signed_in(browser, team, "ed") as page:
        page.goto(f"{team['url']}/runs/{team['run']}")
        page.get_by_role("button", name="Add notes").click()
        page.get_by_label("notes").fill("tried a smaller batch")
        page.get_by_role("button", name="Save").click()
        expect(page.locator(".note-text")).to_have_text("tried a smaller batch")

        page.goto(f"{team['url']}/models/guarded")
        expect(page.locator(".roles-note")).to_contain_text("approver role")
        approve = page.locator("table.requests tbody tr").get_by_role("button", name="Approve")
        expect(approve).to_be_disabled()
        row = page.locator('tr[data-version="1.1.0"]')
        row.get_by_label("stage for 1.1.0").select_option("Staging")
        row.get_by_role("button", name="Move").click()
        expect(page.locator(".ok")).to_contain_text("1.1.0 moved to Staging")
        expect(row.locator(".badge")).to_have_text("Staging")

        # Ed's own request: the editor role that made it may withdraw it.
        import httpx

        r = httpx.post(f"{team['url']}/api/v1/models/guarded/requests",
                       json={"version": "1.1.0", "stage": "Production"},
                       headers={"authorization": f"Bearer {team['tokens']['ed']}"}, timeout=60)
        assert r.status_code == 201, r.text
        page.reload()
        mine = page.locator(f'table.requests tr[data-request="{r.json()["id"]}"]')
        expect(mine.get_by_role("button", name="Approve")).to_have_count(0)
        withdraw = mine.get_by_role("button", name="Withdraw")
        expect(withdraw).to_be_enabled()
        withdraw.click()
        expect(page.locator(".ok")).to_contain_text("withdrawn: 1.1.0 → Production")
        expect(page.locator("table.requests tbody tr")).to_have_count(1)  # root's, waiting
        expect(page.locator(".timeline li").first).to_contain_text("request withdrawn by ed")


def test_an_approver_approves(browser, team):
    with signed_in(browser, team, "amy") as page:
        page.goto(f"{team['url']}/models/guarded")
        expect(page.locator(".roles-note")).to_have_count(0)
        request = page.locator("table.requests tbody tr")
        approve = request.get_by_role("button", name="Approve")
        expect(approve).to_be_enabled()
        approve.click()
        expect(page.locator(".ok")).to_contain_text("approved: 1.0.0 → Production")
        expect(page.locator('tr[data-version="1.0.0"] .badge')).to_have_text("Production")
        expect(page.locator(".timeline li").first).to_contain_text("by amy")

