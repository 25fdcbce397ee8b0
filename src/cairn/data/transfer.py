"""Push and pull: move only the objects the other side lacks, in parallel, then the refs.

Order makes an interrupted transfer harmless and resumable:

1. find what the destination lacks (one listing for big sets, HEAD requests for small);
2. copy those objects in parallel, each verified (decoded and re-hashed) before it is
   written, the stored bytes sent as they are (no re-compression);
3. only then write the version list (push) or the catalog rows (pull).

A push cut off half-way leaves objects that nothing refers to yet; running it again
finds them present and sends the rest.  Small files travel inside packs, so a data
set of 100k small files is a few dozen requests, not 100k.
"""

from __future__ import annotations

import hashlib
import json
import threading
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from ..cas import codec
from ..cas.backends.base import Backend
from ..cas.packs import register_pack
from ..cas.tree import referenced_oids
from ..errors import CairnError, Conflict, CorruptObject, NotFound, StoreUnavailable
from .entities import DataRef, DatasetVersion, TransferResult
from ..progress import bar
from .remotes import Remote, get_remote_config, open_remote

if TYPE_CHECKING:  # pragma: no cover
    from .api import Datasets

FORMAT = "cairn.datasets/1"
_LIST_THRESHOLD = 256  # above this many candidates, list the remote instead of HEAD each


def _ref_key(name: str) -> str:
    return f"datasets/{name}.json"


def _version_doc(v: DatasetVersion) -> dict[str, Any]:
    return {"version": v.version, "tree": v.tree, "packs": list(v.packs), "files": v.files,
            "size": v.size, "message": v.message, "source": v.source, "kind": v.kind,
            "run_id": v.run_id, "commit": v.commit, "parents": list(v.parents),
            "transform": dict(v.transform), "stats": dict(v.stats), "quality": list(v.quality),
            "created_at": v.created_at, "created_by": v.created_by}


def _selection(ds: "Datasets", names: Sequence[str] | str | None,
               remote_names: Callable[[], list[str]] | None = None) -> dict[str, set[int] | None]:
    """name -> wanted version numbers (None: all versions)."""
    if isinstance(names, str):
        names = [names]
    if not names:
        all_names = remote_names() if remote_names else [d.name for d in ds.list()]
        return {n: None for n in all_names}
    out: dict[str, set[int] | None] = {}
    for ref in names:
        r = DataRef.parse(ref)
        if r.version is None and r.alias is None:
            out[r.name] = None
        else:
            version = r.version
            if version is None:  # an alias names a local version
                version = ds.version(str(r)).version
            prev = out.get(r.name, set())
            if prev is not None:
                out[r.name] = prev | {version}
    return out


def _missing_on(backend: Backend, oids: set[str], workers: int) -> set[str]:
    if not oids:
        return set()
    if len(oids) > _LIST_THRESHOLD:
        present = set(backend.iter_oids())
        return oids - present
    with ThreadPoolExecutor(max_workers=workers) as pool:
        flags = dict(zip(oids, pool.map(backend.exists, list(oids))))
    return {o for o, there in flags.items() if not there}


def _copy(oids: Iterable[str], read: Callable[[str], bytes], write: Callable[[str, bytes], None],
          *, workers: int, advance: Callable[[int], None], tally: list[int]) -> None:
    """Copy objects in parallel, each verified; ``tally`` counts [objects, stored bytes] done.

    Stops at the first failure (queued copies are cancelled) and raises it.
    """
    lock = threading.Lock()

    def one(oid: str) -> None:
        stored = read(oid)
        content = codec.decode(oid, stored)
        if hashlib.sha256(content).hexdigest() != oid:
            raise CorruptObject(f"object {oid} is corrupt (content does not match its id); "
                                "it was not transferred", oid=oid)
        write(oid, stored)
        with lock:
            tally[0] += 1
            tally[1] += len(stored)
        advance(len(stored))

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cairn-transfer") as pool:
        futures: list[Future[None]] = [pool.submit(one, oid) for oid in oids]
        _, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
    for f in futures:
        if f.done() and not f.cancelled() and f.exception() is not None:
            raise f.exception()  # type: ignore[misc]


