"""Serving the built UI: every page URL gets index.html, API paths keep their JSON errors."""

from __future__ import annotations

import httpx


def test_page_urls_load_the_app_and_api_paths_stay_json(server):
    for path in ("/", "/runs/abc", "/compare?runs=a,b", "/models", "/models/digits",
                 "/datasets", "/lineage?node=run:x"):
        r = httpx.get(server + path, timeout=60)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("text/html")
        assert '<main id="app">' in r.text
        assert r.headers["cache-control"] == "no-cache"
    r = httpx.get(server + "/api/v1/no-such-thing", timeout=60)
    assert r.status_code == 404
    assert r.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    assert httpx.post(server + "/api/v1/no-such-thing", timeout=60).status_code == 404
    assert httpx.get(server + "/api", timeout=60).status_code == 404
    assert httpx.get(server + "/ajax-api/no-such-thing", timeout=60).status_code == 404
    assert httpx.get(server + "/apiary", timeout=60).status_code == 200  # a page, not an API path


def test_assets_are_served_with_long_caching_and_missing_ones_are_404(server):
    html = httpx.get(server + "/", timeout=60).text
    asset = html.split('src="', 1)[1].split('"', 1)[0]
    assert asset.startswith("/assets/")
    r = httpx.get(server + asset, timeout=60)
    assert r.status_code == 200
    assert "immutable" in r.headers["cache-control"]
    assert httpx.get(server + "/assets/nope.js", timeout=60).status_code == 404


def test_paths_cannot_escape_the_build_directory(server):
    r = httpx.get(server + "/..%2f..%2fpyproject.toml", timeout=60)
    assert "[project]" not in r.text


def test_api_routes_win_over_pages(server):
    assert httpx.get(server + "/ready", timeout=60).status_code == 200
    assert httpx.get(server + "/openapi.json", timeout=60).json()["info"]["title"]


def test_ui_not_built_says_how_to_build(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from cairn.server import create_app
    from cairn.server.ui import pages
    from cairn.store.memory import MemoryStore

    monkeypatch.setattr(pages, "STATIC", tmp_path / "nothing")
    r = TestClient(create_app(MemoryStore())).get("/runs/x")
    assert r.status_code == 503
    assert "make ui" in r.text
