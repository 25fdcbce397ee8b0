"""Live quality: the prediction log joined with the labels sent back, per version and arm.

::

    from cairn.monitoring.live import live_metrics

    live = live_metrics(client, "fraud", since, until)
    live.overall.metrics["accuracy"], live.overall.error_rate, live.overall.latency_p99_ms
    live.by_arm["canary"].metrics.get("accuracy")    # the canary's, when labelled
    live.by_version["1.2.0"].labelled, live.unknown_ids

A label is joined with the logged request of the same id.  A request of several rows is
labelled row by row, with request ids ``ID#0``, ``ID#1``, ... (the rows in the order sent);
a label for plain ``ID`` fits a one-row request.  ``requests``, ``errors`` (answers with
status 500 or more), ``error_rate`` and ``latency_p99_ms`` count requests in the span;
``labelled`` and ``metrics`` count its answered rows that have a label (whenever the
label came).  ``unknown_ids`` counts labels received in the span whose request id is in
no row of the log read (the span and ``lookback``, an hour, before it): a request older than that,
or one the log has not written yet (it writes every 30 s), counts too.

Metrics are NumPy only: classification (labels of int, bool or text) has ``accuracy``,
``f1`` (binary for two classes, the larger one, or 1, positive; else macro) and ``auc``
where the log holds a score (a probability in ``prediction``, or a column
``prediction.<class>`` per class); regression (float labels, or whole numbers predicted
as fractions) has ``rmse`` and ``mae``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..errors import CairnError, InvalidArgument

log = logging.getLogger("cairn.monitoring.live")

DEFAULT_LOOKBACK = dt.timedelta(hours=1)
CLASSIFICATION = ("accuracy", "f1", "auc")
REGRESSION = ("rmse", "mae")
METRICS = CLASSIFICATION + REGRESSION


@dataclass(frozen=True, slots=True)
class Group:
    """Requests of one span (all, one arm or one version) and the quality of its labelled
    rows."""

    requests: int
    errors: int
    error_rate: float                 # errors / requests (0.0 with no request)
    latency_p99_ms: float | None      # None with no request
    labelled: int
    metrics: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors,
                "error_rate": self.error_rate, "latency_p99_ms": self.latency_p99_ms,
                "labelled": self.labelled, "metrics": dict(self.metrics)}


EMPTY = Group(0, 0, 0.0, None, 0, {})


@dataclass(frozen=True, slots=True)
class LiveMetrics:
    """Live quality of one model over ``[since, until)``."""

    model: str
    since: dt.datetime
    until: dt.datetime
    overall: Group
    by_arm: Mapping[str, Group]
    by_version: Mapping[str, Group]
    unknown_ids: int
    labels: int = 0                   # labels received in the span
    kind: str | None = None           # "classification", "regression", None (no label)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "since": self.since.isoformat(),
                "until": self.until.isoformat(), "kind": self.kind,
                "labels": self.labels, "unknown_ids": self.unknown_ids,
                "overall": self.overall.to_dict(),
                "by_arm": {k: g.to_dict() for k, g in self.by_arm.items()},
                "by_version": {k: g.to_dict() for k, g in self.by_version.items()},
                "notes": list(self.notes)}


def live_metrics(client: Any, model_name: str, since: Any, until: Any, *,
                 lookback: dt.timedelta = DEFAULT_LOOKBACK,
                 labels: Mapping[str, Any] | None = None) -> LiveMetrics:
    """Live quality of ``model_name`` in ``[since, until)`` (datetimes, ISO 8601 text or
    epoch seconds; naive times are UTC).  ``labels``: the labels to join (by default every
    label stored for the model, as :func:`~cairn.monitoring.feedback.read_labels`)."""
    from ..serving.predlog_read import when
    from .feedback import check_model, read_labels

    model_name = check_model(model_name)
    start, end = when(since, "since"), when(until, "until")
    if start is None or end is None:
        raise InvalidArgument("live_metrics needs both since and until")
    if end <= start:
        raise InvalidArgument(f"until ({end.isoformat()}) must be after since "
                              f"({start.isoformat()})")
    if labels is None:
        labels = read_labels(client, model_name)
    table = read_log(client, model_name, start - max(lookback, dt.timedelta(0)), end)
    return _measure(model_name, start, end, table, lambda: _Log.of(table).keys, labels)


def read_log(client: Any, model: str, start: dt.datetime, end: dt.datetime) -> Any:
    """Every row of ``model``'s prediction log in ``[start, end)``, each segment downloaded
    once per process (:data:`~cairn.monitoring.feedback.SEGMENTS`)."""
    from ..serving.predlog_read import concat, read_segment, read_segments, segments
    from .feedback import SEGMENTS

    found = segments(client, model, None, start, end)
    tables = []
    for seg in found:
        try:
            tables.append(SEGMENTS.get(("log", client.uri, seg.run_id, seg.path, seg.size),
                                       lambda s=seg: _rows_of(read_segment(client, s))))
        except CairnError:
            raise  # the store failing: the caller sees it, and nothing is cached
        except Exception as exc:  # noqa: BLE001 - one unreadable segment, not the whole log
            # An empty or corrupt segment is skipped (not cached) and logged: the other
            # segments' requests still count.
            log.warning("prediction log: segment %s of run %s is unreadable, skipped: %s: %s",
                        seg.path, seg.run_id, type(exc).__name__, exc)
    if not tables:
        return read_segments(client, [])
    return _between(concat(tables), start, end)


def _rows_of(table: Any) -> tuple[Any, int]:
    return table, table.num_rows


def _measure(model: str, start: dt.datetime, end: dt.datetime, table: Any, keys: Any,
             labels: Mapping[str, Any]) -> LiveMetrics:
    """The span's quality from ``table`` (the log read, the span and any time before it);
    ``keys()`` gives the label keys of all its rows (only asked for when labels came in
    the span)."""
    import numpy as np

    log = _Log.of(_between(table, start, end))
    t0, t1 = start.timestamp(), end.timestamp()
    # Plain values (labels={"id": 1}) have no time received: none counts as unknown.
    received = [lab for lab in labels.values() if t0 <= getattr(lab, "received", t1) < t1]
    unknown = 0
    if received:
        known = set(keys())
        unknown = sum(1 for lab in received if lab.request_id not in known)
    values = {k: getattr(v, "label", v) for k, v in labels.items()}
    judged = _Judged.of(log, values)

    def group(mask: Any) -> Group:
        return _group(log, judged, mask)

    by_arm = {arm: group(log.arms == arm) for arm in sorted(set(log.arms.tolist()))}
    by_version = {v: group(log.versions == v) for v in sorted(set(log.versions.tolist()))}
    return LiveMetrics(model, start, end, group(np.ones(len(log.keys), bool)), by_arm,
                       by_version, unknown, len(received), judged.kind, judged.notes)


def _between(table: Any, start: dt.datetime, end: dt.datetime) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    if "timestamp" not in table.column_names or not table.num_rows:
        return table
    ts = table["timestamp"]
    return table.filter(pc.and_(pc.greater_equal(ts, pa.scalar(start, ts.type)),
                                pc.less(ts, pa.scalar(end, ts.type))))


# -- the log's rows as requests ---------------------------------------------------------

@dataclass
class _Log:
    """The log's rows with each row's label key and whether it starts a request."""

    keys: list[str]
    first: Any          # bool per row: the first row of its request
    status: Any         # int per row
    latency: Any        # float per row (ms)
    arms: Any           # object per row
    versions: Any       # object per row
    predictions: dict[str, Any]   # prediction column -> numpy values per row

    @classmethod
    def of(cls, table: Any) -> "_Log":
        import numpy as np

        n = table.num_rows
        cols = set(table.column_names)

        def column(name: str, default: Any) -> Any:
            if name not in cols:
                return np.full(n, default, object)
            return np.asarray(table[name].to_numpy(zero_copy_only=False), object)

        rids = column("request_id", "")
        versions = column("model_version", "")
        arms = column("arm", "")
        status = np.asarray(column("status", 200), np.int64) if n else np.empty(0, np.int64)
        latency = (np.asarray(table["latency_ms"].to_numpy(zero_copy_only=False), float)
                   if "latency_ms" in cols else np.full(n, np.nan))
        # A request is the rows that share its id, time, version and arm (in the order
        # the log holds them: the order they were sent).
        nth, size = _request_rows([_codes(table, c) for c in
                                   ("request_id", "timestamp", "model_version", "arm")], n)
        first = nth == 0
        keys = [str(r) for r in rids.tolist()]
        for i in np.flatnonzero(size > 1).tolist():
            keys[i] = f"{keys[i]}#{nth[i]}"
        preds = {name: np.asarray(table[name].to_numpy(zero_copy_only=False), object)
                 for name in table.column_names
                 if name == "prediction" or name.startswith("prediction.")}
        return cls(keys, first, status, latency, arms.astype(str) if n else arms,
                   versions.astype(str) if n else versions, preds)


def _codes(table: Any, name: str) -> Any:
    """A column as integer codes (equal values, equal codes), or zeros when missing."""
    import numpy as np
    import pyarrow as pa

    if name not in table.column_names:
        return np.zeros(table.num_rows, np.int64)
    col = table[name].combine_chunks()
    if pa.types.is_timestamp(col.type):
        return np.asarray(col.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False),
                          np.int64)
    codes = col.dictionary_encode().indices.fill_null(-1)
    return np.asarray(codes.to_numpy(zero_copy_only=False), np.int64)


def _request_rows(columns: list[Any], n: int) -> tuple[Any, Any]:
    """For each row, its place among the rows of equal ``columns`` (0 for the first, in row
    order) and how many such rows there are."""
    import numpy as np

    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order = np.lexsort([np.arange(n), *reversed(columns)])  # the last key sorts first
    change = np.zeros(n, bool)
    change[0] = True
    for col in columns:
        c = col[order]
        change[1:] |= c[1:] != c[:-1]
    starts = np.flatnonzero(change)
    lengths = np.diff(np.append(starts, n))
    group = np.cumsum(change) - 1
    nth = np.empty(n, np.int64)
    size = np.empty(n, np.int64)
    nth[order] = np.arange(n) - starts[group]
    size[order] = lengths[group]
    return nth, size


@dataclass
class _Judged:
    """Per row: whether it has a label to judge, and its label, prediction and scores."""

    kind: str | None
    rows: Any                      # bool per row: labelled, answered, with a prediction
    truth: list[Any]
    predicted: list[Any]
    scores: Any = None             # binary: score per row; else None
    proba: dict[Any, Any] | None = None  # multi-class: class -> score per row
    notes: tuple[str, ...] = ()

    @classmethod
    def of(cls, log: _Log, labels: Mapping[str, Any]) -> "_Judged":
        import numpy as np

        n = len(log.keys)
        labelled = np.array([k in labels for k in log.keys], bool) if n else np.zeros(0, bool)
        labelled &= log.status == 200
        rows = np.flatnonzero(labelled)
        if rows.size == 0:
            return cls(None, labelled, [], [])
        truth_raw = [labels[log.keys[i]] for i in rows]
        pred_col, proba_cols = _prediction_columns(log, truth_raw)
        if pred_col is None and not proba_cols:
            return cls(None, np.zeros(n, bool), [], [],
                       notes=("the log holds no prediction to compare the labels with",))
        if pred_col is not None:
            pred_raw = [log.predictions[pred_col][i] for i in rows]
        else:
            names = list(proba_cols)
            matrix = np.array([[_float(log.predictions[proba_cols[c]][i]) for c in names]
                               for i in rows], float)
            pred_raw = [names[j] for j in np.nanargmax(np.nan_to_num(matrix, nan=-1), axis=1)]
        kind = _kind(truth_raw, pred_raw)
        keep = [j for j, p in enumerate(pred_raw) if _present(p)]
        truth = [truth_raw[j] for j in keep]
        preds = [pred_raw[j] for j in keep]
        mask = np.zeros(n, bool)
        mask[rows[keep]] = True
        if kind == "regression":
            return cls(kind, mask, [_float(t) for t in truth], [_float(p) for p in preds])
        truth = [_norm(t) for t in truth]
        preds_n = [_norm(p) for p in preds]
        scores = proba = None
        if pred_col is not None and _is_score(preds_n, truth):
            scores = np.array([_float(p) for p in preds_n], float)
            preds_n = [1 if s >= 0.5 else 0 for s in scores]
        elif proba_cols:
            proba = {c: np.array([_float(log.predictions[proba_cols[c]][i])
                                  for i in rows[keep]], float) for c in proba_cols}
        preds_n = _align(preds_n, truth)
        return cls(kind, mask, truth, preds_n, scores, proba)


def _prediction_columns(log: _Log, truth: Sequence[Any]) -> tuple[str | None, dict[Any, str]]:
    """The column of predicted classes or values, or else the per-class score columns
    (``prediction.<class>`` for every class seen in the labels)."""
    cols = log.predictions
    if "prediction" in cols:
        return "prediction", {}
    classes = {str(_norm(t)) for t in truth}
    by_class = {name[len("prediction."):]: name for name in cols}
    if len(by_class) >= 2 and classes <= set(by_class):
        lookup = {str(_norm(t)): _norm(t) for t in truth}
        return None, {lookup.get(c, c): name for c, name in by_class.items()}
    for name in ("prediction.label", "prediction.predicted_label", "prediction.class"):
        if name in cols:
            return name, {}
    if len(cols) == 1:
        return next(iter(cols)), {}
    return None, {}


def _group(log: _Log, judged: _Judged, mask: Any) -> Group:
    import numpy as np

    starts = mask & log.first
    requests = int(starts.sum())
    errors = int((starts & (log.status >= 500)).sum())
    lat = log.latency[starts]
    lat = lat[np.isfinite(lat)]
    p99 = float(np.percentile(lat, 99)) if lat.size else None
    rows = mask[judged.rows]  # of the judged rows, those in the group
    labelled = int(rows.sum())
    metrics: dict[str, float] = {}
    if labelled:
        picks = np.flatnonzero(rows)
        truth = [judged.truth[i] for i in picks]
        pred = [judged.predicted[i] for i in picks]
        if judged.kind == "regression":
            metrics = regression_metrics(np.array(truth, float), np.array(pred, float))
        elif judged.kind == "classification":
            scores = None if judged.scores is None else judged.scores[picks]
            proba = None if judged.proba is None else \
                {c: v[picks] for c, v in judged.proba.items()}
            metrics = classification_metrics(truth, pred, scores, proba)
    return Group(requests, errors, errors / requests if requests else 0.0, p99, labelled,
                 metrics)


# -- values -----------------------------------------------------------------------------

def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _norm(value: Any) -> Any:
    """A class as one comparable value: NumPy scalars as Python's, bools as 0/1, whole
    floats as ints."""
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, str):
        value = item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _float(value: Any) -> float:
    try:
        return float(_norm(value))
    except (TypeError, ValueError):
        return float("nan")


def _order(value: Any) -> tuple[str, Any]:
    return (type(value).__name__, value)


def _kind(truth: Sequence[Any], preds: Sequence[Any]) -> str:
    """Regression for float labels, or whole-number labels (ints too) whose predictions are
    fractions outside [0, 1]; else classification."""
    floats = [t for t in truth if isinstance(_item(t), float)]
    if any(not float(t).is_integer() for t in floats):
        return "regression"
    if not floats and not all(isinstance(_item(t), int) for t in truth):
        return "classification"   # text labels
    # Whole-number labels (1.0, or the ints JSON sends for a price or a count): regression
    # when a prediction is a value no classifier gives (a fraction outside [0, 1]).
    numeric_preds = [_item(p) for p in preds if _present(p)]
    if any(isinstance(p, float) and not p.is_integer() and not 0 <= p <= 1
           for p in numeric_preds):
        return "regression"
    return "classification"


def _item(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) and not isinstance(value, str) else value


def _is_score(preds: Sequence[Any], truth: Sequence[Any]) -> bool:
    """A binary task's prediction that is a probability (floats in [0, 1], not all 0/1)."""
    if not preds or not set(truth) <= {0, 1}:
        return False
    if not all(isinstance(p, (int, float)) for p in preds):
        return False
    values = [float(p) for p in preds]
    return all(0.0 <= v <= 1.0 for v in values) and any(v not in (0.0, 1.0) for v in values)


