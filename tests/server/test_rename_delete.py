"""Renaming, deleting and restoring runs and experiments on every backend (#17): a store
directory, PostgreSQL used directly, and a team server (auth on) over each of them.

A run's rename and delete travel as a record batch (the reserved tags ``cairn.run.name``
and ``cairn.run.lifecycle``), so a server authorizes them as any write to the run (editor
on its experiment) and a store directory keeps them in its journals.  An experiment's
rename, delete and restore need admin on it, as MLflow's routes do.
"""

from __future__ import annotations

import pytest

from cairn.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied
from conformance_backends import backend_fixture
from pg_fixtures import pg_database  # noqa: F401  (a fixture, used by name)

BACKENDS = ["local", pytest.param("postgres", marks=pytest.mark.postgres), "remote",
            pytest.param("remote-postgres", marks=pytest.mark.postgres)]

backend = backend_fixture(BACKENDS)


@pytest.fixture
def world(backend):
    """An experiment that alice (editor) works in, with one finished run of hers."""
    root = backend.admin
    exp = root.create_experiment("team")
    alice = backend.client("alice")
    run = alice.create_run(exp.id, name="first", params={"lr": "0.1"})
    alice.log_metric(run.id, "acc", 0.5)
    alice.set_terminated(run.id)
    return backend, exp, run.id


def _state(client, run_id):
    run = client.get_run(run_id)
    return run.name, run.lifecycle, dict(run.tags)


def test_an_editor_renames_deletes_and_restores_a_finished_run(world):
    backend, exp, rid = world
    alice = backend.client("alice")
    assert alice.rename_run(rid, "renamed").name == "renamed"
    assert alice.delete_run(rid).lifecycle == "deleted"
    assert list(alice.search_runs(exp.id)) == []
    assert [r.id for r in alice.search_runs(exp.id, lifecycle="deleted")] == [rid]
    assert [r.id for r in alice.search_runs(exp.id, lifecycle=None)] == [rid]
    # Another user's view (another process, another HTTP store): the same.
    assert _state(backend.client("vera"), rid) == ("renamed", "deleted", {})
    assert alice.restore_run(rid).lifecycle == "active"
    assert [r.name for r in alice.search_runs(exp.id)] == ["renamed"]
    if backend.kind in ("local", "remote"):  # a store directory: rebuilt from its journals
        store = backend._sql_store()
        store.reindex()
        alice.delete_run(rid)
        store.reindex()
        assert _state(backend.client("vera"), rid) == ("renamed", "deleted", {})


def test_a_viewer_and_a_stranger_change_nothing(world):
    backend, exp, rid = world
    if not backend.remote:
        pytest.skip("roles are a server's: on a store opened directly everyone may write")
    vera = backend.client("vera")  # viewer
    for act in (lambda: vera.rename_run(rid, "x"), lambda: vera.delete_run(rid),
                lambda: vera.rename_experiment(exp.id, "x"),
                lambda: vera.delete_experiment(exp.id)):
        with pytest.raises(PermissionDenied):
            act()
    alice = backend.client("alice")  # an editor deletes runs, not experiments
    with pytest.raises(PermissionDenied):
        alice.delete_experiment(exp.id)
    # A user with no role at all: the experiment and run are not there for her.
    from conformance_backends import provision

    import httpx

    with httpx.Client(base_url=backend.url + "/api/v1", timeout=30,
                      headers={"authorization": f"Bearer {backend.tokens['root']}"}) as http:
        backend.tokens.update(provision(http, {"nora": []}))
    nora = backend.client("nora")
    for act in (lambda: nora.rename_run(rid, "x"), lambda: nora.delete_run(rid),
                lambda: nora.rename_experiment(exp.id, "x"),
                lambda: nora.delete_experiment(exp.id)):
        with pytest.raises((NotFound, PermissionDenied)):  # as for any read of them
            act()
    root = backend.admin
    assert _state(root, rid) == ("first", "active", {})
    assert root.get_experiment(exp.id).name == "team"
    assert root.get_experiment(exp.id).lifecycle == "active"


@pytest.mark.parametrize("name, says", [("", "non-empty"), ("x" * 501, "limit is 500"),
                                        ("\ud800", "surrogate")])
def test_bad_names_are_refused_and_change_nothing(world, name, says):
    backend, exp, rid = world
    root = backend.admin
    with pytest.raises(InvalidArgument, match=says):
        root.rename_run(rid, name)
    with pytest.raises(InvalidArgument, match=says):
        root.rename_experiment(exp.id, name)
    assert _state(root, rid) == ("first", "active", {})
    assert root.get_experiment(exp.id).name == "team"


