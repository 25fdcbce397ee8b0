"""Audited downloads: who read which artifact, model version or data set version.

A route that serves one named file (``GET /runs/{id}/artifacts/download``, MLflow's
``get-artifact`` and ``mlflow-artifacts`` downloads) appends one ``artifact.download``
event per request, whatever byte ranges the client then reads of it.

Cairn's own clients download through ``GET /objects/{oid}``: a model version or a data set
version is its file list (one object) and the objects it names, an artifact its objects.
Auditing each object would write an event per chunk, so object reads are gathered per
caller into a *burst* that ends when the caller has read nothing for ``IDLE_S`` seconds
(or after ``MAX_OBJECTS`` objects).  When a burst ends its objects are named: a file list
that is a model version's gives one ``model_version.download`` event (target
``model:NAME/VERSION``) covering it and its files, a data set version's one
``dataset_version.download`` (target ``dataset:NAME@VERSION``), and the objects left
over one ``object.download`` event (how many, their bytes, the first oids).  So
``cairn models download`` is one event, and a client fetching a directory file by file
is one event per file through the file routes, one per burst through the object route.

The events are the server's hash-chained audit log (:meth:`ServerContext.audit`), with
the caller as actor.  A file list is recognised, and looked up in the index, on the
request that reads it (one query per model or data set download, none for other
objects); ending a burst only queues events, so nothing here touches the database from
the background.  Bursts still open when the server stops are dropped with it.  A local
store has one user, so nothing here runs there.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..entities import FileEntry
    from .auth import Principal
    from .context import ServerContext

IDLE_S = 1.0  # a caller's object reads this far apart are two downloads
MAX_OBJECTS = 10_000  # a burst ends after this many objects, whatever the pace
KEPT_OIDS = 100  # oids named in an object.download event


def file_downloaded(c: "ServerContext", p: "Principal", target: str, entry: "FileEntry") -> None:
    """One file served by a file route: one event."""
    c.audit(p, "artifact.download", target, None, {"path": entry.path, "bytes": entry.size})


def mlflow_target(path: str) -> str:
    """The audit target of an MLflow artifact path: ``runs/ID`` for a run's
    (``<experiment>/<run>/artifacts/...``), else the free area's path."""
    parts = path.strip("/").split("/", 3)
    if len(parts) >= 3 and parts[2] == "artifacts":
        return f"runs/{parts[1]}"
    return f"mlflow-artifacts/{path.strip('/')}"


def object_read(c: "ServerContext", p: "Principal", oid: str, data: bytes, *,
                encoded: bool = False) -> None:
    """An object served by ``GET /objects/{oid}`` (``data``: its content, or its stored
    bytes when ``encoded``): counted into the caller's burst."""
    if not c.settings.audit:
        return
    _downloads(c).add(p, oid, len(data), _named(c, oid, data, encoded))


@dataclass
class _Burst:
    principal: Any
    sizes: dict[str, int] = field(default_factory=dict)
    named: list[tuple[str, str, set[str]]] = field(default_factory=list)
    last: float = 0.0


class _ObjectDownloads:
    def __init__(self, c: "ServerContext") -> None:
        self.c = weakref.proxy(c)
        self._lock = threading.Lock()
        self._bursts: dict[str, _Burst] = {}
        self._thread: threading.Thread | None = None

    def add(self, p: "Principal", oid: str, size: int,
            named: list[tuple[str, str, set[str]]]) -> None:
        ended = None
        with self._lock:
            b = self._bursts.get(p.user)
            if b is None:
                b = self._bursts[p.user] = _Burst(p)
            b.sizes[oid] = size
            b.named.extend(n for n in named if n[1] not in {m[1] for m in b.named})
            b.last = time.monotonic()
            if len(b.sizes) >= MAX_OBJECTS:
                ended = self._bursts.pop(p.user)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="cairn-download-audit",
                                                daemon=True)
                self._thread.start()
        if ended is not None:
            self._emit(ended)

    def _loop(self) -> None:
        while True:
            time.sleep(IDLE_S / 4)
            now = time.monotonic()
            stopping = _stopping(self.c)
            with self._lock:
                if stopping:  # the server's last audit write is done or under way
                    self._bursts.clear()
                ended = [self._bursts.pop(u) for u, b in list(self._bursts.items())
                         if now - b.last >= IDLE_S]
                if not ended and not self._bursts:
                    self._thread = None  # idle: nothing outlives the server
                    return
            for b in ended:
                try:
                    self._emit(b)
                except Exception:  # the server went away meanwhile: the events with it
                    return

    def _emit(self, b: _Burst) -> None:
        if _stopping(self.c):
            return  # the server's final audit write may be done: nothing may follow it
        rest = dict(b.sizes)
        for action, target, oids in b.named:
            got = {o: rest.pop(o) for o in oids if o in rest}
            self.c.audit(b.principal, action, target, None,
                         {"objects": len(got), "bytes": sum(got.values())})
        if rest:
            self.c.audit(b.principal, "object.download", "objects", None,
                         {"objects": len(rest), "bytes": sum(rest.values()),
                          "oids": sorted(rest)[:KEPT_OIDS]})


