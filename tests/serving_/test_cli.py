"""`cairn serve` as a user runs it: a child process on a free port, following an alias."""

import json
import os
import signal
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
                               "max_body": 32 * 1024 * 1024}


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
