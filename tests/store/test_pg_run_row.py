"""On PostgreSQL a write's statements on the run's own row go as one (pg_batch.merge_run_row):
the row ends exactly as the separate statements left it, a row that exists included."""

import psycopg

from cairn.store.sql import pg_batch
from cairn.store.sql.index import _PG_STATEMENTS
from cairn.store.sql.store import SqlStore
from pg_fixtures import create_schema, pg_database  # noqa: F401

COLUMNS = ("experiment_id, name, status, start_time, end_time, parent_id, \"user\", lifecycle, "
           "heartbeat, env, doc, summaries")


def _apply(conn, later) -> None:
    with conn.cursor() as cur:
        for name, params in later:
            if name == "sql":
                cur.execute(*params)
            else:
                cur.execute(_PG_STATEMENTS[name], params)
    conn.commit()


def _row(conn, rid: str) -> tuple:
    return conn.execute(f"SELECT {COLUMNS} FROM runs WHERE id = %s", (rid,)).fetchone()


def _create(rid: str, heartbeat: int | None, t: int) -> list:
    return [("insert_run", (rid, "1", "r", 5, None, "u", heartbeat)),
            ("upsert_tag", (rid, "k", "v")),
            ("set_doc", ('{"p":{},"t":{"k":"v"},"v":{}}', "{}", rid)),
            ("touch_run", (t, t, rid)),
            ("upsert_writer", (f"w-{rid}", rid, 1, 0))]


def test_merged_statements_leave_the_row_as_the_separate_ones(pg_database):  # noqa: F811
    url = create_schema(pg_database)
    store = SqlStore(url)
    store.open()
    store.close()
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO experiments (id, name, created_at, lifecycle, tags) "
                     "VALUES ('1', 'e', 0, 'active', '{}')")
        conn.commit()
        for heartbeat in (None, 50, 500):  # below, at none, above the write's time
            plain, merged = f"a{heartbeat}", f"b{heartbeat}"
            _apply(conn, _create(plain, heartbeat, 100))
            later = pg_batch.merge_run_row(_create(merged, heartbeat, 100))
            assert [n for n, _ in later] == ["sql", "upsert_tag", "upsert_writer"]
            _apply(conn, later)
            assert _row(conn, plain) == _row(conn, merged)
            # A later write: its document and heartbeat (set_doc + touch_run)
            for rid in (plain, merged):
                later = [("set_doc", ('{"p":{"a":"1"},"t":{},"v":{}}', '{"m":1}', rid)),
                         ("touch_run", (300, 300, rid))]
                _apply(conn, pg_batch.merge_run_row(later) if rid == merged else later)
            assert _row(conn, plain) == _row(conn, merged)
            assert _row(conn, merged)[8] == max(300, heartbeat or 0)
        # A created run's row that exists after all (ended, with a later heartbeat): the
        # insert leaves its columns, the document and heartbeat rules apply to it.
        for rid in ("c1", "c2"):
            _apply(conn, _create(rid, 1000, 100))
            conn.execute("UPDATE runs SET status = 'FINISHED', end_time = 7 WHERE id = %s", (rid,))
            conn.commit()
        _apply(conn, _create("c1", None, 2000))
        _apply(conn, pg_batch.merge_run_row(_create("c2", None, 2000)))
        assert _row(conn, "c1") == _row(conn, "c2")
        assert _row(conn, "c2")[2] == "FINISHED" and _row(conn, "c2")[8] == 2000


def test_nothing_to_merge_is_left_as_it_is():
    later = [("end_run", (1, 1, "FINISHED", 2, "r")), ("upsert_writer", ("w", "r", 2, 0))]
    assert pg_batch.merge_run_row(later) is later
    later = [("set_doc", ("{}", None, "r")), ("end_run", (1, 1, "FINISHED", 2, "r"))]
    assert pg_batch.merge_run_row(later) is later
