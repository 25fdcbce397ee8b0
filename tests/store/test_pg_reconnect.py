"""A PostgreSQL-backed store after its connections die (a database restart, a failover)."""

from cairn.errors import StoreUnavailable
from pg_fixtures import _connect, ADMIN_URL, create_schema, pg_database  # noqa: F401


def test_dead_connections_fail_once_then_the_pool_recovers(pg_database):  # noqa: F811
    from cairn.store.sql.store import SqlStore

    store = SqlStore(create_schema(pg_database))
    store.open()
    exp = store.create_experiment("reconnect")
    dbname = pg_database.rsplit("/", 1)[1]
    with _connect(ADMIN_URL) as admin:  # what a restart does to every open connection
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,))
    failures = []
    for _ in range(6):  # the connection the pool held is gone: its first use may fail
        try:
            assert store.get_experiment(exp.id).name == "reconnect"
        except StoreUnavailable as exc:
            failures.append(str(exc))
    # ... once, as a clear StoreUnavailable (a 503 that clients retry); then the pool is new.
    assert len(failures) <= 1, failures
    assert all("index database failed" in f for f in failures)
    assert store.get_experiment(exp.id).name == "reconnect"
    store.close()
