"""drift_report end to end: lineage finds the training data, the log is cut into windows,
the verdicts are right, and the results land in the monitoring run as metrics."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import cairn
from cairn.monitoring import drift_report
from cairn.monitoring.results import EXPERIMENT, MODEL_TAG, VERSION_TAG

from .conftest import T0

AFTER = T0 + dt.timedelta(days=1)   # "now" for the tests: both logged hours have ended


def report(client, **kw):
    kw.setdefault("since", T0)
    kw.setdefault("until", T0 + dt.timedelta(hours=2))
    kw.setdefault("now", AFTER)
    kw.setdefault("window", "1h")
    return drift_report(client, "models:/fraud@production", **kw)


def test_drifted_and_undrifted_windows(fraud):
    client, mv, version = fraud
    r = report(client)
    assert (r.model, r.version, r.reference, r.found_by) == ("fraud", "1.0.0", version.ref,
                                                             "lineage")
    assert [w.start for w in r.windows] == [T0, T0 + dt.timedelta(hours=1)]
    assert [w.rows for w in r.windows] == [600, 600]   # the failed requests are not rows
    calm, moved = r.windows
    assert [c.column for c in calm.columns] == ["amount", "age", "channel", "prediction"]
    # 2,000 reference rows: Wasserstein for numbers, Jensen-Shannon for categories
    assert {c.column: c.method for c in calm.columns} == {
        "amount": "wasserstein", "age": "wasserstein", "channel": "jensenshannon",
        "prediction": "jensenshannon"}
    assert {c.column: c.kind for c in calm.columns}["prediction"] == "categorical"
    assert not any(c.drifted for c in calm.columns), [(c.column, c.score) for c in calm.columns]
    assert calm.share == 0.0 and not calm.drifted
    assert {c.column: c.drifted for c in moved.columns} == {
        "amount": True, "age": False, "channel": True, "prediction": True}
    assert moved.share == 0.75 and moved.drifted
    assert all(c.missing == 0.0 and c.current_rows == 600 for c in moved.columns)
    assert r.missing_columns == ()


def test_results_are_metrics_of_the_monitoring_run(fraud):
    client, mv, _ = fraud
    r = report(client)
    assert r.run_id and all(w.stored for w in r.windows)
    run = client.get_run(r.run_id)
    assert run.tags[MODEL_TAG] == "fraud" and run.tags[VERSION_TAG] == "1.0.0"
    assert client.get_experiment(run.experiment_id).name == EXPERIMENT
    share = client.get_metric_history(r.run_id, "drift.share")
    ends = [int((T0 + dt.timedelta(hours=h)).timestamp()) for h in (1, 2)]
    assert share.values.tolist() == [0.0, 0.75]
    assert share.timestamps.tolist() == [e * 1000 for e in ends]
    assert share.steps.tolist() == ends
    amount = client.get_metric_history(r.run_id, "drift.amount")
    assert amount.values.tolist() == pytest.approx([w.column("amount").score for w in r.windows])
    assert client.get_metric_history(r.run_id, "drift.amount.drifted").values.tolist() == [0, 1]
    # search works on them unchanged
    found = client.search_runs([EXPERIMENT], "metrics.`drift.share` > 0.5")
    assert [x.id for x in found] == [r.run_id]
    # a second report writes nothing twice, and uses the same run
    again = report(client)
    assert again.run_id == r.run_id and not any(w.stored for w in again.windows)
    assert len(client.get_metric_history(r.run_id, "drift.share").values) == 2


def test_windows_not_ended_are_reported_not_stored(fraud):
    client, _, _ = fraud
    r = report(client, now=T0 + dt.timedelta(hours=1, minutes=30))
    assert [w.stored for w in r.windows] == [True, False]


def test_no_store(fraud):
    client, _, _ = fraud
    r = report(client, store=False)
    assert r.run_id is None
    assert not client.search_runs(None, "tags.`cairn.monitoring.model` = 'fraud'")


def test_smaller_windows_and_empty_ones(fraud):
    client, _, _ = fraud
    r = report(client, window="30m", until=T0 + dt.timedelta(hours=3), store=False)
    assert [w.rows for w in r.windows] == [300, 300, 300, 300, 0, 0]
    assert r.windows[-1].columns == () and r.windows[-1].share is None


def test_method_and_threshold_per_column(fraud):
    client, _, _ = fraud
    r = report(client, methods={"amount": "psi", "age": "ks"}, thresholds=["age=0.5"],
               store=False)
    calm, moved = r.windows
    assert calm.column("amount").method == "psi" and calm.column("amount").threshold == 0.2
    assert moved.column("amount").drifted
    assert calm.column("age").method == "ks" and calm.column("age").threshold == 0.5
    assert calm.column("age").drifted is (calm.column("age").score < 0.5)


def test_share_threshold(fraud):
    client, _, _ = fraud
    r = report(client, share=0.8, store=False)
    assert r.windows[1].share == 0.75 and not r.windows[1].drifted


def test_explicit_reference_overrides_lineage(fraud, tmp_path):
    client, _, version = fraud
    from .conftest import transactions

    other = transactions(500, seed=7, shift=1.0, channels=(0.1, 0.2, 0.7))
    path = tmp_path / "recent.csv"
    other.to_csv(path, index=False)
    v = cairn.data.Datasets(client).add(path, "recent")
    r = report(client, reference=v.ref, store=False)
    assert (r.reference, r.found_by) == ("recent@1", "given")
    # 500 reference rows: the small-data tests, KS and chi-squared
    assert {c.column: c.method for c in r.windows[0].columns} == {
        "amount": "ks", "age": "ks", "channel": "chisquare", "prediction": "chisquare"}
    # against data like the drifted hour, the first hour is the one that drifted
    assert r.windows[0].column("amount").drifted and not r.windows[1].column("amount").drifted


def test_reference_without_a_logged_column_reports_it_missing(fraud, tmp_path):
    client, _, _ = fraud
    from .conftest import transactions

    path = tmp_path / "partial.parquet"
    transactions(1500).drop(columns=["age"]).to_parquet(path)
    v = cairn.data.Datasets(client).add(path, "partial")
    r = report(client, reference=v.ref, store=False)
    # the prediction has no reference either: the model cannot score rows without age
    assert r.missing_columns == ("age", "prediction")
    assert [c.column for c in r.windows[0].columns] == ["amount", "channel"]
    assert r.notes == ("the prediction has no reference: the reference lacks the model's "
                       "input(s) age",)
    assert r.windows[1].share == 1.0


def test_in_memory_reference_with_array_columns(tracking, tmp_path):
    """A model of a 2-D array: log columns input.0, input.1 meet the array's columns 0, 1."""
    from sklearn.linear_model import LogisticRegression

    from .conftest import write_log

    client = cairn.Client(str(tracking))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1500, 2))
    y = (X[:, 0] > 0).astype(int)
    v = cairn.data.Datasets(client).add_array(X, "arrays", target=y)
    run = client.create_run(client.get_or_create_experiment("t").id)
    client.log_input(run.id, v.ref, role="train")
    model = LogisticRegression().fit(X, y)
    client.register_model("arr", model, run_id=run.id, input_example=X[:3])
    client.transition_model_version_stage("arr", "1.0.0", "production")
    write_log(client, model, [rng.normal(size=(400, 2)), rng.normal(2.0, 1.0, size=(400, 2))],
              name="arr", per_request=40)
    r = drift_report(client, "models:/arr@production", "1h", since=T0, until=T0 + dt.timedelta(hours=2),
                     store=False, now=AFTER)
    assert r.reference == v.ref
    assert [c.column for c in r.windows[0].columns] == ["0", "1", "prediction"]
    assert [w.drifted for w in r.windows] == [False, True]


