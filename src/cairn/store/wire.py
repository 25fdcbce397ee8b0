"""The wire format between the tracking server and its clients: entities <-> JSON, record frames.

Shared by the server (``cairn.server``) and the remote client store
(:mod:`cairn.store.http`), so both ends speak exactly one format.  No web framework
here: plain dicts, bytes and the error tree.

Record batches travel in one of two encodings:

* ``application/vnd.cairn.records`` — concatenated journal frames (``docs/formats.md``):
  the same bytes a client's spool holds, metric points packed as segments.  The fast path.
* JSON — ``{"batches": [BATCH, ...]}`` with ``BATCH`` as in :func:`batch_to_json`.

JSON cannot carry NaN or infinities, so floats that are not finite are written as the
strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` everywhere.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from typing import Any, Callable, Iterator, Mapping

from ..entities import Experiment, FileEntry, LatestMetric, RecordBatch, Run, RunStatus
from ..errors import CairnError, InvalidArgument
from . import journal as jlib
from .validation import (
    MAX_JSON_DEPTH, MAX_NAME, check_json, check_key, check_row_tags, check_text, param_value,
    tag_value,
)

RECORDS_TYPE = "application/vnd.cairn.records"
SEGMENT_TYPE = "application/vnd.cairn.segment"
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
MAX_ID = 64

_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


# -- floats -------------------------------------------------------------------
def jfloat(x: float) -> float | str:
    """A float for JSON: finite as is, others as "NaN" / "Infinity" / "-Infinity"."""
    if math.isfinite(x):
        return x
    if math.isnan(x):
        return "NaN"
    return "Infinity" if x > 0 else "-Infinity"


def pfloat(v: Any, what: str = "value") -> float:
    """The inverse of :func:`jfloat`, strict about types."""
    if isinstance(v, bool):
        raise InvalidArgument(f"{what} must be a number, got a boolean")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and v in _NONFINITE:
        return _NONFINITE[v]
    raise InvalidArgument(f"{what} must be a number or one of 'NaN', 'Infinity', '-Infinity', "
                          f"got {v!r}")


def _int64(v: Any, what: str) -> int:
    if type(v) is not int or not INT64_MIN <= v <= INT64_MAX:
        raise InvalidArgument(f"{what} must be a 64-bit integer, got {v!r}")
    return v


# ``POST /records?strict=writer_id:seq`` names the caller's own batch, applied whole or
# refused whole; writer ids outside this alphabet (none the client makes) go without it.
STRICT = re.compile(r"^([A-Za-z0-9_.-]{1,128}):([1-9][0-9]{0,17})$")


def strict_batch(writer_id: str, seq: int) -> str | None:
    """The ``strict`` value naming one batch, or None where its writer id has no such form."""
    value = f"{writer_id}:{seq}"
    return value if STRICT.fullmatch(value) else None


def _ident(v: Any, what: str) -> str:
    if not isinstance(v, str) or not v or len(v) > MAX_ID or "\x00" in v or "/" in v:
        raise InvalidArgument(f"{what} must be a non-empty string of at most {MAX_ID} characters "
                              f"without '/' or NUL, got {v!r}")
    return check_text(v, what)


def _text(v: Any, what: str, limit: int) -> str:
    if not isinstance(v, str):
        raise InvalidArgument(f"{what} must be a string, got {type(v).__name__}")
    if len(v) > limit:
        raise InvalidArgument(f"{what} is {len(v)} characters; the limit is {limit}")
    if "\x00" in v:
        raise InvalidArgument(f"{what} must not contain NUL characters")
    return check_text(v, what)


def no_nul(obj: Any, what: str = "request") -> Any:
    """Refuse NUL characters (PostgreSQL text cannot hold them) and lone surrogates (no
    store can) anywhere in a JSON value, and nesting deeper than MAX_JSON_DEPTH."""
    return check_json(obj, what, nul=True)


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def parse_json(body: bytes | str, what: str = "the body",
               loads: Callable[[Any], Any] = json.loads) -> Any:
    """A JSON request body, parsed: the one place the server reads JSON it is sent.

    InvalidArgument (a 400) when it is not JSON or not UTF-8, nests deeper than
    :data:`~cairn.store.validation.MAX_JSON_DEPTH` levels, or holds a lone surrogate
    (a ``"\\ud800"`` escape without its pair).  ``loads`` parses (``json.loads``, or
    ``orjson.loads`` where NaN literals are not accepted).
    """
    try:
        doc = loads(body)
    except RecursionError:
        raise InvalidArgument(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep") from None
    except (ValueError, UnicodeDecodeError) as exc:
        if "depth limit" in str(exc) or "recursion" in str(exc):  # orjson's own limit
            raise InvalidArgument(f"{what} is nested more than {MAX_JSON_DEPTH} levels "
                                  "deep") from None
        raise InvalidArgument(f"{what} is not valid JSON: {exc}") from None
    if json_needs_walk(body):
        check_json(doc, what)
    return doc


def json_needs_walk(body: bytes | str) -> bool:
    """Whether a JSON text may nest deeper than MAX_JSON_DEPTH or hold a lone surrogate,
    judged from its bytes without parsing (False: it certainly does neither)."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    return (raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH
            or _SURROGATE_ESCAPE.search(raw) is not None
            or (not raw.isascii() and b"\xed" in raw))  # surrogates encoded as UTF-8 bytes


