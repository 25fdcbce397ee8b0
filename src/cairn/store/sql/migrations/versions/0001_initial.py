"""The initial index schema.

Revision ID: 0001_initial
Revises:
"""
from alembic import op

from cairn.store.sql import tables

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # While this is the only revision it creates the declared schema; the first change to
    # tables.py must freeze this into explicit op.create_table calls and add 0002.
    tables.metadata.create_all(op.get_bind())


def downgrade() -> None:
    tables.metadata.drop_all(op.get_bind())
