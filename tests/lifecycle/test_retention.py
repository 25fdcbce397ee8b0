"""Retention policies and artifact TTL (cairn.lifecycle.retention), on a local store and on
PostgreSQL: what each rule keeps, dry runs, the audit trail, the refusal to trash what a
production model needs, and bad input."""

from __future__ import annotations

import time

import pytest
from pg_fixtures import pg_database, pg_url  # noqa: F401  (fixtures)
from s3_fixtures import s3_bucket, s3_client, s3_endpoint, s3_env  # noqa: F401  (fixtures)

from cairn import Client
from cairn.cas import ObjectStore
from cairn.errors import CairnError, Conflict, InvalidArgument, NotFound
from cairn.lifecycle import retention as R

DAY = R.DAY_MS


@pytest.fixture(params=["local", pytest.param("postgres", marks=pytest.mark.postgres)])
def client(request, tmp_path, cairn_clock, cairn_state):
    if request.param == "local":
        c = Client(str(tmp_path / "store"), user="alice")
    else:
        from cairn.store.sql.store import SqlStore

        store = SqlStore(request.getfixturevalue("pg_url"), ObjectStore.local(tmp_path / "objects"))
        c = Client(store=store, user="alice")
    yield c
    c.store.close()


def _runs(c, exp_id, n, clock, *, days_apart=1, artifact=None):
    """``n`` finished runs, one every ``days_apart`` days (oldest first)."""
    ids = []
    for i in range(n):
        run = c.create_run(exp_id, name=f"r{i}")
        if artifact is not None:
            c.log_artifact(run.id, artifact)
        c.set_terminated(run.id)
        ids.append(run.id)
        clock.advance(days_apart * 86_400)
    return ids


def _live(c, ids):
    return [c.get_run(i).lifecycle == "active" for i in ids]


def _register(c, name, run_id, tmp_path, **kw):
    d = tmp_path / f"model-{name}-{run_id[:6]}"
    d.mkdir(exist_ok=True)
    (d / "weights.txt").write_text(f"{name} {run_id}")
    return c.register_model(name, str(d), flavor="directory", run_id=run_id, **kw)


def test_keep_days_trashes_runs_older_than_the_policy_by_the_clock(client, cairn_clock):
    exp = client.create_experiment("e")
    ids = _runs(client, exp.id, 5, cairn_clock)  # ended 5, 4, 3, 2, 1 days ago
    R.set_policy(client.store, "experiment", "e", {"keep_days": 3}, actor="alice")
    report = R.apply(client.store, actor="alice")
    assert report.trashed_runs == 2
    assert _live(client, ids) == [False, False, True, True, True]
    cairn_clock.advance(86_400)  # a day later one more is over three days old
    assert [a.target for a in R.plan(client.store)] == [f"run:{ids[2]}"]
    # trashed, not removed: the run is in the trash and comes back
    assert {r.id for r in client.search_runs(exp.id, lifecycle="deleted")} == set(ids[:2])
    client.restore_run(ids[0])
    assert client.get_run(ids[0]).lifecycle == "active"


def test_keep_last_keeps_the_newest_runs_whatever_their_age(client, cairn_clock):
    exp = client.create_experiment("e")
    ids = _runs(client, exp.id, 6, cairn_clock, days_apart=30)
    R.set_policy(client.store, "experiment", exp.id, {"keep_last": 2}, actor="alice")
    R.apply(client.store, actor="alice")
    assert _live(client, ids) == [False] * 4 + [True] * 2
    # with keep_days too, a run goes only when it is both outside the last N and old
    exp2 = client.create_experiment("f")
    ids2 = _runs(client, exp2.id, 4, cairn_clock)  # ended 4, 3, 2, 1 days ago
    R.set_policy(client.store, "experiment", "f", {"keep_last": 1, "keep_days": 2}, actor="alice")
    R.apply(client.store, actor="alice")
    assert _live(client, ids2) == [False, False, True, True]


