"""The remote client never drops good records because one is bad, nor any because the server
failed: a record the server refuses is kept in the spool's rejected area and reported
(at the time, and by `cairn sync`); a 5xx or a dead server keeps everything for later.

Every test runs against a real server on a local store and on PostgreSQL.  The bad
records are written below the API's validation (straight into the spool with the
journal encoder, or through the store's write): a lone surrogate the server cannot
store, a param changed to another value, a record of a run that does not exist.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from serving import CAIRN, ProcessServer, ThreadedServer

import cairn
from cairn.entities import RecordBatch, RunStatus
from cairn.store import journal as jlib
from cairn.store.http import HttpStore

pytestmark = [pytest.mark.slow]

BACKENDS = ["local", pytest.param("postgres", marks=pytest.mark.postgres)]
POINTS = 500  # per record
BAD = "x\ud800y"  # a lone surrogate: no database or JSON document can hold it


def _server_args(kind: str, tmp_path, request) -> tuple[list[str], dict]:
    if kind == "postgres":
        pg_url = request.getfixturevalue("pg_url")
        return ["--db", pg_url, "--objects", str(tmp_path / "objects"), "--no-auth"], {}
    return [], {"CAIRN_TRACKING_URI": str(tmp_path / "server-store")}


@pytest.fixture(params=BACKENDS)
def server(request, tmp_path):
    """`cairn server` as a process, on a local store or on PostgreSQL; restartable."""
    args, env = _server_args(request.param, tmp_path, request)
    srv = ProcessServer(*args, env=env, log=tmp_path / "server.log")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(params=BACKENDS)
def server_store(request, tmp_path):
    """The store a server in this process would serve: a local store or PostgreSQL."""
    from cairn.cas import ObjectStore
    from cairn.store.local import LocalStore
    from cairn.store.sql.store import SqlStore

    if request.param == "postgres":
        store = SqlStore(request.getfixturevalue("pg_url"), ObjectStore.local(tmp_path / "objects"))
    else:
        store = LocalStore(tmp_path / "server-store")
    yield store
    store.close()


def _points(start: int, n: int = POINTS) -> dict:
    steps = np.arange(start, start + n)
    return {"loss": (steps, steps + 1_000, steps * 0.5)}


def _create(exp_id: str, run_id: str) -> dict:
    return {"experiment_id": exp_id, "experiment_name": "rejects", "name": run_id, "user": "t",
            "start_time": 1}


def _sync(url: str, spool, *args: str) -> tuple[int, dict]:
    out = subprocess.run([*CAIRN, "--store", url, "sync", "--json", *args], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "CAIRN_SPOOL_DIR": str(spool)})
    assert out.stdout, out.stderr
    return out.returncode, json.loads(out.stdout)


def _history(url: str, run_id: str, key: str = "loss") -> list[int]:
    return cairn.Client(url).get_metric_history(run_id, key).steps.tolist()


def test_one_bad_record_among_thousands_of_points_loses_no_good_one(server, spool):
    """Bad records spooled among good ones (one request): the good ones all arrive; the
    bad ones are kept in the rejected area and `cairn sync` reports them, exit 1."""
    store = HttpStore(server.url, spool_dir=spool)
    exp = store.create_experiment("rejects")
    rid, wid = "run0spooled", "w-spooled"
    batches = [RecordBatch(run_id=rid, writer_id=wid, seq=1, time=1, params={"lr": "0.1"},
                           tags={"ok": "yes"}, metrics=_points(0), create=_create(exp.id, rid))]
    for i in range(1, 20):
        b = RecordBatch(run_id=rid, writer_id=wid, seq=len(batches) + 1, time=i + 1,
                        metrics=_points(i * POINTS))
        if i == 7:  # a bad tag and a changed param in a record of 500 good points
            b = RecordBatch(run_id=rid, writer_id=wid, seq=b.seq, time=b.time, metrics=b.metrics,
                            tags={"bad": BAD, "fine": "1"}, params={"lr": "0.2", "wd": "0"})
        batches.append(b)
        if i == 12:  # a record the server refuses whole, between good ones of the same writer
            batches.append(RecordBatch(run_id="no-such-run", writer_id=wid,
                                       seq=len(batches) + 1, time=50, metrics=_points(0, 10)))
    batches.append(RecordBatch(run_id=rid, writer_id=wid, seq=len(batches) + 1, time=99,
                               status=RunStatus.FINISHED, end_time=99))
    for b in batches:  # below any validation: the journal encoder, as a crashed process left it
        store.spool.append(b, None)
    store.close()

    rc, out = _sync(server.url, spool)
    assert rc == 1, out  # something was refused
    assert out["pending_writers"] == 0 and out["rejected_records"] == 2, out
    whole, items = sorted(out["rejected"], key=lambda r: bool(r["items"]))
    assert whole["run_id"] == "no-such-run" and whole["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert items["seq"] == 8 and sorted((i["field"], i["key"]) for i in items["items"]) == [
        ("param", "lr"), ("tag", "bad")]
    assert all(i["reason"] for i in items["items"])

    client = cairn.Client(server.url)
    assert _history(server.url, rid) == list(range(20 * POINTS))  # every good point, once
    run = client.get_run(rid)
    assert run.status is cairn.RunStatus.FINISHED
    assert run.params == {"lr": "0.1", "wd": "0"}
    assert run.tags.get("ok") == "yes" and run.tags.get("fine") == "1" and "bad" not in run.tags

    # The refused record itself is kept, as a journal frame, next to the log.
    rejected = HttpStore(server.url, spool_dir=spool).spool.rejected_dir
    kept = [e.batch for e in jlib.read(rejected / whole["file"], whole["offset"])]
    assert kept[0].run_id == "no-such-run" and len(kept[0].metrics["loss"][0]) == 10
    assert list(spool.rglob("*.cjl")) == []  # the journal itself was delivered and removed

    rc, again = _sync(server.url, spool)  # still reported until cleared
    assert rc == 1 and again["rejected_records"] == 2
    rc, cleared = _sync(server.url, spool, "--clear-rejected")
    assert rc == 0 and cleared["rejected_records"] == 2 and cleared["rejected_cleared"]
    rc, none = _sync(server.url, spool)
    assert rc == 0 and none["rejected_records"] == 0 and none["rejected"] == []


def test_the_callers_own_bad_record_is_refused_whole_the_others_all_arrive(server, spool):
    """A process's own writes (HttpStore.write, as the Client and the fluent writer call
    it), each sent as written: the bad one is all or nothing, as on every backend (it
    raises InvalidArgument naming the item, nothing of it is applied, and its sequence
    number can be used again); every record before and after it arrives."""
    code = textwrap.dedent(f"""
        import sys, numpy as np, cairn
        from cairn.entities import RecordBatch, RunStatus
        from cairn.errors import InvalidArgument
        store = cairn.Client({server.url!r}).store
        exp = store.create_experiment("live")
        create = {{"experiment_id": exp.id, "experiment_name": "live", "name": "r", "user": "t",
                   "start_time": 1}}
        for seq in range(1, 21):
            steps = np.arange((seq - 1) * {POINTS}, seq * {POINTS})
            def batch(tags):
                return RecordBatch(
                    run_id="run0live", writer_id="w-live", seq=seq, time=seq,
                    metrics={{"loss": (steps, steps, steps * 0.5)}},
                    create=create if seq == 1 else None, tags=tags,
                    status=RunStatus.FINISHED if seq == 20 else None,
                    end_time=20 if seq == 20 else None)
            try:
                store.write(batch({{"note": "x\\ud800y"}} if seq in (1, 7) else {{}}))
            except InvalidArgument as exc:
                print("refused", seq, exc, flush=True)
                store.write(batch({{}}))  # the same sequence number, without the bad tag
        print("done", flush=True)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "CAIRN_SPOOL_DIR": str(spool)})
    assert out.returncode == 0 and "done" in out.stdout, out.stderr
    refused = [ln for ln in out.stdout.splitlines() if ln.startswith("refused")]
    assert [ln.split()[1] for ln in refused] == ["1", "7"]
    assert all("note" in ln and "surrogate" in ln for ln in refused)
    assert _history(server.url, "run0live") == list(range(20 * POINTS))
    run = cairn.Client(server.url).get_run("run0live")
    assert "note" not in run.tags and run.status is RunStatus.FINISHED
    rc, rep = _sync(server.url, spool)  # the refused records are kept, and said
    assert rc == 1 and rep["rejected_records"] == 2


