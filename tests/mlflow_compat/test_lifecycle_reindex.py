"""MLflow's client deletes, restores and renames a run on a Cairn server over a store
directory; `cairn reindex` (the index rebuilt from the journals) keeps all three (#17).

Before, the MLflow routes set the index row alone: a reindex brought the deleted run back
and, for Cairn's own clients, lost the new name.
"""

from __future__ import annotations

import mlflow


def test_mlflow_delete_and_rename_survive_a_reindex(client, store, cairn_client):
    exp = client.create_experiment("lifecycle-reindex")
    kept = client.create_run(exp, run_name="kept").info.run_id
    gone = client.create_run(exp, run_name="gone").info.run_id
    client.set_terminated(gone)
    client.update_run(kept, name="renamed")
    client.delete_run(gone)
    for _ in range(2):  # as served, then rebuilt from the journals
        assert client.get_run(gone).info.lifecycle_stage == "deleted"
        assert client.get_run(kept).info.run_name == "renamed"
        assert [r.info.run_id for r in client.search_runs([exp])] == [kept]
        deleted = client.search_runs([exp], run_view_type=mlflow.entities.ViewType.DELETED_ONLY)
        assert [r.info.run_id for r in deleted] == [gone]
        # Cairn reads the same: the name and lifecycle are the run's, not tags.
        run = cairn_client.get_run(gone)
        assert run.lifecycle == "deleted" and "cairn.run.lifecycle" not in run.tags
        assert cairn_client.get_run(kept).name == "renamed"
        assert [r.id for r in cairn_client.search_runs(exp)] == [kept]
        store.reindex()
    client.restore_run(gone)
    store.reindex()
    assert client.get_run(gone).info.lifecycle_stage == "active"
    assert sorted(r.info.run_id for r in client.search_runs([exp])) == sorted([kept, gone])


def test_an_mlflow_experiment_delete_survives_a_reindex(client, store, cairn_client):
    exp = client.create_experiment("exp-delete-reindex")
    run = client.create_run(exp).info.run_id
    client.delete_experiment(exp)
    store.reindex()
    assert client.get_experiment(exp).lifecycle_stage == "deleted"
    assert cairn_client.get_run(run).lifecycle == "deleted"
    client.restore_experiment(exp)
    assert client.get_experiment(exp).lifecycle_stage == "active"
    assert cairn_client.get_run(run).lifecycle == "active"
