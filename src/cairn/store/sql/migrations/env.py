"""Alembic environment: migrations run on the connection `cairn db upgrade` passes in."""

from alembic import context

from cairn.store.sql import tables

target_metadata = tables.metadata
connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only `cairn db upgrade` runs migrations
    raise RuntimeError("run migrations with `cairn db upgrade`")
context.configure(connection=connection, target_metadata=target_metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
