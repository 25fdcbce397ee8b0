"""Review of the trash (issue #21): cases the first tests did not cover."""

from __future__ import annotations

import cairn


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
