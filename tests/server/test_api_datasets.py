"""Data sets over REST: reading versions added with Datasets.add, uploading versions, roles."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cairn.server import create_app

from .api_world import (
    API, RANK, STORES, USERS, World, add_dataset, open_store, registry_client, settle_audit,
    upload,
)

CSV1 = b"amount,label\n1.0,0\n2.5,1\n3.0,0\n"
CSV2 = b"amount,label\n1.0,0\n2.5,1\n3.0,0\n9.5,1\n"


@pytest.fixture(params=STORES)
def store(request, tmp_path):
    s = open_store(request.param, tmp_path, request)
    yield s
    s.close()


@pytest.fixture
def api(store):
    with TestClient(create_app(store), raise_server_exceptions=False) as c:
        yield c


def test_reading_a_data_set_added_with_datasets_add(tmp_path):
    """The local default store: a version added by the Python API, read and verified over REST."""
    from cairn.store.local import LocalStore

    store = LocalStore(tmp_path / "store")
    src = tmp_path / "raw"
    (src / "images").mkdir(parents=True)
    (src / "train.csv").write_bytes(CSV1)
    for i in range(3):
        (src / "images" / f"{i}.bin").write_bytes(bytes([i]) * (10 + i))
    data = registry_client(store).data
    v1 = data.add(src, "transactions", "first dump", aliases=["gold"])
    (src / "train.csv").write_bytes(CSV2)
    v2 = data.add(src, "transactions", "more rows")
    with TestClient(create_app(store), raise_server_exceptions=False) as api:
        listed = api.get(f"{API}/datasets").json()
        assert [(d["name"], d["versions"], d["latest"], d["aliases"]) for d in listed] == \
            [("transactions", 2, 2, {"gold": 1})]
        versions = api.get(f"{API}/datasets/transactions/versions").json()
        assert [(v["ref"], v["message"], v["files"]) for v in versions] == \
            [("transactions@1", "first dump", 4), ("transactions@2", "more rows", 4)]
        assert "stats" not in versions[0]
        for sel, v in (("1", v1), ("v1", v1), ("gold", v1), ("latest", v2), ("2", v2)):
            got = api.get(f"{API}/datasets/transactions/versions/{sel}").json()
            assert (got["ref"], got["tree"]) == (v.ref, v.tree), sel
        # Files, a page at a time, and under a directory.
        page = api.get(f"{API}/datasets/transactions/versions/1/files", params={"limit": 3}).json()
        assert page["total"] == 4 and page["next_offset"] == 3
        assert [f["path"] for f in page["files"]] == \
            ["images/0.bin", "images/1.bin", "images/2.bin"]
        rest = api.get(f"{API}/datasets/transactions/versions/1/files",
                       params={"limit": 3, "offset": 3}).json()
        assert [f["path"] for f in rest["files"]] == ["train.csv"] and rest["next_offset"] is None
        under = api.get(f"{API}/datasets/transactions/versions/1/files",
                        params={"path": "images"}).json()
        assert under["total"] == 3 and under["files"][2]["size"] == 12
        stats = api.get(f"{API}/datasets/transactions/versions/2/stats").json()
        assert stats["stats"]["train.csv"]["rows"] == 4
        assert stats["stats"]["train.csv"]["schema"] == {"amount": "double", "label": "int64"}
        diff = api.get(f"{API}/datasets/diff",
                       params={"a": "transactions@1", "b": "transactions@gold"}).json()
        assert diff["empty"] is True and diff["unchanged"] == 4
        diff = api.get(f"{API}/datasets/diff",
                       params={"a": "transactions@1", "b": "transactions@2"}).json()
        assert [c["path"] for c in diff["changed"]] == ["train.csv"]
        assert diff["tables"]["train.csv"]["rows"] == [3, 4]
        ok = api.post(f"{API}/datasets/transactions/versions/1/verify").json()
        assert ok["ok"] is True and ok["checked"] >= 4
        # A damaged object is found by verify, and named.
        victim = next(p for p in (tmp_path / "store" / "objects").rglob("*")
                      if p.is_file() and p.parent.name == v1.tree[:2] and p.name == v1.tree[2:])
        victim.chmod(0o644)
        victim.write_bytes(b"garbage")
        bad = api.post(f"{API}/datasets/transactions/versions/1/verify").json()
        assert bad["ok"] is False and bad["corrupt"] == [v1.tree]
    store.close()


def test_upload_a_version_then_alias_diff_and_run_inputs(api):
    exp = api.post(f"{API}/experiments", json={"name": "e"}).json()["id"]
    settle_audit(api)
    run = api.post(f"{API}/runs", json={"experiment_id": exp}).json()["id"]
    v1 = add_dataset(api, "sales/eu", {"data.csv": CSV1, "README": b"eu sales"},
                     message="from the API", aliases=["gold"])
    assert (v1["ref"], v1["created"], v1["files"], v1["aliases"]) == \
        ("sales/eu@1", True, 2, ["gold"])
    stats = api.get(f"{API}/datasets/sales/eu/versions/1/stats").json()["stats"]
    assert stats["data.csv"]["rows"] == 3  # computed on the server
    # The same files again: no new version, 200 instead of 201.
    entries = api.get(f"{API}/datasets/sales/eu/versions/1/files").json()["files"]
    again = api.post(f"{API}/datasets/sales/eu/versions", json={"files": entries})
    assert again.status_code == 200 and again.json()["created"] is False
    # A file whose object is not uploaded: refused, and no version is made.
    missing = [*entries, {"path": "extra.csv", "size": 3, "digest": "ab" * 32}]
    r = api.post(f"{API}/datasets/sales/eu/versions", json={"files": missing})
    assert r.status_code == 409 and r.json()["missing"] == ["ab" * 32], r.text
    # Failing quality expectations: refused, nothing recorded.
    new = upload(api, CSV2, "data.csv")
    r = api.post(f"{API}/datasets/sales/eu/versions",
                 json={"files": [new, entries[0]], "expect": ["rows >= 100"]})
    assert r.status_code == 400 and "rows" in r.json()["message"], r.text
    assert len(api.get(f"{API}/datasets/sales/eu/versions").json()) == 1
    v2 = api.post(f"{API}/datasets/sales/eu/versions",
                  json={"files": [new, entries[0]], "expect": ["rows >= 4"], "message": "v2"})
    assert v2.status_code == 201 and v2.json()["version"] == 2
    assert v2.json()["quality"][0]["passed"] is True
    diff = api.get(f"{API}/datasets/diff", params={"a": "sales/eu@gold", "b": "sales/eu@2"}).json()
    assert [c["path"] for c in diff["changed"]] == ["data.csv"]
    # Aliases move, and are removed.
    moved = api.put(f"{API}/datasets/sales/eu/aliases/gold", json={"version": 2})
    assert moved.status_code == 200 and moved.json()["aliases"] == ["gold"]
    assert api.get(f"{API}/datasets/sales/eu/versions/gold").json()["version"] == 2
    assert api.put(f"{API}/datasets/sales/eu/aliases/silver", json={"version": "gold"}).json()[
        "version"] == 2
    assert api.delete(f"{API}/datasets/sales/eu/aliases/silver").status_code == 200
    assert api.delete(f"{API}/datasets/sales/eu/aliases/silver").status_code == 404
    assert api.get(f"{API}/datasets/sales/eu/versions/silver").status_code == 404
    # Run inputs.
    r = api.post(f"{API}/runs/{run}/inputs", json={"dataset": "sales/eu@gold", "role": "train"})
    assert r.status_code == 200 and r.json()["dataset"] == "sales/eu@2", r.text
    assert api.get(f"{API}/runs/{run}/inputs").json()["inputs"] == \
        [{"dataset": "sales/eu@2", "role": "train"}]
    events = api.get(f"{API}/audit").json()["events"]
    actions = [e["action"] for e in events]
    for action in ("dataset.create", "dataset.alias", "dataset.alias_remove", "run.log_input"):
        assert action in actions, actions


def test_bad_input_is_a_clear_4xx_and_changes_nothing(api):
    exp = api.post(f"{API}/experiments", json={"name": "e"}).json()["id"]
    run = api.post(f"{API}/runs", json={"experiment_id": exp}).json()["id"]
    add_dataset(api, "d", {"a.txt": b"a"})
    good = upload(api, b"b", "b.txt")
    url = f"{API}/datasets/d/versions"
    cases = [
        ("get", f"{API}/datasets/nope/versions", {}, 404, "no data set"),
        ("get", f"{API}/datasets/d/versions/7", {}, 404, "no version 7"),
        ("get", f"{API}/datasets/d/versions/v0", {}, 400, "start at 1"),
        ("get", f"{API}/datasets/d/versions/{10**20}", {}, 404, f"no version {10**20}"),
        ("get", f"{API}/datasets/d/versions/nope", {}, 404, "no alias"),
        ("get", f"{API}/datasets/d/versions/1/files", {"params": {"path": "../etc"}}, 400, "'..'"),
        ("get", f"{API}/datasets/d/versions/1/files", {"params": {"path": "zz"}}, 404, "zz"),
        ("get", f"{API}/datasets/d/versions/1/files", {"params": {"limit": 0}}, 400, "limit"),
        ("get", f"{API}/datasets/..%2F..%2Fetc/versions", {}, 400, "invalid data set name"),
        ("get", f"{API}/datasets/diff", {"params": {"a": "d@1"}}, 400, "b"),
        ("get", f"{API}/datasets/diff", {"params": {"a": "d@1", "b": "x@1"}}, 404, "x"),
        ("post", url, {"json": {"files": [{**good, "path": "../evil"}]}}, 400, "'..'"),
        ("post", url, {"json": {"files": [{**good, "path": "/abs"}]}}, 400, "relative"),
        ("post", url, {"json": {"files": [good, good]}}, 400, "duplicate"),
        ("post", url, {"json": {"files": [{**good, "chunks": [[good["digest"], 5]]}]}}, 400,
         "add up"),
        ("post", url, {"json": {"files": []}}, 400, "files"),
        ("post", url, {"json": {"files": [{**good, "size": "big"}]}}, 400, "size"),
        ("post", url, {"json": {"files": [{**good, "size": 2**70}]}}, 400, "size"),
        ("post", url, {"json": {"files": [good], "aliases": ["3"]}}, 400, "alias"),
        ("post", url, {"json": {"files": [good], "expect": ["rows >>> 3"]}}, 400, ""),
        ("post", url, {"content": b"{\"files\": [", "headers": {"content-type":
                                                                 "application/json"}}, 400, ""),
        ("post", f"{API}/datasets/bad name!/versions", {"json": {"files": [good]}}, 400,
         "invalid data set name"),
        ("put", f"{API}/datasets/d/aliases/latest", {"json": {"version": 1}}, 400, "alias"),
        ("put", f"{API}/datasets/d/aliases/gold", {"json": {"version": 0}}, 400, "version"),
        ("put", f"{API}/datasets/d/aliases/gold", {"json": {"version": 5}}, 404, "no version 5"),
        ("put", f"{API}/datasets/zz/aliases/gold", {"json": {"version": 1}}, 404, "zz"),
        ("delete", f"{API}/datasets/d/aliases/gold", {}, 404, "no alias"),
        ("post", f"{API}/runs/{run}/inputs", {"json": {"dataset": "d@9"}}, 404, "no version 9"),
        ("post", f"{API}/runs/{run}/inputs", {"json": {"dataset": "d@1", "role": ""}}, 400, "role"),
        ("post", f"{API}/runs/nope/inputs", {"json": {"dataset": "d@1"}}, 404, "nope"),
        ("post", f"{API}/runs/{run}/inputs", {"json": {"dataset": f"d@{10**20}"}}, 404,
         "no version"),
        ("post", f"{API}/runs/a.b/inputs", {"json": {"dataset": "d@1"}}, 400, "run_id"),
        ("post", f"{API}/datasets/d/versions/9/verify", {}, 404, "no version 9"),
    ]
    for method, path, kw, status, text in cases:
        r = getattr(api, method)(path, **kw)
        assert r.status_code == status, (method, path, kw, r.status_code, r.text)
        assert text in r.json()["message"], (path, kw, r.json())
    versions = api.get(url).json()
    assert [(v["version"], v["files"], v["aliases"]) for v in versions] == [(1, 1, [])]
    assert api.get(f"{API}/runs/{run}/inputs").json()["inputs"] == []


@pytest.fixture(params=STORES)
def world(request, tmp_path):
    store = open_store(request.param, tmp_path, request)
    with World(store) as w:
        add_dataset(w.api, "shared", {"x.csv": CSV1}, w.admin)
        yield w
    store.close()


def test_role_matrix_for_data_sets(world):
    """Reading needs viewer somewhere, writing editor somewhere, run inputs editor on the run."""
    w = world
    content = {u: upload(w.api, f"{u}\n".encode(), "x.csv", w.admin) for u in USERS}
    for user in USERS:
        rank = RANK[user]
        reads = [("get", "/datasets", {}), ("get", "/datasets/shared/versions", {}),
                 ("get", "/datasets/shared/versions/1", {}),
                 ("get", "/datasets/shared/versions/1/files", {}),
                 ("get", "/datasets/shared/versions/latest/stats", {}),
                 ("get", "/datasets/diff", {"params": {"a": "shared@1", "b": "shared@1"}}),
                 ("post", "/datasets/shared/versions/1/verify", {})]
        for method, path, kw in reads:
            r = w.call(user, method, path, **kw)
            assert (r.status_code == 200) == (rank >= RANK["viewer"]), (user, path, r.text)
            if rank < RANK["viewer"]:
                assert r.status_code == 403 and "viewer" in r.json()["message"]
        writes = [("post", f"/datasets/by-{user}/versions", {"json": {"files": [content[user]]}}),
                  ("put", f"/datasets/shared/aliases/{user}", {"json": {"version": 1}}),
                  ("delete", f"/datasets/shared/aliases/{user}", {}),
                  ("post", f"/runs/{w.run_e}/inputs", {"json": {"dataset": "shared@1",
                                                                "role": user}})]
        for method, path, kw in writes:
            r = w.call(user, method, path, **kw)
            assert (r.status_code < 300) == (rank >= RANK["editor"]), (user, path, r.text)
            if rank < RANK["editor"]:
                assert r.status_code == 403 and "editor" in r.json()["message"], r.text
        # A run of experiment F: nobody but admins may record its inputs.
        r = w.call(user, "post", f"/runs/{w.run_f}/inputs", json={"dataset": "shared@1"})
        assert r.status_code == 403, (user, r.text)
        assert w.call(user, "get", f"/runs/{w.run_f}/inputs").status_code == 403
    names = [d["name"] for d in w.call("viewer", "get", "/datasets").json()]
    assert names == ["by-admin", "by-approver", "by-editor", "shared"]
    roles = {i["role"] for i in w.call("viewer", "get", f"/runs/{w.run_e}/inputs").json()["inputs"]}
    assert roles == {"editor", "approver", "admin"}
    assert w.call(None, "get", "/datasets").status_code == 401
    r = w.api.get(f"{API}/datasets", headers={"authorization": "Bearer cairn_not-a-token"})
    assert r.status_code == 401 and "unknown" in r.json()["message"]
    created = w.audit("dataset.create")
    assert {e["actor"] for e in created} == {"root", "editor", "approver", "admin"}
