"""Reports: a Markdown document with live panels, and the data its panels draw.

A panel is a fenced block whose info string is ``cairn-panel``, holding one JSON object::

    ```cairn-panel
    {"type": "metric", "run": "0f3a...", "key": "loss"}
    ```

Types (every panel may also have a ``title``):

* ``metric``: one run's metric history as a chart (``run``, ``key``);
* ``compare``: several runs side by side, a table of ``columns`` (``metrics.NAME``,
  ``params.NAME``, ``tags.NAME``) over ``runs`` (at most 50), and with ``key`` a chart of
  that metric's histories, one line per run;
* ``stages``: a model's stage history (``model``): registrations, stage changes, rollbacks.

Blocks are found exactly as the web UI's Markdown renderer (``ui/src/markdown.js``) finds
fences at the top level of a document, so that both see the same panels; each panel keeps
its block's text as ``source``, which is how the UI matches data to a block.

:func:`snapshot` draws every panel's data now, as JSON: the web UI renders a report from
it, and an export embeds it (see :mod:`cairn.collab.export`).
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

import numpy as np

from .. import clock
from ..errors import CairnError, InvalidArgument
from ..store.validation import check_text
from ..store.wire import jfloat
from .entities import Report
from .rules import MAX_VIEW_NAME, _VIEW_NAME

PANEL_TYPES = ("metric", "compare", "stages")
PANEL_KEYS = {"metric": ("type", "title", "run", "key"),
              "compare": ("type", "title", "runs", "columns", "key"),
              "stages": ("type", "title", "model")}
MAX_REPORT_BYTES = 256 * 1024  # the Markdown, in UTF-8
MAX_REPORT_PANELS = 50
MAX_COMPARE_RUNS = 50
MAX_COMPARE_COLUMNS = 50
MAX_POINTS = 2000  # per metric chart: beyond this a min/max envelope, as the run page draws
COLUMN_PREFIXES = ("metrics.", "params.", "tags.")
STAGE_KINDS = ("register", "stage", "rollback")

# What JavaScript's \s and String.prototype.trim() treat as white space (markdown.js uses
# both), so that a block is a fence here exactly when it is one in the browser.
_JS_WS = ("\t\n\v\f\r \u00a0\u1680" + "".join(chr(c) for c in range(0x2000, 0x200B))
          + "\u2028\u2029\u202f\u205f\u3000\ufeff")
_FENCE = re.compile(f"^[{re.escape(_JS_WS)}]*(```+|~~~+)")
INFO = "cairn-panel"


def check_report_name(name: Any) -> str:
    check_text(name, "report name")
    if not _VIEW_NAME.fullmatch(name) or name.strip() != name:
        raise InvalidArgument(f"a report name is 1 to {MAX_VIEW_NAME} characters, without '/', "
                              f"control characters or surrounding spaces; got {name[:60]!r}")
    return name


def check_report_body(body: Any) -> str:
    check_text(body, "body")
    size = len(body.encode("utf-8"))
    if size > MAX_REPORT_BYTES:
        raise InvalidArgument(f"a report's body is {size} bytes long; the limit is "
                              f"{MAX_REPORT_BYTES} (256 KiB)")
    if "\x00" in body:
        raise InvalidArgument("a report's body must not contain a NUL character")
    return body


def panel_blocks(body: str) -> list[tuple[int, str]]:
    """The ``cairn-panel`` blocks of a Markdown document: (line number, text), in order."""
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        info = lines[i][m.end():].strip(_JS_WS)
        start = i + 1
        i += 1
        block = []
        while i < len(lines) and not lines[i].strip(_JS_WS).startswith(m.group(1)):
            block.append(lines[i])
            i += 1
        i += 1
        if info == INFO:
            out.append((start, "\n".join(block)))
    return out


def _reject(value: str) -> Any:
    raise ValueError(f"{value} is not JSON")


def _string(where: str, key: str, value: Any, limit: int = 1000) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise InvalidArgument(f"{where}: {key!r} must be a non-empty string of at most {limit} "
                              f"characters, got {str(value)[:60]!r}")
    return value


def check_panel(index: int, line: int, source: str) -> dict[str, Any]:
    """One panel's JSON, checked: only its type's keys, each of its type."""
    where = f"panel {index + 1} (line {line})"
    try:
        spec = json.loads(source, parse_constant=_reject)
    except ValueError as exc:
        raise InvalidArgument(f"{where} is not a JSON object: {exc}", panel=index + 1) from None
    if not isinstance(spec, dict):
        raise InvalidArgument(f"{where} must be a JSON object, got {type(spec).__name__}",
                              panel=index + 1)
    kind = spec.get("type")
    if kind not in PANEL_TYPES:
        raise InvalidArgument(f"{where} has unknown type {kind!r}; a panel's type is one of "
                              f"{', '.join(PANEL_TYPES)}", panel=index + 1)
    unknown = sorted(str(k) for k in spec if k not in PANEL_KEYS[kind])
    if unknown:
        raise InvalidArgument(f"{where} has unknown keys {unknown[:5]}; a {kind} panel may hold "
                              f"{', '.join(PANEL_KEYS[kind])}", panel=index + 1)
    title = spec.get("title", "")
    if not isinstance(title, str) or len(title) > 200:
        raise InvalidArgument(f"{where}: 'title' must be a string of at most 200 characters",
                              panel=index + 1)
    out: dict[str, Any] = {"type": kind, "title": title}
    if kind == "metric":
        out["run"] = _string(where, "run", spec.get("run"), 64)
        out["key"] = _string(where, "key", spec.get("key"))
    elif kind == "compare":
        runs, columns = spec.get("runs"), spec.get("columns")
        if not isinstance(runs, list) or not 0 < len(runs) <= MAX_COMPARE_RUNS:
            raise InvalidArgument(f"{where}: 'runs' must be a list of 1 to {MAX_COMPARE_RUNS} "
                                  "run ids", panel=index + 1)
        out["runs"] = list(dict.fromkeys(_string(where, "runs", r, 64) for r in runs))
        if not isinstance(columns, list) or not 0 < len(columns) <= MAX_COMPARE_COLUMNS:
            raise InvalidArgument(f"{where}: 'columns' must be a list of 1 to "
                                  f"{MAX_COMPARE_COLUMNS} columns", panel=index + 1)
        for c in columns:
            _string(where, "columns", c)
            if not c.startswith(COLUMN_PREFIXES) or c in COLUMN_PREFIXES:
                raise InvalidArgument(f"{where}: column {c[:60]!r} is not metrics.NAME, "
                                      "params.NAME or tags.NAME", panel=index + 1)
        out["columns"] = list(columns)
        if spec.get("key") is not None:
            out["key"] = _string(where, "key", spec.get("key"))
    else:
        out["model"] = _string(where, "model", spec.get("model"), 500)
    out["source"] = source
    return out


def parse_panels(body: str) -> list[dict[str, Any]]:
    """The body's panels, each checked (the first bad one is refused, naming it)."""
    blocks = panel_blocks(check_report_body(body))
    if len(blocks) > MAX_REPORT_PANELS:
        raise InvalidArgument(f"a report has at most {MAX_REPORT_PANELS} panels, got "
                              f"{len(blocks)}")
    return [check_panel(i, line, source) for i, (line, source) in enumerate(blocks)]


