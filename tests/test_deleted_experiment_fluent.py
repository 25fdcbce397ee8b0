"""The fluent API refuses to start a run in a deleted experiment, with a clear error, and
starts one again once the experiment is restored."""

import pytest

import cairn
from cairn.errors import InvalidArgument


def test_start_run_in_a_deleted_experiment_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("CAIRN_TRACKING_URI", str(tmp_path / "store"))
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    client = cairn.Client()
    exp = client.create_experiment("gone")
    client.delete_experiment(exp.id)
    cairn.set_experiment("gone")
    with pytest.raises(InvalidArgument, match="cairn experiments restore"):
        cairn.start_run()
    assert cairn.active_run() is None
    client.restore_experiment(exp.id)
    with cairn.start_run() as run:
        run.log_metric("x", 1.0)
    assert client.get_run(run.id).status == "FINISHED"
