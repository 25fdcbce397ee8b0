"""Index migrations keep what older revisions wrote readable, values and summaries alike."""

import json
import math
import sqlite3

import pytest

import cairn
from cairn.store.sql.migrate import upgrade
from cairn.store.sql.tables import HEAD_REVISION

from pg_fixtures import pg_database  # noqa: F401  (a fixture)


def _close(store_dir):
    cairn.store.close_store(str(store_dir))


def _summary(value, step, ts, lo, hi, count, is_nan=0):
    return [value, is_nan, step, ts, lo, hi, count]


def test_upgrade_from_0005_keeps_runs_and_their_documents(tmp_path):
    store = tmp_path / "old"
    store.mkdir()
    url = f"sqlite:///{store / 'index.db'}"
    assert upgrade(url, "0005_run_docs") == "0005_run_docs"
    # What revision 0005 wrote: metric summaries inside the run document.
    m = {"acc": _summary(0.75, 3, 1000, 0.5, 0.75, 4),
         "loss": _summary("inf", 1, 900, 0.1, "inf", 2),
         "gone": _summary(None, 0, 800, None, None, 1, is_nan=1)}
    doc = {"p": {"lr": "0.1"}, "t": {"team": "vision"}, "m": m}
    db = sqlite3.connect(store / "index.db")
    with db:
        db.execute("INSERT INTO experiments VALUES ('1', 'old', 1, 'active', '{}')")
        db.execute("INSERT INTO runs (id, experiment_id, name, status, start_time, end_time, "
                   "parent_id, user, lifecycle, heartbeat, env, doc) VALUES "
                   "('r1', '1', 'one', 'FINISHED', 1, 2, NULL, 'u', 'active', 2, '{}', ?)",
                   (json.dumps(doc),))
        db.execute("INSERT INTO params VALUES ('r1', 'lr', '0.1')")
        db.execute("INSERT INTO tags VALUES ('r1', 'team', 'vision')")
        for k, (v, is_nan, step, ts, lo, hi, n) in m.items():
            db.execute("INSERT INTO latest_metrics VALUES ('r1', ?, ?, ?, ?, ?, ?, ?, ?)",
                       (k, math.inf if v == "inf" else v, is_nan, step, ts, lo,
                        math.inf if hi == "inf" else hi, n))
    db.close()

    assert upgrade(url) == HEAD_REVISION
    db = sqlite3.connect(store / "index.db")
    ddl = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
    db.close()
    for table in ("params", "tags", "latest_metrics"):
        assert ddl[table].rstrip().endswith("WITHOUT ROWID"), ddl[table]

    client = cairn.Client(str(store))
    try:
        run = client.get_run("r1")
        assert run.params == {"lr": "0.1"} and run.tags == {"team": "vision"}
        assert run.metrics["acc"] == 0.75 and run.metrics["loss"] == math.inf
        assert math.isnan(run.metrics["gone"])
        s = run.metric_summaries["acc"]
        assert (s.value, s.step, s.timestamp, s.min, s.max, s.count) == (0.75, 3, 1000, 0.5, 0.75, 4)
        assert run.metric_summaries["loss"].max == math.inf
        found = client.search_runs(["old"], filter="metrics.acc > 0.7 and params.lr = '0.1' "
                                                  "and tags.team = 'vision'")
        assert [r.id for r in found] == ["r1"]
        # The next write turns the document into the new layout, values unchanged.
        client.set_tag("r1", "note", "migrated")
        again = client.get_run("r1")
        assert again.tags == {"team": "vision", "note": "migrated"}
        assert again.metrics["loss"] == math.inf and math.isnan(again.metrics["gone"])
        assert again.metric_summaries["acc"].count == 4
        db = sqlite3.connect(store / "index.db")
        new_doc, summaries = db.execute("SELECT doc, summaries FROM runs").fetchone()
        db.close()
        assert "m" not in json.loads(new_doc) and json.loads(summaries)["acc"][6] == 4
    finally:
        _close(store)


def test_a_0005_document_with_only_infinities_converts_right(tmp_path):
    store = tmp_path / "s"
    client = cairn.Client(str(store))
    try:
        run = client.create_run(client.get_or_create_experiment("e").id)
        client.log_batch(run.id, metrics=[("up", math.inf, 0, 1), ("ok", 1.5, 0, 1)])
        # Rewrite the row as revision 0005 left it: summaries inside the document.
        m = {"up": _summary("inf", 0, 1, "inf", "inf", 1), "ok": _summary(1.5, 0, 1, 1.5, 1.5, 1)}
        db = sqlite3.connect(store / "index.db")
        with db:
            db.execute("UPDATE runs SET doc = ?, summaries = NULL",
                       (json.dumps({"p": {}, "t": {}, "m": m}),))
        db.close()
        assert client.get_run(run.id).metrics == {"up": math.inf, "ok": 1.5}
        client.set_tag(run.id, "note", "x")  # converts the document
        got = client.get_run(run.id)
        assert got.metrics == {"up": math.inf, "ok": 1.5}
        assert got.metric_summaries["up"].max == math.inf
    finally:
        _close(store)


def test_non_finite_latest_values_round_trip(tmp_path):
    store = tmp_path / "s"
    client = cairn.Client(str(store))
    try:
        run = client.create_run(client.get_or_create_experiment("e").id)
        client.log_batch(run.id, metrics=[("a", 1.0, 0, 1), ("a", math.nan, 1, 2),
                                          ("b", -math.inf, 0, 1), ("c", 2.5, 0, 1)])
        got = client.get_run(run.id)
        assert math.isnan(got.metrics["a"]) and got.metrics["b"] == -math.inf
        assert got.metrics["c"] == 2.5
        assert got.metric_summaries["a"].min == 1.0 and got.metric_summaries["a"].count == 2
        # Back to finite values: the document drops its non-finite marker.
        client.log_batch(run.id, metrics=[("a", 3.0, 2, 3), ("b", 0.5, 1, 2)])
        got = client.get_run(run.id)
        assert got.metrics == {"a": 3.0, "b": 0.5, "c": 2.5}
        assert got.metric_summaries["b"].min == -math.inf
        [hit] = client.search_runs(["e"], filter="metrics.b = 0.5")
        assert hit.metrics == got.metrics
    finally:
        _close(store)


@pytest.mark.postgres
def test_upgrade_takes_a_database_url_with_percent_escapes(pg_database):  # noqa: F811
    """A URL may hold '%' (an escaped password, a search_path option): alembic's config
    reads '%' as interpolation, so the URL must not pass through it."""
    from pg_fixtures import create_schema

    url = create_schema(pg_database)
    assert "%" in url
    assert upgrade(url) == HEAD_REVISION
    assert upgrade(url) == HEAD_REVISION  # at the head already: nothing to do