def _interrupted(verb: str, remote: str, done: int, total: int, exc: BaseException) -> CairnError:
    reason = exc.message if isinstance(exc, CairnError) else f"{type(exc).__name__}: {exc}"
    hint = ("nothing on the remote refers to the objects sent so far" if verb == "push"
            else "no version was recorded locally")
    return StoreUnavailable(f"{verb} {'to' if verb == 'push' else 'from'} {remote!r} was "
                            f"interrupted after {done} of {total} object(s): {reason}. "
                            f"{hint.capitalize()}; run it again to resume.", remote=remote)


# -- push ------------------------------------------------------------------------------

def push(ds: "Datasets", names: Sequence[str] | str | None, remote: str | None, *,
         progress: bool | None = None, workers: int = 8) -> TransferResult:
    store = ds.store
    rem = open_remote(get_remote_config(store.root, remote), max_connections=max(workers, 10))
    objects = store.objects
    selection = _selection(ds, names)
    plan: dict[str, list[DatasetVersion]] = {}
    for name, wanted in selection.items():
        versions = ds.versions(name)
        if wanted is not None:
            missing = wanted - {v.version for v in versions}
            if missing:
                raise NotFound(f"data set {name!r} has no version {min(missing)}")
            versions = [v for v in versions if v.version in wanted]
        plan[name] = versions
    # Objects each version needs: its tree, its packs, and files stored loose or chunked.
    needed: set[str] = set()
    trees: set[str] = set()
    for versions in plan.values():
        for v in versions:
            entries = objects.get_tree(v.tree)
            refs = referenced_oids(entries)
            packed = set(objects.packs.locate(refs)) if objects.packs is not None else set()
            needed |= (refs - packed) | set(v.packs)
            trees.add(v.tree)
    needed -= trees
    for oid in needed | trees:
        if not objects.backend.exists(oid):
            raise NotFound(f"object {oid} is missing from the local store; run `cairn data "
                           "verify` — the push was not started", oid=oid)
    to_send = _missing_on(rem.objects, needed, workers)
    trees_to_send = _missing_on(rem.objects, trees, workers)
    sizes = sum(objects.backend.size(o) for o in to_send | trees_to_send)
    tally = [0, 0]
    try:
        with bar(f"push → {rem.name}", sizes, enabled=progress) as advance:
            _copy(sorted(to_send), objects.backend.get, rem.objects.put, workers=workers,
                  advance=advance, tally=tally)
            # Trees after the objects they list, refs after the trees.
            _copy(sorted(trees_to_send), objects.backend.get, rem.objects.put,
                  workers=workers, advance=advance, tally=tally)
    except (CairnError, OSError) as exc:
        if isinstance(exc, CorruptObject):
            raise
        raise _interrupted("push", rem.name, tally[0], len(to_send) + len(trees_to_send),
                           exc) from None
    sent_bytes = tally[1]
    refs_sent = []
    for name, versions in plan.items():
        _merge_refs(rem, name, versions, ds)
        refs_sent += [v.ref for v in versions]
    total = len(needed) + len(trees)
    return TransferResult(rem.name, tuple(refs_sent), len(to_send) + len(trees_to_send),
                          sent_bytes, total - len(to_send) - len(trees_to_send))


def _merge_refs(rem: Remote, name: str, versions: list[DatasetVersion], ds: "Datasets") -> None:
    raw = rem.refs.get(_ref_key(name))
    doc: dict[str, Any] = json.loads(raw) if raw else {"format": FORMAT, "name": name,
                                                       "versions": [], "aliases": {}}
    by_number = {d["version"]: d for d in doc["versions"]}
    for v in versions:
        there = by_number.get(v.version)
        if there is not None and there["tree"] != v.tree:
            raise Conflict(f"the remote {rem.name!r} has a different {v.ref} (tree "
                           f"{there['tree'][:12]}, here {v.tree[:12]}); pull it under another "
                           "name or rename the local data set", ref=v.ref)
        by_number[v.version] = _version_doc(v)
    doc["versions"] = [by_number[k] for k in sorted(by_number)]
    local_aliases = {a: v.version for v in ds.versions(name) for a in v.aliases}
    doc["aliases"] = {**doc.get("aliases", {}), **{a: n for a, n in local_aliases.items()
                                                    if n in by_number}}
    rem.refs.put(_ref_key(name), json.dumps(doc, sort_keys=True, default=str).encode())


# -- pull ------------------------------------------------------------------------------

