"""Prometheus metrics for `cairn serve`: counted from Scored events, read back with
prometheus-client's own parser, over real HTTP, and summed over worker processes."""

import os
import subprocess
import sys
import textwrap
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import cairn
from cairn.serving import ScoringApp, deploy
from cairn.serving.events import CANARY, PRIMARY, Scored
from cairn.serving.metrics import ENV, ServingMetrics, multiprocess_dir

from .conftest import COLUMNS, fit
from .models import Raises

PREDLOG = {"queued": 3, "dropped": 2, "written_rows": 40, "written_segments": 1,
           "failed_writes": 0}


def samples(text: str) -> dict:
    """{(sample name, {label: value} as a sorted tuple): value} of an exposition."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict, name: str, **labels) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def event(status=200, code=None, *, version="1.0.0", arm=PRIMARY, route="/invocations",
          latency=0.003, rows=1) -> Scored:
    return Scored("r", "fraud", version, arm, route, status, code, 0.0, latency,
                  rows if status == 200 else 0)


def test_scored_events_are_counted_per_version_arm_route_and_status():
    m = ServingMetrics()
    for latency in (0.0004, 0.003, 0.2):
        m.scored(event(latency=latency, rows=2))
    m.scored(event(route="/v1/predict"))
    m.scored(event(400, "BAD_REQUEST"))
    m.scored(event(500, "INTERNAL_ERROR", latency=12.0))
    m.scored(event(version="2.0.0", arm=CANARY, rows=5))
    body, ctype = m.render(None)
    assert ctype.startswith("text/plain")
    found = samples(body.decode())
    v1 = {"model": "fraud", "version": "1.0.0", "arm": PRIMARY}
    requests = "cairn_serving_requests_total"
    assert value(found, requests, **v1, route="/invocations", status="200") == 3
    assert value(found, requests, **v1, route="/v1/predict", status="200") == 1
    assert value(found, requests, **v1, route="/invocations", status="400") == 1
    assert value(found, requests, **v1, route="/invocations", status="500") == 1
    assert value(found, requests, model="fraud", version="2.0.0", arm=CANARY,
                 route="/invocations", status="200") == 1
    errors = "cairn_serving_errors_total"
    assert value(found, errors, **v1, code="BAD_REQUEST") == 1
    assert value(found, errors, **v1, code="INTERNAL_ERROR") == 1
    assert not [k for k in found if k[0] == errors and ("version", "2.0.0") in k[1]]
    assert value(found, "cairn_serving_rows_total", **v1) == 7
    assert value(found, "cairn_serving_rows_total", model="fraud", version="2.0.0",
                 arm=CANARY) == 5
    bucket = "cairn_serving_request_latency_seconds_bucket"
    assert value(found, bucket, **v1, le="0.0005") == 1
    assert value(found, bucket, **v1, le="0.005") == 4   # + 0.003 twice and the 400
    assert value(found, bucket, **v1, le="10.0") == 5
    assert value(found, bucket, **v1, le="+Inf") == 6     # the 12 s one
    assert value(found, "cairn_serving_request_latency_seconds_count", **v1) == 6


def test_an_error_without_a_code_is_counted_under_its_status():
    m = ServingMetrics()
    m.scored(event(413, None))
    found = samples(m.render(None)[0].decode())
    assert value(found, "cairn_serving_errors_total", model="fraud", version="1.0.0",
                 arm=PRIMARY, code="HTTP_413") == 1


def test_model_info_follows_switches_and_switches_are_counted():
    m = ServingMetrics()
    m.serving(PRIMARY, "fraud", "1.0.0")
    m.serving(CANARY, "fraud", "2.0.0")
    m.serving(PRIMARY, "fraud", "1.0.0")   # the same again: not a switch
    found = samples(m.render(None)[0].decode())
    info = "cairn_serving_model_info"
    assert {k: v for k, v in found.items() if k[0] == info} == {
        (info, (("arm", PRIMARY), ("model", "fraud"), ("version", "1.0.0"))): 1,
        (info, (("arm", CANARY), ("model", "fraud"), ("version", "2.0.0"))): 1}
    assert not [k for k in found if k[0] == "cairn_serving_model_switches_total"]

    m.serving(PRIMARY, "fraud", "1.1.0")
    m.serving(CANARY, None, None)          # the canary ended
    found = samples(m.render(None)[0].decode())
    assert [k for k in found if k[0] == info] == [
        (info, (("arm", PRIMARY), ("model", "fraud"), ("version", "1.1.0")))]
    assert value(found, "cairn_serving_model_switches_total", model="fraud", arm=PRIMARY) == 1
    assert value(found, "cairn_serving_model_switches_total", model="fraud", arm=CANARY) is None


def test_batch_sizes_are_a_histogram():
    m = ServingMetrics()
    for size in (1, 3, 8, 600):
        m.batched("fraud", "1.0.0", PRIMARY, size)
    found = samples(m.render(None)[0].decode())
    labels = {"model": "fraud", "version": "1.0.0", "arm": PRIMARY}
    assert value(found, "cairn_serving_batch_size_count", **labels) == 4
    assert value(found, "cairn_serving_batch_size_sum", **labels) == 612
    assert value(found, "cairn_serving_batch_size_bucket", **labels, le="8.0") == 3


def test_the_prediction_log_is_read_at_scrape_time():
    stats = dict(PREDLOG)
    m = ServingMetrics()
    assert "predlog" not in m.render(None)[0].decode()  # no log: no such series
    m.set_predlog_stats(lambda: stats)
    found = samples(m.render(None)[0].decode())
    assert value(found, "cairn_serving_predlog_queue_depth") == 3
    assert value(found, "cairn_serving_predlog_dropped_total") == 2
    assert value(found, "cairn_serving_predlog_written_rows_total") == 40
    assert value(found, "cairn_serving_predlog_written_segments_total") == 1
    assert value(found, "cairn_serving_predlog_failed_writes_total") == 0
    stats.update(queued=0, dropped=5)
    found = samples(m.render(None)[0].decode())
    assert value(found, "cairn_serving_predlog_queue_depth") == 0
    assert value(found, "cairn_serving_predlog_dropped_total") == 5


def test_a_failing_prediction_log_leaves_its_metrics_out_not_the_scrape(caplog):
    def broken():
        raise OSError("disk gone")

    m = ServingMetrics(predlog_stats=broken)
    m.scored(event())
    text = m.render(None)[0].decode()
    assert "cairn_serving_requests_total" in text and "predlog" not in text
    assert "stats() failed" in caplog.text


def test_two_instances_and_the_global_registry_do_not_share_anything():
    from prometheus_client import REGISTRY

    a, b = ServingMetrics(), ServingMetrics()
    a.scored(event())
    a.scored(event())
    b.scored(event())
    labels = {"model": "fraud", "version": "1.0.0", "arm": PRIMARY, "route": "/invocations",
              "status": "200"}
    assert value(samples(a.render(None)[0].decode()), "cairn_serving_requests_total",
                 **labels) == 2
    assert value(samples(b.render(None)[0].decode()), "cairn_serving_requests_total",
                 **labels) == 1
    assert REGISTRY.get_sample_value("cairn_serving_requests_total", labels) is None


def test_openmetrics_when_the_scraper_asks_for_it():
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as om

    m = ServingMetrics(predlog_stats=lambda: PREDLOG)
    m.scored(event())
    body, ctype = m.render("application/openmetrics-text; version=1.0.0,text/plain;q=0.5")
    assert ctype.startswith("application/openmetrics-text")
    text = body.decode()
    assert text.endswith("# EOF\n")
    names = {f.name for f in om(text)}
    assert {"cairn_serving_requests", "cairn_serving_predlog_dropped"} <= names


def test_importing_the_module_does_not_import_prometheus_client():
    code = ("import sys, cairn.serving.metrics; "
            "print('prometheus_client' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


# -- over real HTTP ------------------------------------------------------------------------

def test_metrics_over_http_count_every_answer(registry, tracking, frame):
    from serving import ThreadedServer

    cairn.Client(str(tracking)).register_model("flaky", Raises(fit(frame)),
                                               input_example=frame[0][:5], flavor="pickle")
    d = deploy(registry, "models:/flaky/1.0.0", follow=False)
    m = ServingMetrics(predlog_stats=lambda: PREDLOG)
    m.serving(PRIMARY, "flaky", "1.0.0")
    app = ScoringApp(d.holder, observers=[m], metrics=m)

    def split(rows, columns=COLUMNS):
        return {"dataframe_split": {"columns": columns, "data": rows}}

    with ThreadedServer(app) as base:
        answers = [httpx.post(base + "/invocations", json=split([[1.0, 1.0, 1.0]])),
                   httpx.post(base + "/invocations", json=split([[1.0, 2.0, 3.0]] * 3)),
                   httpx.post(base + "/v1/predict", json=split([[0.5, 0.5, 0.5]] * 2)),
                   httpx.post(base + "/invocations", json=split([[1.0, 1.0]], COLUMNS[:2])),
                   httpx.post(base + "/invocations", content=b"{not json",
                              headers={"Content-Type": "application/json"}),
                   httpx.post(base + "/invocations", json=split([[500.0, 1.0, 1.0]]))]
        assert [r.status_code for r in answers] == [200, 200, 200, 400, 400, 500]
        # Observers run just after each answer is sent: wait until all six are counted.
        deadline = time.monotonic() + 10
        while True:
            r = httpx.get(base + "/metrics")
            found = samples(r.text)
            counted = sum(v for k, v in found.items() if k[0] == "cairn_serving_requests_total")
            if counted >= 6 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        om = httpx.get(base + "/metrics",
                       headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        assert om.headers["content-type"].startswith("application/openmetrics-text")
        assert om.text.endswith("# EOF\n")

    v = {"model": "flaky", "version": "1.0.0", "arm": PRIMARY}
    requests = {k[1]: val for k, val in found.items() if k[0] == "cairn_serving_requests_total"}
    assert requests == {
        tuple(sorted({**v, "route": "/invocations", "status": "200"}.items())): 2,
        tuple(sorted({**v, "route": "/v1/predict", "status": "200"}.items())): 1,
        tuple(sorted({**v, "route": "/invocations", "status": "400"}.items())): 2,
        tuple(sorted({**v, "route": "/invocations", "status": "500"}.items())): 1}
    assert value(found, "cairn_serving_errors_total", **v, code="BAD_REQUEST") == 2
    assert value(found, "cairn_serving_errors_total", **v, code="INTERNAL_ERROR") == 1
    assert value(found, "cairn_serving_rows_total", **v) == 6   # 1 + 3 + 2, the 200s
    assert value(found, "cairn_serving_request_latency_seconds_count", **v) == 6
    assert value(found, "cairn_serving_request_latency_seconds_bucket", **v, le="+Inf") == 6
    assert 0 < value(found, "cairn_serving_request_latency_seconds_sum", **v) < 60
    assert value(found, "cairn_serving_model_info", **v) == 1
    assert value(found, "cairn_serving_predlog_dropped_total") == 2
    assert value(found, "cairn_serving_predlog_queue_depth") == 3


# -- several worker processes ---------------------------------------------------------------

WORKER = textwrap.dedent("""
    import sys
    from cairn.serving.events import Scored
    from cairn.serving.metrics import ServingMetrics

    n, queued, dropped, stay = (int(a) for a in sys.argv[1:])
    m = ServingMetrics(predlog_stats=lambda: {"queued": queued, "dropped": dropped,
                                               "written_rows": n, "written_segments": 1,
                                               "failed_writes": 0})
    m.serving("primary", "fraud", "1.0.0")
    m.serving("canary", "fraud", "2.0.0")
    m.serving("canary", "fraud", "2.1.0")
    for i in range(n):  # the first request of each worker is a 400
        m.scored(Scored(str(i), "fraud", "1.0.0", "primary", "/invocations",
                        200 if i else 400, None if i else "BAD_REQUEST", 0.0, 0.002,
                        1 if i else 0))
    m.batched("fraud", "1.0.0", "primary", n)
    m.render(None)   # a scrape of this worker: its prediction log's numbers reach its files
    print("counted", flush=True)
    if stay:
        sys.stdin.read()   # until the test closes our stdin
        m.close()
