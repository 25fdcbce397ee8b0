"""Every bad request gets a 4xx naming what is wrong (never a 500); a model that raises gets a
500 for that request only; a corrupt model is refused at load; an alias to nowhere fails."""

import json
import os

import httpx
import pytest

import cairn
from cairn import CorruptObject, NotFound
from cairn.serving import deploy
from serving import ThreadedServer

from .conftest import COLUMNS, fit
from .models import Raises, Sets


@pytest.fixture
def url(fraud_url):
    return fraud_url


def post(url, body, content_type="application/json", path="/invocations"):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return httpx.post(url + path, content=data, headers={"Content-Type": content_type})


def split(columns, data):
    return {"dataframe_split": {"columns": columns, "data": data}}


BAD = {
    "malformed JSON": ('{"dataframe_split": ', "not valid JSON"),
    "a JSON list": ("[1, 2]", "got a list"),
    "no format key": ({"data": [[1, 2, 3]]}, "exactly one of the keys"),
    "two format keys": ({"instances": [[1, 2, 3]], "inputs": [[1, 2, 3]]}, "exactly one"),
    "unknown extra key": ({"instances": [[1, 2, 3]], "colums": []}, "colums"),
    "missing column": (split(["amount", "age"], [[1.0, 2.0]]), "column 'score' is missing"),
    "unexpected column": (split([*COLUMNS, "zip"], [[1.0, 2.0, 3.0, 4.0]]),
                          "unexpected column 'zip'"),
    "text in a number column": (split(COLUMNS, [[1.0, "x", 3.0]]), "column 'age' holds text"),
    "null": (split(COLUMNS, [[1.0, None, 3.0]]), "column 'age' holds a missing value"),
    "NaN": ('{"dataframe_records": [{"amount": NaN, "age": 1, "score": 2}]}',
            "column 'amount' holds a missing value"),
    "row too short": (split(COLUMNS, [[1.0, 2.0]]), "row 0 has 2 values for 3 columns"),
    "wrong width": ({"instances": [[1.0, 2.0]]}, "shape [1, 2]"),
    "ragged rows": ({"inputs": [[1.0, 2.0, 3.0], [1.0]]}, "not a rectangular array"),
    "split without data": ({"dataframe_split": {"columns": COLUMNS}}, "dataframe_split"),
    "records not a list": ({"dataframe_records": {"amount": 1}}, "list of objects"),
    "empty CSV": (("", "text/csv"), "CSV body is empty"),
    "CSV missing a column": (("amount,age\n1,2\n", "text/csv"), "column 'score' is missing"),
    "not UTF-8": ((b"\xff\xfe{}", "application/json"), "not valid UTF-8"),
}


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("path", ["/invocations", "/v1/predict"])
def test_bad_input_is_a_400_naming_the_problem(url, case, path):
    body, needle = BAD[case]
    ctype = "application/json"
    if isinstance(body, tuple):
        body, ctype = body
    r = post(url, body, ctype, path)
    assert r.status_code == 400, r.text
    doc = r.json()
    assert doc["error_code"] == "BAD_REQUEST"
    assert needle in doc["message"], doc["message"]
    assert r.headers["cairn-model-version"] == "1.0.0" and r.headers["cairn-request-id"]


def test_other_content_types_are_415(url):
    r = post(url, "<xml/>", "application/xml")
    assert r.status_code == 415 and "application/json or text/csv" in r.json()["message"]
    r = post(url, "{}", "application/json; charset=latin-1")
    assert r.status_code == 415 and "UTF-8" in r.json()["message"]