# -- entities -----------------------------------------------------------------
def experiment_to_json(e: Experiment) -> dict[str, Any]:
    return {"id": e.id, "name": e.name, "created_at": e.created_at, "lifecycle": e.lifecycle,
            "tags": dict(e.tags)}


def experiment_from_json(d: Mapping[str, Any]) -> Experiment:
    return Experiment(d["id"], d["name"], d["created_at"], d.get("lifecycle", "active"),
                      dict(d.get("tags") or {}))


def run_to_json(r: Run) -> dict[str, Any]:
    return {
        "id": r.id, "name": r.name, "experiment_id": r.experiment_id, "experiment": r.experiment,
        "status": r.status.value, "start_time": r.start_time, "end_time": r.end_time,
        "user": r.user, "parent_id": r.parent_id, "lifecycle": r.lifecycle,
        "heartbeat": r.heartbeat, "params": dict(r.params), "tags": dict(r.tags),
        "metrics": {k: jfloat(v) for k, v in r.metrics.items()},
        "metric_summaries": {k: {"value": jfloat(m.value), "step": m.step,
                                 "timestamp": m.timestamp, "min": jfloat(m.min),
                                 "max": jfloat(m.max), "count": m.count}
                             for k, m in r.metric_summaries.items()},
        "env": dict(r.env),
    }


def run_from_json(d: Mapping[str, Any]) -> Run:
    summaries = {k: LatestMetric(k, pfloat(m["value"]), m["step"], m["timestamp"],
                                 pfloat(m["min"]), pfloat(m["max"]), m["count"])
                 for k, m in (d.get("metric_summaries") or {}).items()}
    return Run(
        id=d["id"], name=d["name"], experiment_id=d["experiment_id"],
        experiment=d.get("experiment", ""), status=RunStatus(d["status"]),
        start_time=d["start_time"], end_time=d.get("end_time"), user=d.get("user", ""),
        parent_id=d.get("parent_id"), params=dict(d.get("params") or {}),
        metrics={k: pfloat(v) for k, v in (d.get("metrics") or {}).items()},
        tags=dict(d.get("tags") or {}), env=dict(d.get("env") or {}),
        lifecycle=d.get("lifecycle", "active"), heartbeat=d.get("heartbeat"),
        metric_summaries=summaries)


def entry_to_json(e: FileEntry) -> dict[str, Any]:
    return {"path": e.path, "size": e.size, "digest": e.digest,
            "chunks": [[oid, size] for oid, size in e.chunks]}


def entry_from_json(d: Mapping[str, Any]) -> FileEntry:
    from ..cas.tree import check_entry

    if not isinstance(d, Mapping):
        raise InvalidArgument(f"an artifact entry must be an object, got {d!r}")
    try:
        chunks = tuple((c[0], c[1]) for c in d.get("chunks") or ())
        return check_entry(FileEntry(d["path"], d["size"], d["digest"], chunks))
    except (KeyError, TypeError, IndexError):
        raise InvalidArgument(f"an artifact entry needs path, size, digest and optional "
                              f"chunks [[oid, size], ...], got {d!r}") from None


# -- batches --------------------------------------------------------------------
def batch_to_json(b: RecordBatch) -> dict[str, Any]:
    out: dict[str, Any] = {"run_id": b.run_id, "writer_id": b.writer_id, "seq": b.seq,
                           "time": b.time}
    if b.params:
        out["params"] = dict(b.params)
    if b.tags:
        out["tags"] = dict(b.tags)
    if b.deleted_tags:
        out["deleted_tags"] = list(b.deleted_tags)
    if b.metrics:
        out["metrics"] = {k: {"steps": [int(x) for x in s], "timestamps": [int(x) for x in t],
                              "values": [jfloat(float(x)) for x in v]}
                          for k, (s, t, v) in b.metrics.items()}
    if b.artifacts:
        out["artifacts"] = [entry_to_json(a) for a in b.artifacts]
    if b.status is not None:
        out["status"] = b.status.value
        out["end_time"] = b.end_time
    if b.create is not None:
        out["create"] = dict(b.create)
    if b.env is not None:
        out["env"] = dict(b.env)
    return out


