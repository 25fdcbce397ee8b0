"""Deliveries to real HTTP receivers: signed, retried with backoff, dead-lettered, bounded
by the timeout, and sent once by dispatchers running at once."""

from __future__ import annotations

import json
import threading
import time

import pytest

from cairn import clock
from cairn.errors import Conflict, InvalidArgument, NotFound
from cairn.webhooks.dispatch import Dispatcher
from cairn.webhooks.send import _version
from cairn.webhooks.service import Webhooks

from .conftest import alert, free_port


def test_a_delivery_is_signed_and_carries_the_event(client, receiver):
    r = receiver()
    sub = Webhooks(client).subscribe(r.url, secret="s3cret-s3cret")
    r.secret = sub.secret
    seq = alert(client, "alert:p95:fraud:1")
    stats = Dispatcher(client).dispatch_once()
    assert (stats.queued, stats.sent, stats.delivered) == (1, 1, 1)
    [req] = r.requests
    assert req["verified"]
    h = req["headers"]
    doc = json.loads(req["body"])
    assert doc["type"] == "alert.firing" and doc["seq"] == seq
    assert doc["data"] == {"rule": "p95", "model": "fraud"}
    assert doc["at"].endswith("Z") and doc["at"][:4].isdigit()
    assert h["Content-Type"] == "application/json" and h["Cairn-Event"] == "alert.firing"
    assert h["Cairn-Delivery"] == doc["id"] and h["User-Agent"] == f"cairn/{_version()}"
    [d] = Webhooks(client).deliveries()
    assert (d.id, d.state, d.attempts, d.last_status) == (doc["id"], "delivered", 1, 204)
    # a second round sends nothing again
    assert Dispatcher(client).dispatch_once().sent == 0
    assert len(r.requests) == 1


def test_a_wrong_secret_or_a_changed_body_does_not_verify(client, receiver):
    r = receiver()
    Webhooks(client).subscribe(r.url, secret="the-real-secret")
    r.secret = "another-secret"
    alert(client, "k1")
    Dispatcher(client).dispatch_once()
    assert r.requests and not r.requests[0]["verified"]


def test_a_receiver_that_is_down_is_retried_with_backoff_until_it_is_up(client, receiver):
    port = free_port()
    wh = Webhooks(client)
    wh.subscribe(f"http://127.0.0.1:{port}/hook")
    alert(client, "k1")
    d = Dispatcher(client, backoff=1.0, max_attempts=6)
    t0 = clock.now_ms()
    assert d.dispatch_once(now_ms=t0).failed == 1
    [x] = wh.deliveries()
    assert (x.state, x.attempts, x.next_at, x.last_status) == ("pending", 1, t0 + 1000, None)
    assert "refused" in x.last_error.lower()
    assert d.dispatch_once(now_ms=t0 + 999).sent == 0  # not due yet
    assert d.dispatch_once(now_ms=t0 + 1000).failed == 1
    assert wh.deliveries()[0].next_at == t0 + 1000 + 2000  # doubled
    assert d.dispatch_once(now_ms=t0 + 2999).sent == 0
    up = receiver(port=port)
    assert d.dispatch_once(now_ms=t0 + 3000).delivered == 1
    [x] = wh.deliveries()
    assert (x.state, x.attempts, x.last_status, x.last_error) == ("delivered", 3, 204, None)
    assert len(up.requests) == 1


def test_a_receiver_that_always_fails_ends_dead_and_listed_then_redelivered(client, receiver):
    r = receiver(status=500)
    wh = Webhooks(client)
    wh.subscribe(r.url)
    alert(client, "k1")
    d = Dispatcher(client, backoff=2.0, max_attempts=3)
    t = clock.now_ms()
    outcomes = []
    for _ in range(3):
        s = d.dispatch_once(now_ms=t)
        outcomes.append((s.failed, s.dead))
        t = wh.deliveries()[0].next_at
    assert outcomes == [(1, 0), (1, 0), (0, 1)]
    [dead] = wh.deliveries(state="dead")
    assert (dead.attempts, dead.last_status) == (3, 500)
    assert "HTTP 500" in dead.last_error and "no" in dead.last_error  # the receiver's answer
    assert d.dispatch_once(now_ms=t + 10**9).sent == 0  # dead stays dead
    assert len(r.requests) == 3
    r.status = 200
    again = wh.redeliver(dead.id)
    assert (again.state, again.attempts) == ("pending", 0)
    with pytest.raises(Conflict, match="pending already"):
        wh.redeliver(dead.id)
    assert d.dispatch_once().delivered == 1
    assert wh.deliveries(state="dead") == []
    with pytest.raises(NotFound):
        wh.redeliver("0" * 32)


