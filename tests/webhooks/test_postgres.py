"""Events, subscriptions and deliveries on PostgreSQL (the server's store), not only SQLite."""

from __future__ import annotations

import json
import threading

import pytest
import sqlalchemy as sa

import cairn
from cairn import clock
from cairn.cas.odb import ObjectStore
from cairn.store.sql.tables_monitoring import events as E
from cairn.webhooks.dispatch import Dispatcher
from cairn.webhooks.events import emit, enqueue_direct
from cairn.webhooks.service import Webhooks

from pg_fixtures import pg_database  # noqa: F401  (a fixture, used by name)

from .conftest import fit_logreg, free_port

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_client(request, tmp_path, monkeypatch):
    from pg_fixtures import create_schema

    from cairn.store.sql.store import SqlStore

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    url = create_schema(request.getfixturevalue("pg_database"))
    store = SqlStore(url, objects=ObjectStore.local(tmp_path / "objects"))

    def client(user):
        return cairn.Client(user=user, store=store)

    yield client
    store.close()


def test_events_and_deliveries_on_postgres(pg_client, receiver):
    alice, bob = pg_client("alice"), pg_client("bob")
    r = receiver()
    wh = Webhooks(alice)
    sub = wh.subscribe(r.url, model="fraud")
    r.secret = sub.secret
    everything = wh.subscribe(f"http://127.0.0.1:{free_port()}/", events=["run.failed"])
    exp = alice.create_experiment("e").id
    run = alice.create_run(exp)
    mv = alice.register_model("fraud", fit_logreg(), run_id=run.id)
    alice.set_stage_policy("fraud", "production", approvals=1)
    req = alice.request_transition("fraud", mv.version, "production")
    bob.reject(req.id, comment="not yet")
    alice.set_alias("fraud", "champion", mv.version)
    alice.set_terminated(run.id, "FAILED")
    d = Dispatcher(alice, max_attempts=1)
    stats = d.dispatch_once()
    assert [e.type for e in wh.events()] == [
        "model.created", "model_version.created", "transition.requested",
        "transition.rejected", "alias.moved", "run.failed"]
    assert stats.delivered == 5 and stats.dead == 1
    assert all(q["verified"] for q in r.requests)
    assert sorted(json.loads(b)["type"] for b in r.bodies()) == sorted(
        ["model.created", "model_version.created", "transition.requested",
         "transition.rejected", "alias.moved"])
    [dead] = wh.deliveries(state="dead")
    assert dead.subscription_id == everything.id and dead.event_type == "run.failed"
    assert d.dispatch_once().events == 0
    audit = [e.action for e in alice.audit_log()]
    assert "webhook.subscribe" in audit
    assert wh.prune(86_400_000) == {"deliveries": 0, "events": 0}  # nothing a day old


def test_a_duplicate_keeps_the_postgres_transaction_usable(pg_client):
    c = pg_client("alice")
    store = c.store
    store.open()
    with store.index.session(write=True) as conn:
        a = emit(conn, key="k", type="alert.firing", payload={}, at_ms=1)
        assert emit(conn, key="k", type="alert.firing", payload={}, at_ms=1) is None
        b = emit(conn, key="k2", type="alert.resolved", payload={}, at_ms=2)
        assert enqueue_direct(conn, source="rule:r:0", event_seq=a, url="http://x/",
                              secret="secret-123", now_ms=1)
        assert enqueue_direct(conn, source="rule:r:0", event_seq=a, url="http://x/",
                              secret="secret-123", now_ms=1) is None
        assert conn.execute(sa.select(sa.func.count()).select_from(E)).scalar() == 2
    assert a is not None and b is not None


def test_two_dispatchers_on_postgres_deliver_each_once(pg_client, receiver):
    alice = pg_client("alice")
    r = receiver(delay=0.02)
    Webhooks(alice).subscribe(r.url)
    store = alice.store
    with store.index.session(write=True) as conn:
        for i in range(10):
            emit(conn, key=f"k{i}", type="alert.firing", payload={"i": i}, at_ms=clock.now_ms())
    now = clock.now_ms()
    barrier = threading.Barrier(2)
    stats = []

    def go(user):
        barrier.wait()
        stats.append(Dispatcher(pg_client(user)).dispatch_once(now_ms=now))

    threads = [threading.Thread(target=go, args=(u,)) for u in ("d1", "d2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    ids = [json.loads(b)["id"] for b in r.bodies()]
    assert len(ids) == 10 == len(set(ids))
    assert sum(s.delivered for s in stats) == 10


def test_an_event_committed_late_is_still_fanned_out(pg_client):
    """On PostgreSQL a seq is taken at insert: an event with a lower seq may commit after a
    higher one was fanned out, and must not be skipped."""
    alice = pg_client("alice")
    wh = Webhooks(alice)
    sub = wh.subscribe("http://127.0.0.1:9/")
    store = alice.store
    d = Dispatcher(alice)
    made: list[int] = []
    fan = threading.Thread(target=lambda: made.append(d.fan_out()))
    with store.index.session(write=True) as slow:
        early = emit(slow, key="early", type="alert.firing", payload={}, at_ms=clock.now_ms())
        with store.index.session(write=True) as fast:
            late = emit(fast, key="late", type="alert.firing", payload={}, at_ms=clock.now_ms())
        assert late > early
        fan.start()
        fan.join(1.0)
        assert fan.is_alive()  # the fan-out waits for "early" to commit (or roll back)
    fan.join(10)
    assert made == [2]
    assert d.fan_out() == 0
    assert sorted(x.event_seq for x in wh.deliveries(subscription_id=sub.id)) == [early, late]


def test_events_committed_late_are_fanned_out_however_many(pg_client, monkeypatch):
    """On PostgreSQL a seq is taken at insert: a transaction storing many events (a page
    of the audit log) commits after a later one.  A fan-out that moved its cursor past
    the open transaction's seqs looked only FANOUT_LOOKBACK seqs back, and the events
    before that were never delivered."""
    from cairn.webhooks import dispatch

    monkeypatch.setattr(dispatch, "FANOUT_LOOKBACK", 5)
    alice = pg_client("alice")
    wh = Webhooks(alice)
    wh.subscribe(f"http://127.0.0.1:{free_port()}/")
    store = alice.store
    now = clock.now_ms()
    slow = store.index.engine.connect()
    tx = slow.begin()
    for i in range(20):  # a producer's page, still open
        emit(slow, key=f"slow-{i}", type="alert.firing", payload={}, at_ms=now)
    with store.index.session(write=True) as conn:  # a later event, committed first
        emit(conn, key="quick", type="alert.firing", payload={}, at_ms=now)
    made: list[int] = []
    fan = threading.Thread(target=lambda: made.append(Dispatcher(alice).fan_out(now)))
    fan.start()
    fan.join(1.0)
    tx.commit()
    slow.close()
    fan.join(10)
    assert not fan.is_alive()
    Dispatcher(alice).fan_out(now)
    seqs = {d.event_seq for d in wh.deliveries(limit=100)}
    assert len(seqs) == 21
