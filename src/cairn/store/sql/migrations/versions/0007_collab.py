"""Collaboration: comments (with their edits and mentions), saved views, dashboards.

Revision ID: 0007_collab
Revises: 0006_run_values

Creates only new tables; nothing else changes.
"""
import sqlalchemy as sa
from alembic import op

revision = "0007_collab"
down_revision = "0006_run_values"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "comments",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("target_type", sa.String(16), nullable=False),
        sa.Column("target_id", sa.String(600), nullable=False),
        sa.Column("parent_id", sa.String(32)),
        sa.Column("author", sa.String(256), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("edited_at", sa.BigInteger),
        sa.Column("edited_by", sa.String(256)),
        sa.Column("edits", sa.Integer, nullable=False),
        sa.Column("deleted_at", sa.BigInteger),
        sa.Column("deleted_by", sa.String(256)),
    )
    op.create_index("ix_comments_target", "comments", ["target_type", "target_id", "created_at"])
    op.create_table(
        "comment_edits",
        sa.Column("comment_id", sa.String(32), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("editor", sa.String(256), nullable=False),
        sa.Column("edited_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "comment_mentions",
        sa.Column("user_name", sa.String(256), primary_key=True),
        sa.Column("comment_id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_comment_mentions_comment", "comment_mentions", ["comment_id"])
    op.create_table(
        "saved_views",
        sa.Column("experiment_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(256), nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "dashboards",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("panels", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(256), nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for name in ("dashboards", "saved_views", "comment_mentions", "comment_edits", "comments"):
        op.drop_table(name)
