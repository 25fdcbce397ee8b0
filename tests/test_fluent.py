"""The fluent API as training code uses it."""

import json
import math

import pytest

import cairn
from cairn import RunStatus


def test_four_lines_record_a_run(tracking):
    with cairn.start_run(params={"lr": 0.01}, tags={"team": "a"}) as run:
        for step in range(100):
            cairn.log_metric("loss", 1 / (step + 1), step=step)
    r = cairn.Client().get_run(run.id)
    assert r.status is RunStatus.FINISHED and r.end_time >= r.start_time
    assert r.params == {"lr": "0.01"} and r.tags == {"team": "a"}
    assert r.metrics == {"loss": 0.01}
    assert r.experiment == "Default" and r.name == run.name
    assert (tracking / "index.db").exists()


def test_set_experiment_and_env_capture(tracking):
    exp = cairn.set_experiment("fraud")
    assert cairn.set_experiment("fraud").id == exp.id  # get, not create twice
    with cairn.start_run(name="baseline") as run:
        cairn.log_param("a", 1)
    r = cairn.Client().get_run(run.id)
    assert r.experiment == "fraud" and r.name == "baseline"
    for key in ("python", "packages", "os", "cpu", "gpus", "argv", "entry_point"):
        assert key in r.env, key
    assert "numpy" in r.env["packages"]


def test_auto_steps_and_log_metrics(tracking):
    with cairn.start_run() as run:
        for v in (3.0, 2.0, 1.0):
            cairn.log_metric("a", v)
        cairn.log_metrics({"b": 1, "c": 2.5}, step=7)
        run.log({"b": 2}, step=8)
    c = cairn.Client()
    assert c.get_metric_history(run.id, "a").steps.tolist() == [0, 1, 2]
    assert c.get_metric_history(run.id, "b").values.tolist() == [1.0, 2.0]
    assert c.get_run(run.id).metrics == {"a": 1.0, "b": 2.0, "c": 2.5}


def test_exception_marks_failed_and_keyboard_interrupt_killed(tracking):
    with pytest.raises(RuntimeError):
        with cairn.start_run() as failed:
            cairn.log_metric("x", 1)
            raise RuntimeError("boom")
    with pytest.raises(KeyboardInterrupt):
        with cairn.start_run() as interrupted:
            raise KeyboardInterrupt
    c = cairn.Client()
    assert c.get_run(failed.id).status is RunStatus.FAILED
    assert c.get_run(failed.id).metrics == {"x": 1.0}  # data logged before the failure is kept
    assert c.get_run(interrupted.id).status is RunStatus.KILLED


def test_nested_runs(tracking):
    with cairn.start_run(name="parent") as parent:
        with pytest.raises(cairn.InvalidArgument, match="nested=True"):
            cairn.start_run()
        with cairn.start_run(name="child", nested=True) as child:
            assert cairn.active_run() is child
            cairn.log_metric("m", 1)
        assert cairn.active_run() is parent
    assert cairn.active_run() is None
    c = cairn.Client()
    assert c.get_run(child.id).parent_id == parent.id
    assert c.get_run(parent.id).parent_id is None


def test_logging_outside_a_run_is_a_clear_error(tracking):
    for call in (lambda: cairn.log_metric("a", 1), lambda: cairn.log_param("a", 1),
                 lambda: cairn.set_tag("a", 1), lambda: cairn.log_text("x", "a.txt")):
        with pytest.raises(cairn.NoActiveRun, match="start_run"):
            call()


@pytest.mark.parametrize("bad", ["0.5", None, "abc", [1], {"a": 1}, b"1"])
def test_non_numeric_metric_values_are_rejected(tracking, bad):
    with cairn.start_run():
        with pytest.raises(cairn.InvalidArgument, match="must be a number"):
            cairn.log_metric("m", bad)


@pytest.mark.parametrize("key,msg", [("", "empty"), ("x" * 251, "limit"), (3, "string"),
                                     (" lead", "whitespace"), ("../up", "escape")])
def test_bad_keys_are_rejected(tracking, key, msg):
    with cairn.start_run():
        with pytest.raises(cairn.InvalidArgument, match=msg):
            cairn.log_metric(key, 1.0)
        with pytest.raises(cairn.InvalidArgument, match=msg):
            cairn.log_param(key, 1)


def test_numpy_and_special_values(tracking):
    import numpy as np

    with cairn.start_run() as run:
        cairn.log_metric("np", np.float32(0.5))
        cairn.log_metric("int", np.int64(3))
        cairn.log_metric("nan", float("nan"))
        cairn.log_metric("inf", -math.inf)
    m = cairn.Client().get_run(run.id).metrics
    assert m["np"] == 0.5 and m["int"] == 3.0 and math.isnan(m["nan"]) and m["inf"] == -math.inf


def test_param_reset_to_a_different_value_is_an_error(tracking):
    with cairn.start_run() as run:
        cairn.log_param("lr", 0.1)
        cairn.log_param("lr", 0.1)
        with pytest.raises(cairn.InvalidArgument, match="immutable"):
            cairn.log_param("lr", 0.2)
    assert cairn.Client().get_run(run.id).params == {"lr": "0.1"}


