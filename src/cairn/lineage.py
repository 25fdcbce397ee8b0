"""The lineage graph: data set versions, runs, model versions and code commits.

Edges always point from what was used to what was made ("upstream → downstream"):

    dataset version ──derived──> dataset version     (derive, split)
    dataset version ──input───> run                  (cairn.log_input, derive)
    run ──────────────produced─> dataset version     (derive/split inside a run)
    run ──────────────produced─> model version       (the registry's source run)
    dataset version ──trained──> model version       (datasets a model version lists)
    commit ───────────code────> run | dataset version
    run ──────────────reproduced─> run               (the original, to its rerun by `cairn reproduce`)

``Lineage(store, user).graph(ref, "upstream")`` (or ``client.lineage(ref)``) walks
towards the sources of ``ref``, ``"downstream"`` towards everything made from it.  References::

    transactions@3  dataset:transactions@3   a data set version
    run:<run id>    <32 hex digits>          a run
    model:fraud@1.2.0  models:/fraud/1.2.0   a model version (when the registry exists)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterator

from .errors import CairnError, InvalidArgument, NotFound
from .services import StoreService

DIRECTIONS = ("upstream", "downstream")
_RUN_ID = re.compile(r"[0-9a-f]{32}")
# The tags cairn.reproduce puts on a rerun: the id of the run it reproduces, and the verdict.
REPRODUCES_TAG = "cairn.reproduces"
VERDICT_TAG = "cairn.reproduce.verdict"


@dataclass(frozen=True, slots=True)
class Node:
    id: str  # "dataset:name@3", "run:<id>", "model:name@1.2.0", "commit:<sha>"
    kind: str  # dataset | run | model | commit
    label: str
    attrs: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class Edge:
    source: str  # upstream node id
    target: str  # downstream node id
    relation: str  # derived | input | produced | trained | code | reproduced
    role: str | None = None  # for inputs: "train", "val", ...


@dataclass(slots=True)
class LineageGraph:
    """Nodes and edges reached from ``root`` in ``direction`` (within ``depth`` steps)."""

    root: str
    direction: str
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def neighbours(self, node_id: str) -> list[Edge]:
        """Edges leading away from ``node_id`` in the graph's direction."""
        if self.direction == "upstream":
            return [e for e in self.edges if e.target == node_id]
        return [e for e in self.edges if e.source == node_id]

    def walk(self) -> Iterator[tuple[int, Node, Edge | None]]:
        """Depth-first (depth, node, edge that led here); a node's subtree appears once."""
        seen: set[str] = set()

        def visit(nid: str, depth: int, via: Edge | None) -> Iterator[tuple[int, Node, Edge | None]]:
            yield depth, self.nodes[nid], via
            if nid in seen:
                return
            seen.add(nid)
            for e in self.neighbours(nid):
                nxt = e.source if self.direction == "upstream" else e.target
                yield from visit(nxt, depth + 1, e)

        yield from visit(self.root, 0, None)

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root, "direction": self.direction,
                # attrs nested: a data set version's own "kind" (add, derive) must not
                # overwrite the node's kind.
                "nodes": [{"id": n.id, "kind": n.kind, "label": n.label, "attrs": dict(n.attrs)}
                          for n in self.nodes.values()],
                "edges": [{"source": e.source, "target": e.target, "relation": e.relation,
                           "role": e.role} for e in self.edges]}

    def ids(self, kind: str | None = None) -> set[str]:
        return {n.id for n in self.nodes.values() if kind is None or n.kind == kind}


def _check(direction: str, depth: int | None) -> None:
    if direction not in DIRECTIONS:
        raise InvalidArgument(f"direction must be 'upstream' or 'downstream', got {direction!r}")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
        raise InvalidArgument(f"depth must be a non-negative int or None, got {depth!r}")


