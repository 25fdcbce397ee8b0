"""Reading and writing the tables ``cairn predict`` scores: Parquet, CSV and JSON lines.

A :class:`Source` hands out the input in chunks of at most ``batch_rows`` rows, each with
how far it moves the progress bar (rows for Parquet, whose footer counts them; bytes for
CSV and JSON lines, which would have to be read twice to count rows).  A writer appends
chunks to one open file; every chunk after the first is fitted to the first one's
columns, so a column that pandas read as integers in one chunk and as floats in the next
still makes one table.  Nothing here knows about models; :mod:`cairn.serving.batch`
drives both ends.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import InvalidArgument, MissingDependency
from .inputs import pandas

FORMATS = ("parquet", "csv", "jsonl")
_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl",
             ".ndjson": "jsonl"}


def format_of(path: Path, given: str | None, option: str) -> str:
    """``given``, or the format ``path``'s extension names; an unknown one is an error that
    names the option to pass (``.json`` too: it may hold one array rather than lines)."""
    if given is not None:
        if given not in FORMATS:
            raise InvalidArgument(f"{option} {given!r}: give one of {', '.join(FORMATS)}")
        return given
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise InvalidArgument(f"cannot tell the format of {path} from its extension; give "
                              f"{option} ({' or '.join(FORMATS)})", path=str(path))
    return fmt


def require(formats: set[str]) -> None:
    """pandas always; pyarrow where Parquet is read or written (CSV and JSON lines do
    without it)."""
    find_spec = importlib.util.find_spec  # looked up per call: tests take a package away
    missing = [m for m in ("pandas",) if find_spec(m) is None]
    if "parquet" in formats and find_spec("pyarrow") is None:
        missing.append("pyarrow")
    if missing:
        raise MissingDependency(f"batch scoring needs {', '.join(missing)}: "
                                "pip install 'cairn[serve]'", packages=missing)


@dataclass
class Source:
    """The input, opened: ``total`` units (``unit`` "rows" or "bytes") in ``chunks``."""

    total: int | None
    unit: str
    chunks: Iterator[tuple[Any, int]]  # (a data frame, how far it moves the progress bar)
    close: Callable[[], None]


def open_source(path: Path, fmt: str, batch_rows: int) -> Source:
    handle = open(path, "rb")
    try:
        if fmt == "parquet":
            return _parquet(path, handle, batch_rows)
        size = os.fstat(handle.fileno()).st_size
        chunks = _csv(path, handle, batch_rows) if fmt == "csv" else \
            _jsonl(path, handle, batch_rows)
        return Source(size, "bytes", chunks, handle.close)
    except BaseException:
        handle.close()
        raise


def _parquet(path: Path, handle: Any, batch_rows: int) -> Source:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(handle)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidArgument(f"{path} is not a Parquet file: {exc}", path=str(path)) from None

    def chunks() -> Iterator[tuple[Any, int]]:
        for batch in pf.iter_batches(batch_size=batch_rows):
            yield batch.to_pandas(), batch.num_rows

    return Source(pf.metadata.num_rows, "rows", chunks(), handle.close)


def _csv(path: Path, handle: Any, batch_rows: int) -> Iterator[tuple[Any, int]]:
    pd = pandas()
    try:
        # pandas' own chunks: each is typed on its own, and validate.conform casts the
        # signature's columns, so a chunk boundary never changes what the model sees.
        reader = pd.read_csv(handle, chunksize=batch_rows)
        done = 0
        for df in reader:
            pos = handle.tell()  # pandas reads ahead: the bar moves by what it has read
            yield df, pos - done
            done = pos
    except (ValueError, UnicodeDecodeError) as exc:  # ParserError, EmptyDataError
        raise InvalidArgument(f"{path} is not a CSV table with a header row: {exc}",
                              path=str(path)) from None


def _jsonl(path: Path, handle: Any, batch_rows: int) -> Iterator[tuple[Any, int]]:
    pd = pandas()
    rows: list[dict[str, Any]] = []
    done = 0
    for number, line in enumerate(handle, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:  # UnicodeDecodeError too
            raise InvalidArgument(f"{path} line {number} is not JSON: {exc}",
                                  path=str(path), line=number) from None
        if not isinstance(row, dict):
            raise InvalidArgument(f"{path} line {number} is not a JSON object "
                                  '({"column": value, ...} per line)', path=str(path), line=number)
        rows.append(row)
        if len(rows) == batch_rows:
            pos = handle.tell()
            yield pd.DataFrame.from_records(rows), pos - done
            rows, done = [], pos
    if rows:
        yield pd.DataFrame.from_records(rows), handle.tell() - done


class Writer:
    """Appends chunks to ``path`` in ``fmt``; :meth:`close` finishes the file."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path = path
        self.fmt = fmt
        self.columns: list[str] | None = None
        self._file: Any = None
        self._parquet: Any = None

    def write(self, df: Any) -> None:
        df = self._align(df)
        if self.fmt == "parquet":
            self._write_parquet(df)
        elif self.fmt == "csv":
            first = self._file is None
            if first:
                self._file = open(self.path, "w", encoding="utf-8", newline="")
            # pandas writes floats with repr: they read back exactly.
            df.to_csv(self._file, header=first, index=False, lineterminator="\n")
        else:
            if self._file is None:
                self._file = open(self.path, "w", encoding="utf-8")
            for row in df.to_dict("records"):
                self._file.write(json.dumps({k: json_value(v) for k, v in row.items()},
                                            allow_nan=False, default=str) + "\n")

    def _align(self, df: Any) -> Any:
        """The first chunk's columns, in its order: a column missing from a later chunk (JSON
        lines whose rows all lack a key) is null there; a new one cannot join the table."""
        names = [str(c) for c in df.columns]
        if self.columns is None:
            self.columns = names
            return df
        extra = [n for n in names if n not in self.columns]
        if extra:
            raise InvalidArgument(f"column(s) {', '.join(repr(n) for n in extra)} appear after "
                                  "the first batch; the output's columns are fixed by its "
                                  "first rows (give --batch-rows larger, or the column in "
                                  "every row)", columns=extra)
        return df if names == self.columns else df.reindex(columns=self.columns)

    def _write_parquet(self, df: Any) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pa.Table.from_pandas(df, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.path, table.schema)
            elif not table.schema.equals(self._parquet.schema, check_metadata=False):
                # Integers in one chunk, floats in the next (CSV, JSON lines): the first
                # chunk's types win where the values fit them.
                table = table.cast(self._parquet.schema)
        except (pa.ArrowException, ValueError) as exc:
            raise InvalidArgument(f"these rows cannot be written as Parquet beside the earlier "
                                  f"ones: {exc}") from None
        self._parquet.write_table(table)

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._file is not None:
            self._file.close()


def json_value(value: Any) -> Any:
    """A cell as a JSON value: numpy scalars as numbers, NaN, infinities and NaT as null (JSON
    has no infinity), times as ISO."""
    import datetime

    if hasattr(value, "tolist"):  # numpy scalars and arrays (a column of vectors)
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if type(value).__name__ == "NaTType" or value is None:
        return None
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return value
