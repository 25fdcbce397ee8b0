"""MLflow's scoring protocol and Cairn's /v1/predict over real HTTP, on real scikit-learn models."""

import numpy as np
import httpx
import pytest

import cairn
from cairn.serving import deploy

from serving import ThreadedServer
from .conftest import COLUMNS, fit
from .models import Proba


@pytest.fixture
def url(fraud_url):
    return fraud_url


def expected(frame, rows):
    return fit(frame).predict(frame[0][:rows]).tolist()


def rows(frame, n=3):
    return frame[0][:n]


BODIES = {
    "dataframe_split": lambda df: {"dataframe_split": df.to_dict("split") | {"index": None}},
    "dataframe_split no index": lambda df: {"dataframe_split": {
        "columns": list(df.columns), "data": df.to_numpy().tolist()}},
    "dataframe_records": lambda df: {"dataframe_records": df.to_dict("records")},
    "instances as rows": lambda df: {"instances": df.to_numpy().tolist()},
    "instances as records": lambda df: {"instances": df.to_dict("records")},
    "inputs as columns": lambda df: {"inputs": df.to_dict("list")},
    "inputs as rows": lambda df: {"inputs": df.to_numpy().tolist()},
    "with params": lambda df: {"dataframe_records": df.to_dict("records"), "params": {}},
}


@pytest.mark.parametrize("fmt", list(BODIES))
def test_every_json_format_scores_like_the_model(url, frame, fmt):
    r = httpx.post(url + "/invocations", json=BODIES[fmt](rows(frame)))
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": expected(frame, 3)}
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cairn-model-version"] == "1.0.0"
    assert len(r.headers["cairn-request-id"]) == 32


def test_csv_body(url, frame):
    r = httpx.post(url + "/invocations", content=rows(frame, 4).to_csv(index=False),
                   headers={"Content-Type": "text/csv; charset=utf-8"})
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": expected(frame, 4)}


def test_integers_where_floats_are_expected_are_cast(url, frame):
    r = httpx.post(url + "/invocations", json={"dataframe_split": {
        "columns": COLUMNS, "data": [[1, 2, 3]]}})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] in ([0], [1])


def test_v1_predict_adds_request_id_and_version(url, frame):
    body = BODIES["dataframe_records"](rows(frame, 2))
    r = httpx.post(url + "/v1/predict", json=body)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["predictions"] == expected(frame, 2)
    assert doc["model_version"] == "1.0.0" == r.headers["cairn-model-version"]
    assert doc["request_id"] == r.headers["cairn-request-id"]
    # A caller's own request id is kept, so it can join feedback later.
    r = httpx.post(url + "/v1/predict", json=body, headers={"Cairn-Request-Id": "abc-123"})
    assert r.json()["request_id"] == "abc-123" == r.headers["cairn-request-id"]
    for odd in ("", "x" * 129, "two words", "é"):  # not a plain token: a fresh id instead
        r = httpx.post(url + "/v1/predict", json=body,
                       headers={"Cairn-Request-Id": odd.encode()})
        assert r.status_code == 200 and len(r.json()["request_id"]) == 32
        assert r.json()["request_id"] == r.headers["cairn-request-id"]
    csv = httpx.post(url + "/v1/predict", content=rows(frame, 2).to_csv(index=False),
                     headers={"Content-Type": "text/csv"})
    assert csv.json()["predictions"] == expected(frame, 2)


def test_ping_health_version(url):
    for path in ("/ping", "/health"):
        r = httpx.get(url + path)
        assert (r.status_code, r.text) == (200, "\n")
        assert r.headers["cairn-model-version"] == "1.0.0"
        assert r.headers["cairn-request-id"]
    r = httpx.get(url + "/version")
    assert r.status_code == 200 and r.text == cairn.__version__


def test_unknown_route_and_method(url):
    r = httpx.get(url + "/nope")
    assert r.status_code == 404 and r.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    r = httpx.get(url + "/invocations")
    assert r.status_code == 405 and "POST" in r.json()["message"]
    assert r.headers["cairn-request-id"]


def test_a_tensor_model_and_a_random_forest(registry, tracking, frame):
    c = cairn.Client(str(tracking))
    X = frame[0].to_numpy()
    forest = fit((X, frame[1]), "forest")
    c.register_model("trees", forest, input_example=X[:5])
    d = deploy(registry, "models:/trees/1.0.0", follow=False)
    assert d.follower is None  # a fixed version is not followed
    with ThreadedServer(d.app) as base:
        for body in ({"instances": X[:3].tolist()}, {"inputs": X[:3].tolist()},
                     {"dataframe_split": {"columns": ["a", "b", "c"], "data": X[:3].tolist()}}):
            r = httpx.post(base + "/invocations", json=body)
            assert r.status_code == 200, r.text
            assert r.json() == {"predictions": forest.predict(X[:3]).tolist()}
        r = httpx.post(base + "/invocations", json={"inputs": X[:2, :2].tolist()})
        assert r.status_code == 400 and "dimension 1 is 2, expected 3" in r.json()["message"]


def test_a_model_without_signature_gets_what_was_sent(registry, tracking, frame):
    c = cairn.Client(str(tracking))
    X = frame[0].to_numpy()
    model = fit((X, frame[1]))
    c.register_model("bare", model)
    d = deploy(registry, "models:/bare/1.0.0", follow=False)
    with ThreadedServer(d.app) as base:
        r = httpx.post(base + "/invocations", json={"instances": X[:2].tolist()})
        assert r.json() == {"predictions": model.predict(X[:2]).tolist()}


def test_predict_proba_style_outputs_are_lists(registry, tracking, frame):
    c = cairn.Client(str(tracking))
    model = Proba(fit(frame))
    c.register_model("proba", model, input_example=frame[0][:5], flavor="pickle")
    d = deploy(registry, "models:/proba/1.0.0", follow=False)
    with ThreadedServer(d.app) as base:
        r = httpx.post(base + "/invocations", json=BODIES["dataframe_records"](rows(frame, 2)))
        assert r.status_code == 200, r.text
        assert np.allclose(r.json()["predictions"], model.predict(rows(frame, 2)))



def test_frames_with_datetimes_and_series_answer_as_mlflow_does():
    """What mlflow 3.17's predictions_to_json writes (test_mlflow_client compares the two)."""
    import pandas as pd

    from cairn.serving.app import jsonable

    frame = pd.DataFrame({"t": [pd.Timestamp("2024-01-01 10:00:00.5", tz="UTC"),
                                pd.Timestamp("2024-02-01", tz="UTC")], "x": [1.5, 2]})
    assert jsonable(frame) == [{"t": "2024-01-01T10:00:00.500000+00:00", "x": 1.5},
                               {"t": "2024-02-01T00:00:00+00:00", "x": 2.0}]
    assert jsonable(pd.Series([1, 2], name="p")) == [{"p": 1}, {"p": 2}]
    assert jsonable(pd.Series([0.5])) == [{"0": 0.5}]
    assert jsonable(np.array(["2024-01-01"], dtype="datetime64[D]")) == ["2024-01-01"]
    assert jsonable(pd.DataFrame({"t": [pd.NaT]})) == [{"t": "NaT"}]
