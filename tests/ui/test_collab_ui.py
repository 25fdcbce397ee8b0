"""Comments and saved views in the browser: threads with Markdown rendered safely (an
attacker's `<img onerror>` and `javascript:` link stay text), replies, edits with their
history, deletes that keep the thread; a saved view of the runs table opened from its URL.
Every page fails its test if it logs a console error (tests/ui/conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from serving import ThreadedServer

from .conftest import Page

XSS = ('**bold** and _soft_ for @bob: <img src=x onerror="window.__xss=1"> '
       '[click](javascript:window.__xss=2) [home](https://example.com/docs) `<b>code</b>`')


@pytest.fixture(scope="module")
def collab_world(tmp_path_factory):
    """Experiment "talk" (runs with lr 0.1/0.01/0.001 and their loss), model "clf" 1.0.0 and
    data set "tiny"@1, served without auth."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    import cairn
    from cairn.server import create_app
    from cairn.services import datasets_for
    from cairn.store.local import LocalStore

    tmp = tmp_path_factory.mktemp("collab-ui")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAIRN_KEYS_DIR", str(tmp / "keys"))
        mp.setenv("CAIRN_CAPTURE_ENV", "0")
        store = LocalStore(tmp / "store")
        client = cairn.Client(store.uri, user="ann")
        client._store = store
        exp = client.create_experiment("talk").id
        runs = {}
        for lr, loss in ((0.1, 0.9), (0.01, 0.3), (0.001, 0.6)):
            r = client.create_run(exp, name=f"lr-{lr}", params={"lr": lr})
            client.log_metric(r.id, "loss", loss)
            client.set_terminated(r.id)
            runs[lr] = r.id
        X = np.arange(12, dtype=float).reshape(6, 2)
        client.register_model("clf", LogisticRegression().fit(X, [0, 1] * 3))
        datasets_for(client).add_array(X, "tiny")
    try:
        with ThreadedServer(create_app(store)) as url:
            yield {"url": url, "exp": exp, "runs": runs, "client": client}
    finally:
        store.close()


@pytest.fixture
def tab(browser, collab_world, tmp_path):
    shots = Path(os.environ.get("CAIRN_UI_SCREENSHOTS") or tmp_path)
    t = Page(browser, collab_world["url"], shots)
    yield t
    errors = list(t.errors)
    t.page.close()
    assert not errors, "the page logged errors:\n" + "\n".join(errors)


def _post(page, panel, text):
    panel.get_by_label("new comment").fill(text)
    panel.get_by_role("button", name="Comment", exact=True).click()


def test_a_run_thread_renders_markdown_safely_and_keeps_its_shape(tab, collab_world):
    run = collab_world["runs"][0.01]
    page = tab.goto(f"/runs/{run}")
    panel = page.locator("section.comments")
    expect(panel).to_contain_text("No comments yet.")
    _post(page, panel, XSS)
    first = panel.locator(".comment").first
    body = first.locator(".comment-body").first
    expect(body.locator("strong")).to_have_text("bold")
    expect(body.locator("em")).to_have_text("soft")
    expect(body.locator(".mention")).to_have_text("@bob")
    expect(body.locator("code")).to_have_text("<b>code</b>")
    expect(body).to_contain_text('<img src=x onerror="window.__xss=1">')  # shown, not made
    expect(body).to_contain_text("[click](javascript:window.__xss=2)")
    assert body.locator("img, b, script").count() == 0
    links = body.locator("a")
    expect(links).to_have_count(1)
    expect(links.first).to_have_attribute("href", "https://example.com/docs")
    assert page.evaluate("window.__xss") is None
    # a reply sits under its parent
    first.get_by_role("button", name="Reply").click()
    first.get_by_label("reply to local").fill("Agreed, see [the run](/runs/" + run + ")")
    first.get_by_role("button", name="Comment", exact=True).click()
    reply = first.locator(".replies .comment")
    expect(reply).to_contain_text("Agreed, see the run")
    expect(reply.locator("a")).to_have_attribute("href", f"/runs/{run}")
    # an edit keeps the old body in the history
    first.locator(".comment-tools").first.get_by_role("button", name="Edit").click()
    first.get_by_label("edit comment").fill("Rewritten: **loss** is fine")
    first.get_by_role("button", name="Save").click()
    expect(first.locator(".comment-head").first).to_contain_text("edited")
    first.locator(".comment-tools").first.get_by_role("button", name="History").click()
    expect(first.locator(".comment-history")).to_contain_text("before edit 1 by local")
    expect(first.locator(".comment-history")).to_contain_text("for @bob")
    tab.shot("comments-run")
    # a delete keeps the reply in place; restore brings the text back
    first.locator(".comment-tools").first.get_by_role("button", name="Delete").click()
    expect(first.locator(".comment-body").first).to_have_text("This comment was deleted.")
    expect(first.locator(".replies .comment")).to_contain_text("Agreed")
    first.get_by_role("button", name="Restore").click()
    expect(first.locator(".comment-body").first).to_contain_text("Rewritten: loss is fine")
    # what the browser wrote is what the library reads
    from cairn.collab import collab_for

    stored = collab_for(collab_world["client"]).comments("run", run)
    assert [(c.author, c.parent_id is None, c.edits) for c in stored] == [
        ("local", True, 1), ("local", False, 0)]
    assert stored[0].body == "Rewritten: **loss** is fine"


