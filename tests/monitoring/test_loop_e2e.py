"""The whole loop with real processes, as a team runs it.

``cairn serve`` answers with v1 in production and v2 as a 10% canary; traffic comes in
whose inputs have drifted, and the labels sent back show the canary is worse.  ``cairn
monitor run`` fires the alert, aborts the canary (its alias moves back to v1, so the server
answers every request with v1), and sends signed webhooks to a real receiver; the audit log
shows the chain from the alert to the alias move.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import os
import signal
import subprocess
import threading
import time

import httpx
import pytest

import cairn
from serving import CAIRN, free_port, wait_ready

from .conftest import labels, pipeline, train, transactions

pytestmark = pytest.mark.slow  # two child processes and a minute of traffic and cycles

SECRET = "a-long-shared-secret"


class Receiver(http.server.ThreadingHTTPServer):
    """Keeps every POST: (path, headers, body)."""

    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with server.lock:
                    server.got.append((self.path, dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def events(self, path: str) -> list[dict]:
        with self.lock:
            return [json.loads(body) for p, _, body in self.got if p == path]


def cli(store, *args: str) -> dict | list:
    out = subprocess.run([*CAIRN, *args, "--store", str(store), "--json"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    return proc.wait(30)


def until(predicate, timeout: float, what: str, *procs: subprocess.Popen):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            assert p.poll() is None, f"a child process exited with {p.returncode} before {what}"
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_drift_and_worse_labels_abort_the_canary_and_the_server_answers_with_v1(
        tracking, tmp_path):
    client = cairn.Client(str(tracking))
    v1, model, _ = train(client, tmp=tmp_path)                   # @production, data lineage
    wrong = transactions(2000, seed=3)
    v2 = client.register_model("fraud", pipeline().fit(wrong, 1 - labels(wrong)),
                               input_example=wrong[:5])          # learnt the opposite
    client.set_alias("fraud", "challenger", v2.version)

    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    logs = {name: open(tmp_path / f"{name}.log", "wb") for name in ("serve", "monitor")}
    serve = subprocess.Popen(
        [*CAIRN, "serve", "models:/fraud@production", "--canary", "models:/fraud@challenger=10%",
         "--store", str(tracking), "--port", str(port), "--poll", "0.2", "--log-flush", "0.5"],
        stdout=logs["serve"], stderr=subprocess.STDOUT, start_new_session=True)
    monitor = None
    try:
        # Subscribed to the registry's events; the rule's own notify goes to another path.
        cli(tracking, "webhooks", "add", f"{receiver.url}/events", "--secret", SECRET,
            "--event", "alias.moved", "--event", "alert.firing", "--model", "fraud")
        rules = tmp_path / "rules.yaml"
        rules.write_text(f"""
rules:
  - name: canary-worse
    model: models:/fraud@production
    condition: canary.live.accuracy < primary.live.accuracy - 0.2
    min_requests: 15
    window: 10m
    actions:
      - notify: {{url: "{receiver.url}/alerts", secret: "{SECRET}"}}
      - abort: {{canary: "@challenger"}}
