"""Fitting a parsed request to the model's signature: a 400 naming the field, or the model's input.

The signature (see :mod:`cairn.registry.signature`) says what the model was registered
with: a tensor (``float64[-1, 4]``), a data frame (named, typed columns), or a dict of
tensors.  A request is turned into that shape (a data frame for a tensor model becomes
its array; rows for a data frame model get the signature's column names), checked with
the registry's own :func:`~cairn.registry.signature.problems`, and cast to the
signature's dtypes when the cast is safe (an integer where a float is expected).

Missing values: a null or NaN is refused in every integer, boolean and string field;
in a float field it is refused unless the server allows NaN (``allow_nan``), because
the signature records no missing values and most models fail on them.  A model with no
signature gets what was parsed, unchecked.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..registry import signature as sigmod
from .errors import MAX_PROBLEMS, bad_request, listed, problems_error
from .inputs import Parsed, pandas

_TEXT = {"object", "str", "string"}


def conform(parsed: Parsed, signature: Mapping[str, Any] | None, *,
            allow_nan: bool = False) -> Any:
    """The model's input for ``parsed``, or a 400 listing every field that does not fit."""
    schema = (signature or {}).get("inputs")
    value = parsed.value
    if not schema:
        return value
    kind = schema.get("type")
    if kind == "dataframe":
        return _frame(_as_frame(value, schema), schema, allow_nan)
    if kind == "tensor":
        return _tensor(_as_array(value), schema, "input", allow_nan)
    if kind == "dict":
        if not isinstance(value, dict):
            value = _columns_of(value)
        found = sigmod.problems(schema, value)
        if found:
            raise _mismatch(schema, found)
        return {k: _tensor(value[k], sub, f"input[{k!r}]", allow_nan) if sub.get("type") ==
                "tensor" else value[k] for k, sub in schema["fields"].items()}
    found = sigmod.problems(schema, value)
    if found:
        raise _mismatch(schema, found)
    return value


def _mismatch(schema: Mapping[str, Any], found: list[str]) -> Exception:
    return problems_error(f"the input does not match the model's signature "
                          f"({sigmod.describe(schema)})", found)


def _is_frame(value: Any) -> bool:
    pd = pandas()

    return isinstance(value, pd.DataFrame)


def _columns_of(value: Any) -> Any:
    """A data frame as ``{column: array}`` (for dict signatures); anything else as is."""
    if _is_frame(value):
        return {str(c): value[c].to_numpy() for c in value.columns}
    return value


def _as_array(value: Any) -> Any:
    import numpy as np

    if _is_frame(value):
        text = [str(c) for c in value.columns if value[c].dtype == object or
                str(value[c].dtype) in _TEXT]
        if text:
            raise bad_request(f"the model takes an array of numbers; column(s) "
                              f"{listed([repr(c) for c in text])} hold text",
                              fields=text[:MAX_PROBLEMS], field_count=len(text))
        return value.to_numpy()
    if isinstance(value, dict):
        raise bad_request("the model takes one array, not named inputs "
                          f"({listed([repr(k) for k in value])}): send dataframe_split, "
                          "instances "
                          "or inputs as a list of rows")
    return np.asarray(value)


def _tensor(arr: Any, schema: Mapping[str, Any], where: str, allow_nan: bool) -> Any:
    import numpy as np

    arr = np.asarray(arr)
    if arr.dtype == object:  # nulls among numbers: numbers with NaN, if that is all they are
        try:
            arr = arr.astype(np.float64)
        except OverflowError:  # an integer past float64's range (10**400)
            raise bad_request(f"{where} holds a number too large for float64; the model's "
                              f"signature is {sigmod.describe(schema)}", field=where) from None
        except (TypeError, ValueError):
            pass
    found = sigmod.problems(schema, arr, where)
    if found:
        raise _mismatch(schema, found)
    want = np.dtype(schema["dtype"])
    if arr.dtype.kind == "f" and arr.size and not allow_nan and bool(np.isinf(arr).any()):
        bad = np.argwhere(np.isinf(arr))[0].tolist()
        raise bad_request(f"{where} holds an infinite value at {bad}; most models fail on "
                          "them (start the server with --allow-nan to pass them)",
                          field=where, position=bad)
    if arr.dtype.kind == "f" and arr.size and bool(np.isnan(arr).any()):
        if want.kind != "f" or not allow_nan:
            bad = np.argwhere(np.isnan(arr))[0].tolist()
            raise bad_request(f"{where} holds NaN or null at {bad}; the model's signature "
                              f"({sigmod.describe(schema)}) allows no missing values"
                              + ("" if want.kind != "f" else
                                 " (start the server with --allow-nan to pass them)"),
                              field=where, position=bad)
    return arr.astype(want, copy=False) if arr.dtype != want else arr


def _as_frame(value: Any, schema: Mapping[str, Any]) -> Any:
    import numpy as np
    pd = pandas()

    if _is_frame(value):
        return value
    names = [c["name"] for c in schema["columns"]]
    if isinstance(value, dict):
        try:
            return pd.DataFrame({k: np.asarray(v).reshape(-1) if np.ndim(v) else [v]
                                 for k, v in value.items()})
        except ValueError as exc:
            raise bad_request(f"the named inputs do not make a table: {exc}") from None
    arr = np.asarray(value)
    if arr.ndim == 1 and len(names) == arr.shape[0]:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != len(names):
        raise bad_request(f"the model takes a table of columns {names}; got an array of shape "
                          f"{list(arr.shape)}: send rows of {len(names)} values, or name the "
                          "columns (dataframe_split, dataframe_records)",
                          shape=list(arr.shape))
    return pd.DataFrame(arr, columns=names).infer_objects()


