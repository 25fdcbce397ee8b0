"""What a reader sees after a writer process ends, and that no writer stalls on its own locks.

Each reader here is a fresh process, opened right after the writer's exit: it must see
everything the writer flushed, with the right status, however the writer ended.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time

import pytest

from pg_fixtures import pg_database  # noqa: F401  (a fixture)
from procs import reap_processes, spawn, wait_for_line as line  # noqa: F401  (a fixture)

pytestmark = pytest.mark.slow


WRITER = """
    import sys, time, cairn
    how, points = sys.argv[1], int(sys.argv[2])
    cairn.set_experiment("ends")
    run = cairn.start_run(params={"how": how})
    for step in range(points):
        cairn.log_metric("loss", 1.0 / (step + 1), step=step)
    cairn.set_tag("logged", str(points))
    cairn.flush()
    print("run", run.id, flush=True)
    if how == "exit":
        sys.exit(0)
    if how == "exception":
        raise RuntimeError("boom")
    time.sleep(120)  # until the signal
"""

READER = """
    import json, sys, cairn
    c = cairn.Client()
    try:
        r = c.get_run(sys.argv[1])
    except cairn.NotFound as exc:
        print("seen", json.dumps({"error": str(exc)}))
        raise SystemExit(0)
    n = len(c.get_metric_history(r.id, "loss"))
    hits = [x.id for x in c.search_runs(sys.argv[2], filter="tags.logged = '5000'")]
    print("seen", json.dumps({"status": r.status.value, "points": n, "tags": r.tags, "found": r.id in hits}))
