"""Group commit: several runs' index writes share a transaction, and nobody can tell."""

import os
import subprocess
import sys
import textwrap

import pytest

import cairn
from cairn.errors import InvalidArgument, RunFinished
from cairn.store import open_store


def _store(tmp_path, monkeypatch, delay="0.05"):
    monkeypatch.setenv("CAIRN_INDEX_DELAY", delay)
    uri = str(tmp_path / "store")
    cairn.set_tracking_uri(uri)
    cairn.set_experiment("g")
    return cairn.Client(uri=uri), open_store(uri)


def test_runs_created_back_to_back_share_transactions(tmp_path, monkeypatch):
    client, store = _store(tmp_path, monkeypatch)
    before = store._group.transactions
    for i in range(40):
        with cairn.start_run(params={"i": i, "lr": 0.1}, tags={"t": "x"}):
            cairn.log_metrics({"loss": 1.0 / (i + 1), "acc": 0.5})
    cairn.flush()
    made = store._group.transactions - before
    assert 1 <= made <= 20, f"{made} index transactions for 40 runs"
    runs = client.search_runs(experiments=["g"], filter="params.lr = '0.1'", max_results=100)
    assert len(runs) == 40
    assert {r.params["i"] for r in runs} == {str(i) for i in range(40)}
    assert all(r.status.value == "FINISHED" and r.metrics["acc"] == 0.5 for r in runs)


def test_reads_in_the_process_see_pending_writes_at_once(tmp_path, monkeypatch):
    client, store = _store(tmp_path, monkeypatch, delay="30")  # the thread would wait 30 s
    with cairn.start_run(params={"a": 1}) as run:
        cairn.log_metric("m", 2.0)
    assert store._group.holds(run.id)
    got = client.get_run(run.id)  # settles first
    assert got.status.value == "FINISHED" and got.params == {"a": "1"}
    assert not store._group.holds(run.id)
    with cairn.start_run() as run2:
        cairn.log_metric("m", 3.0, step=0)
        cairn.log_metric("m", 4.0, step=1)
    assert list(client.get_metric_history(run2.id, "m").values) == [3.0, 4.0]
    assert [r.id for r in client.search_runs(experiments=["g"], order_by=["metrics.m DESC"])] \
        == [run2.id, run.id]


def test_checks_of_a_later_batch_see_the_pending_ones(tmp_path, monkeypatch):
    client, store = _store(tmp_path, monkeypatch, delay="30")
    run = client.create_run(client.get_or_create_experiment("g").id)
    client.log_batch(run.id, params={"a": 1})
    assert store._group.holds(run.id)  # in the journal; its index write is queued
    with pytest.raises(InvalidArgument, match="immutable"):
        client.log_batch(run.id, params={"a": 2})
    client.log_batch(run.id, metrics=[("x", 1.0, 0, 0)])
    client.set_terminated(run.id)
    got = client.get_run(run.id)
    assert got.params == {"a": "1"} and got.status.value == "FINISHED"
    assert len(client.get_metric_history(run.id, "x")) == 1


def test_a_writers_metric_batches_share_transactions_and_a_run_end_still_refuses(tmp_path, monkeypatch):
    client, store = _store(tmp_path, monkeypatch, delay="30")
    run = client.create_run(client.get_or_create_experiment("g").id)
    client.log_batch(run.id, params={"a": 1}, metrics=[("x", 0.0, 0, 0)])
    before = store._group.transactions
    for i in range(1, 50):  # each vouched for by the pending batch before it: no settling
        client.log_batch(run.id, metrics=[("x", float(i), i, i)], tags={"i": str(i)})
    assert store._group.transactions == before and store._group.holds(run.id)
    client.set_terminated(run.id)
    with pytest.raises(RunFinished):  # the pending end is seen: settled and refused
        client.log_batch(run.id, metrics=[("x", 99.0, 99, 99)])
    client.log_batch(run.id, tags={"after": "end"})  # tags stay editable
    h = client.get_metric_history(run.id, "x")
    assert list(h.steps) == list(range(50)) and list(h.values) == [float(i) for i in range(50)]
    got = client.get_run(run.id)
    assert got.status.value == "FINISHED" and got.tags["i"] == "49" and got.tags["after"] == "end"


def test_a_retried_batch_still_pending_is_not_written_twice(tmp_path, monkeypatch):
    from cairn.entities import RecordBatch

    client, store = _store(tmp_path, monkeypatch, delay="30")
    run = client.create_run(client.get_or_create_experiment("g").id)
    first = RecordBatch(run_id=run.id, writer_id="w1", seq=1, time=0,
                        metrics={"x": ([0], [0], [1.0])})
    second = RecordBatch(run_id=run.id, writer_id="w1", seq=2, time=0,
                         metrics={"x": ([1], [1], [2.0])})
    store.write(first)
    store.write(second)
    size = sum(f.stat().st_size for f in (tmp_path / "store" / "runs" / run.id / "journal").iterdir())
    store.write(second)  # a retry: the same writer and sequence number, still pending
    assert sum(f.stat().st_size for f in
               (tmp_path / "store" / "runs" / run.id / "journal").iterdir()) == size
    assert list(client.get_metric_history(run.id, "x").values) == [1.0, 2.0]


