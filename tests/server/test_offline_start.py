"""A run starts while its team server is down (#17): its creation is spooled with its
records, and when they arrive the run joins the server's experiment of that name, or
creates it, as W&B and Neptune let a run start offline.

Before, `cairn.set_experiment(name)` and `start_run()` failed at once with "the Cairn
server ... is unreachable" unless this process had looked the experiment up before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import httpx
import pytest
from serving import CAIRN, ProcessServer

import cairn
from cairn.errors import NotFound
from cairn.store import close_stores

pytestmark = pytest.mark.slow

ADMIN = "cairn_offline-start-bootstrap-token-0123456789"
API = "/api/v1"

TRAIN = textwrap.dedent("""
    import sys, cairn
    for experiment in sys.argv[1:]:
        cairn.set_experiment(experiment)
        with cairn.start_run(name=f"offline-{experiment}", params={"lr": "0.1"}) as run:
            for step in range(20):
                cairn.log_metric("loss", 1 / (step + 1), step=step)
        print(run.id, flush=True)
""")


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture(params=["local", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request, tmp_path):
    if request.param == "local":
        args = ["--auth"]
        env = {"CAIRN_TRACKING_URI": str(tmp_path / "store")}
    else:
        args = ["--db", request.getfixturevalue("pg_url"), "--objects", str(tmp_path / "objects")]
        env = {}
    srv = ProcessServer(*args, log=tmp_path / "server.log",
                        env={**env, "CAIRN_BOOTSTRAP_TOKEN": ADMIN})
    srv.start()
    yield srv
    srv.stop()


def _user(http: httpx.Client, name: str, grants: list[tuple[str, str]]) -> str:
    assert http.post(f"{API}/users", json={"name": name}).status_code == 201
    token = http.post(f"{API}/users/{name}/tokens", json={"name": "t"}).json()["token"]
    for rid, role in grants:
        r = http.put(f"{API}/roles", json={"user": name, "resource_type": "experiment",
                                            "resource_id": rid, "role": role})
        assert r.status_code == 200, r.text
    return token


def _train_offline(url: str, token: str, spool, *experiments: str) -> list[str]:
    env = {**os.environ, "CAIRN_TRACKING_URI": url, "CAIRN_TRACKING_TOKEN": token,
           "CAIRN_SPOOL_DIR": str(spool), "CAIRN_SPOOL_DRAIN_TIMEOUT": "0.5",
           "CAIRN_CAPTURE_ENV": "0", "CAIRN_FLUSH_INTERVAL": "0.1"}
    out = subprocess.run([sys.executable, "-c", TRAIN, *experiments], env=env,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert "cairn sync" in out.stderr  # told where the records wait
    for experiment in experiments:  # and, at once, that the run starts offline
        assert f"the run starts offline in experiment {experiment!r}" in out.stderr
    return out.stdout.split()


def _sync(url: str, token: str, spool) -> subprocess.CompletedProcess:
    return subprocess.run([*CAIRN, "--store", url, "sync", "--json"], capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "CAIRN_SPOOL_DIR": str(spool),
                               "CAIRN_TRACKING_TOKEN": token})


def test_runs_start_offline_and_join_or_create_their_experiment(server, tmp_path, monkeypatch):
    with httpx.Client(base_url=server.url, headers=_bearer(ADMIN), timeout=60) as http:
        shared = http.post(f"{API}/experiments", json={"name": "shared"}).json()["id"]
        alice = _user(http, "alice", [("*", "editor")])  # may create experiments
        bob = _user(http, "bob", [(shared, "editor")])  # may only write in "shared"
    server.stop()

    # Nothing of the experiments is known on these machines (fresh spools, no cache).
    alice_runs = _train_offline(server.url, alice, tmp_path / "alice", "shared", "brand-new")
    bob_runs = _train_offline(server.url, bob, tmp_path / "bob", "shared", "not-his")

    server.start()
    done = _sync(server.url, alice, tmp_path / "alice")
    assert done.returncode == 0, done.stdout + done.stderr
    refused = _sync(server.url, bob, tmp_path / "bob")
    # bob may not create "not-his": that run's records are kept aside and sync says why;
    # his run in "shared" arrived.
    assert refused.returncode == 1
    report = json.loads(refused.stdout)
    assert {r["run_id"] for r in report["rejected"]} == {bob_runs[1]}
    assert {r["error_code"] for r in report["rejected"]} == {"PERMISSION_DENIED"}
    assert "needs the editor role on all experiments" in report["rejected"][0]["reason"]

    monkeypatch.setenv("CAIRN_TRACKING_TOKEN", ADMIN)
    try:
        admin = cairn.Client(server.url)
        names = [e.name for e in admin.list_experiments()]
        assert sorted(n for n in names if n != "Default") == ["brand-new", "shared"]
        for run_id, experiment in [(alice_runs[0], "shared"), (alice_runs[1], "brand-new"),
                                   (bob_runs[0], "shared")]:
            run = admin.get_run(run_id)
            assert run.experiment == experiment and run.status is cairn.RunStatus.FINISHED
            assert run.params == {"lr": "0.1"}
            assert admin.get_metric_history(run_id, "loss").steps.tolist() == list(range(20))
        assert admin.get_run(alice_runs[0]).experiment_id == shared
        with pytest.raises(NotFound):
            admin.get_run(bob_runs[1])
    finally:
        close_stores("http")
