"""Real HTTP receivers (http.server in a thread) and a fresh local store for webhook tests."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

import cairn
from cairn import clock
from cairn.webhooks.events import emit
from cairn.webhooks.signing import verify
from serving import free_port  # noqa: F401  (the tests import it from here)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("CAIRN_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("CAIRN_USER", "alice")
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")



class Receiver:
    """A webhook receiver: answers ``status`` after ``delay`` seconds, and keeps every
    request it got with whether its signature verified under ``secret``."""

    def __init__(self, port: int = 0, status: int = 204, delay: float = 0.0) -> None:
        self.status, self.delay, self.secret = status, delay, None
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        me = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with me.lock:
                    me.requests.append({
                        "path": self.path, "headers": dict(self.headers), "body": body,
                        "verified": me.secret is not None and verify(
                            me.secret, body, self.headers.get("Cairn-Signature"))})
                if me.delay:
                    time.sleep(me.delay)
                try:
                    self.send_response(me.status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"no")
                except OSError:  # the dispatcher gave up waiting
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def bodies(self) -> list[bytes]:
        with self.lock:
            return [r["body"] for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(port: int = 0, status: int = 204, delay: float = 0.0) -> Receiver:
        r = Receiver(port, status, delay)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


@pytest.fixture
def client(tmp_path):
    c = cairn.Client(str(tmp_path / "store"), user="alice")
    yield c
    cairn.store.close_store(c.uri)


def alert(client, key: str, model: str = "fraud", kind: str = "alert.firing",
          experiment_id: str | None = None) -> int:
    """Store an alert event now, as the alert monitor does."""
    store = client.store
    store.open()
    with store.index.session(write=True) as conn:
        seq = emit(conn, key=key, type=kind, payload={"rule": "p95", "model": model},
                   at_ms=clock.now_ms(), model=model, experiment_id=experiment_id)
    assert seq is not None
    return seq


def fit_logreg(C: float = 1.0):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.RandomState(0)
    X = rng.randn(60, 4)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return LogisticRegression(C=C).fit(X, y)


@pytest.fixture
def as_bob(client):
    bob = cairn.Client(client.uri, user="bob")
    return bob