def test_unknown_ids_and_taken_names(world):
    backend, exp, rid = world
    root = backend.admin
    for act in (lambda: root.rename_run("0" * 32, "x"), lambda: root.delete_run("0" * 32),
                lambda: root.restore_run("0" * 32), lambda: root.delete_experiment("424242"),
                lambda: root.rename_experiment("424242", "x")):
        with pytest.raises(NotFound):
            act()
    root.create_experiment("taken")
    with pytest.raises(AlreadyExists):
        root.rename_experiment(exp.id, "taken")
    assert root.get_experiment(exp.id).name == "team"


def test_an_experiment_is_renamed_deleted_with_its_runs_and_restored(world):
    backend, exp, rid = world
    root = backend.admin
    assert root.rename_experiment(exp.id, "team-2").name == "team-2"
    assert root.get_run(rid).experiment == "team-2"
    assert root.delete_experiment(exp.id).lifecycle == "deleted"
    assert root.get_experiment(exp.id).lifecycle == "deleted"
    assert root.get_run(rid).lifecycle == "deleted"
    assert list(root.search_runs()) == []
    if backend.kind in ("local", "remote"):
        backend._sql_store().reindex()
        assert root.get_experiment(exp.id).lifecycle == "deleted"
        assert root.get_run(rid).lifecycle == "deleted"
    assert root.restore_experiment(exp.id).lifecycle == "active"
    assert [r.id for r in root.search_runs()] == [rid]


def test_a_local_rename_and_delete_reach_a_server_with_cairn_sync(tmp_path):
    """Replay on another machine: the journals carry the changes, and the latest wins
    whatever order the writers' journals are sent in."""
    from click.testing import CliRunner
    from serving import ThreadedServer

    import cairn
    from cairn.cas import ObjectStore
    from cairn.cli.main import cli
    from cairn.server import create_app
    from cairn.store import close_store
    from cairn.store.sql.store import SqlStore

    local = str(tmp_path / "laptop")
    exp = cairn.Client(local).create_experiment("offline")
    runs = []
    for name in ("a", "b"):
        c = cairn.Client(local)  # a process each: a writer each
        r = c.create_run(exp.id, name=name)
        c.set_terminated(r.id)
        runs.append(r.id)
    import time

    cairn.Client(local).rename_run(runs[0], "a-renamed")
    cairn.Client(local).delete_run(runs[1])
    cairn.Client(local).delete_run(runs[0])
    time.sleep(0.005)  # in another millisecond (within one, the higher writer id wins)
    cairn.Client(local).restore_run(runs[0])  # a later writer than the delete
    close_store(local)
    server_store = SqlStore(f"sqlite:///{tmp_path / 'server.db'}", ObjectStore.local(tmp_path / "o"))
    try:
        with ThreadedServer(create_app(server_store)) as url:
            res = CliRunner().invoke(cli, ["sync", "--from", local, "--to", url, "--json"])
            assert res.exit_code == 0, res.output
            remote = cairn.Client(store=server_store)
            got = {rid: (remote.get_run(rid).name, remote.get_run(rid).lifecycle) for rid in runs}
            assert got == {runs[0]: ("a-renamed", "active"), runs[1]: ("b", "deleted")}
            assert [r.id for r in remote.search_runs()] == [runs[0]]
    finally:
        server_store.close()


def test_the_server_refuses_bad_input_on_its_own_routes(world):
    """What a client other than Cairn's sends: refused with a clear 4xx, nothing changed."""
    import httpx

    backend, exp, rid = world
    if not backend.remote:
        pytest.skip("the server's routes")
    with httpx.Client(base_url=backend.url + "/api/v1", timeout=30,
                      headers={"authorization": f"Bearer {backend.tokens['root']}"}) as http:
        for body in ({"name": ""}, {"name": "x" * 501}, {}):
            r = http.patch(f"/experiments/{exp.id}", json=body)
            assert r.status_code == 400, r.text
        r = http.patch(f"/experiments/{exp.id}", content=b'{"name": "\\ud800"}',
                       headers={"content-type": "application/json"})
        assert r.status_code == 400 and "surrogate" in r.text, r.text
        assert http.patch("/experiments/424242", json={"name": "x"}).status_code == 404
        assert http.post("/experiments/424242/delete").status_code == 404
        for tags in ({"cairn.run.lifecycle": "purged"}, {"cairn.run.name": ""},
                     {"cairn.run.name": "x" * 501}):
            r = http.post("/records", json={"batches": [
                {"run_id": rid, "writer_id": "w-bad", "seq": 1, "time": 1, "tags": tags}]})
            res = r.json()["results"][0] if r.status_code == 200 else None
            assert r.status_code == 400 or res["status"] == "rejected" or \
                res.get("rejected_items"), r.text
        r = http.put(f"/runs/{rid}/tags/cairn.run.lifecycle", content=b"purged")
        assert r.status_code == 400 and "must be one of" in r.text, r.text
    assert _state(backend.admin, rid) == ("first", "active", {})
    assert backend.admin.get_experiment(exp.id).name == "team"


