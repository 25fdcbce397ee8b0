"""Real servers for tests: uvicorn in a thread (fast) or ``cairn server`` as a process.

Both listen on a free port of 127.0.0.1 only, and both are stopped by the test that
started them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx


# The CLI as a child process (``python -m cairn.cli.main`` would import main.py twice).
CAIRN = [sys.executable, "-c", "from cairn.cli.main import main; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} was not ready in {timeout}s")


class ThreadedServer:
    """uvicorn serving ``app`` from a daemon thread: ``with ThreadedServer(app) as url: ...``."""

    def __init__(self, app, port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="auto"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        wait_ready(self.url)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def serve_postgres(database: str, objects: Path) -> tuple:
    """(store, ThreadedServer): a Cairn server on a fresh schema of the test database
    ``database`` (``pg_fixtures.pg_database``), its objects in ``objects``."""
    from pg_fixtures import create_schema

    from cairn.cas import ObjectStore
    from cairn.server.app import create_app
    from cairn.store.sql.store import SqlStore

    store = SqlStore(create_schema(database), ObjectStore.local(objects))
    return store, ThreadedServer(create_app(store))


class ProcessServer:
    """``cairn server ARGS`` as a child process; ``kill()`` and ``start()`` to restart it."""

    def __init__(self, *args: str, port: int | None = None, env: dict | None = None,
                 log: Path | None = None) -> None:
        self.args = list(args)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "ProcessServer":
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                [*CAIRN, "server", "--host", "127.0.0.1", "--port", str(self.port), *self.args],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            if self.log:
                out.close()
        wait_ready(self.url, timeout, self.proc)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> "ProcessServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
