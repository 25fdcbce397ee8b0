"""Scored requests as rows of a pyarrow table: the prediction log's columnar layout.

One row per scored input row; a failed request (status != 200) is one row without inputs
or predictions, so that error rates can be computed from the log.  Columns::

    request_id  timestamp (ms, UTC)  model_version  arm  latency_ms  status
    input.<feature> ...              (a DataFrame's columns; input.0, input.1, ... for the
                                      columns of a 2-D array; input for a 1-D array; JSON
                                      text per row for anything deeper)
    prediction  or  prediction.<col> (a scalar per row for 1-D predictions, JSON text per
                                      row otherwise; a DataFrame's columns)

A value pyarrow cannot type (a lone surrogate, an object column of mixed types, a set)
turns its column into text for that segment: a bad value costs its column's type, never
the other records.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any, Iterable, Sequence

from .events import Scored

log = logging.getLogger("cairn.serving")

BASE = ("request_id", "timestamp", "model_version", "arm", "latency_ms", "status")
INPUT = "input"
PREDICTION = "prediction"

# One request as columns: (row count, {column name: n values}).
Part = tuple[int, dict[str, Any]]


def event_columns(event: Scored, exclude: frozenset[str] = frozenset()) -> Part:
    """``event``'s rows: how many, and its input and prediction columns (not the base ones)."""
    if event.status != 200:
        return 1, {}
    cols: dict[str, Any] = {}
    n = _length(event.inputs)
    if n is None:
        n = event.rows
    if event.inputs is not None:
        cols.update(_named(INPUT, event.inputs, exclude))
    if event.outputs is not None:
        cols.update(_named(PREDICTION, event.outputs, frozenset()))
    n = max(n, 1) if cols else 1  # a request that scored nothing still counts as one row
    kept = {}
    for name, values in cols.items():
        if _length(values) == n:
            kept[name] = values
        else:  # predictions that do not line up with the rows: the cell stays null
            log.debug("prediction log: %s of request %s has %s values for %d rows; not kept",
                      name, event.request_id, _length(values), n)
    return n, kept


def build_table(events: Sequence[Scored], parts: Sequence[Part]) -> Any:
    """One table from the events and their :func:`event_columns` (in the same order)."""
    import pyarrow as pa

    counts = [n for n, _ in parts]
    arrays: dict[str, Any] = {
        "request_id": pa.array(_repeat((_text(e.request_id) for e in events), counts),
                               pa.string()),
        "timestamp": pa.array(_repeat((int(e.started * 1000) for e in events), counts),
                              pa.timestamp("ms", tz="UTC")),
        "model_version": pa.array(_repeat((_text(e.version) for e in events), counts),
                                  pa.string()),
        "arm": pa.array(_repeat((_text(e.arm) for e in events), counts), pa.string()),
        "latency_ms": pa.array(_repeat((e.latency_s * 1000.0 for e in events), counts),
                               pa.float64()),
        "status": pa.array(_repeat((int(e.status) for e in events), counts), pa.int32()),
    }
    names: dict[str, None] = {}  # insertion-ordered: inputs as first seen, then predictions
    for _, cols in parts:
        names.update(dict.fromkeys(c for c in cols if c.startswith(INPUT)))
    for _, cols in parts:
        names.update(dict.fromkeys(c for c in cols if c.startswith(PREDICTION)))
    for name in names:
        arrays[name] = _column([(n, cols.get(name)) for n, cols in parts])
    return pa.table(arrays)


def as_text_table(table: Any) -> Any:
    """``table`` with every input and prediction column as text: the last resort when a
    segment will not write as typed."""
    import pyarrow as pa

    return pa.table({name: table[name] if name in BASE else
                      text_array(table[name].to_pylist()) for name in table.column_names})


# -- one request's values -----------------------------------------------------------------

def _named(prefix: str, value: Any, exclude: frozenset[str]) -> dict[str, Any]:
    """``value`` (a DataFrame, Series, array, tensor, dict or list) as named columns."""
    import numpy as np

    pd = _pandas()
    if pd is not None and isinstance(value, pd.DataFrame):
        return _frame_columns(prefix, value, exclude)
    if pd is not None and isinstance(value, pd.Series):
        return {prefix: value}
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if str(key) in exclude:
                continue
            out.update(_named(f"{prefix}.{_text(str(key))}", item, frozenset()))
        return out
    if isinstance(value, (list, tuple)):
        try:
            array = np.asarray(value)
        except (ValueError, TypeError):  # ragged: one JSON text per element
            return {prefix: [_json(v) for v in value]}
        value = array if array.dtype != object else value
        if not isinstance(value, np.ndarray):
            return {prefix: [v if _is_scalar(v) else _json(v) for v in value]}
    if isinstance(value, np.ndarray):
        if value.ndim == 1:
            return {prefix: value}
        if value.ndim == 2 and prefix == INPUT:
            return {f"{prefix}.{j}": value[:, j] for j in range(value.shape[1])
                    if str(j) not in exclude}
        if value.ndim == 0:
            return {prefix: [value.item()]}
        return {prefix: [_json(row) for row in value]}
    return {prefix: [value if _is_scalar(value) else _json(value)]}