def batch_from_json(d: Any) -> RecordBatch:
    """A batch from its JSON form, every field type-checked (raises InvalidArgument)."""
    if not isinstance(d, Mapping):
        raise InvalidArgument(f"a batch must be a JSON object, got {type(d).__name__}")
    known = {"run_id", "writer_id", "seq", "time", "params", "tags", "deleted_tags", "metrics",
             "artifacts", "status", "end_time", "create", "env"}
    extra = set(d) - known
    if extra:
        raise InvalidArgument(f"unknown batch field(s) {sorted(extra)}; known: {sorted(known)}")
    for req in ("run_id", "writer_id", "seq"):
        if req not in d:
            raise InvalidArgument(f"a batch needs {req!r}")
    metrics: dict[str, tuple[list, list, list]] = {}
    raw_metrics = d.get("metrics") or {}
    if not isinstance(raw_metrics, Mapping):
        raise InvalidArgument("batch metrics must be an object: key -> {steps, timestamps, values}")
    for key, ser in raw_metrics.items():
        if not isinstance(ser, Mapping) or not all(isinstance(ser.get(f), list)
                                                    for f in ("steps", "timestamps", "values")):
            raise InvalidArgument(f"metric {key!r} must be {{steps: [...], timestamps: [...], "
                                  "values: [...]}")
        steps = [_int64(x, f"step of metric {key!r}") for x in ser["steps"]]
        stamps = [_int64(x, f"timestamp of metric {key!r}") for x in ser["timestamps"]]
        values = [pfloat(x, f"value of metric {key!r}") for x in ser["values"]]
        if not (len(steps) == len(stamps) == len(values)) or not steps:
            raise InvalidArgument(f"metric {key!r}: steps, timestamps and values must be "
                                  "non-empty and of equal length")
        metrics[key] = (steps, stamps, values)
    status = d.get("status")
    if status is not None:
        try:
            status = RunStatus(status)
        except ValueError:
            raise InvalidArgument(f"unknown run status {status!r}; use one of "
                                  f"{[s.value for s in RunStatus]}") from None
    artifacts = d.get("artifacts") or []
    if not isinstance(artifacts, list):
        raise InvalidArgument("batch artifacts must be a list of entries")
    deleted = d.get("deleted_tags") or []
    if not isinstance(deleted, list):
        raise InvalidArgument("deleted_tags must be a list of tag keys")
    for name in ("params", "tags", "create", "env"):
        if d.get(name) is not None and not isinstance(d[name], Mapping):
            raise InvalidArgument(f"batch {name} must be a JSON object")
    end_time = d.get("end_time")
    batch = RecordBatch(
        run_id=d["run_id"], writer_id=d["writer_id"], seq=d["seq"],
        time=d.get("time", 0), params=dict(d.get("params") or {}), tags=dict(d.get("tags") or {}),
        deleted_tags=tuple(deleted), metrics=metrics,
        artifacts=tuple(entry_from_json(a) for a in artifacts), status=status,
        end_time=end_time, create=d.get("create"), env=d.get("env"))
    return check_batch(batch)


MAX_VALUE = 1 << 20  # characters of a param or tag value that came over the wire


def check_param(k: Any, v: Any) -> None:
    """One param of a batch from the wire (the records route also checks them one by one)."""
    check_key(k, "param")
    if not isinstance(v, str):
        raise InvalidArgument(f"param {k!r} must be a string, got {type(v).__name__}")
    _text(param_value(k, v), f"param {k!r}", MAX_VALUE)


def check_tag(k: Any, v: Any) -> None:
    """One tag of a batch from the wire."""
    check_key(k, "tag")
    if not isinstance(v, str):
        raise InvalidArgument(f"tag {k!r} must be a string, got {type(v).__name__}")
    _text(tag_value(k, v), f"tag {k!r}", MAX_VALUE)


