"""Review of retention policies (issue #21): cases the first tests did not cover."""

from __future__ import annotations

import pytest

import cairn
from cairn.errors import Conflict
from cairn.lifecycle import retention


def _add(client, tmp_path, name: str, text: str):
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "rows.csv").write_text(text)
    return client.data.add(src, name)


def test_a_version_read_by_a_production_models_source_run_is_never_trashed(tmp_path):
    """A data set version that the source run of a Production model version read (logged
    after the registration, so not among the version's named data sets) feeds that model:
    a policy that would trash it is refused, when set and when applied, even with
    keep_registered off, instead of forcing the delete."""
    client = cairn.Client(str(tmp_path / "store"), user="alice")
    for i in range(3):
        _add(client, tmp_path, "tx", "a\n" + "1\n" * (i + 1))
    run = client.create_run(client.create_experiment("e").id, name="train")
    mv = client.register_model("fraud", {"w": 1}, flavor="pickle", run_id=run.id)
    client.log_input(run.id, "tx@1")
    client.set_terminated(run.id)
    client.transition_model_version_stage("fraud", mv.version, "Production")

    with pytest.raises(Conflict, match=f"fraud/{mv.version}"):
        retention.set_policy(client.store, "dataset", "tx",
                             {"keep_last": 1, "keep_registered": False}, actor="alice")
    # Set while the model was not in Production: applying it is refused, nothing trashed.
    client.transition_model_version_stage("fraud", mv.version, "Archived")
    retention.set_policy(client.store, "dataset", "tx",
                         {"keep_last": 1, "keep_registered": False}, actor="alice")
    client.transition_model_version_stage("fraud", mv.version, "Production")
    refused = [a for a in retention.plan(client.store) if a.kind == "refused"]
    assert [a.target for a in refused] == ["dataset:tx@1"]
    with pytest.raises(Conflict, match=f"fraud/{mv.version}"):
        retention.apply(client.store, actor="alice")
    assert client.list_trash() == []


def test_keep_registered_keeps_a_version_read_by_a_models_source_run(tmp_path):
    """With keep_registered (the default) such a version is not even planned: a plan that
    lists it as going to the trash, then an apply that skips it, says what will not happen."""
    client = cairn.Client(str(tmp_path / "store"), user="alice")
    for i in range(3):
        _add(client, tmp_path, "tx", "a\n" + "1\n" * (i + 1))
    run = client.create_run(client.create_experiment("e").id, name="train")
    client.register_model("fraud", {"w": 1}, flavor="pickle", run_id=run.id)
    client.log_input(run.id, "tx@1")
    retention.set_policy(client.store, "dataset", "tx", {"keep_last": 1}, actor="alice")
    assert [a.target for a in retention.plan(client.store)] == ["dataset:tx@2"]
    report = retention.apply(client.store, actor="alice")
    assert report.trashed_versions == 1 and report.skipped == ()
    assert [i.identifier for i in client.list_trash()] == ["tx@2"]


def test_no_keep_registered_trashes_the_source_run_of_a_model_not_in_service(tmp_path):
    """`--no-keep-registered` lets a policy trash the source runs of registered model
    versions (the guide): the plan lists such a run, so applying it trashes it (the model
    version stays, and the purge keeps its source run), instead of skipping it every time."""
    client = cairn.Client(str(tmp_path / "store"), user="alice")
    exp = client.create_experiment("e")
    runs = []
    for i in range(3):
        run = client.create_run(exp.id, name=f"r{i}", start_time=1_000 + i)
        client.set_terminated(run.id)
        runs.append(run.id)
    mv = client.register_model("m", {"w": 1}, flavor="pickle", run_id=runs[0])
    retention.set_policy(client.store, "experiment", "e",
                         {"keep_last": 1, "keep_registered": False}, actor="alice")
    planned = [a.target for a in retention.plan(client.store)]
    assert sorted(planned) == sorted(f"run:{r}" for r in runs[:2])
    report = retention.apply(client.store, actor="alice")
    assert report.skipped == () and report.trashed_runs == 2
    assert client.get_run(runs[0]).lifecycle == "deleted"
    assert client.get_model_version("m", mv.version).version == mv.version
    assert retention.apply(client.store, actor="alice").actions == ()  # nothing left to do
    kept = client.empty_trash().kept
    assert [i.identifier for i, _ in kept] == [runs[0]]


