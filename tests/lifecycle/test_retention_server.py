"""Retention through a team server on PostgreSQL: an experiment's policy is its admins' to
set, a data set's and the plan a server admin's; the library's functions and the CLI work
against the server's URL; the production refusal comes back as a 409."""

from __future__ import annotations

import json

import httpx
import pytest
from click.testing import CliRunner
from pg_fixtures import create_schema, pg_database  # noqa: F401  (a fixture)
from serving import ThreadedServer

import cairn
from cairn.cas import ObjectStore
from cairn.cli.main import cli
from cairn.errors import Conflict, InvalidArgument, PermissionDenied
from cairn.lifecycle import retention as R
from cairn.server import ServerSettings, create_app
from cairn.store import close_stores
from cairn.store.http import HttpStore
from cairn.store.sql.store import SqlStore

pytestmark = [pytest.mark.postgres, pytest.mark.slow]  # a server process on PostgreSQL
API = "/api/v1"
TOKEN = "cairn_retention-test-admin-token-0000001"


@pytest.fixture(scope="module")
def team(tmp_path_factory, pg_database):  # noqa: F811
    """root (server admin), ann (admin of experiment E), ed (editor of E)."""
    base = tmp_path_factory.mktemp("team")
    store = SqlStore(create_schema(pg_database), ObjectStore.local(base / "objects"))
    app = create_app(store, settings=ServerSettings(auth=True, bootstrap_token=TOKEN))
    app.state.cairn.start()
    h = {"authorization": f"Bearer {TOKEN}"}
    with ThreadedServer(app) as url:
        root = cairn.Client(store=HttpStore(url, token=TOKEN, spool_dir=str(base / "sp-root")))
        exp = root.create_experiment("E")
        runs = []
        for _ in range(3):
            run = root.create_run(exp.id)
            root.set_terminated(run.id)
            runs.append(run.id)
        tokens = {}
        for user, role in (("ann", "admin"), ("ed", "editor")):
            httpx.post(f"{url}{API}/users", json={"name": user}, headers=h).raise_for_status()
            tokens[user] = httpx.post(f"{url}{API}/users/{user}/tokens", json={},
                                      headers=h).json()["token"]
            httpx.put(f"{url}{API}/roles", json={"user": user, "resource_type": "experiment",
                                                 "resource_id": exp.id, "role": role},
                      headers=h).raise_for_status()
        clients = {u: cairn.Client(store=HttpStore(url, token=t, spool_dir=str(base / f"sp-{u}")))
                   for u, t in tokens.items()}
        yield {"url": url, "root": root, "exp": exp, "runs": runs, "tokens": tokens,
               "store": store, **clients}
        for c in (root, *clients.values()):
            c.store.close()
    store.close()


def test_only_the_experiments_admins_set_its_policy(team):
    ann, ed = team["ann"].store, team["ed"].store
    with pytest.raises(PermissionDenied):
        R.set_policy(ed, "experiment", "E", {"keep_last": 2}, actor="ed")
    rec = R.set_policy(ann, "experiment", "E", {"keep_last": 2}, actor="ignored")
    assert rec.updated_by == "ann" and rec.target == team["exp"].id  # the server's caller
    got = R.get_policy(ed, "experiment", "E")  # an editor may read it
    assert got is not None and got.policy.keep_last == 2
    assert [r.label for r in R.list_policies(ed)] == ["E"]
    with pytest.raises(PermissionDenied):
        R.plan(ann)  # every experiment's: server admins only
    assert [a.kind for a in R.plan(team["root"].store)] == ["trash_run"]
    with pytest.raises(InvalidArgument, match="cairn gc"):
        R.apply(ann)
    with pytest.raises(PermissionDenied):
        R.unset_policy(ed, "experiment", "E", actor="ed")
    R.unset_policy(ann, "experiment", "E", actor="ann")
    events = team["root"].audit_log(target=f"experiment:{team['exp'].id}", limit=10)
    assert [(e.action, e.actor) for e in reversed(events)] == [("retention.set", "ann"),
                                                               ("retention.unset", "ann")]


