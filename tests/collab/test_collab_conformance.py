"""One collaboration suite, every backend: comments and saved views behave the same on a
local store, on PostgreSQL used directly, and through a real server (auth on) over HTTP.

Users (tests/conformance_backends.py): alice edits, bob and vera view, root is an admin.
On a local store or PostgreSQL used directly there are no roles: a user is an admin by
saying so (``admin=True``), as on a server the server decides from the caller's roles.
"""

from __future__ import annotations

import pytest

from cairn.collab import collab_for
from cairn.errors import InvalidArgument, NotFound, PermissionDenied
from cairn.services import datasets_for
from conformance_backends import open_backend
from pg_fixtures import pg_database  # noqa: F401  (a fixture, used by name)

BACKENDS = ["local", pytest.param("postgres", marks=pytest.mark.postgres), "remote",
            pytest.param("remote-postgres", marks=[pytest.mark.postgres, pytest.mark.slow])]


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path, monkeypatch):
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    b = open_backend(request.param, tmp_path, request)
    yield b
    b.close()


@pytest.fixture
def world(backend):
    alice = backend.client("alice")
    exp = alice.create_experiment("talk").id
    run = alice.create_run(exp, name="r1")
    alice.log_metric(run.id, "loss", 0.5)
    alice.set_terminated(run.id)
    return {"alice": alice, "exp": exp, "run": run.id,
            "a": collab_for(alice), "b": collab_for(backend.client("bob")),
            "v": collab_for(backend.client("vera")),
            "root": collab_for(backend.client("root"), admin=True)}


def test_threads_keep_order_parents_and_mentions(world):
    a, b, run = world["a"], world["b"], world["run"]
    first = a.add_comment("run", run, "Loss plateaus after step 300, **@bob** can you look?")
    reply = b.add_comment("run", run, "Yes: the LR schedule. cc @alice and @vera.",
                          parent_id=first.id)
    other = a.add_comment("run", run, "Also `@nobody` is code, not a mention; a@b.com neither")
    assert (first.author, reply.author, reply.parent_id) == ("alice", "bob", first.id)
    assert first.mentions == ("bob",)
    assert reply.mentions == ("alice", "vera")
    assert other.mentions == ()
    listed = b.comments("run", run)
    assert [c.id for c in listed] == [first.id, reply.id, other.id]
    assert listed[0].body == first.body and listed[0].target == f"run:{run}"
    assert [c.id for c in b.mentions()] == [first.id]
    assert [c.id for c in world["v"].mentions()] == [reply.id]
    assert [c.id for c in a.mentions()] == [reply.id]


def test_a_reply_stays_on_its_parents_target(world):
    a, run, exp = world["a"], world["run"], world["exp"]
    first = a.add_comment("run", run, "on the run")
    with pytest.raises(InvalidArgument, match="reply stays on its thread"):
        a.add_comment("experiment", exp, "elsewhere", parent_id=first.id)
    with pytest.raises(NotFound):
        a.add_comment("run", run, "reply to nothing", parent_id="0" * 32)
    assert [c.id for c in a.comments("run", run)] == [first.id]
    assert a.comments("experiment", exp) == []


def test_edits_keep_history_and_only_the_author_or_an_admin_edits(world):
    a, v, root, run = world["a"], world["v"], world["root"], world["run"]
    c = a.add_comment("run", run, "first draft @bob")
    edited = a.edit_comment(c.id, "second draft @vera")
    assert (edited.edits, edited.edited_by, edited.mentions) == (1, "alice", ("vera",))
    assert edited.edited_at is not None and edited.edited_at >= c.created_at
    assert world["b"].mentions() == []
    with pytest.raises(PermissionDenied, match="alice"):
        v.edit_comment(c.id, "vandalised")
    with pytest.raises(PermissionDenied):
        v.delete_comment(c.id)
    by_admin = root.edit_comment(c.id, "moderated")
    assert (by_admin.body, by_admin.edits, by_admin.edited_by) == ("moderated", 2, "root")
    history = a.comment_history(c.id)
    assert [(h.seq, h.body, h.editor) for h in history] == [
        (1, "first draft @bob", "alice"), (2, "second draft @vera", "root")]
    assert a.get_comment(c.id).body == "moderated"


