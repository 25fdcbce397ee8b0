"""One suite, every store backend: the protocol's semantics must not depend on the backend."""

import math
import time

import numpy as np
import pytest

from cairn.entities import FileEntry, RecordBatch, RunStatus
from cairn.errors import AlreadyExists, InvalidArgument, NotFound, RunFinished
from cairn.store.local import LocalStore
from cairn.store.memory import MemoryStore


from pg_fixtures import pg_database  # noqa: F401  (a fixture)


@pytest.fixture(params=["memory", "sqlite",
                        pytest.param("postgres", marks=pytest.mark.postgres), "http"])
def store(request, tmp_path):
    if request.param == "http":  # the remote client against a real server on SQLite
        from serving import ThreadedServer

        from cairn.server import ServerSettings, create_app
        from cairn.store.http import HttpStore
        from cairn.store.sql.store import SqlStore

        from cairn.cas import ObjectStore

        backend = SqlStore(f"sqlite:///{tmp_path / 'server.db'}",
                           ObjectStore.local(tmp_path / "objects"))
        app = create_app(backend, settings=ServerSettings(check_artifact_objects=False))
        with ThreadedServer(app) as url:
            s = HttpStore(url, spool_dir=tmp_path / "spool", drain_timeout=0)
            yield s
            s.close()
        backend.close()
        return
    if request.param == "memory":
        s = MemoryStore()
    elif request.param == "sqlite":
        s = LocalStore(tmp_path / "s")
    else:  # the server-side store on PostgreSQL, one fresh schema per test
        from pg_fixtures import create_schema

        from cairn.store.sql.store import SqlStore

        s = SqlStore(create_schema(request.getfixturevalue("pg_database")))
    yield s
    s.close()


class Writer:
    """Hands out batches with increasing sequence numbers, like a real writer."""

    def __init__(self, store, run_id, wid=None):
        self.store, self.run_id, self.wid, self.seq = store, run_id, wid or f"w-{run_id}", 0

    def __call__(self, **fields):
        self.seq += 1
        fields.setdefault("time", int(time.time() * 1000) + self.seq)
        self.store.write(RecordBatch(run_id=self.run_id, writer_id=self.wid, seq=self.seq, **fields))


def make_run(store, run_id="r1", exp=None, **create):
    exp = exp or store.create_experiment(f"exp-{run_id}")
    w = Writer(store, run_id)
    w(create={"experiment_id": exp.id, "name": create.pop("name", run_id), "user": "u",
              "start_time": create.pop("start_time", 1000), **create})
    return w


def series(steps, values, t0=5000):
    return (np.asarray(steps), np.asarray([t0 + i for i in range(len(steps))]), np.asarray(values, float))


def test_experiments(store):
    a = store.create_experiment("a", {"team": "x"})
    assert store.get_experiment(a.id) == a
    assert store.get_experiment_by_name("a") == a
    assert store.get_experiment_by_name("zzz") is None
    with pytest.raises(AlreadyExists):
        store.create_experiment("a")
    with pytest.raises(NotFound):
        store.get_experiment("nope")
    with pytest.raises(InvalidArgument):
        store.create_experiment("")
    b = store.create_experiment("b")
    assert [e.name for e in store.list_experiments()] == ["a", "b"]
    assert a.tags == {"team": "x"} and b.id != a.id


def test_run_lifecycle_and_reads(store):
    w = make_run(store)
    w(params={"lr": "0.1"}, tags={"t": "1"})
    w(metrics={"loss": series([0, 1, 2], [3.0, 2.0, 1.0])})
    run = store.get_run("r1")
    assert run.status is RunStatus.RUNNING and run.end_time is None
    assert run.params == {"lr": "0.1"} and run.tags == {"t": "1"}
    assert run.metrics == {"loss": 1.0}
    s = run.metric_summaries["loss"]
    assert (s.min, s.max, s.count, s.step) == (1.0, 3.0, 3, 2)
    w(status=RunStatus.FINISHED, end_time=9000)
    run = store.get_run("r1")
    assert run.status is RunStatus.FINISHED and run.end_time == 9000
    with pytest.raises(NotFound):
        store.get_run("missing")