def test_a_run_still_being_written_is_never_trashed(client, cairn_clock):
    exp = client.create_experiment("e")
    running = client.create_run(exp.id).id
    cairn_clock.advance(86_400)
    _runs(client, exp.id, 2, cairn_clock)
    cairn_clock.advance(10 * 86_400)
    R.set_policy(client.store, "experiment", "e", {"keep_last": 1, "keep_days": 5}, actor="alice")
    client.store.heartbeat([running], cairn_clock.now_ms())  # its writer is alive
    assert client.get_run(running).status.value == "RUNNING"
    assert f"run:{running}" not in {a.target for a in R.plan(client.store)}
    cairn_clock.advance(86_400)  # no heartbeat for a day: the run is dead (KILLED) ...
    assert f"run:{running}" not in {a.target for a in R.plan(client.store)}
    cairn_clock.advance(5 * 86_400)  # ... and over keep_days after its last heartbeat
    assert f"run:{running}" in {a.target for a in R.plan(client.store)}


def test_registered_sources_and_tagged_runs_are_kept(client, cairn_clock, tmp_path):
    exp = client.create_experiment("e")
    ids = _runs(client, exp.id, 5, cairn_clock)
    _register(client, "m", ids[0], tmp_path)
    client.set_tag(ids[1], "keep", "yes")
    client.set_tag(ids[2], "keep", "false")  # "false" keeps nothing
    client.set_tag(ids[3], "pinned", "1")
    R.set_policy(client.store, "experiment", "e", {"keep_last": 1}, actor="alice")
    R.apply(client.store, actor="alice")
    assert _live(client, ids) == [True, True, False, False, True]
    # another tag name can be the keeper; a deleted model version no longer keeps its run
    client.restore_run(ids[3])
    R.set_policy(client.store, "experiment", "e", {"keep_last": 1, "keep_tagged": "pinned"},
                 actor="alice")
    client.delete_model_version("m", "1.0.0")
    assert {a.target for a in R.plan(client.store) if a.kind == "trash_run"} == \
        {f"run:{ids[0]}", f"run:{ids[1]}"}
    # keep_registered off: a Development version's source run goes (its files stay in the model)
    mv = _register(client, "m2", ids[0], tmp_path)
    assert mv.stage == "Development"
    R.set_policy(client.store, "experiment", "e", {"keep_last": 1, "keep_registered": False},
                 actor="alice")
    plan = {a.target: a for a in R.plan(client.store)}
    assert "keep_registered is off" in plan[f"run:{ids[0]}"].reason


def test_a_dry_run_changes_nothing_and_is_what_apply_then_does(client, cairn_clock):
    exp = client.create_experiment("e")
    ids = _runs(client, exp.id, 6, cairn_clock)
    R.set_policy(client.store, "experiment", "e",
                 {"keep_last": 2, "keep_days": 3, "artifacts_ttl_days": 7}, actor="alice")
    events = len(client.audit_log(limit=1000))
    tags = {i: dict(client.get_run(i).tags) for i in ids}
    dry = R.apply(client.store, dry_run=True, actor="alice")
    assert dry.dry_run and dry.actions
    assert [client.get_run(i).lifecycle for i in ids] == ["active"] * 6
    assert {i: dict(client.get_run(i).tags) for i in ids} == tags
    assert len(client.audit_log(limit=1000)) == events
    assert list(dry.actions) == R.plan(client.store)
    done = R.apply(client.store, actor="alice")
    assert done.actions == dry.actions
    assert (done.trashed_runs, done.expiries_set) == (3, 3)
    assert R.plan(client.store) == []  # applied: nothing left to do
    audited = client.audit_log(action="retention.trash", limit=100)
    assert {e.target for e in audited} == {f"run:{i}" for i in ids[:3]}
    assert all(e.after["policy"] == f"experiment:{exp.id}" for e in audited)
    assert client.verify_audit_log().ok