def test_a_slow_receiver_times_out_and_the_round_ends_in_time(client, receiver):
    r = receiver(delay=3.0)
    wh = Webhooks(client)
    wh.subscribe(r.url)
    alert(client, "k1")
    started = time.monotonic()
    stats = Dispatcher(client, timeout=0.3).dispatch_once()
    assert time.monotonic() - started < 2.5
    assert (stats.sent, stats.failed) == (1, 1)
    assert "timed out" in wh.deliveries()[0].last_error


def test_a_slack_body_is_a_text_summary(client, receiver):
    r = receiver()
    sub = Webhooks(client).subscribe(r.url, format="slack")
    r.secret = sub.secret
    alert(client, "k1")
    Dispatcher(client).dispatch_once()
    doc = json.loads(r.requests[0]["body"])
    assert list(doc) == ["text"] and "alert p95 on fraud" in doc["text"]
    assert r.requests[0]["verified"]


def test_two_dispatchers_at_once_deliver_each_event_once(client, receiver, tmp_path):
    r = receiver(delay=0.02)
    Webhooks(client).subscribe(r.url)
    for i in range(12):
        alert(client, f"k{i}")
    import cairn

    other = cairn.Client(client.uri, user="bob")
    ds = [Dispatcher(client), Dispatcher(other)]
    now = clock.now_ms()
    barrier = threading.Barrier(2)
    stats = []

    def go(d):
        barrier.wait()
        stats.append(d.dispatch_once(now_ms=now))

    threads = [threading.Thread(target=go, args=(d,)) for d in ds]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    ids = [json.loads(b)["id"] for b in r.bodies()]
    assert len(ids) == 12 and len(set(ids)) == 12
    assert sum(s.delivered for s in stats) == 12
    assert len(Webhooks(client).deliveries(state="delivered")) == 12


def test_dispatch_never_raises_on_a_receiver_that_misbehaves(client):
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    port = srv.getsockname()[1]

    def hang_up():
        for _ in range(2):
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.sendall(b"garbage that is not HTTP\r\n\r\n")
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    wh = Webhooks(client)
    wh.subscribe(f"http://127.0.0.1:{port}/")
    alert(client, "k1")
    try:
        stats = Dispatcher(client, timeout=2).dispatch_once()
    finally:
        srv.close()
    assert stats.failed == 1 and wh.deliveries()[0].last_error


def test_a_deleted_subscription_stops_its_pending_deliveries(client):
    wh = Webhooks(client)
    sub = wh.subscribe(f"http://127.0.0.1:{free_port()}/")
    alert(client, "k1")
    d = Dispatcher(client)
    t0 = clock.now_ms()
    d.dispatch_once(now_ms=t0)
    wh.unsubscribe(sub.id)
    [x] = wh.deliveries()
    assert x.state == "dead" and "deleted" in x.last_error
    assert d.dispatch_once(now_ms=t0 + 10**7).sent == 0
    with pytest.raises(NotFound):
        wh.redeliver(x.id)


def test_the_dispatcher_refuses_bad_settings(client):
    for kwargs in ({"timeout": 0}, {"timeout": float("nan")}, {"max_attempts": 0},
                   {"max_attempts": True}, {"backoff": -1}, {"timeout": "5"}):
        with pytest.raises(InvalidArgument):
            Dispatcher(client, **kwargs)
    with pytest.raises(InvalidArgument, match="now_ms"):
        Dispatcher(client).dispatch_once(now_ms=-5)
    d = Dispatcher(client, backoff=1.0)
    assert [d.retry_delay_ms(n) for n in (1, 2, 3, 30)] == [1000, 2000, 4000, 3_600_000]


def test_run_dispatches_rounds_and_outlives_a_failed_one(client, receiver):
    r = receiver()
    Webhooks(client).subscribe(r.url)
    alert(client, "k1")
    seen = []
    d = Dispatcher(client)
    d.run(0.01, rounds=2, on_round=seen.append)
    assert [s.delivered for s in seen] == [1, 0]
    broken = Dispatcher(cairn_memory_client())
    broken.run(0.01, rounds=1)  # a round that fails is logged, not raised


def cairn_memory_client():
    import cairn

    return cairn.Client("memory://webhooks-run", user="a")


