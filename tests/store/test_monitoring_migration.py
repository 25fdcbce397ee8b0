"""Revision 0009_monitoring: a store at 0008 upgrades in place, keeps what it held, and gets
the monitoring tables a fresh store gets (columns, keys, indexes and unique constraints), on
SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from cairn.store.sql.migrate import upgrade
from cairn.store.sql.tables import HEAD_REVISION
from cairn.store.sql.tables_monitoring import MONITORING_TABLES


def _shape(url: str) -> dict:
    engine = sa.create_engine(url)
    try:
        insp = sa.inspect(engine)
        out = {}
        for t in MONITORING_TABLES:
            cols = [(c["name"], str(c["type"]).split("(")[0], c["nullable"])
                    for c in insp.get_columns(t.name)]
            out[t.name] = (sorted(cols), insp.get_pk_constraint(t.name)["constrained_columns"],
                           sorted((i["name"], tuple(i["column_names"]))
                                  for i in insp.get_indexes(t.name)),
                           sorted((u["name"], tuple(u["column_names"]))
                                  for u in insp.get_unique_constraints(t.name)))
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


def test_upgrade_from_0008_on_sqlite_keeps_reports_and_matches_a_fresh_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    assert upgrade(url, "0008_reports") == "0008_reports"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO reports VALUES ('r', 'kept', '[]', '[]', '[]', 'ann', "
                             "1, 'ann', 1)")
    engine.dispose()
    assert upgrade(url) == HEAD_REVISION
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    _fresh(fresh)
    assert _shape(url) == _shape(fresh)
    assert set(_shape(url)) == {t.name for t in MONITORING_TABLES}
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT body FROM reports").scalar_one() == "kept"
    engine.dispose()


def test_an_event_key_is_stored_once(tmp_path):
    # What makes two producers of the same fact safe: the second insert fails.
    url = f"sqlite:///{tmp_path / 'db.db'}"
    _fresh(url)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO events (key, type, at, payload) "
                                 "VALUES ('audit:1', 'alias.moved', 1, '{}')")
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO events (key, type, at, payload) "
                                 "VALUES ('audit:1', 'alias.moved', 2, '{}')")
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_upgrade_from_0008_on_postgres_matches_a_fresh_database():
    from pg_fixtures import create_database, drop_database

    old, fresh = create_database(), create_database()
    try:
        assert upgrade(old, "0008_reports") == "0008_reports"
        assert upgrade(old) == HEAD_REVISION
        _fresh(fresh)
        assert _shape(old) == _shape(fresh)
    finally:
        drop_database(old)
        drop_database(fresh)
