"""Reading the prediction log back: its segments, and their rows as one table.

::

    from cairn.serving.predlog_read import read, segments

    for seg in segments(client, "fraud", version="1.0.0", since="2025-01-01T10:00"):
        print(seg.version, seg.hour, seg.path, seg.size)
    table = read(client, "fraud", since="2025-01-01T10:00", columns=["prediction"])
    frame = table.to_pandas()

``since`` and ``until`` (datetimes, ISO 8601 text, or epoch seconds; naive ones are UTC)
select segments by their hour and rows by their timestamp (``since <= t < until``).
Everything goes through the public :class:`cairn.Client`, so it reads a local store and a
team server alike.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..errors import InvalidArgument
from .predlog_rows import BASE
from .predlog_runs import ROOT, SEGMENT, ServingRun, find_runs

HOUR = dt.timedelta(hours=1)
When = dt.datetime | str | float | int | None


@dataclass(frozen=True, slots=True)
class Segment:
    """One Parquet file of the log: the requests of one writer, version and UTC hour."""

    model: str
    version: str
    run_id: str
    path: str           # the artifact path: predictions/YYYY-MM-DD/HH/<writer>-<seq>.parquet
    hour: dt.datetime   # the UTC hour its requests arrived in
    writer: str
    seq: int
    size: int           # bytes


def when(value: When, what: str = "time") -> dt.datetime | None:
    """A point in time as an aware UTC datetime (naive values are taken as UTC)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidArgument(f"{what} {value!r} is not a time")
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidArgument(f"{what} {value!r} is not an ISO 8601 time; give e.g. "
                                  "2025-01-31, 2025-01-31T14:00 or 2025-01-31T14:00:00+02:00"
                                  ) from None
    if not isinstance(value, dt.datetime):
        raise InvalidArgument(f"{what} {value!r} is not a time")
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def segments(client: Any, model: str, version: str | None = None, since: When = None,
             until: When = None) -> list[Segment]:
    """The segments of ``model`` (one version, or all) whose hour overlaps
    ``[since, until)``, ordered by version, hour, writer and sequence."""
    start, end = when(since, "since"), when(until, "until")
    if start is not None and end is not None and end <= start:
        raise InvalidArgument(f"until ({end.isoformat()}) must be after since "
                              f"({start.isoformat()})")
    if version is not None:
        version = _canonical(version)
    out: list[Segment] = []
    for run in find_runs(client, model, version):
        out.extend(_segments_of(client, run, start, end))
    return sorted(out, key=lambda s: (s.version, s.hour, s.writer, s.seq, s.run_id))


def _segments_of(client: Any, run: ServingRun, start: dt.datetime | None,
                 end: dt.datetime | None) -> Iterable[Segment]:
    for entry in client.list_artifacts(run.run_id, ROOT):
        m = SEGMENT.fullmatch(entry.path)
        if m is None:
            continue  # not a segment (something else someone put there)
        hour = dt.datetime.strptime(f"{m[1]} {m[2]}", "%Y-%m-%d %H").replace(
            tzinfo=dt.timezone.utc)
        if (start is not None and hour + HOUR <= start) or (end is not None and hour >= end):
            continue
        yield Segment(run.model, run.version, run.run_id, entry.path, hour, m[3], int(m[4]),
                      entry.size)


def read_segment(client: Any, segment: Segment, columns: Sequence[str] | None = None,
                 since: When = None, until: When = None, *, cache: Path | None = None) -> Any:
    """One segment as a pyarrow table (rows in ``[since, until)``; only ``columns`` that it
    has, when given).  ``cache``: a folder to download into (a temporary one by default)."""
    import pyarrow.parquet as pq

    if cache is None:
        with tempfile.TemporaryDirectory(prefix="cairn-predlog-") as tmp:
            return read_segment(client, segment, columns, since, until, cache=Path(tmp))
    local = client.download_artifacts(segment.run_id, segment.path, cache / segment.run_id)
    table = pq.read_table(local)
    table = _between(table, when(since, "since"), when(until, "until"))
    if columns is not None:
        table = table.select([c for c in columns if c in table.column_names])
    return table


