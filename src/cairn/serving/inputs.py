"""Request bodies of MLflow's scoring protocol, parsed into data frames and arrays.

JSON bodies hold exactly one of four keys (and optionally ``params``, accepted and
ignored as ``mlflow models serve`` does for a model that takes none):

* ``dataframe_split``: ``{"columns": [...], "data": [[...], ...]}`` (``index`` optional)
* ``dataframe_records``: ``[{"col": value, ...}, ...]``
* ``instances``: a list of rows, or of ``{"name": value}`` records
* ``inputs``: an array (any nesting), or ``{"name": [values...]}`` columns

``text/csv`` bodies are a data frame with a header row.  The result is a
:class:`Parsed`: a ``pandas.DataFrame`` for tabular formats, a ``numpy`` array or a
dict of arrays for ``instances``/``inputs``.  Nothing here knows the model's signature;
:mod:`cairn.serving.validate` fits what was parsed to it.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
from dataclasses import dataclass
from typing import Any

from .errors import MAX_PROBLEMS, RequestError, bad_request, listed

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
CONTENT_TYPES = ("application/json", "text/csv")
# The most columns (or named inputs) a request may hold: past this, parsing and checking cost
# minutes of CPU, and no registered model takes that many named columns.
MAX_COLUMNS = 10_000


@dataclass(frozen=True, slots=True)
class Parsed:
    """What a body said: ``value`` in ``format`` (one of :data:`FORMATS` or ``csv``)."""

    format: str
    value: Any


def pandas() -> Any:
    """pandas, imported on first use (it has no type stubs here, so it is typed Any)."""
    return importlib.import_module("pandas")


def content_type(header: str | None) -> str:
    """The media type of a Content-Type header; 415 for one that is not JSON or CSV."""
    parts = [p.strip() for p in (header or "").split(";")]
    mime = parts[0].lower()
    # Parameter names are case-insensitive (RFC 9110): Charset=latin-1 is charset=latin-1.
    params = {name.strip().lower(): (value.strip() if eq else None)
              for name, eq, value in (p.partition("=") for p in parts[1:] if p)}
    charset = params.get("charset", "utf-8")
    if charset is None or not charset.strip('"'):
        # MLflow answers 415 here too; say why rather than guess an encoding.
        raise RequestError("the Content-Type's charset parameter has no value; send "
                           "charset=utf-8 or leave it out (the scoring server only supports "
                           "UTF-8 bodies)", 415)
    if charset.lower().strip('"') != "utf-8":
        raise RequestError("the scoring server only supports UTF-8 bodies", 415)
    if mime not in CONTENT_TYPES:
        raise RequestError(f"this server takes Content-Type {' or '.join(CONTENT_TYPES)}, "
                           f"got {header or 'none'!r}", 415)
    return mime


def parse(body: bytes, mime: str) -> Parsed:
    """The body as a :class:`Parsed` value, or a 400 that says what is wrong with it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(f"the body is not valid UTF-8: {exc}") from None
    try:
        if mime == "text/csv":
            return Parsed("csv", _csv(text))
        return _json(text)
    except RecursionError:  # json, numpy and pandas recurse once per level of nesting
        raise bad_request("the body is nested too deeply: send rows of values") from None


def too_many_columns(count: int, where: str) -> RequestError:
    return bad_request(f"{where} has {count} columns; this server takes at most {MAX_COLUMNS} "
                       f"columns", columns=count, limit=MAX_COLUMNS)


def _csv(text: str) -> Any:
    pd = pandas()

    if not text.strip():
        raise bad_request("the CSV body is empty: send a header row and at least one data row")
    try:  # count the header's fields first: read_csv on a very wide table takes minutes
        header = next(csv.reader(io.StringIO(text)), [])
    except csv.Error as exc:
        raise bad_request(f"the body is not a CSV table with a header row: {exc}") from None
    if len(header) > MAX_COLUMNS:
        raise too_many_columns(len(header), "the CSV header")
    try:
        return pd.read_csv(io.StringIO(text))
    except Exception as exc:
        raise bad_request(f"the body is not a CSV table with a header row: {exc}") from None


