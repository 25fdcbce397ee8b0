"""Latest-metric summaries apart from the run document; clustered param/tag/metric tables.

Revision ID: 0006_run_values
Revises: 0005_run_docs

``runs.doc`` now holds params, tags and each metric's latest value only
(``{"p": ..., "t": ..., "v": ...}``) and the new ``runs.summaries`` the rest of each
latest-metric summary, which a page of search results rarely reads.  Documents
written by 0005 (with ``"m"``) stay readable and are rewritten by the run's next write.

On SQLite, ``params``, ``tags`` and ``latest_metrics`` are rebuilt ``WITHOUT ROWID``
so that a lookup by (run_id, key) walks one b-tree.  PostgreSQL has no such notion
and only gains the column.
"""
import sqlalchemy as sa
from alembic import op

revision = "0006_run_values"
down_revision = "0005_run_docs"
branch_labels = None
depends_on = None

# Table -> (columns DDL, indexes DDL), as tables.py declares them at this revision.
_CLUSTERED = {
    "params": ('run_id VARCHAR(64) NOT NULL, "key" VARCHAR(250) NOT NULL, value TEXT NOT NULL, '
               'PRIMARY KEY (run_id, "key")',
               ['CREATE INDEX ix_params_key_value ON params ("key", value, run_id)']),
    "tags": ('run_id VARCHAR(64) NOT NULL, "key" VARCHAR(250) NOT NULL, value TEXT NOT NULL, '
             'PRIMARY KEY (run_id, "key")',
             ['CREATE INDEX ix_tags_key_value ON tags ("key", value, run_id)']),
    "latest_metrics": ('run_id VARCHAR(64) NOT NULL, "key" VARCHAR(250) NOT NULL, value FLOAT, '
                       'is_nan INTEGER NOT NULL, step BIGINT NOT NULL, timestamp BIGINT NOT NULL, '
                       'min FLOAT, max FLOAT, count BIGINT NOT NULL, PRIMARY KEY (run_id, "key")',
                       ['CREATE INDEX ix_latest_key_value ON latest_metrics ("key", value)']),
}


def _rebuild(table: str, columns: str, indexes: list[str], rowid: bool) -> None:
    op.execute(f"CREATE TABLE _new_{table} ({columns}){'' if rowid else ' WITHOUT ROWID'}")
    op.execute(f"INSERT INTO _new_{table} SELECT * FROM {table}")
    op.execute(f"DROP TABLE {table}")
    op.execute(f"ALTER TABLE _new_{table} RENAME TO {table}")
    for ddl in indexes:
        op.execute(ddl)


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("summaries", sa.Text))
    if op.get_bind().dialect.name == "sqlite":
        for table, (columns, indexes) in _CLUSTERED.items():
            _rebuild(table, columns, indexes, rowid=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table, (columns, indexes) in _CLUSTERED.items():
            _rebuild(table, columns, indexes, rowid=True)
    # 0005 reads metrics from doc["m"]: documents are rebuilt from the tables on read.
    op.execute("UPDATE runs SET doc = NULL")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("summaries")
