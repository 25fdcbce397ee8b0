"""Deployment history (issue #18): every start, switch, rollback and stop of a `cairn serve`
deployment is a history event and an audit event (who, version, when, why), on every backend.

The same tests run on a local store, on the server's PostgreSQL store used directly, and
through a real server (auth on) over HTTP, with the registry conformance suite's backends
(tests/conformance_backends.py): alice edits models, vera only views them, root is an admin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cairn import clock
from cairn.errors import InvalidArgument, NotFound, PermissionDenied
from conformance_backends import backend_fixture
from pg_fixtures import pg_database  # noqa: F401  (a fixture, used by name)

BACKENDS = ["local", pytest.param("postgres", marks=pytest.mark.postgres), "remote"]
backend = backend_fixture(BACKENDS)
HOST = "serve-1.example:8080"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    # Never sign with the developer's keys; no environment capture (fast registrations).
    monkeypatch.setenv("CAIRN_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")


@pytest.fixture
def alice(backend):
    client = backend.client("alice")
    for weights in ([1.0], [2.0], [3.0]):  # 1.0.0, 1.0.1, 1.0.2
        client.register_model("fraud", {"weights": weights}, flavor="pickle")
    return client


def _audit(backend, action_prefix: str = "deployment."):
    backend.settle()
    return [e for e in backend.admin._registry.audit_log(target="model:fraud")
            if e.action.startswith(action_prefix)]


# -- each event, with who, when and why -------------------------------------------------
def test_each_event_is_recorded_with_who_when_why(backend, alice):
    before = clock.now_ms()
    started = alice.record_deployment("fraud", "1.0.0", "start", deployment=HOST,
                                      reason="first rollout")
    switched = alice.record_deployment("fraud", "1.0.1", "switch", deployment=HOST,
                                       previous="1.0.0", reason="@production moved")
    canary = alice.record_deployment("fraud", "1.0.2", "start", deployment=HOST, arm="canary",
                                     reason="10% canary")
    rolled = alice.record_deployment("fraud", "1.0.0", "rollback", deployment=HOST,
                                     previous="1.0.1", reason="latency regression")
    stopped = alice.record_deployment("fraud", "1.0.0", "stop", deployment=HOST,
                                      reason="shutdown")
    after = clock.now_ms()

    events = [started, switched, canary, rolled, stopped]
    assert [e.kind for e in events] == ["deploy_start", "deploy_switch", "deploy_start",
                                        "deploy_rollback", "deploy_stop"]
    assert [(e.from_value, e.to_value, e.version) for e in events] == [
        (None, "1.0.0", "1.0.0"), ("1.0.0", "1.0.1", "1.0.1"), (None, "1.0.2", "1.0.2"),
        ("1.0.1", "1.0.0", "1.0.0"), (None, "1.0.0", "1.0.0")]
    assert [e.arm for e in events] == ["primary", "primary", "canary", "primary", "primary"]
    assert [e.reason for e in events] == ["first rollout", "@production moved", "10% canary",
                                          "latency regression", "shutdown"]
    for e in events:
        assert (e.name, e.actor, e.deployment) == ("fraud", "alice", HOST)
        assert before <= e.time <= after
        # The deployment's fields are its own: not mistaken for an alias or a request.
        assert e.alias is None and e.request_id is None

    # Read back the same, by anyone who may view the model, and among the model's history.
    assert alice.deployments("fraud") == events
    assert backend.client("vera").deployments("fraud", HOST) == events
    history = alice.model_history("fraud")
    assert [e for e in history if e.kind.startswith("deploy_")] == events
    assert [e.kind for e in alice.model_history("fraud", "1.0.2")] == ["register", "deploy_start"]

    # One audit event each, by alice, with the deployment and the reason; the chain holds.
    audit = sorted(_audit(backend), key=lambda a: a.seq)
    assert [a.action for a in audit] == ["deployment.start", "deployment.switch",
                                         "deployment.start", "deployment.rollback",
                                         "deployment.stop"]
    assert all(a.actor == "alice" for a in audit)
    assert audit[1].target == "model:fraud/1.0.1"
    assert audit[1].before == {"version": "1.0.0"} and audit[0].before is None
    assert audit[3].after == {"version": "1.0.0", "deployment": HOST, "arm": "primary",
                              "reason": "latency regression"}
    assert all(before <= a.time <= after for a in audit)
    report = backend.admin._registry.verify_audit_log()
    assert report.ok, report.problems


def test_deployments_are_kept_apart_by_id(backend, alice):
    alice.record_deployment("fraud", "1.0.0", "start", deployment=HOST)
    other = "3f0c9a2e-5b7d-4c1e-9f8a-2d6b1e4c7a90"
    alice.record_deployment("fraud", "1.0.1", "start", deployment=other)
    assert [e.deployment for e in alice.deployments("fraud")] == [HOST, other]
    assert [e.version for e in alice.deployments("fraud", other)] == ["1.0.1"]
    assert alice.deployments("fraud", "nobody:1") == []
    # The longest id that fits, and ids with the characters hosts and IPv6 addresses use.
    for dep in ("d" * 128, "[::1]:8080", "host_a.b-c:9000/x"):
        assert alice.record_deployment("fraud", "1.0.0", "start", deployment=dep).deployment \
            == dep
        assert [e.deployment for e in alice.deployments("fraud", dep)] == [dep]


# -- bad input: a clear error and nothing written ----------------------------------------
BAD = [
    ({"event": "deploy"}, InvalidArgument, "unknown deployment event 'deploy'"),
    ({"event": "START"}, InvalidArgument, "use one of start, switch, rollback, stop"),
    ({"deployment": ""}, InvalidArgument, "deployment must not be empty"),
    ({"deployment": "x" * 129}, InvalidArgument, "the limit is 128"),
    ({"deployment": " host:1"}, InvalidArgument, "surrounding white space"),
    ({"deployment": "host\n:1"}, InvalidArgument, "control characters"),
    ({"deployment": "host\ud800"}, InvalidArgument, "lone surrogate"),
    ({"deployment": 8080}, InvalidArgument, "deployment must be a string"),
    ({"arm": "Canary arm"}, InvalidArgument, "arm 'Canary arm' is invalid"),
    ({"arm": ""}, InvalidArgument, "arm '' is invalid"),
    ({"reason": "why\udc80"}, InvalidArgument, "lone surrogate"),
    ({"reason": "x" * 10_001}, InvalidArgument, "the limit is 10000"),
    ({"version": "v1"}, InvalidArgument, "is not a semantic version"),
    ({"previous": "latest"}, InvalidArgument, "is not a semantic version"),
    ({"event": "switch", "previous": "1.0.0"}, InvalidArgument,
     "previous and version are both 1.0.0"),
    ({"version": "9.9.9"}, NotFound, "has no version '9.9.9'"),
    ({"name": "nope"}, NotFound, "no registered model named 'nope'"),
    ({"name": "bad\ud800name"}, (InvalidArgument, NotFound), "name"),
]


@pytest.mark.parametrize("bad, error, message", BAD,
                         ids=[f"{sorted(b)[0]}-{i}" for i, (b, _, _) in enumerate(BAD)])
def test_bad_input_is_refused_and_nothing_written(backend, alice, bad, error, message):
    audit_before = len(_audit(backend, ""))
    args = {"name": "fraud", "version": "1.0.0", "event": "start", "deployment": HOST,
            **bad}
    with pytest.raises(error, match=message.replace("(", r"\(")):
        alice.record_deployment(args.pop("name"), args.pop("version"), args.pop("event"),
                                **args)
    assert alice.deployments("fraud") == []
    assert not [e for e in alice.model_history("fraud") if e.kind.startswith("deploy_")]
    assert len(_audit(backend, "")) == audit_before


def test_reading_checks_its_arguments(backend, alice):
    with pytest.raises(NotFound, match="no registered model named 'nope'"):
        alice.deployments("nope")
    with pytest.raises(InvalidArgument, match="deployment must not be empty"):
        alice.deployments("fraud", "")


def test_history_and_audit_are_one_transaction(tmp_path, monkeypatch):
    """An audit append that fails takes the history event with it."""
    import cairn
    from cairn.registry import repo

    client = cairn.Client(str(tmp_path / "store"), user="alice")
    client.register_model("fraud", {"weights": [1.0]}, flavor="pickle")

    def broken(*args, **kwargs):
        raise RuntimeError("the audit log is full")

    monkeypatch.setattr(repo, "record", broken)
    with pytest.raises(RuntimeError, match="full"):
        client.record_deployment("fraud", "1.0.0", "start", deployment=HOST)
    monkeypatch.undo()
    assert client.deployments("fraud") == []


# -- who may record on a team server --------------------------------------------------------
@pytest.mark.parametrize("backend", ["remote"], indirect=True)
def test_a_viewer_may_read_but_not_record(backend, alice):
    vera = backend.client("vera")
    with pytest.raises(PermissionDenied, match="needs the editor role on model 'fraud'"):
        vera.record_deployment("fraud", "1.0.0", "start", deployment=HOST, reason="forged")
    body = {"version": "1.0.0", "event": "start", "deployment": HOST, "reason": "forged"}
    with httpx.Client(base_url=backend.url + "/api/v1", timeout=30) as http:
        as_vera = {"authorization": f"Bearer {backend.tokens['vera']}"}
        r = http.post("/models/fraud/deployments", json=body, headers=as_vera)
        assert r.status_code == 403, r.text
        assert http.post("/models/fraud/deployments", json=body).status_code == 401
        # An editor's raw request is checked by the registry as the client is: 400, not 500.
        as_alice = {"authorization": f"Bearer {backend.tokens['alice']}"}
        r = http.post("/models/fraud/deployments", json={**body, "event": "go"},
                      headers=as_alice)
        assert r.status_code == 400 and "unknown deployment event" in r.text, r.text
        r = http.post("/models/fraud/deployments", json=body, headers=as_alice)
        assert r.status_code == 201 and r.json()["actor"] == "alice", r.text
        assert http.get("/models/fraud/deployments", headers=as_vera).json()[0]["reason"] \
            == "forged"
    assert [e.actor for e in vera.deployments("fraud")] == ["alice"]
    assert [a.actor for a in _audit(backend)] == ["alice"]


# -- history survives a new process, and the CLI lists it ----------------------------------
def _cli(backend, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CAIRN_USER": "vera"}
    if backend.remote:
        uri = backend.url
        env["CAIRN_TRACKING_TOKEN"] = backend.tokens["vera"]
    elif backend.kind == "postgres":
        uri = backend.store.uri
    else:
        uri = backend.uri
    exe = Path(sys.executable).with_name("cairn")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c",
                                           "from cairn.cli.main import cli; cli()"]
    return subprocess.run([*cmd, "--store", uri, "models", "deployments", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_history_survives_a_new_process(backend, alice):
    alice.record_deployment("fraud", "1.0.0", "start", deployment=HOST, reason="go live")
    alice.record_deployment("fraud", "1.0.1", "switch", deployment=HOST, previous="1.0.0",
                            arm="standby", reason="blue-green")
    backend.settle()
    out = _cli(backend, "fraud", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [(r["kind"], r["actor"], r["deployment"], r["arm"], r["from_value"], r["to_value"],
             r["reason"]) for r in rows] == [
        ("deploy_start", "alice", HOST, "primary", None, "1.0.0", "go live"),
        ("deploy_switch", "alice", HOST, "standby", "1.0.0", "1.0.1", "blue-green")]
    out = _cli(backend, "fraud", "--deployment", "other:1", "--json")
    assert out.returncode == 0 and json.loads(out.stdout) == [], out.stderr


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_cli_tables_show_deployments(backend, alice):
    from click.testing import CliRunner

    from cairn.cli.main import cli

    alice.record_deployment("fraud", "1.0.1", "switch", deployment="[::1]:8080",
                            previous="1.0.0", arm="canary", reason="[b]moved[/b]")
    runner = CliRunner()
    out = runner.invoke(cli, ["--store", backend.uri, "models", "deployments", "fraud"],
                        env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    # Text that looks like rich markup is shown as it is.
    for text in ("switch", "[::1]:8080", "canary", "1.0.1", "1.0.0", "[b]moved[/b]", "alice"):
        assert text in out.output, (text, out.output)
    out = runner.invoke(cli, ["--store", backend.uri, "models", "history", "fraud"],
                        env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "deploy_switch" in out.output and "[::1]:8080 (canary): 1.0.0 -> 1.0.1" in out.output
    out = runner.invoke(cli, ["--store", backend.uri, "models", "deployments", "nope"])
    assert out.exit_code != 0 and "no registered model named 'nope'" in out.output
