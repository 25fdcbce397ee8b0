"""Review of issue #19's alert loop: each test pins a bug found and fixed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from cairn.monitoring import conditions
from cairn.monitoring.rules import RulesError, parse_rules


def _deep_call(n: int, fn):  # type: ignore[no-untyped-def]
    return _deep_call(n - 1, fn) if n else fn()


def test_a_long_chain_that_parses_evaluates_without_exhausting_the_stack() -> None:
    # 998 additions fit in MAX_LENGTH; the tree is as deep as the chain is long, and the
    # evaluator used to recurse once per link: RecursionError, which stopped the cycle.
    cond = conditions.parse("1" + "+1" * 998 + ">0")
    assert _deep_call(60, lambda: cond.evaluate({})) is True
    ors = " or ".join(["live.f1>0.5"] * 130)
    cond = conditions.parse(ors)
    assert _deep_call(60, lambda: cond.evaluate({"live.f1": 0.9})) is True
    assert _deep_call(60, lambda: cond.evaluate({})) is None


def test_chains_keep_left_to_right_meaning() -> None:
    assert conditions.parse("10 - 2 - 3 == 5").evaluate({}) is True
    assert conditions.parse("12 / 2 / 3 == 2").evaluate({}) is True
    assert conditions.parse("2 + 3 * 4 == 14").evaluate({}) is True
    assert conditions.parse("false and live.f1 > 0 or true").evaluate({}) is True
    assert conditions.parse("live.f1 > 0 or false").evaluate({}) is None
    assert conditions.parse("1 / 0 > 1 or true").evaluate({}) is True
    assert conditions.parse("1 / 0 > 1 and true").evaluate({}) is None


@pytest.mark.parametrize("extra, line", [
    ("    for: 2001-13-45\n", 5),                      # a timestamp that is not a date
    ("    min_requests: 2001-02-30\n", 5),
    ("    description: !!python/object:os.system x\n", 5),  # a tag SafeLoader refuses
    ("    description: !!binary '%%%'\n", 5),
    ("  - <<: {name: s}\n    model: fraud\n    condition: live.f1 < 1\n", 5),  # merge key
])
def test_a_value_yaml_cannot_build_is_a_rules_error_with_its_line(extra: str, line: int) -> None:
    # It used to escape as ValueError / ConstructorError: `rules apply` showed a traceback
    # instead of the line and column the docs promise.
    text = "rules:\n  - name: r\n    model: fraud\n    condition: live.f1 < 1\n" + extra
    with pytest.raises(RulesError) as err:
        parse_rules(text)
    assert err.value.details["line"] == line


def test_a_deeply_nested_rules_file_is_a_rules_error() -> None:
    with pytest.raises(RulesError):
        parse_rules("rules: " + "[" * 5000 + "]" * 5000)


def test_a_parquet_label_that_is_a_list_is_refused_alone(tmp_path: Path) -> None:
    # pd.isna(list) is an array, whose truth value raised ValueError: the whole file
    # was lost for one bad cell.
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cairn.serving.feedback import check_records, read_file

    path = tmp_path / "labels.parquet"
    pq.write_table(pa.table({"request_id": ["a", "b", "c"], "label": pa.array(
        [[1, 2], None, [3]], pa.list_(pa.int64()))}), path)
    labels, rejected = check_records(read_file(path))
    assert labels == []
    assert [r.index for r in rejected] == [0, 1, 2]
    assert "null" in rejected[1].error
    path2 = tmp_path / "mixed.parquet"
    pq.write_table(pa.table({"request_id": ["a", "b"], "label": pa.array(
        [{"x": 1}, {"x": 2}], pa.struct([("x", pa.int64())]))}), path2)
    labels, rejected = check_records(read_file(path2))
    assert labels == [] and len(rejected) == 2


def _log_table(preds: list) -> Any:  # type: ignore[type-arg]
    import pyarrow as pa

    n = len(preds)
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    return pa.table({
        "request_id": [f"r{i}" for i in range(n)],
        "timestamp": pa.array([t0 + dt.timedelta(seconds=i) for i in range(n)],
                              pa.timestamp("ms", tz="UTC")),
        "model_version": ["1"] * n, "arm": ["primary"] * n,
        "status": pa.array([200] * n, pa.int64()), "latency_ms": [1.0] * n,
        "prediction": preds})


def test_whole_number_labels_of_a_regressor_give_rmse_and_mae() -> None:
    # Prices sent back as JSON ints were taken for classes: accuracy 0, no rmse, so a rule
    # on live.rmse never had its fact.
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    from cairn.monitoring.live import _measure

    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    preds = [250100.5, 199000.25, 301000.0]
    truth = [250000, 200000, 300000]
    live = _measure("m", start, start + dt.timedelta(hours=1), _log_table(preds),
                    lambda: [], {f"r{i}": y for i, y in enumerate(truth)})
    assert live.kind == "regression"
    assert live.overall.metrics["rmse"] == pytest.approx(mean_squared_error(truth, preds) ** 0.5)
    assert live.overall.metrics["mae"] == pytest.approx(mean_absolute_error(truth, preds))
    # Int classes with class or probability predictions stay classification.
    live = _measure("m", start, start + dt.timedelta(hours=1), _log_table([1.0, 0.0, 0.7]),
                    lambda: [], {"r0": 1, "r1": 0, "r2": 0})
    assert live.kind == "classification" and "accuracy" in live.overall.metrics
    live = _measure("m", start, start + dt.timedelta(hours=1), _log_table(["a", "b", "b"]),
                    lambda: [], {"r0": "a", "r1": "a", "r2": "b"})
    assert live.kind == "classification"
    assert live.overall.metrics["accuracy"] == pytest.approx(2 / 3)


def test_a_cycle_that_meets_an_unexpected_error_is_reported_and_the_loop_goes_on() -> None:
    # Only CairnError was caught: any other exception (a bug in one rule's path, a
    # library's own error) ended `cairn monitor run` for good.
    from cairn.monitoring.daemon import Monitor

    class Broken:
        calls = 0

        def evaluate(self, now: Any = None) -> list[Any]:
            Broken.calls += 1
            raise RuntimeError("boom")

        def act(self, now: Any = None) -> list[Any]:
            raise KeyError("x")

    cycles: list[Any] = []
    monitor = Monitor(Broken(), 1, dispatch=False, on_cycle=cycles.append)  # type: ignore[arg-type]
    monitor._stop.wait = lambda timeout=None: False  # type: ignore[method-assign]
    assert monitor.run(cycles=3) == 3
    assert Broken.calls == 3
    assert "evaluating: RuntimeError: boom" in (cycles[0].error or "")
    assert "acting: KeyError" in (cycles[0].error or "")


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"request_id": "a", "label": ' + b"[" * 100_000])
def test_a_feedback_body_nested_too_deep_is_a_bad_request(body: bytes) -> None:
    # json.loads raised RecursionError, which the route does not turn into a 400.
    from cairn.errors import InvalidArgument
    from cairn.serving.feedback_log import parse

    with pytest.raises(InvalidArgument):
        parse(body)


def test_an_action_that_raises_an_unexpected_error_stores_it_as_its_result(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Only CairnError was recorded: any other exception left the claim without a result
    # ("in progress" for ever) and ended the cycle.
    from cairn.monitoring import alert_actions
    from cairn.monitoring.alert_facts import Facts
    from cairn.monitoring.alerts import Alerts

    def facts(rule: Any, now_ms: int) -> Facts:
        f = Facts()
        f.values["serving.error_rate"] = 0.5
        f.requests = 10
        return f

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("registry exploded")

    monkeypatch.setattr(alert_actions, "registry_action", broken)
    alerts = Alerts(client, facts=facts)
    alerts.apply("rules:\n  - name: errors\n    model: fraud\n"
                 "    condition: serving.error_rate > 0.1\n    actions: [rollback]\n")
    alerts.evaluate(1_767_000_000_000)
    done = alerts.act(1_767_000_000_000)
    assert len(done) == 1 and "RuntimeError: registry exploded" in done[0].result["error"]
    stored = alerts.actions()
    assert stored[0].done_at is not None and "registry exploded" in stored[0].result["error"]


@pytest.mark.parametrize("text, fact, value", [
    ("drift.`price.usd`.drifted", "drift.price.usd.drifted", True),
    ("drift.`price.usd` < 0.05", "drift.price.usd", 0.01),
    ("drift.`price.usd`.missing > 0.5", "drift.price.usd.missing", 0.9),
    ("canary.drift.`a.b`.drifted", "canary.drift.a.b.drifted", True),
])
def test_a_backticked_feature_name_may_hold_dots(text: str, fact: str, value: Any) -> None:
    # Drift stores drift.<column>.drifted with the column as it is; the parser joined the
    # parts and split them again at every dot, so ``drift.`price.usd`.drifted`` was an
    # "unknown fact" though the docs say to quote such a name in backticks.
    cond = conditions.parse(text)
    assert cond.facts == (fact,)
    assert cond.evaluate({fact: value}) is True
    with pytest.raises(conditions.ConditionError):
        conditions.parse("drift.price.usd.drifted")  # unquoted: still not a fact


def test_an_empty_or_corrupt_segment_is_skipped_not_fatal(tracking: Any, tmp_path: Path) -> None:
    # One unreadable Parquet segment (a writer killed mid-upload) made read_labels and
    # read_log raise ArrowInvalid: every label-based fact of the model was unknown, and
    # `cairn monitor live` ended in a traceback, for as long as the segment stayed.
    import numpy as np
    import pandas as pd

    import cairn
    from cairn.monitoring.feedback import read_labels, record_feedback
    from cairn.monitoring.live import live_metrics
    from cairn.serving.events import PRIMARY, Scored
    from cairn.serving.feedback import find_runs as feedback_runs
    from cairn.serving.predlog import PredictionLog
    from cairn.serving.predlog_runs import find_runs as log_runs

    c = cairn.Client(str(tracking))
    c.create_registered_model("fraud")
    t0 = dt.datetime(2025, 1, 31, 10, 0, tzinfo=dt.timezone.utc)
    x = pd.DataFrame({"x": [1.0]})
    plog = PredictionLog(c, flush_rows=100_000, flush_seconds=3600)
    for i, pred in enumerate([1, 0, 1]):
        plog.scored(Scored(f"r{i}", "fraud", "1.0.0", PRIMARY, "/v1/predict", 200, None,
                           t0.timestamp() + i, 0.001, 1, x, np.array([pred])))
    plog.close()
    record_feedback(c, "fraud", [{"request_id": f"r{i}", "label": 1} for i in range(3)])
    empty = tmp_path / "zzzz-000009.parquet"
    empty.write_bytes(b"")
    broken = tmp_path / "zzzz-000010.parquet"
    broken.write_bytes(b"PAR1 not really parquet")
    for f in (empty, broken):
        c.log_artifact(feedback_runs(c, "fraud")[0], f, "feedback/2025-01-31/10")
        c.log_artifact(log_runs(c, "fraud")[0].run_id, f, "predictions/2025-01-31/10")
    assert sorted(read_labels(c, "fraud")) == ["r0", "r1", "r2"]
    live = live_metrics(c, "fraud", t0, t0 + dt.timedelta(minutes=1))
    assert live.overall.requests == 3 and live.overall.labelled == 3
    assert live.overall.metrics["accuracy"] == pytest.approx(2 / 3)


def test_a_parquet_file_of_integer_request_ids_is_read_as_the_csv_one(tmp_path: Path) -> None:
    # A CSV's ids of digits are read as text; a Parquet int64 id column had every record
    # refused ("request_id must be a string, got int").
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cairn.serving.feedback import check_records, read_file

    pq.write_table(pa.table({"request_id": pa.array([7, 8], pa.int64()), "label": [1, 0]}),
                   tmp_path / "ids.parquet")
    (tmp_path / "ids.csv").write_text("request_id,label\n7,1\n8,0\n")
    for name in ("ids.parquet", "ids.csv"):
        labels, rejected = check_records(read_file(tmp_path / name))
        assert [(lab.request_id, lab.label) for lab in labels] == [("7", 1), ("8", 0)]
        assert rejected == []


def test_states_of_a_stage_written_in_any_case_are_found(client: Any) -> None:
    # The rule's model is stored as fraud@production; a filter of fraud@Production (the
    # registry's own spelling of the stage) found nothing.
    from cairn.monitoring.alert_facts import Facts
    from cairn.monitoring.alerts import Alerts

    def facts(rule: Any, now_ms: int) -> Facts:
        f = Facts()
        f.values["serving.error_rate"] = 0.5
        return f

    alerts = Alerts(client, facts=facts)
    alerts.apply("rules:\n  - name: errors\n    model: models:/fraud@Production\n"
                 "    condition: serving.error_rate > 0.1\n")
    alerts.evaluate(1_767_000_000_000)
    for ref in ("fraud@Production", "models:/fraud@PRODUCTION", "fraud@production", "fraud"):
        assert [s.model for s in alerts.states(ref)] == ["fraud@production"], ref
        assert len(alerts.history(model=ref)) == 1, ref


def test_alert_writes_on_sqlite_need_no_returning(client: Any) -> None:
    # INSERT ... RETURNING is SQLite 3.35 and later; the Pythons of some distributions
    # bundle an older one, where every apply, state change and claim failed with a
    # syntax error.  The row count says whether an ON CONFLICT DO NOTHING inserted.
    import sqlalchemy as sa

    from cairn.monitoring.alert_facts import Facts
    from cairn.monitoring.alerts import Alerts

    def facts(rule: Any, now_ms: int) -> Facts:
        f = Facts()
        f.values["serving.error_rate"] = 0.5
        return f

    alerts = Alerts(client, facts=facts)
    alerts.apply("rules:\n  - name: errors\n    model: fraud\n"
                 "    condition: serving.error_rate > 0.1\n    actions: [rollback]\n")
    engine = client.store.index.engine
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        again = alerts.apply("rules:\n  - name: errors\n    model: fraud\n"
                             "    condition: serving.error_rate > 0.1\n    actions: [rollback]\n")
        assert again.version == 2
        assert [t.to_state for t in alerts.evaluate(1_767_000_000_000)] == ["firing"]
        done = alerts.act(1_767_000_000_000)
        assert [a.kind for a in done] == ["rollback"]   # claimed (its registry error stored)
        assert alerts.act(1_767_000_000_000) == []      # and claimed once
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert any("alert_actions" in s and "INSERT" in s.upper() for s in seen)
    assert not [s for s in seen if "RETURNING" in s.upper()]