def test_slack_texts_say_what_happened():
    from cairn.webhooks.send import summary

    asked = summary("transition.requested", {
        "model": "fraud", "version": "1.2.0", "to_stage": "Production", "by": "alice",
        "approvals_needed": 1, "approvers": ["bob"], "request": "r1"})
    assert asked == ("Transition of fraud/1.2.0 to Production requested by alice; it waits "
                     "for 1 approval(s) by bob (request r1)")
    assert summary("run.failed", {"run_id": "abc", "run_name": "n", "experiment": "e",
                                  "status": "FAILED"}) == \
        "Run n (abc) in experiment e ended FAILED"
    assert "rolled back to Production" in summary(
        "stage.changed", {"model": "m", "version": "1.0.0", "to_stage": "Production",
                          "from_stage": "Archived", "rollback": True})
    fired = summary("alert.firing", {"rule": "p95", "model": "m@production",
                                     "condition": "p95 > 250", "values": {"p95": 300.0}})
    assert fired == "[FIRING] alert p95 on m@production: p95 > 250 (p95=300.0)"


def test_a_step_that_fails_is_reported_and_the_others_still_run(client, receiver,
                                                                  monkeypatch):
    from cairn.webhooks import produce

    r = receiver()
    Webhooks(client).subscribe(r.url)
    alert(client, "k1")

    def broken(*args, **kwargs):
        raise RuntimeError("the runs will not read")

    monkeypatch.setattr(produce, "ended_runs", broken)
    stats = Dispatcher(client).dispatch_once()
    assert stats.delivered == 1 and len(r.requests) == 1
    assert stats.errors == ("producing events: RuntimeError: the runs will not read",)


@pytest.mark.parametrize("status,ok", [(200, True), (201, True), (299, True), (302, False),
                                       (404, False), (410, False), (503, False)])
def test_only_a_2xx_answer_is_a_delivery(client, receiver, status, ok):
    r = receiver(status=status)
    wh = Webhooks(client)
    wh.subscribe(r.url)
    alert(client, "k1")
    stats = Dispatcher(client).dispatch_once()
    assert (stats.delivered, stats.failed) == ((1, 0) if ok else (0, 1))
    [d] = wh.deliveries()
    assert d.last_status == status and (d.last_error is None) == ok
    assert len(r.requests) == 1  # a redirect is not followed


def test_a_claim_outlasts_its_send_even_late_in_a_long_round(client, receiver):
    """A round that began long ago (a batch of slow receivers) still holds what it sends:
    a claim runs from when it is taken, not from the round's start."""
    r = receiver(delay=1.0)
    Webhooks(client).subscribe(r.url)
    alert(client, "k1")
    long_ago = clock.now_ms() - 600_000
    first = threading.Thread(target=Dispatcher(client, timeout=3).dispatch_once,
                             kwargs={"now_ms": long_ago})
    first.start()
    deadline = time.monotonic() + 10
    while not r.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert r.requests, "the first dispatcher never sent"
    assert Dispatcher(client).dispatch_once().sent == 0  # held by the first
    first.join(10)
    assert len(r.requests) == 1


def test_stop_ends_a_running_dispatcher_without_waiting_out_its_interval(client):
    d = Dispatcher(client)
    runner = threading.Thread(target=d.run, args=(60.0,))
    started = time.monotonic()
    runner.start()
    time.sleep(0.2)
    d.stop()
    runner.join(10)
    assert not runner.is_alive() and time.monotonic() - started < 10


def test_a_stop_before_the_loop_starts_is_not_lost(client):
    # A signal handled while `cairn webhooks dispatch` was still setting up.
    d = Dispatcher(client)
    d.stop()
    started = time.monotonic()
    d.run(60.0)
    assert time.monotonic() - started < 10


def test_a_url_with_user_and_password_authenticates_and_never_shows_them(client, receiver):
    """urllib takes ``user:password@host`` for a host and a port: the delivery failed with
    the password in its last_error (which ``cairn webhooks deliveries`` prints)."""
    import base64

    r = receiver()
    wh = Webhooks(client)
    wh.subscribe(f"http://hook-user:pa%40ss-w0rd@127.0.0.1:{r.port}/hook")
    down = free_port()
    wh.subscribe(f"http://hook-user:pa%40ss-w0rd@127.0.0.1:{down}/hook")
    alert(client, "k1")
    stats = Dispatcher(client).dispatch_once()
    assert (stats.delivered, stats.failed) == (1, 1)
    [req] = r.requests
    assert req["headers"]["Authorization"] == "Basic " + base64.b64encode(
        b"hook-user:pa@ss-w0rd").decode()
    [failed] = wh.deliveries(state="pending")
    assert "refused" in failed.last_error.lower()
    for text in ("pa%40ss-w0rd", "pa@ss-w0rd", "hook-user"):
        assert text not in failed.last_error