def _frame_columns(prefix: str, frame: Any, exclude: frozenset[str]) -> dict[str, Any]:
    """A DataFrame's columns by name; of two whose names print alike (1 and "1") the second
    is kept as ``name#2``."""
    out: dict[str, Any] = {}
    dtypes = set(frame.dtypes)
    if len(dtypes) == 1 and next(iter(dtypes)).kind in "biuf" and frame.columns.is_unique:
        # One numeric dtype (a fitted numeric frame): its values as one array, sliced per
        # column, instead of a pandas Series built for every column of every request.
        values = frame.to_numpy()
        for j, column in enumerate(frame.columns):
            if str(column) not in exclude:
                name = f"{prefix}.{_text(str(column))}"
                if name in out:
                    break  # two names that print alike: the general path below
                out[name] = values[:, j]
        else:
            return out
        out = {}
    for column, series in frame.items():  # items(): far cheaper per column than iloc
        if str(column) in exclude:
            continue
        name = key = f"{prefix}.{_text(str(column))}"
        k = 1
        while key in out:
            k += 1
            key = f"{name}#{k}"
        out[key] = series
    return out


def _length(value: Any) -> int | None:
    if value is None:
        return None
    shape = getattr(value, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) else 1
    if isinstance(value, dict):
        lengths = {_length(v) for v in value.values()}
        return lengths.pop() if len(lengths) == 1 else None
    if isinstance(value, (list, tuple)):
        return len(value)
    return None


# -- a column over many requests ----------------------------------------------------------

def _column(chunks: list[tuple[int, Any]]) -> Any:
    """One column from each request's values (None: the request has no such column)."""
    import numpy as np
    import pyarrow as pa

    present = [v for _, v in chunks if v is not None]
    # The common case, a column of one numeric dtype in every request: one conversion.
    if len(present) == len(chunks) and all(
            isinstance(getattr(v, "dtype", None), np.dtype) and v.dtype == present[0].dtype
            and v.dtype.kind in "biuf" for v in present):
        try:
            return pa.array(np.concatenate([np.asarray(v) for v in present]))
        except (pa.ArrowException, ValueError, TypeError):
            pass
    arrays = [None if v is None else _typed(v) for _, v in chunks]
    types = {a.type for a in arrays if a is not None and a.type != pa.null()}
    target = _common(types)
    if target is not None:
        try:
            return pa.concat_arrays([pa.nulls(n, target) if a is None else a.cast(target)
                                     for (n, _), a in zip(chunks, arrays)])
        except (pa.ArrowException, ValueError, TypeError):
            pass
    text: list[Any] = []
    for n, v in chunks:
        text.extend([None] * n if v is None else _values(v))
    return text_array(text)


def _typed(values: Any) -> Any:
    """``values`` as a pyarrow array, or as text when pyarrow cannot type them."""
    import pyarrow as pa

    try:
        array = pa.array(values)
        if pa.types.is_large_string(array.type):
            array = array.cast(pa.string())  # pandas' str: one string type across requests
        return array
    except (pa.ArrowException, ValueError, TypeError, UnicodeError, OverflowError):
        return text_array(_values(values))


def _common(types: set) -> Any:
    import pyarrow as pa

    if not types:
        return pa.null()
    if len(types) == 1:
        return next(iter(types))
    try:
        schema = pa.unify_schemas([pa.schema([("c", t)]) for t in types],
                                  promote_options="permissive")
        return schema.field("c").type
    except (pa.ArrowException, ValueError, TypeError):
        return None


def _values(values: Any) -> list[Any]:
    tolist = getattr(values, "tolist", None)
    return list(tolist() if callable(tolist) else values)


def text_array(values: Iterable[Any]) -> Any:
    """Any values as a string column: text as itself (lone surrogates escaped), null and NaN
    as null, the rest as JSON."""
    import pyarrow as pa

    out: list[str | None] = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        elif isinstance(v, str):
            out.append(_text(v))
        else:
            out.append(_json(v))
    return pa.array(out, pa.string())


def _json(value: Any) -> str:
    from .app import jsonable

    try:
        value = jsonable(value)
    except Exception:  # noqa: BLE001 (a value jsonable cannot walk: its text below)
        pass
    # ensure_ascii: a lone surrogate becomes the escape "\ud800", which UTF-8 can hold.
    return json.dumps(value, default=str, ensure_ascii=True)


def _text(value: str) -> str:
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:  # a lone surrogate (JSON's "\ud800"): kept as its escape
        return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _repeat(values: Iterable[Any], counts: Sequence[int]) -> list[Any]:
    out: list[Any] = []
    for value, n in zip(values, counts):
        out.extend([value] * n)
    return out


def _pandas() -> Any:
    import sys

    return sys.modules.get("pandas")