def pull(ds: "Datasets", names: Sequence[str] | str | None, remote: str | None, *,
         progress: bool | None = None, workers: int = 8) -> TransferResult:
    store = ds.store
    rem = open_remote(get_remote_config(store.root, remote), max_connections=max(workers, 10))
    objects = store.objects

    def remote_names() -> list[str]:
        return [k[len("datasets/"):-len(".json")] for k in rem.refs.keys("datasets")]

    selection = _selection(ds, names, remote_names)
    docs: dict[str, dict[str, Any]] = {}
    for name in selection:
        raw = rem.refs.get(_ref_key(name))
        if raw is None:
            raise NotFound(f"the remote {rem.name!r} has no data set {name!r}")
        docs[name] = json.loads(raw)
    # Versions to fetch: those not here yet; a same-numbered different version is a conflict.
    todo: list[tuple[str, dict[str, Any]]] = []
    for name, doc in docs.items():
        wanted = selection[name]
        local = {}
        try:
            local = {v.version: v for v in ds.versions(name)}
        except NotFound:
            pass
        for d in doc["versions"]:
            if wanted is not None and d["version"] not in wanted:
                continue
            here = local.get(d["version"])
            if here is not None:
                if here.tree != d["tree"]:
                    raise Conflict(f"{name}@{d['version']} here differs from the one on "
                                   f"{rem.name!r}; rename the local data set first",
                                   ref=f"{name}@{d['version']}")
                continue
            todo.append((name, d))
        if wanted is not None:
            absent = wanted - {d["version"] for d in doc["versions"]}
            if absent:
                raise NotFound(f"the remote {rem.name!r} has no {name}@{min(absent)}")
    tally = [0, 0]
    total = 0

    def fetch(oids: set[str], advance: Callable[[int], None]) -> None:
        nonlocal total
        wanted = sorted(objects.missing(oids))
        total += len(wanted)
        try:
            _copy(wanted, rem.objects.get, objects.backend.put, workers=workers,
                  advance=advance, tally=tally)
        except (CairnError, OSError) as exc:
            if isinstance(exc, CorruptObject):
                raise
            raise _interrupted("pull", rem.name, tally[0], total, exc) from None

    with bar(f"pull ← {rem.name}", None, enabled=progress) as advance:
        # Trees and packs first: they say which other objects are needed.
        fetch({d["tree"] for _, d in todo} | {p for _, d in todo for p in d["packs"]}, advance)
        for _, d in todo:
            for pack in d["packs"]:
                if objects.packs is not None and pack not in objects.packs.packs():
                    register_pack(objects, pack)
        needed: set[str] = set()
        for _, d in todo:
            needed |= referenced_oids(objects.get_tree(d["tree"]))
        fetch(needed, advance)
    got = []
    for name, d in sorted(todo, key=lambda t: (t[0], t[1]["version"])):
        v = ds.catalog.create_version(
            name, tree=d["tree"], packs=d["packs"], files=d["files"], size=d["size"],
            user=d.get("created_by") or ds.user, message=d.get("message", ""),
            source=d.get("source", ""), kind=d.get("kind", "add"), run_id=d.get("run_id"),
            commit=d.get("commit"), transform=d.get("transform"), stats=d.get("stats"),
            quality=d.get("quality", []), parents=[_Parent(p) for p in d.get("parents", [])],
            version=d["version"], created_at=d.get("created_at"))
        got.append(v.ref)
    for name, doc in docs.items():
        local_aliases = set()
        try:
            local_aliases = {a for v in ds.versions(name) for a in v.aliases}
        except NotFound:
            continue
        for alias, number in doc.get("aliases", {}).items():
            if alias not in local_aliases:
                try:
                    ds.catalog.set_alias(f"{name}@{number}", alias, ds.user)
                except NotFound:
                    pass  # an alias to a version that was not pulled
    return TransferResult(rem.name, tuple(got), tally[0], tally[1], 0)


class _Parent:
    """A parent reference from a remote's version list (it may not exist locally)."""

    def __init__(self, ref: str) -> None:
        r = DataRef.parse(ref)
        if r.version is None:  # the catalog records parents by number
            raise CorruptObject(f"a parent in the remote's version list names no version: {ref!r}")
        self.name: str = r.name
        self.version: int = r.version
