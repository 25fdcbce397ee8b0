"""PostgreSQL for tests: one throw-away database per test session, one schema per test.

PostgreSQL runs at 127.0.0.1:5432 on development and CI machines (``.ci/run`` starts
it).  These tests are never skipped: an unreachable server fails them loudly.
Override the server with CAIRN_TEST_PG (a URL to a database the user may CREATE
DATABASE from).
"""

from __future__ import annotations

import os
import secrets
import urllib.parse

import pytest

ADMIN_URL = os.environ.get("CAIRN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _connect(url: str):
    import psycopg

    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:  # fail, never skip
        pytest.fail(f"PostgreSQL is unreachable at {ADMIN_URL} ({exc}); start it "
                    "(.ci/run does) or point CAIRN_TEST_PG at one", pytrace=False)


def _with_db(url: str, dbname: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + dbname))


def create_database() -> str:
    name = f"cairn_test_{secrets.token_hex(6)}"
    with _connect(ADMIN_URL) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _with_db(ADMIN_URL, name)


def drop_database(url: str) -> None:
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    with _connect(ADMIN_URL) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_schema(db_url: str) -> str:
    """A fresh schema in ``db_url``; returns a URL whose connections use it."""
    schema = f"t_{secrets.token_hex(5)}"
    with _connect(db_url) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in db_url else "?"
    return f"{db_url}{sep}options=" + urllib.parse.quote(f"-csearch_path={schema}")


@pytest.fixture(scope="session")
def pg_database():
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture
def pg_url(pg_database):
    """A URL to an empty schema of the session's test database."""
    return create_schema(pg_database)
