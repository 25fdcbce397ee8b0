"""``drift_report``: the prediction log of one model version, window by window, against its
reference, per column and as a data set; stored as metrics of its monitoring run.

::

    from cairn.monitoring import drift_report

    report = drift_report(client, "models:/fraud@production", window="1h",
                          since="2025-01-31T00:00", methods={"amount": "psi"})
    for w in report.windows:
        print(w.start, w.rows, w.share, w.drifted, [c.column for c in w.columns if c.drifted])
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import InvalidArgument, NotFound
from . import drift as D
from .windows import _shown

DEFAULT_SHARE = 0.5
# A number as text (what a numeric column holds after falling back to text in a segment).
_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"


@dataclass(frozen=True, slots=True)
class WindowDrift:
    """One window: its rows, a verdict per column, and the share of drifted columns."""

    start: dt.datetime
    end: dt.datetime
    rows: int
    columns: tuple[D.ColumnDrift, ...]
    share: float | None        # drifted / tested columns; None when no column was tested
    drifted: bool              # share >= the report's share threshold
    stored: bool = False       # written to the monitoring run by this call

    def column(self, name: str) -> D.ColumnDrift:
        for c in self.columns:
            if c.column == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "rows": self.rows,
                "share": self.share, "drifted": self.drifted, "stored": self.stored,
                "columns": [c.to_dict() for c in self.columns]}


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Drift of one model version's prediction log over windows."""

    model: str
    version: str
    reference: str                      # the data set version compared with ("name@3")
    found_by: str                       # "lineage" or "given"
    window: dt.timedelta
    share_threshold: float
    windows: tuple[WindowDrift, ...]
    missing_columns: tuple[str, ...] = ()   # in the log, not in the reference: not tested
    notes: tuple[str, ...] = ()
    run_id: str | None = None               # the monitoring run the results went to
    methods: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "reference": self.reference,
                "found_by": self.found_by, "window_seconds": int(self.window.total_seconds()),
                "share_threshold": self.share_threshold, "run_id": self.run_id,
                "missing_columns": list(self.missing_columns), "notes": list(self.notes),
                "windows": [w.to_dict() for w in self.windows]}