def test_an_oversized_body_is_413(url):
    body = json.dumps(split(COLUMNS, [[1.0, 2.0, 3.0]] * 400))
    assert len(body) > 4096
    r = post(url, body)
    assert r.status_code == 413, r.text
    assert r.json()["error_code"] == "RESOURCE_LIMIT_EXCEEDED" and "4096" in r.json()["message"]

    def chunks():  # no Content-Length: the limit is counted as the body streams in
        for _ in range(10):
            yield b" " * 1000

    r = httpx.post(url + "/invocations", content=chunks(),
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert post(url, split(COLUMNS, [[1.0, 2.0, 3.0]])).status_code == 200


def test_nan_passes_only_where_allowed(registry, fraud):
    body = '{"dataframe_records": [{"amount": NaN, "age": 1, "score": 2}]}'

    class Echo:
        def predict(self, x):
            return x["amount"].isna().to_numpy()

    d = deploy(registry, "models:/fraud@prod", follow=False, allow_nan=True)
    d.holder.switch(type(d.holder.current)(d.holder.current.version, Echo(), Echo().predict))
    with ThreadedServer(d.app) as base:
        r = post(base, body)
        assert r.status_code == 200 and r.json() == {"predictions": [True]}


def test_an_integer_column_never_takes_a_null(registry, tracking, frame):
    X, y = frame
    X = X.assign(visits=(X["age"].abs() * 10).astype("int64"))
    c = cairn.Client(str(tracking))
    c.register_model("visits", fit((X, y)), input_example=X[:5])
    d = deploy(registry, "models:/visits/1.0.0", follow=False, allow_nan=True)
    with ThreadedServer(d.app) as base:
        row = {"amount": 1.0, "age": 1.0, "score": 2.0, "visits": 3}
        assert post(base, {"dataframe_records": [row]}).status_code == 200
        r = post(base, {"dataframe_records": [row, {**row, "visits": None}]})
        assert r.status_code == 400
        assert "column 'visits' holds a missing value (null or NaN) in row 1" in \
            r.json()["message"]
        r = post(base, {"dataframe_records": [{**row, "visits": 2.5}]})
        assert r.status_code == 400 and "column 'visits' is float64, expected int64" in \
            r.json()["message"]


def test_a_model_that_raises_is_a_500_for_that_request_only(registry, tracking, frame,
                                                             caplog):
    import logging

    c = cairn.Client(str(tracking))
    c.register_model("flaky", Raises(fit(frame)), input_example=frame[0][:5], flavor="pickle")
    d = deploy(registry, "models:/flaky/1.0.0", follow=False)
    with ThreadedServer(d.app) as base, caplog.at_level(logging.ERROR, "cairn.serving"):
        r = post(base, split(COLUMNS, [[500.0, 1.0, 1.0]]))
        assert r.status_code == 500
        rid = r.headers["cairn-request-id"]
        # The model's own exception text can hold paths and internals: only the log has it.
        assert r.json() == {"error_code": "INTERNAL_ERROR", "request_id": rid,
                            "message": f"the model flaky/1.0.0 failed inside predict on "
                            f"request {rid}; the server's log has the detail"}
        assert rid in caplog.text and "amount out of range" in caplog.text
        for _ in range(3):  # the server stays up and answers the next requests
            assert post(base, split(COLUMNS, [[1.0, 1.0, 1.0]])).status_code == 200


def test_predictions_json_cannot_hold_are_a_clear_500(registry, tracking, frame):
    cairn.Client(str(tracking)).register_model("sets", Sets(), flavor="pickle")
    d = deploy(registry, "models:/sets/1.0.0", follow=False)
    with ThreadedServer(d.app) as base:
        r = post(base, split(COLUMNS, [[1.0, 1.0, 1.0]]))
        assert r.status_code == 500 and r.json()["error_code"] == "INTERNAL_ERROR"
        assert "predictions of sets/1.0.0 cannot be written as JSON" in r.json()["message"]
        assert r.headers["cairn-model-version"] == "1.0.0"


def test_an_alias_that_points_nowhere(registry, fraud):
    with pytest.raises(NotFound, match="nothing to serve: model 'fraud' has no alias 'gone'"):
        deploy(registry, "models:/fraud@gone")
    with pytest.raises(NotFound, match="nothing to serve"):
        deploy(registry, "models:/nobody@prod")
    with pytest.raises(NotFound, match="nothing to serve"):
        deploy(registry, "models:/fraud/9.9.9")


def test_a_model_whose_files_fail_their_digest_is_refused(registry, tracking, fraud):
    c = cairn.Client(str(tracking))
    entry = next(e for e in c.store.objects.get_tree(fraud.tree_oid)
                 if e.path == "model/model.pkl")
    path = tracking / "objects" / entry.digest[:2] / entry.digest[2:]
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptObject, match="file model/model.pkl is corrupt"):
        deploy(registry, "models:/fraud@prod")


def test_a_directory_model_cannot_be_served(registry, tracking, tmp_path):
    from cairn import InvalidArgument

    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"123")
    cairn.Client(str(tracking)).register_model("folder", folder, flavor="directory")
    with pytest.raises(InvalidArgument, match="no predict"):
        deploy(registry, "models:/folder/1.0.0")


@pytest.fixture
def big(fraud_deployment):
    """The module's model behind an app that takes bodies up to 16 MiB (called directly)."""
    from cairn.serving.app import ScoringApp

    app = ScoringApp(fraud_deployment.holder, max_body=16 << 20)

    def score(body, ctype="application/json"):
        from .conftest import call

        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        status, _, payload = call(app, "/invocations",
                                  data.encode() if isinstance(data, str) else data, ctype)
        return status, json.loads(payload)
    return score


@pytest.mark.parametrize("body", ['{"inputs": ' + "[" * 100000,
                                  '{"inputs": ' + '{"a": ' * 100000,
                                  '{"inputs": ' + "[" * 5000 + "]" * 5000 + "}"])
def test_deeply_nested_json_is_a_400(big, body, caplog):
    status, doc = big(body)
    assert status == 400, doc
    assert doc["error_code"] == "BAD_REQUEST" and "nested too deeply" in doc["message"]
    assert "Traceback" not in caplog.text


