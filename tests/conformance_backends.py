"""Backends for the registry and data set conformance suites: one object per backend, each
handing out ``cairn.Client`` objects for named users, so one test body runs on all of them.

* ``local``: a store directory; every user opens it with ``cairn.Client(path, user=...)``.
* ``postgres``: the server's store (PostgreSQL index, objects on disk) used directly, as
  ``cairn.Client("postgresql://...", user=...)``; a fresh schema per test.
* ``remote`` / ``remote-postgres``: a real Cairn server (uvicorn in a thread, auth on) serving
  a local store directory / PostgreSQL; each user talks to it over HTTP with their own token.

Users: ``alice`` edits experiments and models, ``bob`` approves models, ``vera`` views, and
``root`` is an admin (on a server the audit log is for admins).  On a local store or
PostgreSQL used directly everyone may do everything, as docs/registry.md says.

Everything backend-specific (where objects lie on disk, how a client gets its token) is here,
so the suites themselves use only the public ``Client`` API.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import cairn

ADMIN_TOKEN = "cairn_bootstrap-admin-token-for-conformance-01"
ROLES = {"alice": [("experiment", "editor"), ("model", "editor")],
         "bob": [("experiment", "viewer"), ("model", "approver")],
         "vera": [("experiment", "viewer"), ("model", "viewer")]}


def provision(http, roles: dict) -> dict[str, str]:
    """Create each user of ``roles`` (name -> [(resource type, role)]) with a token and its
    roles on every resource, through an admin's ``httpx`` client; returns name -> token."""
    tokens = {}
    for user, grants in roles.items():
        r = http.post("/users", json={"name": user})
        assert r.status_code == 201, r.text
        tokens[user] = http.post(f"/users/{user}/tokens", json={"name": "t"}).json()["token"]
        for rtype, role in grants:
            r = http.put("/roles", json={"user": user, "resource_type": rtype,
                                         "resource_id": "*", "role": role})
            assert r.status_code == 200, r.text
    return tokens


def client_on(store, user: str) -> cairn.Client:
    """A Client of ``store`` (already open here) acting as ``user``."""
    try:
        return cairn.Client(user=user, store=store)
    except TypeError:  # a Client that takes only a URI: give it the store it would open
        client = cairn.Client(store.uri, user=user)
        client._store = store
        return client


