"""Feedback: labels checked where they enter, stored per model, read back by any process;
POST /v1/feedback on a real scoring app; `cairn monitor feedback FILE`."""

import json
import threading
import time

import httpx
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import cairn
from cairn.cli.main import cli
from cairn.errors import InvalidArgument, NotFound
from cairn.monitoring.feedback import (EXPERIMENT, MODEL_TAG, MAX_RECORDS, FeedbackStore,
                                       check_records, read_file, read_labels, record_feedback)
from cairn.serving.feedback_log import FeedbackLog


@pytest.fixture
def client(tracking):
    from sklearn.linear_model import LogisticRegression

    c = cairn.Client(str(tracking))
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    mv = c.register_model("fraud", LogisticRegression().fit(X, [0, 0, 1, 1]), input_example=X[:2])
    c.set_alias("fraud", "prod", mv.version)
    return c


BAD = [
    ({"request_id": "", "label": 1}, "must not be empty"),
    ({"request_id": "x" * 129, "label": 1}, "at most 128"),
    ({"request_id": "a\ud800b", "label": 1}, "lone surrogate"),
    ({"request_id": 7, "label": 1}, "must be a string"),
    ({"label": 1}, "request_id is missing"),
    ({"request_id": "r"}, "label is missing"),
    ({"request_id": "r", "label": None}, "null"),
    ({"request_id": "r", "label": float("nan")}, "not a finite number"),
    ({"request_id": "r", "label": float("inf")}, "not a finite number"),
    ({"request_id": "r", "label": [1]}, "a number, a boolean or text"),
    ({"request_id": "r", "label": {"a": 1}}, "a number, a boolean or text"),
    ({"request_id": "r", "label": "y" * 257}, "at most 256"),
    ({"request_id": "r", "label": "\udc80"}, "lone surrogate"),
    ({"request_id": "r", "label": 2**70}, "64-bit"),
    ({"request_id": "r", "label": 1, "timestamp": "yesterday"}, "ISO 8601"),
    ({"request_id": "r", "label": 1, "timestamp": float("nan")}, "finite"),
    ({"request_id": "r", "label": 1, "timestamp": [1]}, "epoch seconds"),
    ({"request_id": "r", "label": 1, "extra": 2}, "unknown field"),
    ("r,1", "an object"),
]


def test_each_bad_record_is_reported_and_the_others_kept():
    good = [{"request_id": "a", "label": 1}, {"request_id": "b", "label": "fraud"},
            {"request_id": "c", "label": 0.25, "timestamp": "2025-01-31T10:00:00Z"},
            {"request_id": "d", "label": True, "timestamp": 1738317600},
            {"request_id": "e", "label": np.int64(3), "timestamp": 1738317600000}]
    records = [x for pair in zip(good, [b for b, _ in BAD[:5]]) for x in pair] + \
        [b for b, _ in BAD[5:]]
    labels, rejected = check_records(records, received=100.0)
    assert [(lab.request_id, lab.label) for lab in labels] == [
        ("a", 1), ("b", "fraud"), ("c", 0.25), ("d", True), ("e", 3)]
    assert labels[2].timestamp == labels[3].timestamp == labels[4].timestamp == 1738317600.0
    assert all(lab.received == 100.0 for lab in labels)
    assert [r.index for r in rejected] == [1, 3, 5, 7, 9] + list(range(10, 10 + len(BAD) - 5))
    for r, (_, message) in zip(rejected, BAD):
        assert message in r.error, (r, message)


def test_a_body_that_is_no_record_or_list_is_refused():
    with pytest.raises(InvalidArgument, match="a record or a list"):
        check_records("labels")
    labels, rejected = check_records({"request_id": "a", "label": 1})
    assert len(labels) == 1 and not rejected
    assert check_records([]) == ([], [])
    with pytest.raises(InvalidArgument, match="at most"):
        check_records([{}] * (MAX_RECORDS + 1))


def test_stored_per_model_and_read_by_another_client_with_types_kept(client, tracking):
    res = record_feedback(client, "fraud", [{"request_id": "a", "label": 1},
                                            {"request_id": "b", "label": 1.0},
                                            {"request_id": "c", "label": True},
                                            {"request_id": "d", "label": "1"},
                                            {"request_id": "", "label": 1}])
    assert res.stored == 4 and [r.index for r in res.rejected] == [4]
    run = client.get_run(res.run_id)
    assert run.experiment == EXPERIMENT and run.tags[MODEL_TAG] == "fraud"
    other = cairn.Client(str(tracking))
    labels = read_labels(other, "fraud")
    assert {k: v.label for k, v in labels.items()} == {"a": 1, "b": 1.0, "c": True, "d": "1"}
    assert [type(labels[k].label) for k in "abcd"] == [int, float, bool, str]
    assert read_labels(other, "nobody") == {}


