"""The native REST API through an in-process client: features, bad input, immutability."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
from fastapi.testclient import TestClient

from cairn.cas import ObjectStore
from cairn.entities import RecordBatch
from cairn.server import ServerSettings, create_app
from cairn.store import segments
from cairn.store.sql.store import SqlStore
from cairn.store.wire import RECORDS_TYPE, SEGMENT_TYPE, encode_frames

API = "/api/v1"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    url = (f"sqlite:///{tmp_path / 'server.db'}" if request.param == "sqlite"
           else request.getfixturevalue("pg_url"))
    s = SqlStore(url, ObjectStore.local(tmp_path / "objects"))
    yield s
    s.close()


@pytest.fixture
def api(store):
    with TestClient(create_app(store, settings=ServerSettings(max_request_bytes=2 << 20)),
                    raise_server_exceptions=False) as c:
        yield c


def _exp(api, name="e") -> str:
    r = api.post(f"{API}/experiments", json={"name": name, "tags": {"team": "x"}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _run(api, exp_id, **fields) -> str:
    r = api.post(f"{API}/runs", json={"experiment_id": exp_id, **fields})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_health_ready_info_and_openapi(api):
    assert api.get("/health").json() == {"status": "ok"}
    assert api.get("/ready").json() == {"status": "ready"}
    assert api.get(f"{API}/info").json()["auth"] is False
    spec = api.get("/openapi.json").json()
    assert f"{API}/records" in spec["paths"] and f"{API}/runs/search" in spec["paths"]
    assert api.get("/docs").status_code == 200


def test_experiments_and_runs(api):
    eid = _exp(api)
    assert api.post(f"{API}/experiments", json={"name": "e"}).status_code == 409
    assert api.get(f"{API}/experiments/{eid}").json()["tags"] == {"team": "x"}
    assert api.get(f"{API}/experiments/by-name", params={"name": "e"}).json()["id"] == eid
    assert api.get(f"{API}/experiments/by-name", params={"name": "zz"}).status_code == 404
    assert [e["name"] for e in api.get(f"{API}/experiments").json()["experiments"]] == ["e"]
    rid = _run(api, eid, name="r1", params={"lr": "0.1"}, tags={"t": "1"})
    r = api.post(f"{API}/runs/{rid}/log", json={"metrics": [
        {"key": "loss", "value": 2.0, "step": 0}, {"key": "loss", "value": "NaN", "step": 1},
        {"key": "loss", "value": "-Infinity", "step": 2}, {"key": "acc", "value": 0.5}]})
    assert r.status_code == 200, r.text
    assert api.put(f"{API}/runs/{rid}/tags/note/a", content="hello").status_code == 200
    run = api.get(f"{API}/runs/{rid}").json()
    assert run["params"] == {"lr": "0.1"} and run["tags"] == {"t": "1", "note/a": "hello"}
    assert run["metrics"] == {"loss": "-Infinity", "acc": 0.5} and run["status"] == "RUNNING"
    assert api.delete(f"{API}/runs/{rid}/tags/t").status_code == 200
    found = api.post(f"{API}/runs/search", json={"experiment_ids": [eid],
                                                  "filter": "params.lr = '0.1'",
                                                  "order_by": ["metrics.acc DESC"]}).json()
    assert [r["id"] for r in found["runs"]] == [rid] and found["next_page_token"] is None
    ended = api.post(f"{API}/runs/{rid}/end", json={"status": "FAILED", "end_time": 123})
    assert ended.json()["status"] == "FAILED" and ended.json()["end_time"] == 123
    assert api.post(f"{API}/heartbeat", json={"run_ids": [rid]}).status_code == 200


def test_finished_runs_are_immutable_over_the_api(api):
    rid = _run(api, _exp(api), params={"lr": "0.1"})
    api.post(f"{API}/runs/{rid}/log", json={"metrics": [{"key": "m", "value": 1, "step": 0}]})
    api.post(f"{API}/runs/{rid}/end", json={})
    for body in ({"metrics": [{"key": "m", "value": 2, "step": 1}]}, {"params": {"new": "1"}}):
        r = api.post(f"{API}/runs/{rid}/log", json=body)
        assert r.status_code == 409, r.text
        assert r.json()["error_code"] == "INVALID_STATE" and "immutable" in r.json()["message"]
    changed = api.post(f"{API}/runs/{rid}/log", json={"params": {"lr": "0.2"}})
    assert changed.status_code in (400, 409)
    assert api.put(f"{API}/runs/{rid}/tags/note", content="still editable").status_code == 200
    h = api.get(f"{API}/runs/{rid}/metrics/history", params={"key": "m"}).json()
    assert h["values"] == [1.0]


def test_record_ingestion_is_idempotent_by_writer_and_seq(api):
    eid = _exp(api)
    create = {"experiment_id": eid, "experiment_name": "e", "name": "r", "user": "u",
              "start_time": 1}
    batches = [
        RecordBatch(run_id="run1", writer_id="w1", seq=1, time=1, create=create),
        RecordBatch(run_id="run1", writer_id="w1", seq=2, time=2,
                    metrics={"x": (np.arange(1000), np.arange(1000), np.arange(1000) * 0.5)}),
    ]
    body = encode_frames(batches)
    r = api.post(f"{API}/records", content=body, headers={"content-type": RECORDS_TYPE})
    assert [x["status"] for x in r.json()["results"]] == ["applied", "applied"]
    r = api.post(f"{API}/records", content=body, headers={"content-type": RECORDS_TYPE})
    assert [x["status"] for x in r.json()["results"]] == ["duplicate", "duplicate"]
    js = {"batches": [{"run_id": "run1", "writer_id": "w2", "seq": 1, "time": 3,
                       "metrics": {"x": {"steps": [1000], "timestamps": [5],
                                         "values": ["Infinity"]}}},
                      {"run_id": "ghost", "writer_id": "w3", "seq": 1, "tags": {"a": "b"}}]}
    res = api.post(f"{API}/records", json=js).json()["results"]
    assert res[0]["status"] == "applied" and res[1]["status"] == "rejected"
    assert res[1]["error"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert api.post(f"{API}/records", json=js).json()["results"][0]["status"] == "duplicate"
    seg = api.get(f"{API}/runs/run1/metrics/history", params={"key": "x"},
                  headers={"accept": SEGMENT_TYPE})
    s, t, v = segments.decode(seg.content)
    assert len(s) == 1001 and v[-1] == math.inf and v[999] == 499.5


def test_metric_history_exact_and_envelope(api):
    rid = _run(api, _exp(api))
    values = [float(i % 10) for i in range(1000)]
    values[500] = 1000.0  # a spike no downsampling may hide
    values[501] = math.nan
    api.post(f"{API}/runs/{rid}/log", json={"metrics": [
        {"key": "m", "value": "NaN" if math.isnan(v) else v, "step": i}
        for i, v in enumerate(values)]})
    exact = api.get(f"{API}/runs/{rid}/metrics/history", params={"key": "m"}).json()
    assert exact["count"] == 1000 and exact["values"][501] == "NaN"
    env = api.get(f"{API}/runs/{rid}/metrics/history", params={"key": "m", "buckets": 10}).json()
    assert len(env["min"]) == 10 and sum(env["n"]) == 1000
    assert max(env["max"]) == 1000.0 and min(env["min"]) == 0.0
    assert env["step_start"][0] == 0 and env["step_end"][-1] == 999
    zoom = api.get(f"{API}/runs/{rid}/metrics/history",
                   params={"key": "m", "step_min": 495, "step_max": 505}).json()
    assert zoom["steps"] == list(range(495, 506))
    bad = api.get(f"{API}/runs/{rid}/metrics/history",
                  params={"key": "m", "step_min": 9, "step_max": 1})
    assert bad.status_code == 400


def test_artifacts_upload_only_missing_and_stream_back(api, store):
    rid = _run(api, _exp(api))
    content = b"weights" * 1000
    oid = hashlib.sha256(content).hexdigest()
    assert api.post(f"{API}/objects/missing", json={"oids": [oid]}).json() == {"missing": [oid]}
    assert api.put(f"{API}/objects/{oid}", content=b"tampered").status_code == 400
    r = api.put(f"{API}/objects/{oid}", content=content)
    assert r.json() == {"oid": oid, "stored": True}
    assert api.put(f"{API}/objects/{oid}", content=content).json()["stored"] is False
    assert api.post(f"{API}/objects/missing", json={"oids": [oid]}).json() == {"missing": []}
    entry = {"path": "model/w.bin", "size": len(content), "digest": oid}
    assert api.post(f"{API}/runs/{rid}/artifacts", json={"files": [entry]}).status_code == 200
    missing = {"path": "x.bin", "size": 1, "digest": "ab" * 32}
    r = api.post(f"{API}/runs/{rid}/artifacts", json={"files": [missing]})
    assert r.status_code == 409 and "upload them first" in r.json()["message"]
    files = api.get(f"{API}/runs/{rid}/artifacts").json()["files"]
    assert [f["path"] for f in files] == ["model/w.bin"]
    dl = api.get(f"{API}/runs/{rid}/artifacts/download", params={"path": "model/w.bin"})
    assert dl.status_code == 200 and dl.content == content
    assert dl.headers["x-cairn-digest"] == oid
    assert api.get(f"{API}/objects/{oid}").content == content


BAD_REQUESTS = [
    ("post", "/experiments", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
    ("post", "/experiments", {"json": {"name": 5}}),
    ("post", "/experiments", {"json": {"name": ""}}),
    ("post", "/experiments", {"json": {"name": "a\x00b"}}),
    ("post", "/experiments", {"json": []}),
    ("post", "/runs", {"json": {"experiment_id": ["x"]}}),
    ("post", "/runs/search", {"json": {"filter": "metrics.x >>> 1"}}),
    ("post", "/runs/search", {"json": {"max_results": 0}}),
    ("post", "/runs/search", {"json": {"page_token": "garbage"}}),
    ("post", "/runs/search", {"json": {"page_token": "eyJvZmZzZXQiOiAxMDAwMDAwMDAwMDAwMDAwMDAwMDB9"}}),
    ("post", "/records", {"content": b"CJR1garbage", "headers": {"content-type": RECORDS_TYPE}}),
    ("post", "/records", {"content": b"\x00\x01", "headers": {"content-type": "text/plain"}}),
    ("post", "/records", {"json": {"batches": [{"run_id": "r", "writer_id": "w", "seq": "x"}]}}),
    ("post", "/records", {"json": {"batches": [{"run_id": "r" * 100, "writer_id": "w", "seq": 1}]}}),
    ("post", "/records", {"json": {"batches": [{"run_id": "r", "writer_id": "w", "seq": 1,
                                                "metrics": {"m": {"steps": [2 ** 70],
                                                                  "timestamps": [1],
                                                                  "values": [1]}}}]}}),
    ("post", "/records", {"json": {"batches": [{"run_id": "r", "writer_id": "w", "seq": 1,
                                                "params": {"k" * 300: "v"}}]}}),
    ("post", "/records", {"json": {"batches": [{"run_id": "r", "writer_id": "w", "seq": 1,
                                                "artifacts": [{"path": "../../etc/passwd",
                                                               "size": 1, "digest": "ab" * 32}]}]}}),
    ("post", "/runs/nope/artifacts", {"json": {"files": [{"path": "a", "size": 2 ** 70,
                                                          "digest": "ab" * 32}]}}),
    ("post", "/records", {"json": {"batches": [{"run_id": "r", "writer_id": "w", "seq": 1,
                                                "artifacts": [{"path": "a", "size": 2 ** 70,
                                                               "digest": "ab" * 32}]}]}}),
    ("get", "/runs/nope/artifacts/download?path=..%2F..%2Fetc%2Fpasswd", {}),
    ("get", "/runs/nope/artifacts/download?path=/etc/passwd", {}),
    ("get", "/objects/../../etc/passwd", {}),
    ("get", "/objects/" + "zz" * 32, {}),
    ("put", "/objects/" + "ab" * 32, {"content": b"x"}),
    ("get", "/runs/nope/metrics/history?key=m&buckets=0", {}),
    ("get", "/runs/nope", {}),
    ("get", "/runs/nope%00x", {}),
    ("get", "/experiments/123", {}),
    ("get", "/no/such/endpoint", {}),
    ("delete", "/experiments", {}),
]


@pytest.mark.parametrize("method,path,kw", BAD_REQUESTS)
def test_bad_input_gets_a_clear_4xx_never_a_500(api, method, path, kw):
    r = getattr(api, method)(API + path, **kw)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    if r.status_code == 200:
        return
    body = r.json()
    assert body["error_code"] and body["message"], body
    if path.startswith("/records") and r.status_code == 200:
        assert all(x["status"] == "rejected" for x in body["results"])


def test_rejected_batches_in_records_are_reported_per_batch(api):
    js = {"batches": [{"run_id": "r", "writer_id": "w", "seq": 1, "tags": {"a": "b"}}]}
    r = api.post(f"{API}/records", json=js)
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "rejected"


def test_huge_payloads_get_413(api):
    r = api.post(f"{API}/records", content=b"x" * (3 << 20),
                 headers={"content-type": RECORDS_TYPE})
    assert r.status_code == 413 and r.json()["error_code"] == "REQUEST_TOO_LARGE"

    def chunks():  # no content-length: the limit applies to what streams in
        for _ in range(40):
            yield b"y" * (100 << 10)

    r = api.post(f"{API}/records", content=chunks(), headers={"content-type": RECORDS_TYPE})
    assert r.status_code == 413


def test_records_take_the_short_path_and_answer_as_the_app_does(api, monkeypatch):
    from cairn.server import app as app_mod
    from cairn.server.routes import records

    served = []
    real = records.ingest

    async def spy(request, p, strict=None):
        served.append(request.scope.get("route"))  # the app's router sets a route; we don't
        return await real(request, p, strict)

    monkeypatch.setattr(records, "ingest", spy)
    [fast] = [m for m in api.app.user_middleware if m.cls is app_mod.FastRoutes]
    assert (f"{API}/records", "POST") in fast.kwargs["endpoints"]
    r = api.post(f"{API}/records", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "not valid JSON" in r.json()["message"]
    r = api.post(f"{API}/records", content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 400 and "unsupported content type" in r.json()["message"]
    assert served == [None, None]
    # Other methods and paths go through the app's routing as before.
    r = api.get(f"{API}/records")
    assert r.status_code == 405 and r.json()["error_code"] == "METHOD_NOT_ALLOWED"
    assert served == [None, None]


def test_errors_round_trip_to_the_same_exception_class(api):
    from cairn.errors import RunFinished
    from cairn.store.wire import error_from_json

    rid = _run(api, _exp(api))
    api.post(f"{API}/runs/{rid}/end", json={})
    r = api.post(f"{API}/runs/{rid}/log", json={"metrics": [{"key": "m", "value": 1}]})
    err = error_from_json(r.json())
    assert isinstance(err, RunFinished) and json.dumps(r.json())
