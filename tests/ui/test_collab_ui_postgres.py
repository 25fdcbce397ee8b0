"""Comments, saved views, dashboards and reports in the browser against a server on
PostgreSQL, seeded through the server's own API by a remote client (as a team uses it).
Every page fails its test if it logs a console error (tests/ui/conftest.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from pg_fixtures import pg_database  # noqa: F401  (a fixture)
from serving import ThreadedServer

from .conftest import Page

pytestmark = pytest.mark.postgres
STEPS = 25


@pytest.fixture(scope="module")
def pg_world(tmp_path_factory, pg_database):  # noqa: F811
    import numpy as np
    from pg_fixtures import create_schema
    from sklearn.linear_model import LogisticRegression

    import cairn
    from cairn.cas import ObjectStore
    from cairn.collab import collab_for
    from cairn.server import ServerSettings, create_app
    from cairn.store.sql.store import SqlStore

    tmp = tmp_path_factory.mktemp("collab-pg")
    store = SqlStore(create_schema(pg_database), ObjectStore.local(tmp / "objects"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAIRN_KEYS_DIR", str(tmp / "keys"))
        mp.setenv("CAIRN_CAPTURE_ENV", "0")
        mp.setenv("CAIRN_SPOOL_DIR", str(tmp / "spool"))
        app = create_app(store, settings=ServerSettings(check_artifact_objects=False))
        try:
            with ThreadedServer(app) as url:
                client = cairn.Client(url, user="ann")
                exp = client.create_experiment("pg-talk").id
                runs = []
                for lr in (0.1, 0.01):
                    r = client.create_run(exp, name=f"lr-{lr}", params={"lr": lr})
                    for step in range(STEPS):
                        client.log_metric(r.id, "loss", 1 / (step + 1) + lr, step=step)
                    client.set_terminated(r.id)
                    runs.append(r.id)
                X = np.arange(12, dtype=float).reshape(6, 2)
                client.register_model("clf", LogisticRegression().fit(X, [0, 1] * 3))
                talk = collab_for(client)
                talk.save_view(exp, "slow", {"filter": "params.lr = '0.1'"})
                talk.save_dashboard("pg-board", [
                    {"kind": "table", "experiment_id": exp, "view": "slow",
                     "columns": ["metrics.loss", "params.lr"]}])
                talk.save_report("pg-report", "# On PostgreSQL\n\n```cairn-panel\n" + json.dumps(
                    {"type": "metric", "run": runs[1], "key": "loss"}) + "\n```\n")
                yield {"url": url, "exp": exp, "runs": runs, "client": client}
                cairn.store.close_store(url)
        finally:
            store.close()


@pytest.fixture
def tab(browser, pg_world, tmp_path):
    shots = Path(os.environ.get("CAIRN_UI_SCREENSHOTS") or tmp_path)
    t = Page(browser, pg_world["url"], shots)
    yield t
    errors = list(t.errors)
    t.page.close()
    assert not errors, "the page logged errors:\n" + "\n".join(errors)


def test_comments_and_a_saved_view_on_postgresql(tab, pg_world):
    page = tab.goto(f"/runs/{pg_world['runs'][0]}")
    panel = page.locator("section.comments")
    panel.get_by_label("new comment").fill("On **PostgreSQL** too, @ann")
    panel.get_by_role("button", name="Comment", exact=True).click()
    expect(panel.locator(".comment-body strong")).to_have_text("PostgreSQL")
    page = tab.goto(f"/runs/{pg_world['runs'][0]}")  # read back from the database
    expect(page.locator("section.comments .mention")).to_have_text("@ann")
    page = tab.goto(f"/?experiments={pg_world['exp']}&view=slow")
    expect(page.get_by_label("filter")).to_have_value("params.lr = '0.1'")
    expect(page.locator(".vt a[href^='/runs/']")).to_have_count(1)


def test_a_dashboard_and_a_report_on_postgresql(tab, pg_world):
    page = tab.goto("/dashboards/pg-board")
    table = page.locator("section.panel-table")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table.locator("tbody tr").first).to_contain_text("lr-0.1")
    page = tab.goto("/reports/pg-report")
    expect(page.locator("article.report h3").first).to_have_text("On PostgreSQL")
    chart = page.locator("article.report section.panel-metric .chart[data-key=loss]")
    expect(chart).to_have_attribute("data-ready", "1")
    expect(chart).to_have_attribute("data-points", str(STEPS))
