"""The drift reference of a model version: the data it was trained on, found through lineage.

::

    ref = find_reference(client, mv)                 # the run's input with role "train"
    ref = find_reference(client, mv, "transactions@3")   # or the one you name
    ref.dataset                                      # "transactions@3"
    ref.columns["amount"]                            # a 1-D numpy array per column

By default the reference is what lineage says trained ``mv``: ``mv``'s source run, and the
data set version that run logged as an input with role ``train`` (``cairn.log_input(ref,
role="train")``; autologging does the same).  A version registered with ``datasets=[...]``
and a role ``train`` there counts too.  Nothing is uploaded again: the version's files are
read from the object store.  Columns come from the version's tables (CSV, TSV, Parquet
files, concatenated), or from the ``data`` part of an in-memory version
(``cairn.data.add_array``; a 2-D array's columns are named ``0``, ``1``, ..., as the
prediction log names them).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument, NotFound

TRAIN = "train"


@dataclass(frozen=True, slots=True)
class ReferenceData:
    """The reference's columns, and where they came from."""

    dataset: str                        # "name@version"
    found_by: str                       # "lineage" or "given"
    columns: dict[str, Any] = field(repr=False)   # name -> 1-D numpy array
    rows: int = 0


def training_dataset(client: Any, mv: Any) -> str:
    """``name@version`` of the data set version ``mv`` was trained on, through lineage; or
    NotFound saying what is missing."""
    from ..services import lineage_for

    what = f"{mv.name} {mv.version}"
    node = f"model:{mv.name}@{mv.version}"
    graph = lineage_for(client).graph(node, "upstream", depth=2)
    runs = [e.source for e in graph.edges if e.target == node and e.relation == "produced"]
    found: list[str] = []
    for run in runs:
        found += [graph.nodes[e.source].label for e in graph.edges
                  if e.target == run and e.relation == "input" and e.role == TRAIN]
    for d in getattr(mv, "datasets", ()) or ():  # listed at registration with a role
        if str(d.get("role") or "") == TRAIN and d.get("name") and d.get("version") is not None:
            found.append(f"{d['name']}@{d['version']}")
    found = sorted(set(found))
    if len(found) == 1:
        return found[0]
    advice = "; give the reference data set with --reference NAME@VERSION"
    if not found:
        if not runs:
            raise NotFound(f"model version {what} has no lineage to its training data: it was "
                           f"registered without a source run{advice}", model=mv.name,
                           version=mv.version)
        raise NotFound(f"model version {what} has no training data in its lineage: its run "
                       f"{runs[0].removeprefix('run:')} logged no data set input with role "
                       f"'{TRAIN}' (cairn.log_input(ref, role='{TRAIN}')){advice}",
                       model=mv.name, version=mv.version)
    raise InvalidArgument(f"model version {what} was trained on {len(found)} data set "
                          f"versions ({', '.join(found)}){advice}", candidates=found)


def find_reference(client: Any, mv: Any, given: str | None = None) -> ReferenceData:
    """The reference data of ``mv``: ``given`` (``name@version``) or its training data."""
    ds, version, how = reference_version(client, mv, given)
    columns = load_columns(ds, version)
    rows = max((len(v) for v in columns.values()), default=0)
    return ReferenceData(version.ref, how, columns, rows)


def reference_version(client: Any, mv: Any, given: str | None = None) -> tuple[Any, Any, str]:
    """(the data sets service, the reference's data set version, "given" or "lineage"),
    without reading its rows."""
    from ..services import datasets_for

    if given is not None:
        if not isinstance(given, str) or not given.strip() or "@" not in given:
            raise InvalidArgument(f"reference {given!r}: give a data set version as NAME@VERSION, "
                                  "e.g. transactions@3")
        ref, how = given.strip(), "given"
    else:
        ref, how = training_dataset(client, mv), "lineage"
    ds = datasets_for(client)
    try:
        version = ds.version(ref)
    except NotFound as exc:
        raise NotFound(f"reference data set {ref}: {exc.message}") from None
    return ds, version, how


