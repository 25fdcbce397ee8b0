"""Downloads through a real team server are audited with the caller as actor: artifacts
(Cairn's file route, its object route, the real mlflow client), model versions and data
set versions; one event per download, in the hash chain that `cairn audit verify` checks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from serving import ThreadedServer

import cairn
from cairn.cli.main import cli
from cairn.server import ServerSettings, create_app
from cairn.store.http import HttpStore
from cairn.store.local import LocalStore

# A team server with a run, a model and a data set, and a second's wait per object burst.
pytestmark = pytest.mark.slow

API = "/api/v1"
TOKEN = "cairn_download-audit-admin-token-00000001"


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """A server with auth on a local store; admin logs a run, a model and a data set; bob
    is a global viewer."""
    base = tmp_path_factory.mktemp("team")
    store = LocalStore(base / "srv")
    app = create_app(store, settings=ServerSettings(auth=True, bootstrap_token=TOKEN))
    app.state.cairn.start()
    admin_h = {"authorization": f"Bearer {TOKEN}"}
    with ThreadedServer(app) as url:
        httpx.post(f"{url}{API}/users", json={"name": "bob"}, headers=admin_h).raise_for_status()
        bob_token = httpx.post(f"{url}{API}/users/bob/tokens", json={},
                               headers=admin_h).json()["token"]
        httpx.put(f"{url}{API}/roles", json={"user": "bob", "resource_type": "global",
                                             "resource_id": "*", "role": "viewer"},
                  headers=admin_h).raise_for_status()
        admin = cairn.Client(store=HttpStore(url, token=TOKEN, spool_dir=str(base / "sp-a")))
        files = base / "files"
        files.mkdir()
        for name in ("a.txt", "b.txt", "c.txt"):
            (files / name).write_text(f"{name} " * 200)
        run = admin.create_run(admin.create_experiment("audited").id)
        admin.log_artifacts(run.id, files)
        admin.set_terminated(run.id)
        from sklearn.linear_model import LogisticRegression

        X = np.random.RandomState(0).randn(30, 3)
        admin.register_model("fraud", LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)))
        from cairn.services import datasets_for

        table = base / "table"
        table.mkdir()
        (table / "part-0.csv").write_text("x,y\n" + "1,2\n" * 100)
        datasets_for(admin.store, "admin").add(table, "tbl")
        bob = cairn.Client(store=HttpStore(url, token=bob_token, spool_dir=str(base / "sp-b")))
        yield {"url": url, "run": run.id, "bob": bob, "bob_token": bob_token, "base": base,
               "admin_h": admin_h, "store": base / "srv", "app": app}
        admin.store.close()
        bob.store.close()
    store.close()


def _bob_events(team, action: str, n: int = 1, timeout: float = 15.0) -> list[dict]:
    """bob's events of ``action``, once there are ``n`` (object reads end their burst after
    a second without reads; queued events are written every 0.2 s)."""
    deadline = time.monotonic() + timeout
    while True:
        events = httpx.get(f"{team['url']}{API}/audit", params={"actor": "bob", "action": action,
                                                                "limit": 100},
                           headers=team["admin_h"]).json()["events"]
        if len(events) >= n or time.monotonic() > deadline:
            return events
        time.sleep(0.2)


def test_file_route_download_is_one_event_with_the_caller(team):
    r = httpx.get(f"{team['url']}{API}/runs/{team['run']}/artifacts/download",
                  params={"path": "a.txt"}, headers={"authorization": f"Bearer {team['bob_token']}",
                                                     "range": "bytes=0-10"})
    assert r.status_code == 200
    events = _bob_events(team, "artifact.download")
    assert len(events) == 1
    e = events[0]
    assert (e["actor"], e["target"], e["after"]["path"]) == ("bob", f"runs/{team['run']}", "a.txt")
    assert e["after"]["bytes"] == len("a.txt " * 200)


def test_cairn_client_directory_download_is_one_event(team, tmp_path):
    before = len(_bob_events(team, "object.download", 0, 0))
    out = team["bob"].download_artifacts(team["run"], "", tmp_path)
    assert sorted(p.name for p in out.rglob("*.txt")) == ["a.txt", "b.txt", "c.txt"]
    events = _bob_events(team, "object.download", before + 1)
    assert len(events) == before + 1, "the directory's objects are one burst, one event"
    assert events[0]["after"]["objects"] == 3 and len(events[0]["after"]["oids"]) == 3


def test_model_and_data_downloads_are_named(team, tmp_path):
    path = team["bob"].download_model("models:/fraud/1.0.0", tmp_path / "model")
    assert any(path.iterdir())
    [model] = _bob_events(team, "model_version.download")
    # Its file list at least: files already in this machine's model cache are not fetched.
    assert model["target"] == "model:fraud/1.0.0" and model["after"]["objects"] >= 1
    from cairn.services import datasets_for

    datasets_for(team["bob"].store, "bob").checkout("tbl@1", tmp_path / "data")
    assert (tmp_path / "data" / "part-0.csv").exists()
    [data] = _bob_events(team, "dataset_version.download")
    assert data["target"] == "dataset:tbl@1" and data["actor"] == "bob"


def test_mlflow_client_download_is_audited(team, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", team["bob_token"])
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    before = len(_bob_events(team, "artifact.download", 0, 0))
    got = MlflowClient(team["url"]).download_artifacts(team["run"], "b.txt", str(tmp_path))
    assert Path(got).read_text().startswith("b.txt")
    events = _bob_events(team, "artifact.download", before + 1)
    assert len(events) == before + 1
    assert events[0]["target"] == f"runs/{team['run']}" and events[0]["after"]["path"] == "b.txt"


def test_audit_log_shows_downloads_and_the_chain_verifies(team):
    _bob_events(team, "artifact.download")
    team["app"].state.cairn.flush_audit()
    runner = CliRunner()
    res = runner.invoke(cli, ["--store", str(team["store"]), "audit", "log", "--actor", "bob",
                              "--json"])
    assert res.exit_code == 0, res.output
    actions = {e["action"] for e in json.loads(res.output)}
    assert "artifact.download" in actions
    ok = runner.invoke(cli, ["--store", str(team["store"]), "audit", "verify", "--json"])
    assert ok.exit_code == 0 and json.loads(ok.output)["ok"], ok.output


def test_a_local_store_audits_no_download(tmp_path):
    c = cairn.Client(str(tmp_path / "local"))
    run = c.create_run(c.create_experiment("x").id)
    f = tmp_path / "f.txt"
    f.write_text("hi")
    c.log_artifact(run.id, f)
    c.download_artifacts(run.id, "", tmp_path / "out")
    assert not [e for e in c.audit_log() if e.action.endswith("download")]
