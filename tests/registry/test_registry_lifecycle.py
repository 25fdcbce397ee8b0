"""Renaming and deleting models and versions, on every backend (src/cairn/registry/lifecycle.py).

The same assertions run on a local store directory, on PostgreSQL used directly and through
a real server with auth on, through the public ``cairn.Client`` API.  On a server only a
model's admins rename and delete (alice, an editor, is refused; root, an admin, may).
"""

from __future__ import annotations

import pytest

from cairn.errors import (
    AlreadyExists, CairnError, Conflict, InvalidArgument, NotFound, PermissionDenied,
)
from conformance_backends import backend_fixture, reads, refuse_role_writes, sql_statements
from pg_fixtures import pg_database  # noqa: F401  (a fixture, used by name)

BACKENDS = ["local", pytest.param("postgres", marks=pytest.mark.postgres), "remote"]


backend = backend_fixture(BACKENDS)


@pytest.fixture
def alice(backend):
    return backend.client("alice")


@pytest.fixture
def root(backend):
    """Who deletes and renames: a model admin on a server (everyone, on a store used directly)."""
    return backend.admin


def _versions(client, name: str, n: int) -> list:
    return [client.register_model(name, {"weights": [i]}, flavor="pickle") for i in range(n)]


def test_a_deleted_versions_number_is_never_given_again(alice, root, backend):
    _versions(alice, "clf", 3)
    gone = root.delete_model_version("clf", "1.0.1")
    assert (gone.version, gone.stage) == ("1.0.1", "Development")
    with pytest.raises(NotFound):
        alice.get_model_version("clf", "1.0.1")
    with pytest.raises(NotFound):
        root.delete_model_version("clf", "1.0.1")  # twice: gone
    assert [v.version for v in alice.list_model_versions("clf")] == ["1.0.0", "1.0.2"]
    root.delete_model_version("clf", "1.0.2")  # the latest: its number is not reused either
    assert alice.register_model("clf", {"weights": [9]}, flavor="pickle").version == "1.0.3"
    with pytest.raises(AlreadyExists, match="was deleted"):
        alice.register_model("clf", {"weights": [9]}, flavor="pickle", version="1.0.1")
    root.delete_model_version("clf", "1.0.0")
    root.delete_model_version("clf", "1.0.3")
    assert alice.list_model_versions("clf") == []
    again = alice.register_model("clf", {"weights": [1]}, flavor="pickle")
    assert (again.version, again.bump) == ("2.0.0", "major")
    assert again.bump_reasons == ("every earlier version of this model was deleted",)
    kinds = [(e.kind, e.version) for e in alice.model_history("clf") if e.kind == "delete"]
    assert kinds == [("delete", v) for v in ("1.0.1", "1.0.2", "1.0.0", "1.0.3")]
    backend.settle()
    events = root.audit_log(target="model:clf/1.0.1", action="model_version.delete")
    # To the trash (restorable until it is emptied), not gone: see tests/lifecycle.
    assert len(events) == 1 and events[0].after["trash"] is True
    assert events[0].before["stage"] == "Development" and events[0].before["digest"]
    assert root.verify_audit_log().ok


def test_versions_in_use_are_kept_unless_forced(alice, root, backend):
    v1, v2, v3, v4 = _versions(alice, "svc", 4)
    alice.set_alias("svc", "champion", v1.version)
    alice.transition_model_version_stage("svc", v2.version, "production")
    alice.transition_model_version_stage("svc", v3.version, "staging")
    root.set_stage_policy("svc", "staging", approvals=1)  # a gated Staging: protected too
    for v, why in ((v1, "alias 'champion' points at it"), (v2, "it is in Production"),
                   (v3, "it is in Staging, whose policy needs approvals")):
        with pytest.raises(Conflict) as e:
            root.delete_model_version("svc", v.version)
        assert why in e.value.message and "force" in e.value.message
    with pytest.raises(Conflict, match="protected versions"):
        root.delete_registered_model("svc")
    assert len(alice.list_model_versions("svc")) == 4  # nothing was deleted
    alice.transition_model_version_stage("svc", v4.version, "archived")
    root.delete_model_version("svc", v4.version)  # Archived: not protected
    forced = root.delete_model_version("svc", v1.version, force=True)
    assert forced.aliases == ("champion",)
    assert "champion" not in alice.get_registered_model("svc").aliases
    with pytest.raises(NotFound):
        alice.resolve_model("svc@champion")
    backend.settle()
    event = root.audit_log(target=f"model:svc/{v1.version}", action="model_version.delete")[0]
    assert event.after["forced"] == ["alias 'champion' points at it"]
    assert event.before["aliases"] == ["champion"]
    assert root.audit_log(target="model:svc/@champion", action="model.alias_delete")
    # What was in Production before a forced delete is no longer "in Production now".
    root.delete_model_version("svc", v2.version, force=True)
    assert alice.model_version_at("svc", "production", 2**62) is None