def test_the_later_label_for_a_request_wins(client):
    record_feedback(client, "fraud", [{"request_id": "a", "label": 0},
                                      {"request_id": "b", "label": 0}])
    time.sleep(0.01)
    record_feedback(client, "fraud", [{"request_id": "a", "label": 1},
                                      {"request_id": "a", "label": 2}])  # later in a batch
    labels = read_labels(client, "fraud")
    assert labels["a"].label == 2 and labels["b"].label == 0
    # Two writers of one model share its run.
    assert len(client.search_runs([EXPERIMENT], f"tags.`{MODEL_TAG}` = 'fraud'")) == 1


def test_unknown_or_bad_model_is_an_error_before_any_write(client):
    with pytest.raises(NotFound):
        record_feedback(client, "nobody", [{"request_id": "a", "label": 1}])
    with pytest.raises(InvalidArgument):
        record_feedback(client, "", [{"request_id": "a", "label": 1}])
    assert read_labels(client, "nobody") == {}


# -- files and the CLI -------------------------------------------------------------------

def run(store, *args):
    return CliRunner().invoke(cli, ["--store", str(store), *args])


def test_cli_stores_a_csv_and_reports_bad_rows(client, tracking, tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("request_id,label,note\n0042,1,x\nr2,0,y\n,1,z\nr4,,w\n", encoding="utf-8")
    res = run(tracking, "monitor", "feedback", str(path), "--model", "fraud")
    assert res.exit_code == 0, res.output
    assert "2 label(s) of fraud stored, 2 rejected" in res.output
    assert "row 2: request_id" in res.output and "row 3: label is missing" in res.output
    labels = read_labels(client, "fraud")
    assert {k: v.label for k, v in labels.items()} == {"0042": 1, "r2": 0}  # "0042" as text


def test_cli_json_with_parquet(client, tracking, tmp_path):
    path = tmp_path / "labels.parquet"
    pd.DataFrame({"request_id": ["a", "b", "c"], "label": [0.5, 1.5, float("nan")],
                  "timestamp": pd.to_datetime(["2025-01-31T10:00Z"] * 3)}).to_parquet(path)
    res = run(tracking, "monitor", "feedback", str(path), "--model", "fraud", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["stored"] == 2 and doc["model"] == "fraud" and doc["run_id"]
    assert doc["rejected"] == [{"index": 2, "error": "label is missing (null)"}]
    labels = read_labels(client, "fraud")
    assert labels["a"].label == 0.5 and labels["a"].timestamp == 1738317600.0


@pytest.mark.parametrize("content,message", [
    ("id,label\na,1\n", "no column(s) request_id"),
    (b"\x00\xff\xfe garbage", "readable"),
])
def test_cli_bad_files(client, tracking, tmp_path, content, message):
    path = tmp_path / ("labels.parquet" if isinstance(content, bytes) else "labels.csv")
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    res = run(tracking, "monitor", "feedback", str(path), "--model", "fraud")
    assert res.exit_code == 1 and message in res.output, res.output


def test_cli_missing_file_and_model(client, tracking, tmp_path):
    res = run(tracking, "monitor", "feedback", str(tmp_path / "none.csv"), "--model", "fraud")
    assert res.exit_code == 1 and "no file" in res.output
    path = tmp_path / "l.csv"
    path.write_text("request_id,label\na,1\n")
    res = run(tracking, "monitor", "feedback", str(path), "--model", "nobody")
    assert res.exit_code == 1 and "nobody" in res.output
    assert read_file(path) == [{"request_id": "a", "label": 1}]


# -- the serving route --------------------------------------------------------------------

def post(app, path, body, method="POST"):
    import asyncio

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://cairn") as http:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            return await http.request(method, path, content=content,
                                      headers={"content-type": "application/json"})

    return asyncio.run(go())


def test_route_accepts_good_records_reports_bad_ones_and_stores_on_close(client):
    from cairn.serving import deploy
    from cairn.services import registry_for

    fb = FeedbackLog(client)
    d = deploy(registry_for(client), "models:/fraud@prod", follow=False, feedback=fb)
    r = post(d.app, "/v1/feedback", {"request_id": "r1", "label": 1})
    assert r.status_code == 200 and r.json() == {"accepted": 1, "rejected": []}
    r = post(d.app, "/feedback", [{"request_id": "r2", "label": 0}, {"request_id": "", "label": 1},
                                  {"request_id": "r3", "label": "a"}])
    assert r.status_code == 200
    assert r.json() == {"accepted": 2, "rejected": [{"index": 1,
                                                     "error": "request_id must not be empty"}]}
    r = post(d.app, "/v1/feedback", b"{not json")
    assert r.status_code == 400 and "not JSON" in r.json()["message"]
    r = post(d.app, "/v1/feedback", [{"request_id": "", "label": 1}])
    assert r.status_code == 400 and r.json()["accepted"] == 0
    assert r.json()["rejected"][0]["index"] == 0
    r = post(d.app, "/v1/feedback", b'"text"')
    assert r.status_code == 400
    assert post(d.app, "/v1/feedback", b"", method="GET").status_code == 405
    # Scoring is untouched.
    r = post(d.app, "/invocations", {"dataframe_split": {"columns": ["a", "b"], "data": [[3.0, 0.0]]}})
    assert r.status_code == 200 and r.json() == {"predictions": [1]}
    status = d.app.status()
    assert status["feedback"]["accepted"] == 3
    d.close()  # the writer flushes: the labels are stored once the server is gone
    assert fb.stats()["written"] == 3 and fb.stats()["queued"] == 0
    labels = read_labels(cairn.Client(client.uri), "fraud")
    assert {k: v.label for k, v in labels.items()} == {"r1": 1, "r2": 0, "r3": "a"}


def test_route_without_a_feedback_log_is_not_found(client):
    from cairn.serving import deploy
    from cairn.services import registry_for

    d = deploy(registry_for(client), "models:/fraud@prod", follow=False)
    r = post(d.app, "/v1/feedback", {"request_id": "r1", "label": 1})
    assert r.status_code == 404


class Gate:
    """A store that waits for the test (a slow store) and can fail."""

    def __init__(self, fail=0):
        self.open = threading.Event()
        self.fail = fail
        self.written = []

    def write(self, model, labels):
        self.open.wait(10)
        if self.fail:
            self.fail -= 1
            raise OSError("store down")
        self.written.extend((model, lab.request_id) for lab in labels)


def test_a_slow_store_never_holds_up_the_route_and_a_full_buffer_is_reported(client):
    from cairn.serving import deploy
    from cairn.services import registry_for

    gate = Gate()
    fb = FeedbackLog(store=gate, max_queued=3, flush_seconds=0.01)
    d = deploy(registry_for(client), "models:/fraud@prod", follow=False, feedback=fb)
    started = time.perf_counter()
    r = post(d.app, "/v1/feedback", [{"request_id": f"r{i}", "label": 1} for i in range(5)])
    assert time.perf_counter() - started < 2
    assert r.status_code == 200 and r.json()["accepted"] == 3
    assert [x["index"] for x in r.json()["rejected"]] == [3, 4]
    assert "queue is full" in r.json()["rejected"][0]["error"]
    gate.open.set()
    d.close()
    assert gate.written == [("fraud", "r0"), ("fraud", "r1"), ("fraud", "r2")]


def test_a_failed_write_is_tried_once_more_then_counted_as_dropped():
    gate = Gate(fail=1)
    gate.open.set()
    fb = FeedbackLog(store=gate, flush_seconds=0.01)
    assert fb.put("fraud", check_records([{"request_id": "a", "label": 1}])[0]) == 1
    fb.close()
    assert gate.written == [("fraud", "a")]
    assert fb.stats() == {"queued": 0, "accepted": 1, "written": 1, "dropped": 0,
                          "failed_writes": 1}
    gate = Gate(fail=2)
    gate.open.set()
    fb = FeedbackLog(store=gate, flush_seconds=0.01)
    fb.put("fraud", check_records([{"request_id": "a", "label": 1}])[0])
    fb.close()
    assert fb.stats()["dropped"] == 1 and fb.stats()["queued"] == 0
    assert fb.put("fraud", check_records([{"request_id": "b", "label": 1}])[0]) == 0  # closed


def test_feedback_log_arguments():
    with pytest.raises(InvalidArgument):
        FeedbackLog()
    with pytest.raises(InvalidArgument):
        FeedbackLog(store=Gate(), max_queued=0)
    with pytest.raises(InvalidArgument):
        FeedbackLog(store=Gate(), flush_seconds=float("nan"))
    FeedbackStore(object())  # no I/O in the constructor


def test_any_json_body_is_answered_record_by_record():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                       st.text(max_size=300))
    value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=5)
    record = st.one_of(value, st.fixed_dictionaries(
        {"request_id": st.one_of(st.text(max_size=140), value), "label": value},
        optional={"timestamp": value}))

    @settings(max_examples=150, deadline=None)
    @given(st.lists(record, max_size=8))
    def check(records):
        labels, rejected = check_records(records, received=1.0)
        assert len(labels) + len(rejected) == len(records)
        for lab in labels:
            assert 0 < len(lab.request_id) <= 128
            lab.request_id.encode("utf-8")
            assert json.loads(json.dumps(lab.label, allow_nan=False)) == lab.label

    check()


def test_labels_answered_over_http_are_stored_once_the_server_exits(client):
    from serving import ThreadedServer

    from cairn.serving import deploy
    from cairn.services import registry_for

    fb = FeedbackLog(client, flush_seconds=3600)  # only the shutdown writes them
    d = deploy(registry_for(client), "models:/fraud@prod", follow=False, feedback=fb)
    with ThreadedServer(d.app) as url:
        r = httpx.post(url + "/v1/feedback", json=[{"request_id": f"h{i}", "label": i % 2}
                                                   for i in range(50)])
        assert r.status_code == 200 and r.json()["accepted"] == 50
        assert read_labels(client, "fraud") == {}  # not written yet
    labels = read_labels(cairn.Client(client.uri), "fraud")
    assert len(labels) == 50 and labels["h3"].label == 1
