"""Expectations: quality checks over a version's table statistics that can fail an add.

An expectation is a short sentence, the same in Python and on the command line::

    label not null              no null in column label
    id unique                   no two rows share an id (and none is null)
    amount >= 0                 every value (the column's min) is >= 0; also > < <= ==
    amount between 0 and 100    min >= 0 and max <= 100
    nulls(amount) <= 0.01       at most 1% of amount is null
    rows >= 1000                the table has at least 1000 rows (also > < <= ==)
    no duplicate rows
    has column label

Each is checked on every tabular file of the version; a column check fails when no
tabular file has the column.  All are evaluated before anything is recorded, and
the add fails with one report listing each failure.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from ..errors import InvalidArgument

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq,
}
_NUM = r"(-?[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)"
_COL = r"([A-Za-z_][A-Za-z0-9_.\- ]*?|`[^`]+`)"
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("not_null", re.compile(rf"{_COL}\s+(?:is\s+)?not\s+null", re.I)),
    ("unique", re.compile(rf"{_COL}\s+(?:is\s+)?unique", re.I)),
    ("no_duplicates", re.compile(r"no\s+duplicate(?:\s+rows)?", re.I)),
    ("has_column", re.compile(rf"has\s+column\s+{_COL}", re.I)),
    ("rows", re.compile(rf"rows\s*(>=|<=|==|>|<)\s*{_NUM}", re.I)),
    ("null_fraction", re.compile(rf"nulls\(\s*{_COL}\s*\)\s*(>=|<=|==|>|<)\s*{_NUM}", re.I)),
    ("between", re.compile(rf"{_COL}\s+between\s+{_NUM}\s+and\s+{_NUM}", re.I)),
    ("compare", re.compile(rf"{_COL}\s*(>=|<=|==|>|<)\s*{_NUM}", re.I)),
]


class QualityCheckFailed(InvalidArgument):
    """Expectations failed; ``report`` lists every result, ``message`` says what failed."""

    def __init__(self, message: str, report: Sequence[Mapping[str, Any]], **details: Any) -> None:
        super().__init__(message, **details)
        self.report = list(report)


@dataclass(frozen=True, slots=True)
class Expectation:
    text: str
    kind: str
    column: str | None = None
    op: str | None = None
    value: float | None = None
    upper: float | None = None

    @classmethod
    def parse(cls, text: str) -> "Expectation":
        if not isinstance(text, str):
            raise InvalidArgument(f"an expectation must be a string, got {text!r}")
        t = " ".join(text.split())
        for kind, pat in _PATTERNS:
            m = pat.fullmatch(t)
            if not m:
                continue
            g = m.groups()
            if kind in ("not_null", "unique", "has_column"):
                return cls(t, kind, _col(g[0]))
            if kind == "no_duplicates":
                return cls(t, kind)
            if kind == "rows":
                return cls(t, kind, op=g[0], value=float(g[1]))
            if kind == "null_fraction":
                return cls(t, kind, _col(g[0]), g[1], float(g[2]))
            if kind == "between":
                return cls(t, kind, _col(g[0]), value=float(g[1]), upper=float(g[2]))
            return cls(t, kind, _col(g[0]), g[1], float(g[2]))
        raise InvalidArgument(
            f"cannot read expectation {text!r}; write e.g. 'label not null', 'id unique', "
            "'amount >= 0', 'amount between 0 and 100', 'nulls(amount) <= 0.01', "
            "'rows >= 1000', 'no duplicate rows' or 'has column label'")

    def check(self, path: str, st: Mapping[str, Any]) -> tuple[bool, str] | None:
        """(passed, detail) for one file's stats; None when the check does not apply to it."""
        rows = st.get("rows", 0)
        if self.kind == "rows":
            return _OPS[self.op](rows, self.value), f"{rows} rows"  # type: ignore[index]
        if self.kind == "no_duplicates":
            dup = st.get("duplicate_rows")
            if dup is None:
                return False, "duplicates could not be counted"
            return dup == 0, f"{dup} duplicate row(s)"
        cols = st.get("columns_stats", {})
        c = cols.get(self.column)
        if c is None:
            return None
        if self.kind == "has_column":
            return True, "present"
        if self.kind == "not_null":
            return c["nulls"] == 0, f"{c['nulls']} null(s) in {self.column!r} " \
                                    f"({100 * c['null_fraction']:.2g}%)"
        if self.kind == "unique":
            distinct = c.get("distinct")
            ok = c["nulls"] == 0 and distinct == rows
            return ok, f"{distinct} distinct value(s) in {rows} rows, {c['nulls']} null(s)"
        if self.kind == "null_fraction":
            f = c["null_fraction"]
            return _OPS[self.op](f, self.value), f"null fraction {f:.4g}"  # type: ignore[index]
        lo, hi = c.get("min"), c.get("max")
        if lo is None or hi is None:
            if rows == c["nulls"]:
                return True, "no values"
            return False, f"{self.column!r} has no min/max (type {c['type']})"
        if not isinstance(lo, (int, float)) or isinstance(lo, bool):
            return False, f"{self.column!r} is not numeric (type {c['type']})"
        if self.kind == "between":
            return lo >= self.value and hi <= self.upper, f"min {lo}, max {hi}"  # type: ignore[operator]
        op = _OPS[self.op]  # type: ignore[index]
        # Every value v satisfies `v op x` iff the extreme that could break it does.
        extreme = hi if self.op in ("<", "<=") else lo
        if self.op == "==":
            return lo == hi == self.value, f"min {lo}, max {hi}"
        return op(extreme, self.value), f"{'max' if extreme is hi else 'min'} is {extreme}"


def _col(text: str) -> str:
    return text[1:-1] if text.startswith("`") else text.strip()


def parse_all(texts: Sequence[str] | str | None) -> list[Expectation]:
    if not texts:
        return []
    if isinstance(texts, str):
        texts = [texts]
    return [Expectation.parse(t) for t in texts]


def evaluate(expectations: Sequence[Expectation],
             stats: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One result per (expectation, file) it applies to, plus a failure for unmatched columns."""
    results = []
    tables = {p: s for p, s in stats.items() if isinstance(s, Mapping) and "rows" in s}
    for e in expectations:
        applied = False
        for path, st in sorted(tables.items()):
            outcome = e.check(path, st)
            if outcome is None:
                continue
            applied = True
            results.append({"expectation": e.text, "file": path, "passed": bool(outcome[0]),
                            "detail": outcome[1]})
        if not applied:
            detail = ("no tabular file in this version" if not tables
                      else f"no tabular file has a column {e.column!r}")
            results.append({"expectation": e.text, "file": None, "passed": False,
                            "detail": detail})
    return results


def failure_report(name: str, results: Sequence[Mapping[str, Any]]) -> str:
    failed = [r for r in results if not r["passed"]]
    lines = [f"data set {name!r} was not recorded: {len(failed)} of {len(results)} "
             "expectation check(s) failed"]
    for r in results:
        mark = "PASS" if r["passed"] else "FAIL"
        where = f" [{r['file']}]" if r["file"] else ""
        lines.append(f"  {mark}  {r['expectation']}{where}: {r['detail']}")
    return "\n".join(lines)
