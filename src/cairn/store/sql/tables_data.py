"""Data-set tables (revision 0003_data): data sets, their versions, aliases, run inputs, derivations.

Not derived from journals, so ``cairn reindex`` never touches them.  Owned by
:mod:`cairn.data`, which reads and writes them with SQLAlchemy Core only (SQLite and
PostgreSQL alike).  ``tables.py`` imports this module so that ``create_all`` sees them.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from .tables import metadata

datasets = Table(
    "datasets", metadata,
    Column("name", String(256), primary_key=True),
    Column("description", Text, nullable=False, default=""),
    Column("created_by", String(256), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

dataset_versions = Table(
    "dataset_versions", metadata,
    Column("dataset", String(256), primary_key=True),
    Column("version", Integer, primary_key=True),  # 1, 2, ... per data set
    Column("tree_oid", String(80), nullable=False),  # the files, in the object store
    Column("packs", Text, nullable=False, default="[]"),  # JSON list of pack oids it reads
    Column("files", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("message", Text, nullable=False, default=""),
    Column("source", Text, nullable=False, default=""),  # the path it was added from
    Column("kind", String(16), nullable=False),  # add | derive | split | pull
    Column("run_id", String(64)),  # the run that made it (derive, split inside a run)
    Column("commit", String(64)),  # code commit of that run
    Column("transform", Text, nullable=False, default="{}"),  # JSON parameters of derive/split
    Column("stats", Text, nullable=False, default="{}"),  # JSON: tabular statistics per file
    Column("quality", Text, nullable=False, default="[]"),  # JSON: expectation results
    Column("created_by", String(256), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # In the trash since then (revision 0010): hidden and restorable until it is emptied.
    Column("deleted_at", BigInteger),
    Column("deleted_by", String(256)),
    Index("ix_dataset_versions_tree", "tree_oid"),
    Index("ix_dataset_versions_run", "run_id"),
)

dataset_aliases = Table(
    "dataset_aliases", metadata,
    Column("dataset", String(256), primary_key=True),
    Column("alias", String(128), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_by", String(256), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# A run read a data set version (cairn.log_input), in a role such as "train".
run_inputs = Table(
    "run_inputs", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("dataset", String(256), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("role", String(64), primary_key=True),
    Column("logged_at", BigInteger, nullable=False),
    Index("ix_run_inputs_dataset", "dataset", "version"),
)

# A data set version was made from a parent version (derive, split).
derivations = Table(
    "derivations", metadata,
    Column("dataset", String(256), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("parent_dataset", String(256), primary_key=True),
    Column("parent_version", Integer, primary_key=True),
    Index("ix_derivations_parent", "parent_dataset", "parent_version"),
)

DATA_TABLES = (datasets, dataset_versions, dataset_aliases, run_inputs, derivations)
