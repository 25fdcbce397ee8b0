"""The index schema, declared once with SQLAlchemy Core for SQLite and PostgreSQL.

Everything in the run tables is derived from journals and can be rebuilt by
``cairn reindex``.  Times are integer milliseconds since the epoch.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger, Column, Float, Index, Integer, LargeBinary, MetaData, String, Table, Text,
)

metadata = MetaData()

# Bump together with a new Alembic revision in migrations/versions/.
HEAD_REVISION = "0001_initial"

experiments = Table(
    "experiments", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(500), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("lifecycle", String(16), nullable=False, default="active"),
    Column("tags", Text, nullable=False, default="{}"),  # JSON object
)

runs = Table(
    "runs", metadata,
    Column("id", String(64), primary_key=True),
    Column("experiment_id", String(64), nullable=False),
    Column("name", String(500), nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger),
    Column("parent_id", String(64)),
    Column("user", String(256), nullable=False, default=""),
    Column("lifecycle", String(16), nullable=False, default="active"),
    Column("heartbeat", BigInteger),
    Column("env", Text, nullable=False, default="{}"),  # JSON object
    Index("ix_runs_experiment_start", "experiment_id", "start_time"),
)

params = Table(
    "params", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_params_key_value", "key", "value"),
)

tags = Table(
    "tags", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_tags_key", "key"),
)

# One row per (run, key): what search and sort need without reading segments.
latest_metrics = Table(
    "latest_metrics", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("key", String(250), primary_key=True),
    # SQLite turns NaN into NULL, so NaN is flagged and value left NULL; +-inf are stored as is.
    Column("value", Float),
    Column("is_nan", Integer, nullable=False, default=0),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("min", Float),  # over non-NaN values; NULL when every value is NaN
    Column("max", Float),
    Column("count", BigInteger, nullable=False),
    Index("ix_latest_key_value", "key", "value"),
)

# Columnar metric storage: one row per (run, key, writer, flush).
metric_segments = Table(
    "metric_segments", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("writer", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("n", Integer, nullable=False),
    Column("step_min", BigInteger, nullable=False),
    Column("step_max", BigInteger, nullable=False),
    Column("payload", LargeBinary, nullable=False),
)

artifacts = Table(
    "artifacts", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("path", String(1000), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("digest", String(80), nullable=False),
    Column("chunks", Text),  # JSON list of [oid, size], NULL for single-object files
)

# Idempotency: the highest sequence number applied per writer.
writers = Table(
    "writers", metadata,
    Column("writer_id", String(64), primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("offset", BigInteger, nullable=False, default=0),  # bytes of its journal applied
)

DERIVED_TABLES = (experiments, runs, params, tags, latest_metrics, metric_segments, artifacts, writers)
