"""Model signatures: input/output schemas inferred from an example, checked on request.

A schema is plain JSON so it can be stored, diffed and shown::

    {"type": "tensor", "framework": "numpy", "dtype": "float64", "shape": [-1, 4]}
    {"type": "dataframe", "columns": [{"name": "age", "dtype": "int64"}, ...]}
    {"type": "dict", "fields": {"ids": {...}, "mask": {...}}}
    {"type": "list", "items": [{...}, {...}]}          (tuples of outputs)
    {"type": "scalar", "dtype": "float"}

The first dimension of a tensor is the batch and is stored as ``-1`` (any size).
Frameworks are recognised only when their module is already imported, so nothing
here imports pandas or torch.
"""

from __future__ import annotations

import sys
from typing import Any, Mapping

from ..errors import InvalidArgument


def _is_dataframe(x: Any) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(x, pd.DataFrame)


def _is_series(x: Any) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(x, pd.Series)


def _is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def infer_schema(example: Any) -> dict[str, Any]:
    """The schema of ``example`` (numpy, pandas, torch tensors, dicts, lists, scalars)."""
    import numpy as np

    if _is_dataframe(example):
        return {"type": "dataframe",
                "columns": [{"name": str(c), "dtype": str(example[c].dtype)} for c in example.columns]}
    if _is_series(example):
        return {"type": "series", "name": None if example.name is None else str(example.name),
                "dtype": str(example.dtype)}
    if _is_tensor(example):
        return {"type": "tensor", "framework": "torch", "dtype": str(example.dtype).removeprefix("torch."),
                "shape": _batch_shape(tuple(example.shape))}
    if isinstance(example, np.ndarray):
        return {"type": "tensor", "framework": "numpy", "dtype": str(example.dtype),
                "shape": _batch_shape(example.shape)}
    if isinstance(example, Mapping):
        return {"type": "dict", "fields": {str(k): infer_schema(v) for k, v in example.items()}}
    if isinstance(example, tuple):
        return {"type": "list", "items": [infer_schema(v) for v in example]}
    if isinstance(example, list):
        arr = np.asarray(example)
        if arr.dtype == object:
            return {"type": "list", "items": [infer_schema(v) for v in example]}
        return {"type": "tensor", "framework": "numpy", "dtype": str(arr.dtype),
                "shape": _batch_shape(arr.shape)}
    if isinstance(example, bool):
        return {"type": "scalar", "dtype": "bool"}
    if isinstance(example, (int, float, str)):
        return {"type": "scalar", "dtype": type(example).__name__}
    if isinstance(example, np.generic):
        return {"type": "scalar", "dtype": str(example.dtype)}
    raise InvalidArgument(f"cannot infer a schema from a {type(example).__name__}: use numpy "
                          "arrays, pandas data frames, torch tensors, or dicts/lists of them")


def _batch_shape(shape: tuple[int, ...]) -> list[int]:
    return [-1, *[int(d) for d in shape[1:]]] if shape else []


def infer(input_example: Any, output_example: Any = None) -> dict[str, Any]:
    return {"inputs": infer_schema(input_example),
            "outputs": None if output_example is None else infer_schema(output_example)}


def describe(schema: Mapping[str, Any] | None) -> str:
    """A short human spelling, e.g. ``float64[-1, 4]`` or ``{a: int64, b: float64}``."""
    if not schema:
        return "-"
    kind = schema.get("type")
    if kind == "tensor":
        return f"{schema['dtype']}{list(schema['shape'])}"
    if kind == "dataframe":
        return "{" + ", ".join(f"{c['name']}: {c['dtype']}" for c in schema["columns"]) + "}"
    if kind == "series":
        return f"series[{schema['dtype']}]"
    if kind == "dict":
        return "{" + ", ".join(f"{k}: {describe(v)}" for k, v in schema["fields"].items()) + "}"
    if kind == "list":
        return "(" + ", ".join(describe(v) for v in schema["items"]) + ")"
    return str(schema.get("dtype", kind))