class Lineage(StoreService):
    """The lineage graph of one store's data sets, runs and model versions, read as ``user``.

    ``Lineage(store, user)`` (or :func:`cairn.services.lineage_for`, which picks
    :class:`RemoteLineage` for a client of a server); ``Lineage(client)`` uses a client's.
    """

    def __init__(self, store: Any = None, user: str | None = None) -> None:
        StoreService.__init__(self, store, user)

    def graph(self, ref: str, direction: str = "upstream",
              depth: int | None = None) -> LineageGraph:
        """Nodes and edges reached from ``ref`` in ``direction`` within ``depth`` steps."""
        _check(direction, depth)
        from .services import datasets_for, registry_for

        g = _Graph(self.client, datasets_for(self._backend, self.user),
                   lambda: registry_for(self._backend, self.user))
        root = g.resolve(ref)
        graph = LineageGraph(root.id, direction)
        graph.nodes[root.id] = root
        frontier = [root.id]
        level = 0
        seen_edges: set[Edge] = set()
        while frontier and (depth is None or level < depth):
            nxt = []
            for nid in frontier:
                for edge, node in (g.upstream(nid) if direction == "upstream" else g.downstream(nid)):
                    if edge not in seen_edges:
                        seen_edges.add(edge)
                        graph.edges.append(edge)
                    if node.id not in graph.nodes:
                        graph.nodes[node.id] = node
                        nxt.append(node.id)
            frontier = nxt
            level += 1
        return graph


_REMOTE_MAX_DEPTH = 100  # the most steps a server walks (GET /lineage's limit)


class RemoteLineage(Lineage):
    """The graph as a server's ``GET /lineage`` finds it (only what the caller may view)."""

    def graph(self, ref: str, direction: str = "upstream",
              depth: int | None = None) -> LineageGraph:
        _check(direction, depth)
        body = self._backend.call("GET", "/lineage", params={
            "node": ref, "direction": direction,
            "depth": _REMOTE_MAX_DEPTH if depth is None else min(depth, _REMOTE_MAX_DEPTH)})
        graph = LineageGraph(body["root"], direction)
        for n in body["nodes"]:
            graph.nodes[n["id"]] = Node(n["id"], n["kind"], n["label"], n.get("attrs") or {})
        graph.edges = [Edge(e["source"], e["target"], e["relation"], e.get("role"))
                       for e in body["edges"]]
        return graph


def lineage(target: Any, ref: str, direction: str = "upstream",
            depth: int | None = None) -> LineageGraph:
    """The lineage graph around ``ref`` on ``target`` (a store or a :class:`~cairn.Client`)."""
    from .services import lineage_for

    return lineage_for(target).graph(ref, direction, depth)


