"""Ground truth for served predictions: labels sent back by request id, checked and stored.

::

    from cairn.serving.feedback import record_feedback, read_labels

    result = record_feedback(client, "fraud", [{"request_id": "order-7", "label": 1},
                                               {"request_id": "", "label": 0}])
    result.stored, result.rejected        # 1, ((1, "request_id must be ..."),)
    labels = read_labels(client, "fraud")  # {"order-7": Label(...)}, the latest per id

A label does not know which version answered its request, so labels are kept per *model*:
Parquet segments ``feedback/YYYY-MM-DD/HH/<writer>-<seq>.parquet`` (the UTC hour they were
received) as artifacts of one run in experiment ``cairn-serving`` tagged
``cairn.feedback.model=NAME``.  Everything goes through the public :class:`cairn.Client`,
so a local store and a team server behave the same, and any process (the serving one, the
CLI, a monitor) reads what the others wrote.  A label sent again for the same request id
replaces the earlier one (the later one received wins).
"""

from __future__ import annotations

import json
import logging
import math
import re
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import CairnError, InvalidArgument, NotFound

log = logging.getLogger("cairn.serving")

EXPERIMENT = "cairn-serving"
MODEL_TAG = "cairn.feedback.model"
ROOT = "feedback"
SEGMENT = re.compile(r"feedback/(\d{4}-\d{2}-\d{2})/(\d{2})/([A-Za-z0-9_.]+)-(\d+)\.parquet")
MAX_ID = 128
MAX_TEXT = 256
MAX_RECORDS = 1_000_000  # labels in one call: a whole day's file, not an unbounded one

Value = bool | int | float | str


@dataclass(frozen=True, slots=True)
class Label:
    """One ground-truth label: the request it is for, its value, and when it was true
    (``timestamp``, epoch seconds, optional) and received (``received``)."""

    request_id: str
    label: Value
    timestamp: float | None = None
    received: float = 0.0


@dataclass(frozen=True, slots=True)
class Rejected:
    index: int
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "error": self.error}


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    """What one call stored, and each record it refused (its index in the batch, why)."""

    model: str
    stored: int
    rejected: tuple[Rejected, ...]
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "stored": self.stored, "run_id": self.run_id,
                "rejected": [r.to_dict() for r in self.rejected]}


# -- checking ---------------------------------------------------------------------------

