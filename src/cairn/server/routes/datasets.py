"""Data set versions over REST: read the catalog, add versions, aliases, diff, verify, inputs.

Data sets, like content-addressed objects, belong to the whole server rather than to
one experiment, so their roles are the ones objects use: reading (lists, versions,
files, statistics, diffs, verification) needs viewer on some experiment or model,
adding a version or moving an alias needs editor on some experiment or model, and
every such change is audited.  Recording that a run read a version needs editor on
that run's experiment.

Adding a version from a client is what ``cairn data add`` does locally, split in
two: upload the objects the server lacks (``POST /objects/missing``, ``PUT
/objects/{oid}``), then ``POST /datasets/{name}/versions`` with the file entries.
Small files may travel in packs (``packs``: the pack objects uploaded with them); the
server checks every member of each pack against its digest before it relies on it.
The server checks that every object is there, stores the tree, computes table
statistics (or takes those the client computed, ``stats`` as an object) and checks
quality expectations, then writes the catalog row.

A version is named by number (``3`` or ``v3``), alias (``gold``) or ``latest``.
Data set names may contain ``/``.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field, StrictInt

from ...cas.tree import referenced_oids
from ...errors import Conflict, CorruptObject, InvalidArgument, NotFound, PermissionDenied
from ...store.wire import entry_from_json, entry_to_json
from ..auth import Principal
from ..context import ServerContext, ctx, principal
from ._common import require_run
from ._json import out as _out

router = APIRouter(tags=["datasets"])
User = Annotated[Principal, Depends(principal)]
Name = Annotated[str, Path(min_length=1, max_length=256, description="data set name")]
Selector = Annotated[str, Path(min_length=1, max_length=130,
                               description="version number (3 or v3), alias, or latest")]
AliasName = Annotated[str, Path(min_length=1, max_length=128)]
Ref = Annotated[str, Field(min_length=1, max_length=400, description="name@version or name@alias")]
MAX_FILES = 10_000
MAX_VERSION = 2**31 - 1
RunId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


def _datasets(c: ServerContext, p: Principal):
    from ...services import datasets_for

    return datasets_for(c.store, p.user)


def check_ref(ref: str) -> str:
    """``ref`` after the checks the catalog leaves to its callers (numbers fit the database)."""
    from ...data.entities import DataRef

    r = DataRef.parse(ref)
    if r.version is not None and r.version > MAX_VERSION:
        raise NotFound(f"data set {r.name!r} has no version {r.version}", ref=str(ref))
    return ref


def _ref(name: str, selector: str) -> str:
    return check_ref(f"{name}@{selector}")


def _version_json(v: Any) -> dict[str, Any]:
    """A version without its per-file statistics (``GET .../stats`` has those)."""
    d = dataclasses.asdict(v)
    d.pop("stats", None)
    d["ref"] = v.ref
    return d


Oid = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Size = Annotated[StrictInt, Field(ge=0, le=2**62)]


class Entry(BaseModel):
    """One file: its path in the data set, size, SHA-256, and chunks [oid, size] if chunked."""

    path: Annotated[str, Field(min_length=1, max_length=1000)]
    size: Size
    digest: Oid
    chunks: list[tuple[Oid, Annotated[StrictInt, Field(ge=1, le=2**62)]]] = Field(default_factory=list)


class NewVersion(BaseModel):
    files: list[Entry] = Field(min_length=1, max_length=1_000_000)
    message: Annotated[str, Field(max_length=10_000)] = ""
    source: Annotated[str, Field(max_length=4096)] = ""
    aliases: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        default_factory=list, max_length=100)
    expect: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(
        default_factory=list, max_length=100)
    stats: bool | dict[Annotated[str, Field(max_length=1000)], dict[str, Any]] = Field(
        default=True, description="compute table statistics here (true), none (false), or "
                                  "the statistics per file path as the client computed them")
    packs: list[Oid] = Field(default_factory=list, max_length=100_000, description=(
        "uploaded pack objects holding small files of this version (cairn.pack/1)"))
    kind: Literal["add", "derive", "split"] = "add"
    parents: list[Ref] = Field(default_factory=list, max_length=100, description=(
        "the versions this one was made from (derive, split)"))
    run_id: Annotated[str, Field(min_length=1, max_length=64,
                                 pattern=r"^[A-Za-z0-9_-]+$")] | None = None
    commit: Annotated[str, Field(max_length=64)] | None = None
    transform: dict[str, Any] = Field(default_factory=dict, description=(
        "parameters of the transformation that made it"))


class AliasTarget(BaseModel):
    version: Annotated[StrictInt, Field(ge=1, le=MAX_VERSION)] | Annotated[str, Field(
        min_length=1, max_length=130, description="a number, v3, another alias or latest")]


class RunInput(BaseModel):
    dataset: Ref
    role: Annotated[str, Field(min_length=1, max_length=64)] = "input"


@router.get("/datasets", summary="Every data set, with a summary of its versions")
def list_datasets(request: Request, p: User):
    c = ctx(request)
    return _out([dataclasses.asdict(d) for d in _datasets(c, p).list()])


@router.get("/datasets/diff", summary="What changed from version a to version b")
def diff(request: Request, p: User,
         a: Annotated[str, Query(min_length=1, max_length=400, description="name@version")],
         b: Annotated[str, Query(min_length=1, max_length=400, description="name@version")]):
    c = ctx(request)
    d = _datasets(c, p).diff(check_ref(a), check_ref(b))
    return _out({**dataclasses.asdict(d), "empty": d.empty})


@router.get("/datasets/{name:path}/versions", summary="Versions of a data set, oldest first")
def list_versions(name: Name, request: Request, p: User):
    c = ctx(request)
    return _out([_version_json(v) for v in _datasets(c, p).versions(name)])


@router.post("/datasets/{name:path}/versions", status_code=201,
             summary="Add a version from uploaded files (200 and created=false if unchanged)")
def add_version(name: Name, body: NewVersion, request: Request, p: User):
    from ...data import quality as Q
    from ...data.entities import check_alias, check_name

    c = ctx(request)
    check_name(name)
    for alias in body.aliases:
        check_alias(alias)
    expectations = Q.parse_all(body.expect or None)
    if body.run_id is not None:
        require_run(c, p, body.run_id, "editor")
    ds = _datasets(c, p)
    parents = [ds.version(check_ref(ref)) for ref in dict.fromkeys(body.parents)]
    if body.kind != "add" and not parents:
        raise InvalidArgument(f"a {body.kind} version needs the versions it was made from "
                              "(parents)")
    entries = [entry_from_json(f.model_dump()) for f in body.files]
    absent_packs = c.objects.missing(body.packs)
    if absent_packs:
        raise Conflict(f"{len(absent_packs)} pack(s) of this version are not on the server yet; "
                       "upload them first", missing=sorted(absent_packs)[:20])
    _take_packs(c.objects, body.packs)
    lacking = c.objects.missing(referenced_oids(entries))
    if lacking:
        raise Conflict(f"{len(lacking)} object(s) of this version are not on the server yet; "
                       "upload them first (POST /api/v1/objects/missing, then PUT "
                       "/api/v1/objects/{oid})", missing=sorted(lacking)[:20])
    # The local `cairn data add` path (Datasets._record), minus the scan: objects are in.
    v = ds._record(name, entries, message=body.message, source=body.source or f"upload by {p.user}",
                   aliases=body.aliases, expectations=expectations, stats=body.stats,
                   kind=body.kind, parents=parents, run_id=body.run_id, commit=body.commit,
                   transform=body.transform)
    if v.created:
        c.audit(p, "dataset.create", f"dataset:{v.ref}", None,
                {"tree": v.tree, "files": v.files, "size": v.size, "aliases": list(body.aliases),
                 "kind": v.kind, "parents": list(v.parents), "run_id": v.run_id})
    elif body.aliases:
        c.audit(p, "dataset.alias", f"dataset:{v.ref}", None, {"aliases": list(body.aliases)})
    return _out(_version_json(v), status_code=201 if v.created else 200)


def _take_packs(objects: Any, packs: list[str]) -> None:
    """Make the members of uploaded packs findable, after checking each against its digest
    (a pack that lied about a member would hide that object from every later upload).

    A store without a pack index keeps the members as loose objects instead."""
    import hashlib

    from ...cas.packs import decode_header

    for pack in dict.fromkeys(packs):
        content = objects.get_bytes(pack)  # verified against the pack's own id
        try:
            members, body = decode_header(pack, content)
        except CorruptObject as exc:
            raise InvalidArgument(exc.message, oid=pack) from None
        for oid, offset, size in members:
            data = content[body + offset: body + offset + size]
            if hashlib.sha256(data).hexdigest() != oid:
                raise InvalidArgument(f"pack {pack} is damaged: its member {oid} does not "
                                      "hash to its id", oid=pack)
        if objects.packs is not None:
            objects.packs.add(pack, members)
        else:
            for _oid, offset, size in members:
                objects.put_bytes(content[body + offset: body + offset + size])


@router.get("/datasets/{name:path}/versions/{version}", summary="One version")
def get_version(name: Name, version: Selector, request: Request, p: User):
    c = ctx(request)
    return _out(_version_json(_datasets(c, p).version(_ref(name, version))))


@router.get("/datasets/{name:path}/versions/{version}/files",
            summary="The files of a version (under path), a page at a time")
def list_files(name: Name, version: Selector, request: Request, p: User,
               path: Annotated[str, Query(max_length=1000)] = "",
               offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
               limit: Annotated[int, Query(ge=1, le=MAX_FILES)] = 1000):
    c = ctx(request)
    ds = _datasets(c, p)
    v = ds.version(_ref(name, version))
    entries = ds.files(v, path or None)
    page = entries[offset:offset + limit]
    nxt = offset + limit if offset + limit < len(entries) else None
    return _out({"ref": v.ref, "total": len(entries), "offset": offset, "next_offset": nxt,
                 "files": [entry_to_json(e) for e in page]})


@router.get("/datasets/{name:path}/versions/{version}/stats",
            summary="Table statistics and quality results stored with a version")
def get_stats(name: Name, version: Selector, request: Request, p: User):
    c = ctx(request)
    v = _datasets(c, p).version(_ref(name, version))
    return _out({"ref": v.ref, "stats": dict(v.stats), "quality": list(v.quality)})


@router.post("/datasets/{name:path}/versions/{version}/verify",
             summary="Re-hash every object of a version on the server")
def verify(name: Name, version: Selector, request: Request, p: User):
    c = ctx(request)
    ds = _datasets(c, p)
    v = ds.version(_ref(name, version))
    try:
        res = ds.verify(v)
    except CorruptObject:  # the file list itself: nothing else can be checked
        return _out({"ref": v.ref, "ok": False, "checked": 1, "corrupt": [v.tree], "missing": []})
    except NotFound:
        return _out({"ref": v.ref, "ok": False, "checked": 0, "corrupt": [], "missing": [v.tree]})
    return _out({"ref": v.ref, "ok": res.ok, "checked": res.checked,
                 "corrupt": list(res.corrupt), "missing": list(res.missing)})


@router.delete("/datasets/{name:path}/versions/{version}",
               summary="Move a version to the trash (editors; a version that is an input of a "
                       "live registered model version only with force, by a server admin)")
def delete_version(name: Name, version: Selector, request: Request, p: User,
                   force: bool = False):
    return _delete_version(name, version, request, p, force)


@router.post("/datasets/{name:path}/versions/{version}/delete",
             summary="Move a version to the trash (as DELETE .../versions/{version}, for "
                     "clients that only POST)")
def delete_version_post(name: Name, version: Selector, request: Request, p: User,
                        force: bool = False):
    return _delete_version(name, version, request, p, force)


def _delete_version(name: str, version: str, request: Request, p: Principal,
                    force: bool) -> Any:
    c = ctx(request)
    if force and not p.is_admin:
        raise PermissionDenied(f"forcing the deletion of data set version {name}@{version} "
                               "needs a server admin", ref=f"{name}@{version}")
    v = _datasets(c, p).delete_version(_ref(name, version), force)  # audited by the catalog
    return _out(_version_json(v))


@router.post("/datasets/{name:path}/versions/{version}/restore",
             summary="Bring a version back from the trash (editors)")
def restore_version(name: Name, version: Selector, request: Request, p: User):
    c = ctx(request)
    v = _datasets(c, p).restore_version(_ref(name, version))  # audited by the catalog
    return _out(_version_json(v))


@router.put("/datasets/{name:path}/aliases/{alias}", summary="Point an alias at a version")
def set_alias(name: Name, alias: AliasName, body: AliasTarget, request: Request, p: User):
    c = ctx(request)
    ds = _datasets(c, p)
    before = {a: n for a, n in _aliases(ds, name).items() if a == alias}
    v = ds.alias(_ref(name, str(body.version)), alias)
    c.audit(p, "dataset.alias", f"dataset:{name}", before or None, {alias: v.version})
    return _out(_version_json(v))


@router.delete("/datasets/{name:path}/aliases/{alias}", summary="Remove an alias")
def remove_alias(name: Name, alias: AliasName, request: Request, p: User):
    c = ctx(request)
    ds = _datasets(c, p)
    before = {a: n for a, n in _aliases(ds, name).items() if a == alias}
    ds.remove_alias(name, alias)
    c.audit(p, "dataset.alias_remove", f"dataset:{name}", before, None)
    return _out({"name": name, "alias": alias, "removed": True})


def _aliases(ds: Any, name: str) -> dict[str, int]:
    from ...data.entities import check_name

    check_name(name)
    return next((dict(d.aliases) for d in ds.list() if d.name == name), {})


@router.post("/runs/{run_id}/inputs", summary="Record that a run read a data set version")
def log_input(run_id: RunId, body: RunInput,
              request: Request, p: User):
    c = ctx(request)
    require_run(c, p, run_id)
    v = _datasets(c, p).log_input(run_id, check_ref(body.dataset), body.role)
    c.audit(p, "run.log_input", f"runs/{run_id}", None, {"dataset": v.ref, "role": body.role})
    return _out({"run_id": run_id, "dataset": v.ref, "role": body.role})


@router.get("/runs/{run_id}/inputs", summary="The data set versions a run read, with roles")
def list_inputs(run_id: RunId, request: Request, p: User):
    c = ctx(request)
    require_run(c, p, run_id)
    rows = _datasets(c, p).catalog.run_inputs(run_id)
    return _out({"run_id": run_id, "inputs": [{"dataset": f"{n}@{v}", "role": r}
                                              for n, v, r in rows]})