def test_deleting_a_model_deletes_all_it_holds(alice, root, backend):
    v1, v2 = _versions(alice, "gone", 2)
    alice.set_alias("gone", "champion", v2.version)
    alice.request_transition("gone", v1.version, "staging")
    root.set_stage_policy("gone", "production", approvals=2)
    with pytest.raises(Conflict):
        root.delete_registered_model("gone")
    was = root.delete_registered_model("gone", force=True)
    assert (was.name, was.aliases) == ("gone", {"champion": v2.version})
    for call in (lambda: alice.get_registered_model("gone"),
                 lambda: alice.list_model_versions("gone"),
                 lambda: root.delete_registered_model("gone")):
        with pytest.raises(NotFound):
            call()
    assert "gone" not in [m.name for m in alice.list_registered_models()]
    # A new model of that name starts over: numbers, aliases, policies, history.
    fresh = alice.register_model("gone", {"weights": [1]}, flavor="pickle")
    assert fresh.version == "1.0.0" and fresh.aliases == ()
    assert alice.get_registered_model("gone").aliases == {}
    assert all(p.approvals == 0 for p in alice.get_stage_policies("gone"))
    assert [e.kind for e in alice.model_history("gone")] == ["create", "register"]
    backend.settle()
    model_event = root.audit_log(target="model:gone", action="model.delete")[0]
    assert model_event.before["versions"] == [v1.version, v2.version]
    assert model_event.after == {"forced": {v1.version: ["it is in Staging"],
                                            v2.version: ["alias 'champion' points at it"]}}
    assert len(root.audit_log(target="model:gone", action="model_version.delete")) == 2
    assert root.verify_audit_log().ok


def test_renaming_keeps_everything_under_the_new_name(alice, root, backend):
    v1, v2 = _versions(alice, "old", 2)
    alice.set_alias("old", "champion", v1.version)
    alice.transition_model_version_stage("old", v2.version, "production")
    root.set_stage_policy("old", "staging", approvals=1)
    renamed = root.rename_registered_model("old", "new")
    assert (renamed.name, renamed.aliases) == ("new", {"champion": v1.version})
    with pytest.raises(NotFound):
        alice.get_registered_model("old")
    got = alice.resolve_model("new@champion")
    assert (got.name, got.version, got.lineage["registered_as"]) == ("new", v1.version, "old")
    assert got.digest != v1.digest  # the digest covers the name: recomputed, audited
    assert alice.resolve_model("new@production").version == v2.version
    assert alice.load_model("new@champion") == {"weights": [0]}
    assert [r.problems for r in alice.verify_model("new")] == [(), ()]
    assert alice.get_stage_policies("new")[1].approvals == 1  # Staging's policy moved too
    assert [e.kind for e in alice.model_history("new")][-1] == "rename"
    assert alice.register_model("new", {"weights": [5]}, flavor="pickle").version == "1.0.2"
    assert root.rename_registered_model("new", "new").name == "new"  # to itself: nothing
    backend.settle()
    event = root.audit_log(target="model:old", action="model.rename")[0]
    assert event.before == {"name": "old"} and event.after["name"] == "new"
    assert event.after["digests"][v1.version] == [v1.digest, got.digest]
    assert root.verify_audit_log().ok


def test_renaming_is_refused_onto_a_taken_or_invalid_name(alice, root):
    _versions(alice, "a", 1)
    _versions(alice, "b", 1)
    with pytest.raises(AlreadyExists):
        root.rename_registered_model("a", "b")
    for bad in ("a/b", "", "x" * 300, "bad\ud800name", " a"):
        with pytest.raises(InvalidArgument):  # model "a" exists: only the name is wrong
            root.rename_registered_model("a", bad)
    with pytest.raises(InvalidArgument):
        root.delete_model_version("a", "1.0")  # not a semantic version
    with pytest.raises(NotFound):
        root.rename_registered_model("missing", "c")
    for call in (lambda: root.delete_model_version("a\ud800", "1.0.0"),
                 lambda: root.delete_registered_model("a\ud800"),
                 lambda: root.rename_registered_model("a\ud800", "c")):
        with pytest.raises((InvalidArgument, NotFound)):
            call()
    assert {m.name for m in alice.list_registered_models()} == {"a", "b"}


def test_a_registration_reads_the_deleted_versions_and_the_latest_once(backend, root):
    from cairn.registry import repo

    _versions(root, "clf", 2)
    root.delete_model_version("clf", "1.0.1")
    with sql_statements(backend.auth_db().engine) as seen:
        assert root.register_model("clf", {"w": [7]}, flavor="pickle",
                                   version="2.0.0").version == "2.0.0"
    assert reads(seen, "registry_settings", repo.DELETED_PREFIX + repo.model_key("clf")) == 1
    assert sum(1 for s in seen if "FROM model_versions" in s and "LIMIT" in s) == 1
    with pytest.raises(AlreadyExists, match="was deleted"):  # the one read still decides
        root.register_model("clf", {"w": [8]}, flavor="pickle", version="1.0.1")


