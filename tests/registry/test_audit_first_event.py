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


def test_append_many_chains_like_one_by_one(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'index.db'}")
    try:
        ensure_schema(engine)
        with session(engine, write=True) as conn:
            one = audit.append(conn, "u", "first", "t/0", None, {"k": 1}, time_ms=10)
            many = audit.append_many(conn, [("u", "records.write", f"runs/{k}", None, {"n": k}, 11 + k)
                                            for k in range(3)])
            assert audit.append_many(conn, []) == []
        assert [e.seq for e in many] == [2, 3, 4]
        assert many[0].prev_hash == one.hash and many[2].prev_hash == many[1].hash
        with session(engine) as conn:
            assert audit.verify(conn).ok and audit.head(conn) == (4, many[-1].hash)
            # The same events written one by one hash the same (the chain does not
            # depend on how they were grouped).
        other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
        try:
            ensure_schema(other)
            with session(other, write=True) as conn:
                audit.append(conn, "u", "first", "t/0", None, {"k": 1}, time_ms=10)
                for k in range(3):
                    last = audit.append(conn, "u", "records.write", f"runs/{k}", None, {"n": k},
                                        time_ms=11 + k)
            assert last.hash == many[-1].hash
        finally:
            other.dispose()
    finally:
        engine.dispose()
