"""The trash on every backend (issue #21): model versions, data set versions, runs and
experiments go to the trash, are hidden from reads, come back with a restore, and are
purged for good by ``empty_trash``; protected items need an admin's force, audited.

Backends (tests/conformance_backends.py): a store directory, PostgreSQL used directly, and
a team server with roles (alice edits experiments and models, root is a server admin)
over a store directory and over PostgreSQL.  On a store opened directly everyone may do
everything; on a server a model version's delete and restore need admin on the model,
forcing a data set version's delete and the trash listing/purge need a server admin.
"""

from __future__ import annotations

import itertools

import pytest

from cairn.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, PermissionDenied
from conformance_backends import backend_fixture
from pg_fixtures import pg_database  # noqa: F401  (a fixture, used by name)

BACKENDS = ["local", pytest.param("postgres", marks=pytest.mark.postgres), "remote",
            pytest.param("remote-postgres", marks=[pytest.mark.postgres, pytest.mark.slow])]

backend = backend_fixture(BACKENDS, CAIRN_CAPTURE_ENV="0")
_n = itertools.count()


@pytest.fixture
def alice(backend):
    return backend.client("alice")


@pytest.fixture
def root(backend):
    return backend.admin


def _deleter(backend, alice, root):
    """Who deletes model versions: on a server only the model's admins may."""
    return root if backend.remote else alice


def _add(client, tmp_path, name: str, text: str):
    if client.store.uri.startswith("postgresql"):
        pytest.skip("adding data needs a store directory or a server (remote-postgres covers "
                    "data set versions on PostgreSQL)")
    d = tmp_path / f"src-{next(_n)}"
    d.mkdir()
    (d / "x.csv").write_text(text)
    return client.data.add(d, name)


def test_a_model_version_goes_to_the_trash_and_comes_back(backend, alice, root):
    root.create_registered_model("clf")  # on a server its creator administers it: not alice
    v1 = alice.register_model("clf", {"w": [1]}, flavor="pickle")
    v2 = alice.register_model("clf", {"w": [2]}, flavor="pickle")
    deleter = _deleter(backend, alice, root)
    if backend.remote:
        with pytest.raises(PermissionDenied):
            alice.delete_model_version("clf", v2.version)
    assert deleter.delete_model_version("clf", v2.version).version == v2.version
    # Hidden from every read, with a message saying where it is and how to get it back.
    for read in (lambda: alice.get_model_version("clf", v2.version),
                 lambda: alice.resolve_model(f"clf/{v2.version}")):
        with pytest.raises(NotFound, match=rf"in the trash.*cairn models restore clf {v2.version}"):
            read()
    assert [v.version for v in alice.list_model_versions("clf")] == [v1.version]
    assert alice.get_latest_model_version("clf").version == v1.version
    assert alice.resolve_model("clf@latest").version == v1.version
    assert alice.get_registered_model("clf").latest_version == v1.version
    items = root.list_trash()
    assert [(i.kind, i.identifier, i.deleted_by) for i in items] == [
        ("model_version", f"clf/{v2.version}", deleter.user)]
    assert items[0].deleted_at is not None
    with pytest.raises(Conflict, match="not in the trash"):
        deleter.restore_model_version("clf", v1.version)
    with pytest.raises(NotFound):
        deleter.restore_model_version("clf", "9.9.9")
    back = deleter.restore_model_version("clf", v2.version)
    assert (back.version, back.stage, back.tree_oid) == (v2.version, "Development", v2.tree_oid)
    assert alice.load_model(f"clf/{v2.version}") == {"w": [2]}  # its files came back with it
    assert root.list_trash() == []
    # A number in the trash is never given again, explicitly or by a bump.
    deleter.delete_model_version("clf", v2.version)
    v3 = alice.register_model("clf", {"w": [3]}, flavor="pickle")
    assert v3.version not in (v1.version, v2.version)
    with pytest.raises(AlreadyExists, match="was deleted"):
        alice.register_model("clf", {"w": [4]}, flavor="pickle", version=v2.version)
    backend.settle()
    actions = [e.action for e in root.audit_log(target=f"model:clf/{v2.version}")]
    assert actions.count("model_version.delete") == 2 and "model_version.restore" in actions
    assert root.verify_audit_log().ok


