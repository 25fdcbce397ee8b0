"""Storage lifecycle: a trash for data set and model versions, retention policies, and
tombstones for audit events erased on a person's request.

Revision ID: 0010_lifecycle
Revises: 0009_monitoring

Adds nullable columns and one table; no existing row changes.  ``deleted_at`` NULL is a
live version; a value puts the version in the trash (kept, hidden, restorable) until
the trash is emptied.  ``audit_events.erased`` NULL is an event as written; a value (JSON)
says the event's personal fields were replaced, when and by which erasure event, so
the chain is verified through its stored hashes rather than recomputed for that row.
"""
import sqlalchemy as sa
from alembic import op

revision = "0010_lifecycle"
down_revision = "0009_monitoring"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("dataset_versions", "model_versions"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("deleted_at", sa.BigInteger, nullable=True))
            batch.add_column(sa.Column("deleted_by", sa.String(256), nullable=True))
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("erased", sa.Text, nullable=True))
    op.create_table(
        "retention_policies",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("target", sa.String(256), primary_key=True),
        sa.Column("policy", sa.Text, nullable=False),
        sa.Column("updated_by", sa.String(256), nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("retention_policies")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("erased")
    for table in ("model_versions", "dataset_versions"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("deleted_by")
            batch.drop_column("deleted_at")
