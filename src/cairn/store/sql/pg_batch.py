"""A record batch applied on PostgreSQL in two round trips.

Each write of a tracking server is one durable transaction, and a created run is three
of them (the mlflow client's create, log-batch and terminate).  Sent one statement at a
time, a batch cost about a dozen round trips to the database, and each statement of a
pipeline one trip of psycopg's Python code per row.  Here a batch is:

1. one pipeline of everything the write must know first: the run's advisory lock, the
   writer's last seq and the run's state, the batch's params already stored, the
   experiment a creation goes to, and the run's document (locked ``FOR UPDATE``);
2. one pipeline of every write, a statement per table (rows travel as arrays and are
   spread by ``unnest``), ending with the ``COMMIT``.

The checks and the merge of metric summaries are :class:`~.index.SqlIndex`'s own, so
SQLite and PostgreSQL still apply a batch identically.
"""

from __future__ import annotations

from typing import Any

# The statements of index._STATEMENTS that take many rows, as one statement each on
# PostgreSQL: name -> (SQL, how to turn the rows into its parameters).
_ARRAY_STATEMENTS: dict[str, tuple[str, Any]] = {
    "insert_param": (
        'INSERT INTO params (run_id, "key", value) SELECT %s, k, v '
        "FROM unnest(%s::text[], %s::text[]) AS u(k, v) ON CONFLICT DO NOTHING",
        lambda rows: (rows[0][0], [r[1] for r in rows], [r[2] for r in rows])),
    "upsert_tag": (
        'INSERT INTO tags (run_id, "key", value) SELECT %s, k, v '
        "FROM unnest(%s::text[], %s::text[]) AS u(k, v) "
        'ON CONFLICT (run_id, "key") DO UPDATE SET value = excluded.value',
        lambda rows: (rows[0][0], [r[1] for r in rows], [r[2] for r in rows])),
    "delete_tag": (
        'DELETE FROM tags WHERE run_id = %s AND "key" = ANY(%s::text[])',
        lambda rows: (rows[0][0], [r[1] for r in rows])),
    "insert_segment": (
        'INSERT INTO metric_segments (run_id, "key", writer, seq, n, step_min, step_max, '
        "payload) SELECT %s, k, %s, %s, n, a, b, p FROM unnest(%s::text[], %s::int[], "
        "%s::bigint[], %s::bigint[], %s::bytea[]) AS u(k, n, a, b, p) ON CONFLICT DO NOTHING",
        lambda rows: (rows[0][0], rows[0][2], rows[0][3], [r[1] for r in rows],
                      [r[4] for r in rows], [r[5] for r in rows], [r[6] for r in rows],
                      [r[7] for r in rows])),
    "insert_latest": (
        'INSERT INTO latest_metrics (run_id, "key", value, is_nan, step, "timestamp", min, '
        'max, "count") SELECT %s, k, v, f, s, t, lo, hi, c FROM unnest(%s::text[], '
        "%s::float8[], %s::int[], %s::bigint[], %s::bigint[], %s::float8[], %s::float8[], "
        "%s::bigint[]) AS u(k, v, f, s, t, lo, hi, c)",
        lambda rows: (rows[0][0], _col(rows, 1), _col(rows, 2, True), _col(rows, 3),
                      _col(rows, 4), _col(rows, 5), _col(rows, 6, True), _col(rows, 7, True),
                      _col(rows, 8))),
    "update_latest": (
        # Rows as index.update_latest binds them: (value, ..., count, run_id, key).
        'UPDATE latest_metrics AS l SET value = u.v, is_nan = u.f, step = u.s, '
        '"timestamp" = u.t, min = u.lo, max = u.hi, "count" = u.c '
        "FROM unnest(%s::float8[], %s::int[], %s::bigint[], %s::bigint[], %s::float8[], "
        "%s::float8[], %s::bigint[], %s::text[]) AS u(v, f, s, t, lo, hi, c, k) "
        'WHERE l.run_id = %s AND l."key" = u.k',
        lambda rows: (_col(rows, 0, True), _col(rows, 1), _col(rows, 2), _col(rows, 3),
                      _col(rows, 4, True), _col(rows, 5, True), _col(rows, 6), _col(rows, 8),
                      rows[0][7])),
}


def _col(rows: list[tuple], i: int, floats: bool = False) -> list[Any]:
    """Column ``i`` of ``rows``; ``floats``: as floats, since an array has one type
    throughout and a metric value may come as an int."""
    if floats:
        return [None if r[i] is None else float(r[i]) for r in rows]
    return [r[i] for r in rows]


def one_run(rows: list[tuple], run_at: int) -> bool:
    """Whether every row names the same run at position ``run_at`` (the array forms take
    the run once)."""
    first = rows[0][run_at]
    return all(r[run_at] == first for r in rows)


def array_statement(name: str, params: Any) -> tuple[str, Any] | None:
    """``(sql, params)`` doing the rows of ``name`` in one statement, or None to run them
    row by row."""
    form = _ARRAY_STATEMENTS.get(name)
    if form is None or not isinstance(params, list) or not params:
        return None
    run_at = 7 if name == "update_latest" else 0
    if not one_run(params, run_at):
        return None
    if name == "insert_segment" and not (one_run(params, 2) and one_run(params, 3)):
        return None
    return form[0], form[1](params)