def parse_settings(items: Any, what: str) -> dict[str, str]:
    """``{"col": "value"}`` from a mapping or from ``["col=value", ...]`` (``--method``)."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        pairs = list(items.items())
    elif isinstance(items, (list, tuple)):
        pairs = []
        for item in items:
            if not isinstance(item, str) or "=" not in item:
                raise InvalidArgument(f"{what} {_shown(str(item))!r}: give COLUMN=VALUE, e.g. "
                                      f"{'amount=psi' if what == '--method' else 'amount=0.2'}")
            col, _, value = item.rpartition("=")
            pairs.append((col.strip(), value.strip()))
    else:
        raise InvalidArgument(f"{what} must be a mapping of column to value, got {items!r}")
    out: dict[str, str] = {}
    for col, value in pairs:
        if not isinstance(col, str) or not col:
            raise InvalidArgument(f"{what}: a column name is missing before '='")
        if col in out:
            raise InvalidArgument(f"{what} names column {_shown(col)!r} twice")
        out[col] = value
    return out


def check_share(value: Any) -> float:
    if isinstance(value, bool):
        raise InvalidArgument(f"share {value!r} must be a number between 0 and 1")
    try:
        s = float(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"share {value!r} must be a number between 0 and 1") from None
    if not 0 < s <= 1:  # NaN fails too
        raise InvalidArgument(f"share {value!r} must be more than 0 and at most 1")
    return s


def drift_report(client: Any, model: str, window: Any = "1h", *, since: Any = None,
                 until: Any = None, reference: str | None = None,
                 methods: Any = None, thresholds: Any = None, share: Any = DEFAULT_SHARE,
                 store: bool = True, now: dt.datetime | None = None) -> DriftReport:
    """Drift of the prediction log of the version ``model`` names (``models:/NAME@ALIAS``,
    ``models:/NAME/VERSION``, ``NAME@ALIAS``) over windows of ``window`` (``"1h"``).

    ``since``/``until``: ISO 8601 times, datetimes or epoch seconds (default: the last 24
    windows up to now).  ``reference``: a data set version ``NAME@VERSION`` instead of the
    one lineage finds.  ``methods``/``thresholds``: per column (``{"amount": "psi"}``, or
    ``["amount=psi"]``).  ``share``: the share of drifted columns at which a window's data
    set counts as drifted.  ``store``: write the windows that have ended, and were not
    written before, to the version's run in experiment ``cairn-monitoring``.
    """
    from ..serving.predlog_read import when
    from .reference import reference_version
    from .windows import DEFAULT_WINDOWS, parse_window, read_log, spans_between

    length = parse_window(window)
    share_threshold = check_share(share)
    method_of = parse_settings(methods, "--method")
    for col, m in method_of.items():
        D.check_method(m, column=col)
    threshold_of = {col: D.check_threshold(v, method_of.get(col), col)
                    for col, v in parse_settings(thresholds, "--threshold").items()}
    start, end = when(since, "since"), when(until, "until")
    spans = spans_between(start, end, length, now)
    mv = _resolve(client, model)
    log = read_log(client, mv.name, mv.version, start or spans[0][0], end or spans[-1][1])
    if log.count == 0:
        hint = "" if since is not None else \
            f" (the last {DEFAULT_WINDOWS} windows; give --since to look further back)"
        raise NotFound(f"no answered predictions of {mv.name} {mv.version} in the log between "
                       f"{(start or spans[0][0]).isoformat()} and "
                       f"{(end or spans[-1][1]).isoformat()}{hint}",
                       model=mv.name, version=mv.version)
    unknown = sorted((set(method_of) | set(threshold_of)) - set(log.columns))
    if unknown:
        raise InvalidArgument(f"--method/--threshold name column(s) {', '.join(_shown(c) for c in unknown)}, "
                              f"which the log does not have; it has {', '.join(sorted(log.columns))}",
                              unknown=unknown)
    ds, version, found_by = reference_version(client, mv, reference)
    wants_prediction = any(c.startswith("prediction") for c in log.columns)
    prep = _prepared(client, mv, ds, version, wants_prediction, store)
    known = _reference_columns(prep)
    notes = list(f"log column {c!r} holds JSON text (inputs of more than two dimensions): not "
                 "compared" for c in log.skipped)
    if prep.prediction_note and any(c.startswith("prediction") and c not in known
                                    for c in log.columns):
        notes.append(f"the prediction has no reference: {prep.prediction_note}")
    missing = tuple(c for c in log.columns if c not in known)
    tested = [c for c in log.columns if c in known]
    if not tested:
        raise InvalidArgument(f"reference data set {version.ref} has none of the logged columns "
                              f"({', '.join(_shown(c) for c in sorted(log.columns))}); is it the right "
                              "data set?", dataset=version.ref)
    prepared: dict[str, D.Reference] = {}
    for col in tested:
        if col in prep.failed:  # as preparing it here would have said
            raise InvalidArgument(prep.failed[col], column=col)
        prepared[col] = prep.columns[col]
        chosen = method_of.get(col) or prepared[col].default_method()
        D.check_method(chosen, prepared[col].kind, col)
        if col in threshold_of:
            D.check_threshold(threshold_of[col], chosen, col)
    windows = []
    # Columns in threads: NumPy's sorts and searches release the GIL.
    with ThreadPoolExecutor(max(1, min(len(tested), os.cpu_count() or 1))) as pool:
        for rows in log.split(spans):
            if rows.count == 0:
                windows.append(WindowDrift(rows.start, rows.end, 0, (), None, False))
                continue
            results = tuple(pool.map(
                _column, [prepared[c] for c in tested], tested, [rows.columns[c] for c in tested],
                [method_of.get(c) for c in tested], [threshold_of.get(c) for c in tested]))
            windows.append(_window(rows, results, share_threshold))
    report = DriftReport(mv.name, mv.version, version.ref, found_by, length, share_threshold,
                         tuple(windows), missing, tuple(notes),
                         methods={c: p.default_method() if c not in method_of else method_of[c]
                                  for c, p in prepared.items()})
    if store:
        from .results import store_report

        report = store_report(client, report, now=now)
    return report


def _reference_columns(prep: Any) -> set[str]:
    return set(prep.columns) | set(prep.failed)


def _prepared(client: Any, mv: Any, ds: Any, version: Any, wants_prediction: bool,
              store: bool) -> Any:
    """The reference prepared for comparisons: stored by an earlier report of this model
    version (:mod:`.refcache`), or prepared here from the data set version's rows (every
    column, and the prediction's when the log has one) and stored for the next."""
    from ..errors import CairnError
    from . import refcache
    from .reference import load_columns, predicted
    from .results import find_run, monitoring_run

    run_id = find_run(client, mv.name, mv.version)
    if run_id is not None:
        cached = refcache.load(client, run_id, version.ref)
        if cached is not None and (cached.predicted or not wants_prediction):
            return cached
    columns = load_columns(ds, version)
    prep = refcache.Prepared()
    for name, values in columns.items():
        try:
            prep.columns[name] = D.prepare(values)
        except InvalidArgument as exc:
            prep.failed[name] = exc.message
    if wants_prediction:
        prep.predicted = True
        try:
            for name, values in predicted(client, mv, columns).items():
                if name in prep.columns or name in prep.failed:
                    continue
                try:
                    prep.columns[name] = D.prepare(values)
                except InvalidArgument as exc:
                    prep.failed[name] = exc.message
        except CairnError as exc:  # the prediction is then reported missing
            prep.prediction_note = exc.message
        except Exception as exc:  # noqa: BLE001 (as above, whatever the model raised)
            prep.prediction_note = str(exc)
    if store:
        refcache.save(client, run_id or monitoring_run(client, mv.name, mv.version),
                      version.ref, prep)
    return prep