def _align(preds: list[Any], truth: list[Any]) -> list[Any]:
    """Predictions of another type than the labels (text "1" against 1) as the labels'."""
    kinds = {type(t) for t in truth}
    if kinds == {str}:
        return [p if isinstance(p, str) else str(p) for p in preds]
    if kinds <= {int, float}:
        out = []
        for p in preds:
            if isinstance(p, str):
                try:
                    p = _norm(float(p))
                except ValueError:
                    pass
            out.append(p)
        return out
    return preds


def _positive(classes: set) -> Any:
    if 1 in classes or not classes:
        return 1
    return sorted(classes, key=_order)[-1]


# -- metrics, NumPy only ----------------------------------------------------------------

def regression_metrics(truth: Any, pred: Any) -> dict[str, float]:
    import numpy as np

    ok = np.isfinite(truth) & np.isfinite(pred)
    if not ok.any():
        return {}
    err = pred[ok] - truth[ok]
    return {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err)))}


def classification_metrics(truth: Sequence[Any], pred: Sequence[Any], scores: Any = None,
                           proba: Mapping[Any, Any] | None = None) -> dict[str, float]:
    """``accuracy``, ``f1`` and, given scores, ``auc`` (as scikit-learn computes them:
    binary F1 of the positive class for two classes, else macro; binary AUC, or macro
    one-vs-rest AUC over the classes of ``proba``)."""
    import numpy as np

    n = len(truth)
    if n == 0:
        return {}
    t = np.array(truth, object)
    p = np.array(pred, object)
    out = {"accuracy": float(np.mean(t == p))}
    classes = sorted(set(truth) | set(pred), key=_order)
    if len(classes) <= 2:
        out["f1"] = _f1(t, p, _positive(set(classes)))
    else:
        out["f1"] = float(np.mean([_f1(t, p, c) for c in classes]))
    if scores is not None:
        auc = binary_auc(t == _positive(set(truth) | set(pred)), np.asarray(scores, float))
        if auc is not None:
            out["auc"] = auc
    elif proba:
        present = [c for c in proba if (t == c).any()]
        if len(proba) == 2 and len(present) == 2:
            pos = _positive(set(proba))
            auc = binary_auc(t == pos, np.asarray(proba[pos], float))
            if auc is not None:
                out["auc"] = auc
        elif len(present) == len(proba) >= 3:
            aucs = [binary_auc(t == c, np.asarray(proba[c], float)) for c in present]
            known = [a for a in aucs if a is not None]
            if len(known) == len(aucs):
                out["auc"] = float(np.mean(known))
    return out


