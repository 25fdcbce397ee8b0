"""The reports routes over HTTP with auth on: who may read, save and delete a report, what
a caller with no role learns (nothing), what is refused at the door (and then stored
nowhere), and the audit log.

World (test_collab_server's): experiments E1 (alice edits, vera views) and E2 (eve edits;
no role on E1), a run in each, and root, the admin; model M (alice edits it, vera views).
"""

from __future__ import annotations

import json

import pytest

from .test_collab_server import API, w  # noqa: F401  (w: a fixture, used by name)


def _panel(**spec) -> str:
    return "```cairn-panel\n" + json.dumps(spec) + "\n```\n"


@pytest.fixture
def rw(w):  # noqa: F811
    api, root = w["api"], w["h"]["root"]
    api.post(f"{API}/runs/{w['r1']}/log", json={"metrics": [{"key": "loss", "value": 0.25}]},
             headers=root)
    assert api.post(f"{API}/models", json={"name": "M"}, headers=root).status_code in (200, 201)
    for user, role in (("alice", "editor"), ("vera", "viewer")):
        r = api.put(f"{API}/roles", json={"user": user, "resource_type": "model",
                                          "resource_id": "M", "role": role}, headers=root)
        assert r.status_code == 200, r.text
    body = ("# SECRET findings\n\n" + _panel(type="metric", run=w["r1"], key="loss")
            + _panel(type="stages", model="M"))
    return {**w, "body": body}


def _put(rw, user, name, body):
    return rw["api"].put(f"{API}/reports/{name}", json={"body": body}, headers=rw["h"][user])


