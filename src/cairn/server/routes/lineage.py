"""The lineage graph over REST: what a data set version, run or model version came from or made.

``GET /lineage?node=<id>&direction=up|down|both&depth=N`` returns the nodes and edges
:func:`cairn.lineage.lineage` finds, as ``{"root", "direction", "depth", "nodes":
[{"id", "kind", "label", "attrs"}], "edges": [{"source", "target", "relation",
"role"}]}``; edges point from what was used to what was made.  It needs viewer on some
experiment or model (as data sets do), and it shows only what the caller may view:
runs of experiments they hold no role on and versions of models they hold no role on
are left out, and so is everything the walk reached only through them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from ...errors import InvalidArgument, NotFound, PermissionDenied
from ..auth import Principal
from ..context import ServerContext, ctx, principal
from ._common import run_experiments
from .datasets import check_ref
from ._json import out as _out

router = APIRouter(tags=["lineage"])
User = Annotated[Principal, Depends(principal)]
_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
DIRECTIONS = {"up": ("upstream",), "down": ("downstream",), "both": ("upstream", "downstream"),
              "upstream": ("upstream",), "downstream": ("downstream",)}


@router.get("/lineage", summary="Nodes and edges upstream and/or downstream of a node")
def get_lineage(request: Request, p: User,
                node: Annotated[str, Query(min_length=1, max_length=600, description=(
                    "transactions@3 or dataset:transactions@3, run:<run id>, "
                    "model:fraud@1.2.0 or models:/fraud/1.2.0, commit:<sha>"))],
                direction: Annotated[Literal["up", "down", "both", "upstream", "downstream"],
                                     Query()] = "up",
                depth: Annotated[int, Query(ge=0, le=100, description="steps from the node")] = 10):
    from ...services import lineage_for

    c = ctx(request)
    _check_node(node)
    service = lineage_for(c.store, p.user)
    graphs = [service.graph(node, d, depth) for d in DIRECTIONS[direction]]
    root = graphs[0].nodes[graphs[0].root]
    if root.kind == "run" and root.attrs.get("missing"):
        raise NotFound(f"run {root.id.removeprefix('run:')!r} does not exist")
    allowed = _visible(c, p, {nid for g in graphs for nid in g.nodes})
    if root.id not in allowed:
        owner = "model" if root.kind == "model" else "experiment"
        raise PermissionDenied(f"user {p.user!r} may not view {root.id}; ask an admin for the "
                               f"viewer role on its {owner}", user=p.user)
    nodes: dict[str, Any] = {}
    edges: dict[tuple, Any] = {}
    for g in graphs:
        reached = _reachable(g, allowed)
        for nid in reached:
            nodes[nid] = g.nodes[nid]
        for e in g.edges:
            if e.source in reached and e.target in reached:
                edges[(e.source, e.target, e.relation, e.role)] = e
    return _out({
        "root": root.id, "direction": direction, "depth": depth,
        "nodes": [{"id": n.id, "kind": n.kind, "label": n.label, "attrs": dict(n.attrs)}
                  for n in nodes.values()],
        "edges": [{"source": e.source, "target": e.target, "relation": e.relation,
                   "role": e.role} for e in edges.values()],
    })


def _check_node(node: str) -> None:
    """Refuse what the stores should never see: odd run ids, data set versions past int32."""
    if node.startswith("run:") or _HEX32.fullmatch(node):
        if not _RUN_ID.fullmatch(node.removeprefix("run:")):
            raise InvalidArgument(f"{node!r} is not a run id (1-64 letters, digits, '_' or '-')")
    elif not node.startswith(("model:", "models:/", "commit:")):
        check_ref(node)


def _visible(c: ServerContext, p: Principal, ids: set[str]) -> set[str]:
    """The node ids ``p`` may see: data sets and commits, runs and models by role."""
    if not c.guard.enabled:
        return set(ids)
    by_kind: dict[str, list[str]] = {}
    for nid in ids:
        kind, _, key = nid.partition(":")
        by_kind.setdefault(kind, []).append(key)
    out = {f"{k}:{key}" for k in ("dataset", "commit") for key in by_kind.get(k, ())}
    runs = by_kind.get("run", [])
    exps = run_experiments(c, runs) if runs else {}
    ok_exps = set(c.guard.visible(p, "experiment", set(exps.values())))
    everything = c.guard.sees_all(p, "experiment")
    for rid in runs:  # a run not in this store is shown only to who sees every experiment
        if (exps[rid] in ok_exps) if rid in exps else everything:
            out.add(f"run:{rid}")
    models = by_kind.get("model", [])
    ok_models = set(c.guard.visible(p, "model", {m.rpartition("@")[0] for m in models}))
    out.update(f"model:{m}" for m in models if m.rpartition("@")[0] in ok_models)
    return out


def _reachable(g: Any, allowed: set[str]) -> set[str]:
    """Nodes reached from the root in the graph's direction through allowed nodes only."""
    if g.root not in allowed:
        return set()
    seen, todo = {g.root}, [g.root]
    while todo:
        nid = todo.pop()
        for e in g.neighbours(nid):
            nxt = e.source if g.direction == "upstream" else e.target
            if nxt in allowed and nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen
