"""Review of the trash through the MLflow routes, with the real mlflow client, against what
``mlflow server`` answers (its SQL store)."""

from __future__ import annotations

import pytest
from serving import ThreadedServer


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    from cairn.server.app import create_app
    from cairn.store.local import LocalStore

    store = LocalStore(tmp_path_factory.mktemp("store"))
    with ThreadedServer(create_app(store)) as served:
        _STORES[served] = store
        yield served
    store.close()


@pytest.fixture
def client(url, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return MlflowClient(url, registry_uri=url)


def test_deleting_a_deleted_experiment_or_restoring_a_live_one_is_not_found(client):
    """mlflow server looks the experiment up among the active ones to delete it and among
    the deleted ones to restore it: a second delete, or a restore of a live experiment,
    answers RESOURCE_DOES_NOT_EXIST and changes nothing."""
    from mlflow.exceptions import MlflowException

    exp = client.create_experiment("twice")
    run = client.create_run(exp).info.run_id
    with pytest.raises(MlflowException) as e:
        client.restore_experiment(exp)
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert f"No Experiment with id={exp} exists" in e.value.message
    client.delete_experiment(exp)
    with pytest.raises(MlflowException) as e:
        client.delete_experiment(exp)
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert client.get_experiment(exp).lifecycle_stage == "deleted"
    client.restore_experiment(exp)
    assert client.get_experiment(exp).lifecycle_stage == "active"
    assert client.get_run(run).info.lifecycle_stage == "active"


def test_a_deleted_experiments_tags_cannot_move_its_deletion_time(client):
    """The time an experiment went to the trash is its tag cairn.deleted_at, which purging
    by age reads; mlflow server refuses tag changes on a deleted experiment (INVALID_PARAMETER
    _VALUE, "must be in the 'active' state"), so a caller cannot make `cairn gc` purge it
    before its CAIRN_TRASH_DAYS are over."""
    import time

    from mlflow.exceptions import MlflowException

    from cairn.lifecycle import trash

    exp = client.create_experiment("backdated")
    client.delete_experiment(exp)
    for call in (lambda: client.set_experiment_tag(exp, trash.DELETED_AT_TAG, "0"),
                 lambda: client.delete_experiment_tag(exp, trash.DELETED_AT_TAG)):
        with pytest.raises(MlflowException) as e:
            call()
        assert e.value.error_code == "INVALID_PARAMETER_VALUE"
        assert "must be in the 'active' state" in e.value.message
    tags = client.get_experiment(exp).tags
    assert int(tags[trash.DELETED_AT_TAG]) > time.time() * 1000 - 600_000


def test_a_deleted_mlflow_run_left_running_is_purged(client, url):
    """Runs the mlflow client makes have no heartbeat (Cairn stores them as never stale);
    a crashed one stays RUNNING for ever, and deleting such runs is how MLflow users clean
    up. Emptying the trash must purge it, not keep it as "a writer is still logging"."""
    from cairn.lifecycle import trash

    exp = client.create_experiment("crashed")
    run = client.create_run(exp).info.run_id  # never ended
    client.delete_run(run)
    store = _store_of(url)
    report = trash.purge(store, older_than_ms=None, now_ms=_now(), dry_run=True, actor="root")
    assert run in [i.identifier for i in report.purged], report.kept


def _now() -> int:
    import time

    return int(time.time() * 1000)


_STORES: dict[str, object] = {}


def _store_of(url):
    return _STORES[url]


def test_keep_days_ages_a_run_the_mlflow_client_left_running(client, url):
    """Retention's keep_days ages a run not ended by its last heartbeat; a run the mlflow
    client made has none (stored as never stale), so a crashed one must age from its start,
    not stay young for ever."""
    from cairn.lifecycle import retention

    exp = client.create_experiment("old-crashed")
    run = client.create_run(exp).info.run_id  # never ended
    store = _store_of(url)
    retention.set_policy(store, "experiment", exp, {"keep_days": 1}, actor="root")
    later = _now() + 3 * retention.DAY_MS
    assert [a.target for a in retention.plan(store, later)] == [f"run:{run}"]
    assert retention.plan(store, _now()) == []  # a day has not passed yet
