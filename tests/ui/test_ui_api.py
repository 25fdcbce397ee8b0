"""The endpoints only the UI uses (/api/v1/ui/...), over HTTP against the seeded server."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from cairn.server.ui.aggregate import MAX_GROUPS

UI = "/api/v1/ui"


@pytest.fixture
def api(server):
    with httpx.Client(base_url=server, timeout=30) as client:
        yield client


def test_table_pages_carry_only_the_asked_columns(api, world):
    body = {"experiment_ids": [world.experiments["sweep"]], "order_by": ["attributes.run_name"],
            "columns": ["params.width", "metrics.score", "tags.none"], "limit": 700}
    first = api.post(f"{UI}/runs", json=body).json()
    assert len(first["rows"]) == 700 and first["next_offset"] == 700
    row = first["rows"][0]
    assert row["name"] == "sweep-00000"
    assert row["cells"] == ["32", pytest.approx(1.0), None]
    assert "params" not in row and "env" not in row
    last = api.post(f"{UI}/runs", json={**body, "offset": 1400}).json()
    assert len(last["rows"]) == 600 and last["next_offset"] is None
    assert last["rows"][-1]["name"] == "sweep-01999"


def test_table_bad_input_is_a_clear_400(api):
    r = api.post(f"{UI}/runs", json={"filter": "metrics.loss >"})
    assert r.status_code == 400 and "expected a value" in r.json()["message"]
    r = api.post(f"{UI}/runs", json={"columns": ["attributes.x"]})
    assert r.status_code == 400 and "columns" in r.json()["message"]
    r = api.post(f"{UI}/runs", json={"limit": 0})
    assert r.status_code == 400


def test_keys_are_listed_lazily_by_substring(api, world):
    vision = world.experiments["vision"]
    r = api.get(f"{UI}/keys", params={"kind": "metrics", "experiment_ids": vision}).json()
    assert r == {"keys": ["accuracy", "grad_norm", "loss"], "truncated": False}
    r = api.get(f"{UI}/keys", params={"kind": "params", "experiment_ids": vision, "limit": 2})
    assert r.json() == {"keys": ["epochs", "lr"], "truncated": True}
    r = api.get(f"{UI}/keys", params={"kind": "params", "contains": "ee"}).json()
    assert r["keys"] == ["seed"]
    r = api.get(f"{UI}/keys", params={"kind": "tags", "contains": "%"}).json()
    assert r["keys"] == []  # a LIKE wildcard is a literal character here
    assert api.get(f"{UI}/keys", params={"kind": "nope"}).status_code == 400


def test_check_filter_answers_with_data(api):
    assert api.get(f"{UI}/check-filter", params={"filter": "params.a = 'x'"}).json()["ok"]
    bad = api.get(f"{UI}/check-filter", params={"filter": "params.a = x"}).json()
    assert bad["ok"] is False and bad["message"] and bad["position"] is not None
    bad = api.get(f"{UI}/check-filter", params={"order_by": "metrics.a SIDEWAYS"}).json()
    assert bad["ok"] is False


def test_series_envelope_exact_and_step_windows(api, world):
    url = f"{UI}/runs/{world.spiky}/series"
    r = api.get(url, params={"key": ["grad_norm", "loss"], "points": 500}).json()
    grad, loss = r["series"]
    assert grad["exact"] is False and grad["total"] == 200_000
    assert len(grad["values"]) <= 500 and max(grad["max"]) == 50.0  # the spike survives
    assert len(grad["timestamps"]) == len(grad["steps"])
    assert loss["exact"] is True and loss["count"] == 100 and "min" not in loss
    r = api.get(url, params={"key": "grad_norm", "points": 500, "step_min": 123_400,
                             "step_max": 123_499}).json()["series"][0]
    assert r["exact"] is True and r["count"] == 100 and r["total"] == 200_000
    assert r["steps"][0] == 123_400 and 50.0 in r["values"]
    r = api.get(url, params={"key": "nope"}).json()["series"][0]
    assert r["count"] == 0 and r["exact"] is True


def test_series_bad_input(api, world):
    url = f"{UI}/runs/{world.spiky}/series"
    r = api.get(url, params={"key": "loss", "step_min": 5, "step_max": 1})
    assert r.status_code == 400 and "greater" in r.json()["message"]
    assert api.get(url).status_code == 400  # no key
    assert api.get(f"{UI}/runs/nope/series", params={"key": "loss"}).status_code == 404


def test_aggregate_groups_by_all_params_but_the_seed(api, world):
    ids = [v for k, v in world.runs.items() if k.startswith("cnn-") or k.startswith("mlp-lr0.1")]
    r = api.post(f"{UI}/compare/aggregate", json={"run_ids": ids, "metric": "accuracy"})
    assert r.status_code == 200, r.text
    res = r.json()
    labels = sorted(g["label"] for g in res["groups"])
    assert labels == ["lr=0.01, model=cnn", "lr=0.1, model=cnn", "lr=0.1, model=mlp"]
    for g in res["groups"]:
        assert g["n"] == 3 and g["seeds"]["seed"] == ["0", "1", "2"]
        curve = g["curve"]
        assert len(curve["steps"]) == 100 and curve["n"][0] == 3
        assert all(lo <= m <= hi for lo, m, hi in zip(curve["lo"], curve["mean"], curve["hi"]))
    assert len(res["tests"]) == 3
    for t in res["tests"]:
        assert t["n_a"] == t["n_b"] == 3
        assert 0 <= t["welch"]["p"] <= 1 and 0 <= t["mann_whitney"]["p"] <= 1
        assert t["mann_whitney"]["method"] == "mann-whitney exact"


def test_aggregate_bad_input(api, world):
    r = api.post(f"{UI}/compare/aggregate", json={"run_ids": [], "metric": "loss"})
    assert r.status_code == 400
    r = api.post(f"{UI}/compare/aggregate", json={"run_ids": ["nope"], "metric": "loss"})
    assert r.status_code == 404
    many = list(world.runs.values())[:12]
    r = api.post(f"{UI}/compare/aggregate",
                 json={"run_ids": many, "metric": "loss", "across": ["model"]})
    assert r.status_code == 200 and len(r.json()["groups"]) == 6  # lr x seed


def test_the_compare_page_knows_the_group_limit():
    """The compare page and the dashboards count groups before asking (a refused request
    logs a console error): the limit they share is the server's."""
    page = Path(__file__).resolve().parents[2] / "ui" / "src" / "significance.js"
    found = re.search(r"^export const MAX_GROUPS = (\d+);$", page.read_text(), re.M)
    assert found and int(found.group(1)) == MAX_GROUPS