def _exact(df: Any, want: Mapping[str, str], allow_nan: bool) -> bool:
    """Whether ``df`` is already the model's input: the signature's columns in its order,
    each of its numeric dtype, and no missing value where none is allowed.  The common
    case (a client sending what the model was registered with) then costs a few checks
    on the whole frame instead of several per column."""
    import numpy as np

    if list(df.columns) != list(want):
        return False
    floats = True
    for dtype, expected in zip(df.dtypes, want.values()):
        if expected in _TEXT or str(dtype) != expected or dtype.kind not in "biuf":
            return False
        floats = floats and dtype.kind == "f"
    if allow_nan and floats:
        return True
    if floats:  # one float block: NaN and infinity in one pass
        return bool(np.isfinite(df.to_numpy()).all())
    return not df.isna().to_numpy().any() and all(
        np.isfinite(df[c].to_numpy()).all() for c, d in zip(df.columns, df.dtypes)
        if d.kind == "f")


def _frame(df: Any, schema: Mapping[str, Any], allow_nan: bool) -> Any:
    import numpy as np

    want = {c["name"]: c["dtype"] for c in schema["columns"]}
    if not all(isinstance(c, str) for c in df.columns):
        df = df.rename(columns=str)
    if _exact(df, want, allow_nan):
        return df
    out = df.copy()
    found: list[str] = []
    for name, dtype in want.items():
        if name not in df.columns:
            continue
        col = df[name]
        missing = col.isna().to_numpy()
        if missing.any():
            is_float = _kind(dtype) == "f"
            if not (is_float and allow_nan):
                row = int(np.argmax(missing))
                found.append(f"input: column {name!r} holds a missing value (null or NaN) in "
                             f"row {row}; the signature's {dtype} allows none")
                continue
        if not allow_nan and col.dtype.kind == "f":
            infinite = np.isinf(col.to_numpy())
            if infinite.any():
                found.append(f"input: column {name!r} holds an infinite value in row "
                             f"{int(np.argmax(infinite))} (start the server with --allow-nan "
                             "to pass them)")
                continue
        if dtype in _TEXT:
            if not all(isinstance(v, str) for v in col.tolist()):
                found.append(f"input: column {name!r} is {col.dtype}, expected text ({dtype})")
            continue
        if col.dtype == object and len(col) and \
                all(isinstance(v, int) and not isinstance(v, bool) for v in col.tolist()):
            # Python ints pandas could not hold in int64 (10**30): a float column takes them
            # while they fit in float64; past that (10**400), or for an integer column, a 400.
            try:
                if _kind(dtype) != "f":
                    raise OverflowError
                col = col.astype("float64")
            except OverflowError:
                found.append(f"input: column {name!r} holds a number out of range for {dtype}")
                continue
        if col.dtype == object or str(col.dtype) in _TEXT:
            found.append(f"input: column {name!r} holds text, expected {dtype}")
            continue
        try:
            target = np.dtype(dtype)
        except TypeError:
            continue  # a pandas-only dtype (category, datetime with zone): left to the check
        values = col.to_numpy()
        if target.kind in "iu" and col.dtype.kind == "f" and _whole(values) and \
                not _fits(values, target):
            info = np.iinfo(target)
            bad = values[(values < info.min) | (values >= float(int(info.max) + 1))][0]
            found.append(f"input: column {name!r} holds {bad:g}, out of range for {dtype} "
                         f"({info.min} to {info.max})")
            continue
        if np.can_cast(col.dtype, target, casting="same_kind") or \
                (target.kind == "f" and col.dtype.kind in "iu") or \
                (target.kind in "iu" and col.dtype.kind == "f" and _whole(values)):
            out[name] = col.astype(target)
    if found:
        raise _mismatch(schema, found)
    found = sigmod.problems(schema, out)
    if found:
        raise _mismatch(schema, found)
    return out[list(want)]


def _whole(values: Any) -> bool:
    """Floats that are all whole numbers (rows sent as one array of numbers come as floats)."""
    import numpy as np

    return bool(np.isfinite(values).all() and (values == np.round(values)).all())


def _fits(values: Any, target: Any) -> bool:
    """Whole floats that all lie in the integer dtype ``target``'s range (a float past it
    would be cast to an arbitrary integer)."""
    import numpy as np

    info = np.iinfo(target)
    # float(max + 1) is exact (a power of two); float(max) itself may round up past max.
    return bool(values.size == 0 or (values.min() >= float(info.min) and
                                      values.max() < float(int(info.max) + 1)))


def _kind(dtype: str) -> str:
    """numpy's kind letter of a signature dtype ("f" for floats); "" for text and pandas-only
    dtypes (category, datetimes with a zone)."""
    import numpy as np

    if dtype in _TEXT:
        return ""
    try:
        return str(np.dtype(dtype).kind)
    except TypeError:
        return ""
