"""Subscriptions: every value checked, the secret shown once, audited without it; the
events API for producers (emit, enqueue_direct) inside the caller's transaction."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

import cairn
from cairn import clock
from cairn.errors import InvalidArgument, NotFound
from cairn.store.sql.tables_monitoring import events as E
from cairn.webhooks import signing
from cairn.webhooks.dispatch import Dispatcher
from cairn.webhooks.events import EVENT_TYPES, emit, enqueue_direct
from cairn.webhooks.service import Webhooks

from .conftest import alert

URL = "https://hooks.example.com/cairn?token=abc"


def test_the_secret_is_shown_once_and_never_audited(client):
    wh = Webhooks(client)
    sub = wh.subscribe(URL, events=["run.failed", "run.failed", "alias.moved"], model="fraud")
    assert sub.secret and len(sub.secret) == 64
    assert sub.events == ("alias.moved", "run.failed")
    [listed] = wh.subscriptions()
    assert listed.secret is None and "secret" not in listed.to_dict()
    assert listed.id == sub.id and listed.model == "fraud" and listed.created_by == "alice"
    gone = wh.unsubscribe(sub.id)
    assert gone.id == sub.id and wh.subscriptions() == []
    log = client.audit_log()
    made = next(e for e in log if e.action == "webhook.subscribe")
    dropped = next(e for e in log if e.action == "webhook.unsubscribe")
    assert made.target == dropped.target == f"webhook:{sub.id}"
    text = json.dumps([made.after, dropped.before, dropped.after])
    assert sub.secret not in text and "token=abc" not in text
    assert made.after["origin"] == "https://hooks.example.com"
    with pytest.raises(NotFound):
        wh.unsubscribe(sub.id)


def test_the_audit_keeps_no_credentials_of_a_url(client):
    Webhooks(client).subscribe("https://user:pw@[::1]:8443/hook?key=k")
    made = next(e for e in client.audit_log() if e.action == "webhook.subscribe")
    assert made.after["origin"] == "https://[::1]:8443"
    assert "pw" not in json.dumps(made.after) and "key=k" not in json.dumps(made.after)


def test_a_given_secret_is_kept(client):
    sub = Webhooks(client).subscribe(URL, secret="my-own-secret")
    assert sub.secret == "my-own-secret"


@pytest.mark.parametrize("url", [
    "ftp://example.com/x", "file:///etc/passwd", "example.com/hook", "http://", "",
    "http://exa mple.com/", "http://example.com/\ud800", "https://x/" + "a" * 2048,
    "http://example.com:99999/", None, 5, b"http://example.com", "https://bücher.example/",
    "https://example.com/caf\u00e9",
])
def test_bad_urls_are_refused(client, url):
    with pytest.raises(InvalidArgument):
        Webhooks(client).subscribe(url)
    assert Webhooks(client).subscriptions() == []


@pytest.mark.parametrize("kwargs", [
    {"events": ["nope"]}, {"events": ["run.failed", 3]}, {"events": 5},
    {"events": ["run.\ud800"]}, {"model": ""}, {"model": " x"}, {"model": "m\ud800"},
    {"model": 7}, {"model": "x" * 300}, {"format": "xml"}, {"format": None},
    {"secret": "short"}, {"secret": " padded-secret "}, {"secret": "s\ud800ecret-long"},
    {"secret": 12345678}, {"secret": "x" * 600},
])
def test_bad_subscriptions_are_refused_and_nothing_is_stored(client, kwargs):
    with pytest.raises(InvalidArgument):
        Webhooks(client).subscribe(URL, **kwargs)
    assert Webhooks(client).subscriptions() == []


def test_an_experiment_filter_names_one_that_exists(client):
    exp = client.create_experiment("fraud").id
    wh = Webhooks(client)
    assert wh.subscribe(URL, experiment_id="fraud").experiment_id == exp
    assert wh.subscribe(URL, experiment_id=exp).experiment_id == exp
    with pytest.raises(NotFound, match="no experiment"):
        wh.subscribe(URL, experiment_id="nope")


def test_listing_arguments_are_checked(client):
    wh = Webhooks(client)
    for call in (lambda: wh.events(after_seq=-1), lambda: wh.events(type="nope"),
                 lambda: wh.events(limit=0), lambda: wh.events(limit=10**6),
                 lambda: wh.events(after_seq="3"), lambda: wh.deliveries(state="gone"),
                 lambda: wh.deliveries(limit=True), lambda: wh.redeliver("../x"),
                 lambda: wh.unsubscribe("a" * 40), lambda: wh.redeliver("\ud800")):
        with pytest.raises(InvalidArgument):
            call()


def test_events_page_by_seq_and_type(client):
    seqs = [alert(client, f"k{i}", kind="alert.firing" if i % 2 else "alert.resolved")
            for i in range(5)]
    wh = Webhooks(client)
    assert [e.seq for e in wh.events()] == seqs
    assert [e.seq for e in wh.events(after_seq=seqs[1], limit=2)] == seqs[2:4]
    assert {e.type for e in wh.events(type="alert.resolved")} == {"alert.resolved"}
    assert wh.events()[0].to_dict()["at"].endswith("Z")


def test_a_store_without_a_database_or_a_server_says_so(tmp_path):
    with pytest.raises(InvalidArgument, match="need a store with a database"):
        Webhooks(cairn.Client("memory://webhooks-test", user="a")).subscriptions()
    with pytest.raises(InvalidArgument, match="not supported over a server yet"):
        Webhooks(cairn.Client("http://127.0.0.1:9", user="a")).subscriptions()
    with pytest.raises(InvalidArgument, match="not supported over a server yet"):
        Dispatcher(cairn.Client("http://127.0.0.1:9", user="a")).dispatch_once()


# -- the producers' API ---------------------------------------------------------------------

def _session(client):
    store = client.store
    store.open()
    return store.index.session(write=True)


def test_a_duplicate_event_leaves_the_callers_transaction_intact(client):
    with _session(client) as conn:
        first = emit(conn, key="alert:r:m:1", type="alert.firing", payload={"v": 1.5},
                     at_ms=10, model="m")
        again = emit(conn, key="alert:r:m:1", type="alert.firing", payload={"v": 2}, at_ms=11)
        after = emit(conn, key="alert:r:m:2", type="alert.resolved", payload={}, at_ms=12)
    assert first is not None and again is None and after is not None
    events = Webhooks(client).events()
    assert [(e.key, e.payload) for e in events] == [("alert:r:m:1", {"v": 1.5}),
                                                    ("alert:r:m:2", {})]


@pytest.mark.parametrize("kwargs", [
    {"type": "nope"}, {"key": ""}, {"key": "k" * 201}, {"key": "\ud800"},
    {"payload": {"v": float("nan")}}, {"payload": {"v": float("inf")}}, {"payload": [1]},
    {"payload": {"v": object()}}, {"payload": {1: "x"}}, {"payload": {"s": "\udfff"}},
    {"at_ms": -1}, {"at_ms": 1.5}, {"at_ms": True}, {"model": ""}, {"experiment_id": 3},
])
def test_emit_refuses_bad_values_before_writing(client, kwargs):
    args = {"key": "k", "type": "alert.firing", "payload": {}, "at_ms": 1, **kwargs}
    with _session(client) as conn:
        with pytest.raises(InvalidArgument):
            emit(conn, **args)
        assert conn.execute(sa.select(sa.func.count()).select_from(E)).scalar() == 0


def test_enqueue_direct_delivers_an_event_to_a_rule_s_target_once(client, receiver):
    r = receiver()
    r.secret = "rule-secret-1"
    seq = alert(client, "alert:p95:fraud:1")
    now = clock.now_ms()
    with _session(client) as conn:
        did = enqueue_direct(conn, source="rule:p95:0", event_seq=seq, url=r.url,
                             secret=r.secret, format="json", now_ms=now)
        dup = enqueue_direct(conn, source="rule:p95:0", event_seq=seq, url=r.url,
                             secret=r.secret, now_ms=now)
    assert did and dup is None
    stats = Dispatcher(client).dispatch_once()
    assert stats.delivered == 1 and r.requests[0]["verified"]
    [d] = Webhooks(client).deliveries()
    assert (d.id, d.source, d.subscription_id) == (did, "rule:p95:0", None)
    with _session(client) as conn:
        with pytest.raises(NotFound):
            enqueue_direct(conn, source="rule:x:0", event_seq=999, url=r.url,
                           secret=r.secret, now_ms=now)
        for bad in ({"url": "gopher://x"}, {"secret": "x"}, {"format": "xml"},
                    {"source": ""}, {"event_seq": 0}):
            with pytest.raises(InvalidArgument):
                enqueue_direct(conn, **{"source": "rule:y:0", "event_seq": seq, "url": r.url,
                                        "secret": r.secret, "now_ms": now, **bad})


def test_signing_for_receivers():
    body = b'{"id":"x"}'
    header = signing.sign("k" * 10, body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert signing.verify("k" * 10, body, header)
    assert signing.verify(b"k" * 10, body, header)
    assert not signing.verify("k" * 10, body + b" ", header)
    assert not signing.verify("j" * 10, body, header)
    for bad in (None, "", "sha1=" + header[7:], header[7:], header + "0", "sha256=\u00e9"):
        assert not signing.verify("k" * 10, body, bad)


def test_every_event_type_is_documented():
    from cairn.webhooks.events import EVENT_DESCRIPTIONS

    assert set(EVENT_TYPES) == set(EVENT_DESCRIPTIONS)
    for required in ("run.finished", "run.failed", "model_version.created",
                     "transition.requested", "transition.approved", "transition.rejected",
                     "alias.moved", "stage.changed", "alert.firing", "alert.resolved"):
        assert required in EVENT_TYPES


def test_prune_forgets_old_finished_deliveries_and_the_events_nothing_needs(
        client, receiver, monkeypatch):
    from cairn.webhooks import dispatch

    monkeypatch.setattr(dispatch, "FANOUT_LOOKBACK", 0)
    r = receiver()
    old = clock.now_ms() - 40 * 86_400_000
    with _session(client) as conn:
        done = emit(conn, key="old-done", type="alert.firing", payload={}, at_ms=old)
        waiting = emit(conn, key="old-waiting", type="alert.firing", payload={}, at_ms=old)
        emit(conn, key="old-alone", type="alert.firing", payload={}, at_ms=old)
        new = emit(conn, key="new", type="alert.firing", payload={}, at_ms=clock.now_ms())
        enqueue_direct(conn, source="rule:a:0", event_seq=done, url=r.url,
                       secret="secret-123", now_ms=old)
        enqueue_direct(conn, source="rule:b:0", event_seq=waiting, url="http://127.0.0.1:9/",
                       secret="secret-123", now_ms=old)
    Dispatcher(client, max_attempts=50).dispatch_once(now_ms=old)
    wh = Webhooks(client)
    assert {d.state for d in wh.deliveries()} == {"delivered", "pending"}
    with pytest.raises(InvalidArgument, match="older_than_ms"):
        wh.prune(3_600_000)  # less than a day
    assert wh.prune(30 * 86_400_000) == {"deliveries": 1, "events": 2}
    assert [e.seq for e in wh.events()] == [waiting, new]
    assert [d.state for d in wh.deliveries()] == ["pending"]
    pruned = next(e for e in client.audit_log() if e.action == "events.prune")
    assert pruned.after["events"] == 2


def test_prune_never_makes_the_fan_out_send_an_old_event_again(client, receiver, monkeypatch):
    """The fan-out looks FANOUT_LOOKBACK seqs back and makes a delivery for each event it
    finds without one: a delivery pruned from that range was made, and sent, again."""
    from cairn import clock as clock_mod

    r = receiver()
    now = clock.now_ms()
    old = now - 40 * 86_400_000
    monkeypatch.setattr(clock_mod, "now_ms", lambda: old)
    wh = Webhooks(client)
    wh.subscribe(r.url)
    with _session(client) as conn:
        for i in range(3):
            emit(conn, key=f"old-{i}", type="alert.firing", payload={}, at_ms=old + i)
    assert Dispatcher(client).dispatch_once(now_ms=old).delivered == 3
    monkeypatch.setattr(clock_mod, "now_ms", lambda: now)
    wh.prune(30 * 86_400_000)
    stats = Dispatcher(client).dispatch_once(now_ms=now)
    assert (stats.queued, stats.sent) == (0, 0)
    assert len(r.requests) == 3
