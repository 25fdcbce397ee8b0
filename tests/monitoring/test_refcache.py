"""The prepared reference is stored once per model version and data set version and read by
later reports instead of the training data; a damaged or foreign copy is prepared afresh."""

import datetime as dt

import numpy as np
import pytest

import cairn.monitoring.reference as reference_module
from cairn.monitoring import drift as D
from cairn.monitoring import drift_report, refcache
from cairn.monitoring.results import find_run

from .conftest import T0

AFTER = T0 + dt.timedelta(days=1)


def report(client, **kw):
    return drift_report(client, "models:/fraud@production", "1h", since=T0,
                        until=T0 + dt.timedelta(hours=2), now=AFTER, **kw)


def scores(r):
    return [[(c.column, c.method, c.score, c.drifted) for c in w.columns] for w in r.windows]


def _no_training_data(*args, **kwargs):
    raise AssertionError("the training data was read again")


def test_the_second_report_reads_the_stored_reference_not_the_training_data(fraud,
                                                                            monkeypatch):
    client, mv, version = fraud
    first = report(client)
    run_id = find_run(client, "fraud", mv.version)
    stored = [e.path for e in client.list_artifacts(run_id, refcache.ROOT)]
    assert stored == [refcache.artifact_path(version.ref)]
    monkeypatch.setattr(reference_module, "load_columns", _no_training_data)
    monkeypatch.setattr(reference_module, "predicted", _no_training_data)
    again = report(client, store=False)
    assert scores(again) == scores(first)   # the prediction's reference came back too
    assert (again.reference, again.found_by) == (version.ref, "lineage")


def test_no_store_writes_no_reference(fraud):
    client, mv, _ = fraud
    report(client, store=False)
    run_id = find_run(client, "fraud", mv.version)
    assert run_id is None or client.list_artifacts(run_id, refcache.ROOT) == []


def test_a_damaged_copy_is_prepared_afresh(fraud, tmp_path, caplog):
    client, mv, version = fraud
    first = report(client)
    run_id = find_run(client, "fraud", mv.version)
    bad = tmp_path / refcache.artifact_path(version.ref).split("/")[-1]
    bad.write_bytes(b"not an archive")
    client.log_artifact(run_id, bad, refcache.ROOT)   # the same path, replaced
    assert refcache.load(client, run_id, version.ref) is None
    assert "could not be read" in caplog.text
    assert scores(report(client)) == scores(first)
    assert refcache.load(client, run_id, version.ref) is not None   # stored again


def test_a_copy_of_another_data_set_or_format_is_not_used(fraud, monkeypatch):
    client, mv, version = fraud
    report(client)
    run_id = find_run(client, "fraud", mv.version)
    assert refcache.load(client, run_id, version.ref) is not None
    monkeypatch.setattr(refcache, "FORMAT", refcache.FORMAT + 1)
    assert refcache.load(client, run_id, version.ref) is None
    monkeypatch.undo()
    assert refcache.load(client, run_id, version.ref + "0") is None


def test_prepared_columns_round_trip_exactly(fraud):
    client, mv, _ = fraud
    run_id = find_run(client, "fraud", mv.version) or client.create_run(
        client.get_or_create_experiment("x").id).id
    rng = np.random.default_rng(1)
    prep = refcache.Prepared(
        columns={"x": D.prepare(rng.normal(size=500)),
                 "flag": D.prepare(np.array([True, False, True])),
                 "code": D.prepare(np.array([3, 1, 3, 2], np.int64), D.CATEGORICAL),
                 "city": D.prepare(np.array(["a", "\u00e9", None, "a"], object)),
                 "when": D.Reference(D.CATEGORICAL, 2, np.array([1, 1]),
                                     categories=(dt.date(2025, 1, 1), dt.date(2025, 1, 2)))},
        failed={"blob": "not 1-D"}, predicted=True, prediction_note="no model")
    assert refcache.save(client, run_id, "d@1", prep)
    back = refcache.load(client, run_id, "d@1")
    assert set(back.columns) == {"x", "flag", "code", "city"}   # dates do not survive JSON
    for name in back.columns:
        a, b = prep.columns[name], back.columns[name]
        assert (a.kind, a.rows, a.categories, a.std) == (b.kind, b.rows, b.categories, b.std)
        assert np.array_equal(a.values, b.values)
        assert (a.edges is None) == (b.edges is None)
        if a.edges is not None:
            assert np.array_equal(a.edges, b.edges)
    assert (back.failed, back.predicted, back.prediction_note) == (
        {"blob": "not 1-D"}, True, "no model")


@pytest.mark.parametrize("name", ["d@1", "a/b@2", "\u00e9\u00e8@3", "x" * 300 + "@1"])
def test_artifact_paths_are_safe_and_distinct(name):
    path = refcache.artifact_path(name)
    assert path.startswith("reference/") and path.count("/") == 1 and len(path) < 140
    assert path != refcache.artifact_path(name + "0")
