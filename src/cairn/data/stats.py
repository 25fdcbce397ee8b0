"""Statistics of tabular files (CSV, TSV, Parquet), stored with each data set version.

Needs pyarrow (``pip install 'cairn[data]'``); imported only when a version has a
tabular file.  For each file::

    {"format": "csv", "rows": 1000, "columns": 3, "duplicate_rows": 2, "digest": "…",
     "schema": {"amount": "double", ...},
     "columns_stats": {"amount": {"type": "double", "nulls": 0, "null_fraction": 0.0,
                                  "distinct": 981, "min": 0.5, "max": 99.1,
                                  "mean": 50.2, "std": 28.7}, ...}}

``distinct`` is exact (Arrow's hash-based count); ``mean``/``std`` only for numbers.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from types import ModuleType
from typing import Any

from ..errors import InvalidArgument, MissingDependency

TABULAR_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}
# Files above this are not loaded for statistics (they are still versioned).
MAX_STATS_BYTES = 2 * 1024 ** 3


def tabular_format(path: str) -> str | None:
    lowered = path.lower()
    for suffix, fmt in TABULAR_SUFFIXES.items():
        if lowered.endswith(suffix):
            return fmt
    return None


def have_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def require_pyarrow(what: str) -> ModuleType:
    try:
        import pyarrow
    except ImportError:
        raise MissingDependency(f"{what} needs pyarrow: pip install 'cairn[data]'") from None
    return pyarrow


def read_table(data: bytes, fmt: str, path: str = "") -> Any:
    """A ``pyarrow.Table`` from a file's bytes; InvalidArgument if it does not parse."""
    pa = require_pyarrow("reading tables")
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(pa.BufferReader(data))
        import pyarrow.csv as pcsv

        parse = pcsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",")
        # An empty field is a missing value in text columns too (as pandas reads it).
        convert = pcsv.ConvertOptions(strings_can_be_null=True)
        return pcsv.read_csv(pa.BufferReader(data), parse_options=parse, convert_options=convert)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise InvalidArgument(f"{path}: cannot read as {fmt}: {exc}", path=path) from None


def write_table(table: Any, fmt: str) -> bytes:
    pa = require_pyarrow("writing tables")
    sink = io.BytesIO()
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, sink)
    else:
        import pyarrow.csv as pcsv

        opts = pcsv.WriteOptions(delimiter="\t" if fmt == "tsv" else ",")
        pcsv.write_csv(table, sink, write_options=opts)
    del pa
    return sink.getvalue()


def table_stats(table: Any, fmt: str, digest: str = "") -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = table.num_rows
    cols: dict[str, Any] = {}
    for name, column in zip(table.column_names, table.columns):
        t = column.type
        nulls = column.null_count
        s: dict[str, Any] = {"type": str(t), "nulls": nulls,
                             "null_fraction": (nulls / rows) if rows else 0.0}
        try:
            s["distinct"] = pc.count_distinct(column, mode="only_valid").as_py()
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
            s["distinct"] = None
        numeric = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
        orderable = numeric or pa.types.is_string(t) or pa.types.is_large_string(t) \
            or pa.types.is_temporal(t) or pa.types.is_boolean(t)
        if orderable and rows > nulls:
            try:
                mm = pc.min_max(column)
                s["min"] = _json(mm["min"].as_py())
                s["max"] = _json(mm["max"].as_py())
            except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
                pass
        if numeric and rows > nulls:
            s["mean"] = _json(pc.mean(column).as_py())
            s["std"] = _json(pc.stddev(column).as_py()) if rows - nulls > 1 else 0.0
        cols[name] = s
    return {"format": fmt, "digest": digest, "rows": rows, "columns": len(cols),
            "schema": {n: c["type"] for n, c in cols.items()},
            "duplicate_rows": _duplicates(table), "columns_stats": cols}


def _duplicates(table: Any) -> int | None:
    import pyarrow as pa

    if table.num_rows == 0 or table.num_columns == 0:
        return 0
    try:
        unique = table.group_by(table.column_names).aggregate([]).num_rows
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
        return None  # e.g. list or struct columns cannot be grouped
    return table.num_rows - unique


def _json(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "is_finite"):  # Decimal
        return float(value)
    return value