@pytest.fixture
def team(tmp_path, monkeypatch, request):
    """A server with auth on, on a store directory: alice edits every experiment, root is
    the server admin."""
    from conformance_backends import open_backend

    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    b = open_backend("remote", tmp_path, request)
    yield b
    b.close()


def test_an_editor_cannot_expire_a_runs_artifacts_by_writing_the_tag(team, tmp_path):
    """Making a run's artifacts expire is for the admins of its experiment (the TTL route
    says so, and the next `cairn gc` collects them): an editor who writes the expiry tag
    itself, through Cairn's API or the MLflow routes, is refused (403) and nothing changes."""
    import httpx

    from cairn.errors import PermissionDenied

    alice, root = team.client("alice"), team.admin
    run = alice.create_run(root.create_experiment("e").id)  # alice edits it, root owns it
    (tmp_path / "w.bin").write_bytes(b"weights")
    alice.log_artifact(run.id, tmp_path / "w.bin")
    alice.set_terminated(run.id)
    with pytest.raises(PermissionDenied):
        retention.set_artifacts_ttl(alice.store, run.id, 0, actor="alice")
    for key in (retention.EXPIRES_TAG, retention.TTL_TAG):
        with pytest.raises(PermissionDenied):
            alice.set_tag(run.id, key, "0")
        with pytest.raises(PermissionDenied):
            alice.log_batch(run.id, tags={key: "0"})
        r = httpx.post(f"{team.url}/api/2.0/mlflow/runs/set-tag",
                       json={"run_id": run.id, "key": key, "value": "0"},
                       headers={"authorization": f"Bearer {team.tokens['alice']}"})
        assert r.status_code == 403, r.text
    tags = root.get_run(run.id).tags
    assert retention.EXPIRES_TAG not in tags and retention.TTL_TAG not in tags
    # The experiment's admin (here the server admin) sets it through the TTL route.
    when = retention.set_artifacts_ttl(root.store, run.id, 0, actor="root")
    assert root.get_run(run.id).tags[retention.EXPIRES_TAG] == str(when)
    # ... and an editor cannot take it away either (an expiry that passed is final).
    with pytest.raises(PermissionDenied):
        alice.delete_tag(run.id, retention.EXPIRES_TAG)


@pytest.mark.parametrize("tag", ["a\x00b", " keep", "a/../b", "x" * 251])
def test_keep_tagged_must_be_a_tag_a_run_can_carry(tmp_path, tag):
    """A keep tag that no run can carry (a NUL, surrounding blanks, a path escape, too long)
    would silently keep nothing: refused where the policy enters, naming the field, and no
    policy is stored."""
    from cairn.errors import InvalidArgument

    with pytest.raises(InvalidArgument) as e:
        retention.Policy(keep_last=1, keep_tagged=tag)
    assert e.value.details.get("field") == "keep_tagged"
    client = cairn.Client(str(tmp_path / "store"), user="alice")
    client.create_experiment("e")
    with pytest.raises(InvalidArgument):
        retention.set_policy(client.store, "experiment", "e",
                             {"keep_last": 1, "keep_tagged": tag}, actor="alice")
    assert retention.list_policies(client.store) == []


def test_a_version_whose_model_went_to_production_since_the_plan_is_not_forced(tmp_path):
    """apply acts on a plan made a moment before (minutes, on a large store): a data set
    version whose model version was promoted to Production meanwhile is skipped, as a run
    is, and not trashed by force because the policy does not keep registered inputs."""
    client = cairn.Client(str(tmp_path / "store"), user="alice")
    for i in range(3):
        _add(client, tmp_path, "tx", "a\n" + "1\n" * (i + 1))
    mv = client.register_model("fraud", {"w": 1}, flavor="pickle", datasets=["tx@1"])
    retention.set_policy(client.store, "dataset", "tx",
                         {"keep_last": 1, "keep_registered": False}, actor="alice")
    actions = retention.plan(client.store)
    assert sorted(a.target for a in actions) == ["dataset:tx@1", "dataset:tx@2"]
    client.transition_model_version_stage("fraud", mv.version, "Production")  # meanwhile
    done, skipped = retention._apply_actions(client.store, actions, "alice", 0)
    assert [a.target for a in done] == ["dataset:tx@2"]
    assert len(skipped) == 1 and skipped[0].startswith("dataset:tx@1")
    assert [i.identifier for i in client.list_trash()] == ["tx@2"]
