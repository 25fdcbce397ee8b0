"""In-memory data as the files of a data set version: arrays, data frames, sparse matrices, tensors.

:meth:`cairn.data.Datasets.add_array` stores the data (and its target) in one canonical
file each, so the same data always gives the same bytes and therefore the same version:

==========================================  ==================  ===========================
data                                        file                read back as
==========================================  ==================  ===========================
``numpy.ndarray``, nested lists, tensors    ``data.npy``        ``numpy.ndarray``
``pandas.DataFrame``                        ``data.parquet``    ``pandas.DataFrame``
``pandas.Series``                           ``data.parquet``    ``pandas.Series``
``scipy.sparse`` matrices and arrays        ``data.npz``        CSR, as given (matrix/array)
==========================================  ==================  ===========================

(``target.*`` likewise.)  ``.npy`` files are NumPy format, C order, never pickled; ``.npz``
files are what ``scipy.sparse.save_npz`` writes (CSR), with fixed zip timestamps; Parquet is
written by pyarrow with pandas' metadata, so dtypes, column labels and the index come back.
Arrays of Python objects are refused (they would need pickle): pass a DataFrame instead.

The *content digest* (:func:`content_digest`) is the one autologging tags runs with
(``cairn.input.digest``); a version made from in-memory data records
``memory:<fingerprint>`` as its source, where the fingerprint (:func:`fingerprint`) is that
digest, extended for pandas and SciPy objects by what the digest leaves out (dtypes, the
index, matrix-or-array), so equal fingerprints mean equal files.

Importing this module imports no numpy, pandas, pyarrow or scipy.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgument, MissingDependency

if TYPE_CHECKING:
    import numpy as np

SOURCE_PREFIX = "memory:"
PARTS = ("data", "target")
_NPY_BUFFER = 16 * 1024 * 1024  # bytes per write of a non-contiguous array
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


# -- identity -----------------------------------------------------------------------
def _module(obj: Any) -> str:
    return type(obj).__module__.split(".")[0]


def _is_frame(obj: Any) -> bool:
    return _module(obj) == "pandas" and hasattr(obj, "columns")


def _is_series(obj: Any) -> bool:
    return _module(obj) == "pandas" and hasattr(obj, "to_frame")


def _is_sparse(obj: Any) -> bool:
    return _module(obj) == "scipy" and hasattr(obj, "tocsr")


def _feed(h: Any, obj: Any) -> None:
    import numpy as np

    if _is_frame(obj):
        h.update(repr([str(c) for c in obj.columns]).encode())
        for name in obj.columns:
            _feed(h, obj[name].to_numpy())
        return
    if _module(obj) == "pandas":  # Series, Index
        h.update(repr(getattr(obj, "name", None)).encode())
        _feed(h, obj.to_numpy())
        return
    if _is_sparse(obj):
        m = obj.tocsr()
        h.update(f"csr{m.shape}".encode())
        for part in (m.data, m.indices, m.indptr):
            _feed(h, part)
        return
    if _module(obj) == "torch":
        obj = obj.detach().cpu().numpy()
    try:
        a = np.asarray(obj)
    except (TypeError, ValueError):  # ragged nested sequences
        try:
            a = np.array(obj, dtype=object)
        except (TypeError, ValueError):
            h.update(repr(obj).encode())
            return
    h.update(f"{a.dtype.str}{a.shape}".encode())
    if a.dtype.hasobject:
        h.update(repr(a.tolist()).encode())
    else:
        h.update(_raw(np.ascontiguousarray(a)))


def _raw(a: Any) -> Any:
    """The bytes of a C-contiguous array, for any fixed-size dtype (datetimes included, which
    the buffer protocol refuses)."""
    import numpy as np

    return a.reshape(-1).view(np.uint8)


def content_digest(*parts: Any) -> str:
    """``sha256:<hex>`` of the content of arrays, data frames, sparse matrices or tensors.

    Dtype, shape and bytes of arrays (in C order, whatever their memory layout); the column
    names and values of data frames; the CSR arrays of sparse matrices; tensors on the CPU.
    ``None`` parts are skipped.  Reads all the data once.
    """
    h = hashlib.sha256()
    for part in parts:
        if part is not None:
            _feed(h, part)
    return "sha256:" + h.hexdigest()


def _extras(obj: Any) -> bytes:
    """What :func:`content_digest` leaves out of ``obj`` but its file keeps."""
    if _module(obj) == "pandas":
        if _is_frame(obj):
            head = repr(([repr(c) for c in obj.columns], [str(t) for t in obj.dtypes]))
        else:
            head = repr((repr(obj.name), str(obj.dtype)))
        index = obj.index
        if type(index).__name__ == "RangeIndex":
            desc = repr(("range", index.start, index.stop, index.step, repr(index.name)))
            return (head + desc).encode()
        h = hashlib.sha256()
        _feed(h, index.to_numpy())
        return (head + repr(("index", str(index.dtype), [repr(n) for n in index.names]))
                + h.hexdigest()).encode()
    if _is_sparse(obj):
        return b"sparray" if _is_sparse_array(obj) else b"spmatrix"
    return b""


def fingerprint(data: Any, target: Any = None, *, digest: str | None = None) -> str:
    """The identity of ``(data, target)`` as stored: their content digest, plus the dtypes
    and index of pandas objects and the matrix-or-array kind of sparse ones.

    ``digest``, when given, must be ``content_digest(data, target)`` (computed earlier); it
    spares reading the data again.  For NumPy data and tensors the fingerprint *is* the digest.
    """
    d = digest if digest is not None else content_digest(data, target)
    extra = b"".join(_extras(x) for x in (data, target) if x is not None)
    if not extra:
        return d
    return "sha256:" + hashlib.sha256(d.encode() + b"\0" + extra).hexdigest()


def _is_sparse_array(obj: Any) -> bool:
    try:
        from scipy.sparse import sparray
    except ImportError:  # SciPy before 1.11
        return False
    return isinstance(obj, sparray)


# -- writing ------------------------------------------------------------------------
@dataclass(slots=True)
class Staged:
    """``data`` and ``target`` written to files in a temporary directory, not yet stored."""

    directory: Path
    files: list[tuple[str, dict[str, Any]]]  # (file name, description) of each part
    source: str  # "memory:<fingerprint>"
    _tmp: Any = None

    def cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def stage(data: Any, target: Any = None, *, digest: str | None = None,
          table_stats: bool = True) -> Staged:
    """Write ``data`` (and ``target``) into a new temporary directory: a snapshot of them."""
    source = SOURCE_PREFIX + fingerprint(data, target, digest=digest)
    tmp = tempfile.TemporaryDirectory(prefix="cairn-array-")
    try:
        files = [write(part, tmp.name, stem, table_stats=table_stats)
                 for stem, part in zip(PARTS, (data, target)) if part is not None]
    except BaseException:
        tmp.cleanup()
        raise
    return Staged(Path(tmp.name), files, source, tmp)


def write(obj: Any, directory: str | os.PathLike[str], stem: str, *,
          table_stats: bool = True) -> tuple[str, dict[str, Any]]:
    """Write ``obj`` into ``directory`` as ``stem.<ext>``; (file name, its description).

    The description (type, shape, dtype; for data frames with ``table_stats`` the table
    statistics) goes into the version's statistics.  Raises :class:`InvalidArgument` for
    data that has no canonical file form (arrays of Python objects, unknown types).
    """
    directory = Path(directory)
    if _is_frame(obj) or _is_series(obj):
        return _write_parquet(obj, directory, stem, table_stats)
    if _is_sparse(obj):
        return _write_npz(obj, directory, stem)
    a = _as_array(obj)
    name = f"{stem}.npy"
    with open(directory / name, "wb") as f:
        _write_npy(f, a)
    return name, {"format": "npy", "type": "numpy.ndarray", "shape": list(a.shape),
                  "dtype": str(a.dtype)}


def _as_array(obj: Any) -> np.ndarray:
    import numpy as np

    kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if _module(obj) == "torch":
        try:
            obj = obj.detach().cpu().numpy()
        except (TypeError, RuntimeError) as exc:  # e.g. bfloat16 has no NumPy dtype
            raise InvalidArgument(f"cannot store a {kind} as an array: {exc}") from None
    try:
        a = np.asarray(obj)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise InvalidArgument(f"cannot store a {kind} as an array: {exc}") from None
    if a.dtype.hasobject:
        raise InvalidArgument(f"cannot store a {kind} of Python objects (dtype {a.dtype}) "
                              "without pickling it; pass a pandas DataFrame or a typed array")
    return a


def _write_npy(f: Any, a: Any) -> None:
    """NumPy format, always C order: equal arrays give equal bytes whatever their layout."""
    import numpy as np
    from numpy.lib import format as npformat

    header = {"descr": npformat.dtype_to_descr(a.dtype), "fortran_order": False,
              "shape": tuple(a.shape)}
    try:
        npformat.write_array_header_1_0(f, header)
    except ValueError:  # a header over 64 KiB (huge structured dtypes)
        npformat.write_array_header_2_0(f, header)
    if a.size == 0:
        return
    if a.flags.c_contiguous:
        f.write(_raw(a))
        return
    buffersize = max(_NPY_BUFFER // max(a.itemsize, 1), 1)
    chunk: Any  # one operand with external_loop: each step is an array, not a tuple of them
    for chunk in np.nditer(a, flags=["external_loop", "buffered", "zerosize_ok"],
                           buffersize=buffersize, order="C"):
        f.write(chunk.tobytes("C"))


def _npy_bytes(a: Any) -> bytes:
    buf = io.BytesIO()
    _write_npy(buf, a)
    return buf.getvalue()


def _write_npz(obj: Any, directory: Path, stem: str) -> tuple[str, dict[str, Any]]:
    """CSR in ``scipy.sparse.save_npz``'s layout; fixed member order and timestamps."""
    import numpy as np

    m = obj.tocsr()
    members = {"indices": m.indices, "indptr": m.indptr, "format": np.array(b"csr"),
               "shape": np.asarray(m.shape, dtype=np.int64), "data": m.data}
    if _is_sparse_array(obj):
        members["_is_array"] = np.array(True)
    name = f"{stem}.npz"
    with zipfile.ZipFile(directory / name, "w", compression=zipfile.ZIP_STORED,
                         allowZip64=True) as z:
        for key, value in members.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_TIME)
            info.create_system = 3
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_STORED
            z.writestr(info, _npy_bytes(np.asarray(value)))
    return name, {"format": "npz", "type": "scipy.sparse.csr_" + (
        "array" if _is_sparse_array(obj) else "matrix"), "shape": [int(d) for d in m.shape],
        "dtype": str(m.dtype), "nnz": int(m.nnz)}