def load_columns(ds: Any, version: Any) -> dict[str, Any]:
    """Every column of a data set version's table(s) as a 1-D numpy array, by name."""
    from ..data import arrays as A
    from ..data.stats import tabular_format

    files = [e.path for e in ds.files(version.ref)]
    try:
        A.part_files(sorted(files))
        in_memory = True
    except InvalidArgument:
        in_memory = False
    if in_memory:
        data, _target = ds.load_array(version.ref)
        return _frame_columns(data, version.ref)
    tables = [p for p in files if tabular_format(p)]
    if not tables:
        raise InvalidArgument(f"reference data set {version.ref} holds no table (CSV, TSV or "
                              "Parquet files) to compare the prediction log with",
                              dataset=version.ref)
    import pyarrow as pa

    from ..data.stats import read_table
    from ..serving.predlog_read import concat

    read = []
    with tempfile.TemporaryDirectory(prefix="cairn-reference-") as tmp:
        for p in sorted(tables):
            local = ds.checkout(version.ref, tmp, p)
            path = Path(local) / p if Path(local).is_dir() else Path(local)
            read.append(read_table(path.read_bytes(), tabular_format(p) or "", p))
    table = concat(read) if len(read) > 1 else read[0]
    return {str(name): _numpy(table[name]) for name in table.column_names
            if not pa.types.is_nested(table[name].type)}


def _numpy(column: Any) -> Any:
    import numpy as np
    import pyarrow as pa

    t = column.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64)
    return np.asarray(column.to_numpy(zero_copy_only=False), object)


def _frame_columns(data: Any, ref: str) -> dict[str, Any]:
    """A data frame's, a 2-D array's (``0``, ``1``, ...) or a 1-D array's (``input``) columns."""
    import numpy as np

    if hasattr(data, "columns") and hasattr(data, "items"):  # a pandas data frame
        return {str(c): _series(s) for c, s in data.items()}
    if hasattr(data, "tocsr"):
        raise InvalidArgument(f"reference data set {ref} is a sparse matrix; drift needs a "
                              "table (give a data frame or a dense array)", dataset=ref)
    arr = np.asarray(data)
    if arr.ndim == 1:
        return {"input": arr}
    if arr.ndim == 2:
        return {str(j): arr[:, j] for j in range(arr.shape[1])}
    raise InvalidArgument(f"reference data set {ref} is an array of shape {list(arr.shape)}; "
                          "drift needs a table", dataset=ref)


def _series(s: Any) -> Any:
    """A pandas column as a numpy array: numbers (nullable ones too) as float64 with NaN,
    anything else as objects with None for missing."""
    import numpy as np

    kind = getattr(s.dtype, "kind", "O")
    if kind in "iuf":
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    if kind == "b" and not s.hasnans:
        return s.to_numpy(dtype=bool)
    return np.asarray(s.astype(object).to_numpy(dtype=object, na_value=None), object)


def predicted(client: Any, mv: Any, columns: dict[str, Any]) -> dict[str, Any]:
    """The reference for the prediction column(s): ``mv`` scoring the reference rows, loaded
    and fed as ``cairn serve`` does (the version's digests checked, inputs fitted to its
    signature).  Raises CairnError when the version cannot be loaded or scored here."""
    import numpy as np

    from ..errors import CairnError
    from ..services import registry_for
    from ..serving.batch import prediction_columns
    from ..serving.holder import load_version
    from ..serving.inputs import Parsed, pandas
    from ..serving.validate import conform

    pd = pandas()
    served = load_version(registry_for(client), mv, warm=False)
    schema = (mv.signature or {}).get("inputs") or {}
    if schema.get("type") == "dataframe":
        names = [str(c["name"]) for c in schema.get("columns", [])]
        absent = [n for n in names if n not in columns]
        if absent:
            raise InvalidArgument(f"the reference lacks the model's input(s) {', '.join(absent)}")
        frame = pd.DataFrame({n: columns[n] for n in names})
    elif "input" in columns and len(columns) == 1:
        frame = np.asarray(columns["input"])
    else:
        keys = sorted((k for k in columns if k.isdigit()), key=int)
        if not keys:
            raise InvalidArgument("the reference's columns do not name the model's inputs")
        frame = np.column_stack([columns[k] for k in keys])
    try:
        inputs = conform(Parsed("batch", frame), mv.signature, allow_nan=True)
        raw = served.predict(inputs)
        return prediction_columns(raw, len(frame), "the reference")
    except CairnError:
        raise
    except Exception as exc:  # noqa: BLE001 (the model's own failure, said as one)
        raise CairnError(f"{mv.name} {mv.version} could not score its reference: "
                         f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}") from None
