"""Delete and restore with auth on: each page offers them only to the roles the server would
let through (a viewer meets no enabled Delete or Restore anywhere, and no 4xx), and the
Trash lists only what the caller may view."""

from __future__ import annotations

import json
from contextlib import contextmanager

import httpx
import pytest
from playwright.sync_api import expect

from serving import ThreadedServer

TOKEN = "cairn_ui-trash-admin-token-0123456789"
ADMIN = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """Experiment "team" (runs "kept" and "binned", the second in the trash) and model "m"
    (1.0.0) made by root; vic views both, ed edits both, out has no role."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    import cairn
    from cairn.server import ServerSettings, create_app
    from cairn.store.local import LocalStore

    tmp = tmp_path_factory.mktemp("trash-roles")
    store = LocalStore(tmp / "store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAIRN_KEYS_DIR", str(tmp / "keys"))
        client = cairn.Client(store.uri, user="root")
        client._store = store
        client.register_model("m", LogisticRegression().fit(
            np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.2], [1.0, 0.9]]), np.array([0, 1, 0, 1])))
    app = create_app(store, settings=ServerSettings(auth=True, bootstrap_token=TOKEN,
                                                    bootstrap_user="root"))
    app.state.cairn.start()
    roles = {"vic": "viewer", "ed": "editor", "out": None}
    try:
        with ThreadedServer(app) as url, httpx.Client(base_url=url + "/api/v1", timeout=30,
                                                      headers=ADMIN) as api:
            exp = api.post("/experiments", json={"name": "team"}).json()["id"]
            runs = {n: api.post("/runs", json={"experiment_id": exp, "name": n}).json()["id"]
                    for n in ("kept", "binned")}
            assert api.post(f"/runs/{runs['binned']}/delete").status_code == 200
            tokens = {}
            for user, role in roles.items():
                assert api.post("/users", json={"name": user}).status_code == 201
                tokens[user] = api.post(f"/users/{user}/tokens", json={"name": "ui"}).json()["token"]
                for kind, rid in (("experiment", exp), ("model", "m")):
                    if role:
                        r = api.put("/roles", json={"user": user, "resource_type": kind,
                                                    "role": role, "resource_id": rid})
                        assert r.status_code == 200, r.text
            yield {"url": url, "experiment": exp, "runs": runs, "tokens": tokens}
    finally:
        store.close()


@contextmanager
def signed_in(browser, team, user):
    """A tab signed in as ``user`` that fails the test on a console error, a page error or
    any API answer of 400 or more."""
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


def test_a_viewer_is_offered_no_delete_and_no_restore(browser, team):
    with signed_in(browser, team, "vic") as page:
        page.goto(f"{team['url']}/?experiments={team['experiment']}")
        page.get_by_label("select kept").check()
        expect(page.get_by_role("button", name="Delete (1)")).to_be_disabled()
        expect(page.get_by_role("button", name="delete experiment team")).to_be_disabled()

        page.goto(f"{team['url']}/runs/{team['runs']['kept']}")
        expect(page.get_by_role("button", name="Delete run")).to_be_disabled()
        expect(page.get_by_role("button", name="Delete run")).to_have_attribute(
            "title", "needs the editor role on experiment team")

        page.goto(f"{team['url']}/models/m")
        expect(page.get_by_role("button", name="delete version 1.0.0")).to_be_disabled()
        expect(page.locator(".roles-note")).to_contain_text("deleting versions needs the admin role")

        page.goto(f"{team['url']}/trash")
        row = page.locator("table.trash tbody tr", has_text="binned")
        expect(row).to_contain_text("in team")
        expect(row).to_contain_text("root")  # who deleted it, from the audit log
        expect(row.get_by_role("button", name="restore run binned")).to_be_disabled()
        # Nothing anywhere on these pages could delete or restore for a viewer.
        for name in ("Delete", "Restore"):
            enabled = page.get_by_role("button", name=name).and_(page.locator(":enabled"))
            expect(enabled).to_have_count(0)


def test_an_editor_deletes_and_restores_runs_but_not_the_experiment_or_versions(browser, team):
    with signed_in(browser, team, "ed") as page:
        page.goto(f"{team['url']}/trash")
        row = page.locator("table.trash tbody tr", has_text="binned")
        row.get_by_role("button", name="restore run binned").click()
        expect(page.locator(".ok")).to_contain_text("Restored run binned")

        page.goto(f"{team['url']}/runs/{team['runs']['binned']}")
        page.get_by_role("button", name="Delete run").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete").click()
        expect(page.locator(".trash-notice")).to_be_visible()

        page.goto(f"{team['url']}/?experiments={team['experiment']}")
        expect(page.get_by_role("button", name="delete experiment team")).to_be_disabled()
        expect(page.get_by_role("button", name="delete experiment team")).to_have_attribute(
            "title", "needs the admin role on experiment team")
        page.goto(f"{team['url']}/models/m")
        expect(page.get_by_role("button", name="delete version 1.0.0")).to_be_disabled()


def test_the_trash_lists_only_what_the_caller_may_view(team):
    with httpx.Client(base_url=team["url"] + "/api/v1", timeout=30) as api:
        def trash(user):
            headers = {"authorization": f"Bearer {team['tokens'][user]}"} if user else ADMIN
            r = api.get("/ui/trash", headers=headers)
            assert r.status_code == 200, r.text
            return {(i["kind"], i["name"]): i["can"] for i in r.json()["items"]}

        api.post(f"/runs/{team['runs']['binned']}/delete", headers=ADMIN)
        assert trash(None) == {("run", "binned"): {"restore": True}}
        assert trash("vic") == {("run", "binned"): {"restore": False}}
        assert trash("ed") == {("run", "binned"): {"restore": True}}
        assert trash("out") == {}
        r = api.get("/ui/trash", params={"kind": "bogus"}, headers=ADMIN)
        assert r.status_code == 400 and "kind" in r.text
        exps = api.get("/ui/experiments", headers={
            "authorization": f"Bearer {team['tokens']['ed']}"}).json()["experiments"]
        assert [(e["name"], e["can"]) for e in exps] == [
            ("team", {"delete": False, "restore": False, "delete_runs": True})]
