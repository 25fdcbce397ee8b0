"""Every mutating request leaves an audit event; `cairn audit verify` checks the chain on PostgreSQL."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fastapi.testclient import TestClient

from cairn.cas import ObjectStore
from cairn.cli.main import cli
from cairn.server import ServerSettings, create_app
from cairn.store import close_store
from cairn.store.sql.store import SqlStore

pytestmark = pytest.mark.postgres
API = "/api/v1"
TOKEN = "cairn_audit-test-admin-token-000000000001"


def test_mutations_are_audited_and_the_chain_verifies_on_postgres(pg_url, tmp_path):
    store = SqlStore(pg_url, ObjectStore.local(tmp_path / "objects"))
    app = create_app(store, settings=ServerSettings(auth=True, bootstrap_token=TOKEN))
    h = {"authorization": f"Bearer {TOKEN}"}
    with TestClient(app) as c:
        app.state.cairn.start()
        eid = c.post(f"{API}/experiments", json={"name": "audited"}, headers=h).json()["id"]
        rid = c.post(f"{API}/runs", json={"experiment_id": eid, "params": {"lr": "1"}},
                     headers=h).json()["id"]
        c.post(f"{API}/runs/{rid}/log", json={"metrics": [{"key": "m", "value": 1}]}, headers=h)
        c.put(f"{API}/runs/{rid}/tags/stage", content="a", headers=h)
        c.put(f"{API}/runs/{rid}/tags/stage", content="b", headers=h)
        c.delete(f"{API}/runs/{rid}/tags/stage", headers=h)
        blob = b"x" * 100
        oid = hashlib.sha256(blob).hexdigest()
        c.put(f"{API}/objects/{oid}", content=blob, headers=h)
        c.post(f"{API}/runs/{rid}/end", json={}, headers=h)
        c.post(f"{API}/users", json={"name": "bob"}, headers=h)
        tok = c.post(f"{API}/users/bob/tokens", json={}, headers=h).json()
        c.put(f"{API}/roles", json={"user": "bob", "resource_type": "experiment",
                                    "resource_id": eid, "role": "editor"}, headers=h)
        c.delete(f"{API}/tokens/{tok['id']}", headers=h)
        events = c.get(f"{API}/audit?limit=100", headers=h).json()["events"]
        actions = [e["action"] for e in reversed(events)]
        assert actions == ["experiment.create", "run.create", "run.log", "run.set_tag",
                           "run.set_tag", "run.delete_tag", "object.put", "run.end",
                           "user.create", "token.create", "role.grant", "token.revoke"]
        assert all(e["actor"] == "admin" for e in events)
        tags = [e for e in events if e["action"] == "run.set_tag"]
        assert (tags[0]["before"], tags[0]["after"]) == ("a", "b")  # newest first
        end = next(e for e in events if e["action"] == "run.end")
        assert end["before"] == {"status": "RUNNING"} and end["after"]["status"] == "FINISHED"
        assert tok["token"] not in str(events)  # secrets never reach the log
        assert c.get(f"{API}/audit/verify", headers=h).json()["ok"] is True

    runner = CliRunner()
    ok = runner.invoke(cli, ["--store", pg_url, "audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "chain intact" in ok.output
    with store.index.engine.begin() as conn:  # someone edits history behind Cairn's back
        conn.execute(sa.text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3"))
    close_store(pg_url)
    bad = runner.invoke(cli, ["--store", pg_url, "audit", "verify"])
    assert bad.exit_code == 1 and "#3" in bad.output
    store.close()
    close_store(pg_url)


def test_a_server_s_end_writes_its_queued_events_and_leaves_no_writer(pg_url, tmp_path):
    # The writer thread must be done with its connection before the store closes: one
    # held across the close went back to a pool nothing closed, and psycopg warned about
    # it in whatever test ran when it was collected.  The end of a threaded real server
    # (its lifespan) stops the writer, and what was queued is in the log.
    import threading

    from serving import ThreadedServer

    store = SqlStore(pg_url, ObjectStore.local(tmp_path / "objects"))
    app = create_app(store)
    with ThreadedServer(app) as url:
        import httpx

        for i in range(20):
            r = httpx.post(f"{url}{API}/experiments", json={"name": f"e{i}"}, timeout=60)
            assert r.status_code == 201
    assert not [t for t in threading.enumerate() if t.name == "cairn-audit"
                and getattr(t, "_target", None) == app.state.cairn._audit_loop]
    with store.index.session() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM audit_events WHERE action = "
                                 "'experiment.create'")).scalar_one()
    store.close()
    assert n == 20


def test_the_audit_writer_ends_when_idle(pg_url, tmp_path):
    import time

    store = SqlStore(pg_url, ObjectStore.local(tmp_path / "objects"))
    app = create_app(store)
    try:
        with TestClient(app) as c:
            assert c.post(f"{API}/experiments", json={"name": "e"}).status_code == 201
            deadline = time.monotonic() + 10
            while app.state.cairn._audit_thread is not None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert app.state.cairn._audit_thread is None  # written, and nothing left running
            assert c.get(f"{API}/audit?limit=5").json()["events"][0]["action"] == \
                "experiment.create"
    finally:
        store.close()
