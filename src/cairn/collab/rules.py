"""The rules a comment or a saved view must follow, in one place: the local service, the
remote one and the server's routes all call these before anything is stored or sent."""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import InvalidArgument
from ..store.validation import check_json, check_text
from .entities import TARGET_TYPES

MAX_BODY_BYTES = 64 * 1024  # a comment's Markdown, in UTF-8
MAX_TARGET_ID = 600
MAX_VIEW_NAME = 128
MAX_STATE_BYTES = 64 * 1024
MAX_COLUMNS = 1000
STATE_KEYS = ("filter", "columns", "group", "sort", "charts")
_ID = re.compile(r"[0-9a-f]{32}")
_VIEW_NAME = re.compile(r"[^\x00-\x1f\x7f/]{1,128}")
# @name, not inside a word or an e-mail address; names as `cairn users create` accepts them.
_MENTION = re.compile(r"(?<![\w@.+-])@([A-Za-z0-9][A-Za-z0-9._@+-]{0,127})")
_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.S)


def check_target(target_type: Any, target_id: Any) -> tuple[str, str]:
    if target_type not in TARGET_TYPES:
        raise InvalidArgument(f"target_type must be one of {', '.join(TARGET_TYPES)}, "
                              f"got {target_type!r}")
    check_text(target_id, "target_id")
    if not target_id or len(target_id) > MAX_TARGET_ID or "\x00" in target_id:
        raise InvalidArgument(f"target_id must be 1 to {MAX_TARGET_ID} characters without NUL, "
                              f"got {target_id[:60]!r}")
    if target_type in ("model_version", "dataset_version") and "@" not in target_id:
        raise InvalidArgument(f"a {target_type} is named NAME@VERSION, got {target_id!r}")
    return target_type, target_id


def check_body(body: Any) -> str:
    check_text(body, "body")
    size = len(body.encode("utf-8"))
    if not body.strip():
        raise InvalidArgument("a comment's body must not be empty")
    if size > MAX_BODY_BYTES:
        raise InvalidArgument(f"a comment's body is {size} bytes long; the limit is "
                              f"{MAX_BODY_BYTES} (64 KiB)")
    if "\x00" in body:
        raise InvalidArgument("a comment's body must not contain a NUL character")
    return body


def check_comment_id(comment_id: Any) -> str:
    if not isinstance(comment_id, str) or not _ID.fullmatch(comment_id):
        from ..errors import NotFound

        raise NotFound(f"no comment {str(comment_id)[:60]!r}", comment_id=str(comment_id)[:60])
    return comment_id


def mentions(body: str) -> tuple[str, ...]:
    """The user names ``body`` mentions, in order, once each (not inside code)."""
    text = _CODE.sub(" ", body)
    found = (m.group(1).rstrip(".") for m in _MENTION.finditer(text))
    return tuple(dict.fromkeys(n for n in found if n))


def check_view_name(name: Any) -> str:
    check_text(name, "view name")
    if not _VIEW_NAME.fullmatch(name) or name.strip() != name:
        raise InvalidArgument(f"a view name is 1 to {MAX_VIEW_NAME} characters, without '/', "
                              f"control characters or surrounding spaces; got {name[:60]!r}")
    return name


def check_state(state: Any) -> dict[str, Any]:
    """A runs-table state: only the keys the runs page keeps, each of its type."""
    if not isinstance(state, dict):
        raise InvalidArgument(f"a view's state must be an object, got {type(state).__name__}")
    unknown = sorted(str(k) for k in state if k not in STATE_KEYS)
    if unknown:
        raise InvalidArgument(f"a view's state has unknown keys {unknown[:5]}; it may hold "
                              f"{', '.join(STATE_KEYS)}")
    check_json(state, "state")
    out: dict[str, Any] = {}
    for key in ("filter", "group"):
        value = state.get(key, "")
        if value is None:
            value = ""
        if not isinstance(value, str) or len(value) > 10_000:
            raise InvalidArgument(f"state.{key} must be a string of at most 10000 characters")
        out[key] = value
    for key in ("columns", "charts"):
        value = state.get(key, [])
        if value is None:
            value = []
        if not isinstance(value, list) or len(value) > MAX_COLUMNS or \
                not all(isinstance(v, str) and 0 < len(v) <= 1000 for v in value):
            raise InvalidArgument(f"state.{key} must be a list of at most {MAX_COLUMNS} "
                                  "non-empty strings")
        out[key] = list(value)
    sort = state.get("sort")
    if sort is not None:
        if not isinstance(sort, dict) or set(sort) != {"id", "dir"} or \
                not isinstance(sort["id"], str) or not 0 < len(sort["id"]) <= 1000 or \
                sort["dir"] not in ("ASC", "DESC"):
            raise InvalidArgument('state.sort must be null or {"id": COLUMN, "dir": "ASC"|"DESC"}')
        sort = {"id": sort["id"], "dir": sort["dir"]}
    out["sort"] = sort
    if len(json.dumps(out, ensure_ascii=False).encode()) > MAX_STATE_BYTES:
        raise InvalidArgument(f"a view's state is larger than {MAX_STATE_BYTES} bytes")
    return out