def test_a_policy_that_would_trash_a_production_models_run_is_refused(client, cairn_clock,
                                                                       tmp_path):
    exp = client.create_experiment("e")
    ids = _runs(client, exp.id, 4, cairn_clock)
    _register(client, "fraud", ids[0], tmp_path)
    client.transition_model_version_stage("fraud", "1.0.0", "Production")
    with pytest.raises(Conflict) as err:
        R.set_policy(client.store, "experiment", "e", {"keep_last": 1, "keep_registered": False},
                     actor="alice")
    assert "fraud/1.0.0" in err.value.message and ids[0] in err.value.message
    assert "Production" in err.value.message
    assert R.get_policy(client.store, "experiment", "e") is None  # nothing stored
    # an alias (champion) protects as Production does
    _register(client, "churn", ids[1], tmp_path)
    client.set_alias("churn", "champion", "1.0.0")
    client.transition_model_version_stage("fraud", "1.0.0", "Archived")
    with pytest.raises(Conflict, match="churn/1.0.0 \\(aliased champion\\)"):
        R.set_policy(client.store, "experiment", "e", {"keep_last": 1, "keep_registered": False},
                     actor="alice")
    # set while safe, then the model is promoted: apply refuses and changes nothing
    client.delete_alias("churn", "champion")
    R.set_policy(client.store, "experiment", "e", {"keep_last": 1, "keep_registered": False},
                 actor="alice")
    client.transition_model_version_stage("churn", "1.0.0", "Production")
    with pytest.raises(Conflict, match="nothing was changed") as err:
        R.apply(client.store, actor="alice")
    assert ids[1] in err.value.message
    assert _live(client, ids) == [True] * 4
    assert [a.kind for a in R.plan(client.store)].count("refused") == 1
    # keep_registered (the default) keeps it: no refusal
    R.set_policy(client.store, "experiment", "e", {"keep_last": 1}, actor="alice")
    R.apply(client.store, actor="alice")
    assert _live(client, ids) == [True, True, False, True]


def test_data_set_versions(client, cairn_clock, tmp_path):
    import hashlib

    for i in range(6):  # the catalog's own record of a version (a server's add does the same)
        client.data.catalog.create_version(
            "tx", tree=hashlib.sha256(b"%d" % i).hexdigest(), packs=(), files=1, size=4,
            user="alice", aliases=("gold",) if i == 1 else ())
        cairn_clock.advance(86_400)
    exp = client.create_experiment("e")
    run = client.create_run(exp.id)
    client.log_input(run.id, "tx@2")
    client.set_terminated(run.id)
    _register(client, "m", run.id, tmp_path)
    client.set_alias("m", "champion", "1.0.0")
    R.set_policy(client.store, "dataset", "tx", {"keep_last": 1}, actor="alice")
    # keep_last 1 keeps v6 (the latest, kept anyway); v2 is aliased gold and a model's input
    assert [a.target for a in R.plan(client.store)] == ["dataset:tx@5", "dataset:tx@4",
                                                       "dataset:tx@3", "dataset:tx@1"]
    report = R.apply(client.store, actor="alice")
    assert sorted(a.target for a in report.actions) == ["dataset:tx@1", "dataset:tx@3",
                                                         "dataset:tx@4", "dataset:tx@5"]
    assert [v.version for v in client.data.versions("tx")] == [2, 6]
    with pytest.raises(NotFound):
        client.data.version("tx@3")
    client.data.restore_version("tx@3")
    assert client.data.version("tx@3").version == 3
    # the input of a champion model version is refused when registered versions are not kept
    client.data.remove_alias("tx", "gold")
    with pytest.raises(Conflict, match="m/1.0.0.*tx@2|tx@2.*m/1.0.0"):
        R.set_policy(client.store, "dataset", "tx", {"keep_last": 1, "keep_registered": False},
                     actor="alice")
    with pytest.raises(InvalidArgument, match="artifacts_ttl_days is for experiments"):
        R.set_policy(client.store, "dataset", "tx", {"artifacts_ttl_days": 3}, actor="alice")