class Backend:
    kind: str
    remote = False

    def client(self, user: str = "alice") -> cairn.Client:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def admin(self) -> cairn.Client:
        """A client that may read and verify the audit log."""
        return self.client("root")

    def objects_dir(self) -> Path:  # pragma: no cover - abstract
        raise NotImplementedError

    def corrupt(self, oid: str) -> None:
        """Flip the last byte of object ``oid`` as it lies on the backend's disk."""
        path = self.objects_dir() / oid[:2] / oid[2:]
        os.chmod(path, 0o644)  # objects are stored read-only
        data = bytearray(path.read_bytes())
        data[-1] ^= 0x01
        path.write_bytes(bytes(data))

    def settle(self) -> None:
        """Let queued server-side work (audit events) land; nothing to do without a server."""

    def auth_db(self):
        """Users, tokens and roles, in the database that holds the registry (the server's)."""
        from cairn.store.sql.auth import AuthDB

        return AuthDB(self._sql_store().index.engine)

    def _sql_store(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class LocalBackend(Backend):
    """A store directory: every user opens it by its path, as a training script does."""

    kind = "local"

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "store"
        self.uri = str(self.root)

    def client(self, user: str = "alice") -> cairn.Client:
        return cairn.Client(self.uri, user=user)

    def objects_dir(self) -> Path:
        return self.root / "objects"

    def _sql_store(self):
        from cairn.store import open_store

        store = open_store(self.uri)
        store.open()
        return store

    def close(self) -> None:
        from cairn.store import close_store

        close_store(str(self.root))


class PostgresBackend(Backend):
    """The server's store on PostgreSQL, used directly (as the server's own Client does).

    ``cairn.Client("postgresql://...")`` alone opens the store without an object store
    (admin commands need none), so the store with its objects directory is opened here
    and handed to each user's Client.
    """

    kind = "postgres"

    def __init__(self, tmp_path: Path, pg_url: str) -> None:
        from cairn.cas import ObjectStore
        from cairn.store.sql.store import SqlStore

        self._objects = tmp_path / "objects"
        self.store = SqlStore(pg_url, ObjectStore.local(self._objects))

    def client(self, user: str = "alice") -> cairn.Client:
        return client_on(self.store, user)

    def objects_dir(self) -> Path:
        return self._objects

    def _sql_store(self):
        self.store.open()
        return self.store

    def close(self) -> None:
        self.store.close()


class RemoteBackend(Backend):
    """A real server with auth on, in a thread; ``store`` is what it serves."""

    remote = True

    def __init__(self, kind: str, tmp_path: Path, store) -> None:
        import httpx
        from serving import ThreadedServer

        from cairn.server import ServerSettings, create_app

        self.kind, self.tmp, self.store = kind, tmp_path, store
        self.app = create_app(store, settings=ServerSettings(
            auth=True, bootstrap_token=ADMIN_TOKEN, bootstrap_user="root", token_cache_s=0))
        self.app.state.cairn.start()
        self._server = ThreadedServer(self.app)
        self.url = self._server.__enter__()
        self.tokens = {"root": ADMIN_TOKEN}
        self._stores: list = []
        try:
            with httpx.Client(base_url=self.url + "/api/v1",
                              headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60) as http:
                self.tokens.update(provision(http, ROLES))
            # The audit chain gets its head now (the first event of an empty chain races
            # with the server's queued writer on PostgreSQL; see tests/server/api_world.py).
            self.settle()
        except BaseException:
            self._server.__exit__(None, None, None)
            raise

    def client(self, user: str = "alice") -> cairn.Client:
        """``user``'s client: what ``CAIRN_TRACKING_URI=url CAIRN_TRACKING_TOKEN=...`` gives
        in that user's process (one HTTP store per token, so one per user here)."""
        from cairn.store.http import HttpStore

        store = HttpStore(self.url, token=self.tokens[user],
                          spool_dir=self.tmp / f"spool-{user}", drain_timeout=0)
        self._stores.append(store)
        return client_on(store, user)

    def objects_dir(self) -> Path:
        backend = self.store.objects.backend
        return Path(backend.root)

    def _sql_store(self):
        return self.store

    def settle(self) -> None:
        self.app.state.cairn.flush_audit()

    def close(self) -> None:
        for s in self._stores:
            s.close()
        try:
            self.settle()
        finally:
            self._server.__exit__(None, None, None)
            self.store.close()


@contextmanager
def sql_statements(engine) -> Iterator[list[str]]:
    """Every SQL statement ``engine`` sends inside the block, each with its parameters, as
    text: what a call reads, for tests that check it reads a thing once."""
    from sqlalchemy import event

    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(f"{statement} {parameters!r}")

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def reads(statements: list[str], table: str, *values: str) -> int:
    """How many of ``statements`` select from ``table`` with each of ``values`` a parameter."""
    return sum(1 for s in statements if s.lstrip().upper().startswith("SELECT")
               and f"FROM {table}" in s and all(f"'{v}'" in s for v in values))


def refuse_role_writes(engine, user: str) -> None:
    """A real database failure for failure-injection tests: from now on, the database refuses
    (as a constraint violation) every insert, update and delete of ``user``'s role bindings."""
    import hashlib

    ident = "refuse_" + hashlib.sha256(user.encode()).hexdigest()[:12]
    if engine.dialect.name == "sqlite":
        statements = [f"CREATE TRIGGER {ident}_{op.lower()} BEFORE {op} ON role_bindings "
                      f"WHEN {row}.user_name = '{user}' "
                      "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                      for op, row in (("INSERT", "NEW"), ("UPDATE", "OLD"), ("DELETE", "OLD"))]
    else:
        statements = [
            f"CREATE FUNCTION {ident}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF (CASE WHEN TG_OP = 'INSERT' THEN NEW.user_name ELSE OLD.user_name END) "
            f"= '{user}' THEN RAISE EXCEPTION 'refused by the test' "
            "USING ERRCODE = 'check_violation'; END IF; "
            "IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW; END $$",
            f"CREATE TRIGGER {ident} BEFORE INSERT OR UPDATE OR DELETE ON role_bindings "
            f"FOR EACH ROW EXECUTE FUNCTION {ident}()"]
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def backend_fixture(kinds: list, **env: str):
    """A suite's ``backend`` fixture: each test runs once per kind of ``kinds`` (names, or
    ``pytest.param`` with their marks; the test ids are the kinds), on a backend opened for
    it and closed after, with the model cache off the store and ``env`` set (``{tmp}`` in a
    value is the test's temporary directory).  In a suite: ``backend = backend_fixture(...)``
    (and ``pg_database`` imported, for the PostgreSQL kinds)."""
    import pytest

    @pytest.fixture(params=kinds)
    def backend(request, tmp_path, monkeypatch):
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        for name, value in env.items():
            monkeypatch.setenv(name, value.format(tmp=tmp_path))
        b = open_backend(request.param, tmp_path, request)
        yield b
        b.close()

    return backend


def open_backend(kind: str, tmp_path: Path, request) -> Backend:
    """The backend ``kind`` for one test; PostgreSQL kinds get a fresh schema."""
    def pg_url() -> str:
        from pg_fixtures import create_schema

        return create_schema(request.getfixturevalue("pg_database"))

    if kind == "local":
        return LocalBackend(tmp_path)
    if kind == "postgres":
        return PostgresBackend(tmp_path, pg_url())
    from cairn.cas import ObjectStore

    if kind == "remote":
        from cairn.store.local import LocalStore

        return RemoteBackend(kind, tmp_path, LocalStore(tmp_path / "server-store"))
    if kind == "remote-postgres":
        from cairn.store.sql.store import SqlStore

        return RemoteBackend(kind, tmp_path,
                             SqlStore(pg_url(), ObjectStore.local(tmp_path / "server-objects")))
    raise ValueError(kind)