def test_a_column_logged_as_text_counts_its_numbers(tracking, tmp_path):
    """One request sent amount as a string with a lone surrogate: the log keeps that segment's
    amount as text; drift still reads the numbers and counts the rest as missing."""
    from cairn.serving.events import PRIMARY, Scored
    from cairn.serving.predlog import PredictionLog

    from .conftest import train, transactions

    client = cairn.Client(str(tracking))
    _, model, _ = train(client, tmp=tmp_path)
    frame = transactions(400, seed=5)
    plog = PredictionLog(client, flush_rows=100_000, flush_seconds=3600)
    for i in range(0, 400, 50):
        part = frame.iloc[i:i + 50].reset_index(drop=True)
        predicted = model.predict(part)
        if i == 0:
            part = part.astype({"amount": object})
            part.loc[0, "amount"] = "12\ud800"
        plog.scored(Scored(f"r{i}", "fraud", "1.0.0", PRIMARY, "/invocations", 200, None,
                           T0.timestamp() + i, 0.004, len(part), part, predicted))
    plog.close()
    from cairn.serving.predlog_read import read

    assert str(read(client, "fraud").schema.field("input.amount").type) == "string"
    r = drift_report(client, "models:/fraud@production", "1h", since=T0, until=AFTER,
                     store=False, now=AFTER)
    amount = r.windows[0].column("amount")
    assert amount.current_rows == 399 and amount.missing == pytest.approx(1 / 400)
    assert amount.note == "1 value(s) in the log were not numbers (counted as missing)"
    assert amount.drifted is False


def test_numbers_with_few_values_are_categories_in_the_log_too(tracking, tmp_path):
    """A numeric feature with 3 distinct values (0.5, 1.5, 2.5) is categorical; integers in
    the log that the reference never had are a new category."""
    from cairn.monitoring import drift as D

    ref = D.prepare(np.array([0.5, 1.5, 2.5] * 500))
    assert ref.kind == "categorical" and ref.categories == (0.5, 1.5, 2.5)
    same = D.compare(ref, np.array([0.5, 1.5, 2.5] * 100))
    assert same.score == 0.0 and not same.drifted
    moved = D.compare(ref, np.array([0, 1, 2] * 100))   # ints: none of them is a category
    assert moved.drifted and moved.current_rows == 300


def test_a_column_whose_metric_key_the_store_refuses_is_reported_not_stored(tracking, tmp_path):
    from sklearn.linear_model import LinearRegression

    from .conftest import write_log

    client = cairn.Client(str(tracking))
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"ok": rng.normal(size=1500),
                          "x" * 300: rng.normal(size=1500)})
    frame.to_parquet(tmp_path / "t.parquet")
    v = cairn.data.Datasets(client).add(tmp_path / "t.parquet", "wide")
    run = client.create_run(client.get_or_create_experiment("t").id)
    client.log_input(run.id, v.ref, role="train")
    model = LinearRegression().fit(frame, frame["ok"])
    client.register_model("wide", model, run_id=run.id, input_example=frame[:3])
    client.transition_model_version_stage("wide", "1.0.0", "production")
    write_log(client, model, [frame[:200]], name="wide")
    r = drift_report(client, "models:/wide@production", "1h", since=T0, until=AFTER, now=AFTER)
    assert [c.column for c in r.windows[0].columns] == ["ok", "x" * 300, "prediction"]
    assert r.windows[0].stored
    keys = set(client.get_run(r.run_id).metrics)
    assert "drift.ok" in keys and not any(k.startswith("drift.xxx") for k in keys)