def test_run_for_its_page_answers_200_also_when_there_is_none(api, world):
    rid = world.runs["cnn-lr0.1-s0"]
    r = api.get(f"{UI}/runs/{rid}")
    assert r.status_code == 200
    assert r.json()["run"] == api.get(f"/api/v1/runs/{rid}").json()
    for missing in ("does-not-exist", "x" * 200):
        r = api.get(f"{UI}/runs/{missing}")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["run"] is None and body["status"] == 404
        assert "does not exist" in body["message"]


def test_model_page_answers_for_an_unknown_model(api, world):
    r = api.get(f"{UI}/models/digits")
    assert r.status_code == 200 and r.json()["model"]["name"] == "digits"
    assert r.json()["status"] == 200 and r.json()["message"] is None
    for name in ("no-such-model", "x" * 300):
        r = api.get(f"{UI}/models/{name}")
        assert r.status_code == 200, r.text
        assert r.json()["model"] is None and r.json()["status"] == 404
        assert name[:20] in r.json()["message"]


def test_with_auth_off_the_pages_may_do_everything(api, world):
    """`can` on the run and model pages: auth off, the local user is an admin."""
    r = api.get(f"{UI}/models/digits").json()
    assert r["can"] == {"edit": True, "approve": True, "admin": True, "delete": True}
    r = api.get(f"{UI}/runs/{world.runs['cnn-lr0.1-s0']}").json()
    assert r["can"] == {"edit": True, "delete": True}
    assert api.get(f"{UI}/runs/does-not-exist").json()["can"] is None
    assert api.get(f"{UI}/models/no-such-model").json()["can"] is None


def test_session_with_auth_off_names_the_local_user(api):
    assert api.get(f"{UI}/session").json() == {"auth": False, "user": "local"}
    wrong = api.get(f"{UI}/session", headers={"authorization": "Bearer wrong"})
    assert wrong.status_code == 200 and wrong.json() == {"auth": False, "user": "local"}


def test_data_set_page_answers_for_an_unknown_data_set(api):
    r = api.get(f"{UI}/datasets/digits-data").json()
    assert [v["version"] for v in r["versions"]] == [1, 2] and r["status"] == 200
    assert "stats" not in r["versions"][0]
    for name in ("no-such-data", "x" * 300):
        r = api.get(f"{UI}/datasets/{name}")
        assert r.status_code == 200, r.text
        assert r.json()["versions"] is None and r.json()["status"] == 404
        assert name[:20] in r.json()["message"]