def test_restoring_an_experiment_leaves_a_run_deleted_on_its_own_deleted(world):
    """As a rebuild from the journals would leave it: the run's own delete is its own."""
    backend, exp, rid = world
    root = backend.admin
    other = root.create_run(exp.id, name="other").id
    root.delete_run(rid)
    root.delete_experiment(exp.id)
    assert root.get_run(other).lifecycle == "deleted"
    root.restore_experiment(exp.id)
    assert (root.get_run(rid).lifecycle, root.get_run(other).lifecycle) == ("deleted", "active")
    if backend.kind in ("local", "remote"):
        backend._sql_store().reindex()
        assert (root.get_run(rid).lifecycle, root.get_run(other).lifecycle) == \
            ("deleted", "active")


def test_memory_store_keeps_a_run_deleted_on_its_own():
    import cairn

    client = cairn.Client("memory://own-delete")
    exp = client.create_experiment("m")
    a, b = (client.create_run(exp.id).id for _ in range(2))
    client.delete_run(a)
    client.delete_experiment(exp.id)
    client.restore_experiment(exp.id)
    assert (client.get_run(a).lifecycle, client.get_run(b).lifecycle) == ("deleted", "active")


def test_the_native_run_routes_for_other_clients(world):
    """PATCH /runs/{id}, POST /runs/{id}/delete|restore: one journalled batch each, the
    editor's role; a viewer gets 403, bad names 400, and nothing changes."""
    import httpx

    backend, exp, rid = world
    if not backend.remote:
        pytest.skip("the server's routes")

    def http(user):
        return httpx.Client(base_url=backend.url + "/api/v1", timeout=30,
                            headers={"authorization": f"Bearer {backend.tokens[user]}"})

    with http("vera") as vera:
        assert vera.patch(f"/runs/{rid}", json={"name": "x"}).status_code == 403
        assert vera.post(f"/runs/{rid}/delete").status_code == 403
    with http("alice") as alice:
        for body in ({"name": ""}, {"name": "x" * 501}, {}):
            assert alice.patch(f"/runs/{rid}", json=body).status_code == 400
        assert alice.patch("/runs/" + "0" * 32, json={"name": "x"}).status_code == 404
        assert _state(backend.admin, rid) == ("first", "active", {})
        r = alice.patch(f"/runs/{rid}", json={"name": "via-http"})
        assert r.status_code == 200 and r.json()["name"] == "via-http", r.text
        r = alice.post(f"/runs/{rid}/delete")
        assert r.status_code == 200 and r.json()["lifecycle"] == "deleted", r.text
        assert alice.post("/runs/search", json={}).json()["runs"] == []
        got = alice.post("/runs/search", json={"lifecycle": "deleted"}).json()["runs"]
        assert [g["id"] for g in got] == [rid]
        assert alice.post(f"/runs/{rid}/restore").json()["lifecycle"] == "active"
    backend.settle()
    actions = [e.action for e in backend.admin.audit_log(target=f"runs/{rid}")]
    assert {"run.rename", "run.delete", "run.restore"} <= set(actions)


def test_a_deleted_experiment_takes_no_new_runs_until_restored(world):
    backend, exp, rid = world
    root = backend.admin
    alice = backend.client("alice")
    root.delete_experiment(exp.id)
    with pytest.raises(InvalidArgument, match="is deleted; restore it"):
        alice.create_run(exp.id, name="late")
    # The refusal left nothing behind: no run was created, the old one is still in the trash.
    assert [r.id for r in root.search_runs(exp.id, lifecycle=None)] == [rid]
    root.restore_experiment(exp.id)
    assert alice.create_run(exp.id, name="after").name == "after"
