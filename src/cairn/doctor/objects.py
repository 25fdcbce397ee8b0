"""The objects check: every stored object, and every object something refers to, re-hashed.

A stored object that no longer hashes to its oid is corrupt; an object that a run's
artifact or code snapshot, a model version or a data set version names but that is
stored nowhere (neither loose nor in a pack) is missing.  The re-hashing is the object store's own
:meth:`~cairn.cas.ObjectStore.verify` (what ``cairn artifacts verify`` runs); this
module only gathers the oids and who refers to each, so a damaged oid is reported
with the artifacts, models and data sets it breaks.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import CairnError

if TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy.engine import Connection

    from ..cas.odb import ObjectStore

# Referrers kept per oid: enough to find the damage, bounded on a store where one
# object (an empty file, a common weight) is named by a million artifacts.
REFERRERS_KEPT = 5


@dataclass
class References:
    """oid -> the first few things that name it, and how many do.

    With ``only`` (a set of oids), just those oids' referrers are kept; without it, with
    ``names=False``, just which oids are named (no referrer text: the first pass over a
    big store, before doctor knows which oids are damaged)."""

    named: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # file lists that could not be read
    only: "set[str] | None" = None
    names: bool = True
    oids: set[str] = field(default_factory=set)

    def add(self, oid: str, who: str) -> None:
        if not self.names:
            self.oids.add(oid)
            return
        if self.only is not None and oid not in self.only:
            return
        n = self.counts.get(oid, 0)
        self.counts[oid] = n + 1
        if n < REFERRERS_KEPT:
            self.named.setdefault(oid, []).append(who)

    def describe(self, oid: str) -> dict[str, Any]:
        out: dict[str, Any] = {"oid": oid, "referrers": list(self.named.get(oid, ()))}
        more = self.counts.get(oid, 0) - len(out["referrers"])
        if more > 0:
            out["more_referrers"] = more
        return out


def references(conn: "Connection", objects: "ObjectStore", only: "set[str] | None" = None,
               names: bool = True) -> References:
    """Who names which object: run artifacts, model versions and data set versions (their
    file lists are read from the object store; a damaged list is reported by its oid).
    ``only``: keep the referrers of these oids alone; ``names=False``: only which oids
    are named (:attr:`References.oids`)."""
    import sqlalchemy as sa

    from ..environment import source_oids
    from ..store.sql import tables as T
    from ..store.sql import tables_data as D

    refs = References(only=only, names=names)
    a = T.artifacts
    for rid, path, digest, chunks in conn.execute(
            sa.select(a.c.run_id, a.c.path, a.c.digest, a.c.chunks)):
        who = f"run {rid} artifact {path}"
        if chunks:
            for oid, _size in json.loads(chunks):
                refs.add(oid, who)
        else:
            refs.add(digest, who)
    # The code a run ran: its uncommitted patch, untracked and source files (cairn reproduce).
    for rid, env in conn.execute(sa.select(T.runs.c.id, T.runs.c.env)
                                 .where(T.runs.c.env.is_not(None), T.runs.c.env != "{}")):
        try:
            captured = json.loads(env)
        except ValueError:
            continue
        for oid in source_oids(captured):
            refs.add(oid, f"run {rid} code snapshot")
    mv = T.model_versions
    for name, version, tree in conn.execute(sa.select(mv.c.name, mv.c.version, mv.c.tree_oid)):
        _tree(refs, objects, tree, f"model {name} version {version}")
    dv = D.dataset_versions
    for name, version, tree, packs in conn.execute(
            sa.select(dv.c.dataset, dv.c.version, dv.c.tree_oid, dv.c.packs)):
        who = f"data set {name}@{version}"
        _tree(refs, objects, tree, who)
        for pack in json.loads(packs or "[]"):
            refs.add(pack, f"{who} (pack)")
    return refs


def _tree(refs: References, objects: "ObjectStore", tree: str, who: str) -> None:
    refs.add(tree, f"{who} (file list)")
    try:
        entries = objects.get_tree(tree)
    except CairnError as exc:  # corrupt or missing: verify reports the tree itself
        refs.notes.append(f"{who}: its file list {tree} cannot be read ({exc.message}); "
                          "its files were not checked")
        return
    for e in entries:
        for oid in ([c[0] for c in e.chunks] if e.chunks else [e.digest]):
            refs.add(oid, f"{who} file {e.path}")


def check(conn: "Connection", objects: "ObjectStore", *, sample: int | None = None,
          progress: bool | None = False) -> dict[str, Any]:
    """The objects check's details: ``ok``, counts, ``corrupt`` and ``missing`` (each
    oid with what refers to it).  ``sample``: re-hash that many objects chosen at random
    instead of all of them."""
    # Two passes keep a big store's memory to one set of oids: which oids are named
    # first, then, only when some are damaged, who names those.
    named = references(conn, objects, names=False)
    found = set(objects.backend.iter_oids())
    stored = len(found)
    found |= named.oids
    referenced, notes = len(named.oids), named.notes
    del named
    targets = sorted(found)
    del found
    if sample is not None and sample < len(targets):
        targets = sorted(random.sample(targets, sample))
    result = objects.verify(targets, progress=progress)
    del targets
    damaged = set(result.corrupt) | set(result.missing)
    refs = references(conn, objects, only=damaged) if damaged else References()
    packed = objects.packs.locate(result.corrupt) if objects.packs is not None and \
        result.corrupt else {}

    def corrupt(oid: str) -> dict[str, Any]:
        out = refs.describe(oid)
        if oid in packed:
            out["pack"] = packed[oid].pack
        return out

    return {
        "ok": result.ok,
        "stored": stored,
        "referenced": referenced,
        "checked": result.checked,
        "sample": sample,
        "corrupt": [corrupt(oid) for oid in result.corrupt],
        "missing": [refs.describe(oid) for oid in result.missing],
        "notes": notes,
    }