def _child(code: str, store: str, delay: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CAIRN_TRACKING_URI": store, "CAIRN_INDEX_DELAY": delay}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_other_processes_see_runs_after_flush_and_after_exit(tmp_path):
    store = str(tmp_path / "store")
    # Flush, then report and wait: the parent reads while the child is still alive.
    code = """
        import sys, cairn
        cairn.set_experiment("g")
        with cairn.start_run(params={"p": "v"}) as run:
            cairn.log_metric("m", 1.5)
        cairn.flush()
        print(run.id, flush=True)
        sys.stdin.readline()
    """
    env = {**os.environ, "CAIRN_TRACKING_URI": store, "CAIRN_INDEX_DELAY": "30"}
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        run_id = child.stdout.readline().strip()
        reader = _child(f"""
            import cairn
            r = cairn.Client().get_run({run_id!r})
            print(r.status.value, r.params["p"], r.metrics["m"])
        """, store, "0")
        assert reader.stdout.split() == ["FINISHED", "v", "1.5"], reader.stderr
    finally:
        child.communicate("\n", timeout=60)
    # A client-only process (no fluent API) that exits right after writing.
    done = _child("""
        import cairn
        c = cairn.Client()
        run = c.create_run(c.get_or_create_experiment("g").id, name="client-only")
        c.log_batch(run.id, params={"k": "1"}, metrics=[("m", 7.0, 0, 0)])
        c.set_terminated(run.id)
    """, store, "30")
    assert done.returncode == 0, done.stderr
    found = cairn.Client(uri=store).search_runs(experiments=["g"], filter="params.k = '1'")
    assert [(r.name, r.status.value) for r in found] == [("client-only", "FINISHED")]


def test_a_crash_with_pending_index_writes_loses_nothing(tmp_path):
    store = str(tmp_path / "store")
    crashed = _child("""
        import os, cairn
        cairn.set_experiment("g")
        with cairn.start_run(name="crashed", params={"p": "1"}) as run:
            cairn.log_metrics({"m": 0.25})
        os._exit(0)  # no exit hooks: the index writes were still queued
    """, store, "30")
    assert crashed.returncode == 0, crashed.stderr
    # The next open replays the journal.
    runs = cairn.Client(uri=str(store)).search_runs(experiments=["g"])
    assert [(r.name, r.status.value, r.params, r.metrics["m"]) for r in runs] == \
        [("crashed", "FINISHED", {"p": "1"}, 0.25)]


def test_a_server_on_a_local_store_applies_each_write_before_answering(tmp_path, monkeypatch):
    # Another worker process of the same server must see a write as soon as it is answered.
    from cairn.server.app import create_app
    from cairn.store.local import LocalStore
    from serving import ThreadedServer

    monkeypatch.setenv("CAIRN_INDEX_DELAY", "30")
    served = LocalStore(tmp_path / "store")
    with ThreadedServer(create_app(served)) as url:
        client = cairn.Client(uri=url)
        run = client.create_run(client.get_or_create_experiment("g").id, name="remote")
        client.log_batch(run.id, params={"k": "v"}, metrics=[("m", 1.0, 0, 0)])
        other_worker = LocalStore(tmp_path / "store")
        found, _ = other_worker.search_runs(None, "params.k = 'v'")
        assert [r.name for r in found] == ["remote"]
        assert served._group.transactions == 0  # nothing went through the queue
        from cairn.store import close_store

        close_store(url)


def test_a_read_sees_every_pending_batch_however_far_the_index_fell_behind(tmp_path, monkeypatch):
    """More pending batches than one transaction takes (the index fell behind during a long
    checkpoint): a read applies them all first, and never waits for its own write lock.
    Before, it applied one transaction's worth, fell back to replaying the run's journal,
    and that replay waited in BEGIN IMMEDIATE for its own open transaction: a stall."""
    import threading
    import time

    from cairn.entities import RecordBatch
    from cairn.store.local import LocalStore

    monkeypatch.setenv("CAIRN_INDEX_DELAY", "30")
    store = LocalStore(tmp_path / "s")
    exp = store.create_experiment("behind")
    ids = [f"{i:032x}" for i in range(700)]
    with store._group._apply_lock:  # the index thread can apply nothing meanwhile
        for i, rid in enumerate(ids):
            store.write(RecordBatch(run_id=rid, writer_id=f"{i:016x}", seq=1, time=1000 + i,
                                    create={"experiment_id": exp.id, "name": f"r{i}", "user": "u",
                                            "start_time": 1000 + i},
                                    params={"i": str(i)}))
    got = {}

    def read():  # newest first: the oldest 256 being applied does not make it visible
        got["params"] = [store.get_run(rid).params["i"] for rid in reversed(ids)]

    reader = threading.Thread(target=read, daemon=True)
    start = time.monotonic()
    reader.start()
    reader.join(60)
    assert not reader.is_alive(), "a read of the store's own pending runs stalled"
    assert got["params"] == [str(i) for i in reversed(range(700))]
    assert time.monotonic() - start < 30
    store.close()


def test_a_writer_faster_than_the_index_thread_applies_some_itself(tmp_path, monkeypatch):
    """The queue may lag the journal by a bounded number of batches, not without bound
    (memory, and the wait at exit: a million-run sweep waited minutes in flush())."""
    from cairn.entities import RecordBatch
    from cairn.store import group_commit
    from cairn.store.local import LocalStore

    monkeypatch.setattr(group_commit.GroupCommit, "_loop", lambda self: None)  # no index thread
    store = LocalStore(tmp_path / "s")
    exp = store.create_experiment("fast")
    for i in range(3000):
        store.write(RecordBatch(run_id=f"{i:032x}", writer_id=f"{i:016x}", seq=1, time=i,
                                create={"experiment_id": exp.id, "name": f"r{i}", "user": "u",
                                        "start_time": i}))
        assert len(store._group._items) <= group_commit._MAX_BACKLOG + 1
    assert len(store.search_runs([exp.id], max_results=5000)[0]) == 3000
    store.close()