def panel_where(index: int, panel: dict[str, Any]) -> str:
    return f"panel {index + 1} ({panel['type']})"


def panel_runs(panel: dict[str, Any]) -> list[str]:
    return [panel["run"]] if panel["type"] == "metric" else list(panel.get("runs", ()))


def sources(panels: list[dict[str, Any]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The experiments and models resolved panels draw from, once each, in order."""
    exps = dict.fromkeys(e for p in panels for e in p.get("experiments", ()))
    models = dict.fromkeys(p["model"] for p in panels if p["type"] == "stages")
    return tuple(exps), tuple(models)


# -- data ------------------------------------------------------------------------------
def series_json(steps: np.ndarray, timestamps: np.ndarray, values: np.ndarray,
                points: int = MAX_POINTS) -> dict[str, Any]:
    """A metric history for a chart: exact up to ``points``, else per bucket the last value
    and the min and max (so that no spike disappears), each drawn at its last step."""
    n = len(values)
    if n <= points:
        return {"exact": True, "count": n, "steps": steps.tolist(),
                "timestamps": timestamps.tolist(), "values": [jfloat(v) for v in values.tolist()]}
    starts = np.linspace(0, n, points, endpoint=False).astype(np.int64)
    ends = np.append(starts[1:], n) - 1
    return {"exact": False, "count": n, "steps": steps[ends].tolist(),
            "timestamps": timestamps[ends].tolist(),
            "values": [jfloat(v) for v in values[ends].tolist()],
            "min": [jfloat(v) for v in np.fmin.reduceat(values, starts).tolist()],
            "max": [jfloat(v) for v in np.fmax.reduceat(values, starts).tolist()]}


def _cell(run: Any, column: str) -> Any:
    kind, _, key = column.partition(".")
    if kind == "metrics":
        v = run.metrics.get(key)
        return None if v is None else jfloat(float(v))
    return (run.params if kind == "params" else run.tags).get(key)


def panel_data(client: Any, panel: dict[str, Any], registry: Callable[[], Any]) -> dict[str, Any]:
    """What one panel shows, drawn from ``client``'s store now."""
    if panel["type"] == "metric":
        run = client.get_run(panel["run"])
        h = client.get_metric_history(run.id, panel["key"])
        return {"run": {"id": run.id, "name": run.name, "experiment_id": run.experiment_id},
                "key": panel["key"], "series": series_json(h.steps, h.timestamps, h.values)}
    if panel["type"] == "compare":
        runs = [client.get_run(r) for r in panel["runs"]]
        out: dict[str, Any] = {}
        if panel.get("key"):
            points = max(100, MAX_POINTS // len(runs))
            out["key"] = panel["key"]
            out["series"] = []
            for r in runs:
                h = client.get_metric_history(r.id, panel["key"])
                out["series"].append({"run": r.id, "name": r.name,
                                      **series_json(h.steps, h.timestamps, h.values, points)})
        return {**out, "columns": panel["columns"],
                "runs": [{"id": r.id, "name": r.name, "status": r.status.value,
                          "experiment": r.experiment,
                          "cells": [_cell(r, c) for c in panel["columns"]]} for r in runs]}
    events = registry().model_history(panel["model"])
    return {"model": panel["model"], "events": [
        {"time": e.time, "kind": e.kind, "version": e.version, "from": e.from_value,
         "to": e.to_value, "actor": e.actor, "reason": e.reason}
        for e in events if e.kind in STAGE_KINDS]}


def public_panel(panel: dict[str, Any]) -> dict[str, Any]:
    """A panel as the UI and an export see it (without what it was resolved to)."""
    return {k: v for k, v in panel.items() if k != "experiments"}


def snapshot(client: Any, report: Report) -> dict[str, Any]:
    """The report with every panel's data drawn now (a panel that fails says why, alone)."""
    from ..services import registry_for

    reg: list[Any] = []

    def registry() -> Any:
        if not reg:
            reg.append(registry_for(client))
        return reg[0]

    panels = []
    for p in report.panels:
        item: dict[str, Any] = {"spec": public_panel(p), "source": p["source"]}
        try:
            item["data"] = panel_data(client, p, registry)
        except CairnError as exc:
            item["error"] = exc.message
        panels.append(item)
    return {"name": report.name, "body": report.body, "author": report.created_by,
            "created_at": report.created_at, "updated_by": report.updated_by,
            "updated_at": report.updated_at, "generated_at": clock.now_ms(), "panels": panels}
