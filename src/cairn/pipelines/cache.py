"""The run cache: a stage key seen before names the run that made its outputs.

An executed stage's run carries the tags ``cairn.pipeline.key`` (the stage key) and
``cairn.pipeline.record`` (the oid of a JSON record in the object store listing its
outputs as data set versions and trees).  Looking a key up is one run search, on any
store: so a hit works across git branches, clones and machines that share the store.
Restoring checks each output's data set version out (verified) into a temporary
directory renamed into place.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from ..errors import CairnError, InvalidArgument

KEY_TAG = "cairn.pipeline.key"
RECORD_TAG = "cairn.pipeline.record"
STAGE_TAG = "cairn.pipeline.stage"
FILE_TAG = "cairn.pipeline.file"
RECORD_FORMAT = "cairn.pipeline.record/1"


def lookup(client: Any, key: str) -> tuple[str, dict[str, Any]] | None:
    """``(run_id, record)`` of a finished run of a stage with this key, or None."""
    if not all(c in "0123456789abcdef" for c in key) or len(key) != 64:
        raise InvalidArgument(f"not a stage key: {key!r}")
    runs = client.search_runs(
        None, f"tags.`{KEY_TAG}` = '{key}' AND attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=5)
    for run in runs:
        oid = run.tags.get(RECORD_TAG)
        if not oid:
            continue
        try:
            record = json.loads(client.store.objects.get_bytes(oid))
        except (CairnError, ValueError):
            continue  # a record lost from the store: try an older run, or run the stage
        if record.get("format") == RECORD_FORMAT and record.get("key") == key:
            return run.id, record
    return None


def save_record(client: Any, record: dict[str, Any]) -> str:
    data = json.dumps({"format": RECORD_FORMAT, **record}, sort_keys=True,
                      separators=(",", ":")).encode()
    oid: str = client.store.objects.put_bytes(data)
    return oid


def restore(datasets: Any, root: Path, rel: str, out: dict[str, Any]) -> None:
    """Write output ``rel`` back from its data set version (verified, through the data set
    API, so a server's store works as a local one); raises NotFound / CorruptObject when
    the version or its objects are gone.

    The version is checked out into a temporary directory next to the output, which then
    replaces the output (a file by a rename, a directory whole), so an interrupted
    restore never leaves a mix of old and new files.
    """
    dest = root / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{secrets.token_hex(4)}.restoring"
    try:
        datasets.checkout(f"{out['dataset']}@{out['version']}", tmp)
        if out["kind"] == "file":
            files = [p for p in tmp.iterdir()]
            if len(files) != 1 or not files[0].is_file():
                raise InvalidArgument(f"the cached output {rel} is not one file")
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            os.replace(files[0], dest)
            return
        old = None
        if dest.exists() or dest.is_symlink():
            old = dest.parent / f".{dest.name}.{secrets.token_hex(4)}.old"
            os.replace(dest, old)
        try:
            os.replace(tmp, dest)
        except BaseException:  # Ctrl-C, or a failure: the output as it was, nothing left over
            if old is not None:
                os.replace(old, dest)
            raise
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink()
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