def test_delete_is_soft_keeps_the_thread_and_restores(world):
    a, b, run = world["a"], world["b"], world["run"]
    parent = a.add_comment("run", run, "parent @bob")
    child = b.add_comment("run", run, "child", parent_id=parent.id)
    gone = a.delete_comment(parent.id)
    assert gone.deleted and gone.body == "" and gone.mentions == () and gone.deleted_by == "alice"
    listed = b.comments("run", run)
    assert [(c.id, c.deleted) for c in listed] == [(parent.id, True), (child.id, False)]
    assert listed[1].parent_id == parent.id
    assert b.mentions() == []
    assert a.comment_history(parent.id) == []
    with pytest.raises(InvalidArgument, match="restore"):
        a.edit_comment(parent.id, "edit while deleted")
    back = a.restore_comment(parent.id)
    assert (back.deleted, back.body, back.mentions) == (False, "parent @bob", ("bob",))
    assert [c.id for c in b.mentions()] == [parent.id]


def test_comments_on_every_kind_of_target(world):
    a, exp, alice = world["a"], world["exp"], world["alice"]
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    X = np.arange(12, dtype=float).reshape(6, 2)
    mv = alice.register_model("clf", LogisticRegression().fit(X, [0, 1] * 3))
    dv = datasets_for(alice).add_array(X, "tiny")
    on_exp = a.add_comment("experiment", exp, "experiment note")
    on_mv = a.add_comment("model_version", f"clf@{mv.version}", "ship it?")
    on_dv = a.add_comment("dataset_version", dv.ref, "labels look off")
    assert (on_mv.target_id, on_dv.target_id) == (f"clf@{mv.version}", dv.ref)
    assert [c.id for c in world["b"].comments("experiment", exp)] == [on_exp.id]
    assert [c.id for c in world["v"].comments("model_version", f"clf@{mv.version}")] == [on_mv.id]
    assert [c.id for c in world["v"].comments("dataset_version", dv.ref)] == [on_dv.id]
    # an alias names the version it points to: its comments are that version's
    datasets_for(alice).alias(dv.ref, "gold")
    assert [c.id for c in a.comments("dataset_version", "tiny@gold")] == [on_dv.id]
    assert a.add_comment("dataset_version", "tiny@gold", "via alias").target_id == dv.ref


@pytest.mark.parametrize("target_type, target_id, error", [
    ("run", "no-such-run", NotFound),
    ("experiment", "999999", NotFound),
    ("model_version", "nomodel@1.0.0", NotFound),
    ("dataset_version", "nodata@1", NotFound),
    ("model_version", "no-at-sign", InvalidArgument),
    ("widget", "x", InvalidArgument),
    ("run", "", InvalidArgument),
])
def test_unknown_targets_are_refused_and_nothing_is_stored(world, target_type, target_id, error):
    a = world["a"]
    with pytest.raises(error):
        a.add_comment(target_type, target_id, "hello @bob")
    assert world["b"].mentions() == []


@pytest.mark.parametrize("body, match", [
    ("x" * (64 * 1024 + 1), "64 KiB"),
    ("é" * (32 * 1024 + 1), "64 KiB"),  # the limit is in UTF-8 bytes
    ("bad \ud800 text", "surrogate"),
    ("   ", "empty"),
    (12, "string"),
    (None, "string"),
])
def test_bad_bodies_are_refused_whole(world, body, match):
    a, run = world["a"], world["run"]
    with pytest.raises(InvalidArgument, match=match):
        a.add_comment("run", run, body)
    ok = a.add_comment("run", run, "x" * (64 * 1024))  # exactly the limit is fine
    with pytest.raises(InvalidArgument, match=match):
        a.edit_comment(ok.id, body)
    assert [(c.id, c.edits) for c in a.comments("run", run)] == [(ok.id, 0)]


def test_saved_views_round_trip_and_belong_to_their_creator(world):
    a, v, root, exp = world["a"], world["v"], world["root"], world["exp"]
    state = {"filter": "metrics.loss < 0.6", "columns": ["metrics.loss", "params.lr"],
             "group": "lr", "sort": {"id": "metrics.loss", "dir": "ASC"}}
    saved = a.save_view(exp, "best runs", state)
    assert saved.state == {**state, "charts": []}
    assert (saved.created_by, saved.name, saved.experiment_id) == ("alice", "best runs", exp)
    assert saved.url == f"/?experiments={exp}&view=best+runs"
    assert [x.name for x in v.views(exp)] == ["best runs"]
    assert v.get_view(exp, "best runs").state == saved.state
    again = a.save_view(exp, "best runs", {**state, "filter": ""})
    assert again.state["filter"] == "" and again.created_at == saved.created_at
    with pytest.raises(PermissionDenied):
        v.save_view(exp, "best runs", state)
    with pytest.raises(PermissionDenied):
        v.delete_view(exp, "best runs")
    assert root.save_view(exp, "best runs", state).updated_by == "root"
    a.delete_view(exp, "best runs")
    assert a.views(exp) == []
    with pytest.raises(NotFound):
        a.get_view(exp, "best runs")