def test_viewers_read_editors_save_and_the_author_deletes(rw):
    api, h = rw["api"], rw["h"]
    r = _put(rw, "alice", "weekly", rw["body"])
    assert r.status_code == 200, r.text
    saved = r.json()
    assert (saved["author"], saved["url"], saved["models"]) == ("alice", "/reports/weekly", ["M"])
    assert saved["experiment_ids"] == [rw["e1"]]
    assert [x["name"] for x in api.get(f"{API}/reports", headers=h["vera"]).json()["reports"]] \
        == ["weekly"]
    seen = api.get(f"{API}/reports/weekly", headers=h["vera"]).json()
    assert seen["body"] == rw["body"] and seen["can"] == {"edit": False}
    assert api.get(f"{API}/reports/weekly", headers=h["alice"]).json()["can"] == {"edit": True}
    data = api.get(f"{API}/reports/weekly/data", headers=h["vera"]).json()
    assert data["panels"][0]["data"]["series"]["values"] == [0.25]
    assert data["panels"][1]["data"]["model"] == "M"
    page = api.get(f"{API}/reports/weekly/export", headers=h["vera"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "attachment" in page.headers["content-disposition"] and "weekly.html" in \
        page.headers["content-disposition"]
    assert "default-src 'none'" in page.text
    # vera views only: she may not save over it, nor save her own, nor delete it
    assert _put(rw, "vera", "weekly", "# mine").status_code == 403
    assert _put(rw, "vera", "hers", rw["body"]).status_code == 403
    assert api.delete(f"{API}/reports/weekly", headers=h["vera"]).status_code == 403
    assert api.get(f"{API}/reports/hers", headers=h["alice"]).status_code == 404
    assert api.delete(f"{API}/reports/weekly", headers=h["alice"]).json() == {"deleted": "weekly"}
    assert api.get(f"{API}/reports/weekly", headers=h["alice"]).status_code == 404


def test_a_user_without_a_role_learns_nothing(rw):
    api, eve = rw["api"], rw["h"]["eve"]
    assert _put(rw, "alice", "weekly", rw["body"]).status_code == 200
    answers = [
        api.get(f"{API}/reports/weekly", headers=eve),
        api.get(f"{API}/reports/weekly/data", headers=eve),
        api.get(f"{API}/reports/weekly/export", headers=eve),
        api.delete(f"{API}/reports/weekly", headers=eve),
        _put(rw, "eve", "weekly", "# taken over"),
        # naming a run or a model she may not view: as if it did not exist
        _put(rw, "eve", "probe", _panel(type="metric", run=rw["r1"], key="loss")),
        _put(rw, "eve", "probe", _panel(type="stages", model="M")),
    ]
    for r in answers:
        assert r.status_code in (403, 404), (r.request.url, r.status_code, r.text)
        assert "SECRET" not in r.text and "0.25" not in r.text
    assert answers[0].status_code == 404 and answers[5].status_code == 404
    probe = answers[5].json()["message"]
    assert "panel 1 (metric)" in probe and "or you may not view it" in probe
    missing = _put(rw, "eve", "probe", _panel(type="metric", run="f" * 32, key="loss"))
    assert missing.status_code == 404 and missing.json()["message"].replace("f" * 32, "ID") \
        == probe.replace(rw["r1"], "ID")  # a run she may not view reads as one that is not there
    assert api.get(f"{API}/reports", headers=eve).json() == {"reports": []}
    assert api.get(f"{API}/reports/weekly", headers=rw["h"]["alice"]).json()["body"] == \
        rw["body"]
    # her own experiment's runs are hers to report on
    mine = _put(rw, "eve", "mine", _panel(type="metric", run=rw["r2"], key="loss"))
    assert mine.status_code == 200, mine.text


@pytest.mark.parametrize("raw, status, match", [
    ('{"body": "PANEL_PIE"}', 400, "panel 1 (line 1) has unknown type 'pie'"),
    ('{"body": "PANEL_NO_RUN"}', 400, "panel 1 (line 1): 'run' must be"),
    ('{"body": "PANEL_MISSING_RUN"}', 404, "panel 1 (metric): no run"),
    ('{"body": "PANEL_MISSING_MODEL"}', 404, "panel 1 (stages): no model 'nope'"),
    ('{"body": 12}', 400, "body"),
    ('{"body": "bad \\ud800"}', 400, "surrogate"),
    ('{"text": "x"}', 400, "body"),
    ('[1]', 400, ""),
    ('{"body": "x"', 400, ""),
])
def test_bad_reports_are_refused_with_a_4xx_naming_the_panel(rw, raw, status, match):
    panels = {"PANEL_PIE": _panel(type="pie"), "PANEL_NO_RUN": _panel(type="metric", key="x"),
              "PANEL_MISSING_RUN": _panel(type="metric", run="0" * 32, key="loss"),
              "PANEL_MISSING_MODEL": _panel(type="stages", model="nope")}
    for k, v in panels.items():
        raw = raw.replace(k, json.dumps(v)[1:-1])
    r = rw["api"].put(f"{API}/reports/bad", content=raw.encode(),
                      headers={**rw["h"]["alice"], "content-type": "application/json"})
    assert r.status_code == status, r.text
    assert match in r.json()["message"]
    assert rw["api"].get(f"{API}/reports", headers=rw["h"]["root"]).json() == {"reports": []}


def test_writes_are_audited_without_the_text(rw):
    api, root = rw["api"], rw["h"]["root"]
    _put(rw, "alice", "weekly", rw["body"])
    _put(rw, "alice", "weekly", rw["body"] + "\nmore\n")
    api.delete(f"{API}/reports/weekly", headers=rw["h"]["alice"])
    rw["app"].state.cairn.flush_audit()
    events = api.get(f"{API}/audit", params={"target": "report:weekly"},
                     headers=root).json()["events"]
    assert sorted(e["action"] for e in events) == ["report.delete", "report.put", "report.put"]
    assert all(e["actor"] == "alice" for e in events)
    assert "SECRET" not in json.dumps(events)


def test_check_answers_what_a_save_would_refuse_and_stores_nothing(rw):
    api, h = rw["api"], rw["h"]

    def check(user, body):
        r = api.post(f"{API}/reports/check", json={"body": body}, headers=h[user])
        assert r.status_code == 200, r.text
        return r.json()

    assert check("alice", rw["body"]) == {"ok": True, "status": 200, "message": "", "panels": 2}
    bad = check("alice", _panel(type="pie"))
    assert (bad["ok"], bad["status"]) == (False, 400) and "unknown type 'pie'" in bad["message"]
    probe = check("eve", rw["body"])
    assert (probe["ok"], probe["status"]) == (False, 404) and "SECRET" not in json.dumps(probe)
    assert check("vera", rw["body"])["status"] == 403
    assert api.get(f"{API}/reports", headers=h["root"]).json() == {"reports": []}
