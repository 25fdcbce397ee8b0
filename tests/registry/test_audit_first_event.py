"""The audit chain's first event: concurrent writers on PostgreSQL must not both claim #1."""

import threading

import pytest
from pg_fixtures import create_schema, pg_database  # noqa: F401  (a fixture, used by name)

from cairn.registry import audit
from cairn.store.sql.engine import ensure_schema, make_engine, session


@pytest.mark.parametrize("writers", [2, 6])
def test_concurrent_first_events_chain_in_order(pg_database, writers):  # noqa: F811
    engine = make_engine(create_schema(pg_database))
    try:
        ensure_schema(engine)
        barrier = threading.Barrier(writers)
        errors: list[BaseException] = []

        def write(k: int) -> None:
            try:
                with session(engine, write=True) as conn:
                    barrier.wait(timeout=30)  # every transaction open before any appends
                    audit.append(conn, f"user{k}", "test.event", f"t/{k}")
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        with session(engine) as conn:
            report = audit.verify(conn)
            assert report.ok and report.checked == writers
            assert audit.head(conn)[0] == writers
    finally:
        engine.dispose()


def test_an_empty_chain_verifies_and_starts_at_one(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'index.db'}")
    try:
        ensure_schema(engine)
        with session(engine) as conn:
            assert audit.verify(conn).ok and audit.head(conn)[0] == 0
        with session(engine, write=True) as conn:
            first = audit.append(conn, "u", "a", "t")
        assert first.seq == 1 and first.prev_hash == audit.GENESIS
        with session(engine) as conn:
            assert audit.verify(conn).ok and audit.head(conn) == (1, first.hash)
    finally:
        engine.dispose()
