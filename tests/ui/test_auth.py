"""A team server with auth on: the UI asks for an API token, then works with it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from serving import ThreadedServer

TOKEN = "cairn_ui-test-admin-token-0123456789"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    from cairn.server import ServerSettings, create_app
    from cairn.store.local import LocalStore

    store = LocalStore(tmp_path_factory.mktemp("auth") / "store")
    store.create_experiment("secret-experiment")
    app = create_app(store, settings=ServerSettings(auth=True, bootstrap_token=TOKEN,
                                                    bootstrap_user="root"))
    app.state.cairn.start()
    try:
        with ThreadedServer(app) as url:
            yield url
    finally:
        store.close()


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
