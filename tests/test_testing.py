"""cairn.testing: the pytest plugin users get, and the fluent state's reset behind it."""

import subprocess
import sys
from pathlib import Path

import pytest

import cairn
from cairn import RunStatus, _state, clock


def test_the_plugin_is_on_through_its_entry_point(pytestconfig):
    import cairn.testing

    assert pytestconfig.pluginmanager.get_plugin("cairn.testing") is cairn.testing


def test_import_cairn_imports_neither_pytest_nor_the_plugin():
    code = "import sys, cairn; print('pytest' in sys.modules, 'cairn.testing' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_cairn_store_is_a_fresh_local_store_for_the_fluent_api(cairn_store):
    assert isinstance(cairn_store, Path) and not cairn_store.exists()
    assert cairn.get_tracking_uri() == str(cairn_store)
    with cairn.start_run(params={"lr": 0.1}) as run:
        cairn.log_metric("loss", 0.5)
    assert cairn.Client().get_run(run.id).metrics == {"loss": 0.5}
    assert (cairn_store / "index.db").exists()


def test_cairn_memory_store_is_fresh(cairn_memory_store):
    assert cairn_memory_store.startswith("memory://")
    assert cairn.get_tracking_uri() == cairn_memory_store
    assert cairn.Client().search_runs() == []
    with cairn.start_run() as run:
        cairn.log_param("a", 1)
    assert [r.id for r in cairn.Client().search_runs()] == [run.id]


def test_cairn_server_serves_a_fresh_store(cairn_server):
    pytest.importorskip("httpx")
    cairn.set_tracking_uri(cairn_server)
    cairn.set_experiment("remote")
    with cairn.start_run() as run:
        cairn.log_metric("acc", 0.9)
    cairn.flush()
    r = cairn.Client(cairn_server).get_run(run.id)
    assert r.status is RunStatus.FINISHED and r.metrics == {"acc": 0.9}


def test_cairn_clock_stamps_runs_and_points(cairn_clock, cairn_store):
    start = cairn_clock.now_ms()
    assert clock.now_ms() == start  # frozen
    with cairn.start_run() as run:
        cairn.log_metric("x", 1.0)
        assert cairn_clock.advance(2.5) == start + 2500
        cairn.log_metric("x", 2.0)
        cairn_clock.advance(ms=10)
    r = cairn.Client().get_run(run.id)
    assert (r.start_time, r.end_time) == (start, start + 2510)
    assert cairn.Client().get_metric_history(run.id, "x").timestamps.tolist() == [start, start + 2500]
    cairn_clock.set(1_000)
    assert clock.now_ms() == 1_000


def test_reset_forgets_uri_experiment_clients_and_runs_without_ending_them(cairn_state, tmp_path):
    cairn.set_tracking_uri(tmp_path / "a")
    cairn.set_experiment("e")
    run = cairn.start_run()
    cairn.log_metric("m", 1.0)
    assert cairn_state.clients and cairn.active_run() is run
    cairn_state.reset()
    assert cairn.active_run() is None and not cairn_state.clients
    assert cairn_state.uri is None and cairn_state.experiment_name is None
    assert cairn.get_tracking_uri() != str(tmp_path / "a")
    # Nothing ended it, but what it logged is in its store.
    r = cairn.Client(str(tmp_path / "a")).get_run(run.id)
    assert r.status is RunStatus.RUNNING and r.metrics == {"m": 1.0}


def test_reset_can_end_the_runs(cairn_state, tmp_path):
    cairn.set_tracking_uri(tmp_path / "a")
    outer = cairn.start_run()
    inner = cairn.start_run(nested=True)
    _state.reset(end_runs=True)
    assert cairn.active_run() is None
    c = cairn.Client(str(tmp_path / "a"))
    assert {c.get_run(outer.id).status, c.get_run(inner.id).status} == {RunStatus.FINISHED}


def test_reset_closes_the_process_stores(cairn_state, tmp_path):
    from cairn.store import open_store

    store = open_store(str(tmp_path / "s"))
    assert open_store(str(tmp_path / "s")) is store
    cairn_state.reset()
    assert open_store(str(tmp_path / "s")) is not store  # a new one: the old one was closed


def test_a_thread_that_started_nothing_sees_no_run_after_a_reset(cairn_store):
    import threading

    cairn.start_run()
    _state.reset()
    seen = []
    t = threading.Thread(target=lambda: seen.append(cairn.active_run()))
    t.start()
    t.join()
    assert seen == [None]


def test_the_state_lives_in_one_object():
    import cairn.fluent

    # The fluent module keeps no state of its own: every global it had is on STATE.
    for name in ("_uri", "_experiment", "_experiment_name", "_clients", "_active", "_global_stack",
                 "_lock", "_installed"):
        assert not hasattr(cairn.fluent, name), name
