"""Faults a review found: each keeps its test."""

import asyncio
import json
import time

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

import cairn
from cairn.cli.main import cli
from cairn.errors import InvalidArgument
from cairn.serving import deploy
from cairn.serving.events import Scored
from cairn.serving.predlog import PredictionLog, keeps
from cairn.serving.predlog_read import segments

from .conftest import COLUMNS


class DictModel:
    """Takes whatever it is given (no signature) and answers one value."""

    def predict(self, x):
        return [1.0]


async def _post(app, path, body, headers=None):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as http:
        content = body if isinstance(body, str) else json.dumps(body)  # Infinity as JSON5 does
        return await http.post(path, content=content,
                               headers={"Content-Type": "application/json", **(headers or {})})


def test_a_scalar_dict_input_is_counted_after_it_is_answered(registry, tracking):
    import tests.serving_.test_review_fixes as me  # pickled by reference

    c = cairn.Client(str(tracking))
    c.register_model("d", me.DictModel(), flavor="pickle")
    seen = []

    class Watch:
        def scored(self, event):
            seen.append(event)

        def close(self):
            pass

    d = deploy(registry, "models:/d/1.0.0", follow=False, observers=[Watch()])
    r = asyncio.run(_post(d.app, "/v1/predict", {"inputs": {"a": 1.0, "b": 2.0}}))
    assert r.status_code == 200
    assert len(seen) == 1 and seen[0].rows == 1
    assert d.router.primary.stats.requests == 1


@pytest.mark.parametrize("row", [[float("inf"), 1.0, 2.0], [1.0, float("-inf"), 2.0]])
def test_an_infinite_input_is_a_400_unless_allowed(registry, fraud, row):
    body = json.dumps({"dataframe_split": {"columns": COLUMNS, "data": [row]}})
    d = deploy(registry, "models:/fraud@prod", follow=False)
    r = asyncio.run(_post(d.app, "/invocations", body))
    assert r.status_code == 400 and "infinite value in row 0" in r.json()["message"]
    allowed = deploy(registry, "models:/fraud@prod", follow=False, allow_nan=True)
    r = asyncio.run(_post(allowed.app, "/invocations", body))
    # Passed to the model, which refuses infinities itself: its failure, not the checks'.
    assert (r.status_code, r.json()["error_code"]) == (500, "INTERNAL_ERROR"), r.text


@pytest.mark.parametrize("poll", ["-1", "nan", "1e300", "inf"])
def test_a_poll_out_of_range_is_refused(tracking, fraud, poll):
    result = CliRunner().invoke(cli, ["--store", str(tracking), "serve", "models:/fraud@prod",
                                      "--poll", poll])
    assert result.exit_code == 2 and "--poll" in result.output


def test_sampling_is_keyed_by_a_secret_salt():
    ids = [f"r{i}" for i in range(2000)]
    plain = [keeps(i, 0.5) for i in ids]
    salted = [keeps(i, 0.5, "secret-1") for i in ids]
    assert salted == [keeps(i, 0.5, "secret-1") for i in ids]  # stable for one salt
    assert salted != plain and salted != [keeps(i, 0.5, "secret-2") for i in ids]
    assert 800 < sum(salted) < 1200


def test_the_queue_is_bounded_in_rows_too(tracking):
    import threading

    stuck, release = threading.Event(), threading.Event()

    class Stuck:  # the first segment's upload holds the writer, so the queue fills
        def upload(self, *a):
            stuck.set()
            release.wait(30)

    log = PredictionLog(sink=Stuck(), max_queued_rows=100, flush_rows=1, close_timeout=5)

    def event(i, rows):
        return Scored(f"r{i}", "m", "1.0.0", "primary", "/invocations", 200, None,
                      time.time(), 0.01, rows, np.zeros((rows, 2)), np.zeros(rows))

    log.scored(event(0, 60))
    assert stuck.wait(10)  # the writer took it and is uploading
    log.scored(event(1, 60))  # 60 rows queued
    log.scored(event(2, 60))  # 120 > 100: dropped
    log.scored(event(3, 40))  # 100: queued
    stats = log.stats()
    assert (stats["dropped"], stats["queued"]) == (1, 2)
    release.set()
    log.close()
    assert log.stats()["written_rows"] == 160


def test_a_version_that_is_not_one_is_refused_when_reading_the_log(tracking):
    with pytest.raises(InvalidArgument, match="semantic version"):
        segments(cairn.Client(str(tracking)), "fraud", version="1.0")


def test_an_export_to_an_unknown_extension_is_refused_not_written_as_parquet(tracking, fraud):
    result = CliRunner().invoke(cli, ["--store", str(tracking), "predictions", "export",
                                      "fraud", "-o", str(tracking.parent / "out.json")])
    assert result.exit_code != 0 and "--format" in result.output
    assert not (tracking.parent / "out.json").exists()