def _write_parquet(obj: Any, directory: Path, stem: str,
                   with_stats: bool) -> tuple[str, dict[str, Any]]:
    from .stats import require_pyarrow, table_stats

    pa = require_pyarrow("storing a pandas object")
    import pyarrow.parquet as pq

    series = _is_series(obj)
    frame = obj.to_frame() if series else obj
    try:
        table = pa.Table.from_pandas(frame)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError,
            ValueError) as exc:
        raise InvalidArgument(f"cannot store this {'Series' if series else 'DataFrame'} as "
                              f"Parquet: {exc}") from None
    name = f"{stem}.parquet"
    pq.write_table(table, directory / name)
    info = {**(table_stats(table, "parquet") if with_stats else {"format": "parquet"}),
            "type": "pandas.Series" if series else "pandas.DataFrame",
            "shape": [int(d) for d in obj.shape]}
    if series:
        info["series_name"] = _json_name(obj.name)
    return name, info


def _json_name(name: Any) -> Any:
    return name if name is None or isinstance(name, (str, int, float, bool)) else str(name)


# -- reading ------------------------------------------------------------------------
def read(name: str, data: bytes, info: Any = None) -> Any:
    """The object a file written by :func:`write` holds (``info``: its statistics entry)."""
    info = info if isinstance(info, dict) else {}
    if name.endswith(".npy"):
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)
    if name.endswith(".npz"):
        try:
            import scipy.sparse
        except ImportError:
            raise MissingDependency("reading a stored sparse matrix needs scipy: "
                                    "pip install scipy") from None
        return scipy.sparse.load_npz(io.BytesIO(data))
    if name.endswith(".parquet"):
        from .stats import require_pyarrow

        pa = require_pyarrow("reading a stored data frame")
        import pyarrow.parquet as pq

        frame = pq.read_table(pa.BufferReader(data)).to_pandas()
        if info.get("type") == "pandas.Series":
            s = frame.iloc[:, 0]
            s.name = info.get("series_name")
            return s
        return frame
    raise InvalidArgument(f"{name} is not a file written by add_array")


def part_files(paths: list[str]) -> dict[str, str]:
    """``{"data": "data.npy", "target": ...}`` of a version's file paths, or InvalidArgument."""
    out: dict[str, str] = {}
    for p in paths:
        stem, _, ext = p.partition(".")
        if stem not in PARTS or ext not in ("npy", "npz", "parquet") or stem in out:
            raise InvalidArgument(f"unexpected file {p!r}: not a version made by add_array")
        out[stem] = p
    if "data" not in out:
        raise InvalidArgument("no data file: not a version made by add_array")
    return out
