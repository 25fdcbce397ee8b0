"""Turning entities into rows, JSON and human-friendly cells."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from ..entities import Run


def ts(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    s = ms / 1000
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int((s % 3600) // 60):02d}m"


def num(x: Any) -> str:
    if isinstance(x, float):
        if math.isnan(x) or math.isinf(x):
            return str(x)
        return f"{x:.6g}"
    return str(x)


def run_json(run: Run, env: bool = False) -> dict[str, Any]:
    d = {
        "id": run.id, "name": run.name, "experiment_id": run.experiment_id,
        "experiment": run.experiment, "status": run.status.value, "start_time": run.start_time,
        "end_time": run.end_time, "user": run.user, "parent_id": run.parent_id,
        "lifecycle": run.lifecycle, "params": dict(run.params),
        "metrics": {k: _json_float(v) for k, v in run.metrics.items()},
        "tags": dict(run.tags),
    }
    if env:
        d["env"] = dict(run.env)
    return d


def _json_float(v: float) -> Any:
    # JSON has no NaN/Infinity: spell them as strings so scripts can still parse the output.
    if math.isnan(v) or math.isinf(v):
        return str(v)
    return v


STATUS_STYLE = {"RUNNING": "cyan", "FINISHED": "green", "FAILED": "red", "KILLED": "yellow"}


def report_verify(res: Any, as_json: bool, **head: Any) -> None:
    """Print an object store's VerifyResult (``head`` goes first in the JSON) and exit 1 on
    damage: one shape for `artifacts verify` and `data verify`."""
    import click

    from .main import emit_json

    if as_json:
        emit_json({**head, **({"ok": res.ok} if head else {}), "checked": res.checked,
                   "corrupt": list(res.corrupt), "missing": list(res.missing)})
    else:
        click.echo(f"checked {res.checked} object(s): {len(res.corrupt)} corrupt, "
                   f"{len(res.missing)} missing")
        for oid in res.corrupt:
            click.echo(f"  corrupt {oid}")
        for oid in res.missing:
            click.echo(f"  missing {oid}")
    if not res.ok:
        raise SystemExit(1)