def _json(text: str) -> Parsed:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise bad_request(f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise bad_request(f"the body must be a JSON object with exactly one of the keys "
                          f"{', '.join(FORMATS)}; got a {_kind(doc)}")
    keys = [k for k in doc if k in FORMATS]
    unknown = sorted(k for k in doc if k not in FORMATS and k != "params")
    if len(keys) != 1 or unknown:
        raise bad_request(f"the body must be a JSON object with exactly one of the keys "
                          f"{', '.join(FORMATS)} (and optionally params); got keys "
                          f"[{listed([repr(k) for k in sorted(doc)])}]",
                          keys=sorted(doc)[:MAX_PROBLEMS], key_count=len(doc))
    fmt = keys[0]
    value = doc[fmt]
    if fmt == "dataframe_split":
        return Parsed(fmt, _split(value))
    if fmt == "dataframe_records":
        return Parsed(fmt, _records(value, fmt))
    if fmt == "instances" and isinstance(value, list) and value and \
            all(isinstance(r, dict) for r in value):
        return Parsed(fmt, _records(value, fmt))
    if isinstance(value, dict):
        if len(value) > MAX_COLUMNS:
            raise too_many_columns(len(value), fmt)
        return Parsed(fmt, {str(k): _array(v, f"{fmt}[{k!r}]") for k, v in value.items()})
    return Parsed(fmt, _array(value, fmt))


def _kind(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__)


def _split(value: Any) -> Any:
    pd = pandas()

    if not isinstance(value, dict) or "data" not in value:
        raise bad_request('dataframe_split must be an object {"columns": [...], "data": '
                          '[[...], ...]}')
    data, columns = value["data"], value.get("columns")
    if not isinstance(data, list) or not all(isinstance(r, list) for r in data):
        raise bad_request("dataframe_split.data must be a list of rows (lists)")
    if columns is not None:
        if not isinstance(columns, list):
            raise bad_request("dataframe_split.columns must be a list of column names")
        if len(columns) > MAX_COLUMNS:
            raise too_many_columns(len(columns), "dataframe_split")
        seen: set[str] = set()
        for name in columns:
            if not isinstance(name, (str, int, float, bool)) and name is not None:
                raise bad_request("dataframe_split.columns must be a list of column names "
                                  f"(strings); got a {_kind(name)}")
            if str(name) in seen:
                raise bad_request(f"dataframe_split has a duplicate column {str(name)!r}: "
                                  "each column name must be given once", column=str(name))
            seen.add(str(name))
        for i, row in enumerate(data):
            if len(row) != len(columns):
                raise bad_request(f"dataframe_split.data row {i} has {len(row)} values for "
                                  f"{len(columns)} columns", row=i)
    elif data and len(data[0]) > MAX_COLUMNS:
        raise too_many_columns(len(data[0]), "dataframe_split")
    if columns is not None:
        # An object index, not pandas 3's string dtype: building one per request, and
        # scikit-learn reading it back as feature names, cost more than predicting a
        # fast model's row.
        columns = pd.Index(columns, dtype=object)
    try:
        if data and len({len(row) for row in data}) == 1 and \
                all(type(v) is float for row in data for v in row):
            # All floats (what a numeric client sends): one float64 block, built at once,
            # is what pandas would infer from the lists, column by column, much slower.
            import numpy as np

            return pd.DataFrame(np.array(data, dtype="float64"), columns=columns,
                                index=value.get("index"))
        return pd.DataFrame(data, columns=columns, index=value.get("index"))
    except Exception as exc:
        raise bad_request(f"dataframe_split does not make a data frame: {exc}") from None


def _records(value: Any, where: str) -> Any:
    pd = pandas()

    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise bad_request(f"{where} must be a list of objects ({{column: value}} per row)")
    names: set[str] = set()
    for row in value:
        names.update(row)
        if len(names) > MAX_COLUMNS:
            raise too_many_columns(len(names), where)
    try:
        return pd.DataFrame.from_records(value)
    except Exception as exc:
        raise bad_request(f"{where} does not make a data frame: {exc}") from None


def _array(value: Any, where: str) -> Any:
    import numpy as np

    try:
        arr = np.asarray(value)
    except ValueError as exc:  # ragged nesting
        raise bad_request(f"{where} is not a rectangular array: {exc}") from None
    if arr.dtype == object and arr.ndim > 0 and any(isinstance(v, (list, dict)) for v in
                                                     arr.reshape(-1)[:1000]):
        raise bad_request(f"{where} is not a rectangular array (rows of different lengths)")
    return arr
