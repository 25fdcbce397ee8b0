"""GET /lineage: data set versions, runs and model versions, as far as the caller may see them."""

from __future__ import annotations

import pytest

from .api_world import (
    API, RANK, STORES, USERS, World, add_dataset, log_model_files, open_store,
    tiny_sklearn_model,
)


@pytest.fixture(params=STORES)
def world(request, tmp_path):
    """raw@1 is read by run E (which registered M@1.0.0) and run F (which registered N@1.0.0).

    Run F logged its input after registering N, so N's record names no data set: from
    N, raw@1 is reached only through run F.  User ``modeler`` may view model N only.
    """
    store = open_store(request.param, tmp_path, request)
    with World(store) as w:
        a = w.admin
        add_dataset(w.api, "raw", {"t.csv": b"x,y\n1,0\n2,1\n"}, a)
        model, _ = tiny_sklearn_model()
        for run in (w.run_e, w.run_f):
            log_model_files(w.api, run, model, a)
        w.post(f"/runs/{w.run_e}/inputs", {"dataset": "raw@1", "role": "train"})
        w.post("/models/M/versions", {"run_id": w.run_e})
        w.post("/models/N/versions", {"run_id": w.run_f})
        w.post(f"/runs/{w.run_f}/inputs", {"dataset": "raw@1", "role": "eval"})
        w.post("/users", {"name": "modeler"})
        w.tokens["modeler"] = w.post("/users/modeler/tokens", {"name": "t"})["token"]
        r = w.api.put(f"{API}/roles", headers=a, json={
            "user": "modeler", "resource_type": "model", "resource_id": "N", "role": "viewer"})
        assert r.status_code == 200, r.text
        yield w
    store.close()


def _graph(w, user, **params):
    r = w.call(user, "get", "/lineage", params=params)
    assert r.status_code == 200, r.text
    g = r.json()
    return g, {n["id"] for n in g["nodes"]}, {(e["source"], e["target"], e["relation"], e["role"])
                                              for e in g["edges"]}


def test_upstream_downstream_and_both(world):
    w = world
    raw, re_, rf = "dataset:raw@1", f"run:{w.run_e}", f"run:{w.run_f}"
    m, n = "model:M@1.0.0", "model:N@1.0.0"
    g, nodes, edges = _graph(w, "root", node="model:M@1.0.0")
    assert g["root"] == m and g["direction"] == "up"
    assert nodes == {m, re_, raw}
    assert edges == {(re_, m, "produced", None), (raw, m, "trained", None),
                     (raw, re_, "input", "train")}
    kinds = {x["id"]: (x["kind"], x["attrs"]) for x in g["nodes"]}
    assert kinds[raw][0] == "dataset" and kinds[raw][1]["files"] == 1
    assert kinds[re_][0] == "run" and kinds[re_][1]["experiment"] == "E"
    assert kinds[m] == ("model", {"stage": "Development"})
    _, nodes, edges = _graph(w, "root", node="raw@1", direction="down")
    assert nodes == {raw, re_, rf, m, n}
    assert (raw, rf, "input", "eval") in edges and (rf, n, "produced", None) in edges
    _, nodes, _ = _graph(w, "root", node="dataset:raw@1", direction="down", depth=1)
    assert nodes == {raw, re_, rf, m}  # N is two steps away
    _, nodes, edges = _graph(w, "root", node=f"run:{w.run_e}", direction="both")
    assert nodes == {re_, raw, m}
    assert edges == {(raw, re_, "input", "train"), (re_, m, "produced", None)}
    _, nodes, _ = _graph(w, "root", node="models:/N/1.0.0", direction="upstream")
    assert nodes == {n, rf, raw}


def test_nodes_the_caller_may_not_view_are_left_out(world):
    w = world
    raw, re_, m = "dataset:raw@1", f"run:{w.run_e}", "model:M@1.0.0"
    for user in USERS:
        r = w.call(user, "get", "/lineage", params={"node": "raw@1", "direction": "both"})
        if RANK[user] == 0:
            assert r.status_code == 403 and "viewer" in r.json()["message"], r.text
            continue
        nodes = {x["id"] for x in r.json()["nodes"]}
        # Run F and model N are out, and so is everything reached only through them.
        assert nodes == {raw, re_, m}, (user, nodes)
        edges = r.json()["edges"]
        assert all(e["source"] in nodes and e["target"] in nodes for e in edges)
        assert w.call(user, "get", "/lineage",
                      params={"node": f"run:{w.run_f}"}).status_code == 403, user
        assert w.call(user, "get", "/lineage",
                      params={"node": "model:N@1.0.0"}).status_code == 403, user
    # modeler sees model N, not run F: raw@1 is reached only through run F, so it is left out.
    _, nodes, edges = _graph(w, "modeler", node="model:N@1.0.0", direction="both")
    assert nodes == {"model:N@1.0.0"} and edges == set()
    _, nodes, _ = _graph(w, "root", node="model:N@1.0.0", direction="both")
    assert nodes == {"model:N@1.0.0", f"run:{w.run_f}", raw}
    assert w.api.get(f"{API}/lineage", params={"node": "raw@1"}).status_code == 401
    r = w.api.get(f"{API}/lineage", params={"node": "raw@1"},
                  headers={"authorization": "Bearer cairn_not-a-token"})
    assert r.status_code == 401


def test_bad_requests_get_clear_4xx(world):
    w = world
    cases = [
        ({}, 400, "node"),
        ({"node": "raw@1", "depth": -1}, 400, "depth"),
        ({"node": "raw@1", "depth": 101}, 400, "depth"),
        ({"node": "raw@1", "depth": "deep"}, 400, "depth"),
        ({"node": "raw@1", "direction": "sideways"}, 400, "direction"),
        ({"node": "nope@1"}, 404, "nope"),
        ({"node": "raw@7"}, 404, "no version 7"),
        ({"node": "run:" + "0" * 32}, 404, "does not exist"),
        ({"node": "run:nope"}, 404, "nope"),
        ({"node": "run:../../etc"}, 400, "not a run id"),
        ({"node": f"raw@{10**20}"}, 404, "no version"),
        ({"node": "model:M@9.9.9"}, 404, "M@9.9.9"),
        ({"node": "models:/M"}, 404, "models:/M"),
        ({"node": "@@"}, 400, "invalid data set name"),
        ({"node": "../../etc/passwd"}, 400, "invalid data set name"),
    ]
    for params, status, text in cases:
        r = w.call("root", "get", "/lineage", params=params)
        assert r.status_code == status, (params, r.status_code, r.text)
        assert text in r.json()["message"], (params, r.json())
