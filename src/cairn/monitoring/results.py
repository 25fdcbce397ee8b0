"""Drift results as metrics of one monitoring run per model version.

The run is in experiment ``cairn-monitoring``, tagged ``cairn.monitoring.model=NAME`` and
``cairn.monitoring.version=VERSION`` (found by those tags, made on first use, as the
serving runs of the prediction log are).  Per window, with the window's end as the
metric's timestamp and its end in seconds since the epoch as the step::

    drift.<column>           the score (a p-value for ks and chisquare, else a distance)
    drift.<column>.drifted   1 or 0
    drift.<column>.missing   the share of the window's values that were missing
    drift.share              the share of drifted columns
    drift.drifted            1 when the share reached the report's threshold
    drift.rows               answered rows in the window

Only windows that have ended are written, and each once: a window whose end already has a
``drift.rows`` point is left as it was, so running the same command from cron every hour
adds each hour once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from ..errors import NotFound

EXPERIMENT = "cairn-monitoring"
MODEL_TAG = "cairn.monitoring.model"
VERSION_TAG = "cairn.monitoring.version"
REFERENCE_TAG = "cairn.monitoring.reference"
ROWS = "drift.rows"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def find_run(client: Any, model: str, version: str) -> str | None:
    """The monitoring run of ``model`` ``version`` (the oldest, should two exist), or None."""
    flt = f"tags.`{MODEL_TAG}` = {_quote(model)} AND tags.`{VERSION_TAG}` = {_quote(version)}"
    try:
        page = client.search_runs([EXPERIMENT], flt, ["attributes.start_time ASC"], max_results=1)
    except NotFound:  # no experiment yet
        return None
    return page[0].id if len(page) else None


def monitoring_run(client: Any, model: str, version: str) -> str:
    run_id = find_run(client, model, version)
    if run_id is None:
        exp = client.get_or_create_experiment(EXPERIMENT)
        run_id = client.create_run(exp.id, name=f"{model}-{version}-monitoring",
                                   tags={MODEL_TAG: model, VERSION_TAG: version}).id
    return str(run_id)


def _storable(key: str) -> bool:
    """Whether a column's metric key is one the store takes (a feature named with leading
    spaces or a path escape, or too long, is reported but not stored)."""
    from ..errors import InvalidArgument
    from ..store.validation import check_key

    try:
        check_key(key, "metric")
    except InvalidArgument:
        return False
    return True


def store_report(client: Any, report: Any, now: dt.datetime | None = None) -> Any:
    """Write ``report``'s ended, not yet written windows; the report with ``run_id`` and each
    window's ``stored`` set."""
    now = now or dt.datetime.now(dt.timezone.utc)
    ended = [w for w in report.windows if w.rows and w.end <= now]
    if not ended:
        return report
    run_id = monitoring_run(client, report.model, report.version)
    done = set(client.get_metric_history(run_id, ROWS).timestamps.tolist())
    points: list[tuple[str, float, int, int]] = []
    written = set()
    for w in ended:
        ts = int(w.end.timestamp() * 1000)
        if ts in done:
            continue
        step = int(w.end.timestamp())
        points.append((ROWS, float(w.rows), step, ts))
        if w.share is not None:
            points.append(("drift.share", float(w.share), step, ts))
            points.append(("drift.drifted", float(w.drifted), step, ts))
        for c in w.columns:
            points.append((f"drift.{c.column}.missing", float(c.missing), step, ts))
            if c.score is not None:
                points.append((f"drift.{c.column}", float(c.score), step, ts))
                points.append((f"drift.{c.column}.drifted", float(bool(c.drifted)), step, ts))
        written.add(ts)
    points = [p for p in points if _storable(p[0])]
    if points:
        client.log_batch(run_id, points, tags={REFERENCE_TAG: report.reference})
    windows = tuple(dataclasses.replace(w, stored=True)
                    if int(w.end.timestamp() * 1000) in written else w for w in report.windows)
    return dataclasses.replace(report, windows=windows, run_id=run_id)
