"""Issue #15: the server answers 400, never 500, for lone surrogates, JSON nested too deep
and booleans in integer fields, on every route (native, MLflow, ``/ajax-api``), and what
it refused leaves the store as it was.  Against a local store and PostgreSQL."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from cairn.cas import ObjectStore
from cairn.server import ServerSettings, create_app
from cairn.store.local import LocalStore
from cairn.store.sql.store import SqlStore
from cairn.testing import ServerThread

API = "/api/v1"
ML = "/api/2.0/mlflow"
AJAX = "/ajax-api/2.0/mlflow"
ADMIN = "cairn_" + "h" * 40
JSON_TYPE = {"content-type": "application/json"}
MAX_JSON_DEPTH = 64  # the documented limit (docs/server.md)


@pytest.fixture(params=["local", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request, tmp_path):
    """(kind, a function that opens the store anew)."""
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None

    def reopen():
        if url is None:
            return LocalStore(tmp_path / "store")
        return SqlStore(url, ObjectStore.local(tmp_path / "objects"))

    return request.param, reopen


@pytest.fixture
def world(backend):
    """A server on the store, an experiment and a run with a tag, a param and a metric."""
    _kind, reopen = backend
    store = reopen()
    with TestClient(create_app(store), raise_server_exceptions=False) as api:
        eid = api.post(f"{API}/experiments", json={"name": "e"}).json()["id"]
        r = api.post(f"{API}/runs", json={"experiment_id": eid, "name": "r", "tags": {"keep": "1"},
                                           "params": {"lr": "0.1"}})
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        assert api.post(f"{API}/runs/{rid}/log", json={"metrics": [
            {"key": "loss", "value": 1.5, "step": 0}]}).status_code == 200
        yield {"api": api, "eid": eid, "rid": rid, "store": store, "reopen": reopen}
    store.close()


def _raw(api, method: str, path: str, text: str | bytes, headers=JSON_TYPE):
    body = text.encode("ascii") if isinstance(text, str) else text
    return api.request(method, path, content=body, headers=headers)


def _is_400(r, *words: str) -> None:
    assert r.status_code == 400, (r.status_code, r.text)
    body = r.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE", body
    for w in words:
        assert w in body["message"], body


def _unchanged(w) -> None:
    """The run the fixture made is whole, through the server and through a new store."""
    run = w["api"].get(f"{API}/runs/{w['rid']}").json()
    assert run["tags"] == {"keep": "1"} and run["params"] == {"lr": "0.1"}
    assert run["metrics"] == {"loss": 1.5}
    fresh = w["reopen"]()
    try:
        again = fresh.get_run(w["rid"])
        assert again.tags == {"keep": "1"} and again.params == {"lr": "0.1"}
        assert [e.name for e in fresh.list_experiments()] == ["e"]
    finally:
        fresh.close()


# -- lone surrogates: JSON escapes ("\ud800") ------------------------------------------
def _records(rid: str, **fields: str) -> str:
    batch = {"run_id": rid, "writer_id": "w-hardening", "seq": 1, "time": 1}
    text = json.dumps({"batches": [{**batch, **{k: "@" + k for k in fields}}]})
    for k, v in fields.items():  # the raw JSON text of each field, escapes as written
        text = text.replace(f'"@{k}"', v)
    return text


@pytest.mark.parametrize("fields", [
    {"tags": r'{"bad": "x\ud800y"}'},
    {"tags": r'{"b\udcffd": "v"}'},
    {"params": r'{"p": "\udc80"}'},
    {"metrics": r'{"m\ud800": {"steps": [0], "timestamps": [1], "values": [1.0]}}'},
    {"deleted_tags": r'["\ud800"]'},
    {"env": r'{"python": {"path": "/usr/\udcff/lib"}}'},
], ids=["tag-value", "tag-key", "param-value", "metric-key", "deleted-tag", "env"])
def test_records_with_a_lone_surrogate_escape_are_400(world, fields):
    r = _raw(world["api"], "POST", f"{API}/records", _records(world["rid"], **fields))
    _is_400(r, "lone surrogate")
    _unchanged(world)


def test_records_creating_a_run_with_a_lone_surrogate_in_its_name_is_400(world):
    text = _records("run-new", create=json.dumps(
        {"experiment_id": world["eid"], "name": "@name"}).replace('"@name"', r'"r\ud800"'))
    _is_400(_raw(world["api"], "POST", f"{API}/records", text), "lone surrogate")
    assert world["api"].get(f"{API}/runs/run-new").status_code == 404
    _unchanged(world)


def test_a_valid_surrogate_pair_is_one_character_and_welcome(world):
    r = _raw(world["api"], "POST", f"{API}/records",
             _records(world["rid"], tags=r'{"smile": "\ud83d\ude00"}'))
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "applied", r.text
    assert world["api"].get(f"{API}/runs/{world['rid']}").json()["tags"]["smile"] == "\U0001F600"
    r = _raw(world["api"], "POST", f"{API}/experiments", r'{"name": "e-\ud83d\ude00"}')
    assert r.status_code == 201 and r.json()["name"] == "e-\U0001F600"


NATIVE = [
    ("POST", "/experiments", r'{"name": "e\ud800"}'),
    ("POST", "/experiments", r'{"name": "ok", "tags": {"t": "\udcff"}}'),
    ("POST", "/experiments", r'{"name": "ok", "tags": {"\udcff": "t"}}'),
    ("POST", "/runs", r'{"experiment_id": "{eid}", "name": "r\ud800"}'),
    ("POST", "/runs", r'{"experiment_id": "{eid}", "params": {"k": "\ud800"}}'),
    ("POST", "/runs/{rid}/log", r'{"params": {"k\ud800": "v"}}'),
    ("POST", "/runs/{rid}/log", r'{"tags": {"t": "v\udfff"}}'),
    ("POST", "/runs/{rid}/log", r'{"metrics": [{"key": "m\ud800", "value": 1}]}'),
    ("POST", "/runs/search", r'{"filter": "params.lr = \u0027\ud800\u0027"}'),
    ("POST", "/models", r'{"name": "m\ud800"}'),
    ("POST", "/models", r'{"name": "m", "description": "d\ud800"}'),
    ("POST", "/models", r'{"name": "m", "tags": {"k": "\ud800"}}'),
    ("POST", "/users", r'{"name": "u\ud800"}'),
]


@pytest.mark.parametrize("method,path,text", NATIVE,
                         ids=[f"{m} {p} {i}" for i, (m, p, _t) in enumerate(NATIVE)])
def test_native_routes_answer_400_for_a_lone_surrogate_escape(world, method, path, text):
    path = path.replace("{rid}", world["rid"])
    r = _raw(world["api"], method, API + path, text.replace("{eid}", world["eid"]))
    _is_400(r, "lone surrogate")
    _unchanged(world)


MLFLOW = [
    ("experiments/create", r'{"name": "x\ud800"}'),
    ("runs/create", r'{"experiment_id": "{eid}", "run_name": "r\udcff"}'),
    ("runs/set-tag", r'{"run_id": "{rid}", "key": "k", "value": "\ud800"}'),
    ("runs/log-parameter", r'{"run_id": "{rid}", "key": "k\ud800", "value": "v"}'),
    ("runs/log-batch", r'{"run_id": "{rid}", "params": [{"key": "p", "value": "\ud800"}]}'),
    ("runs/log-metric", r'{"run_id": "{rid}", "key": "m\ud800", "value": 1, "timestamp": 1}'),
    ("registered-models/create", r'{"name": "m", "description": "\ud800"}'),
]


@pytest.mark.parametrize("prefix", [ML, AJAX])
@pytest.mark.parametrize("path,text", MLFLOW, ids=[p for p, _t in MLFLOW])
def test_mlflow_routes_answer_400_for_a_lone_surrogate_escape(world, prefix, path, text):
    text = text.replace("{eid}", world["eid"]).replace("{rid}", world["rid"])
    r = _raw(world["api"], "POST", f"{prefix}/{path}", text)
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    _unchanged(world)


@pytest.mark.parametrize("path", [f"{API}/experiments", f"{API}/runs/search", f"{API}/records",
                                  f"{ML}/experiments/create", f"{AJAX}/runs/search"])
def test_surrogates_as_raw_utf8_bytes_are_400(world, path):
    # What a careless encoder makes of "\ud800": the bytes ED A0 80, which json.loads
    # (surrogatepass) would turn back into a lone surrogate.
    r = _raw(world["api"], "POST", path, b'{"name": "x\xed\xa0\x80", "filter": ""}')
    assert r.status_code == 400, r.text
    _unchanged(world)


def test_surrogates_in_paths_and_query_strings_are_never_a_500(world):
    api, rid = world["api"], world["rid"]
    bad = "%ED%A0%80"  # the UTF-8 bytes of U+D800, percent-encoded
    answers = [
        api.get(f"{API}/experiments/by-name?name=x{bad}"),
        api.get(f"{API}/runs/{bad}"),
        api.put(f"{API}/runs/{rid}/tags/k{bad}", content=b"v"),
        api.put(f"{API}/runs/{rid}/tags/k", content=b"v\xed\xa0\x80"),
        api.delete(f"{API}/runs/{rid}/tags/{bad}"),
        api.get(f"{API}/runs/{rid}/metrics/{bad}"),
        api.get(f"{API}/models/m{bad}"),
        api.get(f"{API}/datasets/d{bad}"),
        api.get(f"{ML}/experiments/get-by-name?experiment_name=x{bad}"),
        api.get(f"{ML}/runs/get?run_id={bad}"),
        api.get(f"{AJAX}/metrics/get-history?run_id={rid}&metric_key={bad}"),
    ]
    for r in answers:
        assert r.status_code < 500, (r.request.method, r.request.url, r.status_code, r.text)
    # The raw tag body is not UTF-8: refused, the tag never set.
    assert answers[3].status_code == 400
    assert "k" not in api.get(f"{API}/runs/{rid}").json()["tags"]


# -- JSON nested too deep -----------------------------------------------------------------
def _deep(levels: int, inner: str = "1") -> str:
    return "[" * levels + inner + "]" * levels


@pytest.mark.parametrize("path", [f"{API}/records", f"{API}/experiments", f"{API}/runs/search",
                                  f"{ML}/experiments/create", f"{ML}/runs/log-batch",
                                  f"{AJAX}/runs/search"])
@pytest.mark.parametrize("levels", [1000, 100_000])
def test_json_nested_too_deep_is_400(world, path, levels):
    r = _raw(world["api"], "POST", path, '{"batches": ' + _deep(levels) + "}")
    _is_400(r, "nested")
    _unchanged(world)


def test_the_depth_limit_is_64_levels(world):
    api = world["api"]
    ok = '{"name": "deep-ok", "x": ' + _deep(MAX_JSON_DEPTH - 1) + "}"
    assert _raw(api, "POST", f"{API}/experiments", ok).status_code == 201
    too = '{"name": "deep-no", "x": ' + _deep(MAX_JSON_DEPTH) + "}"
    _is_400(_raw(api, "POST", f"{API}/experiments", too), f"{MAX_JSON_DEPTH} levels")
    records = '{"batches": [], "x": ' + _deep(MAX_JSON_DEPTH) + "}"
    _is_400(_raw(api, "POST", f"{API}/records", records), f"{MAX_JSON_DEPTH} levels")
    mlflow = '{"name": "deep-ml", "x": ' + _deep(MAX_JSON_DEPTH) + "}"
    assert _raw(api, "POST", f"{ML}/experiments/create", mlflow).status_code == 400
    assert api.get(f"{API}/experiments/by-name", params={"name": "deep-no"}).status_code == 404


def test_bodies_without_a_content_type_are_checked_and_uploads_pass(world):
    api = world["api"]
    r = _raw(api, "POST", f"{API}/experiments", r'{"name": "e\ud800"}', headers={})
    assert r.status_code == 400, r.text
    data = b"\xed\xa0\x80 binary, not JSON"  # an upload is never read as JSON
    import hashlib

    oid = hashlib.sha256(data).hexdigest()
    assert api.put(f"{API}/objects/{oid}", content=data).status_code in (200, 201)


# -- booleans in integer fields -------------------------------------------------------------
@pytest.fixture
def auth_api(backend):
    _kind, reopen = backend
    store = reopen()
    app = create_app(store, settings=ServerSettings(auth=True, bootstrap_token=ADMIN,
                                                    bootstrap_user="root", token_cache_s=0))
    with TestClient(app, raise_server_exceptions=False,
                    headers={"authorization": f"Bearer {ADMIN}"}) as api:
        app.state.cairn.start()
        assert api.post(f"{API}/users", json={"name": "alice"}).status_code == 201
        yield api
    store.close()


@pytest.mark.parametrize("value", [False, True])
def test_a_token_cannot_expire_at_false(auth_api, value):
    r = auth_api.post(f"{API}/users/alice/tokens", json={"name": "t", "expires_at": value})
    assert r.status_code == 400, r.text
    assert auth_api.get(f"{API}/tokens?user=alice").json()["tokens"] == []
    an_hour = int(time.time() * 1000) + 3_600_000  # an integer in the future is taken
    later = auth_api.post(f"{API}/users/alice/tokens", json={"name": "t", "expires_at": an_hour})
    assert later.status_code == 201, later.text


@pytest.mark.parametrize("path,body", [
    ("/runs/search", {"max_results": True}),
    ("/runs/{rid}/log", {"metrics": [{"key": "m", "value": 1.0, "step": True}]}),
    ("/runs/{rid}/log", {"metrics": [{"key": "m", "value": 1.0, "timestamp": False}]}),
    ("/runs/{rid}/end", {"status": "FINISHED", "end_time": True}),
    ("/runs", {"experiment_id": "{eid}", "start_time": False}),
    ("/heartbeat", {"run_ids": ["{rid}"], "time": True}),
])
def test_integer_fields_refuse_booleans(world, path, body):
    api, rid, eid = world["api"], world["rid"], world["eid"]
    text = json.dumps(body).replace("{rid}", rid).replace("{eid}", eid)
    r = _raw(api, "POST", API + path.replace("{rid}", rid), text)
    assert r.status_code == 400, r.text
    run = api.get(f"{API}/runs/{rid}").json()
    assert run["status"] == "RUNNING" and run["metrics"] == {"loss": 1.5}


def test_model_policy_approvals_refuse_a_boolean(world):
    api = world["api"]
    assert api.post(f"{API}/models", json={"name": "m"}).status_code == 201
    r = api.put(f"{API}/models/m/policies", json={"stage": "production", "approvals": True})
    assert r.status_code == 400, r.text
    policies = api.get(f"{API}/models/m/policies").json()
    assert all(p.get("approvals") != 1 for p in (policies if isinstance(policies, list)
                                                 else policies.get("policies", [])))


# -- a real server process ---------------------------------------------------------------------
def test_a_real_server_answers_400_and_keeps_serving(tmp_path):
    store = LocalStore(tmp_path / "served")
    try:
        with ServerThread(create_app(store)) as url, httpx.Client(base_url=url, timeout=60) as http:
            eid = http.post(f"{API}/experiments", json={"name": "e"}).json()["id"]
            rid = http.post(f"{API}/runs", json={"experiment_id": eid}).json()["id"]
            answers = [
                http.post(f"{API}/records", content=_records(rid, tags=r'{"b": "\ud800"}'),
                          headers=JSON_TYPE),
                http.post(f"{API}/records", content='{"batches": ' + _deep(1000) + "}",
                          headers=JSON_TYPE),
                http.post(f"{ML}/runs/set-tag", headers=JSON_TYPE,
                          content=r'{"run_id": "%s", "key": "k", "value": "\udcff"}' % rid),
                http.post(f"{API}/experiments", content=r'{"name": "\ud800"}', headers=JSON_TYPE),
            ]
            assert [r.status_code for r in answers] == [400, 400, 400, 400], \
                [r.text for r in answers]
            assert http.get(f"{API}/runs/%ED%A0%80").status_code < 500
            ok = http.post(f"{API}/records", content=_records(rid, tags='{"b": "fine"}'),
                           headers=JSON_TYPE)
            assert ok.status_code == 200 and ok.json()["results"][0]["status"] == "applied"
            assert http.get(f"{API}/runs/{rid}").json()["tags"] == {"b": "fine"}
    finally:
        store.close()
    again = LocalStore(tmp_path / "served")
    try:
        assert again.get_run(rid).tags == {"b": "fine"}
    finally:
        again.close()


def test_the_body_check_keeps_the_body_limit(tmp_path):
    # The check reads JSON bodies inside the limits: a streamed body past the limit is still
    # the 413 each route gave (not a 400, not read to its end).
    store = LocalStore(tmp_path / "limited")
    app = create_app(store, settings=ServerSettings(max_request_bytes=4096))
    try:
        with TestClient(app, raise_server_exceptions=False) as api:
            for path in (f"{API}/experiments", f"{ML}/experiments/create",
                         f"{API}/runs/search"):
                for chunks in ([b"{", b" " * 5000, b"}"], [b"{"] + [b" " * 1000] * 6 + [b"}"]):
                    r = api.post(path, content=iter(chunks), headers=JSON_TYPE)
                    assert r.status_code == 413, (path, r.text)
            small = _raw(api, "POST", f"{API}/experiments", r'{"name": "\ud800"}')
            assert small.status_code == 400
    finally:
        store.close()
