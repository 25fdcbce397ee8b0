"""The MLflow fast path (plain routes served before the app's routing) answers exactly
as the mounted MLflow app does: same statuses, bodies and headers, same limits and auth."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from cairn.server.app import FastRoutes, LimitsMiddleware, create_app
from cairn.server.config import ServerSettings
from cairn.store.local import LocalStore

P = "/api/2.0/mlflow"
REQUESTS = [
    ("POST", P + "/runs/create", {"json": {"experiment_id": "123"}}),
    ("GET", P + "/runs/get", {"params": {"run_id": "nope"}}),
    ("GET", "/ajax-api/2.0/mlflow/runs/get", {"params": {"run_id": "nope"}}),
    ("POST", P + "/runs/log-batch", {"content": b"not json"}),
    ("POST", P + "/runs/log-batch", {"content": b"[1]"}),
    ("POST", P + "/runs/log-batch", {"json": {"run_id": "nope", "metrics": [{"key": "m"}]}}),
    ("POST", P + "/runs/update", {"json": {}}),
    ("GET", P + "/metrics/get-history", {"params": {"run_id": "nope", "metric_key": "m"}}),
    ("POST", P + "/runs/search", {"json": {"experiment_ids": []}}),
    ("POST", P + "/runs/search", {"json": {"experiment_ids": ["1"], "filter": "metrics.m >"}}),
    ("POST", P + "/runs/search", {"json": {"experiment_ids": ["1"], "max_results": 0}}),
    ("GET", P + "/runs/create", {}),  # a known path, another method: 405
    ("HEAD", P + "/runs/get", {"params": {"run_id": "nope"}}),
    ("GET", P + "/runs/nothing", {}),
    ("GET", P + "/runs/get%00", {}),
    ("POST", P + "/runs/log-batch", {"content": b"x" * 5000}),  # over the limit: 413
    ("POST", P + "/runs/log-batch", {"content": "stream"}),  # over the limit, without a length
]


def _app(tmp_path, name: str, fast: bool, **settings):
    app = create_app(LocalStore(tmp_path / name),
                     settings=ServerSettings(max_request_bytes=4096, **settings))
    if not fast:  # the middleware stack is built on the first request: take it out before
        app.user_middleware = [m for m in app.user_middleware if m.cls is not FastRoutes]
    return app


def _answers(app, headers: dict | None = None) -> list[tuple]:
    out = []
    with TestClient(app, raise_server_exceptions=False) as http:
        for method, path, kwargs in REQUESTS:
            if kwargs.get("content") == "stream":
                kwargs = {"content": iter([b"{", b" " * 5000, b"}"])}
            r = http.request(method, path, headers=headers, **kwargs)
            out.append((method, path, r.status_code, r.headers.get("content-type"), r.content))
    return out


def test_the_fast_path_is_on_and_skips_raw_and_parameterised_routes(tmp_path):
    app = _app(tmp_path, "a", fast=True)
    [m] = [m for m in app.user_middleware if m.cls is FastRoutes]
    endpoints = m.kwargs["endpoints"]
    assert ("/api/2.0/mlflow/runs/log-batch", "POST") in endpoints
    assert ("/ajax-api/2.0/mlflow/runs/search", "POST") in endpoints
    assert not any("{" in path or "mlflow-artifacts" in path for path, _ in endpoints)
    order = [m.cls for m in app.user_middleware]
    assert order.index(FastRoutes) < order.index(LimitsMiddleware)  # it applies them itself
    # With telemetry on, FastAPI must see the MLflow requests: only /records stays fast.
    telemetry = create_app(LocalStore(tmp_path / "t"), settings=ServerSettings(telemetry=True))
    [m] = [m for m in telemetry.user_middleware if m.cls is FastRoutes]
    assert list(m.kwargs["endpoints"]) == [("/api/v1/records", "POST")]


def test_fast_and_mounted_answers_are_the_same(tmp_path):
    fast = _answers(_app(tmp_path, "fast", fast=True))
    slow = _answers(_app(tmp_path, "slow", fast=False))
    assert fast == slow
    statuses = [a[2] for a in fast]
    assert statuses == [404, 404, 404, 400, 400, 400, 400, 404, 200, 400, 400, 405, 404, 404,
                        400, 413, 413]


@pytest.mark.parametrize("token", [None, "Bearer wrong"])
def test_auth_is_enforced_on_the_fast_path(tmp_path, token):
    headers = {"authorization": token} if token else None
    fast = _answers(_app(tmp_path, "fast", fast=True, auth=True), headers)
    slow = _answers(_app(tmp_path, "slow", fast=False, auth=True), headers)
    assert fast == slow
    by_path = {(a[0], a[1], str(REQUESTS[i][2])): a for i, a in enumerate(fast)}
    search = by_path[("POST", P + "/runs/search", str({"json": {"experiment_ids": []}}))]
    assert search[2] == 401 and b"UNAUTHENTICATED" in search[4]
