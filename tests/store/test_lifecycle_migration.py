"""Revision 0010_lifecycle: a store at 0009 upgrades in place, keeps its versions and audit
events (live, not erased), and gets the shape a fresh store gets, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from cairn.store.sql.migrate import upgrade
from cairn.store.sql.tables import HEAD_REVISION

TABLES = ("dataset_versions", "model_versions", "audit_events", "retention_policies")


def _shape(url: str) -> dict:
    engine = sa.create_engine(url)
    try:
        insp = sa.inspect(engine)
        return {t: (sorted((c["name"], str(c["type"]).split("(")[0], c["nullable"])
                           for c in insp.get_columns(t)),
                    insp.get_pk_constraint(t)["constrained_columns"],
                    sorted((i["name"], tuple(i["column_names"])) for i in insp.get_indexes(t)))
                for t in TABLES}
    finally:
        engine.dispose()


def _fresh(url: str) -> None:
    from cairn.store.sql.engine import ensure_schema, make_engine

    engine = make_engine(url)
    try:
        ensure_schema(engine)
    finally:
        engine.dispose()


def test_upgrade_from_0009_on_sqlite_keeps_rows_and_matches_a_fresh_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    assert upgrade(url, "0009_monitoring") == "0009_monitoring"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO audit_events (seq, time, actor, action, target, prev_hash, hash) "
            "VALUES (1, 5, 'ann', 'model.create', 'model:m', 'g', 'h')")
        conn.exec_driver_sql(
            "INSERT INTO dataset_versions (dataset, version, tree_oid, packs, files, size, "
            "message, source, kind, transform, stats, quality, created_by, created_at) "
            "VALUES ('d', 1, 't', '[]', 1, 1, '', '', 'add', '{}', '{}', '[]', 'ann', 1)")
    engine.dispose()
    assert upgrade(url) == HEAD_REVISION == "0010_lifecycle"
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    _fresh(fresh)
    assert _shape(url) == _shape(fresh)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT actor, erased FROM audit_events").one() == ("ann", None)
        assert conn.exec_driver_sql(
            "SELECT deleted_at, deleted_by FROM dataset_versions").one() == (None, None)
    engine.dispose()


@pytest.mark.postgres
def test_upgrade_from_0009_on_postgres_matches_a_fresh_database():
    from pg_fixtures import create_database, drop_database

    old, fresh = create_database(), create_database()
    try:
        assert upgrade(old, "0009_monitoring") == "0009_monitoring"
        assert upgrade(old) == HEAD_REVISION
        _fresh(fresh)
        assert _shape(old) == _shape(fresh)
    finally:
        drop_database(old)
        drop_database(fresh)