# -- dashboards --------------------------------------------------------------------------
PANEL_KINDS = ("line", "scatter", "parallel", "table", "significance")
PANEL_KEYS = ("title", "kind", "experiment_id", "view", "filter", "sort", "columns", "limit",
              "across")
MAX_ACROSS = 20  # the params a significance panel groups across (as POST /ui/compare/aggregate)
MAX_PANELS = 50
MAX_PANEL_RUNS = 100


def check_dashboard_name(name: Any) -> str:
    check_text(name, "dashboard name")
    if not _VIEW_NAME.fullmatch(name) or name.strip() != name:
        raise InvalidArgument(f"a dashboard name is 1 to {MAX_VIEW_NAME} characters, without "
                              f"'/', control characters or surrounding spaces; got {name[:60]!r}")
    return name


def check_description(text: Any) -> str:
    check_text(text, "description")
    if len(text) > 10_000:
        raise InvalidArgument("a dashboard's description is at most 10000 characters")
    if "\x00" in text:  # PostgreSQL's text cannot hold one: a clear 400, not a 503
        raise InvalidArgument("a dashboard's description must not contain a NUL character")
    return text


def check_panels(panels: Any) -> list[dict[str, Any]]:
    """Each panel with only the keys a panel has, each of its type (defaults filled in)."""
    if not isinstance(panels, (list, tuple)):
        raise InvalidArgument(f"panels must be a list, got {type(panels).__name__}")
    if len(panels) > MAX_PANELS:
        raise InvalidArgument(f"a dashboard has at most {MAX_PANELS} panels, got {len(panels)}")
    check_json(list(panels), "panels")
    out = []
    for i, p in enumerate(panels):
        where = f"panels[{i}]"
        if not isinstance(p, dict):
            raise InvalidArgument(f"{where} must be an object, got {type(p).__name__}")
        unknown = sorted(str(k) for k in p if k not in PANEL_KEYS)
        if unknown:
            raise InvalidArgument(f"{where} has unknown keys {unknown[:5]}; a panel may hold "
                                  f"{', '.join(PANEL_KEYS)}")
        kind = p.get("kind")
        if kind not in PANEL_KINDS:
            raise InvalidArgument(f"{where}.kind must be one of {', '.join(PANEL_KINDS)}, "
                                  f"got {kind!r}")
        exp = p.get("experiment_id")
        if not isinstance(exp, str) or not 0 < len(exp) <= 64:
            raise InvalidArgument(f"{where}.experiment_id must be an experiment's id")
        title = p.get("title", "")
        if not isinstance(title, str) or len(title) > 200:
            raise InvalidArgument(f"{where}.title must be a string of at most 200 characters")
        view = p.get("view")
        if view is not None:
            check_view_name(view)
        query = check_state({k: p[k] for k in ("filter", "sort", "columns") if k in p})
        columns = query["columns"]
        need = {"line": 1, "scatter": 2, "parallel": 2, "table": 1, "significance": 1}[kind]
        if len(columns) < need or (kind == "scatter" and len(columns) != 2):
            raise InvalidArgument(f"{where}: a {kind} panel needs "
                                  + ("two columns (x, y)" if kind == "scatter" else
                                     f"at least {need} column(s)"))
        if kind in ("line", "significance") and not all(c.startswith("metrics.")
                                                        for c in columns):
            raise InvalidArgument(f"{where}: a {kind} panel's columns are metrics "
                                  "(metrics.NAME)")
        if kind == "significance" and len(columns) != 1:
            raise InvalidArgument(f"{where}: a significance panel tests one metric "
                                  "(one column, metrics.NAME)")
        across = p.get("across", ["seed"] if kind == "significance" else None)
        if kind != "significance":
            if across is not None:
                raise InvalidArgument(f"{where}.across is for significance panels only")
        elif not isinstance(across, list) or not 0 < len(across) <= MAX_ACROSS or not all(
                isinstance(a, str) and 0 < len(a) <= 250 for a in across):
            raise InvalidArgument(f"{where}.across must list 1 to {MAX_ACROSS} param names: the "
                                  "params that vary within a group (seeds)")
        limit = p.get("limit", 10 if kind == "line" else MAX_PANEL_RUNS)
        if not isinstance(limit, int) or isinstance(limit, bool) or \
                not 0 < limit <= MAX_PANEL_RUNS:
            raise InvalidArgument(f"{where}.limit must be an integer from 1 to {MAX_PANEL_RUNS}")
        panel = {"title": title, "kind": kind, "experiment_id": exp, "view": view,
                 "filter": query["filter"], "sort": query["sort"], "columns": columns,
                 "limit": limit}
        if across is not None:
            panel["across"] = list(dict.fromkeys(across))
        out.append(panel)
    return out
