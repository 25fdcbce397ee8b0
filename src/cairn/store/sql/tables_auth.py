"""Users, API tokens (hashed at rest) and role bindings for the team server (revision 0004_auth).

Not derived from journals: ``cairn reindex`` never touches these.  A token is
shown once when it is made; only its SHA-256 is stored (tokens are 256-bit random
strings, so a fast hash is as good as a slow one and keeps every request cheap).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table

from .tables import metadata

users = Table(
    "users", metadata,
    Column("name", String(256), primary_key=True),
    Column("is_admin", Integer, nullable=False, default=0),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False, default=""),
    Column("disabled_at", BigInteger),
)

api_tokens = Table(
    "api_tokens", metadata,
    Column("id", String(32), primary_key=True),  # public id, shown in listings
    Column("user_name", String(256), nullable=False),
    Column("name", String(256), nullable=False, default=""),
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256 hex of the secret
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger),
    Column("revoked_at", BigInteger),
    Index("ix_api_tokens_user", "user_name"),
)

# role on (resource_type, resource_id); resource_id "*" means every resource of that type,
# resource_type "global" with id "*" means everything.
role_bindings = Table(
    "role_bindings", metadata,
    Column("user_name", String(256), primary_key=True),
    Column("resource_type", String(16), primary_key=True),  # global | experiment | model
    Column("resource_id", String(256), primary_key=True),
    Column("role", String(16), nullable=False),  # viewer | editor | approver | admin
    Column("granted_by", String(256), nullable=False, default=""),
    Column("granted_at", BigInteger, nullable=False),
)

AUTH_TABLES = (users, api_tokens, role_bindings)
