"""The prediction log (`cairn serve --log-sample/--log-exclude`): requests become Parquet
segments in the store, in the background, never blocking an answer and never losing a
record without counting it."""

import json
import subprocess
import sys
import textwrap
import threading
import time

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import cairn
from cairn.errors import InvalidArgument
from cairn.serving.events import CANARY, PRIMARY, Scored
from cairn.serving.predlog import PredictionLog, check_exclude, check_sample, keeps, parse_exclude
from cairn.serving.predlog_read import read, segments
from cairn.serving.predlog_runs import EXPERIMENT, MODEL_TAG, VERSION_TAG, RunSink
from serving import ThreadedServer

from .conftest import COLUMNS, fit


def scored(request_id, inputs=None, outputs=None, status=200, version="1.0.0",
           started=None, arm=PRIMARY, model="fraud"):
    rows = len(inputs) if status == 200 and inputs is not None else 0
    return Scored(request_id, model, version, arm, "/invocations", status,
                  None if status == 200 else "BAD_REQUEST",
                  time.time() if started is None else started, 0.004, rows, inputs, outputs)


class Memory:
    """A sink that keeps segments as tables; ``gate`` holds uploads until set; ``fail``
    makes the next that many uploads raise."""

    def __init__(self, fail=0, gate=None):
        self.tables, self.dirs, self.fail, self.gate = [], [], fail, gate

    def upload(self, model, version, directory, local):
        import pyarrow.parquet as pq

        if self.gate is not None:
            self.gate.wait()
        if self.fail:
            self.fail -= 1
            raise OSError("the store is down")
        self.dirs.append((model, version, directory, local.name))
        self.tables.append(pq.read_table(local))


# -- a real model, a real store ----------------------------------------------------------

def test_requests_are_logged_per_row_and_read_back(tracking, frame, fraud):
    client = cairn.Client(str(tracking))
    model = fit(frame)
    X = frame[0]
    plog = PredictionLog(client)
    t0 = time.time()
    plog.scored(scored("a", X[:3], model.predict(X[:3]), started=t0))
    plog.scored(scored("b", X[3:4], model.predict(X[3:4]), arm=CANARY, started=t0))
    plog.scored(scored("c", status=400, started=t0))
    plog.close()
    assert plog.stats() == {"queued": 0, "buffered_rows": 0, "dropped": 0, "sampled_out": 0,
                            "written_rows": 5, "written_segments": 1, "failed_writes": 0}

    table = read(client, "fraud")
    assert table.column_names == ["request_id", "timestamp", "model_version", "arm",
                                  "latency_ms", "status", *[f"input.{c}" for c in COLUMNS],
                                  "prediction"]
    assert table.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("latency_ms").type == pa.float64()
    assert table.schema.field("input.amount").type == pa.float64()
    frame_out = table.to_pandas()
    assert list(frame_out["request_id"]) == ["a", "a", "a", "b", "c"]
    assert list(frame_out["arm"]) == [PRIMARY] * 3 + [CANARY, PRIMARY]
    assert frame_out["input.amount"][:4].tolist() == X["amount"][:4].tolist()
    assert frame_out["prediction"][:4].tolist() == model.predict(X[:4]).tolist()
    failed = frame_out.iloc[4]
    assert failed["status"] == 400 and pd.isna(failed["input.amount"]) \
        and pd.isna(failed["prediction"])
    assert set(frame_out["model_version"]) == {"1.0.0"}
    # The segment is an artifact of the version's run in cairn-serving, under its UTC hour.
    (seg,) = segments(client, "fraud", version="1.0.0")
    hour = time.strftime("%Y-%m-%d/%H", time.gmtime(t0))
    assert seg.path.startswith(f"predictions/{hour}/{plog.writer_id}-")
    run = client.get_run(seg.run_id)
    assert run.experiment == EXPERIMENT
    assert run.tags[MODEL_TAG] == "fraud" and run.tags[VERSION_TAG] == "1.0.0"
    assert segments(client, "fraud", version="9.9.9") == []
    assert read(client, "nobody").num_rows == 0