class _Graph:
    """Answers 'what is next to this node' from the catalog, the runs and the registry."""

    def __init__(self, runs: Any, data: Any, registry: Any) -> None:
        self.client = runs  # run reads
        self.data = data
        self.catalog = self.data.catalog
        self._registry = registry  # made on first use: alias and stage references only
        self._has_models: bool | None = None

    # -- nodes -----------------------------------------------------------------------
    def resolve(self, ref: str) -> Node:
        if not isinstance(ref, str) or not ref:
            raise InvalidArgument(f"a lineage reference must be a non-empty string, got {ref!r}")
        if ref.startswith("run:") or _RUN_ID.fullmatch(ref):
            return self.run_node(ref.removeprefix("run:"))
        if ref.startswith(("model:", "models:/")):
            return self.model_node_from_ref(ref)
        if ref.startswith("commit:"):
            return Node(ref, "commit", ref[len("commit:"):][:12])
        return self.dataset_node(self.data.version(ref))

    def dataset_node(self, v: Any) -> Node:
        return Node(f"dataset:{v.ref}", "dataset", v.ref,
                    {"files": v.files, "size": v.size, "kind": v.kind, "aliases": list(v.aliases),
                     "transform": dict(v.transform), "message": v.message})

    def dataset_node_or_stub(self, ref: str) -> Node:
        """A parent may be absent here (pulled without it): show it, marked missing."""
        try:
            return self.dataset_node(self.data.version(ref))
        except NotFound:
            return Node(f"dataset:{ref}", "dataset", ref, {"missing": True})

    def run_node(self, run_id: str) -> Node:
        try:
            run = self.client.get_run(run_id)
        except NotFound:
            if not _RUN_ID.fullmatch(run_id):
                raise
            return Node(f"run:{run_id}", "run", run_id[:8], {"missing": True})
        git = (run.env or {}).get("git") or {}
        attrs = {"status": str(run.status), "experiment": run.experiment,
                 "commit": git.get("commit") if isinstance(git, dict) else None}
        if run.tags.get(REPRODUCES_TAG):
            attrs["reproduces"] = run.tags[REPRODUCES_TAG]
            attrs["verdict"] = run.tags.get(VERDICT_TAG)
        return Node(f"run:{run.id}", "run", f"{run.name} ({run.id[:8]})", attrs)

    def model_node(self, name: str, version: str, stage: str | None = None) -> Node:
        return Node(f"model:{name}@{version}", "model", f"{name}@{version}",
                    {"stage": stage} if stage else {})

    def model_node_from_ref(self, ref: str) -> Node:
        if ref.startswith("models:/"):
            name, _, version = ref[len("models:/"):].rpartition("/")
        else:
            name, _, version = ref[len("model:"):].rpartition("@")
        row = self._model_row(name, version) if name and version else None
        if row is None and name and version:
            try:  # an alias or stage, e.g. model:fraud@production
                mv = self._registry().resolve(f"{name}@{version}")
                row = self._model_row(mv.name, str(mv.version))
            except CairnError:
                row = None
        if row is None:
            raise NotFound(f"no model version {ref!r}")
        return self.model_node(row["name"], row["version"], row.get("stage"))

    # -- edges -----------------------------------------------------------------------
    def upstream(self, nid: str) -> list[tuple[Edge, Node]]:
        kind, _, key = nid.partition(":")
        out: list[tuple[Edge, Node]] = []
        if kind == "dataset":
            try:
                v = self.data.version(key)
            except NotFound:
                return out  # a stub for a version that is not in this store
            for p in v.parents:
                out.append((Edge(f"dataset:{p}", nid, "derived"), self.dataset_node_or_stub(p)))
            if v.run_id:
                out.append((Edge(f"run:{v.run_id}", nid, "produced"), self.run_node(v.run_id)))
            elif v.commit:
                out.append((Edge(f"commit:{v.commit}", nid, "code"),
                            Node(f"commit:{v.commit}", "commit", v.commit[:12])))
        elif kind == "run":
            for name, version, role in self.catalog.run_inputs(key):
                node = self.dataset_node_or_stub(f"{name}@{version}")
                out.append((Edge(node.id, nid, "input", role), node))
            node = self.run_node(key)
            commit = node.attrs.get("commit")
            if commit:
                out.append((Edge(f"commit:{commit}", nid, "code"),
                            Node(f"commit:{commit}", "commit", commit[:12])))
            original = node.attrs.get("reproduces")
            if isinstance(original, str) and _RUN_ID.fullmatch(original):
                out.append((Edge(f"run:{original}", nid, "reproduced"), self.run_node(original)))
        elif kind == "model":
            name, _, version = key.rpartition("@")
            row = self._model_row(name, version)
            if row is not None:
                if row.get("source_run_id"):
                    rid = row["source_run_id"]
                    try:
                        run = self.run_node(rid)
                    except NotFound:  # an MLflow client may name a run of another server
                        run = Node(f"run:{rid}", "run", rid[:8], {"missing": True})
                    out.append((Edge(f"run:{rid}", nid, "produced"), run))
                for ref in _dataset_refs(row.get("datasets")):
                    try:
                        v = self.data.version(ref)
                    except (NotFound, InvalidArgument):
                        continue
                    out.append((Edge(f"dataset:{v.ref}", nid, "trained"), self.dataset_node(v)))
        return out

    def downstream(self, nid: str) -> list[tuple[Edge, Node]]:
        kind, _, key = nid.partition(":")
        out: list[tuple[Edge, Node]] = []
        if kind == "dataset":
            try:
                v = self.data.version(key)
            except NotFound:
                return out
            for name, version in self.catalog.children(v.name, v.version):
                child = self.data.version(f"{name}@{version}")
                out.append((Edge(nid, f"dataset:{child.ref}", "derived"),
                            self.dataset_node(child)))
            for run_id, role in self.catalog.readers(v.name, v.version):
                out.append((Edge(nid, f"run:{run_id}", "input", role), self.run_node(run_id)))
            for row in self._models_trained_on(v):
                m = self.model_node(row["name"], row["version"], row.get("stage"))
                out.append((Edge(nid, m.id, "trained"), m))
        elif kind == "run":
            for v in self.catalog.versions_by_run(key):
                out.append((Edge(nid, f"dataset:{v.ref}", "produced"), self.dataset_node(v)))
            for row in self._models_of_run(key):
                m = self.model_node(row["name"], row["version"], row.get("stage"))
                out.append((Edge(nid, m.id, "produced"), m))
            if _RUN_ID.fullmatch(key):
                for rerun in self.client.search_runs(
                        None, f"tags.`{REPRODUCES_TAG}` = '{key}'", max_results=1000):
                    out.append((Edge(nid, f"run:{rerun.id}", "reproduced"),
                                self.run_node(rerun.id)))
        elif kind == "commit":
            pass  # commits are roots; runs are found from them upstream only
        return out

    # -- the registry's tables, when they exist (versions in the trash are not shown) --------
    def _models_available(self) -> bool:
        if self._has_models is None:
            import sqlalchemy as sa

            with self.data.store.index.session() as conn:
                self._has_models = sa.inspect(conn).has_table("model_versions")
        return self._has_models

    def _query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        if not self._models_available():
            return []
        import sqlalchemy as sa

        with self.data.store.index.session() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]

    def _model_row(self, name: str, version: str) -> dict[str, Any] | None:
        rows = self._query("SELECT name, version, stage, source_run_id, datasets FROM "
                           "model_versions WHERE name = :n AND version = :v AND deleted_at IS NULL",
                           n=name, v=version)
        return rows[0] if rows else None

    def _models_of_run(self, run_id: str) -> list[dict[str, Any]]:
        return self._query("SELECT name, version, stage FROM model_versions WHERE "
                           "source_run_id = :r AND deleted_at IS NULL "
                           "ORDER BY name, major, minor, patch", r=run_id)

    def _models_trained_on(self, v: Any) -> list[dict[str, Any]]:
        rows = self._query("SELECT name, version, stage, datasets FROM model_versions WHERE "
                           "datasets LIKE :pat AND deleted_at IS NULL "
                           "ORDER BY name, major, minor, patch",
                           pat=f"%{v.name}%")
        return [r for r in rows if v.ref in {_canonical(x, self.data) for x in
                                              _dataset_refs(r.get("datasets"))}]