def test_a_protected_version_needs_an_admins_force_and_is_audited(backend, alice, root):
    root.create_registered_model("svc")
    v1 = alice.register_model("svc", {"w": [1]}, flavor="pickle")
    v2 = alice.register_model("svc", {"w": [2]}, flavor="pickle")
    alice.transition_model_version_stage("svc", v1.version, "production")
    alice.set_alias("svc", "champion", v2.version)
    for v, why in ((v1, "Production"), (v2, "alias 'champion'")):
        with pytest.raises(Conflict, match=why):
            root.delete_model_version("svc", v.version)
        if backend.remote:  # an editor's force: refused (403), nothing changes
            with pytest.raises(PermissionDenied):
                alice.delete_model_version("svc", v.version, force=True)
    assert len(alice.list_model_versions("svc")) == 2
    assert alice.resolve_model("svc@champion").version == v2.version
    root.delete_model_version("svc", v1.version, force=True)
    root.delete_model_version("svc", v2.version, force=True)
    assert alice.list_model_versions("svc", "production") == []
    for ref in ("svc@production", "svc@champion", "svc@latest"):
        with pytest.raises(NotFound):
            alice.resolve_model(ref)
    backend.settle()
    event = root.audit_log(target=f"model:svc/{v1.version}", action="model_version.delete")[0]
    assert event.actor == "root" and event.after["forced"] == ["it is in Production"]
    assert event.after["trash"] is True
    # A restore never puts a model back into service: Archived, and no alias.
    back = root.restore_model_version("svc", v1.version)
    assert (back.stage, back.aliases) == ("Archived", ())
    assert root.restore_model_version("svc", v2.version).stage == "Development"
    assert alice.get_registered_model("svc").aliases == {}


def test_a_data_set_version_goes_to_the_trash_and_comes_back(backend, alice, root, tmp_path):
    _add(alice, tmp_path, "tx", "a,b\n1,2\n")
    _add(alice, tmp_path, "tx", "a,b\n1,2\n3,4\n")
    alice.data.alias("tx@1", "gold")
    for bad in ("tx", "tx@gold", "tx@latest"):  # a trash operation names a version by number
        with pytest.raises(InvalidArgument, match="NAME@VERSION"):
            alice.delete_dataset_version(bad)
    with pytest.raises(InvalidArgument):
        alice.delete_dataset_version("tx@1", force="yes")
    # An alias is a name readers resolve: the version it points at needs force, an admin's.
    with pytest.raises(Conflict, match="alias 'gold' points at it"):
        alice.delete_dataset_version("tx@1")
    assert alice.data.version("tx@gold").version == 1  # refused: nothing changed
    gone = root.delete_dataset_version("tx@1", force=True)
    assert gone.ref == "tx@1"
    for ref in ("tx@1", "tx@gold"):
        with pytest.raises(NotFound, match=r"in the trash.*cairn data restore tx@1"):
            alice.data.version(ref)
    with pytest.raises(NotFound, match="in the trash"):
        alice.data.checkout("tx@1", tmp_path / "out")
    assert [v.version for v in alice.data.versions("tx")] == [2]
    assert alice.data.version("tx").version == 2
    assert [(i.kind, i.identifier, i.deleted_by) for i in root.list_trash()] == [
        ("dataset_version", "tx@1", root.user)]
    alice.delete_dataset_version("tx@2")  # no alias, no model: an editor may
    with pytest.raises(NotFound):
        alice.data.version("tx")  # no live version left
    assert _add(alice, tmp_path, "tx", "a,b\n9,9\n").version == 3  # numbers are not reused
    back = alice.restore_dataset_version("tx@1")
    assert (back.version, back.aliases) == (1, ("gold",))
    alice.data.checkout("tx@gold", tmp_path / "out")
    assert (tmp_path / "out" / "x.csv").read_text() == "a,b\n1,2\n"
    with pytest.raises(Conflict, match="not in the trash"):
        alice.restore_dataset_version("tx@1")
    with pytest.raises(NotFound, match="not in the trash"):
        alice.restore_dataset_version("tx@9")
    backend.settle()
    actions = [e.action for e in root.audit_log(target="dataset:tx@1")]
    assert "dataset_version.delete" in actions and "dataset_version.restore" in actions