def _window(rows: Any, results: tuple[D.ColumnDrift, ...], share_threshold: float) -> WindowDrift:
    judged = [r for r in results if r.drifted is not None]
    frac = sum(bool(r.drifted) for r in judged) / len(judged) if judged else None
    return WindowDrift(rows.start, rows.end, rows.count, results, frac,
                       frac is not None and frac >= share_threshold)


def _resolve(client: Any, ref: Any) -> Any:
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidArgument(f"model reference must be a string like models:/fraud@production, "
                              f"got {ref!r}")
    text = ref.strip().removeprefix("models:/")
    return client.resolve_model(text)


def _column(ref: D.Reference, name: str, values: Any, method: str | None,
            threshold: float | None) -> D.ColumnDrift:
    """One column of one window, from its pyarrow array."""
    import pyarrow as pa

    t = values.type
    if ref.kind == D.NUMERICAL:
        note = ""
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            # A segment whose column fell back to text (a value Parquet could not type):
            # the numbers in it count, anything else is missing (and said so).
            import pyarrow.compute as pc

            number = pc.match_substring_regex(values, _NUMBER)
            bad = pc.sum(pc.invert(number.fill_null(True))).as_py() or 0
            values = pc.if_else(number, values, pa.scalar(None, values.type)).cast(pa.float64())
            if bad:
                note = f"{bad} value(s) in the log were not numbers (counted as missing)"
        elif not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
                  or pa.types.is_null(t) or pa.types.is_decimal(t)):
            return _no_verdict(ref, name, method, threshold, len(values),
                               f"the log holds {t} where the reference has numbers")
        x = values.cast(pa.float64()).to_numpy(zero_copy_only=False)
        result = D.compare(ref, x, column=name, method=method, threshold=threshold)
        return dataclasses.replace(result, note=note) if note and not result.note else result
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        import numpy as np
        import pyarrow.compute as pc

        if all(isinstance(c, str) for c in ref.categories):
            k = len(ref.categories)
            idx = pc.index_in(values, value_set=pa.array(list(ref.categories), pa.string()))
            codes = np.asarray(idx.fill_null(k).to_numpy(zero_copy_only=False), np.int64)
            codes[np.asarray(values.is_null().to_numpy(zero_copy_only=False), bool)] = -1
            return D.compare(ref, codes, column=name, method=method, threshold=threshold,
                             coded=True)
    arr = values.to_numpy(zero_copy_only=False)
    return D.compare(ref, arr, column=name, method=method, threshold=threshold)


def _no_verdict(ref: D.Reference, name: str, method: str | None, threshold: float | None,
                total: int, note: str) -> D.ColumnDrift:
    m = method or ref.default_method()
    return D.ColumnDrift(name, ref.kind, m, D.THRESHOLDS[m] if threshold is None else threshold,
                         None, None, ref.count, 0, 1.0 if total else 0.0, note)

