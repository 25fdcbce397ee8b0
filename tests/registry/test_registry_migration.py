"""Registry tables arrive by migration; `cairn reindex` never touches them."""

import sqlite3

from click.testing import CliRunner

import cairn
from cairn.cli.main import cli
from cairn.store.sql import tables
from cairn.store.sql.migrate import upgrade

from .conftest import fit_logreg


def test_db_upgrade_from_a_0001_store(tmp_path, monkeypatch, data):
    store = tmp_path / "old"
    store.mkdir()
    url = f"sqlite:///{store / 'index.db'}"
    assert upgrade(url, "0001_initial") == "0001_initial"  # a store made by the first release
    conn = sqlite3.connect(store / "index.db")
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "runs" in names and "model_versions" not in names
    conn.close()
    client = cairn.Client(str(store))
    try:
        with_error = None
        try:
            client.list_experiments()
        except cairn.SchemaOutOfDate as exc:
            with_error = exc
        assert with_error is not None and "cairn db upgrade" in with_error.message
        result = CliRunner().invoke(cli, ["--store", str(store), "db", "upgrade"])
        assert result.exit_code == 0, result.output
        assert f"revision {tables.HEAD_REVISION}" in result.output or "revision" in result.output
        cairn.store.close_store(str(store))
        client = cairn.Client(str(store))
        mv = client.register_model("m", fit_logreg(data))
        assert mv.version == "1.0.0" and client.verify_audit_log().ok
    finally:
        cairn.store.close_store(str(store))


def test_migrations_match_the_declared_schema(tmp_path):
    import sqlalchemy as sa
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    url = f"sqlite:///{tmp_path / 'index.db'}"
    upgrade(url)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), tables.metadata)
    finally:
        engine.dispose()
    # Alembic's comparison ignores ddl_if(dialect=...): indexes declared for PostgreSQL only
    # are rightly absent from SQLite.
    declared = {i.name: i for t in tables.metadata.tables.values() for i in t.indexes}

    def other_dialect(d):
        index = declared.get(d[1].name) if d[0] == "add_index" else None
        ddl_if = getattr(index, "_ddl_if", None)
        return ddl_if is not None and ddl_if.dialect not in (None, "sqlite")

    assert [d for d in diffs if not other_dialect(d)] == []


def test_reindex_keeps_registry_and_audit_data(tracking, data):
    c = cairn.Client()
    with cairn.start_run():
        cairn.log_model(fit_logreg(data), name="m")
    c.set_alias("m", "champion", "1.0.0")
    assert not set(tables.REGISTRY_TABLES) & set(tables.DERIVED_TABLES)
    result = CliRunner().invoke(cli, ["--store", str(tracking), "reindex"])
    assert result.exit_code == 0, result.output
    assert c.resolve_model("m@champion").version == "1.0.0"
    assert len(c.audit_log()) == 3 and c.verify_audit_log().ok
    assert cairn.models.load("m@champion") is not None


def test_head_revision_is_the_last_migration():
    # A fresh store is stamped HEAD_REVISION by create_all; it must be alembic's head or
    # `cairn db upgrade` would re-create tables that exist (and old stores never open).
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from cairn.store.sql.migrate import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_heads() == [tables.HEAD_REVISION]
