"""Read your writes, in one process, on every backend.

Whatever the fluent API or any Client of a process has accepted is visible to every
other Client and fluent call of that process: the run, its params and tags at once,
metrics once ``flush()`` returns.  The case that failed: ``client.log_batch(run.id, ...)``
inside ``with cairn.start_run() as run`` answered "run does not exist", because the run's
creation was still in the fluent writer's buffer.
"""

from __future__ import annotations

import time
import uuid

import pytest

import cairn
from cairn.errors import InvalidArgument, RunFinished

from pg_fixtures import pg_database  # noqa: F401  (a fixture)


@pytest.fixture(params=["memory", "local", pytest.param("postgres", marks=pytest.mark.postgres),
                        "http"])
def uri(request, tmp_path, monkeypatch, cairn_state):
    """A tracking URI of each backend, made the fluent API's."""
    monkeypatch.delenv("CAIRN_TRACKING_URI", raising=False)
    server = None
    if request.param == "memory":
        u = f"memory://rw-{uuid.uuid4().hex}"
    elif request.param == "local":
        u = str(tmp_path / "store")
    elif request.param == "postgres":
        from pg_fixtures import create_schema

        u = create_schema(request.getfixturevalue("pg_database"))
    else:  # the remote client against a real server on SQLite
        from serving import ThreadedServer

        from cairn.cas import ObjectStore
        from cairn.server import ServerSettings, create_app
        from cairn.store.sql.store import SqlStore

        monkeypatch.setenv("CAIRN_SPOOL_DIR", str(tmp_path / "spool"))
        backend = SqlStore(f"sqlite:///{tmp_path / 'server.db'}", ObjectStore.local(tmp_path / "objects"))
        server = ThreadedServer(create_app(backend, settings=ServerSettings(check_artifact_objects=False)))
        u = server.__enter__()
    cairn.set_tracking_uri(u)
    yield u
    cairn_state.reset(end_runs=True)  # the runs end and the stores close while the server is up
    if server is not None:
        server.__exit__(None, None, None)
        backend.close()


def test_client_log_batch_into_a_fluent_run(uri):
    client = cairn.Client(uri)
    cairn.set_experiment("rw")
    ids = []
    for i in range(25):
        with cairn.start_run(params={"i": i}) as run:
            cairn.log_metric("x", 1.0, step=0)
            # The most common MLflow pattern: a second client writes into the active run.
            client.log_batch(run.id, metrics=[("loss", 1.0 / (i + 1), 0, int(time.time() * 1000))],
                             tags={"by": "client"})
            ids.append(run.id)
    for i, rid in enumerate(ids):
        got = client.get_run(rid)
        assert got.status.value == "FINISHED"
        assert got.params == {"i": str(i)} and got.tags["by"] == "client"
        assert set(got.metrics) == {"x", "loss"}


def test_a_fluent_run_is_visible_to_another_client_at_once(uri):
    cairn.set_experiment("rw")
    other = cairn.Client(uri)  # not the fluent API's own client
    with cairn.start_run(params={"lr": 0.1}, tags={"team": "a"}) as run:
        cairn.set_tag("phase", "warmup")
        got = other.get_run(run.id)  # no flush in between
        assert got.status.value == "RUNNING"
        assert got.params == {"lr": "0.1"}
        assert got.tags["team"] == "a" and got.tags["phase"] == "warmup"
        hits = other.search_runs("rw", filter="params.lr = '0.1' AND tags.phase = 'warmup'")
        assert [r.id for r in hits] == [run.id]
        for step in range(50):
            cairn.log_metric("loss", 1.0 / (step + 1), step=step)
        cairn.flush()
        assert len(other.get_metric_history(run.id, "loss")) == 50


def test_a_client_write_is_checked_against_the_buffered_params(uri):
    client = cairn.Client(uri)
    with cairn.start_run(params={"seed": 1}) as run:
        # The fluent writer's seed=1 is delivered first, so changing it is refused.
        with pytest.raises(InvalidArgument, match="immutable"):
            client.log_param(run.id, "seed", 2)
        client.log_param(run.id, "other", 3)
    assert client.get_run(run.id).params == {"seed": "1", "other": "3"}


def test_a_client_ending_a_fluent_run_ends_it_for_the_fluent_api_too(uri):
    client = cairn.Client(uri)
    run = cairn.start_run()
    cairn.log_metric("m", 1.0)
    client.set_terminated(run.id, "FAILED")
    assert client.get_run(run.id).status.value == "FAILED"
    with pytest.raises(RunFinished):
        client.log_metric(run.id, "m", 2.0, step=1)
    # The fluent side's buffered metric and end are refused by the store: said, not lost silently.
    with pytest.raises(RunFinished):
        cairn.end_run()
    assert cairn.active_run() is None
    assert client.get_run(run.id).status.value == "FAILED"