def test_a_data_set_version_a_live_model_used_needs_an_admins_force(backend, alice, root,
                                                                    tmp_path):
    _add(alice, tmp_path, "tx", "a,b\n1,2\n")
    _add(alice, tmp_path, "tx", "a,b\n1,2\n5,6\n")
    root.create_registered_model("clf")
    named = alice.register_model("clf", {"w": [1]}, flavor="pickle", datasets=["tx@1"])
    exp = root.create_experiment("train")
    run = alice.create_run(exp.id)
    alice.log_input(run.id, "tx@2", "train")
    read = alice.register_model("clf", {"w": [2]}, flavor="pickle", run_id=run.id)
    for ref, mv in (("tx@1", named), ("tx@2", read)):
        with pytest.raises(Conflict, match=f"input of registered model version clf/{mv.version}"):
            alice.delete_dataset_version(ref)
        if backend.remote:  # forcing is a server admin's, and refused changes nothing
            with pytest.raises(PermissionDenied):
                alice.delete_dataset_version(ref, force=True)
        assert alice.data.version(ref).ref == ref
    forcer = root if backend.remote else alice
    forcer.delete_dataset_version("tx@1", force=True)
    with pytest.raises(NotFound, match="in the trash"):
        alice.data.version("tx@1")
    backend.settle()
    event = root.audit_log(target="dataset:tx@1", action="dataset_version.delete")[0]
    assert event.actor == forcer.user
    assert event.after["forced"] == [f"an input of clf/{named.version}"]
    # A model version in the trash protects nothing.
    _deleter(backend, alice, root).delete_model_version("clf", read.version)
    assert alice.delete_dataset_version("tx@2").ref == "tx@2"


def test_the_source_run_of_a_live_model_version_needs_force_and_is_kept(backend, alice, root):
    exp = root.create_experiment("train")
    run = alice.create_run(exp.id, name="source")
    alice.set_terminated(run.id)
    root.create_registered_model("clf")
    mv = alice.register_model("clf", {"w": [1]}, flavor="pickle", run_id=run.id)
    with pytest.raises(Conflict, match=f"source run of registered model version clf/{mv.version}"):
        alice.delete_run(run.id)
    assert alice.get_run(run.id).lifecycle == "active"
    assert alice.delete_run(run.id, force=True).lifecycle == "deleted"
    report = root.empty_trash()
    assert report.purged == []
    [(item, why)] = report.kept
    assert item.identifier == run.id and f"live model version(s) clf/{mv.version}" in why
    assert alice.get_run(run.id).lifecycle == "deleted"  # still there, restorable
    _deleter(backend, alice, root).delete_model_version("clf", mv.version)
    report = root.empty_trash()
    assert sorted(i.kind for i in report.purged) == ["model_version", "run"]
    with pytest.raises(NotFound):
        alice.get_run(run.id)


