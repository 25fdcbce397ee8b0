"""Serving from a team server (`cairn serve --uri http://...`): the same load, checks and
alias following, through the registry's REST API."""

import time

import httpx

import cairn
from cairn.services import registry_for
from cairn.serving import deploy
from serving import ThreadedServer

from .conftest import COLUMNS, fit


def test_serving_a_model_from_a_cairn_server_follows_its_alias(cairn_server, frame):
    c = cairn.Client(cairn_server)
    v1 = c.register_model("fraud", fit(frame), input_example=frame[0][:5])
    c.set_alias("fraud", "prod", v1.version)
    d = deploy(registry_for(c), "models:/fraud@prod", poll=0.05)
    body = {"dataframe_split": {"columns": COLUMNS, "data": frame[0][:3].to_numpy().tolist()}}
    with ThreadedServer(d.app) as base:
        d.follower.start()
        try:
            r = httpx.post(base + "/invocations", json=body)
            assert r.status_code == 200, r.text
            assert r.json() == {"predictions": fit(frame).predict(frame[0][:3]).tolist()}
            v2 = c.register_model("fraud", fit(frame, "forest"), input_example=frame[0][:5])
            c.set_alias("fraud", "prod", v2.version)
            deadline = time.monotonic() + 10
            while d.holder.current.version.version != v2.version:
                assert time.monotonic() < deadline, "the alias move was not followed"
                time.sleep(0.05)
            r = httpx.post(base + "/v1/predict", json=body)
            assert r.json()["model_version"] == v2.version
            assert r.json()["predictions"] == fit(frame, "forest").predict(frame[0][:3]).tolist()
        finally:
            d.close()
