"""The model page's monitoring tab: drift, live quality, alerts and serving arms in one answer.

Everything the tab draws comes from what monitoring already stores, read here so that the
page makes one request: each version's monitoring run (experiment ``cairn-monitoring``, see
:mod:`cairn.monitoring.results`) gives the drift matrix (windows x features) and the
``live.*`` series; the ``alert_states`` and ``alert_history`` tables give the alert timeline;
the alert tables (read by :mod:`cairn.monitoring.alert_store`) give the alerts' states,
changes and actions; the registry's deployment events give the arms serving now.  Sizes are
capped (the versions whose data come, the newest windows, the most drifted features) and the
answer says when something was left out; ``?version=`` asks for other versions' data.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Path, Query, Request

from ...errors import InvalidArgument, NotFound
from ...store.wire import jfloat
from ..auth import Principal
from ..context import ServerContext, ctx, principal

# cairn.monitoring is imported where used: a server that nobody asks for monitoring never
# loads it (as `import cairn` and the CLI's start never do).

router = APIRouter(tags=["ui"])
User = Annotated[Principal, Depends(principal)]

MAX_WINDOWS = 500  # the newest windows of a version's drift matrix and live series
MAX_FEATURES = 100  # the most drifted features of a version
MAX_COLUMNS_READ = 1000  # features ranked to find those (by name, past that)
MAX_LIVE_KEYS = 20
MAX_VERSIONS = 50  # the newest versions, and any older one that has monitoring data
MAX_LOADED = 10  # versions whose drift and live data come (the served ones first)
MAX_ALERT_HISTORY = 500  # the newest state changes
MAX_ALERT_ACTIONS = 200  # the newest actions firings took
MAX_DEPLOY_EVENTS = 200
# drift.<key> metrics that describe the window, not a feature
WINDOW_KEYS = ("drift.share", "drift.drifted", "drift.rows")


@router.get("/models/{name}/monitoring",
            summary="A registered model's monitoring for its page: per version the drift "
                    "matrix (windows x features) and live metrics, the alerts' states and "
                    "history, the arms serving it and their deployment events")
def model_monitoring(request: Request, p: User,
                     name: Annotated[str, Path(min_length=1, max_length=256)],
                     version: Annotated[list[str] | None, Query(
                         max_length=MAX_LOADED, description="the versions whose data to send "
                         "(default: those served now, then the newest monitored)")] = None
                     ) -> dict[str, Any]:
    # The page asks GET /ui/models/{name} first (a missing model is an answer there), so a
    # refusal or a missing model here is an ordinary 403/404, as on the other model routes.
    from ..routes.models import _need, _registry

    c = ctx(request)
    if "\x00" in name:
        raise NotFound(f"registered model {name[:256]!r} does not exist")
    if any(not v or len(v) > 64 or "\x00" in v for v in version or ()):
        raise InvalidArgument("a version must be 1-64 characters")
    _need(c, p, name, "viewer")
    reg = _registry(c, p)
    model = reg.get_registered_model(name)
    runs = _monitoring_runs(c, name)
    deploy = reg.deployments(name)
    arms = _arms(deploy)
    all_versions = list(reversed(reg.list_model_versions(name)))  # newest first
    shown = [v for i, v in enumerate(all_versions) if i < MAX_VERSIONS or v.version in runs]
    if version:
        wanted = list(dict.fromkeys(version))
    else:  # the versions served now, then the newest monitored ones
        wanted = list(dict.fromkeys([a["version"] for a in arms]
                                    + [v.version for v in all_versions if v.version in runs]))
    load = set([v for v in wanted if v in runs][:MAX_LOADED])
    versions = []
    for v in shown:
        run_id = runs.get(v.version)
        entry: dict[str, Any] = {"version": v.version, "stage": v.stage,
                                 "aliases": list(v.aliases), "run_id": run_id,
                                 "loaded": v.version in load}
        if v.version in load and run_id is not None:
            entry.update(_run_data(c, run_id))
        versions.append(entry)
    with reg.session() as conn:
        alerts = _alerts(conn, name)
    return {"model": name, "aliases": dict(model.aliases), "versions": versions,
            "versions_total": len(all_versions),
            "alerts": alerts,
            "arms": arms,
            "deployments": [_deploy_json(e) for e in reversed(deploy[-MAX_DEPLOY_EVENTS:])],
            "deployments_total": len(deploy),
            "limits": {"windows": MAX_WINDOWS, "features": MAX_FEATURES, "loaded": MAX_LOADED,
                       "live_keys": MAX_LIVE_KEYS, "alert_history": MAX_ALERT_HISTORY,
                       "alert_actions": MAX_ALERT_ACTIONS}}


def _monitoring_runs(c: ServerContext, name: str) -> dict[str, str]:
    """version -> the id of its monitoring run (the oldest, as results.find_run picks)."""
    from ...monitoring import results

    exp = c.store.get_experiment_by_name(results.EXPERIMENT)
    if exp is None:
        return {}
    flt = f"tags.`{results.MODEL_TAG}` = {results._quote(name)}"
    found: dict[str, str] = {}
    token = None
    for _ in range(20):  # 20,000 monitoring runs of one model is far past any real use
        runs, token = c.store.search_runs([exp.id], flt, ["attributes.start_time ASC"], 1000,
                                          token)
        for r in runs:
            version = r.tags.get(results.VERSION_TAG)
            if version:
                found.setdefault(version, r.id)
        if not token:
            break
    return found


def _aligned(c: ServerContext, run_id: str, key: str, index: dict[int, int], n: int) -> list:
    """The metric ``key``'s values at the matrix's windows (None where it has none)."""
    out: list[Any] = [None] * n
    h = c.store.get_metric_history(run_id, key)
    for step, value in zip(h.steps.tolist(), h.values.tolist()):
        i = index.get(step)
        if i is not None:
            out[i] = jfloat(value)
    return out


def _columns(keys: list[str]) -> list[str]:
    """The features of a run's ``drift.*`` keys: each has ``drift.<col>.drifted`` (compared)
    or only ``drift.<col>.missing`` (not compared in any window)."""
    cols = set()
    for k in keys:
        if not k.startswith("drift.") or k in WINDOW_KEYS:
            continue
        for suffix in (".drifted", ".missing"):
            if k.endswith(suffix) and len(k) > len("drift.") + len(suffix):
                cols.add(k[len("drift."):-len(suffix)])
    return sorted(cols)


def _run_data(c: ServerContext, run_id: str) -> dict[str, Any]:
    from ...monitoring import results

    run = c.store.get_run(run_id)
    keys = sorted(run.metrics)
    rows = c.store.get_metric_history(run_id, results.ROWS)
    steps = sorted(set(rows.steps.tolist()))
    windows = steps[-MAX_WINDOWS:]
    index = {s: i for i, s in enumerate(windows)}
    n = len(windows)
    columns = _columns(keys)
    # The most drifted features first: with hundreds of them, those are the ones to see.
    # Their flags are read to rank them; scores and missing shares only for those shown.
    flags = {}
    for col in columns[:MAX_COLUMNS_READ]:
        flags[col] = [None if f is None else bool(f)
                      for f in _aligned(c, run_id, f"drift.{col}.drifted", index, n)]
    ranked = sorted(flags, key=lambda col: (-sum(1 for d in flags[col] if d), col))
    features = [{"name": col, "drifted": flags[col],
                 "score": _aligned(c, run_id, f"drift.{col}", index, n),
                 "missing": _aligned(c, run_id, f"drift.{col}.missing", index, n)}
                for col in ranked[:MAX_FEATURES]]
    live_keys = [k for k in keys if k.startswith("live.")]
    # train.<metric>: the version's registered metric, written beside each live window (a
    # reference line on the chart of live.<metric>).
    train_keys = [k for k in keys if k.startswith("train.")]
    return {"windows": windows, "windows_total": len(steps),
            "share": _aligned(c, run_id, "drift.share", index, n),
            "drifted": _aligned(c, run_id, "drift.drifted", index, n),
            "rows": _aligned(c, run_id, results.ROWS, index, n),
            "features": features, "features_total": len(columns),
            "live": [_series(c, run_id, k) for k in live_keys[:MAX_LIVE_KEYS]],
            "live_total": len(live_keys),
            "train": [_series(c, run_id, k) for k in train_keys[:MAX_LIVE_KEYS]]}


def _series(c: ServerContext, run_id: str, key: str) -> dict[str, Any]:
    """The newest MAX_WINDOWS points of a per-window metric, by window."""
    h = c.store.get_metric_history(run_id, key)
    order = np.argsort(h.steps, kind="stable")[-MAX_WINDOWS:]
    return {"key": key, "steps": h.steps[order].tolist(),
            "values": [jfloat(x) for x in h.values[order].tolist()], "total": len(h)}


def _alerts(conn: Any, name: str) -> dict[str, Any]:
    """The model's alerts (a rule names it bare or as ``NAME@alias``), as the monitor's own
    reader gives them: states, the newest changes and the actions firings took."""
    from ...monitoring import alert_store
    from ..routes._json import finite

    # One past the cap says whether older ones were left out.
    history = alert_store.history(conn, model=name, limit=MAX_ALERT_HISTORY + 1)
    actions = alert_store.actions(conn, model=name, limit=MAX_ALERT_ACTIONS + 1)
    # Python's json reads NaN and Infinity, which a JSON answer cannot carry: finite() sends
    # them as the strings the rest of the API uses.
    return finite({
        "states": [s.to_dict() for s in alert_store.states(conn, name)],
        "history": [t.to_dict() for t in history[:MAX_ALERT_HISTORY]],
        "history_truncated": len(history) > MAX_ALERT_HISTORY,
        "actions": [{**a.to_dict(), "result": _no_urls(a.result), "ok": a.ok}
                    for a in actions[:MAX_ALERT_ACTIONS]],
        "actions_truncated": len(actions) > MAX_ALERT_ACTIONS})


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def _no_urls(value: Any) -> Any:
    """``value`` with each URL in its texts reduced to its origin: a notify action's result
    names its target, and a chat webhook's URL (or a ``user:password@``) is a credential
    that a model's viewers must not read (the audit log, too, keeps only the origin)."""
    if isinstance(value, str):
        return _URL.sub(lambda m: _origin(m.group(0)), value)
    if isinstance(value, dict):
        return {k: _no_urls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_urls(v) for v in value]
    return value


def _origin(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        p = urlsplit(url)
        return f"{p.scheme}://{p.netloc.rpartition('@')[2]}"
    except ValueError:
        return "(a URL)"


def _deploy_json(e: Any) -> dict[str, Any]:
    return {"kind": e.kind, "event": e.kind.removeprefix("deploy_"), "version": e.to_value,
            "previous": e.from_value, "deployment": e.deployment, "arm": e.arm,
            "reason": e.reason, "actor": e.actor, "time": e.time}


def _arms(events: list[Any]) -> list[dict[str, Any]]:
    """The arms serving now: each (deployment, arm)'s last event, unless it was a stop."""
    last: dict[tuple[str, str], Any] = {}
    for e in events:
        last[(e.deployment or "", e.arm or "primary")] = e
    arms = [_deploy_json(e) for e in last.values() if e.kind != "deploy_stop"]
    # primary first, then the others by name, per deployment
    arms.sort(key=lambda a: (a["deployment"] or "", a["arm"] != "primary", a["arm"] or ""))
    return arms
