"""HTTP semantics the OpenAPI document promises: 413 for streamed bodies over the limit,
``Allow`` on every 405, and the error statuses each operation declares."""

from __future__ import annotations

import re
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from cairn.server import ServerSettings, create_app
from cairn.store.local import LocalStore
from cairn.testing import ServerThread

LIMIT = 4096
OID = "ab" * 32


@pytest.fixture(scope="module")
def small_limit_server(tmp_path_factory):
    """A real server (uvicorn in a thread) whose bodies may hold at most LIMIT bytes."""
    store = LocalStore(tmp_path_factory.mktemp("limits") / "store")
    try:
        with ServerThread(create_app(store, settings=ServerSettings(max_request_bytes=LIMIT))) as url:
            yield url
    finally:
        store.close()


def _chunks(total: int, size: int = 1000):
    """A body without Content-Length: httpx sends a generator as Transfer-Encoding: chunked."""
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield b"x" * n
        sent += n


@pytest.mark.parametrize(("method", "path", "content_type", "code"), [
    ("POST", "/api/v1/experiments", "application/json", "REQUEST_TOO_LARGE"),
    ("POST", "/api/v1/runs/search", "application/json", "REQUEST_TOO_LARGE"),
    ("POST", "/api/v1/records", "application/json", "REQUEST_TOO_LARGE"),
    ("POST", "/api/v1/records", "application/vnd.cairn.records", "REQUEST_TOO_LARGE"),
    ("PUT", f"/api/v1/objects/{OID}", "application/octet-stream", "REQUEST_TOO_LARGE"),
    ("POST", "/api/2.0/mlflow/experiments/create", "application/json", "REQUEST_LIMIT_EXCEEDED"),
])
def test_chunked_body_over_the_limit_gets_413(small_limit_server, method, path, content_type,
                                              code):
    r = httpx.request(method, small_limit_server + path, content=_chunks(3 * LIMIT),
                      headers={"content-type": content_type}, timeout=30)
    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert r.status_code == 413, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error_code"] == code


def test_chunked_body_under_the_limit_is_served(small_limit_server):
    body = b'{"name": "chunked-experiment"}'
    r = httpx.post(small_limit_server + "/api/v1/experiments", headers={
        "content-type": "application/json"}, content=iter([body[:10], body[10:]]), timeout=30)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "chunked-experiment"


def test_413_comes_as_soon_as_the_limit_is_passed(small_limit_server):
    """The server answers while the client is still sending: it need not wait for the rest."""
    url = urlsplit(small_limit_server)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(b"POST /api/v1/experiments HTTP/1.1\r\nHost: test\r\n"
                     b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 1024
        for _ in range(2 * LIMIT // len(chunk)):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        # no final zero-length chunk: the body has not ended
        deadline = time.monotonic() + 10
        answer = b""
        while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
            answer += sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    store = LocalStore(tmp_path_factory.mktemp("allow") / "store")
    with TestClient(create_app(store), raise_server_exceptions=False) as c:
        yield c
    store.close()


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("DELETE", "/api/v1/experiments", {"GET", "POST"}),  # two FastAPI routes, one path
    ("PATCH", "/api/v1/users", {"GET", "POST"}),
    ("GET", "/api/v1/records", {"POST"}),
    ("DELETE", f"/api/v1/objects/{OID}", {"GET", "PUT"}),
    ("POST", "/api/v1/runs/some-run/tags/k", {"PUT", "DELETE"}),
    ("POST", "/health", {"GET", "HEAD"}),
    ("GET", "/api/2.0/mlflow/experiments/create", {"POST"}),  # MLflow's own apps
    ("DELETE", "/api/2.0/mlflow/experiments/get", {"GET", "HEAD"}),
])
def test_405_names_every_method_of_the_path(client, method, path, allowed):
    r = client.request(method, path)
    assert r.status_code == 405, r.text
    assert {m.strip() for m in r.headers["allow"].split(",")} == allowed
    assert r.headers["content-type"].startswith("application/json")
    assert set(r.json()) >= {"error_code", "message"}