def test_a_runs_ttl_through_the_server(team):
    rid = team["runs"][0]
    with pytest.raises(PermissionDenied):
        R.set_artifacts_ttl(team["ed"].store, rid, 3, actor="ed")
    when = R.set_artifacts_ttl(team["ann"].store, rid, 3, actor="ann")
    run = team["root"].get_run(rid)
    assert when == run.end_time + 3 * R.DAY_MS and run.tags[R.EXPIRES_TAG] == str(when)
    r = httpx.put(f"{team['url']}{API}/runs/{rid}/artifacts/ttl", json={"days": -1},
                  headers={"authorization": f"Bearer {team['tokens']['ann']}"})
    assert r.status_code == 400 and "between 0" in r.json()["message"]
    r = httpx.put(f"{team['url']}{API}/runs/{rid}/artifacts/ttl", json={"weeks": 1},
                  headers={"authorization": f"Bearer {team['tokens']['ann']}"})
    assert r.status_code == 400
    assert R.set_artifacts_ttl(team["ann"].store, rid, None, actor="ann") is None


def test_data_set_policies_are_a_server_admins_and_bad_bodies_are_400(team):
    h = {"authorization": f"Bearer {team['tokens']['ann']}"}
    r = httpx.put(f"{team['url']}{API}/retention/datasets/tx", json={"keep_last": 1}, headers=h)
    assert r.status_code == 403
    root = {"authorization": f"Bearer {TOKEN}"}
    r = httpx.put(f"{team['url']}{API}/retention/datasets/ghost", json={"keep_last": 1},
                  headers=root)
    assert r.status_code == 404 and "no data set named 'ghost'" in r.json()["message"]
    eid = team["exp"].id
    for body in ({"keep_days": "ten"}, {"keep_last": 0}, {"color": "red"}):
        r = httpx.put(f"{team['url']}{API}/retention/experiments/{eid}", json=body, headers=h)
        assert r.status_code == 400, r.text
    r = httpx.put(f"{team['url']}{API}/retention/experiments/{eid}", headers=h)
    assert r.status_code == 400 and "JSON object" in r.json()["message"]


def test_the_production_refusal_is_a_409_naming_the_version(team, tmp_path):
    root, rid = team["root"], team["runs"][0]
    d = tmp_path / "m"
    d.mkdir()
    (d / "w.bin").write_bytes(b"w")
    root.register_model("prod-model", str(d), flavor="directory", run_id=rid)
    root.transition_model_version_stage("prod-model", "1.0.0", "Production")
    with pytest.raises(Conflict, match=f"prod-model/1.0.0 \\(in Production\\).*|{rid}"):
        R.set_policy(team["ann"].store, "experiment", "E",
                     {"keep_last": 1, "keep_registered": False}, actor="ann")
    assert R.get_policy(team["ann"].store, "experiment", "E") is None


def test_the_cli_against_the_server(team, monkeypatch):
    monkeypatch.setenv("CAIRN_TRACKING_TOKEN", team["tokens"]["ann"])
    runner = CliRunner()
    url = team["url"]
    out = runner.invoke(cli, ["--store", url, "retention", "set", "--experiment", "E",
                              "--keep-days", "400", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["updated_by"] == "ann"
    out = runner.invoke(cli, ["--store", url, "retention", "ls", "--json"])
    assert [p["label"] for p in json.loads(out.output)] == ["E"]
    out = runner.invoke(cli, ["--store", url, "retention", "plan"])
    assert out.exit_code == 1 and "admin" in out.output
    out = runner.invoke(cli, ["--store", url, "retention", "unset", "--experiment", "E"])
    assert out.exit_code == 0, out.output
    close_stores("http", "https")  # the CLI's process-wide client of the server