def test_the_serving_app_logs_each_request_over_http(tracking, registry, fraud, frame):
    from cairn.serving import deploy

    client = cairn.Client(str(tracking))
    plog = PredictionLog(client)
    d = deploy(registry, "models:/fraud@prod", follow=False, observers=[plog])
    X = frame[0]
    with ThreadedServer(d.app) as url:
        body = {"dataframe_split": {"columns": COLUMNS, "data": X[:2].to_numpy().tolist()}}
        assert httpx.post(url + "/invocations", json=body).status_code == 200
        r = httpx.post(url + "/v1/predict", json=body, headers={"Cairn-Request-Id": "order-7"})
        assert r.status_code == 200
        bad = httpx.post(url + "/invocations", json={"dataframe_records": [{"amount": 1.0}]})
        assert bad.status_code == 400
    d.close()  # closes the observers: the log is flushed
    assert plog.stats()["written_rows"] == 5
    table = read(client, "fraud", "1.0.0").to_pandas()
    assert (table["request_id"] == "order-7").sum() == 2
    assert sorted(table["status"].tolist()) == [200] * 4 + [400]
    ok = table[table["request_id"] == "order-7"]
    assert ok["prediction"].tolist() == fit(frame).predict(X[:2]).tolist()
    assert ok["input.score"].tolist() == X["score"][:2].tolist()


# -- never blocking, never silent --------------------------------------------------------

def test_a_full_queue_drops_and_counts_and_never_blocks():
    gate = threading.Event()
    sink = Memory(gate=gate)  # a writer stuck on a slow store
    plog = PredictionLog(sink=sink, max_queue=5, flush_rows=1)
    X = pd.DataFrame({"x": [1.0]})
    started = time.perf_counter()
    for i in range(200):
        plog.scored(scored(f"r{i}", X, np.array([1])))
    assert time.perf_counter() - started < 0.5  # the event loop never waited on the writer
    stats = plog.stats()
    assert stats["dropped"] >= 190 and stats["queued"] <= 5
    gate.set()
    plog.close()
    stats = plog.stats()
    assert stats["written_rows"] + stats["dropped"] == 200  # every request accounted for
    assert stats["written_rows"] >= 1 and stats["queued"] == 0


def _wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_requests_the_writer_holds_still_count_as_queued_and_against_the_cap():
    """The writer takes every queued request at once: until each is converted it is still
    queued in stats() and still counts against max_queued_rows."""
    first, second = threading.Event(), threading.Event()
    uploads = []

    class TwoGates(Memory):  # the first two uploads wait for their gates
        def upload(self, *args):
            uploads.append(args)
            gate = {1: first, 2: second}.get(len(uploads))
            if gate is not None:
                gate.wait()
            super().upload(*args)

    sink = TwoGates()
    plog = PredictionLog(sink=sink, flush_rows=1, max_queued_rows=10)
    X = pd.DataFrame({"x": [1.0]})
    plog.scored(scored("r0", X, np.array([1])))
    _wait_until(lambda: len(uploads) == 1)           # r0's segment is stuck uploading
    for i in range(1, 6):                            # five wait in the queue
        plog.scored(scored(f"r{i}", X, np.array([1])))
    first.set()
    _wait_until(lambda: len(uploads) == 2)           # the writer took r1..r5 at once, and
    assert plog._in_hand == 4                        # is stuck on r1's: r2..r5 in its hands
    assert plog.stats()["queued"] == 4
    for i in range(6, 20):                           # 4 held + 6 more reach the cap of 10
        plog.scored(scored(f"r{i}", X, np.array([1])))
    stats = plog.stats()
    assert (stats["queued"], stats["dropped"]) == (10, 8)
    second.set()
    plog.close()
    stats = plog.stats()
    assert (stats["written_rows"], stats["dropped"], stats["queued"]) == (12, 8, 0)


def test_a_small_queue_keeps_up_with_a_steady_stream():
    """The writer pauses between turns, but a queue half full cuts the pause short: a
    queue of 40 loses nothing at about 1,000 requests a second."""
    sink = Memory()
    plog = PredictionLog(sink=sink, max_queue=40, flush_rows=10_000)
    X = pd.DataFrame({"x": [1.0]})
    for i in range(600):
        plog.scored(scored(f"r{i}", X, np.array([1])))
        time.sleep(0.001)
    plog.close()
    stats = plog.stats()
    assert (stats["written_rows"], stats["dropped"]) == (600, 0)


