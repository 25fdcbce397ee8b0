"""The prediction log: every answered request (or a sampled share) as Parquet segments.

:class:`PredictionLog` is an :class:`~cairn.serving.events.Observer`.  ``scored`` runs on
the event loop and does no work beyond a sampling hash and ``put_nowait`` on a bounded
queue: when the queue is full the request is counted as dropped and the answer goes on.
A daemon thread turns queued requests into pyarrow tables (:mod:`.predlog_rows`) and
writes one segment per (version, UTC hour) every ``flush_rows`` rows or ``flush_seconds``
seconds, as an artifact of the version's serving run (:mod:`.predlog_runs`).  A segment
that fails to upload is counted in ``failed_writes`` and tried once more later; if that
fails too its requests count as dropped.  Nothing is lost without being counted.

::

    log = PredictionLog(client, sample=0.1, exclude=("ssn",))
    deployment = deploy(reg, "models:/fraud@prod", observers=[log])
    ...
    log.close()            # writes what is buffered (bounded by close_timeout)
    log.stats()            # {"queued": 0, "dropped": 0, "written_rows": ..., ...}
"""

from __future__ import annotations

import collections

import hashlib
import logging
import queue
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import InvalidArgument
from .events import Scored
from .predlog_rows import as_text_table, build_table, event_columns
from .predlog_runs import RunSink, SegmentSink, hour_of, segment_dir

log = logging.getLogger("cairn.serving")

DEFAULT_QUEUE = 10_000
DEFAULT_FLUSH_ROWS = 5_000
DEFAULT_FLUSH_SECONDS = 30.0
DEFAULT_CLOSE_TIMEOUT = 30.0
# The queue is bounded in requests and in rows: a request can hold a whole table, and a
# store that is down must not let the queue grow to gigabytes before anything is dropped.
DEFAULT_QUEUED_ROWS = 1_000_000
_TICK = 0.2  # the writer's longest sleep: how soon it notices close()
_DRAIN = 0.05  # seconds between the writer's turns at the queue while requests arrive