def test_comments_on_an_experiment_a_model_version_and_a_data_set_version(tab, collab_world):
    from cairn.collab import collab_for

    page = tab.goto(f"/?experiments={collab_world['exp']}")
    panel = page.locator(".experiment-comments section.comments")
    _post(page, panel, "Plan: sweep **lr** lower")
    expect(panel.locator(".comment-body strong")).to_have_text("lr")

    page = tab.goto("/models/clf")
    page.locator("a.version-link", has_text="1.0.0").click()
    panel = page.locator(".version-details section.comments")
    _post(page, panel, "Ship 1.0.0? @ann")
    expect(panel.locator(".mention")).to_have_text("@ann")

    page = tab.goto("/datasets/tiny?version=1")
    panel = page.locator("section.comments")
    _post(page, panel, "Labels checked")
    expect(panel.locator(".comment")).to_contain_text("Labels checked")

    talk = collab_for(collab_world["client"])
    assert [c.body for c in talk.comments("experiment", collab_world["exp"])] == [
        "Plan: sweep **lr** lower"]
    assert [c.body for c in talk.comments("model_version", "clf@1.0.0")] == ["Ship 1.0.0? @ann"]
    assert [c.body for c in talk.comments("dataset_version", "tiny@1")] == ["Labels checked"]
    assert [c.body for c in talk.mentions("ann")] == ["Ship 1.0.0? @ann"]


def test_a_saved_view_is_listed_and_opened_from_its_url(tab, collab_world):
    exp = collab_world["exp"]
    page = tab.goto(f"/?experiments={exp}&filter=metrics.loss%20%3C%200.7"
                    "&sort=metrics.loss:ASC&columns=metrics.loss,params.lr")
    expect(page.locator(".vt")).to_contain_text("lr-0.01")
    page.get_by_label("view name").fill("low loss")
    page.get_by_role("button", name="Save view").click()
    share = page.locator("a.share-link")
    expect(share).to_have_attribute("href", f"/?experiments={exp}&view=low+loss")
    expect(page).to_have_url(f"{tab.base}/?experiments={exp}&filter=metrics.loss+%3C+0.7"
                             "&sort=metrics.loss%3AASC&columns=metrics.loss%2Cparams.lr"
                             "&view=low+loss")
    from cairn.collab import collab_for

    saved = collab_for(collab_world["client"]).get_view(exp, "low loss")
    assert saved.state == {"filter": "metrics.loss < 0.7", "columns": ["metrics.loss", "params.lr"],
                           "group": "", "sort": {"id": "metrics.loss", "dir": "ASC"},
                           "charts": []}
    # the shared URL alone restores the state
    page = tab.goto(f"/?experiments={exp}&view=low+loss")
    expect(page.get_by_label("filter")).to_have_value("metrics.loss < 0.7")
    rows = page.locator(".vt a[href^='/runs/']")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_text("lr-0.01")  # sorted by loss, ascending
    expect(rows.nth(1)).to_have_text("lr-0.001")
    expect(page.get_by_label("saved views")).to_have_value("low loss")
    tab.shot("saved-view")
    # choosing a view from the list applies it too; deleting it leaves the table as it is
    page = tab.goto(f"/?experiments={exp}")
    expect(page.get_by_label("saved views").locator("option")).to_have_count(2)
    page.get_by_label("saved views").select_option("low loss")
    expect(page.get_by_label("filter")).to_have_value("metrics.loss < 0.7")
    expect(page.locator(".vt a[href^='/runs/']")).to_have_count(2)
    page.get_by_role("button", name="Delete view").click()
    expect(page.get_by_label("saved views").locator("option")).to_have_count(1)
    assert collab_for(collab_world["client"]).views(exp) == []