def test_close_is_bounded_by_its_timeout_and_counts_after_close_as_dropped():
    gate = threading.Event()
    plog = PredictionLog(sink=Memory(gate=gate), flush_rows=1)
    plog.scored(scored("r", pd.DataFrame({"x": [1.0]}), np.array([1])))
    time.sleep(0.1)
    started = time.monotonic()
    plog.close(timeout=0.3)
    assert time.monotonic() - started < 2
    plog.scored(scored("late", pd.DataFrame({"x": [1.0]}), np.array([1])))
    assert plog.stats()["dropped"] == 1
    gate.set()


def test_a_failed_upload_is_retried_once_then_counted_as_dropped():
    X = pd.DataFrame({"x": [1.0, 2.0]})
    sink = Memory(fail=1)
    plog = PredictionLog(sink=sink, retry_seconds=0.05)
    plog.scored(scored("a", X, np.array([1, 2])))
    plog.close()
    assert plog.stats()["failed_writes"] == 1 and plog.stats()["written_rows"] == 2
    assert plog.stats()["dropped"] == 0

    sink = Memory(fail=10)
    plog = PredictionLog(sink=sink, retry_seconds=0.05)
    plog.scored(scored("a", X, np.array([1, 2])))
    plog.scored(scored("b", X, np.array([1, 2])))
    plog.close()
    stats = plog.stats()
    assert stats["failed_writes"] == 2 and stats["written_rows"] == 0
    assert stats["dropped"] == 2  # both requests, lost for good, and counted


def test_close_writes_what_is_buffered_and_old_buffers_flush_on_time():
    sink = Memory()
    plog = PredictionLog(sink=sink, flush_seconds=3600, flush_rows=10_000)
    plog.scored(scored("a", pd.DataFrame({"x": [1.0]}), np.array([1])))
    time.sleep(0.3)
    assert sink.tables == [] and plog.stats()["buffered_rows"] == 1
    plog.close()
    assert len(sink.tables) == 1 and sink.tables[0].num_rows == 1

    sink = Memory()
    plog = PredictionLog(sink=sink, flush_seconds=0.1)
    plog.scored(scored("a", pd.DataFrame({"x": [1.0]}), np.array([1])))
    deadline = time.monotonic() + 5
    while not sink.tables:
        assert time.monotonic() < deadline, "the buffer was not flushed after flush_seconds"
        time.sleep(0.02)
    plog.close()


def test_segments_are_per_version_and_hour_and_every_flush_rows():
    sink = Memory()
    plog = PredictionLog(sink=sink, flush_rows=4)
    X = pd.DataFrame({"x": [1.0, 2.0]})
    t0 = time.time()
    hour_ago = t0 - 3600
    for i in range(4):
        plog.scored(scored(f"n{i}", X, np.array([1, 2]), started=t0))
    plog.scored(scored("old", X, np.array([1, 2]), started=hour_ago))
    plog.scored(scored("v2", X, np.array([1, 2]), version="2.0.0", started=t0))
    plog.close()
    rows = sorted((v, d, t.num_rows) for (_, v, d, _), t in zip(sink.dirs, sink.tables))
    now, before = (time.strftime("predictions/%Y-%m-%d/%H", time.gmtime(t))
                   for t in (t0, hour_ago))
    assert rows == sorted([("1.0.0", now, 4), ("1.0.0", now, 4), ("1.0.0", before, 2),
                           ("2.0.0", now, 2)])
    names = [name for *_, name in sink.dirs]
    assert len(set(names)) == len(names)  # <writer-id>-<seq>: never the same name twice


# -- sampling and exclusion --------------------------------------------------------------