def test_emptying_the_trash_purges_what_is_old_enough_for_good(backend, alice, root, tmp_path):
    doomed = root.create_experiment("doomed")
    in_doomed = alice.create_run(doomed.id, name="inside")
    alice.log_metric(in_doomed.id, "loss", 0.5)
    alice.set_terminated(in_doomed.id)
    kept = root.create_experiment("kept")
    lone = alice.create_run(kept.id, name="lone")
    alice.set_terminated(lone.id)
    survivor = alice.create_run(kept.id, name="survivor")
    alice.set_terminated(survivor.id)
    alice.delete_run(lone.id)
    root.delete_experiment(doomed.id)
    direct_pg = backend.kind == "postgres"
    if direct_pg:  # no add on PostgreSQL used directly: the catalog row alone
        from cairn.data.catalog import Catalog

        Catalog(backend._sql_store().index).create_version(
            "tx", tree="0" * 64, packs=[], files=1, size=8, user="alice")
    else:
        _add(alice, tmp_path, "tx", "a,b\n1,2\n")
    alice.delete_dataset_version("tx@1")
    root.create_registered_model("clf")
    mv = alice.register_model("clf", {"w": [1]}, flavor="pickle")
    _deleter(backend, alice, root).delete_model_version("clf", mv.version)

    items = root.list_trash()
    assert {(i.kind, i.identifier) for i in items} == {
        ("run", lone.id), ("experiment", doomed.id), ("dataset_version", "tx@1"),
        ("model_version", f"clf/{mv.version}")}
    exp_item = next(i for i in items if i.kind == "experiment")
    assert (exp_item.name, exp_item.deleted_by) == ("doomed", "root")
    assert all(i.deleted_at is not None for i in items)
    if backend.remote:  # the trash is a server admin's
        for act in (alice.list_trash, alice.empty_trash):
            with pytest.raises(PermissionDenied):
                act()
    assert root.empty_trash(older_than_days=1).purged == []  # nothing is a day old
    dry = root.empty_trash(dry_run=True)
    assert len(dry.purged) == 4 and dry.runs_in_experiments == 1
    assert len(root.list_trash()) == 4  # a dry run changes nothing

    report = root.empty_trash()
    assert len(report.purged) == 4 and report.runs_in_experiments == 1 and not report.kept
    assert root.list_trash() == []
    for rid in (lone.id, in_doomed.id):
        with pytest.raises(NotFound):
            alice.get_run(rid)
    with pytest.raises(NotFound):
        alice.get_experiment(doomed.id)
    assert alice.get_run(survivor.id).lifecycle == "active"
    with pytest.raises(NotFound) as e:
        alice.data.version("tx@1")
    assert "trash" not in e.value.message  # gone, not in the trash
    with pytest.raises(NotFound, match="not in the trash"):
        alice.restore_dataset_version("tx@1")
    with pytest.raises(NotFound):
        root.restore_model_version("clf", mv.version)
    # Purged numbers are not given again either.
    if direct_pg:
        assert Catalog(backend._sql_store().index).create_version(
            "tx", tree="0" * 64, packs=[], files=1, size=8, user="alice").version == 2
    else:
        assert _add(alice, tmp_path, "tx", "a,b\n1,2\n").version == 2
    assert alice.register_model("clf", {"w": [1]}, flavor="pickle").version != mv.version
    assert root.empty_trash().purged == []  # idempotent
    backend.settle()
    for target, action in ((f"runs/{lone.id}", "run.purge"),
                           (f"experiments/{doomed.id}", "experiment.purge"),
                           ("dataset:tx@1", "dataset_version.purge"),
                           (f"model:clf/{mv.version}", "model_version.purge")):
        events = root.audit_log(target=target, action=action)
        assert len(events) == 1 and events[0].actor == "root", action
    assert root.verify_audit_log().ok
    store = backend._sql_store()
    store_root = getattr(store, "root", None)
    if store_root is not None:  # a store directory: the journals went too, for good
        for rid in (lone.id, in_doomed.id):
            assert not (store_root / "runs" / rid).exists()
        assert not (store_root / "experiments" / f"{doomed.id}.json").exists()
        store.reindex()
        with pytest.raises(NotFound):
            alice.get_run(lone.id)
        assert alice.get_run(survivor.id).lifecycle == "active"