def test_a_dashboard_draws_its_panels_and_is_edited_in_the_page(tab, collab_world):
    from cairn.collab import collab_for

    exp = collab_world["exp"]
    talk = collab_for(collab_world["client"])
    talk.save_view(exp, "fast", {"filter": "params.lr != '0.1'",
                                 "sort": {"id": "metrics.loss", "dir": "ASC"}})
    talk.save_dashboard("weekly", [
        {"kind": "table", "experiment_id": exp, "view": "fast", "title": "Fast runs",
         "columns": ["metrics.loss", "params.lr"]},
        {"kind": "line", "experiment_id": exp, "columns": ["metrics.loss"], "limit": 3},
        {"kind": "scatter", "experiment_id": exp, "columns": ["params.lr", "metrics.loss"]},
        {"kind": "parallel", "experiment_id": exp, "columns": ["params.lr", "metrics.loss"]},
    ], description="What we look at on Mondays")
    page = tab.goto("/dashboards")
    page.get_by_role("link", name="weekly").click()
    expect(page).to_have_url(f"{tab.base}/dashboards/weekly")
    expect(page.locator("h1")).to_have_text("weekly")
    table = page.locator("section.panel-table")
    expect(table).to_contain_text("Fast runs")
    expect(table.locator("tbody tr")).to_have_count(2)  # the view's query: lr 0.01, 0.001
    expect(table.locator("tbody tr").first).to_contain_text("lr-0.01")  # its sort: loss ASC
    expect(page.locator("section.panel-line .chart[data-key=loss] canvas")).to_have_count(1)
    expect(page.locator("section.panel-line .legend")).to_contain_text("lr-0.1")
    expect(page.locator("section.panel-scatter svg.scatter")).to_have_count(1)
    expect(page.locator("section.panel-parallel svg.parallel")).to_have_count(1)
    tab.shot("dashboard")
    # add a panel in the page, then remove it: both are saved on the server
    page.get_by_label("panel kind").select_option("table")
    page.get_by_label("panel experiment").select_option(label="talk")
    page.get_by_label("panel columns").fill("params.lr")
    page.get_by_label("panel title").fill("Just LR")
    page.get_by_role("button", name="Add panel").click()
    expect(page.locator("section.panel")).to_have_count(5)
    expect(page.locator("section.panel").nth(4)).to_contain_text("Just LR")
    assert [p["title"] for p in talk.get_dashboard("weekly").panels][-1] == "Just LR"
    page.locator("section.panel").nth(4).get_by_role("button", name="Remove").click()
    expect(page.locator("section.panel")).to_have_count(4)
    assert len(talk.get_dashboard("weekly").panels) == 4
    # a new, empty dashboard from the list page
    page = tab.goto("/dashboards")
    page.get_by_label("dashboard name").fill("scratch")
    page.get_by_role("button", name="New dashboard").click()
    expect(page).to_have_url(f"{tab.base}/dashboards/scratch")
    expect(page.locator(".dashboard")).to_contain_text("No panels yet")
    collab_for(collab_world["client"], admin=True).delete_dashboard("scratch")  # by "local"


