"""MLflow's own scoring client and request helpers talk to `cairn serve` unchanged."""

import httpx
import numpy as np
import pytest

import cairn
from cairn.serving import deploy
from serving import ThreadedServer

from .conftest import fit

pytestmark = pytest.mark.slow  # imports mlflow (a few seconds)


# MLflow's helper compares an index with a range, which pandas 3 deprecates: MLflow's to fix.
@pytest.mark.filterwarnings("ignore:Operation with range is deprecated")
def test_mlflows_scoring_client_and_serving_input_helper(registry, tracking, frame, fraud):
    client_mod = pytest.importorskip("mlflow.pyfunc.scoring_server.client")
    from mlflow.models import convert_input_example_to_serving_input

    X, y = frame
    model = fit(frame)
    arr = X.to_numpy()
    cairn.Client(str(tracking)).register_model("arrays", fit((arr, y)), input_example=arr[:5])
    for ref, data in (("models:/fraud@prod", X[:5]), ("models:/arrays/1.0.0", arr[:5])):
        d = deploy(registry, ref, follow=False)
        with ThreadedServer(d.app) as base:
            host, port = base.removeprefix("http://").split(":")
            client = client_mod.ScoringServerClient(host, int(port))
            client.wait_server_ready(timeout=10)
            assert client.get_version() == cairn.__version__
            for params in (None, {}):
                answer = client.invoke(data, params=params)
                got = answer.get_predictions(predictions_format="ndarray")
                assert np.array_equal(np.asarray(got).ravel(), model.predict(X[:5])), ref
            body = convert_input_example_to_serving_input(data)
            r = httpx.post(base + "/invocations", content=body,
                                         headers={"Content-Type": "application/json"})
            assert r.status_code == 200, r.text
            assert r.json() == {"predictions": model.predict(X[:5]).tolist()}


def test_outputs_are_written_as_mlflows_predictions_to_json():
    import io
    import json
    import warnings

    import pandas as pd

    with warnings.catch_warnings():  # mlflow warns about its own type hints on import
        warnings.simplefilter("ignore")
        from mlflow.pyfunc.scoring_server import predictions_to_json

    from cairn.serving.app import jsonable

    outputs = [pd.DataFrame({"t": [pd.Timestamp("2024-01-01 10:00:00.5", tz="UTC"),
                                   pd.Timestamp("2024-02-01")], "x": [1.5, 2]}),
               pd.DataFrame({"d": pd.to_datetime(["2024-01-01", "2024-01-02"]).date}),
               pd.DataFrame({"t": [pd.Timestamp("2024-01-01"), pd.NaT]}),
               pd.Series([1, 2], name="p"), pd.Series([0.5, 1.5]),
               np.array(["2024-01-01", "NaT"], dtype="datetime64[D]")]
    for out in outputs:
        buf = io.StringIO()
        predictions_to_json(out, buf)
        assert json.loads(json.dumps({"predictions": jsonable(out)})) == \
            json.loads(buf.getvalue()), out
