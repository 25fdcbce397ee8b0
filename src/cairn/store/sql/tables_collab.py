"""Collaboration tables (revision 0007_collab): comments, their edits and mentions, saved
views of the runs table, dashboards; reports (revision 0008_reports).

Not derived from journals, so ``cairn reindex`` never touches them.  Owned by
:mod:`cairn.collab`, which reads and writes them with SQLAlchemy Core only (SQLite and
PostgreSQL alike).  ``tables.py`` imports this module so that ``create_all`` sees them.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from .tables import metadata

# A comment on a run, an experiment, a model version or a data set version.  A deleted
# comment keeps its row (body emptied, deleted_at set) so that its replies keep their place.
comments = Table(
    "comments", metadata,
    Column("id", String(32), primary_key=True),
    Column("target_type", String(16), nullable=False),  # run | experiment | model_version | dataset_version
    Column("target_id", String(600), nullable=False),  # run id, experiment id, NAME@VERSION
    Column("parent_id", String(32)),  # the comment this one replies to
    Column("author", String(256), nullable=False),
    Column("body", Text, nullable=False),  # Markdown, as written
    Column("created_at", BigInteger, nullable=False),
    Column("edited_at", BigInteger),
    Column("edited_by", String(256)),
    Column("edits", Integer, nullable=False, default=0),
    Column("deleted_at", BigInteger),
    Column("deleted_by", String(256)),
    Index("ix_comments_target", "target_type", "target_id", "created_at"),
)

# Each edit keeps the body it replaced, who edited and when (seq 1, 2, ... per comment).
comment_edits = Table(
    "comment_edits", metadata,
    Column("comment_id", String(32), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("body", Text, nullable=False),  # the body before this edit
    Column("editor", String(256), nullable=False),
    Column("edited_at", BigInteger, nullable=False),
)

# The users a comment's current body mentions (@name), for "comments that mention me".
comment_mentions = Table(
    "comment_mentions", metadata,
    Column("user_name", String(256), primary_key=True),
    Column("comment_id", String(32), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_comment_mentions_comment", "comment_id"),
)

# A named state of an experiment's runs table (filter, columns, grouping, sort, charts).
saved_views = Table(
    "saved_views", metadata,
    Column("experiment_id", String(64), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("state", Text, nullable=False),  # JSON object
    Column("created_by", String(256), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_by", String(256), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# Named panels over saved queries (the table is here so that one revision holds it).
dashboards = Table(
    "dashboards", metadata,
    Column("name", String(128), primary_key=True),
    Column("description", Text, nullable=False, default=""),
    Column("panels", Text, nullable=False, default="[]"),  # JSON list of panels
    Column("created_by", String(256), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_by", String(256), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# A Markdown document with live panels (revision 0008_reports).  ``panels`` are the body's
# panels as checked and resolved when saved; ``experiments`` and ``models`` what they draw
# from (JSON lists), which decide who may read the report on a server.
reports = Table(
    "reports", metadata,
    Column("name", String(128), primary_key=True),
    Column("body", Text, nullable=False),  # Markdown, as written
    Column("panels", Text, nullable=False, default="[]"),  # JSON list
    Column("experiments", Text, nullable=False, default="[]"),  # JSON list of experiment ids
    Column("models", Text, nullable=False, default="[]"),  # JSON list of model names
    Column("created_by", String(256), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_by", String(256), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

COLLAB_TABLES = (comments, comment_edits, comment_mentions, saved_views, dashboards, reports)
