"""Compile a parsed filter and order keys into one SQLAlchemy Core ``SELECT`` over the index.

The statement is dialect-neutral: the few places where SQLite and PostgreSQL differ
(case-sensitive LIKE, numeric params, byte-order string sorting) are small custom
elements rendered per dialect below, so the same statement runs on either database.
Its semantics equal :mod:`cairn.search.evaluate` exactly; ``tests/test_search.py``
checks that with hypothesis.
"""

from __future__ import annotations

import operator
from types import ModuleType
from typing import Any, Iterable, cast

from sqlalchemy import (
    BigInteger, Boolean, Float, String, and_, case, exists, literal, or_, select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.sql.functions import FunctionElement

from cairn.search.evaluate import MAX_NUMERIC_PARAM_LENGTH, TIE_BREAKERS, ascii_lower
from cairn.search.parser import (
    ATTRIBUTE_KINDS, ATTRIBUTES, METRICS, PARAMS, TAGS, Clause, Filter, OrderKey,
)

_RUN_COLUMNS = {"run_id": "id", "run_name": "name"}  # attribute -> runs column, when they differ


# ---------------------------------------------------------------------------------------
# Dialect-specific pieces

class _number_text(FunctionElement):
    """A numeric literal sent as its shortest decimal text and converted by the database.

    Params are converted from text by the database (SQLite's conversion is not always
    correctly rounded), so the literal goes through the same conversion: a param and a
    literal written alike always compare equal.  PostgreSQL converts both exactly (NUMERIC).
    """

    type = Float()
    name = "cairn_number_text"
    inherit_cache = True


@compiles(_number_text)
def _number_text_sqlite(element: _number_text, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(list(element.clauses)[0], **kw)} AS REAL)"


@compiles(_number_text, "postgresql")
def _number_text_pg(element: _number_text, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(list(element.clauses)[0], **kw)} AS NUMERIC)"


class _param_number(FunctionElement):
    """``CASE WHEN <value is a decimal literal> THEN <value as a number> END``."""

    type = Float()
    name = "cairn_param_number"
    inherit_cache = True


@compiles(_param_number)
def _param_number_sqlite(element: _param_number, compiler: Any, **kw: Any) -> str:
    # SQLite has no regular expressions, but it has type affinity: compared with a REAL
    # expression, a TEXT column value is converted to a number exactly when the whole text
    # is a well-formed number (https://sqlite.org/datatype3.html, "Type Conversions Prior
    # To Comparison"); otherwise it stays text, and text sorts after every number.  So
    # "v <= CAST('1e999' AS REAL)" (+infinity) holds exactly for numeric texts.  The other
    # tests drop what SQLite accepts and evaluate.NUMERIC_PARAM does not: surrounding
    # whitespace (every ASCII space sorts before '+', and a number starts with a sign, digit
    # or '.' and ends with a digit or '.') and exponents of 5 digits or more (a number that
    # has an 'e' and ends with 5 digits).  No Python callback; about 1 µs a row.
    v = compiler.process(list(element.clauses)[0], **kw)
    check = (f"{v} <= CAST('1e999' AS REAL)"
             f" AND substr({v},1,1) >= '+' AND substr({v},-1) >= '.'"
             f" AND (instr({v},'e') + instr({v},'E') = 0"
             f" OR substr({v},-5) NOT GLOB '[0-9][0-9][0-9][0-9][0-9]')"
             f" AND length({v}) <= {MAX_NUMERIC_PARAM_LENGTH}")
    return f"(CASE WHEN {check} THEN CAST({v} AS REAL) END)"


@compiles(_param_number, "postgresql")
def _param_number_pg(element: _param_number, compiler: Any, **kw: Any) -> str:
    v = compiler.process(list(element.clauses)[0], **kw)
    rx = "^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]{1,4})?$"
    return (f"(CASE WHEN length({v}) <= {MAX_NUMERIC_PARAM_LENGTH} AND {v} ~ '{rx}'"
            f" THEN CAST({v} AS NUMERIC) END)")


class _like(FunctionElement):
    """Case-sensitive LIKE with ``%``/``_`` and no escape character: (column, glob, like)."""

    type = Boolean()
    name = "cairn_like"
    inherit_cache = True


class _ilike(_like):
    """ILIKE folding ASCII letters only, on every backend: (column, glob, like), lowered."""

    name = "cairn_ilike"
    inherit_cache = True