def _roles(db, name: str) -> set[tuple[str, str]]:
    return {(b.user, b.role) for b in db.bindings(resource_type="model", resource_id=name)}


def test_a_models_roles_follow_its_rename_and_go_with_its_delete(backend, root):
    db = backend.auth_db()
    for user in ("u1", "u2"):
        db.create_user(user, created_by="test")
    _versions(root, "old", 1)
    db.grant("u1", "model", "old", "admin")
    db.grant("u2", "model", "old", "viewer")
    db.grant("u2", "model", "new", "editor")  # given ahead on the new name: the moved one wins
    root.rename_registered_model("old", "new")
    assert (_roles(db, "old"), _roles(db, "new")) == (set(), {("u1", "admin"), ("u2", "viewer")})
    _versions(root, "old", 1)  # a new model under the old name: none of the old one's grants
    assert _roles(db, "old") == set()
    root.delete_registered_model("new")
    assert _roles(db, "new") == set()
    _versions(root, "new", 1)
    assert _roles(db, "new") == set()
    backend.settle()
    grants = {e.target: (e.before, e.after) for e in root.audit_log(action="role.grant")}
    assert grants["roles/model/new/u1"] == (None, {"user": "u1", "resource_type": "model",
                                                    "resource_id": "new", "role": "admin"})
    assert grants["roles/model/new/u2"][0]["role"] == "editor"
    assert sorted(e.target for e in root.audit_log(action="role.revoke")) == [
        "roles/model/new/u1", "roles/model/new/u2", "roles/model/old/u1", "roles/model/old/u2"]
    assert root.verify_audit_log().ok


def test_a_failure_moving_the_roles_leaves_the_model_and_its_roles_as_they_were(backend, root):
    db = backend.auth_db()
    for user in ("u1", "u2"):
        db.create_user(user, created_by="test")
    _versions(root, "old", 1)
    db.grant("u1", "model", "old", "admin")
    db.grant("u2", "model", "old", "viewer")
    refuse_role_writes(db.engine, "u2")  # the database fails the second binding's move
    held = {("u1", "admin"), ("u2", "viewer")}
    with pytest.raises(CairnError):
        root.rename_registered_model("old", "new")
    assert root.get_registered_model("old").name == "old"  # the rename is undone with the roles
    with pytest.raises(NotFound):
        root.get_registered_model("new")
    assert (_roles(db, "old"), _roles(db, "new")) == (held, set())
    with pytest.raises(CairnError):
        root.delete_registered_model("old")
    assert [v.version for v in root.list_model_versions("old")] == ["1.0.0"]
    assert _roles(db, "old") == held


@pytest.mark.parametrize("backend", ["remote"], indirect=True)  # a store used directly has no roles
def test_a_server_lets_only_model_admins_delete_and_rename(backend, alice, root):
    assert backend.remote
    _versions(root, "guarded", 1)  # not alice's: its creator would administer it
    for call in (lambda: alice.delete_model_version("guarded", "1.0.0"),
                 lambda: alice.delete_registered_model("guarded"),
                 lambda: alice.rename_registered_model("guarded", "mine")):
        with pytest.raises(PermissionDenied):
            call()
    assert alice.get_model_version("guarded", "1.0.0").version == "1.0.0"
    root.rename_registered_model("guarded", "kept")
    root.delete_model_version("kept", "1.0.0")
    root.delete_registered_model("kept")


def test_naming_policy_applies_to_a_new_name(alice, root):
    _versions(alice, "fraud_v1", 1)
    root.set_naming_policy(regex=r"fraud_.*")
    with pytest.raises(InvalidArgument):
        root.rename_registered_model("fraud_v1", "other")
    assert root.rename_registered_model("fraud_v1", "fraud_v2").name == "fraud_v2"


# -- a local store: what an attacker with the database file, or a signer, would meet ------
def test_a_tampered_record_is_not_resealed_by_a_rename(tracking, db):
    import cairn
    from cairn.errors import CorruptObject

    c = cairn.Client(str(tracking))
    _versions(c, "m", 2)
    db().execute("UPDATE model_versions SET description = 'forged' WHERE version = '1.0.1'")
    with pytest.raises(CorruptObject, match="m/1.0.1 was changed"):
        c.rename_registered_model("m", "m2")
    assert c.get_registered_model("m").name == "m"  # nothing renamed
    assert "digest mismatch" in c.verify_model("m", "1.0.1")[0].problems[0]


def test_a_model_with_signed_versions_keeps_its_name(tracking):
    import cairn

    c = cairn.Client(str(tracking))
    c.create_signing_key()
    signed = _versions(c, "m", 1)[0]
    assert signed.signed
    with pytest.raises(Conflict, match="signed versions"):
        c.rename_registered_model("m", "m2")
    assert c.verify_model("m")[0].signature == "verified"
    c.delete_model_version("m", "1.0.0")  # deleting one is fine: nothing is re-signed