""")
        cli(tracking, "monitor", "rules", "apply", str(rules))
        wait_ready(url, 90, serve)

        # Traffic whose inputs drifted (amounts two standard deviations up, another channel
        # mix), then the truth for each request, sent back to the same server: the champion
        # was right on it but for one answer in twenty.
        drifted = transactions(400, seed=9, shift=2.0, channels=(0.1, 0.2, 0.7))
        truth = model.predict(drifted)
        truth[::20] = 1 - truth[::20]
        answered = {}
        with httpx.Client(base_url=url, timeout=30) as http:
            for i in range(len(drifted)):
                row = drifted.iloc[i:i + 1]
                r = http.post("/v1/predict", json={"dataframe_split": {
                    "columns": list(row.columns), "data": row.astype(object).values.tolist()}},
                    headers={"Cairn-Request-Id": f"req-{i}"})
                assert r.status_code == 200, r.text
                answered[f"req-{i}"] = (r.json()["arm"], r.json()["model_version"])
            arms = [a for a, _ in answered.values()]
            assert 15 <= arms.count("canary") <= 90, arms.count("canary")
            assert {v for a, v in answered.values() if a == "canary"} == {v2.version}
            fb = http.post("/v1/feedback", json=[
                {"request_id": f"req-{i}", "label": int(truth[i])} for i in range(len(drifted))]
                + [{"request_id": "never-asked", "label": 1}, {"request_id": "", "label": 1}])
            assert fb.status_code == 200, fb.text
            assert fb.json()["accepted"] == len(drifted) + 1
            assert [r["index"] for r in fb.json()["rejected"]] == [len(drifted) + 1]

        # The drift is there to see, against the training data found through lineage.
        def drift_seen():
            report = cli(tracking, "monitor", "drift", "models:/fraud@production", "--window",
                         "1h", "--no-store")
            windows = [w for w in report["windows"] if w["rows"]]
            return windows and windows[-1]
        window = until(drift_seen, 60, "the prediction log to be written", serve)
        drifted_cols = {c["column"] for c in window["columns"] if c["drifted"]}
        assert {"amount", "channel"} <= drifted_cols, window

        # The monitor: the alert fires on the canary's labels and aborts it.
        monitor = subprocess.Popen([*CAIRN, "monitor", "run", "--interval", "1s", "--store",
                                    str(tracking), "--json"],
                                   stdout=logs["monitor"], stderr=subprocess.STDOUT,
                                   start_new_session=True)

        def canary_on_v1():
            status = httpx.get(url + "/v1/status", timeout=10).json()
            return status["arms"]["canary"]["version"] == v1.version
        until(canary_on_v1, 120, "the canary to be aborted", serve, monitor)
        with httpx.Client(base_url=url, timeout=30) as http:
            row = drifted.iloc[:1]
            body = {"dataframe_split": {"columns": list(row.columns),
                                        "data": row.astype(object).values.tolist()}}
            after = [http.post("/v1/predict", json=body, headers={"Cairn-Arm": arm}).json()
                     for arm in ("primary", "canary") for _ in range(5)]
        assert {(a["arm"], a["model_version"]) for a in after} == {
            ("primary", v1.version), ("canary", v1.version)}
        assert "challenger" not in client.get_model_version("fraud", v2.version).aliases
        assert "challenger" in client.get_model_version("fraud", v1.version).aliases

        # The signed webhooks reached the receiver: the rule's notify and the subscription.
        until(lambda: receiver.events("/alerts") and any(
            e["type"] == "alias.moved" for e in receiver.events("/events")), 60,
            "the webhooks", monitor)
        with receiver.lock:
            got = list(receiver.got)
        for _, headers, body in got:
            mac = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert headers["Cairn-Signature"] == f"sha256={mac}"
        alert = receiver.events("/alerts")[0]
        assert alert["type"] == "alert.firing"
        assert alert["data"]["rule"] == "canary-worse"
        moved = [e for e in receiver.events("/events") if e["type"] == "alias.moved"]
        assert any(e["data"].get("alias") == "challenger" for e in moved), moved
    finally:
        codes = {"serve": stop(serve)}
        if monitor is not None:
            codes["monitor"] = stop(monitor)
        receiver.shutdown()
        receiver.server_close()
        for f in logs.values():
            f.close()
    # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught (its exit status).
    assert codes["serve"] in (0, -signal.SIGTERM) and codes.get("monitor", 0) == 0, (
        (tmp_path / "serve.log").read_text()[-3000:],
        (tmp_path / "monitor.log").read_text()[-3000:])

    # The audit log tells the chain, in order: the alert fired, it aborted the canary, and
    # the alias moved back with the alert as the reason.
    audit = sorted(cli(tracking, "audit", "log"), key=lambda e: e["seq"])
    actions = [e["action"] for e in audit]
    fired = actions.index("alert.firing")
    aborted = actions.index("alert.abort")
    assert fired < aborted
    moves = [e for e in audit[fired:] if e["action"] == "model.alias"
             and e["target"].endswith("/@challenger")]
    assert moves and moves[0]["after"]["version"] == v1.version
    abort = audit[aborted]
    assert "canary-worse" in json.dumps(abort)
    assert cli(tracking, "audit", "verify")["ok"] is True
    # Nothing was lost along the way: every label stored, the stranger counted.
    from cairn.monitoring.feedback import read_labels

    assert len(read_labels(client, "fraud")) == len(drifted) + 1
