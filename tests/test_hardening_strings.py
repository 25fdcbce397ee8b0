"""Issue #15: a lone UTF-16 surrogate ("x\\ud800y", what os.fsdecode makes of a file name
that is not UTF-8) is refused with InvalidArgument at the call that brings it in, naming
the field, before anything is buffered: the fluent API, the Client, the registry, data
sets and every store's write.  What was logged before and after is kept, and the store
stays openable.  NUL and the other checks are unchanged."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

import cairn
from cairn.cas import ObjectStore
from cairn.entities import RecordBatch
from cairn.errors import InvalidArgument
from cairn.store.local import LocalStore
from cairn.store.memory import MemoryStore
from cairn.store.sql.store import SqlStore
from cairn.store import validation
from cairn.store.validation import check_key, param_value, tag_value

BAD = "x\ud800y"
FSNAME = os.fsdecode(b"bad\xffname")  # 'bad\udcffname'
SURROGATE = re.compile(r"lone surrogate \(\\ud[89a-f][0-9a-f]{2}\) at position \d+; "
                       r"strings must be valid Unicode")


def refused(fn, *args, **kwargs) -> str:
    with pytest.raises(InvalidArgument) as info:
        fn(*args, **kwargs)
    message = info.value.message
    assert SURROGATE.search(message), message
    message.encode("utf-8")  # the message itself is valid text (the surrogate escaped)
    return message


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    monkeypatch.setenv("CAIRN_KEYS_DIR", "/nonexistent-cairn-keys")


# -- the one place ----------------------------------------------------------------------
def test_messages_name_the_field_and_the_position():
    assert refused(tag_value, "bad", BAD) == (
        "tag 'bad' value contains a lone surrogate (\\ud800) at position 1; strings must be "
        "valid Unicode")
    assert refused(check_key, FSNAME, "metric").startswith("metric key 'bad\\udcffname'")
    assert refused(param_value, "p", "\udfff").startswith("param 'p' value")
    assert refused(validation.check_text, "ab\udc80", "run name") == (
        "run name contains a lone surrogate (\\udc80) at position 2; strings must be valid "
        "Unicode")
    # Valid text (a surrogate pair is one character) passes, ASCII or not.
    for ok in ("plain", "é ✓ 模型", "\U0001F600"):
        assert validation.check_text(ok, "x") == ok and tag_value("k", ok) == ok


def test_nul_and_the_other_checks_are_unchanged():
    with pytest.raises(InvalidArgument, match="NUL"):
        check_key("a\x00b", "tag")
    with pytest.raises(InvalidArgument, match="empty"):
        check_key("", "tag")
    with pytest.raises(InvalidArgument, match="whitespace"):
        check_key(" k", "param")
    with pytest.raises(InvalidArgument, match="limit"):
        tag_value("k", "v" * 9000)
    assert tag_value("k", 3) == "3" and param_value("k", float("nan")) == "nan"


# -- fluent API ---------------------------------------------------------------------------
def test_fluent_calls_refuse_surrogates_and_keep_everything_else(tracking):
    with cairn.start_run(params={"lr": 0.1}) as run:
        cairn.log_metric("loss", 1.0)
        cairn.set_tag("keep", "yes")
        calls = [
            (cairn.set_tag, "bad", BAD),
            (cairn.set_tag, FSNAME, "v"),
            (cairn.set_tags, {"ok": "1", "bad": BAD}),
            (cairn.log_metric, "bad\ud800", 1.0),
            (cairn.log_metrics, {"fine": 1.0, FSNAME: 2.0}),
            (cairn.log_param, "bad", BAD),
            (cairn.log_param, FSNAME, 1),
            (cairn.log_params, {"p": "1", "q\udc00": "2"}),
            (cairn.log_text, BAD, "notes.txt"),
        ]
        for fn, *args in calls:
            refused(fn, *args)
        cairn.log_metric("loss", 0.5)
        cairn.set_tag("after", "yes")
    # log_metrics checks its keys one by one: "fine" went in before FSNAME was refused.
    r = cairn.Client().get_run(run.id)
    assert r.status is cairn.RunStatus.FINISHED
    assert r.tags == {"keep": "yes", "after": "yes"} and r.params == {"lr": "0.1"}
    assert r.metrics["loss"] == 0.5
    assert not any("\ud800" <= ch <= "\udfff" for k in (*r.tags, *r.params, *r.metrics)
                   for ch in k)
    # A fresh process reads the same store (journal and index).
    cairn_state_reset_and_reopen(tracking, run.id)


def cairn_state_reset_and_reopen(path, run_id):
    store = LocalStore(path)
    try:
        store.open()
        again = store.get_run(run_id)
        assert again.tags["after"] == "yes"
        assert store.reindex()["damaged"] == 0
        assert store.get_run(run_id).tags == again.tags
    finally:
        store.close()


def test_fluent_names_refuse_surrogates(tracking):
    refused(cairn.set_experiment, BAD)
    refused(cairn.start_run, name=FSNAME)
    refused(cairn.start_run, experiment="e\ud800")
    assert cairn.active_run() is None  # nothing was started
    with cairn.start_run(name="ok") as run:
        refused(cairn.log_artifact, tracking.parent / FSNAME)
    assert cairn.Client().get_run(run.id).name == "ok"
    assert [e.name for e in cairn.Client().list_experiments()] == ["Default"]


def test_an_artifact_whose_file_name_is_not_utf8(tracking, tmp_path):
    folder = tmp_path / "outputs"
    folder.mkdir()
    (folder / "good.txt").write_text("fine")
    with open(os.path.join(os.fsencode(folder), b"bad\xff.txt"), "wb") as fh:
        fh.write(b"data")
    with cairn.start_run() as run:
        message = refused(cairn.log_artifacts, folder)
        assert "artifact path" in message
        cairn.log_artifact(folder / "good.txt")
    assert [a.path for a in cairn.Client().list_artifacts(run.id)] == ["good.txt"]


def test_an_environment_that_is_not_utf8_is_kept_escaped(tracking, monkeypatch):
    # argv, paths and variables Cairn gathers itself are kept (each lone surrogate as its
    # escape), not refused: the run must be recorded whatever the file names on the command line.
    from cairn.environment import clear_environment_cache

    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "1")
    monkeypatch.setattr("sys.argv", ["train.py", FSNAME])
    clear_environment_cache()
    try:
        with cairn.start_run() as run:
            cairn.log_metric("loss", 1.0)
    finally:
        clear_environment_cache()
    r = cairn.Client().get_run(run.id)
    assert r.status is cairn.RunStatus.FINISHED and r.metrics == {"loss": 1.0}
    assert r.env["argv"] == ["train.py", "bad\\udcffname"]
    refused(cairn.Client, str(tracking), BAD)  # a user named by the caller is checked


# -- Client --------------------------------------------------------------------------------
def test_client_methods_refuse_surrogates(tracking):
    c = cairn.Client(str(tracking))
    run = c.create_run(params={"a": "1"}, tags={"t": "1"})
    calls = [
        (c.set_tag, run.id, "bad", BAD),
        (c.set_tag, run.id, FSNAME, "v"),
        (c.log_param, run.id, "p", BAD),
        (c.log_metric, run.id, FSNAME, 1.0),
        (c.log_batch, run.id, [("ok", 1.0, 0, 1), ("m\ud800", 1.0, 0, 1)]),
        (c.log_batch, run.id, (), {"p\udcff": "1"}),
        (c.delete_tag, run.id, BAD),
        (c.set_note, run.id, BAD),
        (c.create_run, None, BAD),
        (c.create_run, None, None, {"k": BAD}),
        (c.create_experiment, BAD),
        (c.create_experiment, "ok", {"t": BAD}),
        (c.get_experiment_by_name, BAD),
        (c.get_or_create_experiment, FSNAME),
        (c.get_run, "run\ud800"),
        (c.get_metric_history, run.id, BAD),
        (c.search_runs, None, f"params.a = '{BAD}'"),
        (c.list_artifacts, run.id, BAD),
    ]
    for fn, *args in calls:
        refused(fn, *args)
    assert "tag 'bad' value" in refused(c.set_tag, run.id, "bad", BAD)
    again = c.get_run(run.id)
    assert again.params == {"a": "1"} and again.tags == {"t": "1"} and again.metrics == {}
    assert [e.name for e in c.list_experiments()] == ["Default"]
    assert len(c.search_runs()) == 1


# -- every store's write ---------------------------------------------------------------------
@pytest.fixture(params=["memory", "local", "sqlite",
                        pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    if request.param == "memory":
        s = MemoryStore("hardening")
    elif request.param == "local":
        s = LocalStore(tmp_path / "local")
    else:
        url = (f"sqlite:///{tmp_path / 'index.db'}" if request.param == "sqlite"
               else _pg_url(request))
        s = SqlStore(url, ObjectStore.local(tmp_path / "objects"))
    yield s
    s.close()


def _pg_url(request):
    from pg_fixtures import create_schema

    return create_schema(request.getfixturevalue("pg_database"))


@pytest.fixture(scope="session")
def pg_database():
    from pg_fixtures import create_database, drop_database

    url = create_database()
    yield url
    drop_database(url)


def _batch(seq: int, **fields) -> RecordBatch:
    return RecordBatch(run_id="run1", writer_id="w1", seq=seq, time=seq, **fields)


def test_every_store_refuses_a_batch_with_a_surrogate_and_keeps_the_rest(store):
    exp = store.create_experiment("e")
    create = {"experiment_id": exp.id, "experiment_name": "e", "name": "r", "user": "u",
              "start_time": 1}
    store.write(_batch(1, create=create, tags={"keep": "1"}))
    bad = [
        _batch(2, tags={"bad": BAD}),
        _batch(2, tags={FSNAME: "v"}),
        _batch(2, params={"p": BAD}),
        _batch(2, deleted_tags=(BAD,)),
        _batch(2, metrics={"m\ud800": ([0], [1], [1.0])}),
        _batch(2, env={"path": {"deep": [BAD]}}),
        RecordBatch(run_id="run2", writer_id="w2", seq=1, time=1,
                    create={**create, "name": BAD}),
    ]
    for b in bad:
        refused(store.write, b)
    refused(store.create_experiment, BAD)
    refused(store.create_experiment, "ok", {"t": BAD})
    store.write(_batch(2, tags={"after": "1"}))  # seq 2 was never used by a refused batch
    run = store.get_run("run1")
    assert run.tags == {"keep": "1", "after": "1"}
    assert [e.name for e in store.list_experiments()] == ["e"]


def test_a_local_store_with_refused_batches_reopens_whole(tmp_path):
    s = LocalStore(tmp_path / "s")
    exp = s.create_experiment("e")
    s.write(_batch(1, create={"experiment_id": exp.id, "name": "r", "start_time": 1},
                   tags={"keep": "1"}))
    refused(s.write, _batch(2, tags={"bad": BAD}))
    s.close()
    again = LocalStore(tmp_path / "s")
    try:
        assert again.reindex()["damaged"] == 0
        assert again.get_run("run1").tags == {"keep": "1"}
    finally:
        again.close()


# -- registry and data sets ------------------------------------------------------------------------
def test_registry_refuses_surrogates(tracking):
    c = cairn.Client(str(tracking))
    c.create_registered_model("m", description="fine", tags={"t": "1"})
    calls = [
        (c.create_registered_model, BAD),
        (c.create_registered_model, "m2", BAD),
        (c.create_registered_model, "m3", "", {"t": BAD}),
        (c.create_registered_model, "m4", "", {FSNAME: "v"}),
        (c.get_registered_model, FSNAME),
        (c.list_model_versions, BAD),
        (c.resolve_model, f"m@{BAD}"),
        (c.set_alias, "m", BAD, "1.0.0"),
        (c.delete_alias, "m", BAD),
        (c.set_naming_policy, None, BAD),
        (c.set_stage_policy, "m", "production", 0, [BAD]),
        (c.request_transition, "m", "1.0.0", "staging", BAD),
        (c.model_history, BAD),
        (c.audit_log, BAD),
    ]
    for fn, *args in calls:
        refused(fn, *args)
    model = c.get_registered_model("m")
    assert model.description == "fine" and dict(model.tags) == {"t": "1"}
    assert [m.name for m in c.list_registered_models()] == ["m"]
    assert c.verify_audit_log().ok


def test_register_model_refuses_a_surrogate_description(tracking):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.RandomState(0)
    X, y = rng.randn(40, 3), (rng.randn(40) > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    c = cairn.Client(str(tracking))
    refused(c.register_model, "m", model, description=BAD)
    refused(c.register_model, "m", model, params={"p": BAD})
    refused(cairn.log_model, model, FSNAME)
    assert c.register_model("m", model).version == "1.0.0"


def test_data_sets_refuse_surrogates(tracking, tmp_path):
    c = cairn.Client(str(tracking))
    arr = np.arange(12).reshape(4, 3)
    c.data.add_array(arr, "ds", message="first")
    calls = [
        lambda: c.data.add_array(arr, BAD),
        lambda: c.data.add_array(arr, "ds2", BAD),
        lambda: c.data.add_array(arr, "ds3", aliases=[BAD]),
        lambda: c.data.versions(FSNAME),
        lambda: c.data.version(f"ds@{BAD}"),
        lambda: c.data.alias("ds@1", BAD),
        lambda: cairn.data.versions(BAD),
    ]
    for call in calls:
        refused(call)
    with cairn.start_run() as run:
        refused(cairn.log_input, "ds@1", BAD)
        refused(c.log_input, run.id, BAD)
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "a.csv").write_text("x\n1\n")
    with open(os.path.join(os.fsencode(folder), b"b\xff.csv"), "wb") as fh:
        fh.write(b"x\n2\n")
    assert "is not valid UTF-8" in refused(c.data.add, folder, "raw")
    assert [d.name for d in c.data.list()] == ["ds"]
    assert [v.version for v in c.data.versions("ds")] == [1]


# -- a remote store: refused at the call, nothing spooled ---------------------------------------
@pytest.mark.usefixtures("cairn_state")
def test_a_server_tracking_uri_refuses_at_the_call(cairn_server, monkeypatch):
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    cairn.set_tracking_uri(cairn_server)
    with cairn.start_run() as run:
        cairn.set_tag("keep", "1")
        refused(cairn.set_tag, "bad", BAD)
        refused(cairn.log_metric, FSNAME, 1.0)
        cairn.log_metric("loss", 1.0)
    c = cairn.Client(cairn_server)
    refused(c.set_tag, run.id, "k", BAD)
    refused(c.create_registered_model, BAD)
    refused(c.data.versions, BAD)
    got = c.get_run(run.id)
    assert got.tags == {"keep": "1"} and got.metrics == {"loss": 1.0}
