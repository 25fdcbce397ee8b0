"""Property-based requests from the published OpenAPI document, checked against it.

schemathesis makes valid and invalid requests for every operation of /openapi.json (a
bounded number of examples each) and checks each answer against the document: never a
5xx, a declared status, the declared content type, headers and body schema (errors
included), invalid input refused, valid input not refused by request validation, a 405 with
``Allow`` for methods the path does not serve.  On SQLite and on PostgreSQL; without
auth, and with auth on and the token of a user who may edit every experiment and model
but administers nothing (the admin-only operations answer 403; schemathesis also sends
each operation without a token and with a bad one: a 401 each time).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.core.parameters import ParameterLocation
from schemathesis.checks import (
    content_type_conformance, ignored_auth, negative_data_rejection, not_a_server_error,
    response_headers_conformance, response_schema_conformance, status_code_conformance,
    unsupported_method,
)

from cairn.cas import ObjectStore
from cairn.server import ServerSettings, create_app
from cairn.store.sql.store import SqlStore

ADMIN = "cairn_schemathesis-admin-token-0001"

@schemathesis.check
def document_valid_requests_pass_validation(ctx, response, case):
    """A request the document calls valid is never refused by the server's request
    validation (a 400 "invalid request: ..." comes from the same models the document is
    generated from, so they must agree).  Unlike ``positive_data_acceptance``, refusals
    on grounds no JSON Schema can say (a stage that does not exist, a version that is not
    semantic, a data set name with a NUL) stay allowed."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return None
    message = response.json().get("message", "")
    if not message.startswith("invalid request:") or _integral_floats_refused(case, message):
        return None
    raise AssertionError(f"{case.operation.label}: a request valid by the document was "
                         f"refused: {message}")


def _integral_floats_refused(case, message: str) -> bool:
    """Whether the refusal is only of numbers like 30.0 where an integer goes: JSON Schema
    calls 30.0 an integer, and no document can say otherwise, but the routes' strict
    pydantic integers (which keep ``true`` from being taken as 1) refuse it."""
    if not _has_integral_float(case.body):
        return False
    problems = message.removeprefix("invalid request:").split(";")
    return all(p.strip().endswith(("Input should be a valid integer",
                                   "Input should be a valid string")) for p in problems)


def _has_integral_float(value) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, dict):
        return any(_has_integral_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_integral_float(v) for v in value)
    return False


@schemathesis.check
def negative_data_rejected(ctx, response, case):
    """negative_data_rejection, but for a query that fits the document as sent."""
    if _query_fits_as_sent(case):
        return None
    return negative_data_rejection(ctx, response, case)


def _query_fits_as_sent(case) -> bool:
    """Whether the negative part of ``case`` is only its query, and the query, as the
    server gets it (every value a string: ``experiment_ids=8838971497320999.0`` names the
    experiment "8838971497320999.0"), fits the document after all."""
    meta = case.meta
    if meta is None or not meta.is_negative_at(ParameterLocation.QUERY) or any(
            meta.is_negative_at(where) for where in ParameterLocation
            if where is not ParameterLocation.QUERY):
        return False
    declared = {p["name"]: p for p in case.operation.definition.raw.get("parameters", ())
                if p.get("in") == "query"}
    query = case.query or {}
    if set(query) - set(declared):
        return False
    for name, parameter in declared.items():
        if name not in query:
            if parameter.get("required"):
                return False
            continue
        value = query[name]
        schema = parameter.get("schema", {})
        sent = ([_as_sent(v) for v in value] if isinstance(value, list)
                else _as_parsed(_as_sent(value), _types(schema)))
        if not isinstance(sent, list) and _accepts_array(schema):
            sent = [sent]  # ?a=x is a list of one
        if not jsonschema.Draft202012Validator(schema).is_valid(sent):
            return False
    return True


def _as_sent(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _types(schema: dict) -> set[str]:
    return {schema.get("type", "")} | {t for b in schema.get("anyOf", ()) for t in _types(b)}


def _as_parsed(text: str, types: set[str]):
    """The string the server got, as the value its parameter's type makes of it."""
    for kind, parse in (("integer", int), ("number", float)):
        if kind in types:
            try:
                return parse(text)
            except ValueError:
                pass
    if "boolean" in types and text in ("true", "false"):
        return text == "true"
    return text


def _accepts_array(schema: dict) -> bool:
    return schema.get("type") == "array" or any(
        _accepts_array(branch) for branch in schema.get("anyOf", ()))


def _overlapping(document: dict) -> set[tuple[str, str]]:
    """(method, template) where the template, with its placeholders as written, also
    fits another template of the document: ``/objects/missing`` is ``/objects/{oid}``
    too, so a PUT there is a PUT of an object, not a method the path lacks."""
    verbs = ("get", "post", "put", "patch", "delete")
    patterns = [(re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path,
                 {m for m in ops if m in verbs}) for path, ops in document["paths"].items()]
    out = set()
    for path in document["paths"]:
        for pattern, other, methods in patterns:
            if other != path and pattern.match(path):
                out |= {(m.upper(), path) for m in methods}
    return out


@schemathesis.check
def undeclared_methods_get_405(ctx, response, case):
    """unsupported_method (405 with Allow for a method the path does not serve), but for
    a method another template of the same URL serves."""
    method = response.request.method
    if (method, case.operation.path) in OVERLAPS:
        return None
    return unsupported_method(ctx, response, case)


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, negative_data_rejected,
          document_valid_requests_pass_validation, undeclared_methods_get_405]


