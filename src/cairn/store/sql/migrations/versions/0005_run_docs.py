"""Run documents, and param/tag indexes that fit PostgreSQL.

Revision ID: 0005_run_docs
Revises: 0004_auth

``runs.doc`` holds a run's params, tags and latest metrics as one JSON text so a
page of search results is one row per run; rows from before it stay NULL and are
read from the tables (and filled in by their next write).  PostgreSQL refuses
btree entries over ~2.7 kB, so param and tag values are indexed on SQLite only.
"""
import sqlalchemy as sa
from alembic import op

revision = "0005_run_docs"
down_revision = "0004_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("doc", sa.Text))
    op.drop_index("ix_params_key_value", table_name="params")
    op.drop_index("ix_tags_key", table_name="tags")
    if op.get_bind().dialect.name == "sqlite":
        op.create_index("ix_params_key_value", "params", ["key", "value", "run_id"])
        op.create_index("ix_tags_key_value", "tags", ["key", "value", "run_id"])
    else:
        op.create_index("ix_params_key", "params", ["key"])
        op.create_index("ix_tags_key", "tags", ["key"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index("ix_params_key_value", table_name="params")
        op.drop_index("ix_tags_key_value", table_name="tags")
    else:
        op.drop_index("ix_params_key", table_name="params")
        op.drop_index("ix_tags_key", table_name="tags")
    op.create_index("ix_params_key_value", "params", ["key", "value"])
    op.create_index("ix_tags_key", "tags", ["key"])
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("doc")