@compiles(_like)
def _like_sqlite(element: _like, compiler: Any, **kw: Any) -> str:
    col, glob, _ = (compiler.process(c, **kw) for c in element.clauses)
    if isinstance(element, _ilike):
        col = f"lower({col})"  # ASCII-only without the ICU extension, like ascii_lower
    return f"({col} GLOB {glob})"


_UPPER, _LOWER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"


@compiles(_like, "postgresql")
def _like_pg(element: _like, compiler: Any, **kw: Any) -> str:
    clauses = list(element.clauses)
    col, like = compiler.process(clauses[0], **kw), compiler.process(clauses[2], **kw)
    if isinstance(element, _ilike):
        col = f"translate({col}, '{_UPPER}', '{_LOWER}')"
    return f"({col} LIKE {like} ESCAPE '')"


def _glob_pattern(pattern: str) -> str:
    out = []
    for ch in pattern:
        out.append("*" if ch == "%" else "?" if ch == "_" else f"[{ch}]" if ch in "*?[" else ch)
    return "".join(out)


def _like_expr(col: Any, pattern: str, case_insensitive: bool) -> ColumnElement:
    if case_insensitive:
        pattern = ascii_lower(pattern)
    element = _ilike if case_insensitive else _like
    return element(col, literal(_glob_pattern(pattern), String()), literal(pattern, String()))


class _bytewise(FunctionElement):
    """A string sort key in code-point order: SQLite's default; ``COLLATE "C"`` on PostgreSQL."""

    type = String()
    name = "cairn_bytewise"
    inherit_cache = True


@compiles(_bytewise)
def _bytewise_default(element: _bytewise, compiler: Any, **kw: Any) -> str:
    return compiler.process(list(element.clauses)[0], **kw)


@compiles(_bytewise, "postgresql")
def _bytewise_pg(element: _bytewise, compiler: Any, **kw: Any) -> str:
    return f'({compiler.process(list(element.clauses)[0], **kw)} COLLATE "C")'


class _unindexed(FunctionElement):
    """A column SQLite must not drive the join from: ``+col`` (its documented idiom)."""

    type = Float()
    name = "cairn_unindexed"
    inherit_cache = True


@compiles(_unindexed)
def _unindexed_sqlite(element: _unindexed, compiler: Any, **kw: Any) -> str:
    return f"(+{compiler.process(list(element.clauses)[0], **kw)})"


@compiles(_unindexed, "postgresql")
def _unindexed_pg(element: _unindexed, compiler: Any, **kw: Any) -> str:
    return compiler.process(list(element.clauses)[0], **kw)  # its planner has histograms


def _has_anchor(flt: Filter) -> bool:
    """Whether a clause is an equality that an index on (key, value) answers directly.

    Without ANALYZE statistics (the index is never analysed) SQLite prefers to start from
    a metric range (``metrics.acc > 0.5``: typically half the runs) over a param or tag
    equality (typically a few percent), which made the benchmark search 3x slower.  When
    the filter has such an equality, metric ranges are compared through ``+value`` so the
    planner starts from the equality; a filter of ranges alone still uses the index.
    """
    return any(c.op in ("=", "IN") and (c.entity in (METRICS, TAGS)
                                         or (c.entity == PARAMS and not c.numeric))
               for c in flt)


# ---------------------------------------------------------------------------------------
# Clauses

def _literal(value: Any, numeric_param: bool = False) -> Any:
    if isinstance(value, str):
        return literal(value, String())
    if numeric_param:
        return _number_text(literal(repr(float(value)), String()))
    if isinstance(value, int) and -2**63 <= value < 2**63:
        return literal(value, BigInteger())
    return literal(float(value), Float())


_OPERATORS = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
              ">": operator.gt, ">=": operator.ge}


def _compare(expr: Any, clause: Clause, numeric_param: bool = False) -> ColumnElement:
    op, value = clause.op, clause.value
    if op in ("LIKE", "ILIKE"):
        return _like_expr(expr, cast(str, value), op == "ILIKE")
    if op in ("IN", "NOT IN"):
        items = [_literal(v, numeric_param) for v in cast(tuple, value)]
        return expr.in_(items) if op == "IN" else expr.not_in(items)
    return _OPERATORS[op](expr, _literal(value, numeric_param))