def _f1(t: Any, p: Any, positive: Any) -> float:
    tp = float(((t == positive) & (p == positive)).sum())
    fp = float(((t != positive) & (p == positive)).sum())
    fn = float(((t == positive) & (p != positive)).sum())
    denom = 2 * tp + fp + fn
    return 2 * tp / denom if denom else 0.0


def binary_auc(positive: Any, scores: Any) -> float | None:
    """The area under the ROC curve (the Mann-Whitney U, ties counted half); None when
    only one class is present or a score is not finite."""
    import numpy as np

    positive = np.asarray(positive, bool)
    scores = np.asarray(scores, float)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0 or not np.isfinite(scores).all():
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size, float)
    sorted_scores = scores[order]
    # Average ranks over ties: each run of equal scores gets the mean of its positions.
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [scores.size]))
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + e + 1) / 2.0
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


# -- per window, stored ------------------------------------------------------------------

LIVE_REQUESTS = "live.requests"


@dataclass(frozen=True, slots=True)
class LiveWindow:
    start: dt.datetime
    end: dt.datetime
    live: LiveMetrics
    stored: tuple[str, ...] = ()   # versions whose run got this window in this call

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(),
                "stored": list(self.stored), **{k: v for k, v in self.live.to_dict().items()
                                                if k not in ("model", "since", "until")}}


