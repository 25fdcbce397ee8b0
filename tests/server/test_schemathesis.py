"""Property-based requests generated from the published OpenAPI spec: never a server error.

schemathesis makes valid and invalid requests for every operation of /openapi.json (a
bounded number of examples each) and checks that none gets a 5xx.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from cairn.cas import ObjectStore
from cairn.server import create_app
from cairn.store.sql.store import SqlStore

@schemathesis.serializer("application/vnd.cairn.records", "application/vnd.cairn.object")
def _binary(ctx, value) -> bytes:  # generated "binary strings" go as they are
    return value if isinstance(value, bytes) else str(value).encode()


_tmp = Path(tempfile.mkdtemp(prefix="cairn-schemathesis-"))
_store = SqlStore(f"sqlite:///{_tmp / 'server.db'}", ObjectStore.local(_tmp / "objects"))
app = create_app(_store)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(scope="module", autouse=True)
def _close_store():
    yield
    _store.close()
    shutil.rmtree(_tmp, ignore_errors=True)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case):
    response = case.call()
    case.validate_response(response, checks=[not_a_server_error])