""")

SCRAPE = ("import sys; from cairn.serving.metrics import ServingMetrics; "
          "sys.stdout.write(ServingMetrics().render(None)[0].decode())")


def test_several_worker_processes_are_summed(tmp_path, monkeypatch):
    # prometheus-client picks multiprocess mode when first imported, so every process here is
    # a fresh one started with PROMETHEUS_MULTIPROC_DIR already set.
    (tmp_path / "mp").mkdir()
    (tmp_path / "mp" / "counter_999999.db").write_bytes(b"stale: from an earlier run")
    monkeypatch.setenv(ENV, "")
    path = multiprocess_dir(str(tmp_path / "mp"))
    assert os.environ[ENV] == path and not list((tmp_path / "mp").iterdir())
    env = {**os.environ, ENV: path}

    def scrape() -> dict:
        out = subprocess.run([sys.executable, "-c", SCRAPE], env=env, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return samples(out.stdout)

    a = subprocess.run([sys.executable, "-c", WORKER, "3", "2", "1", "0"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert a.returncode == 0 and a.stdout == "counted\n", a.stderr
    with subprocess.Popen([sys.executable, "-c", WORKER, "5", "4", "2", "1"], env=env,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as b:
        try:
            assert b.stdout.readline() == "counted\n"
            found = scrape()
        finally:
            b.stdin.close()   # B's cue to close its metrics and exit
            b.wait(60)
    assert b.returncode == 0
    v = {"model": "fraud", "version": "1.0.0", "arm": PRIMARY}
    requests = "cairn_serving_requests_total"
    assert value(found, requests, **v, route="/invocations", status="200") == 2 + 4
    assert value(found, requests, **v, route="/invocations", status="400") == 2
    assert value(found, "cairn_serving_errors_total", **v, code="BAD_REQUEST") == 2
    assert value(found, "cairn_serving_rows_total", **v) == 6
    assert value(found, "cairn_serving_request_latency_seconds_count", **v) == 8
    assert value(found, "cairn_serving_request_latency_seconds_bucket", **v, le="0.0025") == 8
    assert value(found, "cairn_serving_batch_size_sum", **v) == 8
    assert value(found, "cairn_serving_model_switches_total", model="fraud", arm=CANARY) == 2
    # Counters keep what a worker that has gone counted...
    assert value(found, "cairn_serving_predlog_dropped_total") == 1 + 2
    assert value(found, "cairn_serving_predlog_written_rows_total") == 3 + 5
    # ...live gauges count only the running workers: A has exited, B runs.
    assert value(found, "cairn_serving_predlog_queue_depth") == 4
    assert value(found, "cairn_serving_model_info", **v) == 1
    assert value(found, "cairn_serving_model_info", model="fraud", version="2.1.0",
                 arm=CANARY) == 1
    assert value(found, "cairn_serving_model_info", model="fraud", version="2.0.0",
                 arm=CANARY) == 0   # label sets cannot be removed from the files: 0

    found = scrape()   # B has stopped (and closed its metrics): no live gauges of B remain
    assert value(found, requests, **v, route="/invocations", status="200") == 6
    assert value(found, "cairn_serving_predlog_dropped_total") == 3
    assert value(found, "cairn_serving_predlog_queue_depth") == 0   # the scraper's own
    assert [k for k in found if k[0] == "cairn_serving_model_info"] == []


def test_multiprocess_mode_set_after_import_is_a_clear_error(tmp_path, monkeypatch):
    import prometheus_client  # noqa: F401 (already imported in this process, without the dir)

    monkeypatch.setenv(ENV, str(tmp_path))
    with pytest.raises(RuntimeError, match="set after prometheus_client was imported"):
        ServingMetrics()
