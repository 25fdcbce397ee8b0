"""`cairn serve` as a user runs it: a child process on a free port, following an alias."""

import json
import os
import signal
import socket
import subprocess
import time

import httpx
import pytest
from click.testing import CliRunner

import cairn
from cairn.cli.main import cli
from serving import CAIRN, free_port, wait_ready

from .conftest import COLUMNS, fit

pytestmark = pytest.mark.slow  # a child process (about 3 s)


def test_cairn_serve_answers_and_follows_the_alias(tracking, frame, fraud, tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*CAIRN, "serve", "models:/fraud@prod", "--store", str(tracking), "--port", str(port),
             "--poll", "0.1", "--max-body", "1KiB"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, 60, proc)
        body = {"dataframe_split": {"columns": COLUMNS, "data": frame[0][:2].to_numpy().tolist()}}
        r = httpx.post(url + "/invocations", json=body)
        assert r.status_code == 200, r.text
        assert r.json() == {"predictions": fit(frame).predict(frame[0][:2]).tolist()}
        assert r.headers["cairn-model-version"] == "1.0.0"
        big = {"dataframe_split": {"columns": COLUMNS, "data": [[1.0, 2.0, 3.0]] * 100}}
        assert httpx.post(url + "/invocations", json=big).status_code == 413
        # Moving the alias is picked up without a restart.
        c = cairn.Client(str(tracking))
        v2 = c.register_model("fraud", fit(frame, "forest"), input_example=frame[0][:5])
        c.set_alias("fraud", "prod", v2.version)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            r = httpx.post(url + "/v1/predict", json=body)
            assert r.status_code == 200
            if r.json()["model_version"] == v2.version:
                break
            time.sleep(0.05)
        assert r.headers["cairn-model-version"] == v2.version
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    text = log.read_text()
    assert "serving fraud/1.0.0 (sklearn, following @prod)" in text
    assert f"now serving fraud/{v2.version} (was 1.0.0)" in text


def test_json_says_what_is_served_once_it_is_loaded(tracking, fraud):
    port = free_port()
    proc = subprocess.Popen([*CAIRN, "serve", "models:/fraud/1.0.0", "--store", str(tracking),
                             "--port", str(port), "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, start_new_session=True, text=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}", 60, proc)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    assert json.loads(out) == {"name": "fraud", "version": "1.0.0", "flavor": "sklearn",
                               "url": f"http://127.0.0.1:{port}", "following": None,
                               "max_body": 32 * 1024 * 1024, "workers": 1, "max_batch": 0,
                               "log_sample": 1.0, "deployment": f"{socket.gethostname()}:{port}",
                               "arms": {"primary": {"ref": "fraud/1.0.0", "version": "1.0.0",
                                                    "share": 1.0, "fast_path": False}}}


def test_an_alias_that_points_nowhere_exits_with_a_clear_error(tracking, fraud):
    out = subprocess.run([*CAIRN, "serve", "models:/fraud@nowhere", "--store", str(tracking),
                          "--port", str(free_port())], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip() == ("Error: nothing to serve: model 'fraud' has no alias "
                                  "'nowhere' (aliases: prod)")


def test_errors_before_anything_is_served(tmp_path, monkeypatch):
    runner = CliRunner()
    missing = runner.invoke(cli, ["serve", "models:/m@prod", "--store", str(tmp_path / "none")])
    assert missing.exit_code == 1 and "no Cairn store at" in missing.output
    assert not (tmp_path / "none").exists()
    none = ["--store", str(tmp_path / "none")]
    bad = runner.invoke(cli, ["serve", "models:/m@prod", "--max-body", "lots", *none])
    assert bad.exit_code == 1 and "--max-body 'lots'" in bad.output

    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "uvicorn" else real(name, *a))
    out = runner.invoke(cli, ["serve", "models:/m@prod", *none])
    assert out.exit_code == 1
    assert "pip install 'cairn[serve]'" in out.output and "uvicorn" in out.output


def test_workers_share_the_load_and_metrics_and_flush_the_log_at_exit(tracking, frame, fraud,
                                                                       tmp_path):
    """Two worker processes: every request answered, /metrics sums both workers, the alias
    switch is recorded once, and SIGTERM flushes both workers' prediction logs."""
    from prometheus_client.parser import text_string_to_metric_families

    from cairn.serving.predlog_read import read

    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*CAIRN, "serve", "models:/fraud@prod", "--store", str(tracking), "--port", str(port),
             "--poll", "0.1", "--workers", "2", "--max-batch", "8"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    body = {"dataframe_split": {"columns": COLUMNS, "data": frame[0][:2].to_numpy().tolist()}}
    expected = fit(frame).predict(frame[0][:2]).tolist()
    try:
        wait_ready(url, 90, proc)
        pids = set()
        for _ in range(60):  # new connections: the kernel spreads them over both workers
            with httpx.Client() as http:
                r = http.post(url + "/invocations", json=body)
            assert r.status_code == 200 and r.json() == {"predictions": expected}
            pids.add(httpx.get(url + "/v1/status").json()["worker"])
        c = cairn.Client(str(tracking))
        v2 = c.register_model("fraud", fit(frame, "forest"), input_example=frame[0][:5])
        c.set_alias("fraud", "prod", v2.version)
        deadline = time.monotonic() + 20
        switched = n_switch = 0
        while time.monotonic() < deadline and switched < 10:
            with httpx.Client() as http:
                r = http.post(url + "/v1/predict", json=body)
            assert r.status_code == 200
            switched = switched + 1 if r.json()["model_version"] == v2.version else 0
            n_switch += 1
        assert switched == 10
        time.sleep(0.5)  # both workers have polled by now
        text = httpx.get(url + "/metrics").text
        counts = {}
        for family in text_string_to_metric_families(text):
            if family.name == "cairn_serving_requests":
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        counts[sample.labels["version"]] = \
                            counts.get(sample.labels["version"], 0) + sample.value
        made = 60 + n_switch  # every scoring request, counted by whichever worker took it
        assert counts.get("1.0.0", 0) + counts.get(v2.version, 0) == made, counts
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    assert len(pids) == 2, pids  # both workers answered
    rows = read(cairn.Client(str(tracking)), "fraud")
    assert rows.num_rows == 2 * made, (rows.num_rows, made, log.read_text())  # all flushed
    kinds = [e.kind for e in cairn.Client(str(tracking)).model_history("fraud")
             if e.kind.startswith("deploy_")]
    assert kinds.count("deploy_start") == 1 and kinds.count("deploy_stop") == 1, kinds
    assert kinds.count("deploy_switch") == 1, kinds  # two workers switched; recorded once