def parse_exclude(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """``--log-exclude a,b`` as feature names: none empty, none twice."""
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(str(n).strip() for n in items)
    if isinstance(text, str) and not text.strip():
        return ()
    if any(not n for n in names):
        raise InvalidArgument(f"--log-exclude {text!r}: give feature names separated by "
                              "commas, e.g. --log-exclude ssn,email")
    if len(set(names)) != len(names):
        raise InvalidArgument(f"--log-exclude {text!r} names a feature twice")
    return names


def check_sample(share: Any) -> float:
    """``--log-sample``: the share of requests kept, 0 < share <= 1."""
    try:
        value = float(share)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 < value <= 1.0:  # NaN fails too
        raise InvalidArgument(f"--log-sample {share!r}: give the share of requests to log, "
                              "more than 0 and at most 1 (0.1 logs one request in ten)")
    return value


def check_exclude(signature: Mapping[str, Any] | None, exclude: Iterable[str],
                  what: str = "the model") -> None:
    """Refuse ``--log-exclude`` names that ``signature``'s inputs do not have; a model
    without a signature (or with one that names no features) accepts any name."""
    names = list(exclude)
    schema = (signature or {}).get("inputs") or {}
    kind = schema.get("type")
    if kind == "dataframe":
        known = [str(c.get("name")) for c in schema.get("columns", [])]
    elif kind == "dict":
        known = [str(k) for k in schema.get("fields", {})]
    elif kind == "tensor" and len(schema.get("shape", ())) == 2 and schema["shape"][1] != -1:
        known = [str(j) for j in range(int(schema["shape"][1]))]
    else:
        return
    unknown = sorted(n for n in names if n not in known)
    if unknown:
        raise InvalidArgument(f"--log-exclude names {', '.join(map(repr, unknown))}, which "
                              f"{what}'s input does not have; its features are "
                              f"{', '.join(known) or '(none)'}", unknown=unknown)


def keeps(request_id: str, share: float, salt: str | bytes = "") -> bool:
    """Whether a request is in the sampled share: decided by its id's hash, so the same
    request is kept (or not) by every worker and on every replay.  ``salt``, a secret of
    the deployment, keeps a caller (who chooses its own request ids) from picking ids that
    are never logged."""
    if share >= 1.0:
        return True
    digest = hashlib.blake2b(request_id.encode("utf-8", "surrogatepass"), digest_size=8,
                             key=salt if isinstance(salt, bytes)
                             else salt.encode("utf-8", "surrogatepass")[:64]).digest()
    return int.from_bytes(digest, "big") < share * 2**64


@dataclass
class _Buffer:
    """Requests waiting to be written for one (model, version, hour)."""

    started: float  # monotonic time of the first request: flush_seconds counts from it
    events: list[Scored] = field(default_factory=list)
    parts: list[Any] = field(default_factory=list)
    rows: int = 0


@dataclass
class _Segment:
    """A written segment file on its way to the store (kept for a second try)."""

    model: str
    version: str
    directory: str
    path: Path
    rows: int
    requests: int
    retry_at: float


class PredictionLog:
    """An observer that writes answered requests to Parquet segments in the background.

    ``client``: a :class:`cairn.Client` (a local store or a team server); or pass ``sink``,
    anything with ``upload(model, version, directory, local_path)``.  The constructor does
    no I/O and starts nothing; the writer thread starts with the first request.
    """

    status_name = "prediction_log"  # where GET /v1/status shows stats()

    def __init__(self, client: Any = None, *, sink: SegmentSink | None = None,
                 sample: float = 1.0, exclude: Iterable[str] = (),
                 max_queue: int = DEFAULT_QUEUE, flush_rows: int = DEFAULT_FLUSH_ROWS,
                 flush_seconds: float = DEFAULT_FLUSH_SECONDS,
                 close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
                 retry_seconds: float | None = None, salt: str = "",
                 max_queued_rows: int = DEFAULT_QUEUED_ROWS) -> None:
        if (client is None) == (sink is None):
            raise InvalidArgument("PredictionLog takes a client or a sink (one of them)")
        for label, value in (("max_queue", max_queue), ("flush_rows", flush_rows)):
            if not isinstance(value, int) or value < 1:
                raise InvalidArgument(f"{label} must be a positive integer, got {value!r}")
        for label, seconds in (("flush_seconds", flush_seconds),
                               ("close_timeout", close_timeout)):
            if not seconds > 0:
                raise InvalidArgument(f"{label} must be more than 0 seconds, got {seconds!r}")
        self.sink: SegmentSink = sink if sink is not None else RunSink(client)
        self.sample = check_sample(sample)
        self.salt = salt
        self._key = salt.encode("utf-8", "surrogatepass")[:64]  # blake2b's key, made once
        if not isinstance(max_queued_rows, int) or max_queued_rows < 1:
            raise InvalidArgument(f"max_queued_rows must be a positive integer, got "
                                  f"{max_queued_rows!r}")
        self.max_queued_rows = max_queued_rows
        self._queued_rows = 0
        self.exclude = frozenset(parse_exclude(exclude))
        self.flush_rows = flush_rows
        self.flush_seconds = float(flush_seconds)
        self.close_timeout = float(close_timeout)
        self.retry_seconds = float(flush_seconds if retry_seconds is None else retry_seconds)
        self.writer_id = uuid.uuid4().hex[:16]  # segment names of this process never collide
        self._queue: queue.Queue[Scored] = queue.Queue(max_queue)
        self._lock = threading.Lock()
        self._counts = {"dropped": 0, "sampled_out": 0, "written_rows": 0,
                        "written_segments": 0, "failed_writes": 0}
        self._seq = 0
        # Drops per (model, version) not yet recorded in the store, where monitors read them
        # (the metric ``predlog.dropped`` of the version's serving run).
        self._unreported: collections.Counter[tuple[str, str]] = collections.Counter()
        self._report_after = 0.0  # monotonic time before which a refused report waits
        self._buffers: dict[tuple[str, str, Any], _Buffer] = {}
        self._failed: list[_Segment] = []
        self._closing = threading.Event()
        self._hurry = threading.Event()  # the queue is half full, or close(): no pause
        self._in_hand = 0  # requests the writer has taken off the queue, not yet buffered
        self._closed = False
        self._thread: threading.Thread | None = None
        self._tmp: Path | None = None

    # -- the event loop's side: never blocks ------------------------------------------
    def scored(self, event: Scored) -> None:
        if not keeps(event.request_id, self.sample, self._key):
            self._count("sampled_out")
            return
        if self._closed:
            self._dropped(event.model, event.version)
            return
        if self._thread is None:
            self._start()
        rows = max(event.rows, 1)
        with self._lock:
            if self._queued_rows + rows > self.max_queued_rows:
                self._dropped_locked(event.model, event.version, 1)
                return
            self._queued_rows += rows
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            with self._lock:
                self._queued_rows -= rows
                self._dropped_locked(event.model, event.version, 1)
            return
        if self._queue.qsize() * 2 >= self._queue.maxsize:
            self._hurry.set()

    def stats(self) -> dict[str, int]:
        """``queued`` (requests waiting for the writer), ``buffered_rows`` (rows not yet in a
        segment), ``dropped`` (requests not logged: the queue was full, the log closed, or a
        segment failed twice), ``sampled_out``, ``written_rows``, ``written_segments``,
        ``failed_writes`` (upload attempts that failed)."""
        with self._lock:
            counts = dict(self._counts)
            buffered = sum(b.rows for b in list(self._buffers.values()))
            in_hand = self._in_hand
        return {"queued": self._queue.qsize() + in_hand, "buffered_rows": buffered, **counts}

    def close(self, timeout: float | None = None) -> None:
        """Write everything queued and buffered, then stop (waits at most ``timeout``
        seconds, by default ``close_timeout``; what is left then is logged as lost)."""
        self._closed = True
        self._closing.set()
        self._hurry.set()
        thread = self._thread
        if thread is not None:
            thread.join(self.close_timeout if timeout is None else timeout)
            if thread.is_alive():
                s = self.stats()
                log.error("the prediction log did not finish writing in time: %d queued "
                          "request(s) and %d buffered row(s) are not logged", s["queued"],
                          s["buffered_rows"])
                return
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    # -- the writer thread --------------------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cairn-predlog",
                                                daemon=True)
                self._thread.start()

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def _dropped(self, model: str, version: str, n: int = 1) -> None:
        with self._lock:
            self._dropped_locked(model, version, n)

    def _dropped_locked(self, model: str, version: str, n: int) -> None:
        self._counts["dropped"] += n
        self._unreported[(model, version)] += n

    def _report_drops(self, final: bool = False) -> None:
        """Record the drops since the last report as ``predlog.dropped`` points (a count per
        report, timed now), so that an alert rule can watch them from another process; a
        report the store refuses is kept and tried again with the next one."""
        record = getattr(self.sink, "record_dropped", None)
        with self._lock:
            pending = {k: n for k, n in self._unreported.items() if n}
        if record is None or not pending:
            return
        if not final and time.monotonic() < self._report_after:
            return  # the store refused the last report: wait as a failed segment does
        now = int(time.time() * 1000)
        for (model, version), n in pending.items():
            try:
                record(model, version, n, now)
            except Exception as exc:  # noqa: BLE001 (the store is down: the reason drops happen)
                self._report_after = time.monotonic() + self.retry_seconds
                log.warning("prediction log: could not record %d dropped request(s) of %s %s "
                            "(will try again): %s", n, model, version,
                            getattr(exc, "message", exc))
                continue
            with self._lock:
                self._unreported[(model, version)] -= n

    def _run(self) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="cairn-predlog-"))
        while True:
            closing = self._closing.is_set()
            try:
                first = self._queue.get(timeout=0 if closing else self._wait())
            except queue.Empty:
                if closing:
                    break
                events = []
            else:
                events = self._take(first)
            for event in events:
                try:
                    self._add(event)
                except Exception:  # noqa: BLE001 (a bug converting one request: count it)
                    log.exception("prediction log: request %s could not be converted",
                                  event.request_id)
                    self._dropped(event.model, event.version)
            self._flush(force=False)
            self._retry(force=False)
            self._report_drops()
            if events and not closing:
                # Let requests gather before the next turn: woken by every request, this
                # thread would take Python's GIL from the threads answering them a hundred
                # times a second.  A queue half full (or close()) cuts the pause short.
                self._hurry.wait(_DRAIN)
                self._hurry.clear()
        self._flush(force=True)
        self._retry(force=True)
        self._report_drops(final=True)

    def _take(self, first: Scored) -> list[Scored]:
        """``first`` and every request queued behind it, without waiting; they count as
        queued until each is buffered."""
        events = [first]
        try:
            while True:
                events.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        with self._lock:
            self._in_hand += len(events)
        return events

    def _wait(self) -> float:
        """Seconds until the oldest buffer or a failed segment is due (at most a tick)."""
        now = time.monotonic()
        due = [b.started + self.flush_seconds for b in self._buffers.values()]
        due += [f.retry_at for f in self._failed]
        return max(0.0, min([now + _TICK, *due]) - now)

    def _add(self, event: Scored) -> None:
        # Queued until converted into a buffer (in the same lock, so stats() never misses
        # it), whatever the upload does next.
        try:
            n, cols = event_columns(event, self.exclude)
            key = (event.model, event.version, hour_of(event.started))
        except BaseException:
            with self._lock:
                self._queued_rows -= max(event.rows, 1)
                self._in_hand -= 1
            raise
        with self._lock:
            self._queued_rows -= max(event.rows, 1)
            self._in_hand -= 1
            buf = self._buffers.get(key)
            if buf is None:
                buf = self._buffers[key] = _Buffer(time.monotonic())
            buf.events.append(event)
            buf.parts.append((n, cols))
            buf.rows += n
        if buf.rows >= self.flush_rows:
            self._write(key)

    def _flush(self, force: bool) -> None:
        now = time.monotonic()
        for key, buf in list(self._buffers.items()):
            if force or now - buf.started >= self.flush_seconds:
                self._write(key)

    def _write(self, key: tuple[str, str, Any]) -> None:
        with self._lock:
            buf = self._buffers.pop(key)
            self._seq += 1
            seq = self._seq
        model, version, hour = key
        path = self._tmp / f"{self.writer_id}-{seq:06d}.parquet"  # type: ignore[operator]
        try:
            _write_parquet(build_table(buf.events, buf.parts), path)
        except Exception:  # noqa: BLE001 (counted, never silent)
            log.exception("prediction log: a segment of %d request(s) of %s %s could not be "
                          "built; they are not logged", len(buf.events), model, version)
            self._dropped(model, version, len(buf.events))
            return
        self._upload(_Segment(model, version, segment_dir(hour), path, buf.rows,
                              len(buf.events), time.monotonic() + self.retry_seconds),
                     last_try=False)

    def _retry(self, force: bool) -> None:
        now = time.monotonic()
        for item in list(self._failed):
            if force or now >= item.retry_at:
                self._failed.remove(item)
                self._upload(item, last_try=True)

    def _upload(self, seg: _Segment, last_try: bool) -> None:
        try:
            self.sink.upload(seg.model, seg.version, seg.directory, seg.path)
        except Exception as exc:  # noqa: BLE001 (the store is down, a full disk, ...)
            self._count("failed_writes")
            text = getattr(exc, "message", exc)
            if last_try:
                log.error("prediction log: segment %s/%s of %s %s failed to upload again; "
                          "its %d request(s) are dropped: %s", seg.directory, seg.path.name,
                          seg.model, seg.version, seg.requests, text)
                self._dropped(seg.model, seg.version, seg.requests)
                seg.path.unlink(missing_ok=True)
            else:
                log.warning("prediction log: segment %s/%s of %s %s failed to upload (will "
                            "try once more): %s", seg.directory, seg.path.name, seg.model,
                            seg.version, text)
                self._failed.append(seg)
            return
        seg.path.unlink(missing_ok=True)
        with self._lock:
            self._counts["written_rows"] += seg.rows
            self._counts["written_segments"] += 1


def _write_parquet(table: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    try:
        pq.write_table(table, path)
    except Exception:  # noqa: BLE001 (a type Parquet cannot hold: the columns as text)
        log.warning("prediction log: a segment did not write as typed; writing its input "
                    "and prediction columns as text", exc_info=True)
        pq.write_table(as_text_table(table), path)
