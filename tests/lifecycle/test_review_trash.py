"""Review of the trash (issue #21): cases the first tests did not cover."""

from __future__ import annotations

import cairn
from cairn.lifecycle import trash


def _add(client, tmp_path, name: str, text: str):
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "rows.csv").write_text(text)
    return client.data.add(src, name)


def test_a_purge_keeps_a_version_read_by_a_live_models_source_run(tmp_path):
    """The guide: a purge keeps "a data set version that is an input of a live model
    version", and an input is one "named in the version's data sets, or read by the run it
    was registered from".  A run that reads the data set after its model was registered
    (an evaluation set) is such a reader: the delete asks for force, so the purge must keep
    it too, or a forced delete becomes a permanent one."""
    client = cairn.Client(str(tmp_path / "store"), user="alice")
    _add(client, tmp_path, "tx", "a\n1\n")
    _add(client, tmp_path, "tx", "a\n1\n2\n")
    run = client.create_run(client.create_experiment("e").id, name="train")
    mv = client.register_model("fraud", {"w": 1}, flavor="pickle", run_id=run.id)
    client.log_input(run.id, "tx@1")
    client.set_terminated(run.id)

    client.delete_dataset_version("tx@1", force=True)
    report = client.empty_trash()
    assert report.purged == []
    [(item, why)] = report.kept
    assert item.identifier == "tx@1" and f"fraud/{mv.version}" in why
    assert client.restore_dataset_version("tx@1").version == 1


def test_a_restore_that_races_a_purge_is_never_lost(tmp_path, monkeypatch):
    """A restore that lands while the purge is removing the same run (after the purge
    listed it) either wins (the run is back, whole) or loses (it fails, and the run is
    gone for good): never a restore that says it worked and a run that is gone, with a
    stray journal left behind that a reindex would replay into a half run."""
    import os
    import threading

    from cairn.errors import CairnError

    store = str(tmp_path / "store")
    client = cairn.Client(store, user="alice")
    run = client.create_run(client.create_experiment("e").id, name="r")
    client.log_param(run.id, "p", "1")
    client.set_terminated(run.id)
    client.delete_run(run.id)

    outcome: dict[str, object] = {}

    def restore():
        try:
            outcome["restored"] = cairn.Client(store, user="bob").restore_run(run.id).lifecycle
        except CairnError as exc:
            outcome["error"] = exc

    real = os.replace

    def racing(src, dst):
        if os.path.basename(os.path.dirname(str(dst))) == "purging" and not outcome:
            # Another process restores the run now; give it time to finish if it can.
            t = threading.Thread(target=restore)
            t.start()
            t.join(2)
            outcome.setdefault("thread", t)
        return real(src, dst)

    monkeypatch.setattr(os, "replace", racing)
    client.empty_trash()
    monkeypatch.setattr(os, "replace", real)
    outcome["thread"].join(60)  # type: ignore[attr-defined]
    if outcome.get("restored") == "active":
        back = client.get_run(run.id)
        assert back.lifecycle == "active" and back.params == {"p": "1"}
    else:
        assert "error" in outcome, outcome
        assert not (tmp_path / "store" / "runs" / run.id).exists()
        assert trash.list_trash(client.store) == []


def test_an_experiment_restore_that_races_a_purge_is_never_lost(tmp_path, monkeypatch):
    """The same for an experiment: a restore that lands while its purge runs either gets the
    experiment back with its runs, or fails and leaves nothing of it (no experiment file for
    a reindex to bring back empty)."""
    import os
    import threading

    from cairn.errors import CairnError

    store = str(tmp_path / "store")
    client = cairn.Client(store, user="alice")
    exp = client.create_experiment("e")
    run = client.create_run(exp.id, name="r")
    client.log_param(run.id, "p", "1")
    client.set_terminated(run.id)
    client.delete_experiment(exp.id)

    outcome: dict[str, object] = {}

    def restore():
        try:
            outcome["restored"] = cairn.Client(store, user="bob").restore_experiment(
                exp.id).lifecycle
        except CairnError as exc:
            outcome["error"] = exc

    real = os.replace

    def racing(src, dst):
        if os.path.basename(os.path.dirname(str(dst))) == "purging" and not outcome:
            t = threading.Thread(target=restore)
            t.start()
            t.join(2)
            outcome.setdefault("thread", t)
        return real(src, dst)

    monkeypatch.setattr(os, "replace", racing)
    client.empty_trash()
    monkeypatch.setattr(os, "replace", real)
    outcome["thread"].join(60)  # type: ignore[attr-defined]
    exp_file = tmp_path / "store" / "experiments" / f"{exp.id}.json"
    if outcome.get("restored") == "active":
        assert client.get_experiment(exp.id).lifecycle == "active" and exp_file.exists()
        assert client.get_run(run.id).params == {"p": "1"}
    else:
        assert "error" in outcome, outcome
        assert not exp_file.exists()
        assert not (tmp_path / "store" / "runs" / run.id).exists()
        assert trash.list_trash(client.store) == []


def test_a_run_restored_out_of_a_deleted_experiment_is_not_orphaned_by_its_purge(tmp_path):
    """A run can be restored while its experiment is in the trash (as MLflow allows). Purging
    that experiment must not leave the live run pointing at an experiment that no longer
    exists: the experiment is kept, and the report says why and what to do."""
    client = cairn.Client(str(tmp_path / "store"), user="alice")
    exp = client.create_experiment("e")
    live = client.create_run(exp.id, name="keep-me")
    client.log_param(live.id, "p", "1")
    client.set_terminated(live.id)
    gone = client.create_run(exp.id, name="drop-me")
    client.set_terminated(gone.id)
    client.delete_experiment(exp.id)
    client.restore_run(live.id)

    report = client.empty_trash()
    assert report.purged == []
    [(item, why)] = report.kept
    assert item.kind == "experiment" and live.id in why
    assert client.get_experiment(exp.id).lifecycle == "deleted"
    assert client.get_run(live.id).params == {"p": "1"}
    client.restore_experiment(exp.id)
    assert client.get_run(live.id).experiment_id == exp.id
