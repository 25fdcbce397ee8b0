"""Review of cairn gc on a team server's store: an object uploaded through the object
route before the record that names it arrives is not collected under the client."""

from __future__ import annotations

import hashlib
import os
import time

import pytest
from fastapi.testclient import TestClient

from cairn.cas import ObjectStore
from cairn.lifecycle.gc import collect
from cairn.server import ServerSettings, create_app
from cairn.store.sql.store import SqlStore

API = "/api/v1"


@pytest.fixture
def store(tmp_path):
    s = SqlStore(f"sqlite:///{tmp_path / 'server.db'}", ObjectStore.local(tmp_path / "objects"))
    yield s
    s.close()


def test_a_put_of_an_object_the_server_has_freshens_it(store, tmp_path):
    content = b"uploaded before, garbage since, uploaded again now" * 10
    oid = store.objects.put_bytes(content)
    path = tmp_path / "objects" / oid[:2] / oid[2:]
    when = time.time() - 2 * 86_400
    os.utime(path, (when, when))
    with TestClient(create_app(store, settings=ServerSettings()),
                    raise_server_exceptions=False) as api:
        r = api.put(f"{API}/objects/{oid}", content=content)
        assert r.status_code == 200 and r.json()["stored"] is False
    # The client now sends the record naming it (within CAIRN_GC_GRACE): a collection in
    # between must not take the object it was just told is stored.
    report = collect(store, grace_s=0)
    assert report.garbage == 0
    assert hashlib.sha256(store.objects.get_bytes(oid)).hexdigest() == oid
