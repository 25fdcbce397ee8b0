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


# A write's statements on the run's own row, as one statement (see merge_run_row): the
# document and the heartbeat a batch sets, and for a run the batch creates, its insert too.
# The CASE expressions are index._STATEMENTS["touch_run"]'s.
_TOUCH = ("heartbeat = CASE WHEN COALESCE({t}heartbeat, 0) > %s THEN {t}heartbeat ELSE %s END, "
          "status = CASE WHEN {t}end_time IS NULL THEN 'RUNNING' ELSE {t}status END")
_INSERT_RUN_DOC = (
    'INSERT INTO runs (id, experiment_id, name, status, start_time, end_time, parent_id, "user", '
    "lifecycle, heartbeat, env, doc, summaries) VALUES (%s, %s, %s, 'RUNNING', %s, NULL, %s, %s, "
    "'active', %s, '{}', %s, %s) ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, "
    "summaries = excluded.summaries, " + _TOUCH.format(t="runs."))
_SET_DOC_TOUCH = "UPDATE runs SET doc = %s, summaries = %s, " + _TOUCH.format(t="") + " WHERE id = %s"


def merge_run_row(later: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """``later`` with a batch's ``set_doc`` and ``touch_run`` (and ``insert_run``, when the
    batch creates the run) as one statement on the run's row, in the place of the first.

    Each of them wrote a new version of the same row (the document is most of it): a
    created run was inserted, then updated twice in its own transaction.  The statements
    between them write other tables or other columns of the row, so the result is the
    same.  The merged insert keeps the separate statements' effect on a row that exists
    after all (``ON CONFLICT``: the document and the heartbeat are set on it).
    Returns the (name, params) list, with the merged statement as (SQL, params).
    """
    names = [name for name, _ in later]
    if "set_doc" not in names or "touch_run" not in names:
        return later
    doc_text, summaries, rid = later[names.index("set_doc")][1]
    t, _, touch_rid = later[names.index("touch_run")][1]
    if touch_rid != rid:
        return later
    out = [x for x in later if x[0] not in ("set_doc", "touch_run")]
    if "insert_run" in names:
        at = names.index("insert_run")
        row = later[at][1]
        if row[0] != rid:
            return later
        hb = row[6]
        heartbeat = hb if (0 if hb is None else hb) > t else t  # touch_run's rule
        merged = ("sql", (_INSERT_RUN_DOC, (*row[:6], heartbeat, doc_text, summaries, t, t)))
        return [merged if x[0] == "insert_run" else x for x in out]
    at = min(names.index("set_doc"), names.index("touch_run"))
    out.insert(at, ("sql", (_SET_DOC_TOUCH, (doc_text, summaries, t, t, rid))))
    return out


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
