"""A PostgreSQL-backed store gathers planner statistics as the runs it creates double."""

import time

from cairn.entities import RecordBatch
from pg_fixtures import create_schema, pg_database  # noqa: F401


def _analyzed(store) -> bool:
    with store.index.session() as conn:
        row = conn.exec_driver_sql(
            "SELECT last_analyze FROM pg_stat_user_tables WHERE schemaname = current_schema() "
            "AND relname = 'runs'").first()
    return row is not None and row[0] is not None


def test_statistics_follow_the_runs_created(pg_database, monkeypatch):  # noqa: F811
    from cairn.store.sql import store as sqlstore

    monkeypatch.setattr(sqlstore, "ANALYZE_FIRST", 3)
    store = sqlstore.SqlStore(create_schema(pg_database))
    store.open()
    exp = store.create_experiment("stats")

    def create(i: int) -> None:
        store.write(RecordBatch(writer_id=f"w{i}", seq=1, time=1, run_id=f"run{i}",
                                create={"experiment_id": exp.id, "name": f"r{i}"},
                                params={"p": str(i)}))

    for i in range(2):
        create(i)
    time.sleep(0.3)
    assert not _analyzed(store)
    create(2)  # the third run: ANALYZE in the background, next at 6
    deadline = time.monotonic() + 10
    while not _analyzed(store) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _analyzed(store)
    assert store._analyze_at == 6
    store.close()
