"""Pytest fixtures for testing code that uses Cairn: a pytest plugin, on once Cairn is installed.

Each fixture gives a test a fresh place to record runs and puts the process's fluent
state back to its start afterwards (``cairn._state.reset``: runs left active are ended,
the tracking URI and experiment are forgotten, the stores the test opened are closed):

``cairn_store``
    A fresh local store directory (a :class:`pathlib.Path`), made the fluent API's
    tracking URI: ``cairn.start_run()`` and ``cairn.Client()`` use it.
``cairn_memory_store``
    A fresh in-memory store (its ``memory://`` URI), made the tracking URI.
``cairn_server``
    The URL of a Cairn server running in a thread, on a fresh store of its own; not made
    the tracking URI (``cairn.set_tracking_uri(cairn_server)`` does that).  Needs the
    server extras: ``pip install 'cairn[server]'``.
``cairn_clock``
    A :class:`Clock` that Cairn reads the time from: frozen at the moment the test
    starts until the test moves it.
``cairn_state``
    Only the fresh start and the reset, for a test that sets its own tracking URI.

Importing ``cairn`` does not import this module (nor pytest).
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from . import _state, clock

__all__ = ["Clock", "ServerThread", "cairn_clock", "cairn_memory_store", "cairn_server",
           "cairn_state", "cairn_store"]


class Clock:
    """The time Cairn stamps runs, metrics and events with, under a test's control.

    It stands still until moved: ``advance(seconds)`` moves it on, ``set(ms)`` puts it
    at a time (milliseconds since the epoch).  Only Cairn reads it (through
    ``cairn.clock``); :func:`time.time` and timeouts keep the real time.
    """

    def __init__(self, ms: int) -> None:
        self._ns = ms * 1_000_000
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        return self._ns // 1_000_000

    def time_ns(self) -> int:
        return self._ns

    def advance(self, seconds: float = 0.0, *, ms: int = 0) -> int:
        """Move on by ``seconds`` (and ``ms``); the new time in milliseconds."""
        with self._lock:
            self._ns += round(seconds * 1_000_000_000) + ms * 1_000_000
            return self._ns // 1_000_000

    def set(self, ms: int) -> None:
        with self._lock:
            self._ns = ms * 1_000_000

    def __repr__(self) -> str:
        return f"<Clock {self.now_ms()} ms>"


class ServerThread:
    """A Cairn server (uvicorn serving ``create_app(store)``) in a daemon thread, on a free
    port of 127.0.0.1: ``with ServerThread(app) as url: ...``."""

    def __init__(self, app: Any, port: int | None = None, ready_timeout: float = 30.0) -> None:
        import uvicorn

        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready_timeout = ready_timeout
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="auto"))
        self.thread = threading.Thread(target=self.server.run, name="cairn-test-server", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + self.ready_timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + "/ready", timeout=2) as response:
                    if response.status == 200:
                        return self.url
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline or not self.thread.is_alive():
                self.__exit__()
                raise RuntimeError(f"the test server at {self.url} did not become ready")
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def cairn_state() -> Iterator[_state.FluentState]:
    """The process's fluent state, fresh for the test (no tracking URI, experiment or
    active run left by another test) and put back afterwards: runs left active are ended,
    the tracking URI and experiment forgotten, the process's stores closed.  Its
    ``reset()`` starts over in the middle of a test, as a new process would."""
    _state.reset(close_stores=False)  # stores of wider-scoped fixtures stay open
    yield _state.STATE
    _state.reset(end_runs=True)


@pytest.fixture
def cairn_store(cairn_state: _state.FluentState,
                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh local store directory, made the fluent API's tracking URI."""
    import cairn

    monkeypatch.delenv("CAIRN_TRACKING_URI", raising=False)
    path = tmp_path / "cairn-store"
    cairn.set_tracking_uri(str(path))
    yield path


@pytest.fixture
def cairn_memory_store(cairn_state: _state.FluentState,
                       monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh in-memory store (its ``memory://`` URI), made the fluent API's tracking URI."""
    import cairn

    monkeypatch.delenv("CAIRN_TRACKING_URI", raising=False)
    uri = f"memory://cairn-test-{uuid.uuid4().hex[:12]}"
    cairn.set_tracking_uri(uri)
    yield uri


@pytest.fixture
def cairn_server(cairn_state: _state.FluentState,
                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The URL of a Cairn server on a fresh local store, running in a thread of this process.

    Clients of it spool under the test's temporary directory.  The server's store lies in
    ``tmp_path / "cairn-server"``.
    """
    pytest.importorskip("fastapi", reason="cairn_server needs the server extras: cairn[server]")
    pytest.importorskip("uvicorn", reason="cairn_server needs the server extras: cairn[server]")
    from .server import create_app
    from .store.local import LocalStore

    monkeypatch.setenv("CAIRN_SPOOL_DIR", str(tmp_path / "cairn-spool"))
    store = LocalStore(tmp_path / "cairn-server")
    try:
        with ServerThread(create_app(store)) as url:
            yield url
            _state.reset(end_runs=True)  # the runs on the server end while it still answers
    finally:
        store.close()


@pytest.fixture
def cairn_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    """A :class:`Clock` that Cairn reads the time from, frozen at the real time of the
    test's start until the test moves it (``cairn_clock.advance(1.5)``)."""
    fake = Clock(time.time_ns() // 1_000_000)
    monkeypatch.setattr(clock, "time_ns", fake.time_ns)
    yield fake
    _state.reset(end_runs=True)  # runs stamped with the fake time end under it too

