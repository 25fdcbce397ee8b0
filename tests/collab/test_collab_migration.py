"""Revisions 0007_collab and 0008_reports: a store at 0006 (or 0007) upgrades in place, and
the tables they make are the ones a fresh store gets (columns, keys and indexes alike), on
SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

import cairn
from cairn.collab import collab_for
from cairn.store.sql.migrate import upgrade
from cairn.store.sql.tables import HEAD_REVISION
from cairn.store.sql.tables_collab import COLLAB_TABLES


def _shape(url: str) -> dict:
    engine = sa.create_engine(url)
    try:
        insp = sa.inspect(engine)
        out = {}
        for t in COLLAB_TABLES:
            cols = [(c["name"], str(c["type"]).split("(")[0], c["nullable"])
                    for c in insp.get_columns(t.name)]
            out[t.name] = (sorted(cols), insp.get_pk_constraint(t.name)["constrained_columns"],
                           sorted((i["name"], tuple(i["column_names"]))
                                  for i in insp.get_indexes(t.name)))
        return out
    finally:
        engine.dispose()


def _fresh(url: str) -> None:
    from cairn.store.sql.engine import ensure_schema, make_engine

    engine = make_engine(url)
    try:
        ensure_schema(engine)
    finally:
        engine.dispose()


def test_upgrade_from_0006_on_sqlite_matches_a_fresh_store(tmp_path):
    store = tmp_path / "old"
    store.mkdir()
    url = f"sqlite:///{store / 'index.db'}"
    assert upgrade(url, "0006_run_values") == "0006_run_values"
    assert upgrade(url) == HEAD_REVISION
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    _fresh(fresh)
    assert _shape(url) == _shape(fresh)
    client = cairn.Client(str(store), user="alice")
    exp = client.create_experiment("e").id
    c = collab_for(client).add_comment("experiment", exp, "after the upgrade @bob")
    assert [x.id for x in collab_for(client, "bob").mentions()] == [c.id]
    cairn.store.close_store(str(store))


@pytest.mark.postgres
def test_upgrade_from_0006_on_postgres_matches_a_fresh_database():
    # Whole databases, not schemas: alembic's config refuses the '%' of a search_path URL.
    from pg_fixtures import create_database, drop_database

    old, fresh = create_database(), create_database()
    try:
        assert upgrade(old, "0006_run_values") == "0006_run_values"
        assert upgrade(old) == HEAD_REVISION
        _fresh(fresh)
        assert _shape(old) == _shape(fresh)
    finally:
        drop_database(old)
        drop_database(fresh)


def test_upgrade_from_0007_keeps_comments_and_adds_reports(tmp_path):
    store = tmp_path / "old"
    store.mkdir()
    url = f"sqlite:///{store / 'index.db'}"
    assert upgrade(url, "0007_collab") == "0007_collab"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO comments (id, target_type, target_id, author, body, "
                             "created_at, edits) VALUES ('c1', 'experiment', 'e', 'ann', "
                             "'kept', 1, 0)")
    engine.dispose()
    assert upgrade(url) == HEAD_REVISION
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    _fresh(fresh)
    assert _shape(url) == _shape(fresh)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT body FROM comments").scalar_one() == "kept"
        assert conn.exec_driver_sql("SELECT count(*) FROM reports").scalar_one() == 0
    engine.dispose()
    client = cairn.Client(str(store), user="alice")
    assert collab_for(client).save_report("r", "# after the upgrade").author == "alice"
    cairn.store.close_store(str(store))