def test_sampling_keeps_about_the_share_and_is_deterministic():
    ids = [f"req-{i}" for i in range(20_000)]
    kept = [keeps(i, 0.1) for i in ids]
    assert 0.09 < sum(kept) / len(ids) < 0.11
    assert kept == [keeps(i, 0.1) for i in ids]  # the same request, the same decision
    assert all(keeps(i, 1.0) for i in ids[:100])

    sink = Memory()
    plog = PredictionLog(sink=sink, sample=0.25)
    X = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    for i in ids[:400]:
        plog.scored(scored(i, X, np.array([1, 2, 3])))
    plog.close()
    logged = pa.concat_tables(sink.tables).to_pandas()
    expected = {i for i in ids[:400] if keeps(i, 0.25)}
    assert set(logged["request_id"]) == expected
    assert (logged.groupby("request_id").size() == 3).all()  # a request's rows go together
    assert plog.stats()["sampled_out"] == 400 - len(expected)


def test_excluded_features_are_not_stored():
    sink = Memory()
    plog = PredictionLog(sink=sink, exclude=["ssn", "1"])
    plog.scored(scored("a", pd.DataFrame({"amount": [1.0], "ssn": ["123-45"]}), np.array([0])))
    plog.scored(scored("b", np.array([[1.0, 2.0, 3.0]]), np.array([1]), version="2"))
    plog.close()
    names = {n for t in sink.tables for n in t.column_names}
    assert "input.ssn" not in names and "input.1" not in names
    assert {"input.amount", "input.0", "input.2"} <= names
    assert not any("123-45" in str(t.to_pylist()) for t in sink.tables)


def test_exclude_and_sample_are_checked_where_they_enter(fraud):
    check_exclude(fraud.signature, ["amount"])
    with pytest.raises(InvalidArgument, match="'ssn'.*amount, age, score"):
        check_exclude(fraud.signature, ["amount", "ssn"], "models:/fraud/1.0.0")
    check_exclude(None, ["anything"])  # no signature: nothing to check against
    tensor = {"inputs": {"type": "tensor", "dtype": "float64", "shape": [-1, 3]}}
    check_exclude(tensor, ["0", "2"])
    with pytest.raises(InvalidArgument, match="'3'"):
        check_exclude(tensor, ["3"])
    assert parse_exclude("a, b") == ("a", "b") and parse_exclude("") == ()
    for bad in ("a,,b", "a,a"):
        with pytest.raises(InvalidArgument, match="--log-exclude"):
            parse_exclude(bad)
    assert check_sample("0.1") == 0.1 and check_sample(1) == 1.0
    for bad in (0, -0.5, 1.5, "nan", "x", None):
        with pytest.raises(InvalidArgument, match="--log-sample"):
            check_sample(bad)
    with pytest.raises(InvalidArgument, match="max_queue"):
        PredictionLog(sink=Memory(), max_queue=0)


def test_the_constructor_does_no_io(tmp_path):
    PredictionLog(cairn.Client(str(tmp_path / "nowhere")), sample=0.5)
    assert not (tmp_path / "nowhere").exists()


# -- shapes and bad values ---------------------------------------------------------------

def test_a_bad_value_costs_only_its_columns_type():
    sink = Memory()
    plog = PredictionLog(sink=sink)
    good = pd.DataFrame({"amount": [1.0, 2.0], "name": ["a", "b"], "n": [1, 2]})
    plog.scored(scored("good", good, np.array([0, 1])))
    surrogate = pd.DataFrame({"amount": [float("nan")], "name": pd.Series(["\ud800"],
                                                                            dtype=object),
                              "n": pd.Series([{1, 2}], dtype=object)})
    plog.scored(scored("bad", surrogate, np.array([1])))
    mixed = pd.DataFrame({"amount": [3.0], "name": pd.Series([7], dtype=object), "n": [3]})
    plog.scored(scored("mixed", mixed, np.array([2])))
    plog.scored(scored("sets", good, [{1}, {2}]))
    plog.close()
    assert plog.stats()["dropped"] == 0 and plog.stats()["written_rows"] == 6
    (table,) = sink.tables
    t = table.to_pandas()
    assert t["request_id"].tolist() == ["good", "good", "bad", "mixed", "sets", "sets"]
    assert table.schema.field("input.amount").type == pa.float64()  # NaN kept typed
    assert np.isnan(t["input.amount"][2])
    assert table.schema.field("input.name").type == pa.string()
    assert t["input.name"].tolist() == ["a", "b", "\\ud800", "7", "a", "b"]
    assert t["input.n"].tolist()[:2] == ["1", "2"]  # the set made the column text
    assert t["prediction"].tolist()[:4] == ["0", "1", "1", "2"]


