"""Erasure through a team server: global admins only, audited, the chain still verifies."""

from __future__ import annotations

import pytest

import cairn
from cairn.lifecycle.erase import ERASED, erase_user
from tests.server.api_world import API, World


@pytest.fixture
def world(tmp_path):
    from cairn.store.local import LocalStore

    store = LocalStore(tmp_path / "store")
    with World(store) as w:
        yield w
    store.close()


def test_only_a_global_admin_may_erase(world):
    r = world.call("editor", "post", "/runs", json={"experiment_id": world.e,
                                                     "tags": {"mlflow.user": "editor"}})
    assert r.status_code in (200, 201), r.text
    run_id = r.json()["id"]
    world.call("editor", "post", f"/runs/{run_id}/end", json={"status": "FINISHED"})
    for user in ("admin", "editor", "viewer", None):  # admin of E and M only: not global
        refused = world.call(user, "post", "/admin/erase-user", json={"name": "editor"})
        assert refused.status_code in (401, 403), (user, refused.text)
    dry = world.call("root", "post", "/admin/erase-user",
                     json={"name": "editor", "dry_run": True})
    assert dry.status_code == 200, dry.text
    assert dry.json()["erase_event"] is None and dry.json()["audit_events"]
    done = world.call("root", "post", "/admin/erase-user", json={"name": "editor"})
    assert done.status_code == 200, done.text
    report = done.json()
    assert run_id in report["runs"] and report["erase_event"] is not None
    erase = world.audit("user.erase")
    assert len(erase) == 1 and erase[0]["actor"] == "root"
    assert [x["seq"] for x in erase[0]["after"]["erased"]] == report["audit_events"]
    got = world.call("root", "get", f"/runs/{run_id}").json()
    assert got["user"] == ERASED
    v = world.api.get(f"{API}/audit/verify", headers=world.admin).json()
    assert v["ok"], v["problems"]


def test_bad_names_get_a_400(world):
    for body in ({"name": ""}, {"name": "[erased]"}, {"name": 3}, {}):
        r = world.call("root", "post", "/admin/erase-user", json=body)
        assert r.status_code in (400, 422), (body, r.text)


def test_the_library_call_goes_through_the_server(cairn_server):
    alice = cairn.Client(cairn_server, user="alice")
    run = alice.create_run(tags={"mlflow.user": "alice"})
    alice.set_terminated(run.id)
    report = erase_user(alice.store, "alice", actor="ignored: the server records its caller")
    assert report.runs == [run.id]
    assert alice.get_run(run.id).user == ERASED