def test_an_error_never_shows_a_chat_webhook_s_url():
    from cairn.webhooks import send

    token = "T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX"
    out = send.post(f"http://127.0.0.1:{free_port()}/services/{token}", b"{}", {}, 2.0)
    assert not out.ok and token not in out.error
    out = send.post(f"http://u:{token}@127.0.0.1/x", b"{}", {}, 2.0)
    assert not out.ok and token not in out.error


def test_a_delivery_queued_as_its_subscription_was_deleted_is_never_sent(client, receiver):
    """On PostgreSQL a fan-out that read the subscriptions before an unsubscribe committed
    inserts its deliveries after it: the send must not go to the deleted subscription."""
    from cairn.webhooks.events import insert_delivery

    r = receiver()
    wh = Webhooks(client)
    sub = wh.subscribe(r.url)
    seq = alert(client, "k1")
    wh.unsubscribe(sub.id)
    with client.store.index.session(write=True) as conn:  # the fan-out's late insert
        insert_delivery(conn, source=f"subscription:{sub.id}", event_seq=seq,
                        event_type="alert.firing", url=r.url, secret="secret-123",
                        format="json", now_ms=clock.now_ms(), subscription_id=sub.id)
    stats = Dispatcher(client).dispatch_once()
    assert r.requests == [] and stats.delivered == 0
    [x] = wh.deliveries()
    assert x.state == "dead" and "deleted" in x.last_error


def test_a_receiver_that_trickles_its_answer_holds_no_thread_past_the_timeout():
    """urllib's timeout is per socket read: an answer trickled a byte at a time kept the
    send's thread (and its socket) alive long after the attempt had timed out."""
    import socket as sk

    from cairn.webhooks import send

    server = sk.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    stop = threading.Event()

    def trickle():
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        try:
            while not stop.is_set():
                conn.sendall(b"x")
                time.sleep(0.05)
        except OSError:
            pass
        finally:
            conn.close()

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    try:
        started = time.monotonic()
        out = send.post(f"http://127.0.0.1:{server.getsockname()[1]}/", b"{}", {}, 0.5)
        assert not out.ok and "timed out" in out.error
        assert time.monotonic() - started < 2.0
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and any(
                th.name == "cairn-webhook-send" for th in threading.enumerate()):
            time.sleep(0.05)
        assert not any(th.name == "cairn-webhook-send" for th in threading.enumerate())
    finally:
        stop.set()
        server.close()


def test_an_event_that_cannot_be_sent_is_dead_not_claimed_forever(client, receiver):
    """A stored payload that does not encode (a lone surrogate written as \\ud800 by some
    other writer) raised between the claim and its outcome: the delivery was never dead,
    only taken again each time its claim lapsed, for ever."""
    import sqlalchemy as sa

    from cairn.store.sql.tables_monitoring import events as E

    r = receiver()
    wh = Webhooks(client)
    wh.subscribe(r.url)
    seq = alert(client, "k1")
    with client.store.index.session(write=True) as conn:
        conn.execute(sa.update(E).where(E.c.seq == seq).values(payload='{"rule":"\\ud800"}'))
    stats = Dispatcher(client).dispatch_once()
    assert (stats.sent, stats.dead) == (1, 1) and r.requests == []
    [x] = wh.deliveries()
    assert x.state == "dead" and "could not be encoded" in x.last_error


def test_a_slack_text_escapes_what_slack_reads_as_markup():
    """Slack reads <!channel>, <@U123> and <http://x|label> in a message's text: a run
    named "<!channel>" (anyone who may run in an experiment names runs) pinged the whole
    channel.  &, < and > are sent as Slack asks, as &amp; &lt; &gt;."""
    from cairn.webhooks.send import body

    doc = json.loads(body("d1", "run.failed", 1, 0, {
        "run_id": "abc", "run_name": "<!channel> <http://evil.example|docs> & co",
        "experiment": "e", "status": "FAILED"}, "slack"))
    assert doc["text"] == ("Run &lt;!channel&gt; &lt;http://evil.example|docs&gt; &amp; co "
                           "(abc) in experiment e ended FAILED")