def _shown(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def check_text(value: Any, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidArgument(f"{what} must not be empty")
    if len(value) > limit:
        raise InvalidArgument(f"{what} is {len(value)} characters; at most {limit}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(f"{what} {_shown(value)[:60]!r} holds a lone surrogate, which "
                              "is no text") from None
    return value


def check_label(value: Any) -> Value:
    """A label's value: a bool, an int, a finite float, or text of at most 256 characters."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > 2**63 - 1:
            raise InvalidArgument(f"label {value} is out of the 64-bit integer range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgument(f"label {value!r} is not a finite number")
        return value
    type_name = type(value).__name__
    item = getattr(value, "item", None)  # a NumPy scalar (from a Parquet or CSV column)
    if callable(item) and type_name.startswith(("int", "uint", "float", "bool", "str")):
        return check_label(item())
    if isinstance(value, str):
        return check_text(value, "label", MAX_TEXT)
    if value is None:
        raise InvalidArgument("label is missing (null)")
    raise InvalidArgument(f"label must be a number, a boolean or text, got {type_name}")


def check_timestamp(value: Any) -> float | None:
    """An optional time: epoch seconds (or milliseconds, when above 1e11) or ISO 8601 text."""
    if value is None:
        return None
    from .predlog_read import when

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise InvalidArgument(f"timestamp {value!r} is not a finite number")
        seconds = value / 1000 if abs(value) > 1e11 else float(value)
        if not 0 <= seconds < 253402300800:  # before year 10000
            raise InvalidArgument(f"timestamp {value!r} is out of range")
        return float(seconds)
    if hasattr(value, "timestamp") and callable(value.timestamp):  # datetime, pd.Timestamp
        return check_timestamp(value.timestamp())
    moment = when(value if isinstance(value, str) else _bad_time(value), "timestamp")
    assert moment is not None
    return moment.timestamp()


def _bad_time(value: Any) -> Any:
    raise InvalidArgument(f"timestamp must be epoch seconds or ISO 8601 text, got "
                          f"{type(value).__name__}")


def check_record(record: Any, received: float) -> Label:
    """One record (``{"request_id": ..., "label": ..., "timestamp": ...}``) as a Label."""
    if not isinstance(record, dict):
        raise InvalidArgument(f"a feedback record is an object with request_id and label, got "
                              f"{type(record).__name__}")
    extra = sorted(str(k) for k in record if k not in ("request_id", "label", "timestamp"))
    if extra:
        raise InvalidArgument(f"unknown field(s) {', '.join(_shown(k)[:40] for k in extra)}; "
                              "a record has request_id, label and optionally timestamp")
    if "request_id" not in record:
        raise InvalidArgument("request_id is missing")
    if "label" not in record:
        raise InvalidArgument("label is missing")
    rid = check_text(record["request_id"], "request_id", MAX_ID)
    return Label(rid, check_label(record["label"]), check_timestamp(record.get("timestamp")),
                 received)


def check_records(records: Any, received: float | None = None
                  ) -> tuple[list[Label], list[Rejected]]:
    """The valid labels of ``records`` (one record or a list), and why each other one was
    refused; one bad record never costs the others."""
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, (list, tuple)):
        raise InvalidArgument("feedback is a record or a list of records "
                              '({"request_id": "...", "label": 1})')
    if len(records) > MAX_RECORDS:
        raise InvalidArgument(f"{len(records):,} records in one call; at most {MAX_RECORDS:,}")
    now = time.time() if received is None else received
    labels: list[Label] = []
    rejected: list[Rejected] = []
    for i, record in enumerate(records):
        try:
            labels.append(check_record(record, now))
        except InvalidArgument as exc:
            rejected.append(Rejected(i, exc.message))
    return labels, rejected


def check_model(name: Any) -> str:
    return check_text(name, "model name", 256)


# -- storing ----------------------------------------------------------------------------

def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def find_runs(client: Any, model: str) -> list[str]:
    """The feedback runs of ``model``, oldest first (two processes starting at once may
    each make one; readers read them all)."""
    flt = f"tags.`{MODEL_TAG}` = {_quote(model)}"
    out: list[str] = []
    token = None
    while True:
        try:
            page = client.search_runs([EXPERIMENT], flt, ["attributes.start_time ASC"],
                                      max_results=1000, page_token=token)
        except NotFound:  # no experiment yet: nothing was ever stored
            return []
        out.extend(str(r.id) for r in page)
        token = page.token
        if not token:
            return out


class FeedbackStore:
    """Writes labels of one or more models as segments; the run of each model is found or
    made on first use (the constructor does no I/O)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.writer_id = uuid.uuid4().hex[:16]
        self._runs: dict[str, str] = {}
        self._seq = 0
        self._lock = threading.Lock()

    def run_for(self, model: str) -> str:
        with self._lock:
            run_id = self._runs.get(model)
            if run_id is None:
                found = find_runs(self.client, model)
                if found:
                    run_id = found[0]
                else:
                    exp = self.client.get_or_create_experiment(EXPERIMENT)
                    run_id = str(self.client.create_run(
                        exp.id, name=f"{model}-feedback", tags={MODEL_TAG: model}).id)
                self._runs[model] = run_id
            return run_id

    def write(self, model: str, labels: Sequence[Label]) -> str | None:
        """Store ``labels`` (one segment per UTC hour received); the run's id."""
        if not labels:
            return None
        run_id = self.run_for(model)
        hours: dict[str, list[Label]] = {}
        for lab in labels:
            hour = time.strftime("%Y-%m-%d/%H", time.gmtime(lab.received))
            hours.setdefault(hour, []).append(lab)
        with tempfile.TemporaryDirectory(prefix="cairn-feedback-") as tmp:
            for hour, part in hours.items():
                with self._lock:
                    self._seq += 1
                    seq = self._seq
                local = Path(tmp) / f"{self.writer_id}-{seq:06d}.parquet"
                _write(part, local)
                self.client.log_artifact(run_id, local, f"{ROOT}/{hour}")
        return run_id


def _write(labels: Sequence[Label], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "request_id": pa.array([lab.request_id for lab in labels], pa.string()),
        # JSON text keeps each label's type (1, 1.0, true and "1" differ) in one column.
        "label": pa.array([json.dumps(lab.label) for lab in labels], pa.string()),
        "timestamp": pa.array([None if lab.timestamp is None else int(lab.timestamp * 1000)
                               for lab in labels], pa.timestamp("ms", tz="UTC")),
        "received": pa.array([int(lab.received * 1000) for lab in labels],
                             pa.timestamp("ms", tz="UTC")),
    })
    pq.write_table(table, path)


def record_feedback(client: Any, model: str, records: Any) -> FeedbackResult:
    """Check ``records`` and store the valid ones as labels of ``model`` (which must be
    registered); the count stored and each record refused."""
    model = check_model(model)
    client.get_registered_model(model)  # NotFound for a mistyped name, before any write
    labels, rejected = check_records(records)
    run_id = FeedbackStore(client).write(model, labels)
    return FeedbackResult(model, len(labels), tuple(rejected), run_id)


# -- reading ----------------------------------------------------------------------------

class SegmentCache:
    """Parsed segments (of labels or of the prediction log) by store, run, path and size.
    A segment is written once, under a name no writer reuses, so a monitor that asks every
    30 seconds downloads each segment once.  Bounded by rows, oldest used first out."""

    def __init__(self, max_rows: int = 2_000_000) -> None:
        from collections import OrderedDict

        self.max_rows = max_rows
        self._items: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()
        self._rows = 0
        self._lock = threading.Lock()

    def get(self, key: tuple, load: Any) -> Any:
        """The value under ``key``, or ``load()`` (which returns (value, rows)) kept."""
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit[0]
        value, rows = load()
        with self._lock:
            if key not in self._items and rows <= self.max_rows:
                self._items[key] = (value, rows)
                self._rows += rows
                while self._rows > self.max_rows:
                    _, (_, n) = self._items.popitem(last=False)
                    self._rows -= n
        return value


SEGMENTS = SegmentCache()


def read_labels(client: Any, model: str, until: Any = None) -> dict[str, Label]:
    """Every label of ``model`` received before ``until`` (default: all), the latest
    received per request id."""
    import pyarrow.parquet as pq

    from .predlog_read import when

    end = when(until, "until")
    found: list[tuple[str, str, str, int]] = []  # (hour, path, run, size) sortable
    for run_id in find_runs(client, model):
        for entry in client.list_artifacts(run_id, ROOT):
            m = SEGMENT.fullmatch(entry.path)
            if m is None:
                continue
            if end is not None and f"{m[1]} {m[2]}" > end.strftime("%Y-%m-%d %H"):
                continue
            found.append((f"{m[1]} {m[2]}", entry.path, run_id, int(entry.size or 0)))
    rows: list[tuple[float, int, int, Label]] = []
    cutoff = None if end is None else end.timestamp()

    def load(run_id: str, path: str) -> tuple[list[Label], int]:
        with tempfile.TemporaryDirectory(prefix="cairn-feedback-") as tmp:
            local = client.download_artifacts(run_id, path, Path(tmp) / run_id)
            table = pq.read_table(local).to_pydict()
        out = [Label(rid, json.loads(text), None if ts is None else ts.timestamp(),
                     rec.timestamp())
               for rid, text, ts, rec in zip(table["request_id"], table["label"],
                                             table["timestamp"], table["received"])]
        return out, len(out)

    for order, (_hour, path, run_id, size) in enumerate(sorted(found)):
        try:
            part = SEGMENTS.get(("feedback", client.uri, run_id, path, size),
                                lambda r=run_id, p=path: load(r, p))
        except CairnError:
            raise  # the store failing: the caller sees it, and nothing is cached
        except Exception as exc:  # noqa: BLE001 - one unreadable segment, not all labels
            # An empty or corrupt segment (a writer killed mid-upload) is skipped, not
            # cached, and logged: every other segment's labels still count.
            log.warning("feedback: segment %s of run %s is unreadable, skipped: %s: %s",
                        path, run_id, type(exc).__name__, exc)
            continue
        for i, lab in enumerate(part):
            if cutoff is None or lab.received < cutoff:
                rows.append((lab.received, order, i, lab))
    rows.sort(key=lambda r: r[:3])
    return {r[3].request_id: r[3] for r in rows}


def read_file(path: str | Path) -> list[dict[str, Any]]:
    """The records of a Parquet or CSV file with columns request_id and label (and
    optionally timestamp)."""
    import pandas as pd  # type: ignore[import-untyped]

    p = Path(path)
    if not p.is_file():
        raise NotFound(f"no file {_shown(str(p))}")
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(p)
        else:
            # request_id as text: an id of digits must not become a number.
            frame = pd.read_csv(p, dtype={"request_id": str}, keep_default_na=False,
                                na_values={"label": [""], "timestamp": [""]})
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{_shown(str(p))} is not a readable Parquet or CSV file: {exc}"
                              ) from None
    missing = [c for c in ("request_id", "label") if c not in frame.columns]
    if missing:
        raise InvalidArgument(f"{_shown(str(p))} has no column(s) {', '.join(missing)}; it has "
                              f"{', '.join(map(str, frame.columns))}")
    extra = [c for c in frame.columns if c not in ("request_id", "label", "timestamp")]
    if extra:
        frame = frame.drop(columns=extra)
    import numpy as np

    out: list[dict[str, Any]] = []
    for rec in frame.to_dict("records"):
        rid = rec.get("request_id")
        if isinstance(rid, (int, np.integer)) and not isinstance(rid, (bool, np.bool_)):
            # A Parquet column of whole-number ids (order numbers): the id as text, as
            # the CSV reader keeps it, not every record refused.
            rec["request_id"] = str(int(rid))
        for key in ("label", "timestamp"):
            value = rec.get(key)
            # Only a scalar is NA or not: a list or array value (a Parquet list column)
            # is left for check_label to refuse, record by record.
            if value is not None and not isinstance(value, str) \
                    and pd.api.types.is_scalar(value) and pd.isna(value):
                if key == "label":
                    rec[key] = None
                else:
                    rec.pop(key)
        out.append(rec)
    return out


def labels_of(records: Iterable[Label]) -> dict[str, Value]:
    return {lab.request_id: lab.label for lab in records}
