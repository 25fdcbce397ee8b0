"""Review of gc on a tiered store: cold objects go only when unreferenced and old, and
the dry run's numbers are the real run's."""

from __future__ import annotations

import os
import time
from pathlib import Path

import cairn
from cairn.cas.tiering import configure, find_tiered, move_cold
from cairn.lifecycle.gc import collect

DAY_S = 86_400


def _backdate(root: Path, tb, seconds: float = 2 * DAY_S) -> None:
    when = time.time() - seconds
    for f in root.glob("??/*"):
        os.utime(f, (when, when))
    if tb.index is not None:
        tb.index._write("UPDATE cold SET moved_at = ?", [(int(when * 1000),)])


def test_gc_on_a_tiered_store_takes_only_unreferenced_old_cold_objects(tmp_path, monkeypatch):
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    client = cairn.Client(str(tmp_path / ".cairn"))
    run = client.create_run()
    (tmp_path / "kept.txt").write_text("referenced, moved cold\n" * 30)
    client.log_artifact(run.id, tmp_path / "kept.txt")
    client.set_terminated(run.id)
    objects = client.store.objects
    kept = client.list_artifacts(run.id)[0].digest
    cold_orphans = [objects.put_bytes(f"garbage {i}, moved cold".encode() * 10)
                    for i in range(3)]
    configure(objects, str(tmp_path / "cold"))
    move_cold(objects, older_than_days=0)
    hot_orphan = objects.put_bytes(b"garbage, still hot" * 10)
    young_cold = objects.put_bytes(b"cold, but put again by a writer" * 10)
    move_cold(objects, older_than_days=0)
    tb = find_tiered(objects.backend)
    assert tb is not None
    _backdate(tmp_path / ".cairn" / "objects", tb)
    _backdate(tmp_path / "cold", tb)
    assert tb.freshen(young_cold)  # a deduplicated put, just now

    dry = collect(client.store, grace_s=0, dry_run=True)
    real = collect(client.store, grace_s=0)
    assert (dry.garbage, dry.garbage_bytes) == (real.garbage, real.garbage_bytes)
    assert real.garbage == 4 and real.freed == 4 and real.young >= 1
    for oid in [*cold_orphans, hot_orphan]:
        assert not objects.has(oid)
    assert objects.has(young_cold) and objects.has(kept)
    out = tmp_path / "out"
    client.download_artifacts(run.id, "", out)
    assert (out / "kept.txt").read_text() == "referenced, moved cold\n" * 30
    assert objects.verify().ok
