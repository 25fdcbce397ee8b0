"""``cairn doctor``: is this store whole?  Each check reports, none repairs.

Checks, in order (docs/store-layout.md, "Checking"):

``schema``      the index opens at this version's schema (it is refused otherwise)
``journals``    every journal record reads back whole (CRC, framing); local stores only
``quarantine``  records that replay set aside (``<store>/quarantine/``); local stores only
``index``       the SQLite index says what the journals say; local stores only
``objects``     every stored object, and every object an artifact, model version or
                data set version names, is there and hashes to its oid
``audit``       the registry's hash-chained audit log is unbroken

A store on PostgreSQL has no journals (the database is the durable copy): its
journal, quarantine and index checks are "not applicable".  Runs presumed dead
(KILLED) are listed, as information: they are not damage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from ..errors import InvalidArgument, NotFound

if TYPE_CHECKING:  # pragma: no cover
    from ..cas.odb import ObjectStore

__all__ = ["CHECKS", "Check", "DoctorReport", "diagnose"]

OK, DAMAGED, NOT_APPLICABLE, SKIPPED = "ok", "damaged", "not applicable", "skipped"
CHECKS = ("schema", "journals", "quarantine", "index", "objects", "audit")
# The checks one may leave out (the others are quick).
SKIPPABLE = ("index", "objects", "audit")


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``status`` is ok, damaged, not applicable or skipped."""

    name: str
    status: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status != DAMAGED

    def to_dict(self) -> dict[str, Any]:
        # A check's details may carry its own "ok": the status says it.
        return {"status": self.status, "summary": self.summary,
                **{k: v for k, v in self.details.items() if k != "ok"}}


@dataclass(frozen=True)
class DoctorReport:
    """What :func:`diagnose` found; ``ok`` is False when any check found damage."""

    store: str
    checks: tuple[Check, ...]
    killed_runs: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        journals, quarantine = self.check("journals"), self.check("quarantine")
        return {
            "store": self.store,
            "ok": self.ok,
            "checks": {c.name: c.to_dict() for c in self.checks},
            # The keys of doctor's JSON before the checks were named (kept for scripts).
            "schema": self.check("schema").status,
            "damaged_records": journals.details.get("damaged_records", []),
            "quarantined_records": quarantine.details.get("quarantined_records", []),
            "quarantined_runs": quarantine.details.get("quarantined_runs", []),
            "killed_runs": list(self.killed_runs),
        }


def diagnose(store: Any, *, objects: "ObjectStore | None" = None, sample: int | None = None,
             skip: Iterable[str] = (), progress: bool | None = False) -> DoctorReport:
    """Check ``store`` (a local store directory's :class:`~cairn.store.local.LocalStore`, or a
    server database's :class:`~cairn.store.sql.store.SqlStore`) and report; never repairs.

    ``objects``: the object store to check (default: the store's own; a database store
    has none of its own, so give the one its server uses).  ``sample``: re-hash that many
    objects chosen at random instead of all.  ``skip``: names of checks to leave out
    (``index``, ``objects``, ``audit``).  ``progress``: bars on stderr (None: when it is a
    terminal).
    """
    from ..store.local import LocalStore
    from ..store.sql.store import SqlStore

    skip = set(skip)
    unknown = skip - set(SKIPPABLE)
    if unknown:
        raise InvalidArgument(f"cannot skip {', '.join(sorted(unknown))}: the checks one can "
                              f"skip are {', '.join(SKIPPABLE)}")
    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int)
                               or sample < 1):
        raise InvalidArgument(f"sample must be a positive number of objects, got {sample!r}")
    local = isinstance(store, LocalStore)
    if not local and not isinstance(store, SqlStore):
        raise InvalidArgument(f"cairn doctor checks a local store directory or a server's "
                              f"database (postgresql://...), not {store.uri}")
    if not local and objects is None and "objects" not in skip:
        raise InvalidArgument(
            f"{store.uri} keeps its objects elsewhere: give the object store its server uses "
            "(--objects DIR or s3://BUCKET/PREFIX, as for `cairn server`), or skip the "
            "objects check")
    if local:
        if not store.root.is_dir():
            raise NotFound(f"no Cairn store at {store.root}")
        store.open()  # checks the schema; replays what the index lacks, as any open does
    else:
        store.open(create=False)  # a database without Cairn's schema is refused, not made
    if objects is None and "objects" not in skip:
        objects = store.objects

    checks = [Check("schema", OK, "the index is at this version's schema")]
    if local:
        checks += _journal_checks(store)
    else:
        none = "a database store keeps no journals"
        checks += [Check("journals", NOT_APPLICABLE, none),
                   Check("quarantine", NOT_APPLICABLE, none)]
    if not local:
        checks.append(Check("index", NOT_APPLICABLE, "the database is the store's only copy"))
    elif "index" in skip:
        checks.append(Check("index", SKIPPED, "not compared (skipped)"))
    else:
        checks.append(_index_check(store, progress))
    if "objects" in skip:
        checks.append(Check("objects", SKIPPED, "not checked (skipped)"))
    else:
        assert objects is not None
        checks.append(_objects_check(store, objects, sample, progress))
    if "audit" in skip:
        checks.append(Check("audit", SKIPPED, "not verified (skipped)"))
    else:
        checks.append(_audit_check(store))
    return DoctorReport(store.uri, tuple(checks), tuple(_killed(store)))


