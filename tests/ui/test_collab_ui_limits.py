"""What one comment may not do to every viewer of a thread: a line of 60,000 '>' quotes
and a reply chain hundreds deep render (quotes nest 8 deep, replies 8 deep, the rest as
text and in order) with no console error (tests/ui/conftest.py fails a page that logs one)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from serving import ThreadedServer

from .conftest import Page

API = "/api/v1"


@pytest.fixture(scope="module")
def thread_world(tmp_path_factory):
    from cairn.server import create_app
    from cairn.store.local import LocalStore

    tmp = tmp_path_factory.mktemp("collab-limits")
    store = LocalStore(tmp / "store")
    exp = store.create_experiment("limits").id
    try:
        with ThreadedServer(create_app(store)) as url:
            with httpx.Client(base_url=url + API, timeout=60) as http:
                def say(body, parent=None):
                    r = http.post("/comments", json={"target_type": "experiment",
                                                     "target_id": exp, "body": body,
                                                     **({"parent_id": parent} if parent else {})})
                    assert r.status_code == 201, r.text
                    return r.json()["id"]

                say(">" * 60_000 + " deepest")
                parent = say("chain 0")
                for i in range(1, 300):
                    parent = say(f"chain {i}", parent)
            yield {"url": url, "exp": exp}
    finally:
        store.close()


@pytest.fixture
def tab(browser, thread_world, tmp_path):
    shots = Path(os.environ.get("CAIRN_UI_SCREENSHOTS") or tmp_path)
    t = Page(browser, thread_world["url"], shots)
    yield t
    errors = list(t.errors)
    t.page.close()
    assert not errors, "the page logged errors:\n" + "\n".join(errors)


def test_deep_quotes_and_reply_chains_render_for_every_viewer(tab, thread_world):
    page = tab.goto(f"/?experiments={thread_world['exp']}")
    panel = page.locator("section.comments")
    expect(panel.locator(".comment")).to_have_count(301, timeout=30_000)
    quoted = panel.locator(".comment-body").first
    assert quoted.locator("blockquote").count() == 8  # nested 8 deep, the rest is text
    expect(quoted).to_contain_text("deepest")
    bodies = panel.locator(".comment-body").all_inner_texts()
    assert [b for b in bodies if b.startswith("chain")] == [f"chain {i}" for i in range(300)]