def test_artifact_ttl_is_a_tag_set_ahead_and_a_runs_own_ttl_wins(client, cairn_clock, tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("artifact")
    exp = client.create_experiment("e")
    ids = _runs(client, exp.id, 3, cairn_clock, artifact=f)
    client.set_tag(ids[2], "keep", "1")
    R.set_policy(client.store, "experiment", "e", {"artifacts_ttl_days": 10}, actor="alice")
    own = client.set_artifacts_ttl(ids[1], 2)  # the Client's spelling, as alice
    run1 = client.get_run(ids[1])
    assert own == run1.end_time + 2 * DAY
    R.apply(client.store, actor="alice")
    r0, r1, r2 = (client.get_run(i) for i in ids)
    assert r0.tags[R.EXPIRES_TAG] == str(r0.end_time + 10 * DAY)  # visible ahead
    assert r1.tags[R.EXPIRES_TAG] == str(own) and r1.tags[R.TTL_TAG] == "2"
    assert R.EXPIRES_TAG not in r2.tags  # kept runs' artifacts do not expire
    assert r0.lifecycle == "active"  # the run itself stays
    assert [(e.action, e.actor) for e in client.audit_log(target=f"run:{ids[1]}")] == [
        ("retention.ttl", "alice")]
    # a run's TTL removed: the policy's applies again; unsetting the policy clears its expiry
    assert R.set_artifacts_ttl(client.store, ids[1], None, actor="bob") is None
    assert R.TTL_TAG not in client.get_run(ids[1]).tags
    R.apply(client.store, actor="alice")
    assert client.get_run(ids[1]).tags[R.EXPIRES_TAG] == str(r1.end_time + 10 * DAY)
    R.unset_policy(client.store, "experiment", "e", actor="alice")
    assert R.EXPIRES_TAG not in client.get_run(ids[0]).tags


def test_expired_artifacts_are_collected_while_identical_objects_of_other_runs_stay(
        client, cairn_clock, tmp_path, monkeypatch):
    _expire_and_collect(client, cairn_clock, tmp_path, monkeypatch)


@pytest.mark.postgres
@pytest.mark.slow  # the moto S3 server
def test_expired_artifacts_on_postgres_and_s3(pg_url, s3_endpoint, s3_bucket, cairn_clock,  # noqa: F811
                                              cairn_state, tmp_path, monkeypatch):
    from cairn.server.serve import open_objects
    from cairn.store.sql.store import SqlStore

    store = SqlStore(pg_url, open_objects(f"s3://{s3_bucket}/cairn", s3_endpoint))
    try:
        _expire_and_collect(Client(store=store, user="alice"), cairn_clock, tmp_path, monkeypatch)
    finally:
        store.close()


def _expire_and_collect(client, cairn_clock, tmp_path, monkeypatch):
    from cairn.lifecycle import gc

    # The expiry follows Cairn's clock (moved two days on below), but gc judges an object's
    # age by the storage's own clock: these objects are seconds old, which only counts as
    # old once gc's floor for records still in a writer's buffer is lowered too.
    monkeypatch.setattr(gc, "WRITE_WINDOW_S", 0.0)
    shared, own = tmp_path / "shared.txt", tmp_path / "own.txt"
    shared.write_text("the same bytes in both runs")
    own.write_text("only the expiring run has these")
    exp = client.create_experiment("e")
    old, other = client.create_run(exp.id).id, client.create_run(exp.id).id
    for rid in (old, other):
        client.log_artifact(rid, shared)
    client.log_artifact(old, own)
    client.set_terminated(old)
    client.set_terminated(other)
    R.set_artifacts_ttl(client.store, old, 1, actor="alice")
    oid = {e.path: e.digest for e in client.list_artifacts(old)}
    objects = client.store.objects
    assert objects.has(oid["own.txt"]) and objects.has(oid["shared.txt"])
    assert gc.collect(client.store, grace_s=0).to_dict()  # not yet expired: nothing of it goes
    assert objects.has(oid["own.txt"])
    cairn_clock.advance(2 * 86_400)
    time.sleep(1.1)  # S3 stamps objects to the second: let the storage's clock pass them
    gc.collect(client.store, grace_s=0)
    assert not objects.has(oid["own.txt"])
    assert objects.has(oid["shared.txt"])  # deduplicated: the other run still refers to it
    with pytest.raises(NotFound, match=r"expired on \d{4}-\d\d-\d\d.*\(artifact TTL\)"):
        client.download_artifacts(old, "own.txt", tmp_path / "out")
    # the deduplicated object the other run refers to is still there
    got = client.download_artifacts(other, "shared.txt", tmp_path / "out2")
    assert got.read_text() == "the same bytes in both runs"
    assert client.get_run(old).lifecycle == "active"


@pytest.mark.parametrize("policy, words", [
    ({"keep_days": -1}, "keep_days must be between 1"),
    ({"keep_days": 0}, "keep_days must be between 1"),
    ({"keep_last": 0}, "keep_last must be between 1"),
    ({"keep_last": 2.5}, "keep_last must be a whole number"),
    ({"keep_days": True}, "keep_days must be a whole number"),
    ({"keep_days": "30"}, "keep_days must be a whole number"),
    ({"artifacts_ttl_days": -3}, "artifacts_ttl_days must be between 0"),
    ({"keep_days": 10**9}, "between 1 and 36500"),
    ({"keep_registered": "no"}, "keep_registered must be true or false"),
    ({"keep_tagged": ""}, "keep_tagged must be a tag name"),
    ({"keep_tagged": "k\ud800"}, "lone surrogate"),
    ({"keep_forever": 1}, "unknown retention policy field(s) keep_forever"),
])
def test_bad_policies_are_refused_clearly(policy, words):
    with pytest.raises(InvalidArgument) as err:
        R.Policy.from_dict(policy)
    assert words in err.value.message


def test_bad_targets_and_actors_are_refused_and_store_nothing(client, cairn_clock):
    client.create_experiment("e")
    with pytest.raises(NotFound, match="no experiment named or numbered 'nope'"):
        R.set_policy(client.store, "experiment", "nope", {"keep_days": 3}, actor="alice")
    with pytest.raises(InvalidArgument, match="lone surrogate"):
        R.set_policy(client.store, "experiment", "e\udc80", {"keep_days": 3}, actor="alice")
    with pytest.raises(InvalidArgument, match="lone surrogate"):
        R.set_policy(client.store, "dataset", "d\ud800", {"keep_days": 3}, actor="alice")
    with pytest.raises(InvalidArgument, match="lone surrogate"):
        R.set_policy(client.store, "experiment", "e", {"keep_days": 3}, actor="\ud800")
    with pytest.raises(NotFound, match="no data set named 'ghost'"):
        R.set_policy(client.store, "dataset", "ghost", {"keep_days": 3}, actor="alice")
    with pytest.raises(InvalidArgument, match="kind 'run'"):
        R.set_policy(client.store, "run", "e", {"keep_days": 3}, actor="alice")
    with pytest.raises(NotFound, match="has no retention policy"):
        R.unset_policy(client.store, "experiment", "e", actor="alice")
    run = client.create_run(client.get_experiment_by_name("e").id)
    for bad in (-1, 2.0, "3"):
        with pytest.raises(InvalidArgument):
            R.set_artifacts_ttl(client.store, run.id, bad, actor="alice")
    with pytest.raises(CairnError):
        R.set_artifacts_ttl(client.store, "0" * 32, 1, actor="alice")
    assert R.list_policies(client.store) == []
    assert R.TTL_TAG not in client.get_run(run.id).tags


def test_policies_are_listed_shown_replaced_and_unset_with_audit(client, cairn_clock):
    exp = client.create_experiment("e")
    a = R.set_policy(client.store, "experiment", "e", {"keep_days": 30}, actor="alice")
    assert (a.target, a.label) == (exp.id, "e")
    R.set_policy(client.store, "experiment", exp.id, R.Policy(keep_last=3), actor="bob")
    got = R.get_policy(client.store, "experiment", "e")
    assert got is not None and got.policy == R.Policy(keep_last=3) and got.updated_by == "bob"
    assert [r.ref for r in R.list_policies(client.store)] == [f"experiment:{exp.id}"]
    R.unset_policy(client.store, "experiment", "e", actor="carol")
    assert R.get_policy(client.store, "experiment", "e") is None
    events = client.audit_log(target=f"experiment:{exp.id}", limit=10)
    assert [(e.action, e.actor) for e in reversed(events)] == [
        ("retention.set", "alice"), ("retention.set", "bob"), ("retention.unset", "carol")]
    assert events[1].before["keep_days"] == 30 and events[1].after["keep_last"] == 3
    assert client.verify_audit_log().ok


def test_a_deleted_experiments_policy_plans_nothing(client, cairn_clock):
    exp = client.create_experiment("e")
    _runs(client, exp.id, 3, cairn_clock)
    R.set_policy(client.store, "experiment", "e", {"keep_last": 1}, actor="alice")
    client.delete_experiment(exp.id)
    assert R.plan(client.store) == []


def test_stores_without_a_database_are_told_where_policies_live(tmp_path):
    from cairn.store.http import HttpStore
    from cairn.store.memory import MemoryStore

    with pytest.raises(InvalidArgument, match="server's PostgreSQL"):
        R.list_policies(MemoryStore("retention-test"))
    with pytest.raises(InvalidArgument, match="run `cairn gc` on the server's store"):
        R.apply(HttpStore("http://127.0.0.1:9", spool_dir=str(tmp_path / "sp")))


def test_what_became_kept_between_the_plan_and_the_trashing_stays(client, cairn_clock, tmp_path):
    exp = client.create_experiment("e")
    ids = _runs(client, exp.id, 4, cairn_clock)
    R.set_policy(client.store, "experiment", "e", {"keep_last": 1}, actor="alice")
    stale = R.plan(client.store)
    assert {a.target for a in stale} == {f"run:{i}" for i in ids[:3]}
    client.set_tag(ids[0], "keep", "1")  # meanwhile, someone keeps one and registers another
    _register(client, "m", ids[1], tmp_path)
    done, skipped = R._apply_actions(client.store, stale, "alice", cairn_clock.now_ms())
    assert [a.target for a in done] == [f"run:{ids[2]}"]
    assert any("tagged keep since the plan" in s for s in skipped)
    assert any("model version m/1.0.0 since the plan" in s for s in skipped)
    assert _live(client, ids) == [True, True, False, True]


def test_keep_days_on_data_set_versions_keeps_the_latest_whatever_its_age(client, cairn_clock):
    import hashlib

    for i in range(3):
        client.data.catalog.create_version("logs", tree=hashlib.sha256(b"L%d" % i).hexdigest(),
                                           packs=(), files=1, size=1, user="alice")
        cairn_clock.advance(10 * 86_400)  # made 30, 20 and 10 days ago
    R.set_policy(client.store, "dataset", "logs", {"keep_days": 15}, actor="alice")
    assert [a.target for a in R.plan(client.store)] == ["dataset:logs@2", "dataset:logs@1"]
    R.set_policy(client.store, "dataset", "logs", {"keep_days": 25}, actor="alice")
    assert [a.target for a in R.plan(client.store)] == ["dataset:logs@1"]
    R.set_policy(client.store, "dataset", "logs", {"keep_days": 1}, actor="alice")
    report = R.apply(client.store, actor="alice")
    assert report.trashed_versions == 2
    assert [v.version for v in client.data.versions("logs")] == [3]  # the latest stays


def test_an_expiry_that_has_passed_is_final(client, cairn_clock):
    exp = client.create_experiment("e")
    rid = _runs(client, exp.id, 1, cairn_clock, days_apart=0)[0]
    R.set_policy(client.store, "experiment", "e", {"artifacts_ttl_days": 1}, actor="alice")
    R.apply(client.store, actor="alice")
    first = client.get_run(rid).tags[R.EXPIRES_TAG]
    cairn_clock.advance(2 * 86_400)  # expired (gc may have taken the files)
    assert R.artifacts_expired(client.get_run(rid).tags, cairn_clock.now_ms())
    R.set_policy(client.store, "experiment", "e", {"artifacts_ttl_days": 30}, actor="alice")
    assert R.plan(client.store) == []  # a longer TTL does not bring back what may be gone
    R.unset_policy(client.store, "experiment", "e", actor="alice")
    assert client.get_run(rid).tags[R.EXPIRES_TAG] == first  # still says when it expired
    assert "expired on" in R.expiry_message(rid, client.get_run(rid).tags, cairn_clock.now_ms())