def test_the_mentions_page_lists_what_mentions_a_user_with_links(tab, collab_world):
    from cairn.collab import collab_for

    run = collab_world["runs"][0.1]
    collab_for(collab_world["client"]).add_comment("run", run, "@zoe is lr 0.1 too high?")
    page = tab.goto("/")
    page.get_by_role("link", name="Mentions").click()
    expect(page.locator("h1")).to_have_text("Comments that mention you")
    page = tab.goto("/mentions?user=zoe")  # auth off: the local user is an admin
    item = page.locator(".comment")
    expect(item).to_have_count(1)
    expect(item.locator(".mention")).to_have_text("@zoe")
    item.get_by_role("link", name=f"run {run[:8]}").click()
    expect(page).to_have_url(f"{tab.base}/runs/{run}")
    expect(page.locator("section.comments")).to_contain_text("is lr 0.1 too high?")


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """A server with auth on: experiment "team" with one run, ann edits it (and made a view,
    a dashboard and a comment), vic only views it."""
    import httpx

    from cairn.server import ServerSettings, create_app
    from cairn.store.local import LocalStore

    admin = "cairn_collab-ui-admin-token-000000001"
    tmp = tmp_path_factory.mktemp("collab-team")
    store = LocalStore(tmp / "store")
    app = create_app(store, settings=ServerSettings(auth=True, bootstrap_token=admin,
                                                    bootstrap_user="root"))
    app.state.cairn.start()
    try:
        with ThreadedServer(app) as url, httpx.Client(base_url=url + "/api/v1",
                                                      timeout=30) as api:
            root = {"authorization": f"Bearer {admin}"}
            exp = api.post("/experiments", json={"name": "team"}, headers=root).json()["id"]
            run = api.post("/runs", json={"experiment_id": exp}, headers=root).json()["id"]
            api.post(f"/runs/{run}/log", json={"metrics": [{"key": "loss", "value": 0.5}]},
                     headers=root)
            tokens = {}
            for user, role in (("ann", "editor"), ("vic", "viewer")):
                api.post("/users", json={"name": user}, headers=root)
                tokens[user] = api.post(f"/users/{user}/tokens", json={"name": "t"},
                                        headers=root).json()["token"]
                api.put("/roles", json={"user": user, "resource_type": "experiment",
                                        "resource_id": exp, "role": role}, headers=root)
            ann = {"authorization": f"Bearer {tokens['ann']}"}
            api.put(f"/experiments/{exp}/views/anns", json={"state": {"filter": ""}}, headers=ann)
            api.put("/dashboards/anns", json={"panels": [
                {"kind": "table", "experiment_id": exp, "columns": ["metrics.loss"]}]}, headers=ann)
            api.post("/comments", json={"target_type": "run", "target_id": run,
                                        "body": "ann's note"}, headers=ann)
            yield {"url": url, "exp": exp, "run": run, "tokens": tokens}
    finally:
        store.close()


def test_with_auth_a_viewer_is_offered_only_what_the_server_accepts(browser, team, tmp_path):
    tab = Page(browser, team["url"], tmp_path)
    asked: list[str] = []  # every API answer: none may be a refusal
    tab.page.on("response", lambda r: "/api/" in r.url and asked.append(f"{r.status} {r.url}"))
    try:
        page = tab.goto("/")
        page.evaluate(f"localStorage.setItem('cairn.token', '{team['tokens']['vic']}')")
        page = tab.goto(f"/?experiments={team['exp']}&view=anns")
        expect(page.get_by_label("saved views")).to_have_value("anns")
        expect(page.get_by_role("button", name="Save view")).to_be_disabled()
        expect(page.get_by_role("button", name="Delete view")).to_be_disabled()
        page = tab.goto(f"/runs/{team['run']}")
        panel = page.locator("section.comments")
        expect(panel.locator(".comment")).to_contain_text("ann's note")
        expect(panel.locator(".comment").get_by_role("button", name="Edit")).to_have_count(0)
        _post(page, panel, "vic agrees")  # a viewer may comment
        mine = panel.locator(".comment", has_text="vic agrees")
        expect(mine.get_by_role("button", name="Edit")).to_have_count(1)
        page = tab.goto("/dashboards/anns")
        expect(page.locator("section.panel-table tbody tr")).to_have_count(1)
        expect(page.get_by_role("button", name="Remove")).to_have_count(0)
        expect(page.get_by_role("button", name="Add panel")).to_have_count(0)
    finally:
        tab.page.evaluate("localStorage.clear()")
        errors = list(tab.errors)
        tab.page.close()
    assert not errors, errors
    assert asked and all(a.startswith(("200 ", "201 ")) for a in asked), asked