def summary(client: Any, found: Sequence[Segment], *,
            progress: Callable[[Segment], None] | None = None) -> list[dict[str, Any]]:
    """The :func:`segments` ``found`` per version and hour: ``{"version", "hour",
    "segments", "rows", "bytes"}`` (rows are read from each segment's Parquet footer, so
    every segment is fetched once; whole segments are counted, whatever since/until)."""
    import pyarrow.parquet as pq

    groups: dict[tuple[str, dt.datetime], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="cairn-predlog-") as tmp:
        for seg in found:
            local = client.download_artifacts(seg.run_id, seg.path, Path(tmp) / seg.run_id)
            rows = pq.read_metadata(local).num_rows
            local.unlink()
            g = groups.setdefault((seg.version, seg.hour), {
                "version": seg.version, "hour": seg.hour, "segments": 0, "rows": 0,
                "bytes": 0})
            g["segments"] += 1
            g["rows"] += rows
            g["bytes"] += seg.size
            if progress is not None:
                progress(seg)
    return list(groups.values())


def read(client: Any, model: str, version: str | None = None, since: When = None,
         until: When = None, columns: Sequence[str] | None = None, *,
         progress: Callable[[Segment], None] | None = None) -> Any:
    """Every row of the log of ``model`` (one version, or all) in ``[since, until)`` as one
    pyarrow table, oldest first.  Columns that only some segments have are null elsewhere;
    a column typed differently in two segments (one fell back to text) is read as text.
    ``progress`` is called after each segment is read."""
    return read_segments(client, segments(client, model, version, since, until), since, until,
                         columns, progress=progress)


def read_segments(client: Any, found: Sequence[Segment], since: When = None,
                  until: When = None, columns: Sequence[str] | None = None, *,
                  progress: Callable[[Segment], None] | None = None) -> Any:
    """The rows of the :func:`segments` ``found`` in ``[since, until)``, as :func:`read`."""
    import pyarrow as pa

    tables = []
    with tempfile.TemporaryDirectory(prefix="cairn-predlog-") as tmp:
        for seg in found:
            tables.append(read_segment(client, seg, columns, since, until, cache=Path(tmp)))
            if progress is not None:
                progress(seg)
    if not tables:
        return _empty(columns)
    table = concat(tables)
    if "timestamp" in table.column_names:
        table = table.sort_by("timestamp")
    if columns is not None:
        table = table.select([c for c in columns if c in table.column_names])
    return table if table.num_columns else pa.table({})


def concat(tables: Sequence[Any]) -> Any:
    """Tables of segments as one: missing columns null, conflicting types as text."""
    import pyarrow as pa

    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowException, ValueError, TypeError):
        pass
    types: dict[str, set] = {}
    for t in tables:
        for f in t.schema:
            types.setdefault(f.name, set()).add(f.type)
    clash = {name for name, ts in types.items() if len(ts) > 1}
    return pa.concat_tables([_as_text(t, clash) for t in tables], promote_options="permissive")


def _as_text(table: Any, names: set) -> Any:
    from .predlog_rows import text_array

    for name in names & set(table.column_names):
        i = table.column_names.index(name)
        table = table.set_column(i, name, text_array(table[name].to_pylist()))
    return table


def _between(table: Any, start: dt.datetime | None, end: dt.datetime | None) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    if start is None and end is None:
        return table
    ts = table["timestamp"]
    mask = None
    if start is not None:
        mask = pc.greater_equal(ts, pa.scalar(start, ts.type))
    if end is not None:
        below = pc.less(ts, pa.scalar(end, ts.type))
        mask = below if mask is None else pc.and_(mask, below)
    return table.filter(mask)


def _empty(columns: Sequence[str] | None) -> Any:
    """The log's base columns, no rows: what an empty log reads as."""
    import pyarrow as pa

    types = {"request_id": pa.string(), "timestamp": pa.timestamp("ms", tz="UTC"),
             "model_version": pa.string(), "arm": pa.string(), "latency_ms": pa.float64(),
             "status": pa.int32()}
    names = [c for c in (columns if columns is not None else BASE) if c in types]
    return pa.table({c: pa.array([], types[c]) for c in names})



def _canonical(version: str) -> str:
    """The version as the registry writes it, or InvalidArgument saying what a version is
    (a mistyped one would otherwise list nothing, silently)."""
    from ..registry.semver import SemVer

    return str(SemVer.parse(version))
