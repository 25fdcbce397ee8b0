"""A PyTorch model through every part of serving at once, over real HTTP: two versions as
primary and canary, micro-batching on, the prediction log and Prometheus metrics, built by
the same `build()` that `cairn serve` uses."""

import threading

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

import cairn
from cairn.serving.assemble import ServeOptions, build
from cairn.serving.predlog_read import read
from serving import ThreadedServer


def test_torch_canary_batched_logged_and_counted(tracking):
    torch = pytest.importorskip("torch")
    from registry.nets import TinyNet

    torch.manual_seed(0)
    c = cairn.Client(str(tracking))
    nets = [TinyNet(4, 8, 2), TinyNet(4, 8, 2)]
    x = torch.randn(64, 4)
    versions = []
    for i, net in enumerate(nets):
        mv = c.register_model("net", net, input_example=x[:5], init_kwargs={"hidden": 8})
        c.set_alias("net", ("prod", "challenger")[i], mv.version)
        versions.append(mv.version)
    with torch.no_grad():
        want = {versions[0]: nets[0](x).numpy(), versions[1]: nets[1](x).numpy()}
    options = ServeOptions("models:/net@prod", uri=str(tracking), canary="@challenger=30%",
                           max_batch=16, max_wait_ms=5, poll=0, record=False)
    d = build(options, c)
    answers: list[tuple[int, str, str, bool]] = []

    def client(rows):
        with httpx.Client(timeout=30) as http:
            for i in rows:
                try:
                    r = http.post(base + "/v1/predict", json={"inputs": [x[i].tolist()]},
                                  headers={"Cairn-Routing-Key": f"k{i}"})
                    doc = r.json()
                    ok = r.status_code == 200 and np.allclose(
                        doc["predictions"], want[doc["model_version"]][i:i + 1], atol=1e-5)
                    answers.append((r.status_code, doc.get("model_version"), doc.get("arm"),
                                    ok))
                except Exception as exc:  # noqa: BLE001 (counted, never lost in a thread)
                    answers.append((0, repr(exc), "", False))

    with ThreadedServer(d.app) as base:
        threads = [threading.Thread(target=client, args=(range(k, 64, 8),)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        bad = httpx.post(base + "/v1/predict", json={"inputs": [[1.0, 2.0]]})
        assert bad.status_code == 400
        metrics = httpx.get(base + "/metrics").text
        status = httpx.get(base + "/v1/status").json()
    d.close()
    assert len(answers) == 64 and all(a[3] for a in answers), answers
    arms = {a[2] for a in answers}
    assert arms == {"primary", "canary"}
    assert all((a[1] == versions[1]) == (a[2] == "canary") for a in answers)
    assert status["batching"]["requests"] >= 64
    counted = sum(s.value for f in text_string_to_metric_families(metrics)
                  for s in f.samples if s.name == "cairn_serving_requests_total")
    assert counted == 65
    logged = read(cairn.Client(str(tracking)), "net").to_pandas()
    assert len(logged) == 65  # 64 answered rows and the one 400
    assert sorted(logged["status"].value_counts().to_dict().items()) == [(200, 64), (400, 1)]
    ok = logged[logged["status"] == 200]
    assert set(ok["request_id"]) and set(ok["arm"]) == {"primary", "canary"}