def _attribute_column(runs: Any, key: str) -> Any:
    if key not in ATTRIBUTE_KINDS:
        raise ValueError(f"unknown attribute {key!r}")
    return runs.c[_RUN_COLUMNS.get(key, key)]


def _table_for(tables: ModuleType, entity: str) -> Any:
    return {METRICS: tables.latest_metrics, PARAMS: tables.params}.get(entity, tables.tags)


def compile_query(
    experiment_ids: Iterable[str] | None,
    flt: Filter,
    order: Iterable[OrderKey],
    tables: ModuleType,
    *,
    lifecycle: str | None = "active",
    limit: int | None = None,
    offset: int = 0,
) -> Select:
    """A ``SELECT`` of the ``runs`` columns (``id`` first) of the matching runs, in order.

    ``experiment_ids`` None means every experiment; ``lifecycle`` None means every
    lifecycle.  ``tables`` is the module holding the index tables (``runs``, ``params``,
    ``tags``, ``latest_metrics``).  Each clause on a metric, param or tag is an inner join
    on the table's (run_id, key) primary key, so a run appears at most once; each sort key
    on them is a left outer join.  ``limit``/``offset`` page the result.
    """
    runs = tables.runs
    source: Any = runs
    where: list[ColumnElement] = []
    if experiment_ids is not None:
        where.append(runs.c.experiment_id.in_([str(e) for e in experiment_ids]))
    if lifecycle is not None:
        where.append(runs.c.lifecycle == lifecycle)

    anchored = _has_anchor(flt)
    filtered: dict[str, Any] = {}  # metric key -> an inner join that holds its non-NaN value
    for clause in flt:
        if clause.entity == ATTRIBUTES:
            col = _attribute_column(runs, clause.key)
            if clause.op == "IS NULL":
                where.append(col.is_(None))
            elif clause.op == "IS NOT NULL":
                where.append(col.is_not(None))
            else:
                where.append(_compare(col, clause))
            continue
        table = _table_for(tables, clause.entity)
        if clause.op == "IS NULL":
            where.append(~exists().where(table.c.run_id == runs.c.id, table.c.key == clause.key))
            continue
        t = table.alias()
        on = [t.c.run_id == runs.c.id, t.c.key == clause.key]
        if clause.op != "IS NOT NULL":
            if clause.entity == METRICS:
                ranged = anchored and clause.op in ("<", "<=", ">", ">=")
                value = _unindexed(t.c.value) if ranged else t.c.value
                on += [t.c.is_nan == 0, _compare(value, clause)]
                filtered.setdefault(clause.key, t)
            elif clause.entity == PARAMS and clause.numeric:
                on.append(_compare(_param_number(t.c.value), clause, numeric_param=True))
            else:
                on.append(_compare(t.c.value, clause))
        source = source.join(t, and_(*on))

    order_by: list[Any] = []
    for k in (*order, *TIE_BREAKERS):
        if k.entity == ATTRIBUTES:
            col = _attribute_column(runs, k.key)
            value = col if ATTRIBUTE_KINDS[k.key] == "number" else _bytewise(col)
            if col.nullable:
                order_by.append(case((col.is_(None), 1), else_=0))
        elif k.entity == METRICS and k.key in filtered:
            # A clause already joined this metric and kept only runs with a non-NaN value:
            # sort on that join.  Through ``+value`` on SQLite, so that the planner still
            # starts from the most selective clause instead of walking the value index in
            # sort order (3x slower on the benchmark search); one join less is 30% faster.
            value = _unindexed(filtered[k.key].c.value)
        else:
            t = _table_for(tables, k.entity).alias()
            source = source.outerjoin(t, and_(t.c.run_id == runs.c.id, t.c.key == k.key))
            if k.entity == METRICS:
                order_by.append(case((t.c.run_id.is_(None), 2),
                                     (or_(t.c.is_nan != 0, t.c.value.is_(None)), 1), else_=0))
                value = t.c.value
            else:
                order_by.append(case((t.c.run_id.is_(None), 1), else_=0))
                value = _bytewise(t.c.value)
        order_by.append(value.asc() if k.ascending else value.desc())

    stmt = select(runs).select_from(source).where(*where).order_by(*order_by)
    if limit is not None:
        stmt = stmt.limit(limit)
    if offset:
        stmt = stmt.offset(offset)
    return stmt