@dataclass(frozen=True, slots=True)
class LiveReport:
    """Live quality of one model window by window, with each version's registered metric
    (``train``: version -> {metric: value}) to compare with."""

    model: str
    window: dt.timedelta
    windows: tuple[LiveWindow, ...]
    train: Mapping[str, Mapping[str, float]]
    run_ids: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "window_seconds": int(self.window.total_seconds()),
                "train": {v: dict(m) for v, m in self.train.items()},
                "run_ids": dict(self.run_ids), "windows": [w.to_dict() for w in self.windows]}


def model_name(client: Any, ref: Any) -> str:
    """The model ``ref`` names (``models:/fraud@production``, ``fraud/1.2.0``, ``fraud``);
    NotFound when it is not registered."""
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidArgument(f"model reference must be a string like models:/fraud@production, "
                              f"got {ref!r}")
    text = ref.strip().removeprefix("models:/")
    if "@" in text or "/" in text:
        return str(client.resolve_model(text).name)
    return str(client.get_registered_model(text).name)


def live_report(client: Any, model_ref: str, window: Any = "1h", since: Any = None,
                until: Any = None, store: bool = True, *,
                lookback: dt.timedelta = DEFAULT_LOOKBACK,
                now: dt.datetime | None = None) -> LiveReport:
    """Live quality of the model ``model_ref`` names, per window of ``window`` (aligned to
    the epoch, as drift's; default the last 24 up to now).  ``store``: write each ended
    window, once, to every version's monitoring run (experiment ``cairn-monitoring``):
    ``live.requests``, ``live.labelled``, ``live.error_rate``, ``live.<metric>``, and the
    metric the version was registered with as ``train.<metric>``."""
    from ..serving.predlog_read import when
    from .feedback import read_labels
    from .windows import parse_window, spans_between

    length = parse_window(window)
    name = model_name(client, model_ref)
    start, end = when(since, "since"), when(until, "until")
    spans = spans_between(start, end, length, now)
    first, last = spans[0][0], spans[-1][1]
    labels = read_labels(client, name)
    table = read_log(client, name, first - max(lookback, dt.timedelta(0)), last)
    keys: list[str] = []

    def all_keys() -> list[str]:
        if not keys:
            keys.extend(_Log.of(table).keys)
        return keys

    windows = [LiveWindow(s, e, _measure(name, s, e, table, all_keys, labels))
               for s, e in spans]
    versions = sorted({v for w in windows for v in w.live.by_version})
    train = {v: _registered(client, name, v) for v in versions}
    report = LiveReport(name, length, tuple(windows), train)
    if store:
        report = store_live(client, report, now=now)
    return report