def test_arrays_tensors_dicts_and_frames_as_columns():
    sink = Memory()
    plog = PredictionLog(sink=sink)
    plog.scored(scored("2d", np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[0.1, 0.9],
                                                                         [0.8, 0.2]])))
    plog.scored(scored("3d", np.zeros((1, 2, 2)), np.array([5]), version="3"))
    plog.scored(scored("dict", {"ids": np.array([1, 2]), "mask": np.ones((2, 3))},
                       pd.DataFrame({"p": [0.5, 0.6], "label": ["x", "y"]}), version="4"))
    plog.close()
    by_version = {t["model_version"][0].as_py(): t for t in sink.tables}
    two = by_version["1.0.0"].to_pandas()
    assert two["input.0"].tolist() == [1.0, 3.0] and two["input.1"].tolist() == [2.0, 4.0]
    assert [json.loads(p) for p in two["prediction"]] == [[0.1, 0.9], [0.8, 0.2]]
    three = by_version["3"].to_pandas()
    assert json.loads(three["input"][0]) == [[0.0, 0.0], [0.0, 0.0]]
    four = by_version["4"].to_pandas()
    assert four["input.ids"].tolist() == [1, 2]
    assert json.loads(four["input.mask"][1]) == [1.0, 1.0, 1.0]
    assert four["prediction.p"].tolist() == [0.5, 0.6]
    assert four["prediction.label"].tolist() == ["x", "y"]


# -- other processes, a team server ------------------------------------------------------

@pytest.mark.slow  # two child processes (about 8 s)
def test_a_reader_in_another_process_sees_what_a_writer_process_wrote(tracking, fraud):
    writer = textwrap.dedent(f"""
        import time
        import numpy as np, pandas as pd
        import cairn
        from cairn.serving.events import Scored
        from cairn.serving.predlog import PredictionLog

        log = PredictionLog(cairn.Client({str(tracking)!r}), flush_rows=3)
        for i in range(7):
            log.scored(Scored(f"w{{i}}", "fraud", "1.0.0", "primary", "/invocations", 200,
                              None, time.time(), 0.01, 1, pd.DataFrame({{"amount": [float(i)]}}),
                              np.array([i % 2])))
        log.close()
    """)
    reader = textwrap.dedent(f"""
        import cairn
        from cairn.serving.predlog_read import read
        t = read(cairn.Client({str(tracking)!r}), "fraud")
        print(t.num_rows, sorted(t["request_id"].to_pylist())[0], t["input.amount"].to_pylist())
    """)
    subprocess.run([sys.executable, "-c", writer], check=True, timeout=60)
    out = subprocess.run([sys.executable, "-c", reader], check=True, timeout=60,
                         capture_output=True, text=True).stdout.split(" ", 2)
    assert out[0] == "7" and out[1] == "w0"
    assert json.loads(out[2]) == [float(i) for i in range(7)]


def test_a_team_server_holds_the_log(cairn_server, frame):
    client = cairn.Client(cairn_server)
    client.register_model("fraud", fit(frame), input_example=frame[0][:5])
    plog = PredictionLog(client, flush_rows=2)
    X = frame[0]
    for i in range(3):
        plog.scored(scored(f"r{i}", X[i:i + 1], fit(frame).predict(X[i:i + 1])))
    plog.close()
    assert plog.stats()["written_segments"] == 2 and plog.stats()["failed_writes"] == 0
    reader = cairn.Client(cairn_server)
    table = read(reader, "fraud", "1.0.0")
    assert sorted(table["request_id"].to_pylist()) == ["r0", "r1", "r2"]
    assert table["input.age"].to_pylist() == X["age"][:3].tolist()


