"""Review of audited downloads: two callers at once, and a download that fails."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.server.test_download_audit import API, _bob_events, team  # noqa: F401

pytestmark = pytest.mark.slow


def _events(team, **params):  # noqa: F811
    return httpx.get(f"{team['url']}{API}/audit", params={"limit": 1000, **params},
                     headers=team["admin_h"]).json()["events"]


def test_two_callers_at_once_are_two_actors(team, tmp_path):  # noqa: F811
    """Object reads are gathered per caller: bob's and the admin's simultaneous directory
    downloads are one event each, each with its own caller."""
    from cairn import Client
    from cairn.store.http import HttpStore
    from tests.server.test_download_audit import TOKEN

    admin = Client(store=HttpStore(team["url"], token=TOKEN,
                                   spool_dir=str(tmp_path / "spool")))
    before = {a: len(_events(team, actor=a, action="object.download")) for a in ("bob", "admin")}
    jobs = [threading.Thread(target=c.download_artifacts, args=(team["run"], "", tmp_path / n))
            for n, c in (("b", team["bob"]), ("a", admin))]
    for j in jobs:
        j.start()
    for j in jobs:
        j.join()
    admin.store.close()
    bob = _bob_events(team, "object.download", before["bob"] + 1)
    assert len(bob) == before["bob"] + 1 and bob[0]["after"]["objects"] == 3
    mine = _events(team, actor="admin", action="object.download")
    assert len(mine) == before["admin"] + 1 and mine[0]["after"]["objects"] == 3


def test_a_missing_file_is_a_404_and_no_download(team):  # noqa: F811
    before = len(_bob_events(team, "artifact.download", 0, 0))
    r = httpx.get(f"{team['url']}{API}/runs/{team['run']}/artifacts/download",
                  params={"path": "nope.txt"},
                  headers={"authorization": f"Bearer {team['bob_token']}"})
    assert r.status_code == 404
    r = httpx.get(f"{team['url']}{API}/objects/{'0' * 64}",
                  headers={"authorization": f"Bearer {team['bob_token']}"})
    assert r.status_code == 404
    team["app"].state.cairn.flush_audit()
    assert len(_bob_events(team, "artifact.download", 0, 0)) == before
    assert not [e for e in _events(team, actor="bob", action="object.download")
                if "0" * 64 in (e["after"] or {}).get("oids", [])]


def test_an_erasure_leaves_no_download_of_theirs_behind(tmp_path):
    """A download still gathering its objects (a burst ends after a second without reads)
    when a global admin erases the caller was written afterwards, naming them again."""
    import time

    from serving import ThreadedServer

    import cairn
    from cairn.server import ServerSettings, create_app
    from cairn.store.local import LocalStore

    token = "cairn_review-erase-burst-admin-token-0001"
    store = LocalStore(tmp_path / "srv")
    app = create_app(store, settings=ServerSettings(auth=True, bootstrap_token=token))
    app.state.cairn.start()
    admin_h = {"authorization": f"Bearer {token}"}
    try:
        with ThreadedServer(app) as url:
            httpx.post(f"{url}{API}/users", json={"name": "carol"},
                       headers=admin_h).raise_for_status()
            carol = httpx.post(f"{url}{API}/users/carol/tokens", json={},
                               headers=admin_h).json()["token"]
            httpx.put(f"{url}{API}/roles", json={"user": "carol", "resource_type": "global",
                                                 "resource_id": "*", "role": "viewer"},
                      headers=admin_h).raise_for_status()
            oid = httpx.put(f"{url}{API}/objects/{_oid(b'hello carol')}", content=b"hello carol",
                            headers=admin_h).json()["oid"]
            assert httpx.get(f"{url}{API}/objects/{oid}",
                             headers={"authorization": f"Bearer {carol}"}).status_code == 200
            r = httpx.post(f"{url}{API}/admin/erase-user", json={"name": "carol"},
                           headers=admin_h)
            assert r.status_code == 200, r.text
            time.sleep(1.6)  # past the burst's second, and a write of the queue
            app.state.cairn.flush_audit()
            events = httpx.get(f"{url}{API}/audit", params={"limit": 1000},
                               headers=admin_h).json()["events"]
            assert [e for e in events if e["action"] == "object.download"]
            assert not [e for e in events if "carol" in str(e)], events
            assert cairn.Client(store=store).verify_audit_log().ok
    finally:
        store.close()


def _oid(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