def _registered(client: Any, name: str, version: str) -> dict[str, float]:
    """The version's metrics of the names live quality has: as registered, else its
    source run's."""
    from ..errors import NotFound

    try:
        mv = client.get_model_version(name, version)
    except NotFound:
        return {}
    found = {k: float(v) for k, v in (mv.metrics or {}).items() if k in METRICS}
    if not found and mv.source_run_id:
        try:
            run = client.get_run(mv.source_run_id)
        except NotFound:
            return {}
        found = {k: float(v) for k, v in run.metrics.items() if k in METRICS}
    return found


def store_live(client: Any, report: LiveReport, now: dt.datetime | None = None) -> LiveReport:
    """Write ``report``'s ended windows not written before to each version's monitoring
    run; the report with ``run_ids`` and each window's ``stored`` set."""
    import dataclasses

    from .results import monitoring_run

    now = now or dt.datetime.now(dt.timezone.utc)
    run_ids: dict[str, str] = {}
    done: dict[str, set[int]] = {}
    windows = []
    for w in report.windows:
        stored = []
        if w.end <= now:
            ts = int(w.end.timestamp() * 1000)
            step = int(w.end.timestamp())
            for version, g in w.live.by_version.items():
                if not g.requests:
                    continue
                if version not in run_ids:
                    run_ids[version] = monitoring_run(client, report.model, version)
                    done[version] = set(client.get_metric_history(
                        run_ids[version], LIVE_REQUESTS).timestamps.tolist())
                if ts in done[version]:
                    continue
                points = [(LIVE_REQUESTS, float(g.requests), step, ts),
                          ("live.labelled", float(g.labelled), step, ts),
                          ("live.error_rate", float(g.error_rate), step, ts)]
                points += [(f"live.{k}", float(v), step, ts) for k, v in g.metrics.items()]
                points += [(f"train.{k}", float(v), step, ts)
                           for k, v in report.train.get(version, {}).items()
                           if k in g.metrics]
                client.log_batch(run_ids[version], points)
                done[version].add(ts)
                stored.append(version)
        windows.append(dataclasses.replace(w, stored=tuple(stored)) if stored else w)
    return dataclasses.replace(report, windows=tuple(windows), run_ids=run_ids)