def test_the_allow_header_agrees_with_the_openapi_document(client):
    """Each path's Allow lists the methods the document declares for it (and for the
    templates the same URL also fits: ``/runs/search`` is also ``/runs/{run_id}``)."""
    paths = client.get("/openapi.json").json()["paths"]
    verbs = ("get", "post", "put", "patch", "delete")
    patterns = [(re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$"),
                 {m.upper() for m in ops if m in verbs}) for p, ops in paths.items()]
    for path, operations in paths.items():
        declared = {m.upper() for m in operations if m in verbs}
        concrete = path.replace("{", "").replace("}", "")  # a placeholder is a fine value
        fits = set().union(*(methods for pattern, methods in patterns
                             if pattern.match(concrete)))
        unused = next(m for m in ("PATCH", "DELETE", "PUT", "POST") if m not in fits)
        r = client.request(unused, concrete)
        assert r.status_code == 405, (unused, path, r.text)
        advertised = {m.strip() for m in r.headers["allow"].split(",")} - {"HEAD"}
        assert advertised == fits and declared <= advertised, (path, advertised, fits)


def _operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield method, path, operation


def test_the_document_declares_the_errors_the_server_sends(client):
    """No 422 (the server answers bad input with 400), and each operation's error
    statuses with the body every error handler sends."""
    document = client.get("/openapi.json").json()
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error_code", "message"]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "securitySchemes" not in document["components"]  # auth is off here
    for method, path, operation in _operations(document):
        answers = operation["responses"]
        assert "422" not in answers, (method, path)
        assert "400" in answers and "401" not in answers, (method, path)
        if path not in ("/health", "/ready", "/api/v1/ui/session"):
            assert {"403", "503"} <= set(answers), (method, path)
        if "requestBody" in operation:
            assert "413" in answers, (method, path)
        if "{" in path:
            assert "404" in answers, (method, path)
    responses = document["components"]["responses"]
    assert responses["Error405"]["headers"]["Allow"]["required"] is True
    assert responses["Error404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}


def test_error_answers_fit_the_declared_error_schema(client):
    import jsonschema

    error = client.get("/openapi.json").json()["components"]["schemas"]["Error"]
    answers = [client.get("/api/v1/runs/nope"),  # 404 from the store
               client.post("/api/v1/experiments", json={"name": 3}),  # 400 from validation
               client.get("/api/v1/runs/a%00b"),  # 400 from the URL check
               client.delete("/api/v1/experiments")]  # 405
    assert [r.status_code for r in answers] == [404, 400, 400, 405]
    for r in answers:
        jsonschema.validate(r.json(), error)


def test_integer_bounds_are_exact(client):
    """FastAPI publishes ``le=2**63 - 1`` as a float (9.223372036854776e18), a bound past
    what the server takes; the document has the integer."""
    document = client.get("/openapi.json").json()
    start_time = document["components"]["schemas"]["CreateRun"]["properties"]["start_time"]
    bounds = next(b for b in start_time["anyOf"] if b.get("type") == "integer")
    assert bounds["maximum"] == (1 << 63) - 1 and bounds["minimum"] == -(1 << 63)
    assert all(isinstance(bounds[k], int) for k in ("maximum", "minimum"))


def test_with_auth_every_operation_but_the_probes_needs_a_bearer_token(tmp_path):
    from cairn.cas import ObjectStore
    from cairn.store.sql.store import SqlStore

    store = SqlStore(f"sqlite:///{tmp_path / 'auth.db'}", ObjectStore.local(tmp_path / "o"))
    try:
        app = create_app(store, settings=ServerSettings(auth=True, bootstrap_token="t" * 40))
        document = app.openapi()
    finally:
        store.close()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for method, path, operation in _operations(document):
        if path in ("/health", "/ready", "/api/v1/ui/session"):
            assert operation["security"] == [] and "401" not in operation["responses"]
        else:
            assert operation["security"] == [{"bearer": []}], (method, path)
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
