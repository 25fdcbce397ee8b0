"""Reports: Markdown documents with live panels.

Revision ID: 0008_reports
Revises: 0007_collab

Creates only a new table; nothing else changes.
"""
import sqlalchemy as sa
from alembic import op

revision = "0008_reports"
down_revision = "0007_collab"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("panels", sa.Text, nullable=False),
        sa.Column("experiments", sa.Text, nullable=False),
        sa.Column("models", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(256), nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("reports")