def test_run_states_tell_each_run_s_experiment_and_lifecycle(store):
    from cairn.store.base import RunStateLookup

    if not isinstance(store, RunStateLookup):
        pytest.skip("the remote client has no run-state lookup (servers use their own store)")
    exp = store.create_experiment("states")
    make_run(store, "r1", exp)
    w2 = make_run(store, "r2", exp)
    w2(tags={"cairn.run.lifecycle": "deleted"})
    assert store.run_states(["r2", "r1", "missing", "r1"]) == {
        "r1": (exp.id, "active"), "r2": (exp.id, "deleted")}
    assert store.run_states([]) == {}
    w2(tags={"cairn.run.lifecycle": "active"}, time=int(time.time() * 1000) + 10_000)
    assert store.run_states(["r2"]) == {"r2": (exp.id, "active")}


def test_metric_history_exact_with_nan_and_inf(store):
    w = make_run(store)
    vals = [1.5, math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, 5e-324]
    w(metrics={"m": series(range(len(vals)), vals)})
    w(metrics={"m": series(range(len(vals), 2 * len(vals)), vals)})
    h = store.get_metric_history("r1", "m")
    assert len(h) == 2 * len(vals)
    assert h.steps.tolist() == list(range(2 * len(vals)))
    got = h.values.tolist()
    for a, b in zip(got, vals + vals):
        assert (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    run = store.get_run("r1")
    assert run.metrics["m"] == 5e-324
    assert run.metric_summaries["m"].max == math.inf and run.metric_summaries["m"].min == -math.inf


def test_history_out_of_order_segments_are_sorted(store):
    w = make_run(store)
    w(metrics={"m": series([10, 11], [1, 2])})
    w(metrics={"m": series([0, 1], [3, 4])})
    h = store.get_metric_history("r1", "m")
    assert h.steps.tolist() == [0, 1, 10, 11] and h.values.tolist() == [3, 4, 1, 2]
    assert store.get_run("r1").metrics["m"] == 2  # latest = highest step, not last written
    assert len(store.get_metric_history("r1", "other")) == 0
    with pytest.raises(NotFound):
        store.get_metric_history("nope", "m")


def test_latest_nan_value(store):
    w = make_run(store)
    w(metrics={"m": series([0, 1], [1.0, math.nan])})
    run = store.get_run("r1")
    assert math.isnan(run.metrics["m"])
    assert run.metric_summaries["m"].min == 1.0


def test_summaries_merge_across_batches(store):
    # Each batch merges with the summaries the run's document holds: NaN, infinities,
    # an older step written later, and counts that add up.
    w = make_run(store)
    w(metrics={"m": series([0, 1], [1.0, math.nan]), "k": series([0], [2.0])})
    w(metrics={"m": series([2], [math.inf])})
    w(metrics={"m": series([0], [-5.0]), "k": series([1], [-math.inf])})
    run = store.get_run("r1")
    assert run.metrics["m"] == math.inf and run.metrics["k"] == -math.inf
    m, k = run.metric_summaries["m"], run.metric_summaries["k"]
    assert (m.min, m.max, m.count, m.step) == (-5.0, math.inf, 4, 2)
    assert (k.min, k.max, k.count, k.step) == (-math.inf, 2.0, 2, 1)
    w(metrics={"m": series([3], [7.0])})
    run = store.get_run("r1")
    assert run.metrics["m"] == 7.0 and run.metric_summaries["m"].count == 5
    assert [r.id for r in store.search_runs(None, "metrics.m = 7")[0]] == ["r1"]


def test_params_are_immutable(store):
    w = make_run(store)
    w(params={"lr": "0.1"})
    w(params={"lr": "0.1"})  # the same value again is fine
    with pytest.raises(InvalidArgument, match="immutable"):
        w(params={"lr": "0.2"})
    assert store.get_run("r1").params == {"lr": "0.1"}


def test_finished_run_is_immutable_but_tags_stay_editable(store):
    w = make_run(store)
    w(metrics={"m": series([0], [1.0])}, status=RunStatus.FINISHED, end_time=2000)
    with pytest.raises(RunFinished):
        w(metrics={"m": series([1], [2.0])})
    with pytest.raises(RunFinished):
        w(params={"x": "1"})
    w(tags={"note": "edited later"})
    w(deleted_tags=("note",))
    w(tags={"k": "v"})
    run = store.get_run("r1")
    assert run.tags == {"k": "v"} and len(store.get_metric_history("r1", "m")) == 1


def test_writes_are_idempotent_per_writer_seq(store):
    make_run(store)
    batch = RecordBatch(run_id="r1", writer_id="w2", seq=1, time=2000,
                        metrics={"m": series([0, 1], [1.0, 2.0])})
    store.write(batch)
    store.write(batch)  # a retry after an uncertain failure
    assert len(store.get_metric_history("r1", "m")) == 2
    assert store.get_run("r1").metric_summaries["m"].count == 2


def test_a_store_taking_prepared_writes_says_which_were_replays(store):
    """What a server answers ``applied`` or ``duplicate`` with (the stores a server serves)."""
    from cairn.store import segments as seglib
    from cairn.store.base import PreparedWrites

    if not isinstance(store, PreparedWrites):
        pytest.skip("only the stores a server serves take prepared writes")
    make_run(store)
    batch = RecordBatch(run_id="r1", writer_id="w3", seq=1, time=2000,
                        metrics={"m": series([0, 1], [1.0, 2.0])})
    segs = [seglib.prepare(k, *a) for k, a in batch.metrics.items()]
    assert store.write_prepared(batch, segs) is True
    assert store.write_prepared(batch, segs) is False  # sent again
    assert len(store.get_metric_history("r1", "m")) == 2


def test_unknown_run_write_is_rejected(store):
    with pytest.raises(NotFound):
        store.write(RecordBatch(run_id="ghost", writer_id="w", seq=1, time=1, tags={"a": "b"}))


def test_search_filters_orders_and_pages(store):
    exp = store.create_experiment("e")
    for i in range(7):
        w = make_run(store, f"r{i}", exp=exp, start_time=1000 + i)
        w(params={"lr": str(0.1 * (i % 3))}, tags={"even": str(i % 2 == 0)},
          metrics={"acc": series([0], [i / 10])})
    runs, tok = store.search_runs([exp.id], "metrics.acc >= 0.2 AND tags.even = 'True'",
                                  ["metrics.acc DESC"], 10, None)
    assert [r.id for r in runs] == ["r6", "r4", "r2"] and tok is None
    page1, tok = store.search_runs([exp.id], "", ["metrics.acc ASC"], 3, None)
    page2, tok2 = store.search_runs([exp.id], "", ["metrics.acc ASC"], 3, tok)
    page3, tok3 = store.search_runs([exp.id], "", ["metrics.acc ASC"], 3, tok2)
    assert [r.id for r in page1 + page2 + page3] == [f"r{i}" for i in range(7)]
    assert tok3 is None
    default, _ = store.search_runs(None, "", (), 100, None)
    assert [r.id for r in default] == [f"r{i}" for i in reversed(range(7))]  # newest first
    with pytest.raises(InvalidArgument):
        store.search_runs(None, "metrics.acc >>> 1", (), 10, None)
    for bad in (0, -1, True, "10", 2.5):  # a bool is an int to Python, not a page size
        with pytest.raises(InvalidArgument, match="max_results"):
            store.search_runs(None, "", (), bad, None)


def test_artifact_entries(store):
    w = make_run(store)
    a = FileEntry("model/w.bin", 10, "ab" * 32)
    b = FileEntry("big.bin", 10_000_000, "cd" * 32, (("ef" * 32, 5_000_000), ("01" * 32, 5_000_000)))
    w(artifacts=(a, b))
    assert store.list_artifacts("r1") == [b, a]
    with pytest.raises(NotFound):
        store.list_artifacts("nope")


def test_heartbeat_and_stale_runs(store, monkeypatch):
    monkeypatch.setenv("CAIRN_HEARTBEAT_TIMEOUT", "1")
    exp = store.create_experiment("e")
    old = int(time.time() * 1000) - 10_000
    Writer(store, "r1")(create={"experiment_id": exp.id, "start_time": old}, time=old)
    run = store.get_run("r1")
    assert run.status is RunStatus.KILLED and run.end_time == old  # its heartbeat is old
    store.heartbeat(["r1"], int(time.time() * 1000))
    assert store.get_run("r1").status is RunStatus.RUNNING  # heard from again


@pytest.mark.parametrize("odd", ["a/b", "..", ".", "x" * 100, "a b", "%2F", "r1/metrics"])
def test_an_id_no_run_can_have_is_not_found(store, odd):
    make_run(store)
    with pytest.raises(NotFound):
        store.get_run(odd)
    with pytest.raises(NotFound):
        store.get_metric_history(odd, "loss")
    with pytest.raises(NotFound):
        store.list_artifacts(odd)


def test_a_creation_is_checked_and_applied_whole(store):
    """What a run's creation batch may carry, and what it may not do, on every backend
    (PostgreSQL applies it in two round trips, apart from the other backends' path)."""
    exp = store.create_experiment("home")
    with pytest.raises(NotFound):  # an experiment id no store gave, and no name to join
        store.write(RecordBatch(run_id="lost", writer_id="w-lost", seq=1, time=1000,
                                create={"experiment_id": "9999", "name": "lost"}))
    with pytest.raises(NotFound):
        store.get_run("lost")
    w = Writer(store, "r1")
    w(create={"experiment_id": exp.id, "name": "first", "user": "u", "start_time": 1000},
      params={"lr": "0.1", "depth": "3"}, tags={"a": "1", "b": "2"},
      metrics={f"m{i}": series([0, 1], [i, math.nan if i == 2 else i + 0.5]) for i in range(4)})
    w(deleted_tags=("a",), tags={"c": "3"}, metrics={"m0": series([2], [math.inf])})
    run = store.get_run("r1")
    assert (run.name, run.experiment_id, run.params) == ("first", exp.id,
                                                         {"lr": "0.1", "depth": "3"})
    assert run.tags == {"b": "2", "c": "3"}
    assert run.metrics["m0"] == math.inf and run.metrics["m1"] == 1.5
    assert math.isnan(run.metrics["m2"])
    assert run.metric_summaries["m0"].count == 3 and run.metric_summaries["m2"].min == 2.0
    # A creation record sent again for the run (another writer's) changes none of it.
    Writer(store, "r1", wid="w-again")(create={"experiment_id": exp.id, "name": "renamed",
                                               "user": "v", "start_time": 5})
    again = store.get_run("r1")
    assert (again.name, again.user, again.start_time) == ("first", "u", 1000)
    assert again.tags == run.tags and again.params == run.params


def test_a_rename_and_a_delete_are_the_run_s_attributes_and_the_latest_wins(store):
    """The reserved tags cairn.run.name / cairn.run.lifecycle (#17) set the run's name and
    lifecycle, never show among its tags, and the latest change wins whatever order
    batches come in (a reindex replays writers by id; `cairn sync` sends one journal
    after another)."""
    w = make_run(store)
    w(status=RunStatus.FINISHED, end_time=2000)  # finished runs too
    w(tags={"cairn.run.name": "renamed", "cairn.run.lifecycle": "deleted", "k": "v"},
      time=10_000)
    run = store.get_run("r1")
    assert (run.name, run.lifecycle, dict(run.tags)) == ("renamed", "deleted", {"k": "v"})
    assert store.search_runs(None)[0] == []
    assert [r.id for r in store.search_runs(None, lifecycle="deleted")[0]] == ["r1"]
    assert [r.id for r in store.search_runs(None, lifecycle=None)[0]] == ["r1"]
    # An older change from another writer, arriving later, changes nothing.
    Writer(store, "r1", wid="w-older")(tags={"cairn.run.lifecycle": "active",
                                              "cairn.run.name": "older"}, time=9_000)
    run = store.get_run("r1")
    assert (run.name, run.lifecycle) == ("renamed", "deleted")
    Writer(store, "r1", wid="w-newer")(tags={"cairn.run.lifecycle": "active"}, time=11_000)
    run = store.get_run("r1")
    assert (run.name, run.lifecycle) == ("renamed", "active")
    # Within one millisecond the higher writer id wins, in whichever order they arrive.
    Writer(store, "r1", wid="w-z")(tags={"cairn.run.name": "z"}, time=12_000)
    Writer(store, "r1", wid="w-a")(tags={"cairn.run.name": "a"}, time=12_000)
    assert store.get_run("r1").name == "z"
    with pytest.raises(InvalidArgument):
        w(tags={"cairn.run.lifecycle": "purged"})
    with pytest.raises(InvalidArgument):
        w(deleted_tags=("cairn.run.name",))
    with pytest.raises(InvalidArgument):
        w(tags={"cairn.run.name": ""})
    assert store.get_run("r1").lifecycle == "active"
    if isinstance(store, LocalStore):  # rebuilt from the journals: the same
        store.reindex()
        run = store.get_run("r1")
        assert (run.name, run.lifecycle, dict(run.tags)) == ("z", "active", {"k": "v"})
