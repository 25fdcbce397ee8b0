"""Whatever a client sends, the answer is predictions or a 4xx with a JSON error body: never a
500, never a body that is not JSON. Calls the ASGI app directly (no sockets), so it is fast."""

import asyncio
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.serving import deploy

from .conftest import COLUMNS

FORMATS = ["dataframe_split", "dataframe_records", "instances", "inputs", "params", "data"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from([*COLUMNS, "columns", "data", "index", "x"]), inner,
                    max_size=4)), max_leaves=20)
bodies = st.one_of(
    st.dictionaries(st.sampled_from(FORMATS), values, max_size=3),
    st.builds(lambda rows: {"dataframe_split": {"columns": COLUMNS, "data": rows}},
              st.lists(st.lists(scalars, min_size=0, max_size=4), max_size=3)),
    st.builds(lambda rows: {"dataframe_records": rows},
              st.lists(st.dictionaries(st.sampled_from(COLUMNS), scalars), max_size=3)),
    st.builds(lambda rows: {"instances": rows}, st.lists(st.lists(scalars, max_size=4),
                                                         max_size=3)),
    values,
)


def call(app, path, body: bytes, ctype: str):
    """One POST through the ASGI app: (status, headers, body)."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path,
             "headers": [(b"content-type", ctype.encode())]}
    asyncio.run(app(scope, receive, send))
    start, payload = sent
    return start["status"], dict(start["headers"]), payload["body"]


@pytest.fixture
def app(registry, fraud):
    return deploy(registry, "models:/fraud@prod", follow=False, max_body=10_000).app


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, path=st.sampled_from(["/invocations", "/v1/predict"]))
def test_any_json_body_gets_predictions_or_a_4xx(app, body, path):
    status, headers, payload = call(app, path, json.dumps(body).encode(), "application/json")
    doc = json.loads(payload)
    assert status == 200 or 400 <= status < 500, doc
    assert headers[b"cairn-model-version"] == b"1.0.0"
    if status == 200:
        assert len(doc["predictions"]) >= 0
    else:
        assert doc["error_code"] and doc["message"]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200), ctype=st.sampled_from(["application/json", "text/csv"]))
def test_any_bytes_get_predictions_or_a_4xx(app, raw, ctype):
    status, _, payload = call(app, "/invocations", raw, ctype)
    assert status == 200 or 400 <= status < 500, payload
    json.loads(payload)
