"""The collaboration routes over HTTP with auth on: who may read and write comments and
saved views, what is refused at the door (and then stored nowhere), and the audit log.

World: experiments E1 (alice edits, vera views) and E2 (eve edits; no role on E1), a run
in each, and root, the admin.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cairn.server import ServerSettings, create_app
from cairn.store.local import LocalStore

API = "/api/v1"
ADMIN = "cairn_collab-server-tests-admin-token-0001"


@pytest.fixture
def w(tmp_path):
    store = LocalStore(tmp_path / "store")
    app = create_app(store, settings=ServerSettings(auth=True, bootstrap_token=ADMIN,
                                                    bootstrap_user="root", token_cache_s=0))
    with TestClient(app) as api:
        app.state.cairn.start()
        root = {"authorization": f"Bearer {ADMIN}"}
        e1 = api.post(f"{API}/experiments", json={"name": "E1"}, headers=root).json()["id"]
        e2 = api.post(f"{API}/experiments", json={"name": "E2"}, headers=root).json()["id"]
        r1 = api.post(f"{API}/runs", json={"experiment_id": e1}, headers=root).json()["id"]
        r2 = api.post(f"{API}/runs", json={"experiment_id": e2}, headers=root).json()["id"]
        heads = {"root": root}
        for user, exp, role in (("alice", e1, "editor"), ("vera", e1, "viewer"),
                                ("eve", e2, "editor")):
            assert api.post(f"{API}/users", json={"name": user}, headers=root).status_code == 201
            token = api.post(f"{API}/users/{user}/tokens", json={"name": "t"},
                             headers=root).json()["token"]
            r = api.put(f"{API}/roles", json={"user": user, "resource_type": "experiment",
                                              "resource_id": exp, "role": role}, headers=root)
            assert r.status_code == 200, r.text
            heads[user] = {"authorization": f"Bearer {token}"}
        yield {"api": api, "h": heads, "e1": e1, "e2": e2, "r1": r1, "r2": r2, "app": app}


def _post(w, user, **body):
    return w["api"].post(f"{API}/comments", json=body, headers=w["h"][user])


def _list(w, user, target_type, target_id):
    return w["api"].get(f"{API}/comments", params={"target_type": target_type,
                                                   "target_id": target_id}, headers=w["h"][user])


def test_a_user_without_a_role_learns_nothing(w):
    api, eve = w["api"], w["h"]["eve"]
    secret = "SECRET plan for @eve"
    c = _post(w, "alice", target_type="run", target_id=w["r1"], body=secret)
    assert c.status_code == 201, c.text
    cid = c.json()["id"]
    exp_c = _post(w, "alice", target_type="experiment", target_id=w["e1"], body=secret).json()
    answers = [
        _list(w, "eve", "run", w["r1"]),
        _list(w, "eve", "experiment", w["e1"]),
        api.get(f"{API}/comments/{cid}", headers=eve),
        api.get(f"{API}/comments/{cid}/history", headers=eve),
        api.put(f"{API}/comments/{cid}", json={"body": "mine now"}, headers=eve),
        api.delete(f"{API}/comments/{exp_c['id']}", headers=eve),
        api.post(f"{API}/comments/{cid}/restore", headers=eve),
        _post(w, "eve", target_type="run", target_id=w["r1"], body="let me in"),
        _post(w, "eve", target_type="experiment", target_id=w["e1"], body="let me in",
              parent_id=exp_c["id"]),
    ]
    for r in answers:
        assert r.status_code in (403, 404), (r.request.url, r.status_code, r.text)
        assert "SECRET" not in r.text
    # eve is mentioned, but the comment is on what she may not view: not listed
    mine = api.get(f"{API}/comments/mentions", headers=eve)
    assert mine.status_code == 200 and mine.json() == {"comments": []}
    # nothing of eve's was stored, nothing changed
    listed = _list(w, "alice", "run", w["r1"]).json()["comments"]
    assert [(x["id"], x["body"], x["edits"]) for x in listed] == [(cid, secret, 0)]
    assert len(_list(w, "alice", "experiment", w["e1"]).json()["comments"]) == 1
    # her own experiment is hers to discuss
    assert _post(w, "eve", target_type="run", target_id=w["r2"], body="ok").status_code == 201
    # another user's mentions are for admins only
    assert api.get(f"{API}/comments/mentions", params={"user": "eve"},
                   headers=w["h"]["vera"]).status_code == 403
    assert len(api.get(f"{API}/comments/mentions", params={"user": "eve"},
                       headers=w["h"]["root"]).json()["comments"]) == 2


def test_viewers_comment_authors_edit_admins_moderate(w):
    api, h = w["api"], w["h"]
    c = _post(w, "vera", target_type="run", target_id=w["r1"], body="viewer's note @alice")
    assert c.status_code == 201, c.text
    cid = c.json()["id"]
    assert [x["id"] for x in api.get(f"{API}/comments/mentions", headers=h["alice"])
            .json()["comments"]] == [cid]
    r = api.put(f"{API}/comments/{cid}", json={"body": "alice rewrites it"}, headers=h["alice"])
    assert r.status_code == 403 and "vera" in r.json()["message"]
    assert api.put(f"{API}/comments/{cid}", json={"body": "fixed typo"},
                   headers=h["vera"]).json()["edits"] == 1
    assert api.delete(f"{API}/comments/{cid}", headers=h["root"]).json()["deleted"] is True
    hist = api.get(f"{API}/comments/{cid}/history", headers=h["vera"]).json()
    assert hist == {"edits": []}
    # An admin's moderation: the author cannot undo it, an admin can.
    assert api.post(f"{API}/comments/{cid}/restore", headers=h["vera"]).status_code == 403
    restored = api.post(f"{API}/comments/{cid}/restore", headers=h["root"]).json()
    assert restored["body"] == "fixed typo" and restored["deleted"] is False
    hist = api.get(f"{API}/comments/{cid}/history", headers=h["vera"]).json()["edits"]
    assert [(e["seq"], e["body"], e["editor"]) for e in hist] == [
        (1, "viewer's note @alice", "vera")]


@pytest.mark.parametrize("raw, status", [
    ('{"target_type": "run", "target_id": "RUN", "body": 12}', 400),
    ('{"target_type": "run", "target_id": "RUN", "body": null}', 400),
    ('{"target_type": "run", "target_id": "RUN", "body": ["a"]}', 400),
    ('{"target_type": "run", "target_id": "RUN", "body": "bad \\ud800 text"}', 400),
    ('{"target_type": "run", "target_id": "RUN", "body": "LONG"}', 400),
    ('{"target_type": "run", "target_id": "RUN", "body": "   "}', 400),
    ('{"target_type": "widget", "target_id": "RUN", "body": "x"}', 400),
    ('{"target_type": "run", "target_id": 5, "body": "x"}', 400),
    ('{"target_type": "run", "target_id": "no-such-run", "body": "x"}', 404),
    ('{"target_type": "model_version", "target_id": "m@1.0.0", "body": "x"}', 404),
    ('{"target_type": "dataset_version", "target_id": "d@1", "body": "x"}', 404),
    ('{"target_type": "run", "target_id": "RUN", "body": "x", "parent_id": "nope"}', 404),
    ('{"target_type": "run", "target_id": "RUN"}', 400),
    ('[1, 2]', 400),
    ('{"target_type": "run", "target_id": "RUN", "body": "x"', 400),
])
def test_bad_comments_are_refused_with_a_4xx_and_nothing_is_stored(w, raw, status):
    raw = raw.replace("RUN", w["r1"]).replace("LONG", "x" * (64 * 1024 + 1))
    r = w["api"].post(f"{API}/comments", content=raw.encode(),
                      headers={**w["h"]["alice"], "content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json()["message"]
    assert _list(w, "alice", "run", w["r1"]).json() == {"comments": []}


def test_bad_edits_are_refused_and_the_body_is_unchanged(w):
    api, alice = w["api"], w["h"]["alice"]
    cid = _post(w, "alice", target_type="run", target_id=w["r1"], body="original").json()["id"]
    for raw in ('{"body": 1}', '{"body": "\\udfff"}', '{}', '{"body": "' + "y" * 70_000 + '"}'):
        r = api.put(f"{API}/comments/{cid}", content=raw.encode(),
                    headers={**alice, "content-type": "application/json"})
        assert r.status_code == 400, r.text
    got = api.get(f"{API}/comments/{cid}", headers=alice).json()
    assert (got["body"], got["edits"]) == ("original", 0)
    assert api.get(f"{API}/comments/{'f' * 32}", headers=alice).status_code == 404


def test_views_need_viewer_to_read_and_editor_to_save(w):
    api, h, e1 = w["api"], w["h"], w["e1"]
    url = f"{API}/experiments/{e1}/views/best"
    state = {"filter": "metrics.loss < 1", "columns": ["metrics.loss"], "group": "",
             "sort": {"id": "metrics.loss", "dir": "ASC"}, "charts": []}
    r = api.put(url, json={"state": state}, headers=h["alice"])
    assert r.status_code == 200, r.text
    assert r.json()["url"] == f"/?experiments={e1}&view=best"
    assert api.get(url, headers=h["vera"]).json()["state"] == state
    assert api.put(url, json={"state": state}, headers=h["vera"]).status_code == 403
    assert api.delete(url, headers=h["vera"]).status_code == 403
    for call in (api.get(url, headers=h["eve"]), api.get(f"{API}/experiments/{e1}/views",
                                                           headers=h["eve"]),
                 api.put(url, json={"state": {}}, headers=h["eve"])):
        assert call.status_code == 403 and "metrics.loss" not in call.text
    for bad in ('{"state": {"filter": 1}}', '{"state": []}', '{"colour": 1}', '[]',
                '{"state": {"x": 1}}', '{"state": {"filter": "\\ud800"}}', '{"state": '):
        r = api.put(f"{API}/experiments/{e1}/views/other", content=bad.encode(),
                    headers={**h["alice"], "content-type": "application/json"})
        assert r.status_code == 400, (bad, r.text)
    listed = api.get(f"{API}/experiments/{e1}/views", headers=h["vera"]).json()
    assert [v["name"] for v in listed["views"]] == ["best"]
    assert (listed["can"], listed["user"]) == ({"save": False, "manage": False}, "vera")
    assert api.get(f"{API}/experiments/{e1}/views", headers=h["alice"]).json()["can"] == \
        {"save": True, "manage": False}
    assert api.delete(url, headers=h["alice"]).status_code == 200
    assert api.get(url, headers=h["alice"]).status_code == 404


def test_writes_are_audited(w):
    api, root = w["api"], w["h"]["root"]
    cid = _post(w, "alice", target_type="run", target_id=w["r1"], body="@vera look").json()["id"]
    api.put(f"{API}/comments/{cid}", json={"body": "edited"}, headers=w["h"]["alice"])
    api.delete(f"{API}/comments/{cid}", headers=w["h"]["alice"])
    api.put(f"{API}/experiments/{w['e1']}/views/v", json={"state": {}}, headers=w["h"]["alice"])
    w["app"].state.cairn.flush_audit()
    events = api.get(f"{API}/audit", params={"actor": "alice"}, headers=root).json()["events"]
    actions = [(e["action"], e["target"]) for e in events]
    for expected in (("comment.create", f"comment:{cid}"), ("comment.edit", f"comment:{cid}"),
                     ("comment.delete", f"comment:{cid}"), ("view.put", f"view:{w['e1']}/v")):
        assert expected in actions, actions
    assert api.get(f"{API}/audit/verify", headers=root).status_code == 200


def test_dashboards_show_only_to_viewers_of_every_experiment(w):
    api, h, e1, e2 = w["api"], w["h"], w["e1"], w["e2"]
    line = {"kind": "line", "experiment_id": e1, "columns": ["metrics.loss"], "title": "SECRET"}
    r = api.put(f"{API}/dashboards/team", json={"panels": [line]}, headers=h["alice"])
    assert r.status_code == 200, r.text
    assert r.json()["url"] == "/dashboards/team"
    assert [d["name"] for d in api.get(f"{API}/dashboards", headers=h["vera"])
            .json()["dashboards"]] == ["team"]
    seen = api.get(f"{API}/dashboards/team", headers=h["vera"]).json()
    assert seen["panels"][0]["title"] == "SECRET" and seen["can"] == {"edit": False}
    assert api.get(f"{API}/dashboards/team", headers=h["alice"]).json()["can"] == {"edit": True}
    # eve has no role on E1: the dashboard does not exist for her
    for call in (api.get(f"{API}/dashboards", headers=h["eve"]),
                 api.get(f"{API}/dashboards/team", headers=h["eve"]),
                 api.delete(f"{API}/dashboards/team", headers=h["eve"]),
                 api.put(f"{API}/dashboards/mine", json={"panels": [line]}, headers=h["eve"])):
        assert call.status_code in (200, 403, 404) and "SECRET" not in call.text
        assert call.json() == {"dashboards": []} or call.status_code in (403, 404)
    # a viewer may not save one; an editor may not replace or delete another's
    assert api.put(f"{API}/dashboards/v", json={"panels": [line]},
                   headers=h["vera"]).status_code == 403
    mixed = {**line, "experiment_id": e2}
    assert api.put(f"{API}/dashboards/team", json={"panels": [mixed]},
                   headers=h["eve"]).status_code == 403
    for raw in ('{"panels": [{"kind": "pie"}]}', '{"panels": "x"}', '{"panels": [1]}',
                '{"panels": [], "description": 5}', '{"panels": [{"kind": "line", '
                '"experiment_id": "E", "columns": ["metrics.\\ud800"]}]}'):
        r = api.put(f"{API}/dashboards/bad", content=raw.replace("E", e1).encode(),
                    headers={**h["alice"], "content-type": "application/json"})
        assert r.status_code == 400, (raw, r.text)
    assert api.get(f"{API}/dashboards/bad", headers=h["alice"]).status_code == 404
    assert api.delete(f"{API}/dashboards/team", headers=h["root"]).status_code == 200
    w["app"].state.cairn.flush_audit()
    actions = [e["action"] for e in api.get(f"{API}/audit", params={"target": "dashboard:team"},
                                            headers=h["root"]).json()["events"]]
    assert sorted(actions) == ["dashboard.delete", "dashboard.put"]