@schemathesis.serializer("application/vnd.cairn.records", "application/vnd.cairn.object")
def _binary(ctx, value) -> bytes:  # generated "binary strings" go as they are
    return value if isinstance(value, bytes) else str(value).encode()


class Current:
    """The ASGI app the generated requests go to: the backend of the test that runs."""

    app = None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":  # the fixtures start and close the stores
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        assert self.app is not None, "no backend fixture is active"
        await self.app(scope, receive, send)


def _settings(auth: bool) -> ServerSettings:
    return (ServerSettings(auth=True, bootstrap_token=ADMIN, bootstrap_user="root")
            if auth else ServerSettings())


def _load(auth: bool) -> tuple[Current, schemathesis.schemas.BaseSchema]:
    """The document of a server with (or without) auth, its requests going to Current.app."""
    current = Current()
    with tempfile.TemporaryDirectory(prefix="cairn-schemathesis-") as tmp:
        store = SqlStore(f"sqlite:///{tmp}/doc.db", ObjectStore.local(Path(tmp) / "objects"))
        try:
            current.app = create_app(store, settings=_settings(auth))
            loaded = schemathesis.openapi.from_asgi("/openapi.json", current)
        finally:
            current.app = None
            store.close()
    return current, loaded


PLAIN, plain_schema = _load(auth=False)
AUTH, auth_schema = _load(auth=True)
OVERLAPS = _overlapping(plain_schema.raw_schema)
# Every request carries the admin's token (the test adds it): no generated Authorization
# headers, nor requests that lack one as negative data; ignored_auth sends those.
auth_schema.config.generation.update(with_security_parameters=False)


def _backend(request, tmp_path, current: Current, auth: bool):
    url = (f"sqlite:///{tmp_path / 'server.db'}" if request.param == "sqlite"
           else request.getfixturevalue("pg_url"))
    store = SqlStore(url, ObjectStore.local(tmp_path / "objects"))
    current.app = create_app(store, settings=_settings(auth))
    current.app.state.cairn.start()
    try:
        yield _editor_token(current.app) if auth else None
        current.app.state.cairn.close()  # what the lifespan's end does
    finally:
        current.app = None
        store.close()


def _editor_token(app) -> str:
    """A token of a user who may edit every experiment and model but administers nothing:
    the admin-only operations answer it 403."""
    from fastapi.testclient import TestClient

    admin = TestClient(app, base_url="http://testserver/api/v1",
                       headers={"Authorization": f"Bearer {ADMIN}"})
    assert admin.post("/users", json={"name": "ed"}).status_code == 201
    token = admin.post("/users/ed/tokens", json={"name": "t"}).json()["token"]
    for rtype in ("experiment", "model"):
        r = admin.put("/roles", json={"user": "ed", "resource_type": rtype,
                                      "resource_id": "*", "role": "editor"})
        assert r.status_code == 200, r.text
    return token


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def plain_backend(request, tmp_path):
    """A server without auth over a fresh SQL store (SQLite or PostgreSQL)."""
    yield from _backend(request, tmp_path, PLAIN, auth=False)


@pytest.fixture(params=BACKENDS)
def auth_backend(request, tmp_path):
    """A server with auth on over a fresh SQL store; its editor's token (requests carry it)."""
    yield from _backend(request, tmp_path, AUTH, auth=True)


SETTINGS = settings(max_examples=10, deadline=None, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck))


@pytest.mark.slow
@plain_schema.parametrize()
@SETTINGS
def test_the_server_answers_as_its_document_says(case, plain_backend):
    case.call_and_validate(checks=CHECKS)


@pytest.mark.slow
@auth_schema.parametrize()
@SETTINGS
def test_with_auth_the_server_answers_as_its_document_says(case, auth_backend):
    case.call_and_validate(headers={"Authorization": f"Bearer {auth_backend}"},
                           checks=[*CHECKS, ignored_auth])