def test_two_runs_for_one_version_are_both_read(tracking):
    """Two servers that started at once each made a run for the version: readers read both."""
    client = cairn.Client(str(tracking))
    exp = client.get_or_create_experiment(EXPERIMENT)
    for _ in range(2):
        client.create_run(exp.id, tags={MODEL_TAG: "fraud", VERSION_TAG: "1.0.0"})
    runs = [r.id for r in client.search_runs([EXPERIMENT])]

    class ToRun:  # the sink of a writer that settled on ``run_id``
        def __init__(self, run_id):
            self.run_id = run_id

        def upload(self, model, version, directory, local):
            client.log_artifact(self.run_id, local, directory)

    for run_id, rid in zip(runs, ("x", "y")):
        plog = PredictionLog(sink=ToRun(run_id))
        plog.scored(scored(rid, pd.DataFrame({"amount": [1.0]}), np.array([0])))
        plog.close()
    assert len(segments(client, "fraud")) == 2
    assert sorted(read(client, "fraud")["request_id"].to_pylist()) == ["x", "y"]
    # A writer finds an existing run rather than making a third.
    assert RunSink(client).run_for("fraud", "1.0.0") in runs


@pytest.mark.parametrize("since,until,expected", [
    (None, None, ["old", "new"]),
    ("{old_hour}", "{new_hour}", ["old"]),
    ("{new_hour}", None, ["new"]),
])
def test_since_and_until_select_hours_and_rows(tracking, since, until, expected):
    client = cairn.Client(str(tracking))
    now = time.time()
    plog = PredictionLog(client)
    plog.scored(scored("old", pd.DataFrame({"x": [1.0]}), np.array([0]), started=now - 7200))
    plog.scored(scored("new", pd.DataFrame({"x": [1.0]}), np.array([0]), started=now))
    plog.close()
    hours = {"old_hour": time.strftime("%Y-%m-%dT%H:00:00", time.gmtime(now - 7200)),
             "new_hour": time.strftime("%Y-%m-%dT%H:00:00", time.gmtime(now))}
    since = since and since.format(**hours)
    until = until and until.format(**hours)
    table = read(client, "fraud", since=since, until=until)
    assert table["request_id"].to_pylist() == expected
    assert len(segments(client, "fraud", since=since, until=until)) == len(expected)


# -- drops are recorded where a monitor in another process can read them ----------------

def test_drops_become_predlog_dropped_points_of_the_versions_run(tracking):
    """A real store: uploads to it fail twice for one version (dropped), and the writer
    records that count as ``predlog.dropped`` of that version's run; nothing for the other."""
    client = cairn.Client(str(tracking))

    class Failing(RunSink):  # uploads of 2.0.0 fail: the store refuses its segments
        def upload(self, model, version, directory, local):
            if version == "2.0.0":
                raise OSError("the store is down")
            super().upload(model, version, directory, local)

    plog = PredictionLog(sink=Failing(client), retry_seconds=0.05)
    X = pd.DataFrame({"x": [1.0, 2.0]})
    for i in range(3):
        plog.scored(scored(f"a{i}", X, np.array([1, 2]), version="2.0.0"))
    plog.scored(scored("b", X, np.array([1, 2]), version="1.0.0"))
    plog.close()
    assert plog.stats()["dropped"] == 3
    runs = {r.tags[VERSION_TAG]: r.id
            for r in client.search_runs([EXPERIMENT], f"tags.`{MODEL_TAG}` = 'fraud'")}
    points = client.get_metric_history(runs["2.0.0"], "predlog.dropped")
    assert sum(p.value for p in points) == 3
    assert "predlog.dropped" not in client.get_run(runs["1.0.0"]).metrics


def test_a_drop_report_the_store_refuses_is_kept_for_the_next():
    reports = []

    class Flaky(Memory):
        refusals = 1

        def record_dropped(self, model, version, n, when_ms):
            if self.refusals:
                self.refusals -= 1
                raise OSError("the store is down")
            reports.append((model, version, n))

    plog = PredictionLog(sink=Flaky(fail=10), retry_seconds=0.05)
    plog.scored(scored("a", pd.DataFrame({"x": [1.0]}), np.array([1])))
    plog.close()
    assert plog.stats()["dropped"] == 1
    # The writer's last turn tried once (refused) ... and nothing was lost from the count.
    plog._report_drops(final=True)
    assert reports == [("fraud", "1.0.0", 1)]