WORKER = textwrap.dedent("""
    import sys, time, cairn
    cairn.set_experiment("down")
    with cairn.start_run(name="w", params={"p": "1"}) as run:
        print(run.id, flush=True)
        for step in range(%d):
            cairn.log_metric("x", step * 1.5, step=step)
            time.sleep(0.002)
""")


def test_server_killed_mid_run_then_cairn_sync_delivers_everything_once(server, spool):
    steps = 3000
    proc = subprocess.Popen([sys.executable, "-c", WORKER % steps],
                            env={**os.environ, "CAIRN_TRACKING_URI": server.url,
                                 "CAIRN_SPOOL_DIR": str(spool), "CAIRN_FLUSH_INTERVAL": "0.05",
                                 "CAIRN_SPOOL_DRAIN_TIMEOUT": "0.5", "CAIRN_CAPTURE_ENV": "0"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        rid = proc.stdout.readline().strip()
        assert rid, proc.stderr.read()
        time.sleep(1.0)
        server.kill()  # connection refused from here on: the worker keeps logging
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "cairn sync" in err  # told where the records wait
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert list(spool.rglob("*.cjl"))
    rc, down = _sync(server.url, spool)  # still down: waiting, exit 1, nothing refused
    assert rc == 1 and down["pending_writers"] >= 1 and down["rejected_records"] == 0
    server.start()
    rc, up = _sync(server.url, spool)
    assert rc == 0, up
    assert up["pending_writers"] == 0 and up["rejected_records"] == 0 and up["rejected"] == []
    assert _history(server.url, rid, "x") == list(range(steps))  # all of them, each once
    run = cairn.Client(server.url).get_run(rid)
    assert run.status is cairn.RunStatus.FINISHED and run.metric_summaries["x"].count == steps
    assert list(spool.rglob("*.cjl")) == []


class _Faults:
    """ASGI middleware: while ``on``, a records request is applied, then answered 500
    (the answer is lost: the client cannot know it was applied)."""

    def __init__(self, app) -> None:
        self.app = app
        self.on = False
        self.failed = 0

    async def __call__(self, scope, receive, send):
        if not (self.on and scope["type"] == "http" and scope["path"].endswith("/records")):
            return await self.app(scope, receive, send)
        sent = []

        async def swallow(message):
            sent.append(message)

        await self.app(scope, receive, swallow)
        self.failed += 1
        body = b'{"error_code": "INTERNAL_ERROR", "message": "injected fault"}'
        await send({"type": "http.response.start", "status": 500,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _FailingWrites:
    """The server's store, failing every write with an unexpected error while ``on``."""

    def __init__(self, store) -> None:
        self._store = store
        self.on = False
        self.failed = 0

    def __getattr__(self, name):
        attr = getattr(self._store, name)
        if name in ("write", "write_prepared"):
            def failing(*args, **kw):
                if self.on:
                    self.failed += 1
                    raise RuntimeError("injected: the disk is on fire")
                return attr(*args, **kw)
            return failing
        return attr


def test_5xx_answers_and_a_failing_store_drop_nothing(server_store, spool, tmp_path):
    from cairn.server import create_app

    failing = _FailingWrites(server_store)
    app = _Faults(create_app(failing))
    with ThreadedServer(app) as url:
        store = HttpStore(url, spool_dir=spool, drain_timeout=0.2)
        exp = store.create_experiment("faults")
        rid, wid = "run0faults", "w-faults"
        seq = 0

        def write(**kw) -> None:
            nonlocal seq
            seq += 1
            store.write(RecordBatch(run_id=rid, writer_id=wid, seq=seq, time=seq, **kw))

        def until_failed(fault, n: int) -> None:
            deadline = time.monotonic() + 30
            while fault.failed < n:  # a send now, not at the sender thread's next try
                assert time.monotonic() < deadline
                store.flush_spool(timeout=0.0)
                time.sleep(0.05)

        write(metrics=_points(0), create=_create(exp.id, rid))
        app.on = True  # applied, answered 500: sent again, applied once
        for i in range(1, 5):
            write(metrics=_points(i * POINTS))
        until_failed(app, 3)
        assert store.spool.pending(wid)  # nothing acknowledged on a 500
        app.on = False
        failing.on = True  # the store raises: 'unavailable', kept, sent again
        for i in range(5, 10):
            write(metrics=_points(i * POINTS))
        until_failed(failing, 3)
        assert store.spool.pending(wid)  # nothing acknowledged while it fails
        failing.on = False
        write(metrics=_points(10 * POINTS), status=RunStatus.FINISHED, end_time=99)
        assert store.flush_spool(timeout=30)
        assert _history(url, rid) == list(range(11 * POINTS))  # each point once
        assert cairn.Client(url).get_run(rid).status is cairn.RunStatus.FINISHED
        assert store.spool.rejected() == []
        store.close()
    assert list(spool.rglob("*.cjl")) == []


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_request_refused_whole_is_resent_record_by_record(kind, tmp_path, request, spool):
    """A server with a smaller body limit answers 413 for a request of many records: the
    client finds the one too large, keeps it in the rejected area, delivers the rest."""
    args, env = _server_args(kind, tmp_path, request)
    with ProcessServer(*args, "--max-request-mb", "1", env=env, log=tmp_path / "server.log") as srv:
        store = HttpStore(srv.url, spool_dir=spool)
        exp = store.create_experiment("big")
        rid, wid = "run0big", "w-big"
        rng = np.random.default_rng(0)
        huge = np.arange(200_000)  # random values: about 3 MB however it is packed
        for seq in range(1, 31):
            metrics = _points((seq - 1) * 100, 100)
            if seq == 10:
                metrics = {"huge": (huge, huge, rng.random(huge.size))}
            store.spool.append(RecordBatch(
                run_id=rid, writer_id=wid, seq=seq, time=seq, metrics=metrics,
                create=_create(exp.id, rid) if seq == 1 else None,
                status=RunStatus.FINISHED if seq == 30 else None,
                end_time=30 if seq == 30 else None), None)
        store.close()
        rc, out = _sync(srv.url, spool)
        assert rc == 1 and out["pending_writers"] == 0 and out["rejected_records"] == 1, out
        assert out["rejected"][0]["seq"] == 10
        steps = list(range(100 * 30))
        del steps[900:1000]  # record 10 held the huge metric instead
        assert _history(srv.url, rid) == steps
        client = cairn.Client(srv.url)
        assert client.get_run(rid).status is cairn.RunStatus.FINISHED
        assert "huge" not in client.get_run(rid).metric_summaries