def check_batch(b: RecordBatch) -> RecordBatch:
    """Validate every field of a batch that came over the wire (JSON or frames)."""
    _ident(b.run_id, "run_id")
    _ident(b.writer_id, "writer_id")
    if type(b.seq) is not int or not 1 <= b.seq <= INT64_MAX:
        raise InvalidArgument(f"seq must be a positive 64-bit integer, got {b.seq!r}")
    _int64(b.time, "time")
    for name in ("params", "tags", "metrics"):
        if not isinstance(getattr(b, name), Mapping):
            raise InvalidArgument(f"batch {name} must be an object")
    for name in ("create", "env"):
        if getattr(b, name) is not None and not isinstance(getattr(b, name), Mapping):
            raise InvalidArgument(f"batch {name} must be an object")
    if not isinstance(b.deleted_tags, (tuple, list)) or not isinstance(b.artifacts, (tuple, list)):
        raise InvalidArgument("batch deleted_tags and artifacts must be lists")
    if b.status is not None and not isinstance(b.status, RunStatus):
        raise InvalidArgument(f"unknown run status {b.status!r}")
    for a in b.artifacts:
        from ..cas.tree import check_entry

        check_entry(a)
    for k, v in b.params.items():
        check_param(k, v)
    for k, v in b.tags.items():
        check_tag(k, v)
    for k in b.deleted_tags:
        check_key(k, "tag")
    if b.tags or b.deleted_tags:
        check_row_tags(b.tags, b.deleted_tags)
    for k, arrays in b.metrics.items():
        check_key(k, "metric")
        if len(arrays) != 3 or not len(arrays[0]) or not len(arrays[0]) == len(arrays[1]) == len(arrays[2]):
            raise InvalidArgument(f"metric {k!r}: steps, timestamps and values must be non-empty "
                                  "and of equal length")
    if b.end_time is not None:
        _int64(b.end_time, "end_time")
    if b.create is not None:
        c = b.create
        _ident(c.get("experiment_id"), "create.experiment_id")
        for name, limit in (("experiment_name", MAX_NAME), ("name", MAX_NAME), ("user", 256)):
            if c.get(name) is not None:
                _text(c[name], f"create.{name}", limit)
        if c.get("parent_id") is not None:
            _ident(c["parent_id"], "create.parent_id")
        for name in ("start_time", "experiment_created_at", "heartbeat"):
            if c.get(name) is not None:
                _int64(c[name], f"create.{name}")
        unknown = set(c) - {"experiment_id", "experiment_name", "experiment_created_at", "name",
                            "parent_id", "user", "start_time", "heartbeat"}
        if unknown:
            raise InvalidArgument(f"unknown create field(s) {sorted(unknown)}")
    if b.env is not None:
        no_nul(dict(b.env), "env")
    return b


# -- record frames ----------------------------------------------------------------
def encode_frames(batches: list[RecordBatch]) -> bytes:
    return b"".join(jlib.encode_batch(b) for b in batches)


def iter_frames(data: bytes | memoryview, prepared: list | None = None) -> Iterator[RecordBatch]:
    """Batches from concatenated journal frames; any damage is an InvalidArgument.

    With ``prepared``, each batch's metric segments (as the client encoded them) are
    appended to it as one list per batch.
    """
    view = memoryview(data)
    pos, size = 0, len(view)
    index = 0
    while pos < size:
        if size - pos < jlib._FRAME.size:
            raise InvalidArgument(f"record {index}: truncated frame header at byte {pos}")
        magic, length, crc = jlib._FRAME.unpack_from(view, pos)
        if magic != jlib.MAGIC:
            raise InvalidArgument(f"record {index}: bad magic at byte {pos} (expected CJR1 frames)")
        start = pos + jlib._FRAME.size
        if start + length > size:
            raise InvalidArgument(f"record {index}: frame of {length} bytes is truncated")
        payload = bytes(view[start:start + length])
        if zlib.crc32(payload) != crc:
            raise InvalidArgument(f"record {index}: CRC mismatch")
        try:
            segs: list | None = [] if prepared is not None else None
            batch = jlib.decode_payload(payload, segs)
        except InvalidArgument:
            raise
        except Exception as exc:
            raise InvalidArgument(f"record {index}: undecodable ({type(exc).__name__}: {exc})") from None
        if prepared is not None:
            prepared.append(segs)
        yield batch
        pos = start + length
        index += 1


# -- errors ---------------------------------------------------------------------------
def error_to_json(exc: "CairnError") -> dict[str, Any]:
    """An error as the server sends it: to_dict() plus the exact class name."""
    return {**exc.to_dict(), "error_class": type(exc).__name__}


def error_from_json(d: Mapping[str, Any], status: int | None = None) -> "CairnError":
    """The inverse of :func:`error_to_json`: the same class when it is one of cairn.errors."""
    from .. import errors

    data = dict(d)
    cls_name = data.pop("error_class", None)
    cls = getattr(errors, cls_name, None) if isinstance(cls_name, str) else None
    if isinstance(cls, type) and issubclass(cls, errors.CairnError):
        data.pop("error_code", None)
        message = data.pop("message", cls_name)
        try:
            return cls(message, **data)
        except TypeError:
            pass
    err = errors.from_dict(data)
    if type(err) is errors.CairnError and status is not None:
        err.http_status = status
    return err


def from_results(results: list[Mapping[str, Any]]) -> "CairnError | None":
    """The first error in a records response's results, as an exception (None: all good)."""
    from ..errors import StoreUnavailable

    for r in results:
        if r.get("status") in ("rejected", "unavailable"):
            if r.get("error"):
                return error_from_json(r["error"])
            return StoreUnavailable(f"the server could not apply batch {r.get('seq')} of writer "
                                    f"{r.get('writer_id')} yet")
    return None