def test_a_huge_integer_is_a_400_naming_the_field(url):
    from cairn.serving.errors import RequestError
    from cairn.serving.inputs import parse
    from cairn.serving.validate import conform

    huge = "1" + "0" * 400
    tensor = {"inputs": {"type": "tensor", "dtype": "float64", "shape": [-1, 3]}}
    with pytest.raises(RequestError) as err:
        conform(parse(('{"instances": [[' + huge + ', 1.0, 2.0]]}').encode(),
                      "application/json"), tensor)
    assert err.value.status == 400 and "input holds a number too large for float64" in \
        err.value.message
    r = post(url, '{"dataframe_split": {"columns": ["amount", "age", "score"], '
             '"data": [[' + huge + ', 1.0, 2.0]]}}')
    assert r.status_code == 400, r.text
    assert "column 'amount' holds a number out of range for float64" in r.json()["message"]
    r = post(url, {"dataframe_records": [{"amount": 10**30, "age": 1.0, "score": 2.0}]})
    assert r.status_code == 200, r.text  # past int64, but a float64 holds it


def test_duplicate_column_names_are_a_400(url):
    r = post(url, split(["amount", "amount", "score"], [[1.0, 2.0, 3.0]]))
    assert r.status_code == 400, r.text
    assert "duplicate column 'amount'" in r.json()["message"]


def test_too_many_columns_are_a_400_without_a_huge_body(big):
    import time

    n = 20_001
    header = ",".join(f"c{i}" for i in range(n))
    started = time.monotonic()
    status, doc = big(header + "\n" + ",".join("1" for _ in range(n)) + "\n", "text/csv")
    assert status == 400 and "10000 columns" in doc["message"], doc
    status, doc = big(split([f"c{i}" for i in range(n)], [[1.0] * n]))
    assert status == 400 and "10000 columns" in doc["message"], doc
    status, doc = big({"dataframe_records": [{f"c{i}": 1.0 for i in range(n)}]})
    assert status == 400 and "10000 columns" in doc["message"], doc
    status, doc = big({"inputs": {f"c{i}": [1.0] for i in range(n)}})
    assert status == 400 and "10000 columns" in doc["message"], doc
    assert time.monotonic() - started < 10


def test_the_problems_in_an_error_body_are_capped(big):
    names = ["amount", "age", "score"] + [f"extra{i}" for i in range(500)]
    status, doc = big(split(names, [[1.0] * len(names)]))
    assert status == 400, doc
    assert len(doc["problems"]) == 20 and doc["problem_count"] == 500
    assert "and 480 more" in doc["message"] and len(json.dumps(doc)) < 5000


def test_a_float_out_of_an_integer_range_is_a_400(registry, tracking, frame):
    X, y = frame
    X = X.assign(visits=(X["age"].abs() * 10).astype("int64"))
    cairn.Client(str(tracking)).register_model("visits", fit((X, y)), input_example=X[:5])
    d = deploy(registry, "models:/visits/1.0.0", follow=False)
    from .conftest import call

    row = {"amount": 1.0, "age": 1.0, "score": 2.0}
    for visits in (1e300, -1e19, 9.3e18, 10**30):
        status, _, payload = call(d.app, "/invocations", json.dumps(
            {"dataframe_records": [{**row, "visits": visits}]}).encode(), "application/json")
        assert status == 400, payload
        assert "column 'visits'" in json.loads(payload)["message"]
        assert "out of range for int64" in json.loads(payload)["message"]
    status, _, payload = call(d.app, "/invocations", json.dumps(
        {"dataframe_records": [{**row, "visits": 3.0}]}).encode(), "application/json")
    assert status == 200, payload


@pytest.mark.parametrize("ctype", ["application/json; Charset=latin-1",
                                   "application/json; CHARSET=LATIN-1"])
def test_content_type_parameter_names_ignore_case(url, ctype):
    r = post(url, split(COLUMNS, [[1.0, 2.0, 3.0]]), ctype)
    assert r.status_code == 415 and "UTF-8" in r.json()["message"]
    ok = post(url, split(COLUMNS, [[1.0, 2.0, 3.0]]), "application/json; Charset=UTF-8")
    assert ok.status_code == 200, ok.text


def test_a_bare_charset_is_a_415_saying_why(url):
    r = post(url, split(COLUMNS, [[1.0, 2.0, 3.0]]), "application/json; charset")
    assert r.status_code == 415
    assert "charset parameter has no value" in r.json()["message"]


def test_every_error_body_lists_at_most_20_names(big):
    import pandas as pd

    from cairn.serving.errors import RequestError
    from cairn.serving.inputs import Parsed
    from cairn.serving.validate import conform

    status, doc = big({"instances": [[1.0]], **{f"k{i}": 1 for i in range(5000)}})
    assert status == 400 and doc["key_count"] == 5001 and len(doc["keys"]) == 20
    assert "and 4981 more" in doc["message"] and len(json.dumps(doc)) < 2000
    tensor = {"inputs": {"type": "tensor", "dtype": "float64", "shape": [-1, 500]}}
    wide = pd.DataFrame({f"t{i}": ["x"] for i in range(500)})
    for value in (wide, {f"t{i}": [1.0] for i in range(500)}):
        with pytest.raises(RequestError) as err:
            conform(Parsed("dataframe_split", value), tensor)
        assert "and 480 more" in err.value.message and len(err.value.message) < 1000