def end_bursts(c: "ServerContext") -> None:
    """End every open burst now and queue its events (before an erasure, which must find
    them: a burst would otherwise be written after it, naming the erased caller)."""
    with _REGISTRY_LOCK:
        d = _REGISTRY.get(c)
    if d is None:
        return
    with d._lock:
        ended = list(d._bursts.values())
        d._bursts.clear()
    for b in ended:
        d._emit(b)


def _stopping(c: Any) -> bool:
    try:
        return c._audit_stop.is_set()
    except ReferenceError:
        return True


_TREE_START = b'{"entries":'  # how a tree's canonical JSON begins (cairn.cas.tree)
_TREE_MAX = 64 << 20  # a file list bigger than this is not looked at (reads stay cheap)


def _named(c: Any, oid: str, data: bytes, encoded: bool) -> list[tuple[str, str, set[str]]]:
    """(action, target, the objects it covers) for each model version and data set version
    whose file list is object ``oid``: the list itself, its files' objects, its packs."""
    content = _content(oid, data, encoded)
    if content is None:
        return []
    from ..cas.tree import decode_tree, referenced_oids
    from ..errors import CairnError

    try:
        entries = decode_tree(oid, content)
    except CairnError:
        return []
    import json

    import sqlalchemy as sa

    from ..store.sql import tables as T
    from ..store.sql import tables_data as D

    engine = c.engine
    if engine is None:
        return []
    files = referenced_oids(entries)
    mv, dv = T.model_versions, D.dataset_versions
    out: list[tuple[str, str, set[str]]] = []
    with engine.connect() as conn:
        for name, version in conn.execute(
                sa.select(mv.c.name, mv.c.version).where(mv.c.tree_oid == oid)):
            out.append(("model_version.download", f"model:{name}/{version}", {oid, *files}))
        for name, version, packs in conn.execute(
                sa.select(dv.c.dataset, dv.c.version, dv.c.packs).where(dv.c.tree_oid == oid)):
            out.append(("dataset_version.download", f"dataset:{name}@{version}",
                        {oid, *files, *json.loads(packs or "[]")}))
    return out


def _content(oid: str, data: bytes, encoded: bool) -> bytes | None:
    """The content of what may be a tree, else None (most objects: no decoding done)."""
    if len(data) > _TREE_MAX:
        return None
    if not encoded:
        return data if data.startswith(_TREE_START) else None
    if data[:1] == b"r":
        return data[1:] if data[1:].startswith(_TREE_START) else None
    if data[:1] == b"z":
        from ..cas import codec
        from ..errors import CairnError

        try:
            content = codec.decode(oid, data)
        except CairnError:
            return None
        return content if content.startswith(_TREE_START) else None
    return None


_REGISTRY: "weakref.WeakKeyDictionary[Any, _ObjectDownloads]" = weakref.WeakKeyDictionary()
_REGISTRY_LOCK = threading.Lock()


def _downloads(c: "ServerContext") -> _ObjectDownloads:
    with _REGISTRY_LOCK:
        d = _REGISTRY.get(c)
        if d is None:
            d = _REGISTRY[c] = _ObjectDownloads(c)
        return d