def _dataset_refs(raw: Any) -> list[str]:
    """Data set refs from a model version's ``datasets`` JSON (strings or {name, version})."""
    try:
        items = json.loads(raw) if isinstance(raw, str) else (raw or [])
    except ValueError:
        return []
    out = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, str):
            out.append(item.removeprefix("dataset:"))
        elif isinstance(item, dict) and item.get("name"):
            ver = item.get("version")
            out.append(f"{item['name']}@{ver}" if ver is not None else str(item["name"]))
    return out


def _canonical(ref: str, data: Any) -> str | None:
    try:
        return data.version(ref).ref
    except (NotFound, InvalidArgument):
        return None


def render(graph: LineageGraph) -> Any:
    """A rich ``Tree`` of the graph (for ``cairn lineage``)."""
    from rich.tree import Tree

    icons = {"dataset": "[cyan]data[/]", "run": "[green]run[/]", "model": "[magenta]model[/]",
             "commit": "[yellow]commit[/]"}
    arrow = "←" if graph.direction == "upstream" else "→"
    trees: dict[int, Any] = {}
    seen: set[str] = set()
    root_tree = None
    for depth, node, via in graph.walk():
        text = f"{icons.get(node.kind, node.kind)} {node.label}"
        extra = []
        if node.id not in seen:
            if node.kind == "dataset" and node.attrs.get("transform"):
                extra.append(_transform_text(node.attrs["transform"]))
            if node.attrs.get("stage"):
                extra.append(str(node.attrs["stage"]))
            if node.attrs.get("verdict"):
                extra.append(str(node.attrs["verdict"]))
        if extra:
            text += f" [dim]({'; '.join(extra)})[/]"
        if via is not None:
            rel = via.relation + (f":{via.role}" if via.role else "")
            text = f"[dim]{arrow} {rel}[/] {text}"
        if node.attrs.get("missing"):
            text += " [dim](not in this store)[/]"
        elif node.id in seen and via is not None:
            text += " [dim](see above)[/]"
        seen.add(node.id)
        if depth == 0:
            root_tree = trees[0] = Tree(text)
        else:
            trees[depth] = trees[depth - 1].add(text)
    return root_tree


def _transform_text(t: dict[str, Any]) -> str:
    if "split" in t and "fractions" in t:
        share = t["fractions"].get(t["split"])
        text = f"split {t['split']} {share:g} by {t.get('by', 'rows')}, seed {t.get('seed')}"
        return text + (f", stratified by {t['stratify']}" if t.get("stratify") else "")
    return ", ".join(f"{k}={v}" for k, v in t.items())