def _journal_checks(store: Any) -> list[Check]:
    from ..store import quarantine

    held = quarantine.list_all(store.root)
    # Damage that replay met is in quarantine already: list each span once.
    places = {(str(store.root / q.journal), q.offset) for q in held}
    damage = [d for d in store.scan_damage() if (d.path, d.offset) not in places]
    records = [{"path": d.path, "offset": d.offset, "length": d.length, "reason": d.reason}
               for d in damage]
    runs = sorted({q.run_id for q in held})
    return [
        Check("journals", DAMAGED if damage else OK,
              f"{len(damage)} damaged journal record(s), skipped (the rest of each run is kept)"
              if damage else "no damaged records", {"damaged_records": records}),
        Check("quarantine", DAMAGED if held else OK,
              f"{len(held)} journal record(s) in quarantine, of {len(runs)} run(s) (the rest "
              f"of each run is kept; copies under {store.root / quarantine.DIRECTORY})"
              if held else "empty",
              {"quarantined_records": [q.to_dict() for q in held], "quarantined_runs": runs}),
    ]


def _index_check(store: Any, progress: bool | None) -> Check:
    from . import index

    d = index.check(store, progress=progress)
    meanwhile = d.get("runs_written_meanwhile") or []
    busy = (f"; {len(meanwhile)} run(s) written while doctor compared were left out"
            if meanwhile else "")
    if d["ok"]:
        return Check("index", OK, f"{d['runs_in_index']} run(s), as the journals say{busy}", d)
    return Check("index", DAMAGED,
                 f"{d['runs_differing']} run(s) differ from the journals "
                 f"({d['differences_found']} difference(s)); `cairn reindex` rebuilds the "
                 f"index from them{busy}", d)


def _objects_check(store: Any, objects: "ObjectStore", sample: int | None,
                   progress: bool | None) -> Check:
    from . import objects as objlib

    with store.index.read() as conn:
        d = objlib.check(conn, objects, sample=sample, progress=progress)
    what = f"{d['checked']} object(s) re-hashed" + (f" (a sample of {sample})" if sample else "")
    if d["ok"]:
        return Check("objects", OK, what, d)
    return Check("objects", DAMAGED,
                 f"{what}: {len(d['corrupt'])} corrupt, {len(d['missing'])} missing", d)


def _audit_check(store: Any) -> Check:
    from ..registry import audit

    with store.index.read() as conn:
        report = audit.verify(conn)
    problems = [{"seq": p.seq, "message": p.message} for p in report.problems]
    d = {"checked": report.checked, "problems": problems,
         "first_broken": report.problems[0].seq if report.problems else None}
    if report.ok:
        return Check("audit", OK, f"{report.checked} event(s), chain intact", d)
    return Check("audit", DAMAGED, f"chain broken: {report.problems[0].message}", d)


def _killed(store: Any) -> list[str]:
    killed: list[str] = []
    token = None
    while True:
        page, token = store.search_runs(None, "attributes.status = 'KILLED'", max_results=1000,
                                        page_token=token)
        killed += [r.id for r in page]
        if token is None:
            return killed
