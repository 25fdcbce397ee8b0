"""A real store for drift tests: a scikit-learn pipeline trained on a data set version that
its run logged with role ``train``, registered from that run, and a prediction log written
by the serving code's own PredictionLog, one hour undrifted and one hour drifted."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import cairn
from cairn.serving.events import PRIMARY, Scored
from cairn.serving.predlog import PredictionLog

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 1, 31, 10, 0, tzinfo=UTC)   # the log's first hour
CHANNELS = np.array(["web", "app", "store"], object)
FEATURES = ["amount", "age", "channel"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("CAIRN_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("CAIRN_USER", "alice")
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")


def transactions(n, seed=0, shift=0.0, channels=(0.5, 0.3, 0.2)):
    """``n`` rows of the training distribution; ``shift`` moves amount by that many
    standard deviations and ``channels`` sets the channel mix."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "amount": rng.normal(100.0 + 20.0 * shift, 20.0, n),
        "age": rng.integers(18, 80, n).astype(np.int64),
        "channel": rng.choice(CHANNELS, n, p=list(channels)),
    })


def labels(frame):
    return ((frame["amount"] > 105) ^ (frame["channel"] == "store")).astype(int)


def pipeline():
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    prep = ColumnTransformer([("num", StandardScaler(), ["amount", "age"]),
                              ("cat", OneHotEncoder(handle_unknown="ignore"), ["channel"])])
    return make_pipeline(prep, LogisticRegression())


def train(client, rows=2000, name="fraud", dataset="transactions", tmp=None, role="train",
          log_input=True):
    """Register ``name``: trained on a Parquet data set version logged as the run's input."""
    frame = transactions(rows)
    path = tmp / f"{dataset}.parquet"
    frame.to_parquet(path)
    version = cairn.data.Datasets(client).add(path, dataset)
    exp = client.get_or_create_experiment("training")
    run = client.create_run(exp.id)
    if log_input:
        client.log_input(run.id, version.ref, role=role)
    model = pipeline().fit(frame, labels(frame))
    mv = client.register_model(name, model, run_id=run.id, input_example=frame[:5])
    client.set_terminated(run.id)
    client.transition_model_version_stage(name, mv.version, "production")
    return mv, model, version


def write_log(client, model, hours, name="fraud", version="1.0.0", per_request=50):
    """Score and log ``hours``: a list of frames, the i-th logged in hour T0 + i."""
    plog = PredictionLog(client, flush_rows=100_000, flush_seconds=3600)
    for h, frame in enumerate(hours):
        base = (T0 + dt.timedelta(hours=h)).timestamp()
        for i in range(0, len(frame), per_request):
            part = (frame[i:i + per_request] if isinstance(frame, np.ndarray)
                    else frame.iloc[i:i + per_request].reset_index(drop=True))
            plog.scored(Scored(f"r{h}-{i}", name, version, PRIMARY, "/invocations", 200, None,
                               base + i * 3600 / len(frame), 0.004, len(part), part,
                               model.predict(part)))
        plog.scored(Scored(f"bad{h}", name, version, PRIMARY, "/invocations", 400,
                           "BAD_REQUEST", base + 30, 0.001, 0))
    plog.close()
    assert plog.stats()["dropped"] == 0


@pytest.fixture
def fraud(tracking, tmp_path):
    """``fraud`` 1.0.0 @production, with one undrifted and one drifted hour logged."""
    client = cairn.Client(str(tracking))
    mv, model, version = train(client, tmp=tmp_path)
    write_log(client, model, [transactions(600, seed=5),
                              transactions(600, seed=2, shift=1.0, channels=(0.1, 0.2, 0.7))])
    return client, mv, version