"""


@pytest.fixture
def remote_uri(request, tmp_path, monkeypatch):
    """The URI of another backend: a Cairn server on SQLite (in this process), or PostgreSQL."""
    if request.param == "postgres":
        from pg_fixtures import create_schema

        yield create_schema(request.getfixturevalue("pg_database"))
        return
    from serving import ThreadedServer

    from cairn.cas import ObjectStore
    from cairn.server import ServerSettings, create_app
    from cairn.store.sql.store import SqlStore

    monkeypatch.setenv("CAIRN_SPOOL_DIR", str(tmp_path / "spool"))
    backend = SqlStore(f"sqlite:///{tmp_path / 'server.db'}", ObjectStore.local(tmp_path / "objects"))
    with ThreadedServer(create_app(backend, settings=ServerSettings(check_artifact_objects=False))) as url:
        yield url
    backend.close()


@pytest.mark.parametrize("remote_uri", ["http", pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
@pytest.mark.parametrize("how, status, code", [
    ("exit", "FINISHED", 0), ("exception", "FAILED", 1), ("sigterm", "KILLED", -signal.SIGTERM),
])
def test_the_same_on_a_server_and_on_postgresql(remote_uri, tmp_path, how, status, code):
    w = spawn(remote_uri, WRITER, how, 5000, env={"CAIRN_SPOOL_DIR": str(tmp_path / "w-spool")})
    run_id = line(w, "run ")
    if how == "sigterm":
        w.send_signal(signal.SIGTERM)
    w.wait(timeout=30)
    assert w.returncode == code
    seen = read(remote_uri, run_id, env={"CAIRN_SPOOL_DIR": str(tmp_path / "r-spool")})
    assert seen == {"status": status, "points": 5000, "tags": {"logged": "5000"}, "found": True}


def read(store, run_id, env=None, experiment="ends"):
    p = spawn(store, READER, run_id, experiment, env=env)
    return json.loads(line(p, "seen "))


@pytest.mark.parametrize("how, status, code", [
    ("exit", "FINISHED", 0), ("exception", "FAILED", 1),
    ("sigint", "KILLED", None), ("sigterm", "KILLED", -signal.SIGTERM),
    ("sigkill", "KILLED", -signal.SIGKILL),
])
def test_a_reader_opened_after_the_writer_exits_sees_all_it_flushed(store_dir, how, status, code):
    w = spawn(store_dir, WRITER, how, 5000)
    run_id = line(w, "run ")
    if how.startswith("sig"):
        w.send_signal({"sigint": signal.SIGINT, "sigterm": signal.SIGTERM,
                       "sigkill": signal.SIGKILL}[how])
    w.wait(timeout=30)
    if code is not None:
        assert w.returncode == code
    # After SIGKILL nobody wrote KILLED: the run shows so once its heartbeat is stale.
    env = {"CAIRN_HEARTBEAT_TIMEOUT": "0.5"} if how == "sigkill" else None
    if how == "sigkill":
        time.sleep(1)
    seen = read(store_dir, run_id, env)
    assert seen == {"status": status, "points": 5000, "tags": {"logged": "5000"}, "found": True}


def test_a_reader_sees_a_terminated_writer_on_a_store_busy_with_others(store_dir):
    """The case reported: eight writers at once, one of them SIGKILLed, then one SIGTERMed."""
    busy = """
        import sys, cairn
        cairn.set_experiment("busy")
        with cairn.start_run(params={"i": sys.argv[1]}) as run:
            print("run", run.id, flush=True)
            for step in range(10**9):
                cairn.log_metric("loss", 1.0, step=step)
                if step % 2000 == 0:
                    cairn.set_tag("step", str(step))
    """
    others = [spawn(store_dir, busy, i, env={"CAIRN_FLUSH_INTERVAL": "0.05"}) for i in range(8)]
    for p in others:
        line(p, "run ")
    time.sleep(1.0)
    others[0].kill()
    w = spawn(store_dir, WRITER, "sigterm", 5000)
    run_id = line(w, "run ")
    w.send_signal(signal.SIGTERM)
    w.wait(timeout=30)
    assert w.returncode == -signal.SIGTERM
    seen = read(store_dir, run_id)
    assert seen == {"status": "KILLED", "points": 5000, "tags": {"logged": "5000"}, "found": True}
    for p in others[1:]:
        p.send_signal(signal.SIGTERM)
    for p in others[1:]:
        p.wait(timeout=30)
        assert p.returncode == -signal.SIGTERM, p.stderr.read()


def test_sigterm_ends_a_writer_waiting_for_a_locked_index_within_seconds(store_dir, tmp_path):
    go = tmp_path / "go"
    w = spawn(store_dir, """
        import os, sys, time, cairn
        cairn.set_experiment("locked")
        run = cairn.start_run()
        cairn.log_metric("loss", -1.0)
        cairn.flush()
        print("run", run.id, flush=True)
        for step in range(1, 201):
            cairn.log_metric("loss", float(step), step=step)
        while not os.path.exists(sys.argv[1]):  # the test locks the index meanwhile
            time.sleep(0.02)
        print("flushing", flush=True)
        cairn.flush()  # waits for the write lock another process holds
        print("flushed", flush=True)
    """, go)
    run_id = line(w, "run ")
    holder = sqlite3.connect(store_dir / "index.db", timeout=5, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's long write transaction
    try:
        go.touch()
        line(w, "flushing")
        time.sleep(1.0)
        start = time.monotonic()
        w.send_signal(signal.SIGTERM)
        try:
            w.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail("SIGTERM did not end a process waiting for the index's write lock")
        took = time.monotonic() - start
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert w.returncode == -signal.SIGTERM
    assert took < 10, f"SIGTERM took {took:.1f} s"
    # Its end and its last points reached the journal; a reader replays them.
    seen = read(store_dir, run_id, experiment="locked")
    assert seen["status"] == "KILLED" and seen["points"] == 201


def test_a_transiently_locked_index_is_retried_not_reported(store_dir):
    """A lock held past the busy timeout fails the transaction (rolled back); the next
    try succeeds once it is released, and the reader's flush() returns normally."""
    w = spawn(store_dir, """
        import cairn
        from cairn.store.sql import engine
        engine._BUSY_MS = 300  # give up on a lock after 0.3 s instead of 120 s
        cairn.set_experiment("transient")
        with cairn.start_run() as run:
            cairn.log_metric("loss", 1.0)
            cairn.flush()
            print("run", run.id, flush=True)
            input()
            for step in range(100):
                cairn.log_metric("loss", float(step), step=step)
            # A read settles the queued index writes first: it waits out the lock.
            print("flushed", len(cairn.Client().get_metric_history(run.id, "loss")), flush=True)
    """, stdin=True)
    run_id = line(w, "run ")
    holder = sqlite3.connect(store_dir / "index.db", timeout=5, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    w.stdin.write("\n")
    w.stdin.flush()
    time.sleep(2.0)  # several give-ups of 0.3 s each
    holder.execute("ROLLBACK")
    holder.close()
    assert line(w, "flushed ") == "101"
    w.wait(timeout=30)
    assert w.returncode == 0, w.stderr.read()
    seen = read(store_dir, run_id, experiment="transient")
    assert seen["status"] == "FINISHED" and seen["points"] == 101
