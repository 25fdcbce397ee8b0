"""Data sets: versions, aliases, run inputs and derivations.

Revision ID: 0003_data
Revises: 0002_registry

Creates only new tables (none derived from journals, so ``cairn reindex`` never
touches them); existing data is left as it is.
"""
import sqlalchemy as sa
from alembic import op

revision = "0003_data"
down_revision = "0002_registry"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("name", sa.String(256), primary_key=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("dataset", sa.String(256), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("tree_oid", sa.String(80), nullable=False),
        sa.Column("packs", sa.Text, nullable=False),
        sa.Column("files", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("commit", sa.String(64)),
        sa.Column("transform", sa.Text, nullable=False),
        sa.Column("stats", sa.Text, nullable=False),
        sa.Column("quality", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_dataset_versions_tree", "dataset_versions", ["tree_oid"])
    op.create_index("ix_dataset_versions_run", "dataset_versions", ["run_id"])
    op.create_table(
        "dataset_aliases",
        sa.Column("dataset", sa.String(256), primary_key=True),
        sa.Column("alias", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_by", sa.String(256), nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "run_inputs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("dataset", sa.String(256), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("role", sa.String(64), primary_key=True),
        sa.Column("logged_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_run_inputs_dataset", "run_inputs", ["dataset", "version"])
    op.create_table(
        "derivations",
        sa.Column("dataset", sa.String(256), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("parent_dataset", sa.String(256), primary_key=True),
        sa.Column("parent_version", sa.Integer, primary_key=True),
    )
    op.create_index("ix_derivations_parent", "derivations", ["parent_dataset", "parent_version"])


def downgrade() -> None:
    for name in ("derivations", "run_inputs", "dataset_aliases", "dataset_versions", "datasets"):
        op.drop_table(name)
