"""``cairn sync``: upload runs recorded offline (a local store) to a Cairn server.

Every run's journals are sent as they are — the server applies each (writer, seq)
at most once, so syncing again, or after a partial sync, sends only what is new to it
and never duplicates a point.  Artifact objects the server lacks are uploaded first.
Runs go up in parallel.  An experiment that exists on the server under the same name
is used as is (its id may differ from the local one); others are created.

What the server refuses is reported in :attr:`SyncResult.errors` (the local store
keeps every record, so nothing is lost): a whole record, or the params, tags and
metrics it left out of a record whose rest it applied.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CairnError
from . import journal as jlib
from . import wire

if TYPE_CHECKING:  # pragma: no cover
    from ..entities import RecordBatch
    from .http import HttpStore


@dataclass(frozen=True, slots=True)
class SyncResult:
    runs: int
    records: int
    applied: int
    duplicates: int
    objects_uploaded: int
    errors: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.errors


def sync_local_store(root: str | os.PathLike, server: HttpStore, workers: int = 8, *,
                     progress: bool | None = False) -> SyncResult:
    """Send every run under local store ``root`` to ``server`` (an HttpStore); ``progress``:
    a bar on stderr, a step per run (None: when stderr is a terminal)."""
    from ..progress import bar

    root = Path(root)
    runs_dir = root / "runs"
    run_ids = sorted(p.name for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.is_dir() else []
    remote = {e.name: e.id for e in server.list_experiments()}
    objects = None
    if (root / "objects").is_dir():
        from ..cas.backends.local import LocalBackend

        objects = LocalBackend(root / "objects")

    def one(run_id: str) -> tuple[int, int, int, int, list[str]]:
        batches = []
        for path in sorted((runs_dir / run_id / "journal").glob("*.cjl")):
            for item in jlib.read(path):
                if isinstance(item, jlib.Entry):
                    batches.append(item.batch)
        batches.sort(key=lambda b: (b.create is None, b.writer_id, b.seq))
        batches = [_remap(b, remote) for b in batches]
        uploaded = 0
        oids = {oid for b in batches for a in b.artifacts
                for oid in ([c[0] for c in a.chunks] if a.chunks else [a.digest])}
        if oids and objects is not None:
            uploaded = server.upload_objects(oids, source=objects)
        applied = dup = 0
        errors: list[str] = []
        for i in range(0, len(batches), 500):
            part = batches[i:i + 500]
            resp = server._json("POST", "/records", content=wire.encode_frames(part),
                                headers={"content-type": wire.RECORDS_TYPE})
            for res in resp["results"]:
                if res["status"] == "applied":
                    applied += 1
                elif res["status"] == "duplicate":
                    dup += 1
                else:
                    msg = (res.get("error") or {}).get("message", res["status"])
                    errors.append(f"run {run_id} record {res['seq']}: {msg}")
                for item in res.get("rejected_items") or ():  # left out, the rest applied
                    msg = (item.get("error") or {}).get("message", "refused")
                    errors.append(f"run {run_id} record {res['seq']}: {item.get('field')} "
                                  f"{item.get('key')!r} left out: {msg}")
        return len(batches), applied, dup, uploaded, errors

    totals = [0, 0, 0, 0]
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, \
            bar("sending runs", len(run_ids), enabled=progress, unit="runs") as advance:
        for rid, fut in [(rid, pool.submit(one, rid)) for rid in run_ids]:
            try:
                n, a, d, u, errs = fut.result()
            except CairnError as exc:
                errors.append(f"run {rid}: {exc.message}")
                continue
            finally:
                advance(1)
            for i, x in enumerate((n, a, d, u)):
                totals[i] += x
            errors.extend(errs)
    records, applied, duplicates, uploaded = totals
    return SyncResult(len(run_ids), records, applied, duplicates, uploaded, errors=tuple(errors))


def _remap(batch: RecordBatch, remote: dict[str, str]) -> RecordBatch:
    """Point a creation record at the server's experiment of the same name."""
    if batch.create is None:
        return batch
    name = batch.create.get("experiment_name")
    server_id = remote.get(name) if name else None
    if server_id is None or server_id == batch.create.get("experiment_id"):
        return batch
    return replace(batch, create={**batch.create, "experiment_id": server_id})
