"""Comparing two data set versions: files, and for tables their schema and statistics drift."""

from __future__ import annotations

from typing import Any, Mapping, Sequence, TypeGuard

from ..entities import FileEntry
from .entities import DataDiff, FileChange

# A numeric column "drifted" when its mean moved by more than this many standard deviations
# of the old version, or its null fraction by more than NULL_DRIFT (absolute).
MEAN_DRIFT_STD = 0.1
NULL_DRIFT = 0.01


def diff_entries(a_ref: str, b_ref: str, a: Sequence[FileEntry], b: Sequence[FileEntry],
                 a_stats: Mapping[str, Any], b_stats: Mapping[str, Any]) -> DataDiff:
    old = {e.path: e for e in a}
    new = {e.path: e for e in b}
    added = [e for p, e in new.items() if p not in old]
    removed = [e for p, e in old.items() if p not in new]
    changed = [(old[p], new[p]) for p in new if p in old and old[p].digest != new[p].digest]
    unchanged = sum(1 for p in new if p in old and old[p].digest == new[p].digest)
    # A removed file whose exact content reappears under a new path was moved.
    by_digest: dict[str, list[FileEntry]] = {}
    for e in removed:
        by_digest.setdefault(e.digest, []).append(e)
    moved, still_added = [], []
    for e in added:
        olds = by_digest.get(e.digest)
        if olds:
            moved.append((olds.pop(0).path, e.path))
        else:
            still_added.append(e)
    moved_from = {m[0] for m in moved}
    still_removed = [e for e in removed if e.path not in moved_from]
    tables: dict[str, Any] = {}
    for o, n in changed:
        sa, sb = a_stats.get(o.path), b_stats.get(n.path)
        if _is_table(sa) and _is_table(sb):
            tables[n.path] = table_drift(sa, sb)
    return DataDiff(
        a=a_ref, b=b_ref,
        added=tuple(FileChange(e.path, None, e.size, None, e.digest) for e in still_added),
        removed=tuple(FileChange(e.path, e.size, None, e.digest, None) for e in still_removed),
        changed=tuple(FileChange(n.path, o.size, n.size, o.digest, n.digest) for o, n in changed),
        moved=tuple(moved), unchanged=unchanged, tables=tables)


def _is_table(s: Any) -> TypeGuard[Mapping[str, Any]]:
    return isinstance(s, Mapping) and "columns_stats" in s


def table_drift(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Schema changes and per-column statistics drift from table stats ``a`` to ``b``."""
    sa, sb = a.get("schema", {}), b.get("schema", {})
    schema = {
        "added": {c: t for c, t in sb.items() if c not in sa},
        "removed": {c: t for c, t in sa.items() if c not in sb},
        "type_changed": {c: [sa[c], sb[c]] for c in sa if c in sb and sa[c] != sb[c]},
    }
    columns: dict[str, Any] = {}
    ca, cb = a.get("columns_stats", {}), b.get("columns_stats", {})
    for col in sa:
        if col not in sb:
            continue
        x, y = ca.get(col, {}), cb.get(col, {})
        d: dict[str, Any] = {}
        for key in ("null_fraction", "distinct", "min", "max", "mean", "std"):
            if x.get(key) != y.get(key):
                d[key] = [x.get(key), y.get(key)]
        drifted = False
        nf = abs((y.get("null_fraction") or 0.0) - (x.get("null_fraction") or 0.0))
        if nf > NULL_DRIFT:
            drifted = True
        mx, my, sx = x.get("mean"), y.get("mean"), x.get("std")
        if isinstance(mx, (int, float)) and isinstance(my, (int, float)):
            shift = (my - mx) / sx if sx else (0.0 if my == mx else float("inf"))
            d["mean_shift_std"] = shift if shift != float("inf") else None
            if abs(shift) > MEAN_DRIFT_STD:
                drifted = True
        if d:
            d["drifted"] = drifted
            columns[col] = d
    return {"rows": [a.get("rows"), b.get("rows")],
            "duplicate_rows": [a.get("duplicate_rows"), b.get("duplicate_rows")],
            "schema": schema, "columns": columns,
            "drifted": sorted(c for c, d in columns.items() if d.get("drifted"))}
