"""Pure-Python evaluation of filters and order keys over :class:`cairn.entities.Run` values.

This is the reference semantics: the in-memory store uses it directly and the SQL
compiler (``sql.py``) is tested against it.  The rules (documented in ``docs/search.md``):

* a run that lacks the key never matches a comparison, ``!=`` and ``NOT IN`` included
  (only ``IS NULL`` matches it); a NaN metric never matches a comparison either;
* a number compared with a param compares numerically; a param value that is not a
  decimal number (see :func:`param_number`) never matches such a comparison;
* ``LIKE`` is case-sensitive, ``ILIKE`` folds ASCII letters only; ``%`` is any run of
  characters, ``_`` exactly one character, and there is no escape character;
* sorting puts runs that lack a sort key last in both directions (NaN metric values
  just before them), then breaks ties by ``start_time`` descending and run id ascending.
"""

from __future__ import annotations

import functools
import math
import operator
import re
from typing import Any, Callable, Iterable

from cairn.entities import Run
from cairn.search.parser import (
    ATTRIBUTE_KINDS, ATTRIBUTES, METRICS, PARAMS, TAGS, Clause, Filter, OrderKey,
)

# A param value counts as a number when it is a plain decimal literal, at most this long,
# with an exponent of at most 4 digits (so PostgreSQL's NUMERIC can always hold it).
MAX_NUMERIC_PARAM_LENGTH = 1000
NUMERIC_PARAM = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")

_MISSING = object()

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
    "IN": lambda a, b: a in b, "NOT IN": lambda a, b: a not in b,
}

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """Lower-case ASCII letters only (what ILIKE folds on every backend)."""
    return text.translate(_ASCII_LOWER)


def param_number(value: str) -> float | None:
    """The numeric value of a param for numeric comparisons, or None when it is not a number."""
    if len(value) <= MAX_NUMERIC_PARAM_LENGTH and NUMERIC_PARAM.fullmatch(value):
        return float(value)
    return None


@functools.lru_cache(maxsize=256)
def like_regex(pattern: str, case_insensitive: bool = False) -> re.Pattern[str]:
    """The compiled regex for a LIKE pattern: ``%`` → any run, ``_`` → one character."""
    if case_insensitive:
        pattern = ascii_lower(pattern)
    parts = [".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern]
    return re.compile("".join(parts), re.DOTALL)


def _attribute(run: Run, key: str) -> Any:
    if key == "run_id":
        return run.id
    if key == "run_name":
        return run.name
    if key == "status":
        return getattr(run.status, "value", run.status)
    return getattr(run, key)


def field_value(run: Run, entity: str, key: str) -> Any:
    """The value a clause or order key on ``entity.key`` sees, or ``None`` when missing."""
    if entity == METRICS:
        return run.metrics.get(key)
    if entity == PARAMS:
        return run.params.get(key)
    if entity == TAGS:
        return run.tags.get(key)
    return _attribute(run, key)


def _predicate(clause: Clause) -> Callable[[Run], bool]:
    entity, key, op, value = clause.entity, clause.key, clause.op, clause.value

    def get(run: Run) -> Any:
        return field_value(run, entity, key)

    if op == "IS NULL":
        return lambda run: get(run) is None
    if op == "IS NOT NULL":
        return lambda run: get(run) is not None

    if op in ("LIKE", "ILIKE"):
        folded = op == "ILIKE"
        rx = like_regex(value, folded)

        def like(run: Run) -> bool:
            v = get(run)
            if v is None:
                return False
            return rx.fullmatch(ascii_lower(v) if folded else v) is not None
        return like

    compare = _COMPARE[op]
    operand: Any = frozenset(value) if isinstance(value, tuple) else value
    if clause.numeric and entity == PARAMS:
        def as_number(run: Run) -> float | None:
            v = get(run)
            return None if v is None else param_number(v)
        getter = as_number
    else:
        getter = get

    def check(run: Run) -> bool:
        v = getter(run)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return False
        return compare(v, operand)
    return check


@functools.lru_cache(maxsize=128)
def _predicates(flt: Filter) -> tuple[Callable[[Run], bool], ...]:
    return tuple(_predicate(c) for c in flt)


def matches(run: Run, flt: Filter) -> bool:
    """True when ``run`` satisfies every clause of ``flt`` (an empty filter matches all)."""
    return all(p(run) for p in _predicates(tuple(flt)))


def _sort_on(runs: list[Run], entity: str, key: str, ascending: bool) -> list[Run]:
    """One stable pass: present values sorted, then NaN, then missing, in both directions."""
    present: list[tuple[Any, Run]] = []
    nan: list[Run] = []
    missing: list[Run] = []
    for run in runs:
        v = field_value(run, entity, key)
        if v is None:
            missing.append(run)
        elif isinstance(v, float) and math.isnan(v):
            nan.append(run)
        else:
            present.append((v, run))
    present.sort(key=lambda pair: pair[0], reverse=not ascending)  # stable both ways
    return [run for _, run in present] + nan + missing


TIE_BREAKERS = (OrderKey(ATTRIBUTES, "start_time", False), OrderKey(ATTRIBUTES, "run_id", True))


def sort_runs(runs: Iterable[Run], order: Iterable[OrderKey] = ()) -> list[Run]:
    """Runs sorted by ``order``, then by start_time descending and run id ascending."""
    result = list(runs)
    for k in reversed((*order, *TIE_BREAKERS)):
        if k.entity == ATTRIBUTES and k.key not in ATTRIBUTE_KINDS:
            raise ValueError(f"unknown attribute {k.key!r}")
        result = _sort_on(result, k.entity, k.key, k.ascending)
    return result
