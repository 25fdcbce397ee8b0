"""The prediction log cut into time windows, its columns named as the model's features.

::

    length = parse_window("1h")
    spans = spans_between(since, until, length)          # [(start, end), ...] on the hour
    log = read_log(client, "fraud", "1.2.0", spans[0][0], spans[-1][1])
    for (start, end), rows in zip(spans, log.split(spans)):
        rows.columns                                     # {"amount": pyarrow array, ...}

Windows are tumbling and aligned to the epoch in UTC (``1h`` windows start on the hour,
``1d`` at midnight UTC), so two runs of the same command cut the log the same way.  Only
answered requests (status 200) are read: a failed request has no inputs.  Columns
``input.<feature>`` become ``<feature>`` and ``prediction`` / ``prediction.<col>`` keep
their names (see ``cairn.serving.predlog_rows``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import InvalidArgument

_WINDOW = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_WINDOWS = 10_000  # windows one report may cover: a typo (1s over a year) is refused
DEFAULT_WINDOWS = 24  # without --since: the last this many windows
INPUT_PREFIX = "input."
PREDICTION = "prediction"

Span = tuple[dt.datetime, dt.datetime]


def parse_window(text: Any) -> dt.timedelta:
    """``"15m"``, ``"1h"``, ``"1d"`` (s, m, h, d, w), a timedelta, or seconds, as a timedelta."""
    if isinstance(text, dt.timedelta):
        seconds = text.total_seconds()
    elif isinstance(text, bool):
        raise InvalidArgument(f"window {text!r} is not a duration; give e.g. 15m, 1h or 1d")
    elif isinstance(text, (int, float)):
        seconds = float(text)
    elif isinstance(text, str):
        m = _WINDOW.fullmatch(text.strip().lower())
        if m is None or len(m[1]) > 12:  # past a year anyway; int() of 4,300 digits raises
            raise InvalidArgument(f"window {_shown(text)!r} is not a duration; give a whole "
                                  "number and a unit: 30s, 15m, 1h, 1d or 1w")
        seconds = int(m[1]) * _UNITS[m[2]]
    else:
        raise InvalidArgument(f"window {text!r} is not a duration; give e.g. 15m, 1h or 1d")
    # The range first: int() of an infinity raises OverflowError, not our error.
    if not seconds >= 1 or seconds > 366 * 86400 or seconds != int(seconds):
        raise InvalidArgument(f"window {_shown(str(text))!r} must be a whole number of seconds, "
                              "at least 1s and at most a year")
    return dt.timedelta(seconds=int(seconds))


def spans_between(since: dt.datetime | None, until: dt.datetime | None,
                  length: dt.timedelta, now: dt.datetime | None = None) -> list[Span]:
    """The windows of ``length`` that overlap ``[since, until)``, aligned to the epoch.
    ``until`` defaults to ``now``; ``since`` to :data:`DEFAULT_WINDOWS` windows before it."""
    step = int(length.total_seconds())
    end = until or now or dt.datetime.now(dt.timezone.utc)
    end_s = _ceil(end.timestamp(), step)
    start_s = _floor(since.timestamp(), step) if since is not None else end_s - DEFAULT_WINDOWS * step
    if end_s <= start_s:
        raise InvalidArgument(f"until ({end.isoformat()}) must be after since "
                              f"({since.isoformat() if since else '?'})")
    count = (end_s - start_s) // step
    if count > MAX_WINDOWS:
        raise InvalidArgument(f"{count:,} windows of {length} between since and until; at most "
                              f"{MAX_WINDOWS:,}: give a longer --window or a shorter range")
    utc = dt.timezone.utc
    return [(dt.datetime.fromtimestamp(s, utc), dt.datetime.fromtimestamp(s + step, utc))
            for s in range(start_s, end_s, step)]


def _floor(t: float, step: int) -> int:
    return int(t // step) * step


def _ceil(t: float, step: int) -> int:
    f = _floor(t, step)
    return f if f == t else f + step


def feature_name(column: str) -> str | None:
    """The feature a log column holds (``input.amount`` -> ``amount``; ``prediction`` and
    ``prediction.<col>`` as they are), or None for the log's own columns."""
    if column.startswith(INPUT_PREFIX):
        return column[len(INPUT_PREFIX):]
    if column == PREDICTION or column.startswith(PREDICTION + "."):
        return column
    return None


@dataclass(frozen=True, slots=True)
class Rows:
    """The answered requests of one span: a pyarrow array per feature (and prediction)."""

    start: dt.datetime
    end: dt.datetime
    count: int
    columns: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Log:
    """Answered rows of the log in time order, as features."""

    timestamps: Any            # numpy int64, ms since the epoch
    columns: dict[str, Any]    # feature -> pyarrow array
    skipped: tuple[str, ...]   # log columns that are no feature (JSON text of >2-D inputs)

    @property
    def count(self) -> int:
        return int(self.timestamps.size)

    def split(self, spans: Sequence[Span]) -> list[Rows]:
        """One :class:`Rows` per span (an empty one where nothing was answered)."""
        import numpy as np

        bounds = np.array([int(s.timestamp() * 1000) for s, _ in spans]
                          + [int(spans[-1][1].timestamp() * 1000)] if spans else [], np.int64)
        cuts = np.searchsorted(self.timestamps, bounds, side="left")
        out = []
        for i, (start, end) in enumerate(spans):
            lo, hi = int(cuts[i]), int(cuts[i + 1])
            out.append(Rows(start, end, hi - lo,
                            {k: v.slice(lo, hi - lo) for k, v in self.columns.items()}))
        return out


def read_log(client: Any, model: str, version: str | None, since: dt.datetime,
             until: dt.datetime) -> Log:
    """The answered rows of ``model`` (``version``, or all) in ``[since, until)``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from ..serving.predlog_read import read

    table = read(client, model, version, since, until)
    if "status" in table.column_names:
        table = table.filter(pc.equal(table["status"], 200))
    if table.num_rows and "timestamp" in table.column_names:
        ts = table["timestamp"].cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
        stamps = np.asarray(ts.to_numpy(zero_copy_only=False), np.int64)
    else:
        stamps = np.empty(0, np.int64)
    columns: dict[str, Any] = {}
    skipped = []
    for name in table.column_names:
        feature = feature_name(name)
        if name == "input":  # a 1-D input's values, or JSON text of a deeper input
            if pa.types.is_string(table[name].type) or pa.types.is_large_string(table[name].type):
                skipped.append(name)
                continue
            feature = name
        if feature is None:
            continue
        columns[feature] = table[name].combine_chunks()
    return Log(stamps, columns, tuple(skipped))


def _shown(text: str) -> str:
    """Text safe to print: a lone surrogate (undecodable bytes in argv) as its escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