def _dtype_ok(expected: str, actual: str) -> bool:
    if expected == actual:
        return True
    import numpy as np

    try:
        return bool(np.can_cast(np.dtype(actual), np.dtype(expected), casting="same_kind"))
    except TypeError:
        return False


def problems(schema: Mapping[str, Any], value: Any, where: str = "input") -> list[str]:
    """Every way ``value`` does not fit ``schema`` (empty when it fits)."""
    import numpy as np

    kind = schema.get("type")
    out: list[str] = []
    if kind == "dataframe":
        if not _is_dataframe(value):
            return [f"{where}: expected a pandas DataFrame, got {type(value).__name__}"]
        have = {str(c): str(value[c].dtype) for c in value.columns}
        want = {c["name"]: c["dtype"] for c in schema["columns"]}
        for name, dtype in want.items():
            if name not in have:
                out.append(f"{where}: column {name!r} is missing")
            elif not _dtype_ok(dtype, have[name]):
                out.append(f"{where}: column {name!r} is {have[name]}, expected {dtype}")
        out.extend(f"{where}: unexpected column {name!r}" for name in have if name not in want)
        return out
    if kind == "tensor":
        if _is_tensor(value):
            dtype, shape = str(value.dtype).removeprefix("torch."), tuple(value.shape)
        elif _is_dataframe(value):
            dtype, shape = str(np.asarray(value).dtype), tuple(value.shape)
        else:
            try:
                arr = value if isinstance(value, np.ndarray) else np.asarray(value)
            except Exception:
                return [f"{where}: expected an array, got {type(value).__name__}"]
            dtype, shape = str(arr.dtype), arr.shape
        want_shape = list(schema["shape"])
        if len(shape) != len(want_shape):
            out.append(f"{where}: expected {len(want_shape)} dimensions {want_shape}, "
                       f"got {list(shape)}")
        else:
            for i, (w, h) in enumerate(zip(want_shape, shape)):
                if w != -1 and w != h:
                    out.append(f"{where}: dimension {i} is {h}, expected {w}")
        if not _dtype_ok(schema["dtype"], dtype):
            out.append(f"{where}: dtype is {dtype}, expected {schema['dtype']}")
        return out
    if kind == "dict":
        if not isinstance(value, Mapping):
            return [f"{where}: expected a dict, got {type(value).__name__}"]
        for key, sub in schema["fields"].items():
            if key not in value:
                out.append(f"{where}: key {key!r} is missing")
            else:
                out.extend(problems(sub, value[key], f"{where}[{key!r}]"))
        return out
    if kind == "list":
        if not isinstance(value, (list, tuple)) or len(value) != len(schema["items"]):
            return [f"{where}: expected a sequence of {len(schema['items'])} items"]
        for i, (sub, v) in enumerate(zip(schema["items"], value)):
            out.extend(problems(sub, v, f"{where}[{i}]"))
        return out
    if kind == "series":
        if not _is_series(value):
            return [f"{where}: expected a pandas Series, got {type(value).__name__}"]
        if not _dtype_ok(schema["dtype"], str(value.dtype)):
            out.append(f"{where}: dtype is {value.dtype}, expected {schema['dtype']}")
        return out
    return out  # scalars: anything goes


def check(signature: Mapping[str, Any] | None, inputs: Any, what: str = "the model") -> None:
    """Raise :class:`InvalidArgument` listing every mismatch between ``inputs`` and the signature."""
    if not signature or not signature.get("inputs"):
        raise InvalidArgument(f"{what} has no signature to check inputs against; register it "
                              "with input_example= to record one")
    found = problems(signature["inputs"], inputs)
    if found:
        raise InvalidArgument(f"inputs do not match the signature of {what} "
                              f"({describe(signature['inputs'])}): " + "; ".join(found),
                              problems=found)


def diff(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> list[str]:
    """What changed between two signatures, in words (empty when equal)."""
    if (a or None) == (b or None):
        return []
    a, b = a or {}, b or {}
    out = []
    for part in ("inputs", "outputs"):
        if a.get(part) != b.get(part):
            out.append(f"{part} {describe(a.get(part))} -> {describe(b.get(part))}")
    return out