@pytest.mark.parametrize("name, state, match", [
    ("v", {"filter": 3}, "state.filter"),
    ("v", {"colour": "red"}, "unknown keys"),
    ("v", {"sort": {"id": "x", "dir": "UP"}}, "state.sort"),
    ("v", {"columns": "metrics.loss"}, "state.columns"),
    ("v", {"filter": "\ud800"}, "surrogate"),
    ("v", ["filter"], "object"),
    ("a/b", {}, "view name"),
    ("", {}, "view name"),
])
def test_bad_views_are_refused_and_nothing_is_stored(world, name, state, match):
    a, exp = world["a"], world["exp"]
    with pytest.raises(InvalidArgument, match=match):
        a.save_view(exp, name, state)
    assert a.views(exp) == []


def test_views_of_an_unknown_experiment_are_not_found(world):
    with pytest.raises(NotFound):
        world["a"].save_view("999999", "v", {})


# -- dashboards ----------------------------------------------------------------------------
def test_dashboards_round_trip_over_saved_queries(world):
    a, v, root, exp = world["a"], world["v"], world["root"], world["exp"]
    a.save_view(exp, "best", {"filter": "metrics.loss < 1", "sort": {"id": "metrics.loss",
                                                                      "dir": "ASC"}})
    panels = [{"kind": "line", "experiment_id": exp, "view": "best", "columns": ["metrics.loss"],
               "title": "Loss"},
              {"kind": "scatter", "experiment_id": exp, "filter": "params.lr = '0.1'",
               "columns": ["params.lr", "metrics.loss"], "limit": 50}]
    d = a.save_dashboard("weekly", panels, description="what we look at on Mondays")
    assert (d.name, d.created_by, d.description) == ("weekly", "alice",
                                                     "what we look at on Mondays")
    assert d.panels[0] == {"title": "Loss", "kind": "line", "experiment_id": exp, "view": "best",
                           "filter": "", "sort": None, "columns": ["metrics.loss"], "limit": 10}
    assert d.panels[1]["limit"] == 50 and d.panels[1]["view"] is None
    assert d.experiment_ids == (exp,) and d.url == "/dashboards/weekly"
    assert [x.name for x in v.dashboards()] == ["weekly"]
    assert v.get_dashboard("weekly").panels == d.panels
    with pytest.raises(PermissionDenied):
        v.delete_dashboard("weekly")
    assert root.save_dashboard("weekly", panels[:1]).updated_by == "root"
    assert len(a.get_dashboard("weekly").panels) == 1
    a.delete_dashboard("weekly")
    assert a.dashboards() == []
    with pytest.raises(NotFound):
        a.get_dashboard("weekly")


@pytest.mark.parametrize("panel, error, match", [
    ({"kind": "pie", "columns": ["metrics.loss"]}, InvalidArgument, "kind"),
    ({"kind": "line", "columns": ["params.lr"]}, InvalidArgument, "metrics"),
    ({"kind": "scatter", "columns": ["params.lr"]}, InvalidArgument, "two columns"),
    ({"kind": "table", "columns": ["metrics.loss"], "limit": 1000}, InvalidArgument, "limit"),
    ({"kind": "table", "columns": ["metrics.loss"], "colour": "red"}, InvalidArgument, "unknown"),
    ({"kind": "table", "columns": ["metrics.loss"], "view": "missing"}, NotFound, "missing"),
    ({"kind": "table", "columns": ["metrics.loss"], "experiment_id": "999999"}, NotFound, "999999"),
    ({"kind": "table", "columns": ["metrics.loss"], "title": "\ud800"}, InvalidArgument,
     "surrogate"),
])
def test_bad_dashboards_are_refused_and_nothing_is_stored(world, panel, error, match):
    a = world["a"]
    with pytest.raises(error, match=match):
        a.save_dashboard("d", [{"experiment_id": world["exp"], **panel}])
    assert a.dashboards() == []