def test_finished_run_is_immutable(tracking):
    with cairn.start_run() as run:
        cairn.log_metric("m", 1)
    c = cairn.Client()
    with pytest.raises(cairn.RunFinished):
        c.log_metric(run.id, "m", 2.0)
    with pytest.raises(cairn.RunFinished):
        c.log_param(run.id, "p", 1)
    with pytest.raises(cairn.RunFinished):
        run.log_metric("m", 3.0)
    c.set_tag(run.id, "reviewed", "yes")
    c.set_note(run.id, "looks good")
    r = c.get_run(run.id)
    assert r.tags["reviewed"] == "yes" and r.tags["cairn.note"] == "looks good"
    assert r.metrics == {"m": 1.0}


def test_flush_makes_data_visible_to_other_readers(tracking):
    with cairn.start_run() as run:
        for i in range(1000):
            cairn.log_metric("m", i)
        cairn.flush()
        # A fresh store object (as another process would open) sees every point.
        from cairn.store.local import LocalStore

        other = LocalStore(tracking)
        assert len(other.get_metric_history(run.id, "m")) == 1000
        assert other.get_run(run.id).status is RunStatus.RUNNING
        other.close()


def test_text_dict_figure_and_file_artifacts(tracking, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    src = tmp_path / "weights.bin"
    src.write_bytes(b"\x00\x01" * 1000)
    d = tmp_path / "dir"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("a")
    (d / "sub" / "b.txt").write_text("b")
    with cairn.start_run() as run:
        cairn.log_text("hello", "notes/readme.txt")
        cairn.log_dict({"a": [1, 2]}, "config.json")
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3])
        cairn.log_figure(fig, "plots/curve.png")
        plt.close(fig)
        cairn.log_artifact(src, "model")
        cairn.log_artifacts(d, "data")
    c = cairn.Client()
    paths = [e.path for e in c.list_artifacts(run.id)]
    assert paths == ["config.json", "data/a.txt", "data/sub/b.txt", "model/weights.bin",
                     "notes/readme.txt", "plots/curve.png"]
    out = c.download_artifacts(run.id, "", tmp_path / "out")
    assert (out / "notes/readme.txt").read_text() == "hello"
    assert json.loads((out / "config.json").read_text()) == {"a": [1, 2]}
    assert (out / "plots/curve.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "model/weights.bin").read_bytes() == src.read_bytes()
    sub = c.download_artifacts(run.id, "data", tmp_path / "only")
    assert (sub / "sub/b.txt").read_text() == "b"
    assert c.verify_artifacts(run.id).ok
    with pytest.raises(cairn.NotFound):
        c.download_artifacts(run.id, "nope", tmp_path / "x")


def test_identical_artifacts_are_stored_once(tracking, tmp_path, monkeypatch):
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")  # no code snapshot among the objects
    f = tmp_path / "f.bin"
    f.write_bytes(b"x" * 100_000)
    for _ in range(3):
        with cairn.start_run():
            cairn.log_artifact(f)
    objects = [p for p in (tracking / "objects").rglob("*") if p.is_file()]
    assert len(objects) == 1


def test_missing_artifact_source_is_a_clear_error(tracking, tmp_path):
    with cairn.start_run():
        with pytest.raises(cairn.NotFound, match="does not exist"):
            cairn.log_artifact(tmp_path / "missing.txt")
        with pytest.raises(cairn.InvalidArgument, match="relative"):
            cairn.log_artifact(__file__, "../escape")


def test_client_log_batch_validates_and_groups(tracking):
    from cairn.entities import Metric

    c = cairn.Client()
    run = c.create_run(name="batch")
    c.log_batch(run.id, metrics=[("a", 1.0, 0, 10), ("b", 2, 0, 10), ("a", 3.0, 1, 11)],
                params={"p": 1}, tags={"t": "x"})
    c.log_batch(run.id, metrics=[Metric("a", 5.0, 2, 12)])
    assert c.get_metric_history(run.id, "a").values.tolist() == [1.0, 3.0, 5.0]
    assert c.get_run(run.id).params == {"p": "1"}
    for bad, msg in [([("a", "1.0", 3, 1)], "must be a number"), ([("a", None, 3, 1)], "must be a number"),
                     ([("", 1.0, 3, 1)], "empty"), ([("a", 1.0, 1.5, 1)], "integer"),
                     ([(1, 2)], "key, value, step, timestamp")]:
        with pytest.raises(cairn.InvalidArgument, match=msg):
            c.log_batch(run.id, metrics=bad)
    assert len(c.get_metric_history(run.id, "a")) == 3  # nothing half-applied
    with pytest.raises(cairn.NotFound):
        c.log_batch("0" * 32, metrics=[("a", 1.0, 0, 1)])


def test_an_ended_run_cannot_be_reopened(tracking):
    c = cairn.Client()
    run = c.create_run()
    c.set_terminated(run.id, "FINISHED")
    with pytest.raises(cairn.InvalidArgument, match="terminal"):
        c.set_terminated(run.id, "RUNNING")
    with pytest.raises(cairn.RunFinished):
        c.set_terminated(run.id, "FAILED")
    assert c.get_run(run.id).status is RunStatus.FINISHED
