"""The index schema, declared once with SQLAlchemy Core for SQLite and PostgreSQL.

Everything in the run tables is derived from journals and can be rebuilt by
``cairn reindex``.  Times are integer milliseconds since the epoch.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger, Column, Float, Index, Integer, LargeBinary, MetaData, String, Table, Text,
)

metadata: MetaData = MetaData()

# Bump together with a new Alembic revision in migrations/versions/.
HEAD_REVISION = "0010_lifecycle"

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
    # Params, tags and latest metric values as one JSON document, kept in step with
    # their tables by every write: loading a page of runs is one row per run, not ~35.
    Column("doc", Text),
    # The latest-metric summaries (step, time, min, max, count) as JSON, apart from doc:
    # a page of search results rarely needs them, and parsing them was half its cost.
    Column("summaries", Text),
    Index("ix_runs_experiment_start", "experiment_id", "start_time"),
)

params = Table(
    "params", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    # PostgreSQL refuses btree rows over ~2.7 kB and params may be 6,000 characters, so the
    # value is indexed on SQLite only (where it makes equality filters start from the index).
    Index("ix_params_key_value", "key", "value", "run_id").ddl_if(dialect="sqlite"),
    Index("ix_params_key", "key").ddl_if(dialect="postgresql"),
    # Clustered on (run_id, key) on SQLite: a lookup or insert walks one b-tree, not a
    # primary-key index and then the table (a third of a filtered search's SQL time).
    sqlite_with_rowid=False,
)

tags = Table(
    "tags", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_tags_key_value", "key", "value", "run_id").ddl_if(dialect="sqlite"),
    Index("ix_tags_key", "key").ddl_if(dialect="postgresql"),
    sqlite_with_rowid=False,
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
    sqlite_with_rowid=False,
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


# -- Model registry and audit log (revision 0002_registry) --------------------------------
# Not derived from journals: `cairn reindex` never touches these.  Owned by cairn.registry,
# which reads and writes them with SQLAlchemy Core only (SQLite and PostgreSQL alike).

registered_models = Table(
    "registered_models", metadata,
    Column("name", String(256), primary_key=True),
    Column("description", Text, nullable=False, default=""),
    Column("tags", Text, nullable=False, default="{}"),  # JSON object
    Column("created_by", String(256), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

model_versions = Table(
    "model_versions", metadata,
    Column("name", String(256), primary_key=True),
    Column("version", String(64), primary_key=True),  # semver text, e.g. "1.3.0"
    Column("major", Integer, nullable=False),
    Column("minor", Integer, nullable=False),
    Column("patch", Integer, nullable=False),
    Column("stage", String(16), nullable=False),  # mutable state; not part of the digest
    Column("stage_since", BigInteger, nullable=False),
    Column("source_run_id", String(64)),
    Column("tree_oid", String(80), nullable=False),  # the model's files in the object store
    Column("flavor", String(32), nullable=False),
    Column("signature", Text),  # JSON input/output schema, NULL when not inferred
    Column("requirements", Text, nullable=False, default="{}"),  # JSON
    Column("parent_version", String(64)),
    Column("bump", String(8), nullable=False),  # major | minor | patch | explicit | initial
    Column("bump_reasons", Text, nullable=False, default="[]"),  # JSON list of strings
    Column("metrics", Text, nullable=False, default="{}"),  # JSON snapshot of the run's metrics
    Column("params", Text, nullable=False, default="{}"),  # JSON hyperparameters compared on bump
    Column("datasets", Text, nullable=False, default="[]"),  # JSON list of data set refs
    Column("lineage", Text, nullable=False, default="{}"),  # JSON: code commit, environment
    Column("fingerprint", Text, nullable=False, default="{}"),  # JSON: architecture
    Column("description", Text, nullable=False, default=""),
    Column("created_by", String(256), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("digest", String(80), nullable=False),  # sha256 of the canonical description
    Column("signing_key", String(64)),  # key id of the Ed25519 signature, NULL when unsigned
    Column("signature_bytes", LargeBinary),
    # In the trash since then (revision 0010): hidden and restorable until it is emptied.
    Column("deleted_at", BigInteger),
    Column("deleted_by", String(256)),
    Index("ix_model_versions_order", "name", "major", "minor", "patch"),
    Index("ix_model_versions_run", "source_run_id"),
)

model_aliases = Table(
    "model_aliases", metadata,
    Column("name", String(256), primary_key=True),
    Column("alias", String(128), primary_key=True),
    Column("version", String(64), nullable=False),
    Column("updated_by", String(256), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

stage_policies = Table(
    "stage_policies", metadata,
    Column("name", String(256), primary_key=True),
    Column("stage", String(16), primary_key=True),
    Column("approvals", Integer, nullable=False, default=0),
    Column("approvers", Text),  # JSON list of users, NULL: anyone but the requester
    Column("exclusive", Integer, nullable=False, default=0),  # one version at a time
    Column("updated_by", String(256), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

transition_requests = Table(
    "transition_requests", metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("version", String(64), nullable=False),
    Column("from_stage", String(16), nullable=False),
    Column("to_stage", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # pending | applied | rejected
    Column("comment", Text, nullable=False, default=""),
    Column("requested_by", String(256), nullable=False),
    Column("requested_at", BigInteger, nullable=False),
    Column("resolved_by", String(256)),
    Column("resolved_at", BigInteger),
    Index("ix_transition_requests_model", "name", "status"),
)

transition_approvals = Table(
    "transition_approvals", metadata,
    Column("request_id", String(32), primary_key=True),
    Column("user", String(256), primary_key=True),
    Column("decision", String(16), nullable=False),  # approve | reject
    Column("comment", Text, nullable=False, default=""),
    Column("time", BigInteger, nullable=False),
)

model_history = Table(
    "model_history", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False),
    Column("version", String(64)),
    Column("kind", String(32), nullable=False),  # register | stage | alias | delete | rename | ...
    Column("from_value", String(128)),
    Column("to_value", String(128)),
    Column("alias", String(128)),  # for alias events: which alias moved
    Column("actor", String(256), nullable=False),
    Column("time", BigInteger, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("request_id", String(32)),
    Index("ix_model_history_name_time", "name", "time"),
)

registry_settings = Table(
    "registry_settings", metadata,
    Column("key", String(128), primary_key=True),
    Column("value", Text, nullable=False),  # JSON
)

signing_keys = Table(
    "signing_keys", metadata,
    Column("key_id", String(64), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("public_key", Text, nullable=False),  # PEM
    Column("created_by", String(256), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
)

# The hash-chained audit log: seq is dense from 1; hash = sha256 over the row and prev_hash.
audit_events = Table(
    "audit_events", metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("time", BigInteger, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(500), nullable=False),
    Column("before", Text),  # JSON, NULL when the target did not exist
    Column("after", Text),  # JSON, NULL when the target was removed
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # JSON tombstone (revision 0010): the personal fields were erased on request; the row's
    # stored hash still links the chain, which the erasure's own event vouches for.
    Column("erased", Text),
    Index("ix_audit_events_target", "target"),
)

# The chain's head (one row), so that deleting the newest events is detected too.
audit_head = Table(
    "audit_head", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

REGISTRY_TABLES = (registered_models, model_versions, model_aliases, stage_policies,
                   transition_requests, transition_approvals, model_history, registry_settings,
                   signing_keys, audit_events, audit_head)

# -- Data sets (revision 0003_data), declared in tables_data.py ------------------------------
from . import tables_data  # noqa: E402,F401  (a module import: tables_data imports us too)

# -- Team-server auth (revision 0004_auth), declared in tables_auth.py --------------------
from .tables_auth import AUTH_TABLES, api_tokens, role_bindings, users  # noqa: E402,F401

# -- Collaboration (revisions 0007_collab, 0008_reports), declared in tables_collab.py ----
from . import tables_collab  # noqa: E402,F401  (comments, saved views, dashboards, reports)

# -- Monitoring (revision 0009_monitoring), declared in tables_monitoring.py ---------------
from . import tables_monitoring  # noqa: E402,F401  (alerts, events, webhooks)


# -- Lifecycle (revision 0010_lifecycle) ------------------------------------------------
# A retention policy per experiment or data set (kind "experiment" | "dataset"; target its
# id or name), as JSON; applied by `cairn gc`.
retention_policies = Table(
    "retention_policies", metadata,
    Column("kind", String(16), primary_key=True),
    Column("target", String(256), primary_key=True),
    Column("policy", Text, nullable=False),
    Column("updated_by", String(256), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)
